//! The HTTP context: runs the actions named by `x-probe-actions` on request headers and the
//! per-direction effects they switch on for the body, trailer and response callbacks.

use std::hint::black_box;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, Bytes, LogLevel, MapType, Status};

use crate::root::{Parked, Runtime};
use crate::shared::{
    COUNT_KEY, Counted, Kind, MAX_CAS_RETRIES, TICKS_KEY, cas_increment, read_counter,
    render_property, status_code, try_store,
};

/// Request header that selects the actions.
const ACTIONS_HEADER: &str = "x-probe-actions";
/// Name and wire encoding of every property the `props` action reads, in order.
const PROPERTIES: &[(&[&str], Kind)] = &[
    (&["source", "address"], Kind::Str),
    (&["source", "port"], Kind::Int),
    (&["destination", "address"], Kind::Str),
    (&["destination", "port"], Kind::Int),
    (&["connection", "mtls"], Kind::Bool),
    (&["connection", "uri_san_peer_certificate"], Kind::Str),
    (&["connection", "requested_server_name"], Kind::Str),
    (&["request", "path"], Kind::Str),
    (&["request", "method"], Kind::Str),
    (&["request", "host"], Kind::Str),
    (&["request", "scheme"], Kind::Str),
    (&["request", "protocol"], Kind::Str),
    (&["request", "id"], Kind::Str),
    (&["plugin_name"], Kind::Str),
    (&["plugin_root_id"], Kind::Str),
    (&["plugin_vm_id"], Kind::Str),
    (&["node", "metadata", "NAMESPACE"], Kind::Str),
    (&["response", "code"], Kind::Int),
];
/// Block size and page stride of the `grow` action.
const MIB: usize = 1 << 20;
const PAGE: usize = 1 << 16;

/// One action of `x-probe-actions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Count,
    CountRace,
    Props,
    Deny,
    Callout,
    Grpc,
    Enqueue,
    Metrics,
    BodyUpper,
    RespHeaders,
    RespBody,
    Trailers,
    Panic,
    Loop,
    Grow,
    SetProperty,
    LogLevels,
    Ticks,
    Foreign,
    Headers,
    StopIterationBody,
    ContinueLater,
}

impl Step {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "count" => Self::Count,
            "count-race" => Self::CountRace,
            "props" => Self::Props,
            "deny" => Self::Deny,
            "callout" => Self::Callout,
            "grpc" => Self::Grpc,
            "enqueue" => Self::Enqueue,
            "metrics" => Self::Metrics,
            "body-upper" => Self::BodyUpper,
            "resp-headers" => Self::RespHeaders,
            "resp-body" => Self::RespBody,
            "trailers" => Self::Trailers,
            "panic" => Self::Panic,
            "loop" => Self::Loop,
            "grow" => Self::Grow,
            "set-property" => Self::SetProperty,
            "log-levels" => Self::LogLevels,
            "ticks" => Self::Ticks,
            "foreign" => Self::Foreign,
            "headers" => Self::Headers,
            "stop-iteration-body" => Self::StopIterationBody,
            "continue-later" => Self::ContinueLater,
            _ => return None,
        })
    }
}

/// What running one action means for the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// Nothing to wait for.
    Continue,
    /// The request waits (callout, tick).
    Pause,
    /// A local reply was sent: pause and run no further action.
    Stop,
}

/// Effects switched on for the later callbacks of the stream.
#[derive(Debug, Default, Clone, Copy)]
struct Effects {
    body_upper: bool,
    buffer_body: bool,
    resp_headers: bool,
    resp_body: bool,
    trailers: bool,
    metrics_ran: bool,
}

/// A callout in flight, by token. `Token` is a call of `callout-tokens`, whose answer only
/// counts.
#[derive(Debug, Clone, Copy)]
enum Call {
    Callout,
    CountRace { value: u64, cas: Option<u32> },
    Grpc,
    Token,
}

