//! Envoy's global rate limit (`envoy.filters.http.ratelimit`): the request's descriptors go to a
//! rate limit service (`envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`, such as
//! envoyproxy/ratelimit) through the SDK's gRPC callout, and its answer is applied as Envoy's
//! filter applies it (envoyproxy/envoy `source/extensions/filters/http/ratelimit/ratelimit.cc`).

pub mod headers;
pub mod rls;
pub mod settings;

use palisade_sdk::wire::{Answer, Callout, HeaderChange, HttpRequest, HttpVerdict};
use palisade_sdk::{Host, SettingsError};
use prost::Message;

use crate::descriptors::{self, Compiled};
use crate::settings::{
    AppendAction, FractionalPercent, HeaderValueOption, XRateLimitHeaders, unsupported,
};
use crate::{count, draw};
use headers::XRateLimitOption;
pub use settings::Settings;

/// The reason (Envoy's response code details) of a limited request's reply.
pub const REQUEST_RATE_LIMITED: &str = "request_rate_limited";
/// The reason of the reply when the service failed and `failure_mode_deny` is set.
pub const RATE_LIMITER_ERROR: &str = "rate_limiter_error";
/// The filter's name for its call, handed back with the answer.
pub const CALL_ID: &str = "rate-limit/rls";
/// Envoy's default `timeout`.
pub const DEFAULT_TIMEOUT_MS: u32 = 20;
/// The wait for a `timeout` of 0, which is no timeout in Envoy: a callout needs one.
pub const UNBOUNDED_TIMEOUT_MS: u32 = 10_000;
/// Envoy's upper bound on a `RateLimit.hits_addend.number`.
const MAX_HITS_ADDEND: u64 = 1_000_000_000;

/// The global filter's settings, compiled once per VM.
#[derive(Debug, Clone)]
pub struct Prepared {
    domain: String,
    cluster: String,
    metadata: Vec<(String, String)>,
    timeout_ms: u32,
    request_type: RequestType,
    failure_mode_deny: bool,
    resource_exhausted: bool,
    headers: bool,
    envoy_header: bool,
    rate_limited_status: u16,
    status_on_error: u16,
    reply_headers: Vec<HeaderValueOption>,
    enabled: Option<FractionalPercent>,
    enforced: Option<FractionalPercent>,
    limits: Vec<Limit>,
    /// Whether an action reads the request's route (`destination_cluster`).
    pub(crate) reads_route: bool,
    stats: Stats,
}

/// Which requests the filter limits (`request_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestType {
    Internal,
    External,
    Both,
}

/// One `rate_limits` entry of the filter's stage.
#[derive(Debug, Clone)]
struct Limit {
    /// Its actions, in one slice as [`descriptors::describe`] takes them.
    actions: [Vec<Compiled>; 1],
    hits_addend: Option<u64>,
    x_ratelimit: XRateLimitOption,
}

/// The statistics' names, as Envoy's (`source/extensions/filters/common/ratelimit/
/// stat_names.h`): `ratelimit[.<stat_prefix>].<name>`. Envoy counts them in the routed
/// cluster's scope (`cluster.<name>.`), which a filter does not know.
#[derive(Debug, Clone)]
struct Stats {
    ok: String,
    error: String,
    over_limit: String,
    failure_mode_allowed: String,
}

impl Stats {
    fn new(prefix: &str) -> Self {
        let name = |n: &str| {
            if prefix.is_empty() {
                format!("ratelimit.{n}")
            } else {
                format!("ratelimit.{prefix}.{n}")
            }
        };
        Self {
            ok: name("ok"),
            error: name("error"),
            over_limit: name("over_limit"),
            failure_mode_allowed: name("failure_mode_allowed"),
        }
    }
}

