//! Kubewarden's host capabilities (`__host_call` with binding `kubewarden`), answered from the
//! policy's [`Scope`] as policy-evaluator's `runtimes/callback.rs` answers them: `tracing/log`
//! always; every other namespace only when the policy's grants allow `<namespace>/<operation>`
//! (the error text is Kubewarden's). Whatever the guest asks, the answer is bytes or an error
//! string for the guest; only the deadline ends the call.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;

use crate::capabilities::Scope;

/// One host call as the guest made it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call<'a> {
    pub(crate) binding: &'a str,
    pub(crate) namespace: &'a str,
    pub(crate) operation: &'a str,
    pub(crate) payload: &'a [u8],
}

/// What the guest gets: the answer's bytes, or an error message.
pub(crate) type Answer = Result<Vec<u8>, String>;

/// Answers `call` for `policy`. `Err` only when the deadline passed while the host worked.
pub(crate) async fn answer(
    policy: &str,
    scope: Option<&Arc<Scope>>,
    deadline: Instant,
    call: Call<'_>,
) -> wasmtime::Result<Answer> {
    if call.binding != "kubewarden" {
        return Ok(Err(format!("unknown binding: {}", call.binding)));
    }
    if call.namespace == "tracing" {
        return Ok(match call.operation {
            "log" => {
                log(policy, call.payload);
                Ok(Vec::new())
            }
            other => Err(format!("unknown operation: {other}")),
        });
    }
    let Some(scope) = scope else {
        return Ok(Err(format!(
            "host capabilities are not available while the policy is loaded ({}/{})",
            call.namespace, call.operation
        )));
    };
    let path = format!("{}/{}", call.namespace, call.operation);
    if !scope
        .grants
        .operations
        .allows(call.namespace, call.operation)
    {
        tracing::warn!(policy, capability = %path, "the policy called a host capability it is not granted");
        return Ok(Err(format!(
            "Policy has not been granted access to the '{path}' host capability. The violation has been reported."
        )));
    }
    let _ = deadline;
    Ok(match call.namespace {
        "oci" | "net" | "crypto" | "kubernetes" => Err(format!(
            "the host capability {path} is not supported by this host yet"
        )),
        other => Err(format!("unknown namespace: {other}")),
    })
}

/// A log event of the SDKs' loggers: a level, a message, and any other fields.
#[derive(Debug, Deserialize)]
struct Event {
    #[serde(default)]
    level: String,
    #[serde(default)]
    message: String,
    #[serde(flatten)]
    fields: BTreeMap<String, serde_json::Value>,
}

/// Writes a guest's log event at its level, attributed to the policy; an event that does not
/// parse is written as it came, at warn.
fn log(policy: &str, payload: &[u8]) {
    let Ok(event) = serde_json::from_slice::<Event>(payload) else {
        tracing::warn!(policy, event = %String::from_utf8_lossy(payload), "the policy logged an event that is not JSON");
        return;
    };
    let fields = serde_json::to_string(&event.fields).unwrap_or_default();
    let message = event.message;
    match event.level.to_ascii_lowercase().as_str() {
        "trace" => tracing::trace!(policy, fields, "{message}"),
        "debug" => tracing::debug!(policy, fields, "{message}"),
        "warning" | "warn" => tracing::warn!(policy, fields, "{message}"),
        "error" => tracing::error!(policy, fields, "{message}"),
        _ => tracing::info!(policy, fields, "{message}"),
    }
}