/// The HTTP context.
pub(crate) struct ProbeHttp {
    context_id: u32,
    runtime: Rc<Runtime>,
    parked: Parked,
    effects: Effects,
    calls: Vec<(u32, Call)>,
    replied: bool,
}

fn request_header(name: &str) -> Option<Bytes> {
    match hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, name) {
        Ok(value) => value,
        Err(status) => {
            log::warn!(
                "reading request header {name} failed: {}",
                status_code(status)
            );
            None
        }
    }
}

fn add_header(map: MapType, name: &str, value: &[u8]) {
    if let Err(status) = hostcalls::add_map_value_bytes(map, name, value) {
        log::warn!("adding header {name} failed: {}", status_code(status));
    }
}

pub(crate) fn add_request_header(name: &str, value: &[u8]) {
    add_header(MapType::HttpRequestHeaders, name, value);
}

fn error_text(status: Status) -> String {
    format!("error:{}", status_code(status))
}

/// Logs the status a failed call left behind (`proxy_get_status`).
fn log_call_status(what: &str) {
    match hostcalls::get_grpc_status() {
        Ok((code, message)) => log::info!(
            "{what}: status {code} {}",
            message.as_deref().unwrap_or_default()
        ),
        Err(status) => log::warn!("get_status failed: {}", status_code(status)),
    }
}

fn add_count_headers(counted: Result<Counted, Status>, extra_retries: u32) {
    let (value, retries) = match counted {
        Ok(Counted::Done { value, retries }) => (value.to_string(), retries),
        Ok(Counted::GaveUp) => ("gave-up".to_owned(), MAX_CAS_RETRIES),
        Err(status) => (error_text(status), 0),
    };
    add_request_header("x-probe-count", value.as_bytes());
    let retries = retries.saturating_add(extra_retries).to_string();
    add_request_header("x-probe-cas-retries", retries.as_bytes());
}

#[expect(
    clippy::panic,
    reason = "trapping on request is what the `panic` action is for"
)]
fn trap() -> ! {
    panic!("probe panic on request")
}

/// Appended to the response body by `resp-body`.
const RESPONSE_SUFFIX: &[u8] = b"\n-- probed";

fn spin() -> ! {
    let mut turns: u64 = 0;
    loop {
        turns = black_box(turns.wrapping_add(1));
    }
}

fn grow() -> ! {
    let mut kept: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0_u8; MIB];
        block.iter_mut().step_by(PAGE).for_each(|byte| *byte = 1);
        kept.push(black_box(block));
        black_box(&kept);
    }
}

impl ProbeHttp {
    pub(crate) fn new(context_id: u32, runtime: Rc<Runtime>, parked: Parked) -> Self {
        Self {
            context_id,
            runtime,
            parked,
            effects: Effects::default(),
            calls: Vec::new(),
            replied: false,
        }
    }

    fn local_reply(&mut self, code: u32, headers: Vec<(&str, &str)>, body: &[u8]) {
        self.replied = true;
        if let Err(status) = hostcalls::send_http_response(code, headers, Some(body)) {
            log::warn!("send_local_response failed: {}", status_code(status));
        }
    }

    /// Resumes the request once no callout is in flight, unless a local reply was sent.
    fn resume_when_idle(&self) {
        if self.calls.is_empty()
            && !self.replied
            && let Err(status) = hostcalls::resume_http_request()
        {
            log::warn!("resume failed: {}", status_code(status));
        }
    }

    fn take_call(&mut self, token: u32) -> Option<Call> {
        let index = self.calls.iter().position(|(t, _)| *t == token)?;
        Some(self.calls.swap_remove(index).1)
    }

    fn unpark(&self) {
        let mut parked = self.parked.take();
        parked.retain(|id| *id != self.context_id);
        self.parked.set(parked);
    }