impl Prepared {
    /// Checks and compiles the settings.
    ///
    /// # Errors
    /// [`SettingsError`] naming the field, as Envoy would refuse it, or that a filter cannot
    /// honour.
    pub fn new(settings: &Settings) -> Result<Self, SettingsError> {
        crate::settings::check_type_url(settings.type_url.as_deref(), settings::TYPE_URL)?;
        if settings.domain.is_empty() {
            return Err(SettingsError::new("domain", "is required"));
        }
        if settings.stage > 10 {
            return Err(SettingsError::new("stage", "must be at most 10"));
        }
        let request_type = match settings.request_type.as_str() {
            "" | "both" => RequestType::Both,
            "internal" => RequestType::Internal,
            "external" => RequestType::External,
            other => {
                return Err(SettingsError::new(
                    "request_type",
                    format!("is {other:?}, not internal, external or both"),
                ));
            }
        };
        if settings.failure_mode_deny_percent.is_some() {
            return Err(unsupported(
                "failure_mode_deny_percent",
                "a filter has no runtime; use failure_mode_deny",
            ));
        }
        if settings.apply_on_stream_done {
            return Err(unsupported(
                "apply_on_stream_done",
                "a filter's call holds its request; there is no call after the stream ends",
            ));
        }
        let (cluster, metadata) = service(settings.rate_limit_service.as_ref())?;
        crate::settings::check_headers(
            "response_headers_to_add",
            &settings.response_headers_to_add,
        )?;
        let timeout_ms = match settings.timeout {
            None => DEFAULT_TIMEOUT_MS,
            Some(t) if t.is_zero() => UNBOUNDED_TIMEOUT_MS,
            Some(t) => {
                let ms = t.as_nanos().div_ceil(1_000_000);
                u32::try_from(ms).unwrap_or(u32::MAX)
            }
        };
        let mut limits = Vec::new();
        for (i, limit) in settings.rate_limits.iter().enumerate() {
            let at = format!("rate_limits[{i}]");
            if limit.limit.is_some() {
                return Err(unsupported(
                    &format!("{at}.limit"),
                    "limit overrides come from dynamic metadata, which a filter does not see",
                ));
            }
            if limit.apply_on_stream_done == Some(true) {
                return Err(unsupported(
                    &format!("{at}.apply_on_stream_done"),
                    "a filter's call holds its request; there is no call after the stream ends",
                ));
            }
            let hits_addend = limit
                .hits_addend
                .as_ref()
                .map(|v| hits_addend(v, &format!("{at}.hits_addend")))
                .transpose()?;
            let x_ratelimit = match limit.x_ratelimit_option.as_deref() {
                None | Some("UNSPECIFIED") => XRateLimitOption::Unspecified,
                Some("OFF") => XRateLimitOption::Off,
                Some("DRAFT_VERSION_03") => XRateLimitOption::DraftVersion03,
                Some(other) => {
                    return Err(SettingsError::new(
                        format!("{at}.x_ratelimit_option"),
                        format!("is {other:?}, not UNSPECIFIED, OFF or DRAFT_VERSION_03"),
                    ));
                }
            };
            let actions = descriptors::actions(limit, &at)?;
            // Envoy's global filter reads `disable_key` from its runtime, enabled unless set
            // off: with no runtime, an entry with one applies.
            if limit.stage == settings.stage {
                limits.push(Limit {
                    actions: [actions],
                    hits_addend,
                    x_ratelimit,
                });
            }
        }
        // Envoy's `toErrorCode` and `toRatelimitServerErrorCode` (ratelimit.h).
        let rate_limited_status = settings
            .rate_limited_status
            .map_or(429, |s| if s.code < 400 { 429 } else { s.code });
        let status_on_error = settings.status_on_error.map_or(500, |s| {
            if (100..=511).contains(&s.code) {
                s.code
            } else {
                500
            }
        });
        Ok(Self {
            domain: settings.domain.clone(),
            cluster,
            metadata,
            timeout_ms,
            request_type,
            failure_mode_deny: settings.failure_mode_deny,
            resource_exhausted: settings.rate_limited_as_resource_exhausted,
            headers: settings.enable_x_ratelimit_headers == XRateLimitHeaders::DraftVersion03,
            envoy_header: !settings.disable_x_envoy_ratelimited_header,
            rate_limited_status,
            status_on_error,
            reply_headers: settings.response_headers_to_add.clone(),
            enabled: settings.filter_enabled.as_ref().map(|f| f.default_value),
            enforced: settings.filter_enforced.as_ref().map(|f| f.default_value),
            reads_route: descriptors::reads_route(
                limits.iter().flat_map(|l| l.actions.iter().flatten()),
            ),
            limits,
            stats: Stats::new(&settings.stat_prefix),
        })
    }

