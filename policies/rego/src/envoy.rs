//! OPA-Envoy policies inside the sidecar: the decision `opa-envoy-plugin` gives Envoy's
//! ext_authz filter, computed in the filter itself (no ext_authz hop). The input is shaped as
//! the plugin presents Envoy's `CheckRequest` (open-policy-agent/opa-envoy-plugin
//! `envoyauth/request.go`: `attributes` with protobuf JSON names, `parsed_path`,
//! `parsed_query`, `parsed_body`, `truncated_body`, `version`); the decision rule (default
//! `data.envoy.authz.allow`) is a boolean or an object, applied as `envoyauth/response.go` and
//! Envoy's ext_authz filter apply it.

mod body;

use std::collections::BTreeMap;

pub use body::WithRequestBody;
use palisade_sdk::wire::{BodyLimit, HeaderChange, HttpRequest, HttpVerdict};
use palisade_sdk::{Host, HttpPolicy, PolicyError, PolicySettings, SettingsError};
use serde::Deserialize;

use crate::rego;

/// The OPA-Envoy filter.
pub struct OpaEnvoy;

/// The filter's configuration: the Rego modules and data an OPA-Envoy deployment loads, and the
/// plugin's options.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// Rego modules by file name (`policy.rego: "package envoy.authz ..."`).
    #[serde(default)]
    pub modules: BTreeMap<String, String>,
    /// The data document (`data.*` beside the modules).
    #[serde(default)]
    pub data: Option<serde_json::Value>,
    /// The decision's path (the plugin's `path`): `envoy/authz/allow` by default.
    #[serde(default)]
    pub path: Option<String>,
    /// The plugin's deprecated `query` (`data.envoy.authz.allow`); not with `path`.
    #[serde(default)]
    pub query: Option<String>,
    /// The plugin's `dry-run`: every request is allowed; the decision is still made (and logged
    /// by the proxy as the filter's message).
    #[serde(default, alias = "dry-run")]
    pub dry_run: bool,
    /// `v1` (OPA 1.x, the plugin's default) or `v0` (`--v0-compatible`).
    #[serde(default)]
    pub rego_version: Option<String>,
    /// Envoy ext_authz's `with_request_body`: decide on the request body too (the input's
    /// `body`/`raw_body`, `parsed_body`, `truncated_body`). Off by default, as in ext_authz.
    #[serde(default)]
    pub with_request_body: Option<WithRequestBody>,
}

impl PolicySettings for Settings {
    fn validate(&self) -> Result<(), SettingsError> {
        if self.modules.is_empty() {
            return Err(SettingsError::new(
                "modules",
                "at least one Rego module is required",
            ));
        }
        if self.path.is_some() && self.query.is_some() {
            return Err(SettingsError::new(
                "query",
                "both path and query are set; use path (query is deprecated)",
            ));
        }
        if let Some(with) = &self.with_request_body
            && !(1..=body::MAX_REQUEST_BYTES).contains(&with.max_request_bytes)
        {
            return Err(SettingsError::new(
                "withRequestBody.maxRequestBytes",
                format!(
                    "{} is not between 1 and {} bytes",
                    with.max_request_bytes,
                    body::MAX_REQUEST_BYTES
                ),
            ));
        }
        match self.rego_version.as_deref() {
            None | Some("v1" | "v0") => Ok(()),
            Some(other) => Err(SettingsError::new(
                "regoVersion",
                format!("{other:?} is not v1 or v0"),
            )),
        }
    }
}

/// The modules compiled once per VM, and the decision's rule.
#[derive(Debug, Clone)]
pub struct Prepared {
    engine: regorus::Engine,
    rule: String,
    dry_run: bool,
    with_request_body: Option<WithRequestBody>,
}

/// Compiles the configuration.
///
/// # Errors
/// [`SettingsError`] naming the module (with regorus's line and column), the data, or a
/// decision rule the modules do not define.
pub fn compile(settings: &Settings) -> Result<Prepared, SettingsError> {
    let mut engine = rego::engine(settings.rego_version.as_deref() != Some("v0"));
    for (name, source) in &settings.modules {
        engine
            .add_policy(name.clone(), source.clone())
            .map_err(|e| SettingsError::new(format!("modules.{name}"), rego::error(&e)))?;
    }
    if let Some(data) = &settings.data {
        engine
            .add_data(regorus::Value::from(data.clone()))
            .map_err(|e| SettingsError::new("data", rego::error(&e)))?;
    }
    let rule = match (&settings.path, &settings.query) {
        (_, Some(query)) => query.trim().to_owned(),
        (Some(path), None) => format!("data.{}", path.trim_matches('/').replace('/', ".")),
        (None, None) => "data.envoy.authz.allow".to_owned(),
    };
    engine
        .compile_with_entrypoint(&rule.as_str().into())
        .map_err(|e| {
            SettingsError::new(
                if settings.query.is_some() {
                    "query"
                } else {
                    "path"
                },
                format!("the decision {rule}: {}", rego::error(&e)),
            )
        })?;
    Ok(Prepared {
        engine,
        rule,
        dry_run: settings.dry_run,
        with_request_body: settings.with_request_body,
    })
}

