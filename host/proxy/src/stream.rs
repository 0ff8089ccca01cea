//! One HTTP stream, owned by the stream table of the VM whose context it is (hostcalls of that VM
//! reach all its streams by context id): what the filter sees of it now, and apart ([`Progress`])
//! where Envoy's filter chain is with it, which only the proxy's stage machine touches.

use crate::header_map::HeaderMap;
use crate::scenario::{Exchange, Outcome, RequestReport};

/// One HTTP stream.
#[derive(Debug)]
pub(crate) struct Stream {
    pub(crate) request_headers: HeaderMap,
    pub(crate) request_trailers: HeaderMap,
    pub(crate) response_headers: HeaderMap,
    pub(crate) response_trailers: HeaderMap,
    /// Which maps Envoy currently holds a pointer to (it drops them on Continue).
    pub(crate) live_request_headers: bool,
    pub(crate) live_request_trailers: bool,
    pub(crate) live_response_headers: bool,
    pub(crate) live_response_trailers: bool,
    /// Whether a trailers map may be created from the last body callback.
    pub(crate) may_add_request_trailers: bool,
    pub(crate) may_add_response_trailers: bool,
    /// The body bytes Envoy presents to the current callback (buffered so far + this chunk).
    pub(crate) request_body: Vec<u8>,
    pub(crate) response_body: Vec<u8>,
    pub(crate) live_request_body: bool,
    pub(crate) live_response_body: bool,
    /// During `proxy_on_log` the maps are read-only access-log copies.
    pub(crate) access_log: bool,
    /// Filter state written by `proxy_set_property` (key = the NUL-joined path).
    pub(crate) filter_state: Vec<(Vec<u8>, Vec<u8>)>,
    /// Actions deferred until the callback returns.
    pub(crate) local_reply: Option<LocalReply>,
    pub(crate) continue_request: bool,
    pub(crate) continue_response: bool,
    pub(crate) reset: bool,
    /// Attributes for properties.
    pub(crate) protocol: String,
    pub(crate) start_nanos: u64,
    pub(crate) response_code_details: Option<String>,
    pub(crate) request_size: Option<u64>,
    pub(crate) response_size: Option<u64>,
    /// Where Envoy's filter chain is with the stream; hostcalls never touch it.
    pub(crate) progress: Progress,
    /// The downstream connection, when it is not the scenario's.
    pub(crate) connection: Option<std::sync::Arc<crate::properties::Connection>>,
    /// The route chosen for the request, when the scenario gives one.
    pub(crate) route: Option<crate::scenario::Route>,
}

impl Stream {
    /// A stream whose request headers have just arrived, at virtual time `start_nanos`.
    pub(crate) fn new(
        request_headers: HeaderMap,
        protocol: String,
        start_nanos: u64,
        progress: Progress,
    ) -> Self {
        Self {
            request_headers,
            request_trailers: HeaderMap::default(),
            response_headers: HeaderMap::default(),
            response_trailers: HeaderMap::default(),
            live_request_headers: false,
            live_request_trailers: false,
            live_response_headers: false,
            live_response_trailers: false,
            may_add_request_trailers: false,
            may_add_response_trailers: false,
            request_body: Vec::new(),
            response_body: Vec::new(),
            live_request_body: false,
            live_response_body: false,
            access_log: false,
            filter_state: Vec::new(),
            local_reply: None,
            continue_request: false,
            route: None,
            continue_response: false,
            reset: false,
            protocol,
            start_nanos,
            response_code_details: None,
            request_size: None,
            response_size: None,
            connection: None,
            progress,
        }
    }
}

/// A local reply asked for with `proxy_send_local_response`, sent when the callback returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LocalReply {
    pub(crate) status: u32,
    pub(crate) details: String,
    pub(crate) body: Vec<u8>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) grpc_status: Option<u32>,
}

/// The stage a stream is at in Envoy's HTTP filter chain, in the order Envoy goes through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Stage {
    RequestHeaders,
    RequestBody,
    RequestTrailers,
    /// The request reaches the upstream, which answers.
    Upstream,
    ResponseHeaders,
    ResponseBody,
    ResponseTrailers,
    /// The client has its response: access log, then the filter is destroyed.
    Complete,
}

impl Stage {
    /// Whether the stage belongs to the request direction (the upstream included).
    pub(crate) fn in_request(self) -> bool {
        self <= Self::Upstream
    }
}

/// The response being sent to the client: the upstream's or a local reply.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub(crate) status: u16,
    pub(crate) details: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<String>,
    pub(crate) trailers: Option<Vec<(String, String)>>,
}

/// The proxy's side of a stream: the scenario's exchange, where the filter chain is with it,
/// what has been forwarded and delivered so far, and its report.
#[derive(Debug)]
pub(crate) struct Progress {
    /// The step that started the stream (its place in the report).
    pub(crate) slot: usize,
    /// The report, filed when the stream completes or the scenario ends.
    pub(crate) report: RequestReport,
    /// The request and the upstream's answer, from the scenario.
    pub(crate) exchange: Exchange,
    /// The request headers as the client sent them.
    pub(crate) original: HeaderMap,
    pub(crate) stage: Stage,
    /// The filter paused the current direction and has not continued it yet.
    pub(crate) paused: bool,
    /// Body data is held for the filter (StopIterationAndBuffer).
    pub(crate) buffering: bool,
    /// The rest of the body goes to the filter in one call (after a resumed StopAllIteration).
    pub(crate) coalesce: bool,
    /// The next body chunk of the current direction.
    pub(crate) chunk: usize,
    pub(crate) forwarded_body: Vec<u8>,
    pub(crate) outgoing: Option<Outgoing>,
    pub(crate) delivered_body: Vec<u8>,
    /// Set by what ends the stream's normal course (a local reply, a reset, a failure).
    pub(crate) outcome: Option<Outcome>,
    /// The filter is no longer called (its VM failed): Envoy goes on without it.
    pub(crate) bypass: bool,
    /// Completed: logged and destroyed (or being so).
    pub(crate) finished: bool,
    /// One of its callbacks is running; the stream moves on when that call returns.
    pub(crate) busy: bool,
}

impl Progress {
    /// A stream at its request headers.
    pub(crate) fn new(
        slot: usize,
        report: RequestReport,
        exchange: Exchange,
        original: HeaderMap,
    ) -> Self {
        Self {
            slot,
            report,
            exchange,
            original,
            stage: Stage::RequestHeaders,
            paused: false,
            buffering: false,
            coalesce: false,
            chunk: 0,
            forwarded_body: Vec::new(),
            outgoing: None,
            delivered_body: Vec::new(),
            outcome: None,
            bypass: false,
            finished: false,
            busy: false,
        }
    }
}
