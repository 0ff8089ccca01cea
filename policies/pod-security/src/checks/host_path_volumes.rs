//! Baseline `hostPathVolumes` (PSA `policy/check_hostPathVolumes.go`): no hostPath volumes.

use super::Violation;
use super::phrase::named;
use crate::model::Pod;

/// v1.0+: `spec.volumes[*].hostPath` must be unset.
pub(super) fn v1_0(pod: &Pod) -> Option<Violation> {
    let bad: Vec<&str> = pod
        .spec
        .volumes
        .iter()
        .filter(|v| v.host_path.is_some())
        .map(|v| v.name.as_str())
        .collect();
    (!bad.is_empty()).then(|| Violation::new("hostPath volumes", named("volume", "volumes", &bad)))
}
