//! Restricted `capabilities_restricted` (PSA `policy/check_capabilities_restricted.go`): every
//! container drops ALL capabilities and may add back only `NET_BIND_SERVICE`, from v1.22.

use std::collections::BTreeSet;

use super::Violation;
use super::phrase::{containers, join_quote};
use crate::model::Pod;

/// v1.22+: `securityContext.capabilities.drop` of every container must include `ALL`, and
/// `capabilities.add` may contain only `NET_BIND_SERVICE`.
pub(super) fn v1_22(pod: &Pod) -> Option<Violation> {
    let mut missing_drop_all = Vec::new();
    let mut adding = Vec::new();
    let mut added = BTreeSet::new();
    for container in pod.spec.all_containers() {
        let Some(caps) = container
            .security_context
            .as_ref()
            .and_then(|s| s.capabilities.as_ref())
        else {
            missing_drop_all.push(container.name.as_str());
            continue;
        };
        if !caps.drop.iter().any(|c| c == "ALL") {
            missing_drop_all.push(container.name.as_str());
        }
        let mut adds_forbidden = false;
        for cap in caps.add.iter().filter(|c| *c != "NET_BIND_SERVICE") {
            adds_forbidden = true;
            added.insert(cap.as_str());
        }
        if adds_forbidden {
            adding.push(container.name.as_str());
        }
    }
    let mut details = Vec::new();
    if !missing_drop_all.is_empty() {
        details.push(format!(
            r#"{} must set securityContext.capabilities.drop=["ALL"]"#,
            containers(&missing_drop_all)
        ));
    }
    if !adding.is_empty() {
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers(&adding),
            join_quote(&added)
        ));
    }
    (!details.is_empty()).then(|| Violation::new("unrestricted capabilities", details.join("; ")))
}

/// v1.25+: Windows pods (`spec.os.name: windows`) are exempt; others as [`v1_22`].
pub(super) fn v1_25(pod: &Pod) -> Option<Violation> {
    if pod.spec.is_windows() {
        return None;
    }
    v1_22(pod)
}