    /// The request's descriptors for the service, in the order of `rate_limits` (Envoy's
    /// `populateDescriptors`).
    fn describe(&self, request: &HttpRequest) -> Vec<rls::RateLimitDescriptor> {
        let mut made = Vec::with_capacity(self.limits.len());
        for limit in &self.limits {
            let described = descriptors::describe(&limit.actions, request);
            for entries in described.iter() {
                made.push(rls::RateLimitDescriptor {
                    entries: entries
                        .iter()
                        .map(|(key, value)| rls::Entry {
                            key: (*key).to_owned(),
                            value: value.clone().into_owned(),
                        })
                        .collect(),
                    limit: None,
                    hits_addend: limit.hits_addend.map(|value| rls::UInt64Value { value }),
                });
            }
        }
        made
    }

    /// Each descriptor's `x_ratelimit_option`, in the order [`describe`](Self::describe) makes
    /// them, without building their entries (the service's statuses come back in that order).
    fn options(&self, request: &HttpRequest) -> Vec<XRateLimitOption> {
        let mut options = Vec::with_capacity(self.limits.len());
        for limit in &self.limits {
            let made = descriptors::describe(&limit.actions, request)
                .iter()
                .count();
            options.extend(std::iter::repeat_n(limit.x_ratelimit, made));
        }
        options
    }

    /// The call to the service, or `None` when the request makes no descriptor.
    fn call(&self, request: &HttpRequest) -> Option<Callout> {
        let descriptors = self.describe(request);
        if descriptors.is_empty() {
            return None;
        }
        let message = rls::RateLimitRequest {
            domain: self.domain.clone(),
            descriptors,
            // Envoy sends the filter state `envoy.ratelimit.hits_addend`, which no filter
            // sets here: 0, which the service reads as 1.
            hits_addend: 0,
        }
        .encode_to_vec();
        let mut callout = Callout::grpc(
            CALL_ID,
            self.cluster.clone(),
            (rls::SERVICE, rls::METHOD),
            message,
            self.timeout_ms,
        );
        callout.headers.clone_from(&self.metadata);
        Some(callout)
    }

    /// Applies the service's answer (Envoy's `Filter::complete`).
    fn complete(&self, request: &HttpRequest, answer: &Answer, host: &dyn Host) -> HttpVerdict {
        let response = match answer.grpc_status {
            Some(0) => rls::RateLimitResponse::decode(answer.message.as_slice())
                .map_err(|e| format!("its answer is not a RateLimitResponse ({e})")),
            Some(code) => Err(format!(
                "the call ended with gRPC status {code} {:?}",
                answer.grpc_message
            )),
            None => Err("the proxy refused the call (an unknown cluster?)".to_owned()),
        };
        let response = match response {
            Ok(response) => response,
            Err(why) => return self.failed(host, &why),
        };
        let over = response.overall_code == rls::Code::OverLimit as i32;
        count(
            host,
            if over {
                &self.stats.over_limit
            } else {
                &self.stats.ok
            },
        );
        let mut headers: Vec<(String, String)> = response
            .response_headers_to_add
            .iter()
            .map(|h| (h.key.to_ascii_lowercase(), h.value.clone()))
            .collect();
        if over && self.envoy_header {
            headers.push(("x-envoy-ratelimited".to_owned(), "true".to_owned()));
        }
        headers.extend(headers::x_ratelimit(
            &response.statuses,
            &self.options(request),
            self.headers,
        ));
        if over && self.enforced.is_none_or(|f| f.holds(draw(request, 1))) {
            apply_reply_headers(&mut headers, &self.reply_headers);
            // Envoy makes a local reply to a gRPC request a gRPC one, its status mapped from
            // the HTTP status unless the filter names one: RESOURCE_EXHAUSTED (8) when asked.
            if self.resource_exhausted && request.is_grpc() {
                headers.push(("grpc-status".to_owned(), "8".to_owned()));
            }
            return HttpVerdict::Deny {
                status: self.rate_limited_status,
                reason: REQUEST_RATE_LIMITED.to_owned(),
                message: format!(
                    "global rate limit {:?}: the rate limit service answered OVER_LIMIT",
                    self.domain
                ),
                body: String::from_utf8_lossy(&response.raw_body).into_owned(),
                headers,
            };
        }
        HttpVerdict::Continue {
            request_headers: response
                .request_headers_to_add
                .iter()
                .map(|h| HeaderChange::add(h.key.to_ascii_lowercase(), h.value.clone()))
                .collect(),
            response_headers: headers
                .into_iter()
                .map(|(name, value)| HeaderChange::add(name, value))
                .collect(),
        }
    }

