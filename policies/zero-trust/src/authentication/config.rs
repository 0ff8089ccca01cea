//! RequestAuthentication as users write it: whole objects (`security.istio.io/v1`,
//! `v1beta1`), their `spec`s, or a list of either; every `jwtRules` entry becomes one provider.
//! Field names and defaults are Istio's; `jwksCluster` and `jwksRefresh` are ours (where the
//! filter sends its JWKS fetch, and how often).

use serde::Deserialize;
use serde_json::Value;

/// One `jwtRules` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct JwtRule {
    #[serde(default)]
    pub issuer: String,
    #[serde(default)]
    pub audiences: Vec<String>,
    /// The key set inline: JSON text (Istio's form) or the JSON object itself.
    #[serde(default)]
    pub jwks: Option<Value>,
    #[serde(default)]
    pub jwks_uri: Option<String>,
    #[serde(default)]
    pub from_headers: Vec<FromHeader>,
    #[serde(default)]
    pub from_params: Vec<String>,
    #[serde(default)]
    pub from_cookies: Vec<String>,
    #[serde(default)]
    pub output_payload_to_header: Option<String>,
    #[serde(default)]
    pub output_claim_to_headers: Vec<ClaimToHeader>,
    #[serde(default)]
    pub forward_original_token: bool,
    /// JWKS fetch timeout (`5s` by default).
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub space_delimited_claims: Vec<String>,
    /// Ours: the Envoy cluster the JWKS fetch goes to; Istio's name for the URI's host and
    /// port (`outbound|443||auth.example.com`) by default.
    #[serde(default)]
    pub jwks_cluster: Option<String>,
    /// Ours: how long a fetched key set is used before it is fetched again (`5m`, Envoy's
    /// default cache duration).
    #[serde(default)]
    pub jwks_refresh: Option<String>,
}

/// `fromHeaders` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FromHeader {
    pub name: String,
    #[serde(default)]
    pub prefix: String,
}

/// `outputClaimToHeaders` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClaimToHeader {
    pub header: String,
    pub claim: String,
}

/// A RequestAuthentication `spec`. `selector` and `targetRef(s)` choose workloads in a
/// cluster; a filter is already attached to its workload, so they are accepted and unused.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Spec {
    #[serde(default)]
    #[expect(
        dead_code,
        reason = "accepted so pasted objects parse; the filter's attachment selects"
    )]
    selector: Option<Value>,
    #[serde(default)]
    #[expect(dead_code, reason = "as selector")]
    target_ref: Option<Value>,
    #[serde(default)]
    #[expect(dead_code, reason = "as selector")]
    target_refs: Option<Value>,
    #[serde(default)]
    jwt_rules: Vec<JwtRule>,
}

/// A configuration error and where it is, relative to the `authentication` setting
/// (`[0].spec.jwtRules[1].jwks`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where, as a JSON path suffix.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Every `jwtRules` entry of `value`, with its path.
pub(crate) fn rules(value: &Value) -> Result<Vec<(String, JwtRule)>, ConfigError> {
    let items: Vec<(String, &Value)> = match value {
        Value::Null => Vec::new(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("[{i}]"), v))
            .collect(),
        other => vec![(String::new(), other)],
    };
    let mut rules = Vec::new();
    for (at, item) in items {
        let Value::Object(object) = item else {
            return Err(ConfigError {
                path: at,
                message: "expected a RequestAuthentication object or its spec".into(),
            });
        };
        let (at, spec) = if object.contains_key("spec") || object.contains_key("kind") {
            if let Some(kind) = object.get("kind").and_then(Value::as_str)
                && kind != "RequestAuthentication"
            {
                return Err(ConfigError {
                    path: format!("{at}.kind"),
                    message: format!("expected RequestAuthentication, got {kind}"),
                });
            }
            (
                format!("{at}.spec"),
                object.get("spec").cloned().unwrap_or(Value::Null),
            )
        } else {
            (at, item.clone())
        };
        let spec: Spec = if spec.is_null() {
            Spec::default()
        } else {
            serde_path_to_error::deserialize(spec).map_err(|e| {
                let inner = e.path().to_string();
                ConfigError {
                    path: if inner == "." {
                        at.clone()
                    } else {
                        format!("{at}.{inner}")
                    },
                    message: e.into_inner().to_string(),
                }
            })?
        };
        for (i, rule) in spec.jwt_rules.into_iter().enumerate() {
            rules.push((format!("{at}.jwtRules[{i}]"), rule));
        }
    }
    Ok(rules)
}

/// A duration as Istio and Envoy write them: protobuf JSON (`0.5s`, `600s`) or with units
/// (`300ms`, `5m`, `1h30m`).
pub(crate) fn duration(text: &str) -> Result<std::time::Duration, String> {
    // Decimal seconds by hand: `str::parse::<f64>` would link the float parser's tables.
    if let Some(seconds) = text.strip_suffix('s') {
        let (whole, fraction) = seconds.split_once('.').unwrap_or((seconds, ""));
        let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if digits(whole) && (fraction.is_empty() || digits(fraction)) && fraction.len() <= 9 {
            let whole: u64 = whole.parse().map_err(|e| format!("{text:?}: {e}"))?;
            let nanos = format!("{fraction:0<9}").parse::<u32>().unwrap_or_default();
            return Ok(std::time::Duration::new(whole, nanos));
        }
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration such as 5s, 0.5s or 300ms: {e}"))
}
