//! Scenario files: what an offline run of a filter is given (plugin configuration, connection,
//! node, upstream clusters, requests, time advances) and what it reports. Our own format:
//! unknown fields are refused so a typo is an error, not a silently ignored expectation.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::header_map::HeaderMap;
use super::properties::{Connection, Node};
use super::shared::{LogLine, Metric, SharedValue};
use super::types::LogLevel;

/// A whole scenario.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scenario {
    /// What the run is about (for people).
    #[serde(default)]
    pub description: Option<String>,
    /// The plugin as Envoy would be configured with it.
    #[serde(default)]
    pub plugin: PluginConfig,
    /// The proxy's node (`node` property; Istio's workload metadata).
    #[serde(default)]
    pub node: Node,
    /// The downstream connection every request arrives on.
    #[serde(default)]
    pub connection: Connection,
    /// Upstream clusters callouts may target, with the answers they give, in order.
    #[serde(default)]
    pub clusters: BTreeMap<String, Vec<CalloutReply>>,
    /// Requests and clock advances, in order.
    #[serde(default)]
    pub steps: Vec<Step>,
}

/// Envoy's `PluginConfig` + `VmConfig`, as much as a filter can observe.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginConfig {
    /// `PluginConfig.name` (Istio: `<namespace>.<name>`), the `plugin_name` property.
    #[serde(default = "default_plugin_name")]
    pub name: String,
    /// `root_id` (Istio's `pluginName`).
    #[serde(default)]
    pub root_id: String,
    /// `vm_id`: the shared-data and queue namespace.
    #[serde(default)]
    pub vm_id: String,
    /// Plugin configuration: a string is passed as is, anything else as compact JSON (what
    /// Istio does with `pluginConfig`); absent means 0 bytes.
    #[serde(default)]
    pub configuration: Option<Json>,
    /// VM configuration, same encoding.
    #[serde(default)]
    pub vm_configuration: Option<Json>,
    /// Environment variables of the VM (`vm_config.environment_variables`).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// What happens to requests once the VM has failed.
    #[serde(default)]
    pub fail_strategy: FailStrategy,
    /// Worker threads, each with its own VM (Envoy's `--concurrency`).
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Level of Envoy's `wasm` logger (what `proxy_get_log_level` answers).
    #[serde(default = "default_log_level")]
    pub log_level: LogLevel,
}

fn default_plugin_name() -> String {
    "palisade".into()
}

fn default_workers() -> usize {
    2
}

fn default_log_level() -> LogLevel {
    LogLevel::Info
}

impl Default for PluginConfig {
    fn default() -> Self {
        Self {
            name: default_plugin_name(),
            root_id: String::new(),
            vm_id: String::new(),
            configuration: None,
            vm_configuration: None,
            env: BTreeMap::new(),
            fail_strategy: FailStrategy::default(),
            workers: default_workers(),
            log_level: default_log_level(),
        }
    }
}

/// Envoy's `failure_policy` (Istio's `failStrategy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailStrategy {
    /// A failed VM answers 503 `wasm_fail_stream` (the default).
    #[default]
    FailClose,
    /// A failed VM is bypassed: requests pass as if the filter were absent.
    FailOpen,
    /// A failed VM is replaced by a new one for later requests (backoff 1 s).
    FailReload,
}

/// How a configuration value becomes bytes.
pub(crate) fn configuration_bytes(value: Option<&Json>) -> Vec<u8> {
    match value {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::String(s)) => s.clone().into_bytes(),
        Some(other) => other.to_string().into_bytes(),
    }
}

/// One step.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Step {
    /// Move the virtual clock: ticks fire and delayed callouts answer.
    Advance {
        /// How far, e.g. `1500ms`, `2s`.
        #[serde(with = "duration_text")]
        advance: Duration,
    },
    /// One HTTP stream.
    Request(Box<Exchange>),
}

