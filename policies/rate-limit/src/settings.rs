//! The filter's configuration: the `typed_config` of Envoy's local rate limit filter
//! (`envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit`, envoyproxy/data-plane-api
//! `envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit.proto`), pasted as it is.
//! Field names are the proto's, in snake_case as Envoy's YAML has them (the lowerCamelCase JSON
//! names are accepted too). Fields Envoy has that a filter cannot honour are refused with
//! their path, never ignored.

use std::time::Duration;

use palisade_sdk::{PolicySettings, SettingsError};
use serde::{Deserialize, Deserializer};

use crate::bucket::Shape;

/// The type URL a pasted `typed_config` may carry.
pub const TYPE_URL: &str =
    "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit";

/// Envoy's lower bound on `fill_interval`.
pub const MIN_FILL_INTERVAL: Duration = Duration::from_millis(50);

/// At most this many headers in each `*_headers_to_add` (Envoy's proto limit).
const MAX_HEADERS_TO_ADD: usize = 10;

/// The filter's settings (see the module).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// `@type`, when the typed_config is pasted whole.
    #[serde(rename = "@type")]
    pub type_url: Option<String>,
    /// Prefix of the filter's statistics (required).
    #[serde(alias = "statPrefix")]
    pub stat_prefix: String,
    /// The status of a limited request's reply (429; a code under 400 is 429).
    pub status: Option<HttpStatus>,
    /// The default bucket; without it only descriptors limit.
    #[serde(alias = "tokenBucket")]
    pub token_bucket: Option<TokenBucket>,
    /// The share of requests the filter looks at (0% when unset, as Envoy).
    #[serde(alias = "filterEnabled")]
    pub filter_enabled: Option<RuntimeFractionalPercent>,
    /// The share of those whose limit is enforced (0% when unset); the others are counted.
    #[serde(alias = "filterEnforced")]
    pub filter_enforced: Option<RuntimeFractionalPercent>,
    /// Added to a request that is over the limit but not enforced.
    #[serde(alias = "requestHeadersToAddWhenNotEnforced")]
    pub request_headers_to_add_when_not_enforced: Vec<HeaderValueOption>,
    /// Added to the limited reply.
    #[serde(alias = "responseHeadersToAdd")]
    pub response_headers_to_add: Vec<HeaderValueOption>,
    /// Buckets of their own for the request descriptors `rate_limits` makes.
    pub descriptors: Vec<Descriptor>,
    /// Which route `rate_limits` apply (only the filter's own `rate_limits` exist here).
    pub stage: u32,
    /// One set of buckets per downstream connection instead of one for the proxy.
    #[serde(alias = "localRateLimitPerDownstreamConnection")]
    pub local_rate_limit_per_downstream_connection: bool,
    /// `OFF` or `DRAFT_VERSION_03`.
    #[serde(alias = "enableXRatelimitHeaders")]
    pub enable_x_ratelimit_headers: XRateLimitHeaders,
    /// Whether the default bucket is taken from also when a descriptor matched (true).
    #[serde(alias = "alwaysConsumeDefaultTokenBucket")]
    pub always_consume_default_token_bucket: Option<bool>,
    /// gRPC requests limited get RESOURCE_EXHAUSTED rather than UNAVAILABLE.
    #[serde(alias = "rateLimitedAsResourceExhausted")]
    pub rate_limited_as_resource_exhausted: bool,
    /// How descriptors are made from a request (Envoy's route `RateLimit` entries).
    #[serde(alias = "rateLimits")]
    pub rate_limits: Vec<RateLimit>,
    /// Keys remembered per wildcard descriptor (20).
    #[serde(alias = "maxDynamicDescriptors")]
    pub max_dynamic_descriptors: Option<u32>,
    /// Route and virtual-host limits do not reach a filter: accepted only as `OVERRIDE`.
    #[serde(alias = "vhRateLimits")]
    pub vh_rate_limits: Option<String>,
    /// Sharing a budget across the local cluster needs the cluster's membership: refused.
    #[serde(alias = "localClusterRateLimit")]
    pub local_cluster_rate_limit: Option<serde_json::Value>,
    /// Ours: whether a limited reply carries `x-envoy-ratelimited: true` (true, as Envoy's
    /// documentation says; Envoy's local filter code sets it on none).
    #[serde(alias = "xEnvoyRatelimitedHeader")]
    pub x_envoy_ratelimited_header: Option<bool>,
}