    /// The service failed: through, or `status_on_error` with `failure_mode_deny`.
    fn failed(&self, host: &dyn Host, why: &str) -> HttpVerdict {
        count(host, &self.stats.error);
        if self.failure_mode_deny {
            return HttpVerdict::Deny {
                status: self.status_on_error,
                reason: RATE_LIMITER_ERROR.to_owned(),
                message: format!(
                    "global rate limit {:?}: the rate limit service failed: {why}; \
                     failure_mode_deny",
                    self.domain
                ),
                body: String::new(),
                headers: Vec::new(),
            };
        }
        count(host, &self.stats.failure_mode_allowed);
        HttpVerdict::allow()
    }
}

/// Decides on one request as Envoy's global rate limit filter does (`Filter::decodeHeaders`,
/// then `Filter::complete` once the service answered).
#[must_use]
pub fn evaluate(request: &HttpRequest, prepared: &Prepared, host: &dyn Host) -> HttpVerdict {
    if let Some(answer) = request.answer(CALL_ID) {
        return prepared.complete(request, answer, host);
    }
    if !prepared.enabled.is_none_or(|f| f.holds(draw(request, 0))) {
        return HttpVerdict::allow();
    }
    // Envoy's `HeaderUtility::isEnvoyInternalRequest`.
    let internal = request.header("x-envoy-internal") == Some("true");
    match (prepared.request_type, internal) {
        (RequestType::Internal, false) | (RequestType::External, true) => {
            return HttpVerdict::allow();
        }
        _ => {}
    }
    match prepared.call(request) {
        Some(callout) => HttpVerdict::Call { callout },
        None => HttpVerdict::allow(),
    }
}

/// The cluster and the initial metadata of `rate_limit_service`.
fn service(
    service: Option<&settings::RateLimitService>,
) -> Result<(String, Vec<(String, String)>), SettingsError> {
    let Some(service) = service else {
        return Err(SettingsError::new("rate_limit_service", "is required"));
    };
    if let Some(version) = &service.transport_api_version
        && version != "V3"
    {
        return Err(SettingsError::new(
            "rate_limit_service.transport_api_version",
            format!("is {version:?}; only V3 is spoken"),
        ));
    }
    let at = "rate_limit_service.grpc_service";
    let Some(grpc) = &service.grpc_service else {
        return Err(SettingsError::new(at, "is required"));
    };
    if grpc.google_grpc.is_some() {
        return Err(unsupported(
            &format!("{at}.google_grpc"),
            "a filter calls through an Envoy cluster; use envoy_grpc.cluster_name",
        ));
    }
    if grpc.retry_policy.is_some() {
        return Err(unsupported(&format!("{at}.retry_policy"), "no retries"));
    }
    let Some(envoy) = &grpc.envoy_grpc else {
        return Err(SettingsError::new(
            format!("{at}.envoy_grpc"),
            "is required",
        ));
    };
    let at = format!("{at}.envoy_grpc");
    if envoy.cluster_name.is_empty() {
        return Err(SettingsError::new(
            format!("{at}.cluster_name"),
            "is required",
        ));
    }
    for (field, set) in [
        ("authority", !envoy.authority.is_empty()),
        ("retry_policy", envoy.retry_policy.is_some()),
        (
            "max_receive_message_length",
            envoy.max_receive_message_length.is_some(),
        ),
        ("skip_envoy_headers", envoy.skip_envoy_headers == Some(true)),
    ] {
        if set {
            return Err(unsupported(
                &format!("{at}.{field}"),
                "a filter's gRPC call takes the cluster's defaults",
            ));
        }
    }
    let mut metadata = Vec::with_capacity(grpc.initial_metadata.len());
    for (i, h) in grpc.initial_metadata.iter().enumerate() {
        if h.key.is_empty()
            || h.key
                .bytes()
                .any(|b| b.is_ascii_uppercase() || b <= b' ' || b == b':')
        {
            return Err(SettingsError::new(
                format!("rate_limit_service.grpc_service.initial_metadata[{i}].key"),
                format!("{:?} is not a lower-case metadata key", h.key),
            ));
        }
        metadata.push((h.key.clone(), h.value.clone()));
    }
    Ok((envoy.cluster_name.clone(), metadata))
}

