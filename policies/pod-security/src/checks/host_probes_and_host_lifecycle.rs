//! Baseline `hostProbesAndHostLifecycle` (PSA `policy/check_hostProbesAndhostLifecycle.go`,
//! KEP-4940): probes and lifecycle handlers must not target another host, from v1.34.

use std::collections::BTreeSet;

use super::Violation;
use super::phrase::{containers, join_quote, pluralize};
use crate::model::Pod;

/// v1.34+: `host` of `httpGet` and `tcpSocket` in `livenessProbe`, `readinessProbe`,
/// `startupProbe`, `lifecycle.postStart` and `lifecycle.preStop` must be empty or unset.
pub(super) fn v1_34(pod: &Pod) -> Option<Violation> {
    // PSA keeps both as sets: containers are listed sorted by name, not in visiting order.
    let mut bad = BTreeSet::new();
    let mut hosts = BTreeSet::new();
    for container in pod.spec.all_containers() {
        let lifecycle = container.lifecycle.as_ref();
        let handlers = [
            container.liveness_probe.as_ref(),
            container.readiness_probe.as_ref(),
            container.startup_probe.as_ref(),
            lifecycle.and_then(|l| l.post_start.as_ref()),
            lifecycle.and_then(|l| l.pre_stop.as_ref()),
        ];
        for host in handlers.into_iter().flatten().flat_map(|h| h.hosts()) {
            bad.insert(container.name.as_str());
            hosts.insert(host);
        }
    }
    (!bad.is_empty()).then(|| {
        let bad: Vec<&str> = bad.into_iter().collect();
        Violation::new(
            "probe or lifecycle host",
            format!(
                "{} {} {} {}",
                containers(&bad),
                pluralize("uses", "use", bad.len()),
                pluralize(
                    "probe or lifecycle host",
                    "probe or lifecycle hosts",
                    hosts.len()
                ),
                join_quote(&hosts)
            ),
        )
    })
}
