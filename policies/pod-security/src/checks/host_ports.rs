//! Baseline `hostPorts` (PSA `policy/check_hostPorts.go`): no container port may bind a host port.

use std::collections::BTreeSet;

use super::Violation;
use super::phrase::{containers, pluralize};
use crate::model::Pod;

/// v1.0+: `ports[*].hostPort` of every container must be 0 or unset.
pub(super) fn v1_0(pod: &Pod) -> Option<Violation> {
    let mut bad = Vec::new();
    // PSA collects the ports as strings, so they are listed in string order ("10000" < "80").
    let mut ports = BTreeSet::new();
    for container in pod.spec.all_containers() {
        let mut valid = true;
        for port in container.ports.iter().filter(|p| p.host_port != 0) {
            valid = false;
            ports.insert(port.host_port.to_string());
        }
        if !valid {
            bad.push(container.name.as_str());
        }
    }
    (!bad.is_empty()).then(|| {
        let ports: Vec<String> = ports.into_iter().collect();
        Violation::new(
            "hostPort",
            format!(
                "{} {} {} {}",
                containers(&bad),
                pluralize("uses", "use", bad.len()),
                pluralize("hostPort", "hostPorts", ports.len()),
                ports.join(", ")
            ),
        )
    })
}
