//! The global filter's configuration: the `typed_config` of Envoy's rate limit filter
//! (`envoy.extensions.filters.http.ratelimit.v3.RateLimit`, envoyproxy/envoy
//! `api/envoy/extensions/filters/http/ratelimit/v3/rate_limit.proto`), pasted as it is, in
//! snake_case (the lowerCamelCase JSON names are accepted too). Fields a filter cannot honour
//! are refused with their path, never ignored.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::settings::{
    HeaderValue, HeaderValueOption, HttpStatus, RateLimit, RuntimeFractionalPercent,
    XRateLimitHeaders, proto_duration,
};

/// The type URL a pasted `typed_config` may carry.
pub const TYPE_URL: &str =
    "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit";

/// The global filter's settings (see the module).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// `@type`, when the typed_config is pasted whole.
    #[serde(rename = "@type")]
    pub type_url: Option<String>,
    /// The domain sent to the service (required).
    pub domain: String,
    /// Only `rate_limits` entries of this stage apply (0..=10).
    pub stage: u32,
    /// `internal`, `external` or `both` (the default): which requests are limited, by
    /// `x-envoy-internal: true`.
    #[serde(alias = "requestType")]
    pub request_type: String,
    /// How long the service may take (20 ms; 0: no timeout of Envoy's, here a cap).
    #[serde(deserialize_with = "optional_duration")]
    pub timeout: Option<Duration>,
    /// Deny (with `status_on_error`) when the service fails, instead of letting through.
    #[serde(alias = "failureModeDeny")]
    pub failure_mode_deny: bool,
    /// A runtime share overriding `failure_mode_deny`: refused.
    #[serde(alias = "failureModeDenyPercent")]
    pub failure_mode_deny_percent: Option<serde_json::Value>,
    /// gRPC requests limited get RESOURCE_EXHAUSTED rather than UNAVAILABLE.
    #[serde(alias = "rateLimitedAsResourceExhausted")]
    pub rate_limited_as_resource_exhausted: bool,
    /// Where the service is (required).
    #[serde(alias = "rateLimitService")]
    pub rate_limit_service: Option<RateLimitService>,
    /// `OFF` or `DRAFT_VERSION_03`: `x-ratelimit-*` headers from the service's statuses.
    #[serde(alias = "enableXRatelimitHeaders")]
    pub enable_x_ratelimit_headers: XRateLimitHeaders,
    /// No `x-envoy-ratelimited: true` on limited responses.
    #[serde(alias = "disableXEnvoyRatelimitedHeader")]
    pub disable_x_envoy_ratelimited_header: bool,
    /// The status of a limited reply (429; a code under 400 is 429).
    #[serde(alias = "rateLimitedStatus")]
    pub rate_limited_status: Option<HttpStatus>,
    /// Added to the limited reply.
    #[serde(alias = "responseHeadersToAdd")]
    pub response_headers_to_add: Vec<HeaderValueOption>,
    /// The status of the reply when the service fails and `failure_mode_deny` (500).
    #[serde(alias = "statusOnError")]
    pub status_on_error: Option<HttpStatus>,
    /// Inserted in the statistics' names: `ratelimit.<stat_prefix>.ok`.
    #[serde(alias = "statPrefix")]
    pub stat_prefix: String,
    /// The share of requests the filter looks at (100% when unset).
    #[serde(alias = "filterEnabled")]
    pub filter_enabled: Option<RuntimeFractionalPercent>,
    /// The share of over-limit requests that are denied (100% when unset).
    #[serde(alias = "filterEnforced")]
    pub filter_enforced: Option<RuntimeFractionalPercent>,
    /// How descriptors are made from a request (required to limit anything here).
    #[serde(alias = "rateLimits")]
    pub rate_limits: Vec<RateLimit>,
    /// Calls made when the stream ends: refused (a filter's call holds a request).
    #[serde(alias = "applyOnStreamDone")]
    pub apply_on_stream_done: bool,
}

/// `envoy.config.ratelimit.v3.RateLimitServiceConfig`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitService {
    /// The gRPC service.
    #[serde(alias = "grpcService")]
    pub grpc_service: Option<GrpcService>,
    /// `V3` (the only version Envoy still speaks).
    #[serde(alias = "transportApiVersion")]
    pub transport_api_version: Option<String>,
}

/// `envoy.config.core.v3.GrpcService`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcService {
    /// Envoy's own gRPC client to a cluster.
    #[serde(alias = "envoyGrpc")]
    pub envoy_grpc: Option<EnvoyGrpc>,
    /// The Google C++ gRPC client: refused (a filter's call goes through a cluster).
    #[serde(alias = "googleGrpc")]
    pub google_grpc: Option<serde_json::Value>,
    /// The stream's timeout; the filter's `timeout` is the call's.
    #[serde(deserialize_with = "optional_duration")]
    pub timeout: Option<Duration>,
    /// Metadata sent with every call.
    #[serde(alias = "initialMetadata")]
    pub initial_metadata: Vec<HeaderValue>,
    /// Retries: refused.
    #[serde(alias = "retryPolicy")]
    pub retry_policy: Option<serde_json::Value>,
}

/// `GrpcService.EnvoyGrpc`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnvoyGrpc {
    /// The upstream cluster (required).
    #[serde(alias = "clusterName")]
    pub cluster_name: String,
    /// `:authority` of the calls: refused (the proxy sets the cluster's).
    pub authority: String,
    /// Retries: refused.
    #[serde(alias = "retryPolicy")]
    pub retry_policy: Option<serde_json::Value>,
    /// A cap on the answer's size: refused.
    #[serde(alias = "maxReceiveMessageLength")]
    pub max_receive_message_length: Option<serde_json::Value>,
    /// Whether Envoy's own headers are left out of the call: refused.
    #[serde(alias = "skipEnvoyHeaders")]
    pub skip_envoy_headers: Option<bool>,
}

/// `RateLimit.HitsAddend` (envoyproxy/envoy `api/envoy/config/route/v3/route_components.proto`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct HitsAddend {
    /// A fixed number of hits (at most 1,000,000,000).
    pub(crate) number: Option<u64>,
    /// A substitution format: refused (a filter has no formatter).
    pub(crate) format: Option<String>,
}

fn optional_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    proto_duration(deserializer).map(Some)
}