/// A `RateLimit.hits_addend`: a fixed number.
fn hits_addend(value: &serde_json::Value, at: &str) -> Result<u64, SettingsError> {
    let parsed: settings::HitsAddend =
        serde_json::from_value(value.clone()).map_err(|e| SettingsError::new(at, e.to_string()))?;
    if parsed.format.is_some() {
        return Err(unsupported(
            &format!("{at}.format"),
            "a filter has no substitution formatter; use number",
        ));
    }
    match parsed.number {
        None => Err(SettingsError::new(format!("{at}.number"), "is required")),
        Some(n) if n > MAX_HITS_ADDEND => Err(SettingsError::new(
            format!("{at}.number"),
            format!("is {n}; Envoy allows at most {MAX_HITS_ADDEND}"),
        )),
        Some(n) => Ok(n),
    }
}

/// The configured `response_headers_to_add` on a limited reply's headers, as their append
/// actions say (Envoy's `HeaderParser::evaluateHeaders` on the local reply).
fn apply_reply_headers(headers: &mut Vec<(String, String)>, add: &[HeaderValueOption]) {
    for h in add {
        let (name, value) = (&h.header.key, &h.header.value);
        if value.is_empty() && !h.keep_empty_value {
            continue;
        }
        let present = headers.iter().any(|(n, _)| n == name);
        let replace = |headers: &mut Vec<(String, String)>| {
            // The first value takes the new one in place; the others go.
            let mut first = true;
            headers.retain_mut(|(n, v)| {
                if n != name {
                    return true;
                }
                if first {
                    first = false;
                    v.clone_from(value);
                    return true;
                }
                false
            });
        };
        let (add, overwrite) = match h.action() {
            AppendAction::AppendIfExistsOrAdd => (true, false),
            AppendAction::AddIfAbsent => (!present, false),
            AppendAction::OverwriteIfExistsOrAdd => (!present, present),
            AppendAction::OverwriteIfExists => (false, present),
        };
        if overwrite {
            replace(headers);
        } else if add {
            headers.push((name.clone(), value.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::settings::HeaderValue;

    fn option(key: &str, value: &str, action: AppendAction) -> HeaderValueOption {
        HeaderValueOption {
            header: HeaderValue {
                key: key.into(),
                value: value.into(),
            },
            append: None,
            append_action: Some(action),
            keep_empty_value: false,
        }
    }

    #[test]
    fn reply_headers_follow_their_append_actions() {
        let mut headers = vec![
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "1".to_owned()),
            ("a".to_owned(), "2".to_owned()),
        ];
        apply_reply_headers(
            &mut headers,
            &[
                option("a", "x", AppendAction::OverwriteIfExistsOrAdd),
                option("b", "y", AppendAction::AddIfAbsent),
                option("c", "z", AppendAction::AddIfAbsent),
                option("d", "w", AppendAction::OverwriteIfExists),
                option("b", "v", AppendAction::AppendIfExistsOrAdd),
                option("e", "", AppendAction::AppendIfExistsOrAdd),
            ],
        );
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [("a", "x"), ("b", "1"), ("c", "z"), ("b", "v")],
            "overwrite keeps the first place; empty values are not added"
        );
    }

    #[test]
    fn stat_names_are_envoys() {
        let stats = Stats::new("");
        assert_eq!(stats.ok, "ratelimit.ok");
        assert_eq!(
            Stats::new("edge").failure_mode_allowed,
            "ratelimit.edge.failure_mode_allowed"
        );
    }

    #[test]
    fn hits_addend_is_a_number_up_to_a_billion() {
        let at = "rate_limits[0].hits_addend";
        assert_eq!(
            hits_addend(&serde_json::json!({"number": 3}), at).unwrap(),
            3
        );
        let err = |v| hits_addend(&v, at).unwrap_err().to_string();
        assert_eq!(
            err(serde_json::json!({"number": 1_000_000_001_u64})),
            "rate_limits[0].hits_addend.number: is 1000000001; Envoy allows at most 1000000000"
        );
        assert!(
            err(serde_json::json!({"format": "%BYTES_RECEIVED%"}))
                .starts_with("rate_limits[0].hits_addend.format: is not supported")
        );
        assert_eq!(
            err(serde_json::json!({})),
            "rate_limits[0].hits_addend.number: is required"
        );
    }
}
