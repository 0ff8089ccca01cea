//! Restricted `runAsNonRoot` (PSA `policy/check_runAsNonRoot.go`): containers must run as
//! non-root, set at pod level or on each container; from v1.35 not required of pods in a user
//! namespace.

use super::Violation;
use super::phrase::containers;
use crate::model::Pod;

/// v1.0+: `spec.securityContext.runAsNonRoot` must not be false, and must be true unless every
/// container sets `securityContext.runAsNonRoot=true`; a container's explicit `false` always
/// fails, even under a pod-level `true`.
pub(super) fn v1_0(pod: &Pod) -> Option<Violation> {
    let mut setters = Vec::new();
    let pod_value = pod
        .spec
        .security_context
        .as_ref()
        .and_then(|s| s.run_as_non_root);
    if pod_value == Some(false) {
        setters.push("pod".to_owned());
    }
    let pod_non_root = pod_value == Some(true);
    let mut explicitly_bad = Vec::new();
    let mut implicitly_bad = Vec::new();
    for container in pod.spec.all_containers() {
        match container
            .security_context
            .as_ref()
            .and_then(|s| s.run_as_non_root)
        {
            Some(false) => explicitly_bad.push(container.name.as_str()),
            Some(true) => {}
            None if pod_non_root => {}
            None => implicitly_bad.push(container.name.as_str()),
        }
    }
    if !explicitly_bad.is_empty() {
        setters.push(containers(&explicitly_bad));
    }
    if !setters.is_empty() {
        return Some(Violation::new(
            "runAsNonRoot != true",
            format!(
                "{} must not set securityContext.runAsNonRoot=false",
                setters.join(" and ")
            ),
        ));
    }
    (!implicitly_bad.is_empty()).then(|| {
        Violation::new(
            "runAsNonRoot != true",
            format!(
                "pod or {} must set securityContext.runAsNonRoot=true",
                containers(&implicitly_bad)
            ),
        )
    })
}

/// v1.35+: any value is allowed when `spec.hostUsers` is false; otherwise [`v1_0`].
pub(super) fn v1_35(pod: &Pod) -> Option<Violation> {
    if pod.spec.in_user_namespace() {
        return None;
    }
    v1_0(pod)
}