/// A request and the upstream's answer to it, if it gets that far.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Exchange {
    /// A name for the report.
    #[serde(default)]
    pub name: Option<String>,
    /// The worker (VM) the stream lands on; by default round-robin.
    #[serde(default)]
    pub worker: Option<usize>,
    /// The downstream connection this request arrives on, instead of the scenario's. Steps
    /// with the same connection share it (one `connection.id`); a connection that differs from
    /// an earlier one with the same id gets a new id, since Envoy never gives two connections
    /// one id.
    #[serde(default)]
    pub connection: Option<Connection>,
    /// What the client sends.
    pub request: Request,
    /// What the upstream answers (default 200, no body).
    #[serde(default)]
    pub response: Response,
}

/// An HTTP request as the client sends it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Request {
    /// `:method`.
    #[serde(default = "default_method")]
    pub method: String,
    /// `:path`, with the query.
    #[serde(default = "default_path")]
    pub path: String,
    /// `:authority`.
    #[serde(default = "default_authority")]
    pub authority: String,
    /// `:scheme`.
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// Other headers, in order.
    #[serde(default)]
    pub headers: Headers,
    /// The body in the chunks it arrives in (one string = one chunk).
    #[serde(default)]
    pub body: Body,
    /// Trailers, if any.
    #[serde(default)]
    pub trailers: Option<Headers>,
    /// `request.protocol`.
    #[serde(default = "default_protocol")]
    pub protocol: String,
    /// The route Envoy's connection manager chose for the request before the filters run
    /// (properties `xds.route_name` and `xds.cluster_name`); none by default.
    #[serde(default)]
    pub route: Option<Route>,
}

/// A request's route, as the connection manager caches it at decodeHeaders (envoyproxy/envoy
/// `ConnectionManagerImpl::ActiveStream::refreshCachedRoute`, which also sets the stream's
/// upstream cluster).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Route {
    /// The route's name.
    #[serde(default)]
    pub name: String,
    /// The upstream cluster it sends the request to.
    #[serde(default)]
    pub cluster: Option<String>,
}

fn default_method() -> String {
    "GET".into()
}
fn default_path() -> String {
    "/".into()
}
fn default_authority() -> String {
    "example.com".into()
}
fn default_scheme() -> String {
    "http".into()
}
fn default_protocol() -> String {
    "HTTP/1.1".into()
}

/// The upstream's response.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Response {
    /// `:status`.
    #[serde(default = "default_status")]
    pub status: u16,
    /// Headers, in order.
    #[serde(default)]
    pub headers: Headers,
    /// Body chunks.
    #[serde(default)]
    pub body: Body,
    /// Trailers, if any.
    #[serde(default)]
    pub trailers: Option<Headers>,
}

fn default_status() -> u16 {
    200
}

impl Default for Response {
    fn default() -> Self {
        Self {
            status: default_status(),
            headers: Headers::default(),
            body: Body::default(),
            trailers: None,
        }
    }
}

/// Headers as a list of `[name, value]` pairs or a map of name to value (or to a list).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(from = "HeadersText")]
pub struct Headers(pub Vec<(String, String)>);

