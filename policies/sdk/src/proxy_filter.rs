//! The adapter that exports an [`HttpPolicy`] as a proxy-wasm ABI 0.2.1 HTTP filter (Envoy,
//! Istio; built for wasm32-wasip1), and serves its [`Host`] with proxy-wasm's clock, shared data
//! (shared by every worker's VM of the plugin) and log calls. Only this module names the
//! `proxy-wasm` crate; it calls the SDK's `hostcalls` directly, because its trait helpers
//! `unwrap` statuses a host may return.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType, Status};

use crate::compare;
use crate::host::{Entry, Host, HostError, Level};
use crate::wire::{
    Answer, BodyLimit, BodyProgress, Callout, HeaderChange, HttpRequest, HttpVerdict, MAX_CALLS,
    Nonce, Route,
};
use crate::{Fetch, HttpPolicy, PolicyError, parse_settings};

#[doc(hidden)]
pub use proxy_wasm;

/// Status of the local reply when the policy could not decide (fail closed).
const POLICY_ERROR_STATUS: u16 = 403;
/// Body of that reply; the error itself goes to the proxy's log, not to the client.
const POLICY_ERROR_BODY: &str = "policy error\n";

/// Registers the policy `P` with the proxy-wasm SDK; called from the module's `_initialize`
/// by [`export_proxy_wasm!`](crate::export_proxy_wasm).
#[doc(hidden)]
pub fn start<P: HttpPolicy + 'static>() {
    // Denials are logged at debug level with their reason, since the SDK's local reply carries
    // no response code details; the proxy filters by its own level too.
    proxy_wasm::set_log_level(LogLevel::Debug);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::<P>::new()) });
}

/// How often the root context wakes to see whether a fetch is due.
const FETCH_TICK: Duration = Duration::from_secs(1);

/// The root context: parses and prepares the plugin configuration once and hands it to every
/// stream; keeps the policy's background fetches fresh.
struct Root<P: HttpPolicy> {
    settings: Option<Rc<P::Prepared>>,
    fetches: Vec<Fetching>,
}

/// One background fetch and when it is next due.
struct Fetching {
    fetch: Fetch,
    /// When the next call is due (time since 1970); `None` while one is in flight.
    due: Option<Duration>,
    /// The token of the call in flight.
    token: Option<u32>,
}

impl<P: HttpPolicy> Root<P> {
    fn new() -> Self {
        Self {
            settings: None,
            fetches: Vec::new(),
        }
    }

    /// Starts every fetch that is due. A call the proxy refuses (an unknown cluster) is logged
    /// and retried later, like a failed one.
    fn dispatch_due(&mut self) {
        let now = now();
        for f in &mut self.fetches {
            if f.due.is_none_or(|due| due > now) {
                continue;
            }
            let mut headers = vec![
                (":method", "GET"),
                (":path", f.fetch.path.as_str()),
                (":authority", f.fetch.authority.as_str()),
            ];
            headers.extend(
                f.fetch
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            );
            match hostcalls::dispatch_http_call(
                &f.fetch.cluster,
                headers,
                None,
                Vec::new(),
                f.fetch.timeout,
            ) {
                Ok(token) => {
                    f.token = Some(token);
                    f.due = None;
                }
                Err(status) => {
                    log::warn!(
                        "fetch {:?}: the call to cluster {:?} was refused ({status:?}); retrying in {:?}",
                        f.fetch.id,
                        f.fetch.cluster,
                        f.fetch.retry
                    );
                    f.due = Some(now.saturating_add(f.fetch.retry));
                }
            }
        }
    }
}

/// The proxy's clock as time since 1970 (zero if it cannot be read, which makes every fetch due).
fn now() -> Duration {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t: SystemTime| t.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default()
}

