//! Restricted `runAsUser` (PSA `policy/check_runAsUser.go`): no explicit `runAsUser: 0`, from
//! v1.23; from v1.35 not checked for pods in a user namespace.

use super::Violation;
use super::phrase::containers;
use crate::model::Pod;

/// v1.23+: `spec.securityContext.runAsUser` and every container's `securityContext.runAsUser`
/// must not be 0.
pub(super) fn v1_23(pod: &Pod) -> Option<Violation> {
    let mut setters = Vec::new();
    if pod
        .spec
        .security_context
        .as_ref()
        .and_then(|s| s.run_as_user)
        == Some(0)
    {
        setters.push("pod".to_owned());
    }
    let bad: Vec<&str> = pod
        .spec
        .all_containers()
        .filter(|c| c.security_context.as_ref().and_then(|s| s.run_as_user) == Some(0))
        .map(|c| c.name.as_str())
        .collect();
    if !bad.is_empty() {
        setters.push(containers(&bad));
    }
    (!setters.is_empty()).then(|| {
        Violation::new(
            "runAsUser=0",
            format!("{} must not set runAsUser=0", setters.join(" and ")),
        )
    })
}

/// v1.35+: any value is allowed when `spec.hostUsers` is false; otherwise [`v1_23`].
pub(super) fn v1_35(pod: &Pod) -> Option<Violation> {
    if pod.spec.in_user_namespace() {
        return None;
    }
    v1_23(pod)
}
