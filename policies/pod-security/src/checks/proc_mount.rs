//! `procMount` (PSA `policy/check_procMount_baseline.go`, `policy/check_procMount_restricted.go`):
//! containers keep the default /proc masks; from v1.35 baseline relaxes this for pods in a user
//! namespace while restricted keeps the unconditional check.

use std::collections::BTreeSet;

use super::Violation;
use super::phrase::{containers, join_quote};
use crate::model::Pod;

/// v1.0+ (and restricted `procMount_restricted` from v1.35): `securityContext.procMount` of
/// every container must be `Default` or unset.
pub(super) fn v1_0(pod: &Pod) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut kinds = BTreeSet::new();
    for container in pod.spec.all_containers() {
        let proc_mount = container
            .security_context
            .as_ref()
            .and_then(|s| s.proc_mount.as_deref());
        if let Some(kind) = proc_mount
            && kind != "Default"
        {
            bad.push(container.name.as_str());
            kinds.insert(kind);
        }
    }
    (!bad.is_empty()).then(|| {
        Violation::new(
            "procMount",
            format!(
                "{} must not set securityContext.procMount to {}",
                containers(&bad),
                join_quote(&kinds)
            ),
        )
    })
}

/// Baseline v1.35+: any value is allowed when `spec.hostUsers` is false; otherwise [`v1_0`].
pub(super) fn baseline_v1_35(pod: &Pod) -> Option<Violation> {
    if pod.spec.in_user_namespace() {
        return None;
    }
    v1_0(pod)
}