#[derive(Deserialize)]
#[serde(untagged)]
enum HeadersText {
    Pairs(Vec<(String, String)>),
    Map(BTreeMap<String, OneOrMany>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl From<HeadersText> for Headers {
    fn from(text: HeadersText) -> Self {
        match text {
            HeadersText::Pairs(p) => Self(p),
            HeadersText::Map(m) => Self(
                m.into_iter()
                    .flat_map(|(k, v)| match v {
                        OneOrMany::One(one) => vec![(k, one)],
                        OneOrMany::Many(many) => many.into_iter().map(|v| (k.clone(), v)).collect(),
                    })
                    .collect(),
            ),
        }
    }
}

/// A body as one string or a list of chunks.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(from = "BodyText")]
pub struct Body(pub Vec<String>);

#[derive(Deserialize)]
#[serde(untagged)]
enum BodyText {
    One(String),
    Chunks(Vec<String>),
}

impl From<BodyText> for Body {
    fn from(text: BodyText) -> Self {
        match text {
            BodyText::One(s) if s.is_empty() => Self(Vec::new()),
            BodyText::One(s) => Self(vec![s]),
            BodyText::Chunks(c) => Self(c.into_iter().filter(|c| !c.is_empty()).collect()),
        }
    }
}

/// How a cluster answers one callout.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CalloutReply {
    /// HTTP `:status` (HTTP calls).
    #[serde(default = "default_status")]
    pub status: u16,
    /// Response headers (or gRPC initial metadata).
    #[serde(default)]
    pub headers: Headers,
    /// Response body (or the gRPC response message).
    #[serde(default)]
    pub body: String,
    /// The body as base64, for binary answers such as a protobuf response message; replaces
    /// `body`.
    #[serde(default, deserialize_with = "base64_bytes")]
    pub body_base64: Option<Vec<u8>>,
    /// Trailers (or gRPC trailing metadata).
    #[serde(default)]
    pub trailers: Headers,
    /// gRPC status code (gRPC calls; 0 = OK).
    #[serde(default)]
    pub grpc_status: u32,
    /// gRPC status message.
    #[serde(default)]
    pub grpc_message: String,
    /// How long the upstream takes; past the call's timeout Envoy answers 504 itself.
    #[serde(default, with = "duration_text")]
    pub delay: Duration,
    /// The connection resets instead of answering (HTTP: no headers, status 11 "reset").
    #[serde(default)]
    pub reset: bool,
}

impl CalloutReply {
    /// The body's bytes: `bodyBase64` when given, else `body`.
    #[must_use]
    pub fn body_bytes(&self) -> Vec<u8> {
        self.body_base64
            .clone()
            .unwrap_or_else(|| self.body.clone().into_bytes())
    }
}

fn base64_bytes<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<u8>>, D::Error> {
    use base64::Engine;
    let text = String::deserialize(deserializer)?;
    base64::engine::general_purpose::STANDARD
        .decode(text.as_bytes())
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("bodyBase64 is not base64: {e}")))
}

/// What a run reports.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Whether the plugin was accepted (canary started and configured).
    pub accepted: bool,
    /// Why it was rejected, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected: Option<String>,
    /// The start-up callbacks per VM, in order (`base`, `canary`, `worker-N`).
    pub startup: Vec<String>,
    /// One entry per request step.
    pub requests: Vec<RequestReport>,
    /// The plugin's teardown at the end: root contexts' `proxy_on_done`/`proxy_on_delete`.
    pub shutdown: Vec<String>,
    /// VM failures, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
    /// Everything the plugin logged.
    pub logs: Vec<LogLine>,
    /// Stats the plugin defined, as `/stats` shows them.
    pub metrics: BTreeMap<String, Metric>,
    /// Shared data at the end.
    pub shared_data: BTreeMap<String, SharedValue>,
    /// Callouts the plugin made, in order.
    pub callouts: Vec<CalloutReport>,
}

/// What happened to one request.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestReport {
    /// The step's name, or `request <n>`.
    pub name: String,
    /// The worker VM it ran on.
    pub worker: usize,
    /// Its context id in that VM.
    pub context: u32,
    /// How the stream ended.
    pub outcome: Outcome,
    /// What reached the upstream, if anything did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<Forwarded>,
    /// What the client received, if it received anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<Delivered>,
    /// The callbacks made on this stream's context, in order.
    pub callbacks: Vec<String>,
    /// Hostcalls the module made while handling this stream.
    pub hostcalls: u64,
    /// Wall time spent in this stream's callbacks, hostcalls included: what Envoy would count
    /// as the filter's cost. For benchmarks; not in the report's JSON (it differs run to run).
    #[serde(skip)]
    pub callback_time: std::time::Duration,
    /// The part of `callback_time` spent inside hostcalls (the host's work); the rest is the
    /// guest's own CPU. Not in the JSON either.
    #[serde(skip)]
    pub hostcall_time: std::time::Duration,
}

