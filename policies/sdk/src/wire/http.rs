//! An HTTP request as a proxy filter sees it at the request-headers phase, and the filter's
//! verdict: continue (with header changes) or answer locally. Serde only; no ABI here.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

use super::headers::{HeaderMapError, Headers};

/// One HTTP request at the request-headers phase, as the proxy-wasm adapter builds it from
/// Envoy's header map and properties. Every field has a default, so fixtures name only what
/// matters (`HttpRequest::default()` is `GET /` over `http`).
///
/// ```
/// use palisade_sdk::wire::HttpRequest;
/// let request: HttpRequest = serde_json::from_str(r#"{
///   "path": "/api?q=1",
///   "headers": [["x-request-id", "abc"], ["accept", "*/*"], ["accept", "text/html"]],
///   "connection": {"mtls": true, "peerPrincipal": "spiffe://cluster.local/ns/a/sa/b"}
/// }"#).unwrap();
/// assert_eq!(request.method, "GET");
/// assert_eq!(request.header("Accept"), Some("*/*"));
/// assert_eq!(request.header("x-missing"), None);
/// assert!(request.connection.mtls);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpRequest {
    /// The request method (`:method`), as sent: `GET`, `POST`, ...
    pub method: String,
    /// The request target (`:path`) with its query, as received: not normalised here, so a
    /// policy that matches paths normalises them itself.
    pub path: String,
    /// The authority (`:authority`; the `Host` header in HTTP/1.1); empty when absent.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub authority: String,
    /// The scheme (`:scheme`): `http` or `https`.
    pub scheme: String,
    /// Every other header in arrival order, repeated names repeated; names lower-cased (Envoy
    /// lower-cases them), pseudo-headers (`:method`, ...) excluded. Values that are not UTF-8
    /// arrive with U+FFFD in place of the invalid bytes.
    #[serde(skip_serializing_if = "Headers::is_empty")]
    pub headers: Headers,
    /// The downstream connection the request arrived on.
    pub connection: Connection,
    /// The route the proxy chose for the request; read only for policies that ask for it
    /// (`HttpPolicy::reads_route`), empty otherwise.
    #[serde(skip_serializing_if = "Route::is_empty")]
    pub route: Route,
    /// 16 random bytes the adapter draws for this request (the policy itself may not use
    /// randomness); fixtures give them as 32 hex digits, all zero by default.
    pub nonce: Nonce,
    /// The answers to the calls this request's verdicts asked for ([`HttpVerdict::Call`]), in
    /// order; empty at the first evaluation. Filled by the adapter (and by the fixture runner
    /// from `host.callouts`), never read from a fixture's request.
    #[serde(skip)]
    pub answers: Vec<Answer>,
    /// The request body, as far as the policy reads bodies ([`HttpPolicy::reads_body`]): at most
    /// its [`BodyLimit::max_bytes`]; empty for a policy that does not read bodies and for a
    /// request without one. Fixtures give it as text (the whole body as the client sends it; the
    /// runners apply the limit as the adapter does).
    ///
    /// [`HttpPolicy::reads_body`]: crate::HttpPolicy::reads_body
    #[serde(skip_serializing_if = "Vec::is_empty", with = "body_text")]
    pub body: Vec<u8>,
    /// Whether [`body`](Self::body) is only the first part of a longer body (Envoy ext_authz's
    /// `x-envoy-auth-partial-body: true`): set by the adapter, never read from a fixture.
    #[serde(skip)]
    pub body_partial: bool,
}

impl Default for HttpRequest {
    fn default() -> Self {
        Self {
            method: "GET".to_owned(),
            path: "/".to_owned(),
            authority: String::new(),
            scheme: "http".to_owned(),
            headers: Headers::new(),
            connection: Connection::default(),
            route: Route::default(),
            nonce: Nonce::default(),
            answers: Vec::new(),
            body: Vec::new(),
            body_partial: false,
        }
    }
}

impl HttpRequest {
    /// The first value of the header `name` (compared case-insensitively), if present.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// The answer to the call `id`, once it came.
    #[must_use]
    pub fn answer(&self, id: &str) -> Option<&Answer> {
        self.answers.iter().find(|a| a.id == id)
    }

