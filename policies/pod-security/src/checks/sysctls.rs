//! Baseline `sysctls` (PSA `policy/check_sysctls.go`): only the namespaced, isolated "safe"
//! sysctls may be set; the safe set grows with the Kubernetes version.

use super::Violation;
use crate::model::Pod;

/// Safe from v1.0 (`sysctlsAllowedV1Dot0`).
const SAFE_1_0: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
];
/// Added in v1.27 (`sysctlsAllowedV1Dot27`).
const SAFE_1_27: &[&str] = &["net.ipv4.ip_local_reserved_ports"];
/// Added in v1.29 (`sysctlsAllowedV1Dot29`).
const SAFE_1_29: &[&str] = &[
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];
/// Added in v1.32 (`sysctlsAllowedV1Dot32`).
const SAFE_1_32: &[&str] = &["net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"];
/// Added in v1.37 (`sysctlsAllowedV1Dot37`).
const SAFE_1_37: &[&str] = &[
    "net.ipv4.tcp_slow_start_after_idle",
    "net.ipv4.tcp_notsent_lowat",
];

/// v1.0+: `spec.securityContext.sysctls[*].name` within the v1.0 safe set.
pub(super) fn v1_0(pod: &Pod) -> Option<Violation> {
    check(pod, &[SAFE_1_0])
}

/// v1.27+: adds `net.ipv4.ip_local_reserved_ports`.
pub(super) fn v1_27(pod: &Pod) -> Option<Violation> {
    check(pod, &[SAFE_1_0, SAFE_1_27])
}

/// v1.29+: adds the TCP keepalive and `tcp_fin_timeout` sysctls.
pub(super) fn v1_29(pod: &Pod) -> Option<Violation> {
    check(pod, &[SAFE_1_0, SAFE_1_27, SAFE_1_29])
}

/// v1.32+: adds `net.ipv4.tcp_rmem` and `net.ipv4.tcp_wmem`.
pub(super) fn v1_32(pod: &Pod) -> Option<Violation> {
    check(pod, &[SAFE_1_0, SAFE_1_27, SAFE_1_29, SAFE_1_32])
}

/// v1.37+: adds `net.ipv4.tcp_slow_start_after_idle` and `net.ipv4.tcp_notsent_lowat`.
pub(super) fn v1_37(pod: &Pod) -> Option<Violation> {
    check(pod, &[SAFE_1_0, SAFE_1_27, SAFE_1_29, SAFE_1_32, SAFE_1_37])
}

fn check(pod: &Pod, safe: &[&[&str]]) -> Option<Violation> {
    // Listed in spec order, repeats included, as PSA does.
    let forbidden: Vec<&str> = pod
        .spec
        .security_context
        .iter()
        .flat_map(|s| &s.sysctls)
        .map(|s| s.name.as_str())
        .filter(|name| !safe.iter().any(|set| set.contains(name)))
        .collect();
    (!forbidden.is_empty()).then(|| Violation::new("forbidden sysctls", forbidden.join(", ")))
}