/// `envoy.type.v3.HttpStatus`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpStatus {
    /// The code.
    pub code: u16,
}

/// `envoy.type.v3.TokenBucket`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenBucket {
    /// Capacity, and the tokens at the start (> 0).
    #[serde(alias = "maxTokens")]
    pub max_tokens: u32,
    /// Tokens per interval (1).
    #[serde(default, alias = "tokensPerFill")]
    pub tokens_per_fill: Option<u32>,
    /// The interval (at least 50 ms).
    #[serde(alias = "fillInterval", deserialize_with = "proto_duration")]
    pub fill_interval: Duration,
}

/// `envoy.config.core.v3.RuntimeFractionalPercent`: the runtime key is read by nobody here
/// (a filter has no runtime), so the default value is the value.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeFractionalPercent {
    /// The share.
    #[serde(alias = "defaultValue")]
    pub default_value: FractionalPercent,
    /// Envoy's runtime key (not read).
    #[serde(default, alias = "runtimeKey")]
    pub runtime_key: String,
}

/// `envoy.type.v3.FractionalPercent`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FractionalPercent {
    /// Numerator (0 when absent).
    #[serde(default)]
    pub numerator: u32,
    /// `HUNDRED` (default), `TEN_THOUSAND` or `MILLION`.
    #[serde(default)]
    pub denominator: Denominator,
}

/// The denominator of a [`FractionalPercent`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum Denominator {
    /// 100.
    #[default]
    #[serde(rename = "HUNDRED")]
    Hundred,
    /// 10,000.
    #[serde(rename = "TEN_THOUSAND")]
    TenThousand,
    /// 1,000,000.
    #[serde(rename = "MILLION")]
    Million,
}

impl FractionalPercent {
    /// Whether a request drawing `random` is in the share (Envoy: `random % d < numerator`).
    #[must_use]
    pub fn holds(&self, random: u64) -> bool {
        let denominator: u64 = match self.denominator {
            Denominator::Hundred => 100,
            Denominator::TenThousand => 10_000,
            Denominator::Million => 1_000_000,
        };
        random.checked_rem(denominator).unwrap_or(0) < u64::from(self.numerator)
    }
}

/// `envoy.config.core.v3.HeaderValueOption`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderValueOption {
    /// The header.
    pub header: HeaderValue,
    /// Deprecated `append` (true: add a value; false: replace).
    #[serde(default)]
    pub append: Option<bool>,
    /// How the value goes in.
    #[serde(default, alias = "appendAction")]
    pub append_action: Option<AppendAction>,
    /// Whether an empty value is added (false: it is not).
    #[serde(default, alias = "keepEmptyValue")]
    pub keep_empty_value: bool,
}

/// `envoy.config.core.v3.HeaderValue`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderValue {
    /// The name.
    pub key: String,
    /// The value.
    #[serde(default)]
    pub value: String,
}

/// `HeaderValueOption.HeaderAppendAction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AppendAction {
    /// Add a value (the default).
    AppendIfExistsOrAdd,
    /// Add only when absent.
    AddIfAbsent,
    /// Replace every value, or add.
    OverwriteIfExistsOrAdd,
    /// Replace only when present.
    OverwriteIfExists,
}

impl HeaderValueOption {
    /// The action in effect: `append_action`, else `append: false` = overwrite, else append.
    #[must_use]
    pub fn action(&self) -> AppendAction {
        match (self.append_action, self.append) {
            (Some(action), _) => action,
            (None, Some(false)) => AppendAction::OverwriteIfExistsOrAdd,
            (None, _) => AppendAction::AppendIfExistsOrAdd,
        }
    }
}

/// `LocalRateLimit.descriptors[]` (`envoy.extensions.common.ratelimit.v3.LocalRateLimitDescriptor`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Descriptor {
    /// The entries a request descriptor must have, in order; an empty value is a wildcard.
    pub entries: Vec<Entry>,
    /// Its bucket (required).
    #[serde(alias = "tokenBucket")]
    pub token_bucket: Option<TokenBucket>,
    /// Counted, never denies.
    #[serde(default, alias = "shadowMode")]
    pub shadow_mode: bool,
}

/// One descriptor entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// The value; empty in a configured descriptor: any value, each its own bucket.
    #[serde(default)]
    pub value: String,
}