    /// Whether the request is gRPC as Envoy's connection manager tells
    /// (`Grpc::Common::isGrpcRequestHeaders`): `content-type: application/grpc`, alone or with a
    /// `+` suffix or parameters (`application/grpc-web` is not). Envoy answers such a request's
    /// local reply as gRPC: status 200, `grpc-status`, the body as `grpc-message`.
    ///
    /// ```
    /// use palisade_sdk::wire::HttpRequest;
    /// let mut request = HttpRequest::default();
    /// assert!(!request.is_grpc());
    /// for (content_type, grpc) in [("application/grpc", true), ("application/grpc+proto", true),
    ///     ("application/grpc-web", false), ("application/json", false)] {
    ///     request.headers = vec![("content-type", content_type)].into();
    ///     assert_eq!(request.is_grpc(), grpc, "{content_type}");
    /// }
    /// ```
    #[must_use]
    pub fn is_grpc(&self) -> bool {
        self.header("content-type").is_some_and(|value| {
            value
                .strip_prefix("application/grpc")
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['+', ';']))
        })
    }

    /// The value of cookie `name` from the `cookie` headers (RFC 6265 `name=value` pairs
    /// separated by `;`), the first when it is sent twice, without surrounding double quotes.
    ///
    /// ```
    /// use palisade_sdk::wire::HttpRequest;
    /// let mut request = HttpRequest::default();
    /// request.headers.push("cookie", "a=1; session=\"x.y\"");
    /// assert_eq!(request.cookie("session"), Some("x.y"));
    /// assert_eq!(request.cookie("b"), None);
    /// ```
    #[must_use]
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .get_all("cookie")
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| {
                v.strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v)
            })
    }

    /// Sets [`body`](Self::body) to what a policy reading bodies with `limit` sees of the bytes
    /// `received`: at most `limit.max_bytes` of them, [`body_partial`](Self::body_partial) when
    /// more came (Envoy ext_authz's `with_request_body`).
    ///
    /// ```
    /// use palisade_sdk::wire::{BodyLimit, HttpRequest};
    /// let mut request = HttpRequest::default();
    /// request.set_body(BodyLimit { max_bytes: 4, allow_partial: true }, b"abcdef");
    /// assert_eq!((request.body.as_slice(), request.body_partial), (&b"abcd"[..], true));
    /// request.set_body(BodyLimit { max_bytes: 4, allow_partial: true }, b"abcd");
    /// assert_eq!((request.body.as_slice(), request.body_partial), (&b"abcd"[..], false));
    /// ```
    pub fn set_body(&mut self, limit: BodyLimit, received: &[u8]) {
        let kept = received.get(..limit.max_bytes).unwrap_or(received);
        self.body.clear();
        self.body.extend_from_slice(kept);
        self.body_partial = kept.len() < received.len();
    }

    /// Builds a request from a header map as proxy-wasm serializes it (see
    /// [`Headers::from_map`]), with the pseudo-headers a proxy hands over (HTTP/2 request
    /// pseudo-headers, RFC 9113 section 8.3.1): `:method`, `:path`, `:authority` and `:scheme`
    /// fill their fields (empty when missing), other pseudo-headers (`:protocol`) are dropped,
    /// and the other names are lower-cased. Connection and nonce are defaults.
    ///
    /// # Errors
    /// [`HeaderMapError`] when the map's lengths do not fit its bytes.
    pub fn from_header_map(bytes: Vec<u8>) -> Result<Self, HeaderMapError> {
        let mut request = Self::default();
        request.read_header_map(bytes)?;
        Ok(request)
    }

    /// [`HttpRequest::from_header_map`] into this request: method, path, authority, scheme and
    /// headers replaced (their strings' room kept: a filter reads one request after another),
    /// answers cleared; connection and nonce left as they are.
    ///
    /// # Errors
    /// [`HeaderMapError`] when the map's lengths do not fit its bytes.
    pub fn read_header_map(&mut self, bytes: Vec<u8>) -> Result<(), HeaderMapError> {
        for field in [
            &mut self.method,
            &mut self.path,
            &mut self.authority,
            &mut self.scheme,
        ] {
            field.clear();
        }
        self.answers.clear();
        self.body.clear();
        self.body_partial = false;
        let (method, path, authority, scheme) = (
            &mut self.method,
            &mut self.path,
            &mut self.authority,
            &mut self.scheme,
        );
        self.headers.read_map(bytes, |name, value| {
            let field = match name {
                ":method" => &mut *method,
                ":path" => &mut *path,
                ":authority" => &mut *authority,
                ":scheme" => &mut *scheme,
                _ => return,
            };
            field.clear();
            field.push_str(value);
        })
    }
}