impl HttpPolicy for OpaEnvoy {
    type Settings = Settings;
    type Prepared = Prepared;

    fn prepare(settings: Settings) -> Result<Prepared, SettingsError> {
        compile(&settings)
    }

    fn evaluate(
        request: &HttpRequest,
        prepared: &Prepared,
        _host: &dyn Host,
    ) -> Result<HttpVerdict, PolicyError> {
        evaluate(request, prepared)
    }

    fn reads_body(prepared: &Prepared, _request: &HttpRequest) -> Option<BodyLimit> {
        prepared.with_request_body.map(|with| BodyLimit {
            max_bytes: usize::try_from(with.max_request_bytes).unwrap_or(usize::MAX),
            allow_partial: with.allow_partial_message,
        })
    }
}

/// The decision on one request.
///
/// # Errors
/// [`PolicyError::Internal`] when the decision cannot be made (evaluation error, undefined
/// decision, a decision of the wrong shape): the plugin answers ext_authz with an error then,
/// and Envoy denies (its `failure_mode_allow` is false by default); so does the adapter.
pub fn evaluate(request: &HttpRequest, prepared: &Prepared) -> Result<HttpVerdict, PolicyError> {
    let mut engine = prepared.engine.clone();
    engine.set_input(input(request, prepared.with_request_body).map_err(PolicyError::Internal)?);
    let decision = engine
        .eval_rule(prepared.rule.clone())
        .map_err(|e| PolicyError::Internal(rego::error(&e)))?;
    let verdict = apply(&decision, request, &prepared.rule)?;
    if prepared.dry_run && !verdict.is_allowed() {
        return Ok(HttpVerdict::allow());
    }
    Ok(verdict)
}

/// `input` as the plugin builds it from the CheckRequest Envoy would send; with
/// `with_request_body`, the body the filter held.
///
/// # Errors
/// What the plugin answers as an error: a body of a parsed content type that does not parse.
pub fn input(
    request: &HttpRequest,
    with_request_body: Option<WithRequestBody>,
) -> Result<regorus::Value, String> {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in [
        (":authority", request.authority.as_str()),
        (":method", request.method.as_str()),
        (":path", request.path.as_str()),
        (":scheme", request.scheme.as_str()),
    ] {
        if !value.is_empty() {
            headers.insert(name.to_owned(), value.to_owned());
        }
    }
    for (name, value) in request.headers.iter() {
        // Envoy joins repeated headers with commas in the CheckRequest's map.
        headers
            .entry(name.to_ascii_lowercase())
            .and_modify(|v| {
                v.push(',');
                v.push_str(value);
            })
            .or_insert_with(|| value.to_owned());
    }
    if with_request_body.is_some() && !request.body.is_empty() {
        headers.insert(
            body::PARTIAL_BODY_HEADER.to_owned(),
            request.body_partial.to_string(),
        );
    }
    let (parsed_body, truncated_body) = match with_request_body {
        Some(_) => body::parse(&headers, &request.body)?,
        None => (serde_json::Value::Null, false),
    };
    let mut http = serde_json::json!({
        "method": request.method,
        "headers": headers,
        "path": request.path,
        "host": request.authority,
        "scheme": request.scheme,
    });
    if let Some(size) = request
        .header("content-length")
        .and_then(|v| v.trim().parse::<i64>().ok())
        && let Some(http) = http.as_object_mut()
    {
        http.insert("size".to_owned(), size.into());
    }
    if let Some(with) = with_request_body
        && let Some(http) = http.as_object_mut()
    {
        body::attach(http, &request.body, with.pack_as_bytes);
    }
    let connection = &request.connection;
    let mut source = serde_json::Map::new();
    if let Some(address) = connection
        .source_address
        .as_deref()
        .and_then(socket_address)
    {
        source.insert("address".to_owned(), address);
    }
    if let Some(principal) = &connection.peer_principal {
        source.insert("principal".to_owned(), principal.clone().into());
    }
    let mut destination = serde_json::Map::new();
    if let Some(address) = connection
        .destination_address
        .as_deref()
        .and_then(socket_address)
    {
        destination.insert("address".to_owned(), address);
    }
    let (path, query) = request
        .path
        .split_once('?')
        .unwrap_or((request.path.as_str(), ""));
    let mut input = serde_json::json!({
        "attributes": {
            "source": source,
            "destination": destination,
            "request": {"http": http},
        },
        "parsed_path": parsed_path(path),
        "parsed_query": parsed_query(query),
        "parsed_body": parsed_body,
        "truncated_body": truncated_body,
        "version": {"ext_authz": "v3", "encoding": "protojson"},
    });
    if let Some(principal) = connection
        .peer_principal
        .as_deref()
        .filter(|p| !p.is_empty())
        && let Some(input) = input.as_object_mut()
    {
        input.insert("source_principal".to_owned(), principal.into());
    }
    Ok(regorus::Value::from(input))
}