/// `XRateLimitHeadersRFCVersion`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum XRateLimitHeaders {
    /// No headers.
    #[default]
    #[serde(rename = "OFF")]
    Off,
    /// draft-polli-ratelimit-headers-03.
    #[serde(rename = "DRAFT_VERSION_03")]
    DraftVersion03,
}

/// `envoy.config.route.v3.RateLimit`: one descriptor from its actions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Only entries of the filter's stage apply.
    #[serde(default)]
    pub stage: u32,
    /// A local filter skips an entry that has one (Envoy's runtime switch).
    #[serde(default, alias = "disableKey")]
    pub disable_key: String,
    /// The actions, each adding one entry.
    pub actions: Vec<Action>,
    /// Global only in Envoy; refused.
    #[serde(default)]
    pub limit: Option<serde_json::Value>,
    /// Not in the filter's own `rate_limits`; refused.
    #[serde(default, alias = "hitsAddend")]
    pub hits_addend: Option<serde_json::Value>,
    /// Global only; refused.
    #[serde(default, alias = "applyOnStreamDone")]
    pub apply_on_stream_done: Option<bool>,
    /// Per-descriptor header option; the filter's applies.
    #[serde(default, alias = "xRatelimitOption")]
    pub x_ratelimit_option: Option<String>,
}

/// `RateLimit.Action`: one of its kinds.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// (`source_cluster`, the proxy's service cluster).
    #[serde(alias = "sourceCluster")]
    SourceCluster(serde_json::Value),
    /// (`destination_cluster`, the routed cluster).
    #[serde(alias = "destinationCluster")]
    DestinationCluster(serde_json::Value),
    /// (`descriptor_key`, the header's first value).
    #[serde(alias = "requestHeaders")]
    RequestHeaders(RequestHeaders),
    /// (`remote_address`, the trusted client address).
    #[serde(alias = "remoteAddress")]
    RemoteAddress(Empty),
    /// (`descriptor_key` or `generic_key`, a literal).
    #[serde(alias = "genericKey")]
    GenericKey(GenericKey),
    /// (`descriptor_key` or `header_match`, a literal) when the headers match as expected.
    #[serde(alias = "headerValueMatch")]
    HeaderValueMatch(HeaderValueMatch),
    /// (`descriptor_key`, a query parameter's value).
    #[serde(alias = "queryParameters")]
    QueryParameters(QueryParameters),
    /// (`masked_remote_address`, the client address's network in CIDR form).
    #[serde(alias = "maskedRemoteAddress")]
    MaskedRemoteAddress(MaskedRemoteAddress),
    /// Metadata is not visible to a filter; refused.
    Metadata(serde_json::Value),
    /// Refused (deprecated, and metadata).
    #[serde(alias = "dynamicMetadata")]
    DynamicMetadata(serde_json::Value),
    /// Refused (no extensions in a filter).
    Extension(serde_json::Value),
    /// (`descriptor_key` or `query_match`, a literal) when the query parameters match as
    /// expected.
    #[serde(alias = "queryParameterValueMatch")]
    QueryParameterValueMatch(QueryParameterValueMatch),
}

/// An action without fields (`remote_address: {}`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// `Action.RequestHeaders`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestHeaders {
    /// The header (pseudo-headers `:authority`, `:path`, `:method`, `:scheme` too).
    #[serde(alias = "headerName")]
    pub header_name: String,
    /// The entry's key.
    #[serde(alias = "descriptorKey")]
    pub descriptor_key: String,
    /// Absent header: no entry instead of no descriptor.
    #[serde(default, alias = "skipIfAbsent")]
    pub skip_if_absent: bool,
}

/// `Action.GenericKey`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericKey {
    /// The value.
    #[serde(alias = "descriptorValue")]
    pub descriptor_value: String,
    /// The key (`generic_key`).
    #[serde(default, alias = "descriptorKey")]
    pub descriptor_key: String,
}

/// `Action.HeaderValueMatch`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderValueMatch {
    /// The value.
    #[serde(alias = "descriptorValue")]
    pub descriptor_value: String,
    /// The key (`header_match`).
    #[serde(default, alias = "descriptorKey")]
    pub descriptor_key: String,
    /// Whether the headers must match (true) or must not.
    #[serde(default, alias = "expectMatch")]
    pub expect_match: Option<bool>,
    /// All must match.
    pub headers: Vec<HeaderMatcher>,
}