    fn run(&mut self, step: Step) -> Flow {
        match step {
            Step::Count => {
                add_count_headers(cas_increment(COUNT_KEY), 0);
                Flow::Continue
            }
            Step::CountRace => self.count_race(),
            Step::Props => {
                for (path, kind) in PROPERTIES {
                    let answer = hostcalls::get_property(path.to_vec());
                    let name = format!("x-prop-{}", path.join("."));
                    add_request_header(&name, &render_property(*kind, answer));
                }
                Flow::Continue
            }
            Step::Deny => {
                self.local_reply(403, vec![("x-probe", "denied")], b"denied by probe\n");
                Flow::Stop
            }
            Step::Callout => self.callout(),
            Step::Grpc => self.grpc(),
            Step::Enqueue => {
                let outcome = match hostcalls::resolve_shared_queue("", "probe") {
                    Ok(Some(queue)) => {
                        let path = request_header(":path").unwrap_or_default();
                        match hostcalls::enqueue_shared_queue(queue, Some(&path)) {
                            Ok(()) => "yes".to_owned(),
                            Err(status) => error_text(status),
                        }
                    }
                    Ok(None) => "no-queue".to_owned(),
                    Err(status) => error_text(status),
                };
                add_request_header("x-probe-enqueued", outcome.as_bytes());
                Flow::Continue
            }
            Step::Metrics => {
                self.metrics();
                Flow::Continue
            }
            Step::BodyUpper => {
                self.effects.body_upper = true;
                Flow::Continue
            }
            Step::RespHeaders => {
                self.effects.resp_headers = true;
                Flow::Continue
            }
            Step::RespBody => {
                self.effects.resp_body = true;
                Flow::Continue
            }
            Step::Trailers => {
                self.effects.trailers = true;
                Flow::Continue
            }
            Step::Panic => trap(),
            Step::Loop => spin(),
            Step::Grow => grow(),
            Step::SetProperty => {
                let path = vec!["probe", "mark"];
                if let Err(status) = hostcalls::set_property(path.clone(), Some(b"marked")) {
                    log::warn!("set_property failed: {}", status_code(status));
                }
                let mark = render_property(Kind::Str, hostcalls::get_property(path));
                add_request_header("x-probe-mark", &mark);
                Flow::Continue
            }
            Step::LogLevels => {
                log::trace!("level trace");
                log::debug!("level debug");
                log::info!("level info");
                log::warn!("level warn");
                log::error!("level error");
                // The `log` crate has no level above error; the SDK's own hostcall has.
                if let Err(status) = hostcalls::log(LogLevel::Critical, "level critical") {
                    log::warn!("critical log failed: {}", status_code(status));
                }
                Flow::Continue
            }
            Step::Ticks => {
                let ticks = match hostcalls::get_shared_data(TICKS_KEY) {
                    Ok((Some(value), _)) if !value.is_empty() => value,
                    Ok(_) => b"0".to_vec(),
                    Err(status) => error_text(status).into_bytes(),
                };
                add_request_header("x-probe-ticks", &ticks);
                Flow::Continue
            }
            Step::Foreign => {
                let outcome = match hostcalls::call_foreign_function("palisade_unknown", None) {
                    Ok(_) => "ok".to_owned(),
                    Err(Status::NotFound) => "not-found".to_owned(),
                    Err(status) => error_text(status),
                };
                add_request_header("x-probe-foreign", outcome.as_bytes());
                Flow::Continue
            }
            Step::Headers => {
                self.headers();
                Flow::Continue
            }
            Step::StopIterationBody => {
                self.effects.buffer_body = true;
                Flow::Continue
            }
            Step::ContinueLater => {
                let mut parked = self.parked.take();
                if !parked.contains(&self.context_id) {
                    parked.push(self.context_id);
                }
                self.parked.set(parked);
                Flow::Pause
            }
        }
    }