/// How a request's stream ended, named in reports (and in test suites' expectations) as
/// `upstream`, `local-reply`, `reset`, `fail-open`, `fail-closed` or `pending`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Forwarded upstream; the client got the upstream's response (as the filter changed it).
    Upstream,
    /// The filter answered with `proxy_send_local_response`.
    LocalReply,
    /// The filter reset the stream (`proxy_close_stream`).
    Reset,
    /// The VM had failed and the failure policy is FAIL_OPEN: passed as if the filter were absent.
    FailOpen,
    /// The VM had failed and the failure policy closes: 503 `wasm_fail_stream`.
    FailClosed,
    /// Still paused when the scenario ended.
    Pending,
}

impl Outcome {
    /// The outcome's name in reports.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Upstream => "upstream",
            Self::LocalReply => "local-reply",
            Self::Reset => "reset",
            Self::FailOpen => "fail-open",
            Self::FailClosed => "fail-closed",
            Self::Pending => "pending",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The request as forwarded upstream.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Forwarded {
    /// Headers the filter added (or changed to a new value).
    pub headers_added: Vec<(String, String)>,
    /// Headers the filter removed (or whose old value it replaced).
    pub headers_removed: Vec<(String, String)>,
    /// The body as forwarded.
    pub body: String,
    /// Trailers as forwarded.
    #[serde(skip_serializing_if = "HeaderMap::is_empty")]
    pub trailers: HeaderMap,
}

/// The response as the client got it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivered {
    /// HTTP status.
    pub status: u16,
    /// Envoy's response code details (`via_upstream`, a local reply's details, `wasm_fail_stream`).
    pub details: String,
    /// Headers, pseudo-headers excluded.
    pub headers: HeaderMap,
    /// Body.
    pub body: String,
    /// Trailers.
    #[serde(skip_serializing_if = "HeaderMap::is_empty")]
    pub trailers: HeaderMap,
}

/// A callout as the upstream saw it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CalloutReport {
    /// The worker VM that made it.
    pub worker: usize,
    /// `http` or `grpc <service>/<method>`.
    pub kind: String,
    /// Target cluster.
    pub cluster: String,
    /// Request headers (gRPC: initial metadata).
    pub headers: HeaderMap,
    /// Request body (gRPC: the message), as text.
    pub body: String,
    /// The timeout the module asked for, in ms (0 = none).
    pub timeout_ms: u64,
}

/// Durations written as `250ms`, `2s`, `1m` or a bare number of milliseconds.
mod duration_text {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Text {
            Millis(u64),
            Text(String),
        }
        match Text::deserialize(d)? {
            Text::Millis(ms) => Ok(Duration::from_millis(ms)),
            Text::Text(t) => parse(&t).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "invalid duration {t:?}: write a number with ms, s or m, e.g. 250ms"
                ))
            }),
        }
    }

    pub(super) fn parse(text: &str) -> Option<Duration> {
        let t = text.trim();
        let (number, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit())?);
        let n: u64 = number.parse().ok()?;
        match unit {
            "ms" => Some(Duration::from_millis(n)),
            "s" => Some(Duration::from_secs(n)),
            "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn outcomes_are_named_as_reports_have_always_named_them() {
        let all = [
            (Outcome::Upstream, "upstream"),
            (Outcome::LocalReply, "local-reply"),
            (Outcome::Reset, "reset"),
            (Outcome::FailOpen, "fail-open"),
            (Outcome::FailClosed, "fail-closed"),
            (Outcome::Pending, "pending"),
        ];
        for (outcome, name) in all {
            assert_eq!(serde_json::to_value(outcome).unwrap(), name);
            assert_eq!(outcome.to_string(), name);
            let parsed: Outcome = serde_json::from_value(name.into()).unwrap();
            assert_eq!(parsed, outcome);
        }
    }
}