/// `envoy.config.route.v3.HeaderMatcher` (string forms and presence).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatcher {
    /// The header.
    pub name: String,
    /// Deprecated exact form.
    #[serde(default, alias = "exactMatch")]
    pub exact_match: Option<String>,
    /// Deprecated prefix form.
    #[serde(default, alias = "prefixMatch")]
    pub prefix_match: Option<String>,
    /// Deprecated suffix form.
    #[serde(default, alias = "suffixMatch")]
    pub suffix_match: Option<String>,
    /// Deprecated contains form.
    #[serde(default, alias = "containsMatch")]
    pub contains_match: Option<String>,
    /// Present (or, false, absent).
    #[serde(default, alias = "presentMatch")]
    pub present_match: Option<bool>,
    /// The current string form.
    #[serde(default, alias = "stringMatch")]
    pub string_match: Option<StringMatcher>,
    /// Refused for now.
    #[serde(default, alias = "safeRegexMatch")]
    pub safe_regex_match: Option<serde_json::Value>,
    /// Refused for now.
    #[serde(default, alias = "rangeMatch")]
    pub range_match: Option<serde_json::Value>,
    /// Inverts the result.
    #[serde(default, alias = "invertMatch")]
    pub invert_match: bool,
    /// An absent header is matched as an empty value.
    #[serde(default, alias = "treatMissingHeaderAsEmpty")]
    pub treat_missing_header_as_empty: bool,
}

/// `envoy.type.matcher.v3.StringMatcher` (without `safe_regex` for now).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StringMatcher {
    /// The whole value.
    #[serde(default)]
    pub exact: Option<String>,
    /// A prefix.
    #[serde(default)]
    pub prefix: Option<String>,
    /// A suffix.
    #[serde(default)]
    pub suffix: Option<String>,
    /// A substring.
    #[serde(default)]
    pub contains: Option<String>,
    /// Refused for now.
    #[serde(default, alias = "safeRegex")]
    pub safe_regex: Option<serde_json::Value>,
    /// ASCII case ignored.
    #[serde(default, alias = "ignoreCase")]
    pub ignore_case: bool,
}

/// `Action.QueryParameterValueMatch`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryParameterValueMatch {
    /// The value.
    #[serde(alias = "descriptorValue")]
    pub descriptor_value: String,
    /// The key (`query_match`).
    #[serde(default, alias = "descriptorKey")]
    pub descriptor_key: String,
    /// Whether the parameters must match (true) or must not.
    #[serde(default, alias = "expectMatch")]
    pub expect_match: Option<bool>,
    /// All must match.
    #[serde(alias = "queryParameters")]
    pub query_parameters: Vec<QueryParameterMatcher>,
}

/// `envoy.config.route.v3.QueryParameterMatcher`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryParameterMatcher {
    /// The parameter.
    pub name: String,
    /// Its value's form; without one, the parameter must be present.
    #[serde(default, alias = "stringMatch")]
    pub string_match: Option<StringMatcher>,
    /// The parameter must be present (Envoy matches presence with either value).
    #[serde(default, alias = "presentMatch")]
    pub present_match: Option<bool>,
}

/// `Action.QueryParameters`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryParameters {
    /// The parameter.
    #[serde(alias = "queryParameterName")]
    pub query_parameter_name: String,
    /// The entry's key.
    #[serde(alias = "descriptorKey")]
    pub descriptor_key: String,
    /// Absent parameter: no entry instead of no descriptor.
    #[serde(default, alias = "skipIfAbsent")]
    pub skip_if_absent: bool,
}

/// `Action.MaskedRemoteAddress`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaskedRemoteAddress {
    /// IPv4 prefix length (32).
    #[serde(alias = "v4PrefixMaskLen")]
    pub v4_prefix_mask_len: Option<u8>,
    /// IPv6 prefix length (128).
    #[serde(alias = "v6PrefixMaskLen")]
    pub v6_prefix_mask_len: Option<u8>,
}

/// A protobuf `Duration` as JSON has it (`"1s"`, `"0.25s"`), or `{seconds, nanos}`.
pub(crate) fn proto_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Text(String),
        Parts {
            #[serde(default)]
            seconds: u64,
            #[serde(default)]
            nanos: u32,
        },
    }
    match Form::deserialize(deserializer)? {
        Form::Text(text) => parse_duration(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{text:?} is not a duration (seconds with an `s`: \"1s\", \"0.5s\")"
            ))
        }),
        Form::Parts { seconds, nanos } if nanos < 1_000_000_000 => {
            Ok(Duration::new(seconds, nanos))
        }
        Form::Parts { .. } => Err(serde::de::Error::custom(
            "nanos must be under 1,000,000,000",
        )),
    }
}

