//! One HTTP stream through Envoy's filter chain, stage by stage (request headers, body, trailers,
//! upstream, response headers, body, trailers, completion), with what the filter asked for applied
//! when its callback returns, as Envoy defers it: local replies, resets, continue.

use std::sync::Arc;

use crate::header_map::HeaderMap;
use crate::properties::Connection;
use crate::scenario::{Delivered, Exchange, Forwarded, Outcome, RequestReport};
use crate::stream::{LocalReply, Outgoing, Progress, Stage, Stream};
use crate::types::Action;
use crate::vm::Callback;

use super::{Proxy, StreamKey};

/// Why a stream's callback was not made, or did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum CallError {
    /// The stream bypasses the filter (its VM failed under FAIL_OPEN): Envoy goes on as if
    /// the filter were absent.
    #[error("the stream bypasses the filter")]
    Bypassed,
    /// The filter's VM has failed, before or during this call: the stream is on the fail path.
    #[error("the filter's VM has failed")]
    Failed,
    /// The stream has completed and is gone.
    #[error("the stream has completed")]
    Gone,
}

impl Proxy<'_> {
    /// The connection a step names, as the proxy knows it (`None`: the scenario's own): the
    /// same one (and id) for steps that name the same connection, and a new id for a different
    /// connection that reuses an id already taken.
    fn connection(&mut self, wanted: &Connection) -> Option<Arc<Connection>> {
        if *wanted == self.plugin.connection {
            return None;
        }
        if let Some((_, known)) = self.connections.iter().find(|(w, _)| w == wanted) {
            return Some(Arc::clone(known));
        }
        let ids = || {
            self.connections
                .iter()
                .map(|(_, c)| c.id)
                .chain([self.plugin.connection.id])
        };
        let mut connection = wanted.clone();
        if ids().any(|id| id == connection.id) {
            connection.id = ids().max().unwrap_or(0).saturating_add(1);
        }
        let connection = Arc::new(connection);
        self.connections
            .push((wanted.clone(), Arc::clone(&connection)));
        Some(connection)
    }

    /// A new stream arrives on `worker`: its context is created (lazily, as Envoy does at
    /// decodeHeaders) and it goes as far as it can. When the worker has no usable VM the stream
    /// gets no context (id 0) and takes the fail path at once.
    pub(super) fn request(&mut self, exchange: &Exchange, worker: usize) {
        let slot = self.requests.len();
        let name = exchange
            .name
            .clone()
            .unwrap_or_else(|| format!("request {}", slot.saturating_add(1)));
        let r = &exchange.request;
        let mut headers = HeaderMap::default();
        headers.add(":authority", &r.authority);
        headers.add(":path", &r.path);
        headers.add(":method", &r.method);
        headers.add(":scheme", &r.scheme);
        for (k, v) in &exchange.request.headers.0 {
            headers.add(k, v);
        }
        let connection = exchange
            .connection
            .as_ref()
            .and_then(|c| self.connection(c));
        let usable = self.vm_for_request(worker);
        let mut report = RequestReport {
            name,
            worker,
            context: 0,
            outcome: Outcome::Pending,
            upstream: None,
            response: None,
            callbacks: Vec::new(),
            hostcalls: 0,
            callback_time: std::time::Duration::ZERO,
            hostcall_time: std::time::Duration::ZERO,
        };
        self.requests.push(None);
        let now = self.shared.now();
        let Some(w) = self.workers.get_mut(worker) else {
            self.requests.truncate(slot);
            self.requests.push(Some(report));
            return;
        };
        let state = w.vm.store.data_mut();
        let root = state.root;
        let context = if usable { state.allocate_context() } else { 0 };
        report.context = context;
        let progress = Progress::new(slot, report, exchange.clone(), headers.clone());
        let mut stream = Stream::new(headers, r.protocol.clone(), now, progress);
        stream.connection = connection;
        stream.route = r.route.clone();
        state.streams.insert(context, stream);
        let key = StreamKey { worker, context };
        if !usable {
            self.fail_stream(key);
            return;
        }
        // Envoy creates the stream's context lazily, at decodeHeaders.
        if self
            .call(key, Callback::ContextCreate, &[root.cast_signed()])
            .is_ok()
        {
            self.pump(key);
        }
    }

    /// Calls the module for a stream, records the callback and its hostcalls in the stream's
    /// report, then settles the worker (or fails it).
    pub(super) fn call(
        &mut self,
        key: StreamKey,
        callback: Callback,
        args: &[i32],
    ) -> Result<Option<i32>, CallError> {
        let Some(stream) = self.stream_mut(key) else {
            return Err(CallError::Gone);
        };
        if stream.progress.bypass {
            return Err(CallError::Bypassed);
        }
        let generation = self.generation(key.worker);
        let Some(vm) = self.live_vm(key.worker, generation) else {
            self.fail_stream(key);
            return Err(CallError::Failed);
        };
        let before = vm.store.data().hostcalls;
        let host_before = vm.store.data().hostcall_time;
        let started = std::time::Instant::now();
        let result = vm.call(callback, key.context, args);
        let elapsed = started.elapsed();
        let spent = vm.store.data().hostcalls.saturating_sub(before);
        let host_spent = vm.store.data().hostcall_time.saturating_sub(host_before);
        let shown: Vec<String> = std::iter::once(key.context.to_string())
            .chain(args.iter().map(ToString::to_string))
            .collect();
        let name = format!("{}({})", callback.name(), shown.join(", "));
        if let Some(stream) = self.stream_mut(key) {
            let progress = &mut stream.progress;
            progress.report.callbacks.push(name);
            progress.report.hostcalls = progress.report.hostcalls.saturating_add(spent);
            progress.report.callback_time = progress.report.callback_time.saturating_add(elapsed);
            progress.report.hostcall_time =
                progress.report.hostcall_time.saturating_add(host_spent);
            progress.busy = true;
        }
        let now = self.shared.now();
        match result {
            Ok(value) => {
                self.settle(key.worker, now);
                if let Some(stream) = self.stream_mut(key) {
                    stream.progress.busy = false;
                }
                Ok(value)
            }
            Err(error) => {
                if let Some(stream) = self.stream_mut(key) {
                    stream.progress.busy = false;
                }
                self.fail_worker(key.worker, &error, now);
                Err(CallError::Failed)
            }
        }
    }

    /// Applies what the module asked for during the last callbacks (deferred by Envoy): a local
    /// reply, a reset, or continuing a paused direction. Returns whether the stream can move.
    pub(super) fn take_actions(&mut self, key: StreamKey) -> bool {
        let Some(stream) = self.stream_mut(key) else {
            return false;
        };
        let reply = stream.local_reply.take();
        let reset = std::mem::take(&mut stream.reset);
        let resume_request = std::mem::take(&mut stream.continue_request);
        let resume_response = std::mem::take(&mut stream.continue_response);
        let progress = &mut stream.progress;
        if reset {
            progress.outcome = Some(Outcome::Reset);
            progress.stage = Stage::Complete;
            progress.paused = false;
            progress.outgoing = None;
            return true;
        }
        if let Some(reply) = reply {
            let grpc = is_grpc_request(&stream.request_headers);
            let progress = &mut stream.progress;
            start_local_reply(progress, reply, grpc);
            stream.live_request_headers = false;
            stream.live_request_body = false;
            stream.live_request_trailers = false;
            return true;
        }
        let in_request = progress.stage.in_request();
        if progress.paused && ((in_request && resume_request) || (!in_request && resume_response)) {
            progress.paused = false;
            if progress.stage == Stage::RequestBody && progress.chunk == 0 {
                // Resuming after StopAllIteration on headers: Envoy delivers the data it
                // buffered meanwhile in one call.
                progress.coalesce = true;
            }
            if progress.buffering {
                progress.buffering = false;
                forward_buffer(stream);
            }
            return true;
        }
        false
    }

    /// Moves a stream forward until it pauses or completes.
    pub(super) fn pump(&mut self, key: StreamKey) {
        loop {
            let Some(stream) = self.stream_mut(key) else {
                return;
            };
            let progress = &stream.progress;
            if progress.finished || progress.paused || progress.busy {
                return;
            }
            match progress.stage {
                Stage::RequestHeaders => self.headers_stage(key, true),
                Stage::RequestBody => self.body_stage(key, true),
                Stage::RequestTrailers => self.trailers_stage(key, true),
                Stage::Upstream => self.upstream_stage(key),
                Stage::ResponseHeaders => self.headers_stage(key, false),
                Stage::ResponseBody => self.body_stage(key, false),
                Stage::ResponseTrailers => self.trailers_stage(key, false),
                Stage::Complete => {
                    self.complete(key);
                    return;
                }
            }
        }
    }

    /// Interprets a callback's result: the fail path, deferred actions, then the action.
    fn step(&mut self, key: StreamKey, result: Result<Option<i32>, CallError>, next: Stage) {
        let Ok(value) = result else {
            // Bypassed (fail-open: move on as if the filter were absent) or failed (the stream
            // was redirected to the 503).
            if let Some(stream) = self.stream_mut(key) {
                let progress = &mut stream.progress;
                if progress.outcome == Some(Outcome::FailOpen) && progress.stage != Stage::Complete
                {
                    progress.stage = next;
                }
            }
            return;
        };
        if self.take_actions(key) {
            return;
        }
        let action = value.map_or(Action::Continue, Action::from_raw);
        let Some(stream) = self.stream_mut(key) else {
            return;
        };
        stream.progress.stage = next;
        if action == Action::Pause {
            stream.progress.paused = true;
        }
    }

    fn headers_stage(&mut self, key: StreamKey, request: bool) {
        let Some(stream) = self.stream_mut(key) else {
            return;
        };
        stream.progress.chunk = 0;
        let eos;
        if request {
            let r = &stream.progress.exchange.request;
            eos = r.body.0.is_empty() && r.trailers.is_none();
            stream.live_request_headers = true;
        } else {
            let Some(out) = &stream.progress.outgoing else {
                stream.progress.stage = Stage::Complete;
                return;
            };
            eos = out.body.is_empty() && out.trailers.is_none();
            let mut headers = HeaderMap::default();
            headers.add(":status", &out.status.to_string());
            for (k, v) in &out.headers {
                headers.add(k, v);
            }
            stream.response_code_details = Some(out.details.clone());
            stream.response_headers = headers;
            stream.live_response_headers = true;
        }
        let count = if request {
            stream.request_headers.len()
        } else {
            stream.response_headers.len()
        };
        let bypass = stream.progress.bypass;
        let callback = if request {
            Callback::RequestHeaders
        } else {
            Callback::ResponseHeaders
        };
        // A bypassed stream (fail-open) is not called: `call` answers Err.
        let result = self.call(key, callback, &[abi_count(count), i32::from(eos)]);
        let next = if request {
            Stage::RequestBody
        } else {
            Stage::ResponseBody
        };
        if bypass {
            if let Some(stream) = self.stream_mut(key) {
                stream.progress.stage = next;
            }
            return;
        }
        let continued = matches!(result, Ok(None | Some(0)));
        self.step(key, result, next);
        if continued && let Some(stream) = self.stream_mut(key) {
            // Envoy drops its pointer to the headers once the filter continues.
            if request {
                stream.live_request_headers = false;
            } else {
                stream.live_response_headers = false;
            }
        }
    }

    fn body_stage(&mut self, key: StreamKey, request: bool) {
        let Some(stream) = self.stream_mut(key) else {
            return;
        };
        let progress = &mut stream.progress;
        let (chunks, has_trailers) = if request {
            (
                progress.exchange.request.body.0.clone(),
                progress.exchange.request.trailers.is_some(),
            )
        } else {
            match &progress.outgoing {
                Some(out) => (out.body.clone(), out.trailers.is_some()),
                None => (Vec::new(), false),
            }
        };
        let next = if request {
            Stage::RequestTrailers
        } else {
            Stage::ResponseTrailers
        };
        if progress.chunk >= chunks.len() {
            progress.stage = next;
            return;
        }
        let (chunk, last) = if progress.coalesce {
            let rest = chunks.get(progress.chunk..).unwrap_or_default().concat();
            progress.chunk = chunks.len();
            progress.coalesce = false;
            (rest, true)
        } else {
            let c = chunks.get(progress.chunk).cloned().unwrap_or_default();
            progress.chunk = progress.chunk.saturating_add(1);
            (c, progress.chunk >= chunks.len())
        };
        let eos = last && !has_trailers;
        let buffering = progress.buffering;
        let body = if request {
            &mut stream.request_body
        } else {
            &mut stream.response_body
        };
        if !buffering {
            body.clear();
        }
        body.extend_from_slice(chunk.as_bytes());
        let size = body.len();
        if request {
            stream.live_request_body = true;
            stream.may_add_request_trailers = eos;
        } else {
            stream.live_response_body = true;
            stream.may_add_response_trailers = eos;
        }
        let callback = if request {
            Callback::RequestBody
        } else {
            Callback::ResponseBody
        };
        // A bypassed stream (fail-open) is not called: `call` answers Err.
        let result = self.call(key, callback, &[abi_count(size), i32::from(eos)]);
        if let Some(stream) = self.stream_mut(key) {
            stream.may_add_request_trailers = false;
            stream.may_add_response_trailers = false;
        }
        match result {
            Ok(value) => {
                if self.take_actions(key) {
                    return;
                }
                let Some(stream) = self.stream_mut(key) else {
                    return;
                };
                let action = value.map_or(Action::Continue, Action::from_raw);
                if action == Action::Continue {
                    forward_buffer(stream);
                    stream.progress.buffering = false;
                } else {
                    // StopIterationAndBuffer: Envoy keeps the data and shows it again, with the
                    // next chunk, in the next call; at the end of the stream it waits for
                    // continue. Trailers still reach the filter (only StopAll stops them), and
                    // continuing from them lets the held body go.
                    stream.progress.buffering = true;
                    if eos {
                        stream.progress.paused = true;
                    }
                }
                if last {
                    stream.progress.stage = next;
                }
                if request {
                    stream.live_request_body = stream.live_request_body && !last;
                } else {
                    stream.live_response_body = stream.live_response_body && !last;
                }
            }
            Err(_) => {
                let Some(stream) = self.stream_mut(key) else {
                    return;
                };
                if stream.progress.outcome == Some(Outcome::FailOpen) {
                    forward_buffer(stream);
                    if last {
                        stream.progress.stage = next;
                    }
                }
            }
        }
    }

    fn trailers_stage(&mut self, key: StreamKey, request: bool) {
        let Some(stream) = self.stream_mut(key) else {
            return;
        };
        let progress = &mut stream.progress;
        let trailers = if request {
            progress.exchange.request.trailers.clone().map(|t| t.0)
        } else {
            progress.outgoing.as_ref().and_then(|o| o.trailers.clone())
        };
        let bypass = progress.bypass;
        let next = if request {
            Stage::Upstream
        } else {
            Stage::Complete
        };
        let Some(trailers) = trailers else {
            progress.stage = next;
            return;
        };
        let map = HeaderMap::from_pairs(trailers);
        let count = map.len();
        // The trailers are handed to the filter's maps; a stream that never got a context (its
        // VM had failed when it arrived) has no filter to hand them to.
        if key.context != 0 {
            if request {
                stream.request_trailers = map;
                stream.live_request_trailers = true;
            } else {
                stream.response_trailers = map;
                stream.live_response_trailers = true;
            }
        }
        let callback = if request {
            Callback::RequestTrailers
        } else {
            Callback::ResponseTrailers
        };
        let result = self.call(key, callback, &[abi_count(count)]);
        if bypass {
            if let Some(stream) = self.stream_mut(key) {
                stream.progress.stage = next;
            }
            return;
        }
        let continued = matches!(result, Ok(None | Some(0)));
        self.step(key, result, next);
        // Continuing from the trailers continues the body the filter held (Envoy's
        // commonContinue sends the buffered data before the trailers).
        if continued
            && let Some(stream) = self.stream_mut(key)
            && stream.progress.buffering
            && stream.progress.stage == next
            && !stream.progress.paused
        {
            stream.progress.buffering = false;
            forward_buffer(stream);
        }
    }

    /// The request reaches the upstream: record what it got, then take its response.
    fn upstream_stage(&mut self, key: StreamKey) {
        let Some(stream) = self.stream_mut(key) else {
            return;
        };
        let progress = &mut stream.progress;
        let (added, removed) = diff(&progress.original, &stream.request_headers);
        let forwarded = Forwarded {
            headers_added: added,
            headers_removed: removed,
            body: String::from_utf8_lossy(&progress.forwarded_body).into_owned(),
            trailers: stream.request_trailers.clone(),
        };
        if progress.outcome.is_none() {
            progress.outcome = Some(Outcome::Upstream);
        }
        let response = &progress.exchange.response;
        progress.outgoing = Some(Outgoing {
            status: response.status,
            details: "via_upstream".into(),
            headers: response.headers.0.clone(),
            body: response.body.0.clone(),
            trailers: response.trailers.clone().map(|t| t.0),
        });
        progress.stage = Stage::ResponseHeaders;
        progress.report.upstream = Some(forwarded);
    }

    /// The stream ends: the client has its response; Envoy then logs (`proxy_on_log`) and
    /// destroys the filter (`proxy_on_done`, `proxy_on_delete`), and the stream leaves its VM's
    /// table with its report filed.
    fn complete(&mut self, key: StreamKey) {
        let Some(stream) = self.stream_mut(key) else {
            return;
        };
        stream.access_log = true;
        let progress = &mut stream.progress;
        progress.finished = true;
        let outcome = progress.outcome.unwrap_or(Outcome::Upstream);
        let bypass = progress.bypass;
        let delivered = progress.outgoing.as_ref().map(|out| {
            let (headers, trailers) = if bypass {
                let mut h = HeaderMap::default();
                h.add(":status", &out.status.to_string());
                for (k, v) in &out.headers {
                    h.add(k, v);
                }
                (
                    h,
                    HeaderMap::from_pairs(out.trailers.clone().unwrap_or_default()),
                )
            } else {
                (
                    stream.response_headers.clone(),
                    stream.response_trailers.clone(),
                )
            };
            let status = headers
                .get(":status")
                .and_then(|s| s.parse().ok())
                .unwrap_or(out.status);
            Delivered {
                status,
                details: out.details.clone(),
                headers: HeaderMap(
                    headers
                        .0
                        .into_iter()
                        .filter(|(k, _)| !k.starts_with(':'))
                        .collect(),
                ),
                body: String::from_utf8_lossy(&progress.delivered_body).into_owned(),
                trailers,
            }
        });
        progress.report.outcome = outcome;
        progress.report.response = delivered;
        if !bypass {
            let _ = self.call(key, Callback::Log, &[]);
            let _ = self.call(key, Callback::Done, &[]);
            let _ = self.call(key, Callback::Delete, &[]);
        }
        let removed = self
            .workers
            .get_mut(key.worker)
            .and_then(|w| w.vm.store.data_mut().streams.remove(&key.context));
        if let Some(stream) = removed {
            self.file(stream);
        }
    }
}