impl<P: HttpPolicy> Context for Root<P> {
    /// An answer to a background fetch: a 2xx body within the size limit goes to the policy;
    /// anything else is logged and retried after the fetch's `retry`.
    fn on_http_call_response(&mut self, token: u32, _headers: usize, body_size: usize, _: usize) {
        let Some(f) = self.fetches.iter_mut().find(|f| f.token == Some(token)) else {
            return;
        };
        f.token = None;
        let status = hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .unwrap_or_default();
        let result = if !status.starts_with('2') {
            Err(if status.is_empty() {
                "the call failed before an answer (reset or refused)".to_owned()
            } else {
                format!("the answer has status {status}")
            })
        } else if body_size > f.fetch.max_bytes {
            Err(format!(
                "the answer has {body_size} bytes, over the limit of {}",
                f.fetch.max_bytes
            ))
        } else {
            let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
                .ok()
                .flatten()
                .unwrap_or_default();
            match self.settings.as_deref() {
                Some(prepared) => P::fetched(prepared, &f.fetch.id, &body, &ProxyHost),
                None => Err("the filter has no settings".to_owned()),
            }
        };
        let wait = match result {
            Ok(()) => {
                log::debug!("fetch {:?}: updated", f.fetch.id);
                f.fetch.refresh
            }
            Err(e) => {
                log::warn!(
                    "fetch {:?} from cluster {:?} failed: {e}; retrying in {:?}",
                    f.fetch.id,
                    f.fetch.cluster,
                    f.fetch.retry
                );
                f.fetch.retry
            }
        };
        f.due = Some(now().saturating_add(wait));
    }
}

