//! Baseline `seLinuxOptions` (PSA `policy/check_seLinuxOptions.go`): only the container SELinux
//! types may be set, and never a user or role.

use std::collections::BTreeSet;

use super::Violation;
use super::phrase::{containers, join_quote, pluralize};
use crate::model::{Pod, SeLinuxOptions};

/// SELinux types allowed before v1.31 (`selinuxAllowedTypes1_0`).
const TYPES_1_0: &[&str] = &["", "container_t", "container_init_t", "container_kvm_t"];

/// SELinux types allowed from v1.31: adds `container_engine_t` (`selinuxAllowedTypes1_31`).
const TYPES_1_31: &[&str] = &[
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

/// v1.0+: `seLinuxOptions.type` of the pod and every container within [`TYPES_1_0`];
/// `seLinuxOptions.user` and `.role` empty.
pub(super) fn v1_0(pod: &Pod) -> Option<Violation> {
    check(pod, TYPES_1_0)
}

/// v1.31+: as [`v1_0`], with [`TYPES_1_31`].
pub(super) fn v1_31(pod: &Pod) -> Option<Violation> {
    check(pod, TYPES_1_31)
}

#[derive(Default)]
struct Findings<'a> {
    types: BTreeSet<&'a str>,
    user: bool,
    role: bool,
}

impl<'a> Findings<'a> {
    /// Records what is wrong with `options`; true when nothing is.
    fn valid(&mut self, options: &'a SeLinuxOptions, allowed: &[&str]) -> bool {
        let mut valid = true;
        if !allowed.contains(&options.kind.as_str()) {
            valid = false;
            self.types.insert(options.kind.as_str());
        }
        if !options.user.is_empty() {
            valid = false;
            self.user = true;
        }
        if !options.role.is_empty() {
            valid = false;
            self.role = true;
        }
        valid
    }
}

fn check(pod: &Pod, allowed: &[&str]) -> Option<Violation> {
    let mut findings = Findings::default();
    let mut setters = Vec::new();
    let pod_options = pod
        .spec
        .security_context
        .as_ref()
        .and_then(|s| s.se_linux_options.as_ref());
    if let Some(options) = pod_options
        && !findings.valid(options, allowed)
    {
        setters.push("pod".to_owned());
    }
    let mut bad = Vec::new();
    for container in pod.spec.all_containers() {
        let options = container
            .security_context
            .as_ref()
            .and_then(|s| s.se_linux_options.as_ref());
        if let Some(options) = options
            && !findings.valid(options, allowed)
        {
            bad.push(container.name.as_str());
        }
    }
    if !bad.is_empty() {
        setters.push(containers(&bad));
    }
    if setters.is_empty() {
        return None;
    }
    let mut data = Vec::new();
    if !findings.types.is_empty() {
        data.push(format!(
            "{} {}",
            pluralize("type", "types", findings.types.len()),
            join_quote(&findings.types)
        ));
    }
    if findings.user {
        data.push("user may not be set".to_owned());
    }
    if findings.role {
        data.push("role may not be set".to_owned());
    }
    Some(Violation::new(
        "seLinuxOptions",
        format!(
            "{} set forbidden securityContext.seLinuxOptions: {}",
            setters.join(" and "),
            data.join("; ")
        ),
    ))
}
