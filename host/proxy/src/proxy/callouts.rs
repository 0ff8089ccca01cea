//! Callouts from the proxy's side: answered by the scenario's cluster of that name (answers in
//! order, the last repeating) after their delay or at the call's timeout, delivered to the root
//! context of the VM that made the call, as Envoy does (the SDK routes them to the stream).

use std::time::Duration;

use super::Proxy;
use super::events::Event;
use crate::header_map::HeaderMap;
use crate::scenario::{CalloutReply, CalloutReport};
use crate::state::{Callout, CalloutKind};
use crate::vm::Callback;

/// gRPC status and message for an expired call timeout (DEADLINE_EXCEEDED).
const GRPC_TIMEOUT: (u32, &str) = (4, "upstream request timeout");
/// gRPC status and message for a reset connection (UNAVAILABLE).
const GRPC_RESET: (u32, &str) = (
    14,
    "upstream connect error or disconnect/reset before headers",
);
/// `proxy_get_status` after an HTTP call whose connection reset: Envoy's `Reset` failure reason.
const HTTP_RESET: (u32, &str) = (11, "reset");

impl Proxy<'_> {
    /// Takes each new callout's answer from its cluster, reports the callout and schedules the
    /// answer's delivery.
    pub(super) fn answer_callouts(
        &mut self,
        worker: usize,
        generation: u64,
        now: u64,
        callouts: Vec<Callout>,
    ) {
        for callout in callouts {
            let replies = self
                .clusters
                .get(&callout.cluster)
                .cloned()
                .unwrap_or_default();
            let at = self.cursor.entry(callout.cluster.clone()).or_default();
            let reply = replies
                .get(*at)
                .or_else(|| replies.last())
                .cloned()
                .unwrap_or_else(|| CalloutReply {
                    status: 200,
                    headers: Default::default(),
                    body: String::new(),
                    body_base64: None,
                    trailers: Default::default(),
                    grpc_status: 0,
                    grpc_message: String::new(),
                    delay: Duration::ZERO,
                    reset: false,
                });
            *at = at.saturating_add(1);
            let delay = u64::try_from(reply.delay.as_nanos()).unwrap_or(u64::MAX);
            let timeout = callout.timeout_ms.saturating_mul(1_000_000);
            let timed_out = timeout > 0 && delay > timeout;
            let due = now.saturating_add(if timed_out { timeout } else { delay });
            self.report.callouts.push(CalloutReport {
                worker,
                kind: match &callout.kind {
                    CalloutKind::Http => "http".into(),
                    CalloutKind::Grpc { service, method } => format!("grpc {service}/{method}"),
                },
                cluster: callout.cluster.clone(),
                headers: HeaderMap::from_pairs(callout.headers.clone()),
                body: String::from_utf8_lossy(&callout.body).into_owned(),
                timeout_ms: callout.timeout_ms,
            });
            self.schedule(
                due,
                Event::Callout {
                    worker,
                    generation,
                    token: callout.token,
                    kind: callout.kind,
                    reply,
                    timed_out,
                },
            );
        }
    }

    /// Delivers a callout's answer to the root context that owns it, unless the VM was
    /// replaced or failed, or the module cancelled the call meanwhile.
    pub(super) fn deliver(
        &mut self,
        worker: usize,
        generation: u64,
        token: u32,
        kind: &CalloutKind,
        reply: &CalloutReply,
        timed_out: bool,
    ) {
        let Some(vm) = self.live_vm(worker, generation) else {
            return;
        };
        let state = vm.store.data_mut();
        let root = state.root;
        if state.pending.remove(&token).is_none() {
            // Cancelled meanwhile.
            return;
        }
        let token_arg = token.cast_signed();
        let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        let result = match kind {
            CalloutKind::Http => {
                let (headers, body, trailers, status) = if reply.reset {
                    (None, Vec::new(), None, status(HTTP_RESET))
                } else if timed_out {
                    // Envoy's async client turns an expired timeout into a local 504.
                    let mut h = HeaderMap::default();
                    h.add(":status", "504");
                    h.add("content-length", "24");
                    h.add("content-type", "text/plain");
                    (
                        Some(h),
                        b"upstream request timeout".to_vec(),
                        Some(HeaderMap::default()),
                        (0, String::new()),
                    )
                } else {
                    let mut h = HeaderMap::default();
                    h.add(":status", &reply.status.to_string());
                    for (k, v) in &reply.headers.0 {
                        h.add(k, v);
                    }
                    let t = HeaderMap::from_pairs(reply.trailers.0.clone());
                    (Some(h), reply.body_bytes(), Some(t), (0, String::new()))
                };
                let args = [
                    token_arg,
                    count(headers.as_ref().map_or(0, HeaderMap::len)),
                    count(body.len()),
                    count(trailers.as_ref().map_or(0, HeaderMap::len)),
                ];
                state.answer.headers = headers;
                state.answer.trailers = trailers;
                state.answer.body = Some(body);
                state.status = status;
                vm.call(Callback::HttpCallResponse, root, &args)
            }
            CalloutKind::Grpc { .. } => {
                if timed_out || reply.reset || reply.grpc_status != 0 {
                    let (code, message) = if timed_out {
                        status(GRPC_TIMEOUT)
                    } else if reply.reset {
                        status(GRPC_RESET)
                    } else {
                        (reply.grpc_status, reply.grpc_message.clone())
                    };
                    state.status = (code, message);
                    vm.call(Callback::GrpcClose, root, &[token_arg, code.cast_signed()])
                } else {
                    let message = reply.body_bytes();
                    let size = count(message.len());
                    state.answer.body = Some(message);
                    state.status = (0, String::new());
                    vm.call(Callback::GrpcReceive, root, &[token_arg, size])
                }
            }
        };
        let state = vm.store.data_mut();
        state.answer = Default::default();
        state.status = (0, String::new());
        let now = self.shared.now();
        self.after(worker, result.err(), now);
    }
}

/// A `proxy_get_status` answer.
fn status((code, message): (u32, &str)) -> (u32, String) {
    (code, message.to_owned())
}