/// `ip:port` (IPv6 as `[::1]:port`) as Envoy's `SocketAddress` in protobuf JSON names.
fn socket_address(text: &str) -> Option<serde_json::Value> {
    let (host, port) = text.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u32 = port.parse().ok()?;
    Some(serde_json::json!({"socketAddress": {"address": host, "portValue": port}}))
}

/// The plugin's `parsed_path`: the path without its query, percent-decoded, without its leading
/// `/`, split on `/` (`/` gives `[""]`).
fn parsed_path(path: &str) -> Vec<String> {
    let decoded = percent_decode(path, false);
    decoded
        .strip_prefix('/')
        .unwrap_or(&decoded)
        .split('/')
        .map(str::to_owned)
        .collect()
}

/// Go's `url.ParseQuery`: every name to the list of its values, `+` as a space.
fn parsed_query(query: &str) -> BTreeMap<String, Vec<String>> {
    let mut parsed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        parsed
            .entry(percent_decode(name, true))
            .or_default()
            .push(percent_decode(value, true));
    }
    parsed
}

/// Percent-decoding; invalid escapes stay as they are, invalid UTF-8 is replaced.
fn percent_decode(text: &str, plus_is_space: bool) -> String {
    decode(text, plus_is_space, false).unwrap_or_default()
}

/// Percent-decoding (`+` as a space when `plus_is_space`); invalid UTF-8 is replaced. A `%` not
/// followed by two hex digits is kept as it is, or, when `strict` (Go's `ParseQuery`), `None`.
fn decode(text: &str, plus_is_space: bool, strict: bool) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = |at: usize| bytes.get(at).and_then(|c| char::from(*c).to_digit(16));
        match b {
            b'%' => match (hex(i.saturating_add(1)), hex(i.saturating_add(2))) {
                (Some(high), Some(low)) => {
                    out.push(
                        u8::try_from(high.saturating_mul(16).saturating_add(low)).unwrap_or(b'?'),
                    );
                    i = i.saturating_add(3);
                    continue;
                }
                _ if strict => return None,
                _ => out.push(b),
            },
            b'+' if plus_is_space => out.push(b' '),
            _ => out.push(b),
        }
        i = i.saturating_add(1);
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Applies a decision as the plugin and Envoy's ext_authz filter do.
fn apply(
    decision: &regorus::Value,
    request: &HttpRequest,
    rule: &str,
) -> Result<HttpVerdict, PolicyError> {
    let wrong = |what: String| PolicyError::Internal(format!("the decision {rule} {what}"));
    let object = match decision {
        regorus::Value::Bool(true) => return Ok(HttpVerdict::allow()),
        // PERMISSION_DENIED without a DeniedHttpResponse: Envoy's default 403, empty body.
        regorus::Value::Bool(false) => {
            return Ok(HttpVerdict::deny(
                403,
                "ext_authz_denied",
                format!("{rule} is false"),
            ));
        }
        regorus::Value::Undefined => return Err(wrong("is undefined".to_owned())),
        regorus::Value::Object(_) => rego::to_json(decision),
        other => {
            return Err(wrong(format!(
                "must be a boolean or an object, not {}",
                rego::to_json(other)
            )));
        }
    };
    let allowed = object
        .get("allowed")
        .and_then(serde_json::Value::as_bool)
        .ok_or_else(|| wrong("has no boolean `allowed`".to_owned()))?;
    let headers = header_pairs(object.get("headers"), "headers").map_err(wrong)?;
    if !allowed {
        let status = match object.get("http_status") {
            None => 403,
            Some(status) => status
                .as_u64()
                .and_then(|s| u16::try_from(s).ok())
                .filter(|s| (100..=599).contains(s))
                .ok_or_else(|| wrong(format!("has an invalid http_status {status}")))?,
        };
        let body = match object.get("body") {
            None => String::new(),
            Some(serde_json::Value::String(body)) => body.clone(),
            Some(other) => return Err(wrong(format!("has a body that is not a string: {other}"))),
        };
        return Ok(HttpVerdict::Deny {
            status,
            reason: "ext_authz_denied".to_owned(),
            message: format!("{rule} denied the request"),
            body,
            headers,
        });
    }
    let mut request_headers: Vec<HeaderChange> = set_then_add(headers);
    for name in strings(
        object.get("request_headers_to_remove"),
        "request_headers_to_remove",
    )
    .map_err(wrong)?
    {
        request_headers.push(HeaderChange::Remove {
            name: name.to_ascii_lowercase(),
        });
    }
    let to_set = object.get("query_parameters_to_set");
    let to_remove = strings(
        object.get("query_parameters_to_remove"),
        "query_parameters_to_remove",
    )
    .map_err(wrong)?;
    if to_set.is_some() || !to_remove.is_empty() {
        let set = header_pairs(to_set, "query_parameters_to_set").map_err(wrong)?;
        request_headers.push(HeaderChange::set(
            ":path",
            rewrite_query(&request.path, &set, &to_remove),
        ));
    }
    let response_headers = set_then_add(
        header_pairs(
            object.get("response_headers_to_add"),
            "response_headers_to_add",
        )
        .map_err(wrong)?,
    );
    Ok(HttpVerdict::Continue {
        request_headers,
        response_headers,
    })
}

