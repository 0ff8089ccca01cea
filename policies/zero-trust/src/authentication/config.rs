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

/// A duration as Istio writes them (Go's `time.ParseDuration`, which also reads protobuf JSON's
/// `0.5s`): decimal numbers with units `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`, one after another
/// (`300ms`, `1h30m`, `1.5h`), or `0`; at most 584 years, as in Go. Parsed here in integers: a crate (or `str::parse::<f64>`)
/// would add a float parser's code and tables to a module at its size budget.
pub(crate) fn duration(text: &str) -> Result<std::time::Duration, String> {
    const NANOS: u64 = 1_000_000_000;
    let bad = || format!("{text:?} is not a duration such as 5s, 0.5s, 300ms or 1h30m");
    if text == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    if text.is_empty() {
        return Err(bad());
    }
    let mut rest = text;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (number, after) = rest.split_at(number_end);
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let scale: u64 = match unit {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => NANOS,
            "m" => NANOS.saturating_mul(60),
            "h" => NANOS.saturating_mul(3_600),
            _ => return Err(bad()),
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
            return Err(bad());
        }
        let whole: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        let mut nanos = whole.checked_mul(scale).ok_or_else(bad)?;
        let mut place = scale;
        for digit in fraction.bytes() {
            place = place.checked_div(10).unwrap_or_default();
            nanos = nanos
                .checked_add(u64::from(digit.saturating_sub(b'0')).saturating_mul(place))
                .ok_or_else(bad)?;
        }
        total = total.checked_add(nanos).ok_or_else(bad)?;
        rest = next;
    }
    Ok(std::time::Duration::from_nanos(total))
}

#[cfg(test)]
mod duration_tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::duration;
    use std::time::Duration;

    #[test]
    fn reads_what_istio_and_go_read() {
        for (text, want) in [
            ("5s", Duration::from_secs(5)),
            ("0.5s", Duration::from_millis(500)),
            ("600s", Duration::from_secs(600)),
            ("300ms", Duration::from_millis(300)),
            ("1h30m", Duration::from_secs(5_400)),
            ("1.5h", Duration::from_secs(5_400)),
            ("2m0.25s", Duration::from_millis(120_250)),
            (".5s", Duration::from_millis(500)),
            ("10us", Duration::from_micros(10)),
            ("10µs", Duration::from_micros(10)),
            ("7ns", Duration::from_nanos(7)),
            ("0", Duration::ZERO),
        ] {
            assert_eq!(duration(text).unwrap(), want, "{text}");
        }
        for text in [
            "",
            "s",
            "5",
            "5x",
            "-5s",
            "1..5s",
            "5s5",
            "1.2.3s",
            "5 s",
            "99999999999999999999999999h",
        ] {
            let err = duration(text).unwrap_err();
            assert!(err.contains("is not a duration"), "{text}: {err}");
        }
    }
}