/// How much of a request's body a policy reads before it decides (what Envoy's ext_authz
/// filter calls `with_request_body`): the adapter holds the body (not the headers: a proxy-wasm
/// filter that pauses its headers sees no body, so they go upstream first) until it is complete,
/// or until `max_bytes` arrived when partial bodies are allowed, and then decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimit {
    /// The most bytes held for the decision.
    pub max_bytes: usize,
    /// When the body is longer: decide on its first `max_bytes` (marked
    /// [`HttpRequest::body_partial`]) if true, else refuse the request with 413 as Envoy does when
    /// a buffering filter passes its buffer limit ([`HttpVerdict::payload_too_large`]).
    pub allow_partial: bool,
}

/// Where a body a policy reads stands, given what has arrived ([`BodyLimit::progress`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyProgress {
    /// Hold the body and wait for more.
    Wait,
    /// Decide now, on what arrived (cut to the limit).
    Decide,
    /// The body is over the limit and partial bodies are not allowed: answer 413.
    TooLarge,
}

impl BodyLimit {
    /// What to do once `received` bytes of the body arrived, `end` telling whether that is all
    /// of it (the end of the stream, or the trailers). As ext_authz: with partial bodies allowed
    /// the decision is made as soon as `max_bytes` arrived; without, a body longer than
    /// `max_bytes` is refused.
    ///
    /// ```
    /// use palisade_sdk::wire::{BodyLimit, BodyProgress};
    /// let strict = BodyLimit { max_bytes: 10, allow_partial: false };
    /// assert_eq!(strict.progress(10, false), BodyProgress::Wait);
    /// assert_eq!(strict.progress(10, true), BodyProgress::Decide);
    /// assert_eq!(strict.progress(11, false), BodyProgress::TooLarge);
    /// let partial = BodyLimit { max_bytes: 10, allow_partial: true };
    /// assert_eq!(partial.progress(10, false), BodyProgress::Decide);
    /// assert_eq!(partial.progress(4, true), BodyProgress::Decide);
    /// ```
    #[must_use]
    pub fn progress(&self, received: usize, end: bool) -> BodyProgress {
        if received > self.max_bytes && !self.allow_partial {
            BodyProgress::TooLarge
        } else if end || (self.allow_partial && received >= self.max_bytes) {
            BodyProgress::Decide
        } else {
            BodyProgress::Wait
        }
    }
}

/// [`HttpRequest::body`] as text in fixtures (bytes that are not UTF-8 written with U+FFFD).
mod body_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(body: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&String::from_utf8_lossy(body))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        String::deserialize(d).map(String::into_bytes)
    }
}

/// The first value of the header `name` (compared case-insensitively) in `headers`.
fn first_value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// An HTTP call a policy needs answered before it can decide on a request (an external
/// authorizer's check, a token introspection): the adapter holds the request, makes the call to
/// the upstream `cluster`, and evaluates the request again with the [`Answer`] in
/// [`HttpRequest::answers`]. At most [`MAX_CALLS`] calls per request; a policy asking for more
/// fails closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Callout {
    /// The policy's name for the call, handed back in the answer (`ext-authz/<provider>`).
    pub id: String,
    /// The upstream cluster (Envoy's name, e.g. Istio's `outbound|9000||authz.foo.svc.cluster.local`).
    pub cluster: String,
    /// `:method` of the call.
    pub method: String,
    /// `:path` of the call, with its query.
    pub path: String,
    /// `:authority` of the call.
    pub authority: String,
    /// Further headers, lower-case names, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    /// The request body (none when empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub body: String,
    /// How long the call may take, in milliseconds; past it the proxy answers 504 itself
    /// (a gRPC call closes with DEADLINE_EXCEEDED).
    pub timeout_ms: u32,
    /// A gRPC unary call instead of HTTP (Envoy's `proxy_grpc_call`): `method`, `path`,
    /// `authority` and `body` are then unused, and `headers` are the initial metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcCall>,
}

