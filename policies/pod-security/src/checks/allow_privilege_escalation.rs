//! Restricted `allowPrivilegeEscalation` (PSA `policy/check_allowPrivilegeEscalation.go`): every
//! container must disable privilege escalation, from v1.8 (when the field was added).

use super::Violation;
use super::phrase::containers;
use crate::model::Pod;

/// v1.8+: `securityContext.allowPrivilegeEscalation` of every container must be `false`.
pub(super) fn v1_8(pod: &Pod) -> Option<Violation> {
    let bad: Vec<&str> = pod
        .spec
        .all_containers()
        .filter(|c| {
            c.security_context
                .as_ref()
                .and_then(|s| s.allow_privilege_escalation)
                != Some(false)
        })
        .map(|c| c.name.as_str())
        .collect();
    (!bad.is_empty()).then(|| {
        Violation::new(
            "allowPrivilegeEscalation != false",
            format!(
                "{} must set securityContext.allowPrivilegeEscalation=false",
                containers(&bad)
            ),
        )
    })
}

/// v1.25+: Windows pods (`spec.os.name: windows`) are exempt; others as [`v1_8`].
pub(super) fn v1_25(pod: &Pod) -> Option<Violation> {
    if pod.spec.is_windows() {
        return None;
    }
    v1_8(pod)
}
