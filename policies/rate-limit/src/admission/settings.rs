//! The admission home's settings: Kubernetes' EventRateLimit `Configuration` as it is, or
//! Palisade's generalisation of it to any resource and operation, both compiled to one list of
//! limits.

use std::time::Duration;

use palisade_sdk::host::rate::{MAX_PERIOD_MS, MAX_TOKENS, Shape};
use palisade_sdk::wire::Operation;
use palisade_sdk::{PolicySettings, SettingsError};
use serde::Deserialize;

/// EventRateLimit's `apiVersion` (plugin/pkg/admission/eventratelimit/apis/eventratelimit/
/// v1alpha1/register.go in kubernetes/kubernetes).
pub const EVENT_RATE_LIMIT_API: &str = "eventratelimit.admission.k8s.io/v1alpha1";

/// The settings: a list of limits, each consulted for every request it matches.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// `eventratelimit.admission.k8s.io/v1alpha1` when the settings are an EventRateLimit
    /// `Configuration` (then every limit applies to CREATE and UPDATE of core `Event`s, as the
    /// plugin's do, and `match`, `requests` and `per` are refused).
    #[serde(default)]
    pub api_version: Option<String>,
    /// `Configuration` with `apiVersion`.
    #[serde(default)]
    pub kind: Option<String>,
    /// The limits (at least one).
    #[serde(default)]
    pub limits: Vec<LimitSettings>,
    /// What a request gets when the host cannot take from its buckets (a Redis store that is
    /// down): `Allow` (the default: with a warning, as Envoy's rate limits fail open) or
    /// `Deny` (code 500).
    #[serde(default)]
    pub on_error: OnError,
}

/// What the host's failure to count means for the request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum OnError {
    /// Admit it, with a warning.
    #[default]
    Allow,
    /// Deny it with code 500.
    Deny,
}

/// One limit.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitSettings {
    /// A name for messages and for its buckets (so that they survive reordering); defaults to
    /// `<type>#<position>`.
    #[serde(default)]
    pub name: Option<String>,
    /// What one bucket is kept for.
    #[serde(rename = "type")]
    pub key: KeyType,
    /// Tokens per second (EventRateLimit's `qps`); or `requests` per `per`.
    #[serde(default)]
    pub qps: Option<u64>,
    /// The most requests at once (EventRateLimit's `burst`); defaults to `requests` (required
    /// with `qps`).
    #[serde(default)]
    pub burst: Option<u64>,
    /// EventRateLimit's LRU size: accepted and checked, but the host bounds the buckets of a
    /// policy itself (`rateLimit.maxBuckets` of `palisade serve`).
    #[serde(default)]
    pub cache_size: Option<i64>,
    /// Requests allowed per `per` (Palisade's form).
    #[serde(default)]
    pub requests: Option<u64>,
    /// The period of `requests`: `500ms`, `30s`, `1m`, `1h`, `1d`.
    #[serde(default)]
    pub per: Option<String>,
    /// Which requests the limit counts (Palisade's form; EventRateLimit counts events).
    #[serde(default, rename = "match")]
    pub matcher: Option<MatchSettings>,
}

/// What one bucket is kept for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum KeyType {
    /// One bucket for every request.
    #[default]
    Server,
    /// One per namespace (`""` for cluster-scoped objects).
    Namespace,
    /// One per requesting user name.
    User,
    /// One per service account (`system:serviceaccount:<ns>:<name>`); other users are not
    /// counted by the limit.
    ServiceAccount,
    /// One per event source and involved object (events only), as EventRateLimit keys them.
    SourceAndObject,
}

impl KeyType {
    /// The name as the settings write it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Server => "Server",
            Self::Namespace => "Namespace",
            Self::User => "User",
            Self::ServiceAccount => "ServiceAccount",
            Self::SourceAndObject => "SourceAndObject",
        }
    }
}