/// The gRPC part of a [`Callout`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcCall {
    /// The fully qualified service (`envoy.service.ratelimit.v3.RateLimitService`).
    pub service: String,
    /// The method (`ShouldRateLimit`).
    pub method: String,
    /// The request message, serialized (protobuf); base64 in JSON.
    #[serde(with = "base64_bytes")]
    pub message: Vec<u8>,
}

impl Callout {
    /// A gRPC unary call of `service`/`method` with `message` to `cluster`.
    #[must_use]
    pub fn grpc(
        id: impl Into<String>,
        cluster: impl Into<String>,
        (service, method): (&str, &str),
        message: Vec<u8>,
        timeout_ms: u32,
    ) -> Self {
        Self {
            id: id.into(),
            cluster: cluster.into(),
            method: String::new(),
            path: String::new(),
            authority: String::new(),
            headers: Vec::new(),
            body: String::new(),
            timeout_ms,
            grpc: Some(GrpcCall {
                service: service.to_owned(),
                method: method.to_owned(),
                message,
            }),
        }
    }
}

/// Bytes as base64 (standard alphabet, padded) in JSON, as protobuf's JSON mapping writes
/// `bytes` fields.
pub(crate) mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD
            .decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("not base64: {e}")))
    }
}

/// How many calls one request may make before the adapter gives up on the policy (fail closed).
pub const MAX_CALLS: usize = 4;

/// What came back from a [`Callout`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Answer {
    /// The callout's `id`.
    pub id: String,
    /// The answer's HTTP status; 0 when no answer came: the proxy refused the call (an unknown
    /// cluster) or the connection reset. A timeout is the proxy's own 504.
    pub status: u16,
    /// The answer's headers (lower-case names, pseudo-headers left out), in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    /// The answer's body, as text (invalid UTF-8 replaced with U+FFFD).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub body: String,
    /// A gRPC call's status (0 OK, 4 DEADLINE_EXCEEDED, 14 UNAVAILABLE...); `None` for an HTTP
    /// call, and for a gRPC call the proxy refused (an unknown cluster). `status` stays 0 for
    /// gRPC calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_status: Option<u32>,
    /// The gRPC status message of a call that failed.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub grpc_message: String,
    /// A gRPC call's response message, serialized (base64 in JSON).
    #[serde(skip_serializing_if = "Vec::is_empty", with = "base64_bytes")]
    pub message: Vec<u8>,
}

impl Answer {
    /// The first value of the answer's header `name` (compared case-insensitively).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        first_value(&self.headers, name)
    }
}

/// The route Envoy's connection manager chose for a request before the filters run (its
/// attributes `xds.route_name` and `xds.cluster_name`); what the proxy does not know is `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Route {
    /// The route's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The upstream cluster the route sends the request to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}

impl Route {
    /// Whether nothing is known of the route.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.cluster.is_none()
    }
}

/// The downstream connection of a request, from Envoy's connection attributes; what the proxy
/// does not know is `None` (or `false`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Connection {
    /// The proxy's id of the connection (Envoy's `connection.id`), unique while the proxy
    /// runs: what per-connection state is kept under.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// The peer's address as `ip:port` (Envoy's `source.address`; IPv6 as `[::1]:port`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_address: Option<String>,
    /// The local address the connection arrived on, `ip:port` (Envoy's `destination.address`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_address: Option<String>,
    /// The local port the connection arrived on (Envoy's `destination.port`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_port: Option<u16>,
    /// The TLS server name the client asked for (Envoy's `connection.requested_server_name`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_server_name: Option<String>,
    /// Whether the connection is TLS with a verified peer certificate (Envoy's `connection.mtls`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub mtls: bool,
    /// The first URI SAN of the peer certificate (Envoy's `connection.uri_san_peer_certificate`);
    /// in Istio the peer's SPIFFE id, `spiffe://cluster.local/ns/<ns>/sa/<sa>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_principal: Option<String>,
}