impl<P: HttpPolicy + 'static> RootContext for Root<P> {
    /// Parses the plugin configuration (JSON; empty means the defaults). On error it logs the
    /// setting's path and returns false, so Envoy rejects the plugin (FailState ConfigureFailed).
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        self.settings = None;
        let text = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(bytes) => String::from_utf8(bytes.unwrap_or_default()),
            Err(status) => {
                log::error!("reading the plugin configuration failed with status {status:?}");
                return false;
            }
        };
        let text = match text {
            Ok(text) => text,
            Err(e) => {
                log::error!("the plugin configuration is not UTF-8 text: {e}");
                return false;
            }
        };
        match parse_settings::<P::Settings>(&text).and_then(P::prepare) {
            Ok(prepared) => {
                self.fetches = P::fetches(&prepared)
                    .into_iter()
                    .map(|fetch| Fetching {
                        fetch,
                        due: Some(Duration::ZERO),
                        token: None,
                    })
                    .collect();
                self.settings = Some(Rc::new(prepared));
                if !self.fetches.is_empty() {
                    if let Err(status) = hostcalls::set_tick_period(FETCH_TICK) {
                        log::error!("setting the tick period failed with status {status:?}");
                    }
                    self.dispatch_due();
                }
                true
            }
            Err(e) => {
                log::error!("invalid plugin configuration: {e}");
                false
            }
        }
    }

    fn on_tick(&mut self) {
        self.dispatch_due();
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream::<P> {
            settings: self.settings.clone(),
            request: None,
            connection: None,
            pending: None,
            response_headers: Vec::new(),
            body: None,
            on_body: false,
            policy: PhantomData,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One HTTP stream: decides at the request headers (holding the request while a call the
/// policy asked for is out), applies response changes later.
struct Stream<P: HttpPolicy> {
    /// `None` when the plugin was never configured successfully: every request fails closed.
    settings: Option<Rc<P::Prepared>>,
    /// The request while it is being decided (with the answers so far).
    request: Option<HttpRequest>,
    /// The id of the request's connection, whose properties go back to the VM's memory of
    /// connections once the request is decided.
    connection: Option<u64>,
    /// The token and id of the call in flight.
    pending: Option<(u32, String)>,
    /// The verdict's response header changes, kept for `on_http_response_headers`.
    response_headers: Vec<HeaderChange>,
    /// While the policy waits for the request body: how much it reads.
    body: Option<BodyLimit>,
    /// Whether the decision is made on the body (the headers went upstream already).
    on_body: bool,
    policy: PhantomData<P>,
}

impl<P: HttpPolicy> Context for Stream<P> {
    /// The answer to a call the policy asked for: handed to the policy with the request, and the
    /// new verdict carried out (the stream resumes when it lets the request through).
    fn on_http_call_response(&mut self, token: u32, _headers: usize, body_size: usize, _: usize) {
        let Some((_, id)) = self.pending.take_if(|(t, _)| *t == token) else {
            return;
        };
        self.answered(read_answer(id, body_size));
    }

    /// The answer to a gRPC call the policy asked for (`proxy_on_grpc_receive` with the
    /// response message, or `proxy_on_grpc_close` with the status of a call that failed).
    fn on_grpc_call_response(&mut self, token: u32, status_code: u32, response_size: usize) {
        let Some((_, id)) = self.pending.take_if(|(t, _)| *t == token) else {
            return;
        };
        let mut answer = Answer {
            id,
            grpc_status: Some(status_code),
            ..Answer::default()
        };
        if status_code == 0 {
            if response_size > crate::fetch::DEFAULT_MAX_BYTES {
                answer.grpc_status = Some(GRPC_RESOURCE_EXHAUSTED);
                answer.grpc_message = format!(
                    "the response message has {response_size} bytes, over the limit of {}",
                    crate::fetch::DEFAULT_MAX_BYTES
                );
            } else if response_size > 0 {
                answer.message =
                    hostcalls::get_buffer(BufferType::GrpcReceiveBuffer, 0, response_size)
                        .ok()
                        .flatten()
                        .unwrap_or_default();
            }
        } else if let Ok((_, Some(message))) = hostcalls::get_grpc_status() {
            answer.grpc_message = message;
        }
        self.answered(answer);
    }
}

/// gRPC's RESOURCE_EXHAUSTED: a response message over the size limit is refused with it.
const GRPC_RESOURCE_EXHAUSTED: u32 = 8;

impl<P: HttpPolicy> HttpContext for Stream<P> {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        match read_request() {
            Ok((mut request, connection)) => {
                let prepared = self.settings.as_deref();
                request.route = match prepared {
                    Some(prepared) if P::reads_route(prepared) => read_route(),
                    _ => Route::default(),
                };
                self.body = prepared
                    .filter(|_| !end_of_stream)
                    .and_then(|prepared| P::reads_body(prepared, &request));
                self.request = Some(request);
                self.connection = connection;
                if self.body.is_some() {
                    // Pausing here would hold the body too (Envoy turns a headers pause into
                    // StopAllIteration): the headers go on, the body is held.
                    return Action::Continue;
                }
                self.carry_out()
            }
            Err(e) => fail_closed(&e),
        }
    }

    /// Holds the body of a request the policy decides on with its body (StopIterationAndBuffer:
    /// every call sees all of it so far) until it is complete or at the policy's limit.
    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(limit) = self.body else {
            return Action::Continue;
        };
        match limit.progress(body_size, end_of_stream) {
            BodyProgress::Wait => {
                self.read_body(limit, body_size);
                Action::Pause
            }
            BodyProgress::Decide => {
                self.read_body(limit, body_size);
                self.decide_on_body(limit)
            }
            BodyProgress::TooLarge => {
                self.body = None;
                self.release();
                carry_out_deny(HttpVerdict::payload_too_large(limit))
            }
        }
    }

    /// Trailers end the body: a policy still waiting for it decides on what came.
    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        match self.body {
            Some(limit) => self.decide_on_body(limit),
            None => Action::Continue,
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        apply(
            MapType::HttpResponseHeaders,
            &std::mem::take(&mut self.response_headers),
        );
        Action::Continue
    }
}

impl<P: HttpPolicy> Drop for Stream<P> {
    /// A stream reset while its request waits for a call still gives its connection back.
    fn drop(&mut self) {
        self.release();
    }
}

impl<P: HttpPolicy> Stream<P> {
    /// Appends to the held request's body what arrived since the last call, up to the limit
    /// (the proxy's buffer holds the whole body so far, so only the new bytes are read).
    fn read_body(&mut self, limit: BodyLimit, body_size: usize) {
        let Some(request) = self.request.as_mut() else {
            return;
        };
        let have = request.body.len();
        let want = body_size.min(limit.max_bytes.saturating_add(1));
        if want > have
            && let Ok(Some(bytes)) =
                hostcalls::get_buffer(BufferType::HttpRequestBody, have, want.saturating_sub(have))
        {
            request.body.extend_from_slice(&bytes);
        }
    }

    /// Decides on the request with the body held so far (cut to the limit).
    fn decide_on_body(&mut self, limit: BodyLimit) -> Action {
        self.body = None;
        self.on_body = true;
        if let Some(request) = self.request.as_mut() {
            let received = std::mem::take(&mut request.body);
            request.set_body(limit, &received);
        }
        self.carry_out()
    }

    /// Hands an answer to the policy with the request, and carries out the new verdict (the
    /// stream resumes when it lets the request through).
    fn answered(&mut self, answer: Answer) {
        if let Some(request) = self.request.as_mut() {
            request.answers.push(answer);
        }
        if matches!(self.carry_out(), Action::Continue)
            && let Err(status) = hostcalls::resume_http_request()
        {
            log::error!("resuming the request failed with status {status:?}");
        }
    }

    /// Done with the request: its connection's properties go back to the VM's memory, and the
    /// request itself is kept for the next one to be read into (see [`read_request`]).
    fn release(&mut self) {
        let Some(mut request) = self.request.take() else {
            return;
        };
        let connection = std::mem::take(&mut request.connection);
        if let Some(id) = self.connection.take() {
            connections::give_back(id, connection);
        }
        SPARE.set(Some(request));
    }

    /// Evaluates the held request and carries out the verdict: header changes and `Continue`,
    /// a local reply, or a call made and the stream paused until its answer. A call the proxy
    /// refuses is answered at once with status 0, and the policy decides again.
    fn carry_out(&mut self) -> Action {
        loop {
            let verdict = self.decide();
            match verdict {
                Ok(HttpVerdict::Continue {
                    request_headers,
                    response_headers,
                }) => {
                    self.release();
                    apply(MapType::HttpRequestHeaders, &request_headers);
                    self.response_headers = response_headers;
                    return Action::Continue;
                }
                Ok(deny @ HttpVerdict::Deny { .. }) => {
                    self.release();
                    return carry_out_deny(deny);
                }
                Ok(HttpVerdict::Call { callout }) => match dispatch(&callout) {
                    Ok(token) => {
                        self.pending = Some((token, callout.id));
                        return Action::Pause;
                    }
                    Err(status) => {
                        log::warn!(
                            "call {:?}: the call to cluster {:?} was refused ({status:?})",
                            callout.id,
                            callout.cluster
                        );
                        if let Some(request) = self.request.as_mut() {
                            request.answers.push(Answer {
                                id: callout.id,
                                ..Answer::default()
                            });
                        }
                    }
                },
                Err(e) => {
                    self.release();
                    return fail_closed(&e);
                }
            }
        }
    }

    fn decide(&self) -> Result<HttpVerdict, PolicyError> {
        let settings = self.settings.as_deref().ok_or_else(|| {
            PolicyError::Internal("the filter has no settings: on_configure did not succeed".into())
        })?;
        let request = self
            .request
            .as_ref()
            .ok_or_else(|| PolicyError::Internal("no request is being decided".into()))?;
        let mut verdict = P::evaluate(request, settings, &ProxyHost)?;
        if self.on_body {
            verdict = verdict.after_body().map_err(PolicyError::Internal)?;
        }
        if matches!(verdict, HttpVerdict::Call { .. }) && request.answers.len() >= MAX_CALLS {
            return Err(PolicyError::Internal(format!(
                "the policy asked for more than {MAX_CALLS} calls on one request"
            )));
        }
        Ok(verdict)
    }
}

/// A denial's local reply, logged at debug level with its reason.
fn carry_out_deny(verdict: HttpVerdict) -> Action {
    let HttpVerdict::Deny {
        status,
        reason,
        message,
        body,
        headers,
    } = verdict
    else {
        return Action::Continue;
    };
    log::debug!("denied with {status} ({reason}): {message}");
    reply(status, &headers, &body)
}

/// The local reply when the policy could not decide (fail closed); the error goes to the log.
fn fail_closed(error: &PolicyError) -> Action {
    log::error!("policy error, denying with {POLICY_ERROR_STATUS} (policy-error): {error}");
    reply(POLICY_ERROR_STATUS, &[], POLICY_ERROR_BODY)
}

/// Makes a policy's call from the stream's context (the SDK hands the answer to this stream).
fn dispatch(callout: &Callout) -> Result<u32, Status> {
    let timeout = Duration::from_millis(u64::from(callout.timeout_ms));
    if let Some(grpc) = &callout.grpc {
        let metadata = callout
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .collect();
        return hostcalls::dispatch_grpc_call(
            &callout.cluster,
            &grpc.service,
            &grpc.method,
            metadata,
            Some(&grpc.message),
            timeout,
        );
    }
    let mut headers = vec![
        (":method", callout.method.as_str()),
        (":path", callout.path.as_str()),
        (":authority", callout.authority.as_str()),
    ];
    headers.extend(
        callout
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    let body = (!callout.body.is_empty()).then_some(callout.body.as_bytes());
    hostcalls::dispatch_http_call(&callout.cluster, headers, body, Vec::new(), timeout)
}

/// The answer to the call `id` from the proxy's call-response buffers: status 0 when no headers
/// came (a reset) or the body is over [`DEFAULT_MAX_BYTES`](crate::fetch::DEFAULT_MAX_BYTES).
fn read_answer(id: String, body_size: usize) -> Answer {
    let pairs = hostcalls::get_map_bytes(MapType::HttpCallResponseHeaders).unwrap_or_default();
    let mut answer = Answer {
        id,
        ..Answer::default()
    };
    for (name, value) in pairs {
        let value = String::from_utf8(value)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        if name == ":status" {
            answer.status = value.parse().unwrap_or_default();
        } else if !name.starts_with(':') {
            answer.headers.push((name.to_ascii_lowercase(), value));
        }
    }
    if body_size > crate::fetch::DEFAULT_MAX_BYTES {
        log::warn!(
            "call {:?}: the answer has {body_size} bytes, over the limit of {}",
            answer.id,
            crate::fetch::DEFAULT_MAX_BYTES
        );
        answer.status = 0;
        return answer;
    }
    if body_size > 0 {
        let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        answer.body = String::from_utf8(body)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    }
    answer
}

/// The [`Host`] of a proxy filter: proxy-wasm's clock, shared data and log calls. Shared data
/// is common to every VM of the plugin's `vm_id` on the proxy (all its workers), which is what
/// makes counters and token buckets shared between workers; data tables do not exist here.
struct ProxyHost;

impl Host for ProxyHost {
    fn now(&self) -> Result<Duration, HostError> {
        hostcalls::get_current_time()
            .map_err(|status| {
                HostError::Unavailable(format!("proxy_get_current_time_nanoseconds: {status:?}"))
            })?
            .duration_since(UNIX_EPOCH)
            .map_err(|e| HostError::Unavailable(format!("the proxy's clock is before 1970: {e}")))
    }

    fn get(&self, key: &str) -> Result<Option<Entry>, HostError> {
        match hostcalls::get_shared_data(key) {
            // An empty value may come without bytes.
            Ok((value, Some(cas))) => Ok(Some(Entry {
                value: value.unwrap_or_default(),
                cas,
            })),
            Ok((_, None)) => Ok(None),
            Err(status) => Err(HostError::Unavailable(format!(
                "proxy_get_shared_data({key:?}): {status:?}"
            ))),
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<bool, HostError> {
        let cas = (cas != 0).then_some(cas);
        match hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Ok(true),
            Err(Status::CasMismatch) => Ok(false),
            Err(status) => Err(HostError::Unavailable(format!(
                "proxy_set_shared_data({key:?}): {status:?}"
            ))),
        }
    }

    fn data(&self, _table: &str, _key: &str) -> Result<Option<String>, HostError> {
        Err(HostError::Unsupported("data tables"))
    }

    fn data_keys(&self, _table: &str, _prefix: &str) -> Result<Vec<String>, HostError> {
        Err(HostError::Unsupported("data tables"))
    }

    /// An Envoy counter (`proxy_define_metric` once per name and VM, then
    /// `proxy_increment_metric`).
    fn count(&self, name: &str, delta: u64) -> Result<(), HostError> {
        thread_local! {
            static METRICS: RefCell<Metrics> = const { RefCell::new(Metrics(Vec::new())) };
        }
        let id = METRICS.with_borrow_mut(|metrics| -> Result<u32, HostError> {
            let hash = compare::hash(name.as_bytes());
            if let Some(id) = metrics.find(hash, name) {
                return Ok(id);
            }
            let id = hostcalls::define_metric(MetricType::Counter, name).map_err(|status| {
                HostError::Unavailable(format!("proxy_define_metric({name:?}): {status:?}"))
            })?;
            metrics.insert(hash, name, id);
            Ok(id)
        })?;
        hostcalls::increment_metric(id, i64::try_from(delta).unwrap_or(i64::MAX)).map_err(
            |status| {
                HostError::Unavailable(format!("proxy_increment_metric({name:?}): {status:?}"))
            },
        )
    }

    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Trace => LogLevel::Trace,
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        // A log line that cannot be written has nowhere to be reported.
        let _ = hostcalls::log(level, message);
    }
}

thread_local! {
    /// The last request decided, read into again by the next one: its method, path, authority
    /// and scheme strings and its list of header places keep their room, so a request costs no
    /// allocation for them.
    static SPARE: std::cell::Cell<Option<HttpRequest>> = const { std::cell::Cell::new(None) };
}

/// The request as the policy sees it: one call for the whole header map (each hostcall costs),
/// kept as the one buffer the proxy hands over; one per connection property, and a fresh nonce.
/// With the request, the id of its connection when the proxy gave one.
fn read_request() -> Result<(HttpRequest, Option<u64>), PolicyError> {
    let map = raw::header_map(MapType::HttpRequestHeaders).map_err(|status| {
        PolicyError::Internal(format!(
            "reading the request headers failed with status {status}"
        ))
    })?;
    let mut request = SPARE.take().unwrap_or_default();
    request
        .read_header_map(map)
        .map_err(|e| PolicyError::Internal(format!("the request headers: {e}")))?;
    let (connection, id) = connections::take();
    request.connection = connection;

    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce)
        .map_err(|e| PolicyError::Internal(format!("drawing the request nonce: {e}")))?;
    request.nonce = Nonce(nonce);
    Ok((request, id))
}

/// The request's route, as the connection manager chose it before the filters (two properties,
/// read only for policies that ask: [`HttpPolicy::reads_route`]).
fn read_route() -> Route {
    let text = |value: Option<Vec<u8>>| {
        value
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .filter(|s| !s.is_empty())
    };
    Route {
        name: text(property(&["xds", "route_name"])),
        cluster: text(property(&["xds", "cluster_name"])),
    }
}

/// A property's value: NOT_FOUND is `None`, and so is a value Envoy cannot serialize. The
/// path's segments are joined with NULs on the stack (the adapter's paths are short).
fn property(path: &[&str]) -> Option<Vec<u8>> {
    let mut joined = [0u8; 64];
    let mut len = 0usize;
    for (i, segment) in path.iter().enumerate() {
        let start = len.saturating_add(usize::from(i > 0));
        let end = start.saturating_add(segment.len());
        let Some(place) = joined.get_mut(start..end) else {
            // A long path: joined on the heap, through the same call (no status panics).
            return raw::property(path.join("\0").as_bytes()).ok().flatten();
        };
        place.copy_from_slice(segment.as_bytes());
        len = end;
    }
    raw::property(joined.get(..len).unwrap_or_default())
        .ok()
        .flatten()
}

/// The ids of the metrics a VM defined, by name: looked up on every count, so by a hash made
/// eight bytes at a time and a word-wise comparison (a policy's names are chosen by the policy,
/// 20-60 bytes; SipHash and wasi-libc's byte-by-byte `memcmp` cost more than the lookup they
/// serve). Sorted by hash.
struct Metrics(Vec<(u64, Box<str>, u32)>);

impl Metrics {
    fn find(&self, hash: u64, name: &str) -> Option<u32> {
        let at = self.0.partition_point(|(h, _, _)| *h < hash);
        self.0
            .get(at..)?
            .iter()
            .take_while(|(h, _, _)| *h == hash)
            .find(|(_, kept, _)| compare::eq(kept, name))
            .map(|(_, _, id)| *id)
    }

    fn insert(&mut self, hash: u64, name: &str, id: u32) {
        let at = self.0.partition_point(|(h, _, _)| *h < hash);
        self.0.insert(at, (hash, name.into(), id));
    }
}

/// What the VM remembers of the connections its requests came on.
mod connections {
    use std::cell::RefCell;

    use super::property;
    use crate::property::{connection_from_properties, text};
    use crate::wire::Connection;

    /// Connections whose properties are remembered (per VM, oldest out).
    const KEPT: usize = 64;

    thread_local! {
        /// By `connection.id`; `None` while a request of the connection holds its properties.
        static CONNECTIONS: RefCell<Vec<(u64, Option<Connection>)>> =
            const { RefCell::new(Vec::new()) };
    }

    /// The request's connection, and its id when the proxy has one. What cannot change while a
    /// connection lives (its local address, SNI, TLS peer) is read once per connection
    /// (`connection.id`) and remembered; the source address is read for every request, since
    /// Envoy may take it from `x-forwarded-for` per request (trusted hops). The remembered
    /// properties are lent to the request, not copied: [`give_back`] returns them. A second
    /// request of the connection while they are lent (HTTP/2 streams) reads them again.
    pub(super) fn take() -> (Connection, Option<u64>) {
        let Some(id) = property(&["connection", "id"])
            .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_slice()).ok())
            .map(u64::from_le_bytes)
        else {
            return (connection_from_properties(property), None);
        };
        let kept = CONNECTIONS.with_borrow_mut(|kept| {
            match kept.iter_mut().find(|(kept, _)| *kept == id) {
                Some((_, lent)) => Some(lent.take()),
                None => {
                    if kept.len() >= KEPT {
                        kept.remove(0);
                    }
                    kept.push((id, None));
                    None
                }
            }
        });
        let mut connection = match kept {
            Some(Some(mut connection)) => {
                connection.source_address = text(property(&["source", "address"]));
                connection
            }
            // Lent to another request, or new.
            Some(None) | None => connection_from_properties(property),
        };
        connection.id = Some(id);
        (connection, Some(id))
    }

    /// Takes back the properties of connection `id` when a request is done with them.
    pub(super) fn give_back(id: u64, connection: Connection) {
        CONNECTIONS.with_borrow_mut(|kept| match kept.iter_mut().find(|(kept, _)| *kept == id) {
            Some((_, slot)) => {
                if slot.is_none() {
                    *slot = Some(connection);
                }
            }
            None => {
                if kept.len() >= KEPT {
                    kept.remove(0);
                }
                kept.push((id, Some(connection)));
            }
        });
    }
}

