//! The audit trail: one JSON record per decision, the same in every home (who, from where, what,
//! which rule, the outcome), written through the host's log.

use palisade_sdk::Host;
use palisade_sdk::host::Level;
use serde_json::{Value, json};

use crate::Attributes;
use crate::authorization::{Decision, Effect};

fn result(effect: Effect) -> &'static str {
    match effect {
        Effect::Allow => "allow",
        Effect::Deny => "deny",
    }
}

/// The record of one decision.
#[must_use]
pub fn record(attributes: &Attributes, decision: &Decision) -> Value {
    json!({
        "audit": "zero-trust",
        "result": result(decision.effect),
        "policy": decision.policy,
        "audited": decision.audited,
        "dryRun": decision.dry_run.as_ref().map(|(effect, policy)| json!({
            "result": result(*effect),
            "policy": policy,
        })),
        "principal": attributes.principals.first(),
        "requestPrincipal": attributes.request_principal().map(|(iss, sub)| format!("{iss}/{sub}")),
        "groups": attributes.groups,
        "sourceIp": attributes.source_ip.map(|ip| ip.to_string()),
        "remoteIp": attributes.remote_ip.map(|ip| ip.to_string()),
        "host": attributes.host,
        "method": attributes.method,
        "path": attributes.path,
    })
}

/// Writes the record at `info`.
pub(crate) fn write(host: &dyn Host, attributes: &Attributes, decision: &Decision) {
    host.log(Level::Info, &record(attributes, decision).to_string());
}

/// The record of a request refused by authentication (its token did not verify).
#[must_use]
pub fn rejected_record(attributes: &Attributes, rejection: &crate::Rejection) -> Value {
    json!({
        "audit": "zero-trust",
        "result": "deny",
        "authentication": rejection.message,
        "status": rejection.status,
        "principal": attributes.principals.first(),
        "sourceIp": attributes.source_ip.map(|ip| ip.to_string()),
        "remoteIp": attributes.remote_ip.map(|ip| ip.to_string()),
        "host": attributes.host,
        "method": attributes.method,
        "path": attributes.path,
    })
}

/// Writes the record of a refused token at `info`.
pub(crate) fn write_rejected(
    host: &dyn Host,
    attributes: &Attributes,
    rejection: &crate::Rejection,
) {
    host.log(
        Level::Info,
        &rejected_record(attributes, rejection).to_string(),
    );
}