/// Which requests a limit counts; every list empty (or absent) matches everything, except
/// `operations`, which defaults to CREATE and UPDATE as EventRateLimit's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatchSettings {
    /// API groups (`""` the core group, `*` any).
    #[serde(default)]
    pub api_groups: Vec<String>,
    /// Resources, plural (`pods`, `*`); `pods/exec` for a subresource.
    #[serde(default)]
    pub resources: Vec<String>,
    /// `CREATE`, `UPDATE`, `DELETE`, `CONNECT` or `*`.
    #[serde(default)]
    pub operations: Vec<String>,
    /// Only requests in these namespaces.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Never requests in these namespaces.
    #[serde(default)]
    pub excluded_namespaces: Vec<String>,
    /// Never requests by these users.
    #[serde(default)]
    pub excluded_users: Vec<String>,
    /// Never requests by members of these groups.
    #[serde(default)]
    pub excluded_groups: Vec<String>,
}

impl PolicySettings for Settings {
    fn validate(&self) -> Result<(), SettingsError> {
        compile(self).map(drop)
    }
}

/// A compiled limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Limit {
    /// The name in messages (`type Namespace`, or the configured name with its type).
    pub(crate) label: String,
    /// The bucket name prefix.
    pub(crate) id: String,
    pub(crate) key: KeyType,
    pub(crate) shape: Shape,
    pub(crate) matcher: Matcher,
}

/// A compiled `match`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Matcher {
    pub(crate) api_groups: Vec<String>,
    pub(crate) resources: Vec<String>,
    pub(crate) operations: Vec<Operation>,
    pub(crate) namespaces: Vec<String>,
    pub(crate) excluded_namespaces: Vec<String>,
    pub(crate) excluded_users: Vec<String>,
    pub(crate) excluded_groups: Vec<String>,
}

impl Matcher {
    /// EventRateLimit's scope: CREATE and UPDATE of core `Event`s (admission.go checks the
    /// GroupKind `""/Event`; its resource is `events`).
    fn events() -> Self {
        Self {
            api_groups: vec![String::new()],
            resources: vec!["events".to_owned()],
            operations: vec![Operation::Create, Operation::Update],
            namespaces: Vec::new(),
            excluded_namespaces: Vec::new(),
            excluded_users: Vec::new(),
            excluded_groups: Vec::new(),
        }
    }

    /// Whether the matcher counts only core events.
    fn only_events(&self) -> bool {
        self.api_groups == [""] && self.resources == ["events"]
    }
}

/// Checks and compiles the settings.
pub(crate) fn compile(settings: &Settings) -> Result<Vec<Limit>, SettingsError> {
    let event_rate_limit = match (&settings.api_version, &settings.kind) {
        (None, None) => false,
        (Some(api), kind) => {
            if api != EVENT_RATE_LIMIT_API {
                return Err(SettingsError::new(
                    "apiVersion",
                    format!("is {api:?}; the only one known is {EVENT_RATE_LIMIT_API:?}"),
                ));
            }
            if kind.as_deref() != Some("Configuration") {
                return Err(SettingsError::new(
                    "kind",
                    format!("must be \"Configuration\" with apiVersion {EVENT_RATE_LIMIT_API}"),
                ));
            }
            true
        }
        (None, Some(_)) => {
            return Err(SettingsError::new(
                "kind",
                format!("is only meaningful with apiVersion {EVENT_RATE_LIMIT_API}"),
            ));
        }
    };
    if settings.limits.is_empty() {
        return Err(SettingsError::new("limits", "must list at least one limit"));
    }
    let mut limits: Vec<Limit> = Vec::with_capacity(settings.limits.len());
    for (i, limit) in settings.limits.iter().enumerate() {
        let compiled = compile_limit(limit, i, event_rate_limit)?;
        if limits.iter().any(|l| l.id == compiled.id) {
            return Err(SettingsError::new(
                format!("limits[{i}].name"),
                format!("{:?} names another limit too", compiled.id),
            ));
        }
        limits.push(compiled);
    }
    Ok(limits)
}

