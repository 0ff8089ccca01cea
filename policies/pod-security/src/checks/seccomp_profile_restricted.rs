//! Restricted `seccompProfile_restricted` (PSA `policy/check_seccompProfile_restricted.go`): a
//! seccomp profile must be set, at pod level or on each container, from v1.19; replaces the
//! baseline seccomp check; Windows pods are exempt from v1.25.

use std::collections::BTreeSet;

use super::Violation;
use super::phrase::{containers, join_quote};
use super::seccomp_profile_baseline::allowed_type;
use crate::model::Pod;

/// v1.19+: `spec.securityContext.seccompProfile.type` must be `RuntimeDefault` or `Localhost`,
/// unless every container sets one of those; an explicit bad value anywhere fails.
pub(super) fn v1_19(pod: &Pod) -> Option<Violation> {
    let mut setters = Vec::new();
    let mut values = BTreeSet::new();
    let mut pod_set = false;
    let pod_profile = pod
        .spec
        .security_context
        .as_ref()
        .and_then(|s| s.seccomp_profile.as_ref());
    if let Some(profile) = pod_profile {
        if allowed_type(&profile.kind) {
            pod_set = true;
        } else {
            setters.push("pod".to_owned());
            values.insert(profile.kind.as_str());
        }
    }
    let mut explicitly_bad = Vec::new();
    let mut implicitly_bad = Vec::new();
    for container in pod.spec.all_containers() {
        let profile = container
            .security_context
            .as_ref()
            .and_then(|s| s.seccomp_profile.as_ref());
        match profile {
            Some(profile) if !allowed_type(&profile.kind) => {
                explicitly_bad.push(container.name.as_str());
                values.insert(profile.kind.as_str());
            }
            Some(_) => {}
            None if pod_set => {}
            None => implicitly_bad.push(container.name.as_str()),
        }
    }
    if !explicitly_bad.is_empty() {
        setters.push(containers(&explicitly_bad));
    }
    if !setters.is_empty() {
        return Some(Violation::new(
            "seccompProfile",
            format!(
                "{} must not set securityContext.seccompProfile.type to {}",
                setters.join(" and "),
                join_quote(&values)
            ),
        ));
    }
    (!implicitly_bad.is_empty()).then(|| {
        Violation::new(
            "seccompProfile",
            format!(
                r#"pod or {} must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost""#,
                containers(&implicitly_bad)
            ),
        )
    })
}

/// v1.25+: Windows pods (`spec.os.name: windows`) are exempt; others as [`v1_19`].
pub(super) fn v1_25(pod: &Pod) -> Option<Violation> {
    if pod.spec.is_windows() {
        return None;
    }
    v1_19(pod)
}