    fn count_race(&mut self) -> Flow {
        let (value, cas) = match read_counter(COUNT_KEY) {
            Ok(read) => read,
            Err(status) => {
                add_count_headers(Err(status), 0);
                return Flow::Continue;
            }
        };
        let cluster = self.runtime.http_cluster.clone();
        let headers = vec![
            (":method", "GET"),
            (":path", "/delay"),
            (":authority", cluster.as_str()),
        ];
        match hostcalls::dispatch_http_call(&cluster, headers, None, vec![], Duration::from_secs(5))
        {
            Ok(token) => {
                self.calls.push((token, Call::CountRace { value, cas }));
                Flow::Pause
            }
            Err(status) => {
                log::warn!("http call failed: {}", status_code(status));
                add_count_headers(cas_increment(COUNT_KEY), 0);
                Flow::Continue
            }
        }
    }

    fn count_race_done(value: u64, cas: Option<u32>) {
        match try_store(COUNT_KEY, value, cas) {
            Ok(true) => add_count_headers(
                Ok(Counted::Done {
                    value: value.saturating_add(1),
                    retries: 0,
                }),
                0,
            ),
            Ok(false) => {
                log::info!("cas mismatch, retrying");
                add_count_headers(cas_increment(COUNT_KEY), 1);
            }
            Err(status) => add_count_headers(Err(status), 0),
        }
    }

    fn callout(&mut self) -> Flow {
        let path = request_header(":path").unwrap_or_default();
        let original = String::from_utf8_lossy(&path).into_owned();
        let cluster = self.runtime.http_cluster.clone();
        let headers = vec![
            (":method", "POST"),
            (":path", "/check"),
            (":authority", cluster.as_str()),
            ("x-original-path", original.as_str()),
        ];
        let timeout = Duration::from_millis(1000);
        match hostcalls::dispatch_http_call(&cluster, headers, Some(&path), vec![], timeout) {
            Ok(token) => {
                self.calls.push((token, Call::Callout));
                Flow::Pause
            }
            Err(status) => {
                log::warn!("http call failed: {}", status_code(status));
                self.local_reply(503, vec![], b"callout failed\n");
                Flow::Stop
            }
        }
    }

    fn callout_done(&mut self, num_headers: usize, body_size: usize) {
        let headers =
            hostcalls::get_map_bytes(MapType::HttpCallResponseHeaders).unwrap_or_else(|status| {
                log::warn!("reading callout headers failed: {}", status_code(status));
                Vec::new()
            });
        let code = headers
            .iter()
            .find(|(name, _)| name == ":status")
            .map(|(_, value)| String::from_utf8_lossy(value).into_owned());
        let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .unwrap_or_else(|status| {
                log::warn!("reading callout body failed: {}", status_code(status));
                None
            })
            .unwrap_or_default();
        let trailers =
            hostcalls::get_map_bytes(MapType::HttpCallResponseTrailers).unwrap_or_else(|status| {
                log::warn!("reading callout trailers failed: {}", status_code(status));
                Vec::new()
            });
        log::debug!(
            "callout response status={} body={} bytes trailers={}",
            code.as_deref().unwrap_or("<none>"),
            body.len(),
            trailers.len()
        );
        if num_headers == 0 {
            log_call_status("callout failed");
            self.local_reply(503, vec![], b"callout failed\n");
        } else if code.as_deref() == Some("200") {
            add_request_header("x-probe-callout", &body);
        } else {
            self.local_reply(403, vec![], &body);
        }
    }

    fn grpc(&mut self) -> Flow {
        let path = request_header(":path").unwrap_or_default();
        let cluster = self.runtime.grpc_cluster.clone();
        let metadata: Vec<(&str, &[u8])> = vec![("x-probe", b"1")];
        let timeout = Duration::from_millis(1000);
        match hostcalls::dispatch_grpc_call(
            &cluster,
            "authz.v1.Authz",
            "Check",
            metadata,
            Some(&path),
            timeout,
        ) {
            Ok(token) => {
                self.calls.push((token, Call::Grpc));
                Flow::Pause
            }
            Err(status) => {
                log::warn!("grpc call failed: {}", status_code(status));
                self.local_reply(503, vec![], b"grpc failed\n");
                Flow::Stop
            }
        }
    }