/// Hands the body bytes held for the filter on: upstream in the request direction, to the
/// client in the response direction.
fn forward_buffer(stream: &mut Stream) {
    let progress = &mut stream.progress;
    if progress.stage.in_request() {
        progress
            .forwarded_body
            .extend(std::mem::take(&mut stream.request_body));
    } else {
        progress
            .delivered_body
            .extend(std::mem::take(&mut stream.response_body));
    }
}

/// Whether a request is gRPC as Envoy's connection manager tells (`Grpc::Common::
/// isGrpcRequestHeaders`): its content-type is `application/grpc`, alone or with a `+` suffix
/// or parameters.
fn is_grpc_request(headers: &HeaderMap) -> bool {
    headers.get("content-type").is_some_and(|value| {
        value
            .strip_prefix("application/grpc")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['+', ';']))
    })
}

/// gRPC's status for an HTTP status (Envoy's `Grpc::Utility::httpToGrpcStatus`, after
/// grpc/grpc `doc/http-grpc-status-mapping.md`).
fn http_to_grpc_status(status: u32) -> u32 {
    match status {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502 | 503 | 504 => 14,
        _ => 2,
    }
}

/// A `grpc-message` value: bytes outside printable ASCII, and `%`, as `%XX` (Envoy's
/// `PercentEncoding::encode`).
fn percent_encode(text: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(text.len());
    for &b in text {
        if (b' '..=b'~').contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Switches a stream to sending a local reply (Envoy's `sendLocalReply`): the filter's own
/// response callbacks still see it. With a body it has a `content-length` and, unless the filter
/// gave a content-type, `content-type: text/plain`; without one, neither. To a gRPC request it is a trailers-only gRPC response, as
/// Envoy's `Utility::encodeLocalReply` makes it: status 200, `content-type: application/grpc`,
/// `grpc-status` (a header the filter set, else the filter's gRPC status, else the HTTP
/// status mapped), the body as a percent-encoded `grpc-message`, no body. A gRPC status given
/// for any other request is not used.
fn start_local_reply(progress: &mut Progress, reply: LocalReply, grpc: bool) {
    let mut headers = Vec::new();
    let mut status = u16::try_from(reply.status).unwrap_or(500);
    let mut body = reply.body;
    if grpc {
        headers.extend(reply.headers);
        headers.retain(|(name, _)| name != "content-type" && name != "content-length");
        headers.push(("content-type".to_owned(), "application/grpc".to_owned()));
        if !headers.iter().any(|(name, _)| name == "grpc-status") {
            let code = reply
                .grpc_status
                .unwrap_or_else(|| http_to_grpc_status(reply.status));
            headers.push(("grpc-status".to_owned(), code.to_string()));
        }
        if !body.is_empty() {
            headers.push(("grpc-message".to_owned(), percent_encode(&body)));
        }
        status = 200;
        body = Vec::new();
    } else {
        // Envoy sets `content-type: text/plain` only when the filter's headers have none,
        // and a reply without a body has neither a content-type nor a content-length
        // (`Utility::encodeLocalReply`, envoyproxy/envoy `source/common/http/utility.cc`).
        let typed = reply.headers.iter().any(|(name, _)| name == "content-type");
        if !body.is_empty() {
            headers.push(("content-length".to_owned(), body.len().to_string()));
            if !typed {
                headers.push(("content-type".to_owned(), "text/plain".to_owned()));
            }
        }
        headers.extend(reply.headers.into_iter().filter(|(name, _)| {
            !body.is_empty() || (name != "content-type" && name != "content-length")
        }));
    }
    progress.outcome = Some(Outcome::LocalReply);
    progress.stage = Stage::ResponseHeaders;
    progress.paused = false;
    progress.buffering = false;
    progress.chunk = 0;
    progress.outgoing = Some(Outgoing {
        status,
        details: reply.details,
        headers,
        body: if body.is_empty() {
            Vec::new()
        } else {
            vec![String::from_utf8_lossy(&body).into_owned()]
        },
        trailers: None,
    });
}

/// A count or size as the ABI's i32 argument.
fn abi_count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Header pairs, in order.
type Pairs = Vec<(String, String)>;

/// Header pairs added and removed between two maps (as multisets, order kept).
fn diff(before: &HeaderMap, after: &HeaderMap) -> (Pairs, Pairs) {
    let mut removed = before.0.clone();
    let mut added = Vec::new();
    for pair in &after.0 {
        match removed.iter().position(|p| p == pair) {
            Some(at) => {
                removed.remove(at);
            }
            None => added.push(pair.clone()),
        }
    }
    (added, removed)
}