/// Applies header changes in order: set replaces (or adds), add appends, remove drops all values.
fn apply(map: MapType, changes: &[HeaderChange]) {
    for change in changes {
        let result = match change {
            HeaderChange::Set { name, value } => hostcalls::set_map_value(map, name, Some(value)),
            HeaderChange::Add { name, value } => hostcalls::add_map_value(map, name, value),
            HeaderChange::Remove { name } => hostcalls::remove_map_value(map, name),
        };
        if let Err(status) = result {
            log::error!("{change:?} on {map:?} failed with status {status:?}");
        }
    }
}

/// Sends a local reply and stops the filter chain (Envoy defers the reply until this callback
/// returns). The SDK's `send_http_response` passes no response code details (0.2.5 has no
/// variant that does), so Envoy's `%RESPONSE_CODE_DETAILS%` for it is empty; the verdict's
/// reason is in the debug log line instead.
fn reply(status: u16, headers: &[(String, String)], body: &str) -> Action {
    let headers = headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    if let Err(e) = hostcalls::send_http_response(u32::from(status), headers, Some(body.as_bytes()))
    {
        log::error!("sending the local reply failed with status {e:?}");
    }
    Action::Pause
}

/// Exports an HTTP policy as a proxy-wasm ABI 0.2.1 filter: `_initialize` registers it, and
/// the SDK's `proxy_on_*` exports dispatch to it. One line in the policy's `lib.rs`:
/// `palisade_sdk::export_proxy_wasm!(RequestGuard);`, under `#[cfg(target_arch = "wasm32")]`,
/// with palisade-sdk's `proxy-wasm` feature; build for wasm32-wasip1.
#[macro_export]
macro_rules! export_proxy_wasm {
    ($policy:ty) => {
        // In an anonymous const: the exported `_initialize` is not part of the crate's API.
        const _: () = {
            $crate::proxy_filter::proxy_wasm::main! {{
                $crate::proxy_filter::start::<$policy>();
            }}
        };
    };
}