    fn metrics(&mut self) {
        let Some(ids) = self.runtime.metrics else {
            add_request_header("x-probe-metric", b"undefined");
            return;
        };
        self.effects.metrics_ran = true;
        let results = [
            hostcalls::increment_metric(ids.requests, 1),
            hostcalls::increment_metric(ids.inflight, 1),
            hostcalls::record_metric(ids.body_bytes, 42),
        ];
        for status in results.into_iter().filter_map(Result::err) {
            log::warn!("metric update failed: {}", status_code(status));
        }
        let value = match hostcalls::get_metric(ids.requests) {
            Ok(value) => value.to_string(),
            Err(status) => error_text(status),
        };
        add_request_header("x-probe-metric", value.as_bytes());
    }

    fn headers(&self) {
        let count = match hostcalls::get_map_bytes(MapType::HttpRequestHeaders) {
            Ok(pairs) => pairs.len().to_string(),
            Err(status) => error_text(status),
        };
        add_request_header("x-probe-headers", count.as_bytes());
        let replaced = hostcalls::set_map_value_bytes(
            MapType::HttpRequestHeaders,
            "x-probe-replace",
            Some(b"replaced"),
        );
        let removed = hostcalls::remove_map_value(MapType::HttpRequestHeaders, "x-probe-remove");
        for status in [replaced, removed].into_iter().filter_map(Result::err) {
            log::warn!("header edit failed: {}", status_code(status));
        }
    }

    fn body_effect(&self, body_size: usize) {
        if self.effects.body_upper {
            match hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size) {
                Ok(body) => {
                    let upper = body.unwrap_or_default().to_ascii_uppercase();
                    if let Err(status) =
                        hostcalls::set_buffer(BufferType::HttpRequestBody, 0, body_size, &upper)
                    {
                        log::warn!("set request body failed: {}", status_code(status));
                    }
                }
                Err(status) => log::warn!("reading request body failed: {}", status_code(status)),
            }
            log::info!("request body {body_size} bytes");
        }
        if self.effects.buffer_body {
            log::info!("buffered request body {body_size} bytes");
        }
    }
}

impl ProbeHttp {
    /// Runs a `metric-ids` or `callout-tokens` action (see `ids.rs`).
    fn run_ids(&mut self, action: crate::ids::IdAction) -> Flow {
        match action {
            crate::ids::IdAction::MetricIds => {
                for (name, value) in crate::ids::metric_ids(self.runtime.metrics) {
                    add_request_header(name, value.as_bytes());
                }
                Flow::Continue
            }
            crate::ids::IdAction::CalloutTokens => {
                let (shown, tokens) = crate::ids::callout_tokens(
                    &self.runtime.http_cluster,
                    &self.runtime.grpc_cluster,
                );
                add_request_header("x-probe-tokens", shown.as_bytes());
                if tokens.is_empty() {
                    return Flow::Continue;
                }
                self.calls
                    .extend(tokens.into_iter().map(|token| (token, Call::Token)));
                Flow::Pause
            }
        }
    }
}