fn compile_limit(
    limit: &LimitSettings,
    i: usize,
    event_rate_limit: bool,
) -> Result<Limit, SettingsError> {
    let at = |field: &str| format!("limits[{i}].{field}");
    let positive = |field: &str, value: Option<u64>| -> Result<Option<u64>, SettingsError> {
        match value {
            Some(0) => Err(SettingsError::new(at(field), "must be positive")),
            Some(v) if v > MAX_TOKENS => Err(SettingsError::new(
                at(field),
                format!("{v} is over the largest supported, {MAX_TOKENS}"),
            )),
            v => Ok(v),
        }
    };
    if let Some(size) = limit.cache_size
        && size < 0
    {
        return Err(SettingsError::new(at("cacheSize"), "must not be negative"));
    }
    let burst = positive("burst", limit.burst)?;
    let shape = match (
        positive("qps", limit.qps)?,
        positive("requests", limit.requests)?,
        &limit.per,
    ) {
        (Some(qps), None, None) => Shape::per_second(
            qps,
            burst.ok_or_else(|| SettingsError::new(at("burst"), "is required with qps"))?,
        ),
        (None, Some(requests), Some(per)) if !event_rate_limit => {
            let period = parse_period(per).ok_or_else(|| {
                SettingsError::new(
                    at("per"),
                    format!("{per:?} is not a period such as 500ms, 30s, 1m, 1h or 1d"),
                )
            })?;
            let period_ms = u64::try_from(period.as_millis()).unwrap_or(u64::MAX);
            if !(1..=MAX_PERIOD_MS).contains(&period_ms) {
                return Err(SettingsError::new(
                    at("per"),
                    format!(
                        "must be between 1ms and {} days",
                        MAX_PERIOD_MS / 86_400_000
                    ),
                ));
            }
            Shape {
                capacity: burst.unwrap_or(requests),
                refill_tokens: requests,
                refill_period_ms: period_ms,
            }
        }
        (None, Some(_), None) => {
            return Err(SettingsError::new(at("per"), "is required with requests"));
        }
        (None, None, Some(_)) => {
            return Err(SettingsError::new(at("requests"), "is required with per"));
        }
        (None, None, None) => {
            return Err(SettingsError::new(
                at("qps"),
                if event_rate_limit {
                    "is required"
                } else {
                    "is required (or requests and per)"
                },
            ));
        }
        (Some(_), _, _) => {
            return Err(SettingsError::new(
                at("qps"),
                "and requests/per are two ways to give the rate; use one",
            ));
        }
        (None, Some(_), Some(_)) => {
            return Err(SettingsError::new(
                at("requests"),
                format!(
                    "is Palisade's form, not EventRateLimit's ({EVENT_RATE_LIMIT_API}): use qps and burst"
                ),
            ));
        }
    };
    let matcher = match (&limit.matcher, event_rate_limit) {
        (None, true) => Matcher::events(),
        (Some(_), true) => {
            return Err(SettingsError::new(
                at("match"),
                format!(
                    "is Palisade's form; an EventRateLimit Configuration ({EVENT_RATE_LIMIT_API}) counts events only"
                ),
            ));
        }
        (None, false) => compile_match(&MatchSettings::default(), &at("match"))?,
        (Some(m), false) => compile_match(m, &at("match"))?,
    };
    if limit.key == KeyType::SourceAndObject && !matcher.only_events() {
        return Err(SettingsError::new(
            at("type"),
            "SourceAndObject keys events by their source and involved object: its match must be apiGroups [\"\"] and resources [\"events\"]",
        ));
    }
    let (label, id) = match &limit.name {
        Some(name) if name.is_empty() || name.contains('/') => {
            return Err(SettingsError::new(
                at("name"),
                "must be non-empty and without '/'",
            ));
        }
        Some(name) => (
            format!("{name} (type {})", limit.key.as_str()),
            name.clone(),
        ),
        None => (
            format!("type {}", limit.key.as_str()),
            format!("{}#{i}", limit.key.as_str()),
        ),
    };
    Ok(Limit {
        label,
        id,
        key: limit.key,
        shape,
        matcher,
    })
}