/// 16 random bytes for one request, supplied by the adapter; written as 32 lower-case hex digits.
///
/// ```
/// use palisade_sdk::wire::Nonce;
/// let nonce: Nonce = "000102030405060708090a0b0c0d0e0f".parse().unwrap();
/// assert_eq!(nonce.uuid_v4(), "00010203-0405-4607-8809-0a0b0c0d0e0f");
/// assert_eq!(nonce.to_string(), "000102030405060708090a0b0c0d0e0f");
/// assert!("0001".parse::<Nonce>().is_err());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Nonce(pub [u8; 16]);

impl Nonce {
    /// A version 4 (random) UUID made of these bytes (RFC 9562 section 5.4: the version and
    /// variant bits are overwritten, the other 122 bits are the nonce's), lower-case and hyphenated.
    #[must_use]
    pub fn uuid_v4(&self) -> String {
        let mut bytes = self.0;
        if let Some(version) = bytes.get_mut(6) {
            *version = (*version & 0x0f) | 0x40;
        }
        if let Some(variant) = bytes.get_mut(8) {
            *variant = (*variant & 0x3f) | 0x80;
        }
        let mut uuid = String::with_capacity(36);
        for (i, byte) in bytes.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                uuid.push('-');
            }
            uuid.extend(hex(*byte));
        }
        uuid
    }
}

/// A byte's two lower-case hex digits. Digit by digit: the formatter's `{:02x}` per byte was
/// most of a request id's cost in wasm, and a filter makes one per request.
fn hex(byte: u8) -> [char; 2] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digit = |nibble: u8| {
        char::from(
            DIGITS
                .get(usize::from(nibble & 0x0f))
                .copied()
                .unwrap_or(b'0'),
        )
    };
    [digit(byte >> 4), digit(byte)]
}

impl fmt::Display for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits: String = self.0.iter().copied().flat_map(hex).collect();
        f.write_str(&digits)
    }
}

/// Text that is not 32 hex digits, given as a [`Nonce`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a nonce must be 32 hex digits (16 bytes), not {0:?}")]
pub struct NonceError(String);

impl FromStr for Nonce {
    type Err = NonceError;

    fn from_str(text: &str) -> Result<Self, NonceError> {
        let invalid = || NonceError(text.to_owned());
        if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        let mut bytes = [0u8; 16];
        for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| invalid())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| invalid())?;
        }
        Ok(Self(bytes))
    }
}

impl Serialize for Nonce {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Nonce {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// A proxy filter's decision on one request. A denial is a verdict too; errors ("could not
/// decide") are not.
///
/// ```
/// use palisade_sdk::wire::{HeaderChange, HttpVerdict};
/// let allow = HttpVerdict::Continue {
///     request_headers: vec![HeaderChange::set("x-request-id", "42")],
///     response_headers: vec![],
/// };
/// assert_eq!(
///     serde_json::to_string(&allow).unwrap(),
///     r#"{"action":"continue","requestHeaders":[{"op":"set","name":"x-request-id","value":"42"}]}"#
/// );
/// let deny = HttpVerdict::deny(403, "denied-path", r#"path "/admin" matches "/admin""#);
/// assert!(!deny.is_allowed());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "action",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum HttpVerdict {
    /// Let the request through, with these header changes.
    Continue {
        /// Changes to the request headers, applied in order before the request goes upstream.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        request_headers: Vec<HeaderChange>,
        /// Changes to the response headers, applied in order when the response headers arrive
        /// (from upstream or from a local reply of the proxy).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        response_headers: Vec<HeaderChange>,
    },
    /// Answer the request locally; it never reaches upstream.
    Deny {
        /// The HTTP status of the local reply (400..=599 for a denial).
        status: u16,
        /// Short, stable, kebab-case reason (`denied-path`); meant as Envoy's response code
        /// details (`%RESPONSE_CODE_DETAILS%`).
        reason: String,
        /// Human-readable message naming what was matched (rule and value); logged, not sent.
        message: String,
        /// The body of the local reply, sent to the client.
        body: String,
        /// Extra headers of the local reply (lower-case names), in order.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        headers: Vec<(String, String)>,
    },
    /// Hold the request, make this call, and decide again with its answer.
    Call {
        /// The call to make.
        callout: Callout,
    },
}

impl HttpVerdict {
    /// Let the request through unchanged.
    #[must_use]
    pub fn allow() -> Self {
        Self::Continue {
            request_headers: Vec::new(),
            response_headers: Vec::new(),
        }
    }