impl Context for ProbeHttp {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        match self.take_call(token_id) {
            Some(Call::Callout) => self.callout_done(num_headers, body_size),
            Some(Call::CountRace { value, cas }) => Self::count_race_done(value, cas),
            Some(Call::Token) => {}
            Some(Call::Grpc) | None => {
                log::warn!("unexpected http call response {token_id}");
                return;
            }
        }
        self.resume_when_idle();
    }

    fn on_grpc_call_response(&mut self, token_id: u32, grpc_status: u32, response_size: usize) {
        match self.take_call(token_id) {
            Some(Call::Grpc) => {}
            Some(Call::Token) => {
                self.resume_when_idle();
                return;
            }
            _ => {
                log::warn!("unexpected grpc call response {token_id}");
                return;
            }
        }
        if grpc_status == 0 {
            let message =
                match hostcalls::get_buffer(BufferType::GrpcReceiveBuffer, 0, response_size) {
                    Ok(message) => message.unwrap_or_default(),
                    Err(status) => {
                        log::warn!("reading grpc message failed: {}", status_code(status));
                        Vec::new()
                    }
                };
            add_request_header("x-probe-grpc", String::from_utf8_lossy(&message).as_bytes());
        } else {
            log_call_status("grpc failed");
            let body = format!("grpc status {grpc_status}\n");
            self.local_reply(403, vec![], body.as_bytes());
        }
        self.resume_when_idle();
    }

    fn on_done(&mut self) -> bool {
        self.unpark();
        log::debug!("on_done {}", self.context_id);
        true
    }
}

impl HttpContext for ProbeHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(list) = request_header(ACTIONS_HEADER) else {
            return Action::Continue;
        };
        let list = String::from_utf8_lossy(&list).into_owned();
        let mut paused = false;
        for name in list
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
        {
            let flow = if let Some(step) = Step::parse(name) {
                self.run(step)
            } else if let Some(action) = crate::ids::IdAction::parse(name) {
                self.run_ids(action)
            } else {
                log::warn!("unknown action {name}");
                continue;
            };
            match flow {
                Flow::Continue => {}
                Flow::Pause => paused = true,
                Flow::Stop => {
                    paused = true;
                    break;
                }
            }
        }
        if paused {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !(self.effects.body_upper || self.effects.buffer_body) {
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.body_effect(body_size);
        Action::Continue
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if self.effects.trailers {
            add_header(MapType::HttpRequestTrailers, "x-probe-trailer", b"seen");
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if self.effects.resp_headers {
            add_header(MapType::HttpResponseHeaders, "x-probe-resp", b"1");
            if let Err(status) = hostcalls::remove_map_value(MapType::HttpResponseHeaders, "server")
            {
                log::warn!("removing server failed: {}", status_code(status));
            }
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.effects.resp_body {
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        // Envoy's set_buffer_bytes appends when start >= the buffer's length (reference 1.7).
        if let Err(status) =
            hostcalls::set_buffer(BufferType::HttpResponseBody, body_size, 0, RESPONSE_SUFFIX)
        {
            log::warn!(
                "appending to the response body failed: {}",
                status_code(status)
            );
        }
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        if self.effects.trailers {
            add_header(
                MapType::HttpResponseTrailers,
                "x-probe-resp-trailer",
                b"seen",
            );
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        self.unpark();
        log::info!("on_log {}", self.context_id);
        if self.effects.metrics_ran
            && let Some(ids) = self.runtime.metrics
            && let Err(status) = hostcalls::increment_metric(ids.inflight, -1)
        {
            log::warn!("gauge decrement failed: {}", status_code(status));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_action_parses() {
        let names = [
            "count",
            "count-race",
            "props",
            "deny",
            "callout",
            "grpc",
            "enqueue",
            "metrics",
            "body-upper",
            "resp-headers",
            "resp-body",
            "trailers",
            "panic",
            "loop",
            "grow",
            "set-property",
            "log-levels",
            "ticks",
            "foreign",
            "headers",
            "stop-iteration-body",
            "continue-later",
        ];
        assert!(names.iter().all(|name| Step::parse(name).is_some()));
        assert_eq!(Step::parse("Count"), None);
        assert_eq!(Step::parse("nope"), None);
    }

    #[test]
    fn property_header_names_join_segments_with_dots() {
        let names: Vec<String> = PROPERTIES
            .iter()
            .map(|(path, _)| format!("x-prop-{}", path.join(".")))
            .collect();
        assert!(names.contains(&"x-prop-node.metadata.NAMESPACE".to_owned()));
        assert_eq!(names.len(), 18);
    }
}
