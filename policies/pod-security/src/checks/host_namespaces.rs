//! Baseline `hostNamespaces` (PSA `policy/check_hostNamespaces.go`): no sharing of the host's
//! network, PID or IPC namespace.

use super::Violation;
use crate::model::Pod;

/// v1.0+: `spec.hostNetwork`, `spec.hostPID` and `spec.hostIPC` must be false or unset.
pub(super) fn v1_0(pod: &Pod) -> Option<Violation> {
    let spec = &pod.spec;
    let shared: Vec<&str> = [
        (spec.host_network, "hostNetwork=true"),
        (spec.host_pid, "hostPID=true"),
        (spec.host_ipc, "hostIPC=true"),
    ]
    .into_iter()
    .filter_map(|(set, text)| set.then_some(text))
    .collect();
    (!shared.is_empty()).then(|| Violation::new("host namespaces", shared.join(", ")))
}