    /// A local reply with `status`, a stable reason and a message naming what was matched,
    /// with an empty body and no extra headers (the message is not sent to the client).
    #[must_use]
    pub fn deny(status: u16, reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Deny {
            status,
            reason: reason.into(),
            message: message.into(),
            body: String::new(),
            headers: Vec::new(),
        }
    }

    /// Envoy's answer when a filter holding a request body passes the buffer limit: 413 with
    /// the body `Payload Too Large` and the details `request_payload_too_large`. The adapter
    /// gives it for a body over a policy's [`BodyLimit`] when partial bodies are not allowed.
    #[must_use]
    pub fn payload_too_large(limit: BodyLimit) -> Self {
        Self::Deny {
            status: 413,
            reason: "request_payload_too_large".to_owned(),
            message: format!(
                "the request body is over the {} bytes the policy reads",
                limit.max_bytes
            ),
            body: "Payload Too Large".to_owned(),
            headers: Vec::new(),
        }
    }

    /// The verdict as an adapter can carry it out when it was made on the request body
    /// ([`BodyLimit`]): the request headers went upstream before the body, so a verdict that
    /// changes them cannot be carried out.
    ///
    /// # Errors
    /// A message naming the headers when the verdict lets the request through with request
    /// header changes; the adapter fails closed on it.
    pub fn after_body(self) -> Result<Self, String> {
        match &self {
            Self::Continue {
                request_headers, ..
            } if !request_headers.is_empty() => Err(format!(
                "the decision made on the request body changes the request headers {:?}, which went upstream before the body",
                request_headers
                    .iter()
                    .map(HeaderChange::name)
                    .collect::<Vec<_>>()
            )),
            _ => Ok(self),
        }
    }

    /// Whether the request goes on upstream (a call asked for is not a decision yet: false).
    #[must_use]
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Continue { .. })
    }
}

/// One change to a header map, applied by the proxy (names lower-case).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum HeaderChange {
    /// Replace every value of `name` with `value` (adds the header when absent).
    Set {
        /// The header name.
        name: String,
        /// The new value.
        value: String,
    },
    /// Add a value to `name`, keeping the values it already has.
    Add {
        /// The header name.
        name: String,
        /// The value to add.
        value: String,
    },
    /// Remove every value of `name` (nothing happens when it is absent).
    Remove {
        /// The header name.
        name: String,
    },
}

impl HeaderChange {
    /// A [`HeaderChange::Set`].
    #[must_use]
    pub fn set(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self::Set {
            name: name.into(),
            value: value.into(),
        }
    }

    /// A [`HeaderChange::Add`].
    #[must_use]
    pub fn add(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self::Add {
            name: name.into(),
            value: value.into(),
        }
    }

    /// A [`HeaderChange::Remove`].
    #[must_use]
    pub fn remove(name: impl Into<String>) -> Self {
        Self::Remove { name: name.into() }
    }