/// The hostcalls of every request the adapter makes without the proxy-wasm crate: its
/// `get_map_bytes` copies every name and value into a string of its own (two allocations per
/// header, and as many frees), its `get_property` joins the path on the heap, and both panic on
/// a status they do not expect.
mod raw {
    #![expect(
        unsafe_code,
        reason = "a proxy-wasm import, and the buffer the host allocated through \
                  proxy_on_memory_allocate taken over"
    )]

    use proxy_wasm::types::MapType;

    #[link(wasm_import_module = "env")]
    unsafe extern "C" {
        fn proxy_get_header_map_pairs(map: u32, data: *mut *mut u8, size: *mut usize) -> u32;
        fn proxy_get_property(
            path: *const u8,
            path_len: usize,
            data: *mut *mut u8,
            size: *mut usize,
        ) -> u32;
    }

    /// proxy-wasm's OK and NOT_FOUND.
    const OK: u32 = 0;
    const NOT_FOUND: u32 = 1;

    /// The bytes the host allocated through `proxy_on_memory_allocate` for an answer: `None`
    /// when it gave none.
    fn taken(data: *mut u8, size: usize) -> Option<Vec<u8>> {
        if data.is_null() {
            return None;
        }
        // SAFETY: a non-null pointer is the host's answer to `proxy_on_memory_allocate(size)`,
        // which the proxy-wasm crate exports as a boxed slice of `size` bytes from this
        // module's global allocator, filled by the host and handed over: a vector of that
        // length and capacity owns it (as the crate's own calls take it).
        Some(unsafe { Vec::from_raw_parts(data, size, size) })
    }

    /// The property at `path` (segments joined with NULs): `None` when it is not found;
    /// `Err` carries any other status than OK.
    pub(super) fn property(path: &[u8]) -> Result<Option<Vec<u8>>, u32> {
        let mut data: *mut u8 = std::ptr::null_mut();
        let mut size: usize = 0;
        // SAFETY: the path is a live slice the host only reads; the host writes a pointer and
        // a length through the two out-pointers, which point at live locals.
        let status =
            unsafe { proxy_get_property(path.as_ptr(), path.len(), &raw mut data, &raw mut size) };
        match status {
            OK => Ok(taken(data, size)),
            NOT_FOUND => Ok(None),
            other => Err(other),
        }
    }

    /// The header map `map` as the proxy serializes it (empty when it has no buffer to give);
    /// `Err` carries a status other than OK.
    pub(super) fn header_map(map: MapType) -> Result<Vec<u8>, u32> {
        let mut data: *mut u8 = std::ptr::null_mut();
        let mut size: usize = 0;
        // SAFETY: the host writes a pointer and a length through the two out-pointers, which
        // point at live locals; the map type is a plain number the host checks.
        let status =
            unsafe { proxy_get_header_map_pairs(map as u32, &raw mut data, &raw mut size) };
        if status != OK {
            return Err(status);
        }
        Ok(taken(data, size).unwrap_or_default())
    }
}