/// Headers with no `append` set replace what is there (Envoy's ext_authz `headers_to_set`); a
/// name given several values keeps them all.
fn set_then_add(pairs: Vec<(String, String)>) -> Vec<HeaderChange> {
    let mut seen = std::collections::BTreeSet::new();
    pairs
        .into_iter()
        .map(|(name, value)| {
            if seen.insert(name.clone()) {
                HeaderChange::set(name, value)
            } else {
                HeaderChange::add(name, value)
            }
        })
        .collect()
}

/// `headers`-like fields: an object of name to string or list of strings, or a list of such
/// objects (the plugin accepts both), as (lower-case name, value) pairs in order.
fn header_pairs(
    value: Option<&serde_json::Value>,
    field: &str,
) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let objects: Vec<&serde_json::Value> = match value {
        None => return Ok(pairs),
        Some(serde_json::Value::Array(items)) => items.iter().collect(),
        Some(other) => vec![other],
    };
    for object in objects {
        let object = object
            .as_object()
            .ok_or_else(|| format!("has a {field} that is not an object"))?;
        for (name, value) in object {
            let name = name.to_ascii_lowercase();
            match value {
                serde_json::Value::String(v) => pairs.push((name, v.clone())),
                serde_json::Value::Array(values) => {
                    for v in values {
                        let v = v.as_str().ok_or_else(|| {
                            format!("has a {field} value of {name} that is not a string")
                        })?;
                        pairs.push((name.clone(), v.to_owned()));
                    }
                }
                other => {
                    return Err(format!(
                        "has a {field} value of {name} that is not a string: {other}"
                    ));
                }
            }
        }
    }
    Ok(pairs)
}

fn strings(value: Option<&serde_json::Value>, field: &str) -> Result<Vec<String>, String> {
    match value {
        None => Ok(Vec::new()),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("has a {field} entry that is not a string"))
            })
            .collect(),
        Some(other) => Err(format!("has a {field} that is not a list: {other}")),
    }
}

/// The path with query parameters set (replacing every value of the name) and removed, the
/// others kept in order.
fn rewrite_query(path: &str, set: &[(String, String)], remove: &[String]) -> String {
    let (base, query) = path.split_once('?').unwrap_or((path, ""));
    let setting: std::collections::BTreeSet<&str> = set.iter().map(|(n, _)| n.as_str()).collect();
    let mut kept: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let name = percent_decode(p.split_once('=').map_or(*p, |(n, _)| n), true);
            !setting.contains(name.as_str()) && !remove.contains(&name)
        })
        .map(str::to_owned)
        .collect();
    kept.extend(
        set.iter()
            .map(|(n, v)| format!("{}={}", encode(n), encode(v))),
    );
    if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

/// Query escaping as Go's `url.QueryEscape`.
fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_queries_are_parsed_as_the_plugin_parses_them() {
        assert_eq!(parsed_path("/"), vec![""]);
        assert_eq!(parsed_path("/api/v1/a%20b"), vec!["api", "v1", "a b"]);
        let q = parsed_query("a=1&a=2&b=x+y&c&d=%2F");
        assert_eq!(q.get("a"), Some(&vec!["1".to_owned(), "2".to_owned()]));
        assert_eq!(q.get("b"), Some(&vec!["x y".to_owned()]));
        assert_eq!(q.get("c"), Some(&vec![String::new()]));
        assert_eq!(q.get("d"), Some(&vec!["/".to_owned()]));
    }

    #[test]
    fn query_parameters_are_set_and_removed() {
        let set = vec![("lang".to_owned(), "en us".to_owned())];
        assert_eq!(
            rewrite_query("/p?lang=fr&debug=1&x=2", &set, &["debug".to_owned()]),
            "/p?x=2&lang=en+us"
        );
        assert_eq!(
            rewrite_query("/p?debug=1", &[], &["debug".to_owned()]),
            "/p"
        );
    }
}