/// `"<seconds>[.<fraction>]s"`, at most nine fraction digits.
fn parse_duration(text: &str) -> Option<Duration> {
    let number = text.strip_suffix('s')?;
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seconds: u64 = whole.parse().ok()?;
    let nanos: u32 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<9}").parse().ok()?
    };
    Some(Duration::new(seconds, nanos))
}

impl TokenBucket {
    /// The bucket's shape, checked as Envoy checks it; `at` is its place in the settings.
    ///
    /// # Errors
    /// `max_tokens` 0, `tokens_per_fill` 0, or `fill_interval` under 50 ms.
    pub fn shape(&self, at: &str) -> Result<Shape, SettingsError> {
        if self.max_tokens == 0 {
            return Err(SettingsError::new(
                format!("{at}.max_tokens"),
                "must be greater than 0",
            ));
        }
        let tokens_per_fill = self.tokens_per_fill.unwrap_or(1);
        if tokens_per_fill == 0 {
            return Err(SettingsError::new(
                format!("{at}.tokens_per_fill"),
                "must be greater than 0",
            ));
        }
        if self.fill_interval < MIN_FILL_INTERVAL {
            return Err(SettingsError::new(
                format!("{at}.fill_interval"),
                format!("is {:?}; Envoy requires at least 50ms", self.fill_interval),
            ));
        }
        Ok(Shape {
            max_tokens: u64::from(self.max_tokens),
            tokens_per_fill: u64::from(tokens_per_fill),
            fill_interval_ns: u64::try_from(self.fill_interval.as_nanos()).unwrap_or(u64::MAX),
        })
    }
}

impl PolicySettings for Settings {
    fn validate(&self) -> Result<(), SettingsError> {
        crate::Prepared::new(self).map(|_| ())
    }
}

/// Checks a configuration's `@type`, when it has one, against the filter's.
pub(crate) fn check_type_url(found: Option<&str>, expected: &str) -> Result<(), SettingsError> {
    match found {
        Some(url) if url != expected => Err(SettingsError::new(
            "@type",
            format!("is {url:?}, not {expected:?}"),
        )),
        _ => Ok(()),
    }
}

/// The refusal of a field a filter cannot honour.
pub(crate) fn unsupported(at: &str, why: &str) -> SettingsError {
    SettingsError::new(at, format!("is not supported by this filter: {why}"))
}

/// Checks the header lists' sizes.
pub(crate) fn check_headers(at: &str, headers: &[HeaderValueOption]) -> Result<(), SettingsError> {
    if headers.len() > MAX_HEADERS_TO_ADD {
        return Err(SettingsError::new(
            at,
            format!(
                "has {} headers; Envoy allows at most {MAX_HEADERS_TO_ADD}",
                headers.len()
            ),
        ));
    }
    for (i, h) in headers.iter().enumerate() {
        let name = &h.header.key;
        if name.is_empty()
            || name
                .bytes()
                .any(|b| b.is_ascii_uppercase() || b <= b' ' || b == b':')
        {
            return Err(SettingsError::new(
                format!("{at}[{i}].header.key"),
                format!("{name:?} is not a lower-case header name"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn durations_as_protobuf_writes_them() {
        assert_eq!(parse_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_duration("0.05s"), Some(Duration::from_millis(50)));
        assert_eq!(parse_duration("1.000000001s"), Some(Duration::new(1, 1)));
        for bad in ["1", "s", ".5s", "1.s5", "-1s", "1.0000000001s", "1ms"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        let parts: TokenBucket = serde_json::from_str(
            r#"{"max_tokens": 1, "fill_interval": {"seconds": 2, "nanos": 5}}"#,
        )
        .unwrap();
        assert_eq!(parts.fill_interval, Duration::new(2, 5));
    }

    #[test]
    fn fractions_as_envoy_draws_them() {
        let half = FractionalPercent {
            numerator: 50,
            denominator: Denominator::Hundred,
        };
        assert!(half.holds(149));
        assert!(!half.holds(150));
        let none = FractionalPercent {
            numerator: 0,
            denominator: Denominator::Million,
        };
        assert!(!none.holds(0));
    }
}
