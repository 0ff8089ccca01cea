//! Baseline `privileged` (PSA `policy/check_privileged.go`): no container may set
//! `securityContext.privileged=true`.

use super::Violation;
use super::phrase::containers;
use crate::model::Pod;

/// v1.0+: `spec.{initContainers,containers,ephemeralContainers}[*].securityContext.privileged`
/// must be false or unset.
pub(super) fn v1_0(pod: &Pod) -> Option<Violation> {
    let bad: Vec<&str> = pod
        .spec
        .all_containers()
        .filter(|c| c.security_context.as_ref().and_then(|s| s.privileged) == Some(true))
        .map(|c| c.name.as_str())
        .collect();
    (!bad.is_empty()).then(|| {
        Violation::new(
            "privileged",
            format!(
                "{} must not set securityContext.privileged=true",
                containers(&bad)
            ),
        )
    })
}
