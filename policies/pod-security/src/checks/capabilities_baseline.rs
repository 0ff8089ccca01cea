//! Baseline `capabilities_baseline` (PSA `policy/check_capabilities_baseline.go`): containers may
//! add only capabilities of the container runtime's default set.

use std::collections::BTreeSet;

use super::Violation;
use super::phrase::{containers, join_quote};
use crate::model::Pod;

/// The default capability set that may be added (PSA `capabilities_allowed_1_0`).
const ALLOWED: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// v1.0+: `securityContext.capabilities.add` of every container must be within [`ALLOWED`].
pub(super) fn v1_0(pod: &Pod) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut added = BTreeSet::new();
    for container in pod.spec.all_containers() {
        let Some(caps) = container
            .security_context
            .as_ref()
            .and_then(|s| s.capabilities.as_ref())
        else {
            continue;
        };
        let mut valid = true;
        for cap in caps.add.iter().filter(|c| !ALLOWED.contains(&c.as_str())) {
            valid = false;
            added.insert(cap.as_str());
        }
        if !valid {
            bad.push(container.name.as_str());
        }
    }
    (!bad.is_empty()).then(|| {
        Violation::new(
            "non-default capabilities",
            format!(
                "{} must not include {} in securityContext.capabilities.add",
                containers(&bad),
                join_quote(&added)
            ),
        )
    })
}