fn compile_match(m: &MatchSettings, at: &str) -> Result<Matcher, SettingsError> {
    let operations = if m.operations.is_empty() {
        vec![Operation::Create, Operation::Update]
    } else {
        let mut operations = Vec::new();
        for (j, op) in m.operations.iter().enumerate() {
            match op.as_str() {
                "*" => operations.extend([
                    Operation::Create,
                    Operation::Update,
                    Operation::Delete,
                    Operation::Connect,
                ]),
                "CREATE" => operations.push(Operation::Create),
                "UPDATE" => operations.push(Operation::Update),
                "DELETE" => operations.push(Operation::Delete),
                "CONNECT" => operations.push(Operation::Connect),
                other => {
                    return Err(SettingsError::new(
                        format!("{at}.operations[{j}]"),
                        format!("{other:?} is not CREATE, UPDATE, DELETE, CONNECT or *"),
                    ));
                }
            }
        }
        operations
    };
    let any = |list: &[String]| {
        if list.iter().any(|v| v == "*") {
            Vec::new()
        } else {
            list.to_vec()
        }
    };
    Ok(Matcher {
        api_groups: any(&m.api_groups),
        resources: any(&m.resources),
        operations,
        namespaces: m.namespaces.clone(),
        excluded_namespaces: m.excluded_namespaces.clone(),
        excluded_users: m.excluded_users.clone(),
        excluded_groups: m.excluded_groups.clone(),
    })
}

/// `<number><unit>` with unit `ms`, `s`, `m`, `h` or `d`.
fn parse_period(text: &str) -> Option<Duration> {
    let digits = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    number.checked_mul(unit_ms).map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use super::*;

    fn settings(json: &str) -> Settings {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn periods_read_as_kubernetes_users_write_them() {
        assert_eq!(parse_period("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_period("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_period("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_period("1d"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_period("1"), None);
        assert_eq!(parse_period("m"), None);
        assert_eq!(parse_period("1.5m"), None);
    }

    #[test]
    fn event_rate_limit_configurations_count_events() {
        let limits = compile(&settings(
            r#"{"apiVersion": "eventratelimit.admission.k8s.io/v1alpha1", "kind": "Configuration",
                "limits": [{"type": "Namespace", "qps": 50, "burst": 100, "cacheSize": 2000}]}"#,
        ))
        .unwrap();
        assert_eq!(limits.len(), 1);
        assert_eq!(limits[0].shape, Shape::per_second(50, 100));
        assert_eq!(limits[0].matcher, Matcher::events());
        assert_eq!(limits[0].label, "type Namespace");
    }

    #[test]
    fn errors_name_the_field() {
        let error = |json: &str| compile(&settings(json)).unwrap_err().path;
        assert_eq!(error(r#"{"limits": []}"#), "limits");
        assert_eq!(
            error(r#"{"limits": [{"type": "User", "qps": 1}]}"#),
            "limits[0].burst"
        );
        assert_eq!(
            error(r#"{"limits": [{"type": "User", "requests": 1, "per": "1 minute"}]}"#),
            "limits[0].per"
        );
        assert_eq!(
            error(
                r#"{"apiVersion": "eventratelimit.admission.k8s.io/v1alpha1", "kind": "Configuration",
                    "limits": [{"type": "User", "qps": 1, "burst": 1, "match": {}}]}"#
            ),
            "limits[0].match"
        );
        assert_eq!(
            error(r#"{"limits": [{"type": "SourceAndObject", "qps": 1, "burst": 1}]}"#),
            "limits[0].type"
        );
        assert_eq!(
            error(
                r#"{"limits": [{"type": "User", "requests": 1, "per": "1m", "match": {"operations": ["PATCH"]}}]}"#
            ),
            "limits[0].match.operations[0]"
        );
        assert_eq!(
            error(
                r#"{"limits": [{"name": "a", "type": "User", "qps": 1, "burst": 1},
                               {"name": "a", "type": "User", "qps": 2, "burst": 2}]}"#
            ),
            "limits[1].name"
        );
        assert_eq!(
            error(r#"{"apiVersion": "v1", "kind": "Configuration", "limits": []}"#),
            "apiVersion"
        );
    }
}