    /// The header's name.
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Self::Set { name, .. } | Self::Add { name, .. } | Self::Remove { name } => name,
        }
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests fail by panicking")]

    use super::*;

    #[test]
    fn fixture_defaults_fill_every_omitted_field() {
        let request: HttpRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(request, HttpRequest::default());
        assert_eq!(request.nonce, Nonce([0; 16]));
        assert_eq!(request.connection.destination_port, None);
    }

    #[test]
    fn rejects_unknown_request_fields() {
        let err = serde_json::from_str::<HttpRequest>(r#"{"pth": "/"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `pth`"), "{err}");
    }

    #[test]
    fn nonce_round_trips_as_hex_and_rejects_signs() {
        let text = "ffeeddccbbaa99887766554433221100";
        let nonce: Nonce = serde_json::from_str(&format!("{text:?}")).unwrap();
        assert_eq!(serde_json::to_string(&nonce).unwrap(), format!("{text:?}"));
        // `from_str_radix` alone would accept "+f".
        assert!("+f0102030405060708090a0b0c0d0e0f".parse::<Nonce>().is_err());
        assert!("ÿÿ0102030405060708090a0b0c0d0e".parse::<Nonce>().is_err());
    }

    #[test]
    fn uuid_sets_version_and_variant_bits() {
        assert_eq!(
            Nonce([0xff; 16]).uuid_v4(),
            "ffffffff-ffff-4fff-bfff-ffffffffffff"
        );
        assert_eq!(
            Nonce([0; 16]).uuid_v4(),
            "00000000-0000-4000-8000-000000000000"
        );
    }

    #[test]
    fn verdicts_round_trip_through_json() {
        let verdicts = [
            HttpVerdict::allow(),
            HttpVerdict::Continue {
                request_headers: vec![HeaderChange::add("a", "1"), HeaderChange::remove("b")],
                response_headers: vec![HeaderChange::set("c", "2")],
            },
            HttpVerdict::Deny {
                status: 429,
                reason: "rate-limited".into(),
                message: "too many".into(),
                body: String::new(),
                headers: vec![("retry-after".into(), "1".into())],
            },
        ];
        for verdict in verdicts {
            let json = serde_json::to_string(&verdict).unwrap();
            assert_eq!(
                serde_json::from_str::<HttpVerdict>(&json).unwrap(),
                verdict,
                "{json}"
            );
        }
        let err =
            serde_json::from_str::<HttpVerdict>(r#"{"action":"continue","extra":1}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn a_request_read_again_keeps_nothing_of_the_last() {
        let serialize = crate::wire::headers::tests::serialize;
        let mut request = HttpRequest::from_header_map(serialize(&[
            (b":method", b"POST"),
            (b":path", b"/first/path/that/is/long"),
            (b":authority", b"first.example"),
            (b":scheme", b"https"),
            (b"x-first", b"1"),
            (b"x-second", b"2"),
        ]))
        .unwrap();
        request.answers.push(Answer::default());
        request.nonce = Nonce([7; 16]);
        request
            .read_header_map(serialize(&[(b":path", b"/b"), (b"x-b", b"b")]))
            .unwrap();
        assert_eq!(
            (
                request.method.as_str(),
                request.path.as_str(),
                request.authority.as_str(),
                request.scheme.as_str()
            ),
            ("", "/b", "", "")
        );
        assert_eq!(request.headers, Headers::from(vec![("x-b", "b")]));
        assert!(request.answers.is_empty());
        assert_eq!(request.nonce, Nonce([7; 16]), "the caller's to set");
        assert!(request.read_header_map(vec![1, 0, 0, 0]).is_err());
        assert!(request.headers.is_empty());
        request.read_header_map(Vec::new()).unwrap();
        assert!(request.headers.is_empty());
    }

    #[test]
    fn pseudo_headers_fill_fields_and_are_not_headers() {
        let request = HttpRequest::from_header_map(crate::wire::headers::tests::serialize(&[
            (b":path", b"/x?y"),
            (b":protocol", b"websocket"),
            (b"x-a", b"1"),
            (b":authority", b"a.example"),
            (b"X-A", b"2"),
        ]))
        .unwrap();
        assert_eq!(request.path, "/x?y");
        assert_eq!(request.authority, "a.example");
        assert_eq!(request.method, "");
        assert_eq!(
            request.headers,
            Headers::from(vec![("x-a", "1"), ("x-a", "2")])
        );
        assert_eq!(request.header("X-a"), Some("1"));
    }
}
