//! CUSTOM policies' external authorizers: Istio's MeshConfig `extensionProviders` entries of
//! kind `envoyExtAuthzHttp`, asked the way Envoy's ext_authz filter asks an HTTP authorization
//! service (Istio's `extauthz.go` builds that filter from the provider):
//!
//! - the check request keeps the request's method, prefixes its path with `pathPrefix`, keeps
//!   its authority, and carries `authorization` plus the headers `includeRequestHeadersInCheck`
//!   names (exact, `prefix*` or `*suffix`, case-insensitive; repeated headers joined with `,`),
//!   then `includeAdditionalHeadersInCheck` (overriding), and `content-length: 0`;
//! - only a 200 allows: the answer's headers named by `headersToUpstreamOnAllow` are set on the
//!   upstream request, those named by `headersToDownstreamOnAllow` added to the response, and
//!   `x-envoy-auth-headers-to-remove` lists request headers to drop;
//! - a 5xx, a reset, a refused call or a timeout (the proxy's own 504) is an error: the request
//!   is denied with `statusOnError` (403) and no body, or let through when `failOpen`;
//! - any other status denies with the answer's status and body, and its headers (all of them
//!   when `headersToDownstreamOnDeny` is not set; else the named ones plus `www-authenticate`
//!   and `location`).
//!
//! No ABI here: the provider makes an SDK [`Callout`] and reads its [`Answer`].

use std::collections::BTreeMap;
use std::time::Duration;

use palisade_sdk::wire::{Answer, Callout, HeaderChange, HttpRequest};
use serde::Deserialize;
use serde_json::Value;

use crate::authorization::ConfigError;
use crate::authorization::matchers::Pattern;

/// The request header a 200 answer may list request headers to remove in (Envoy).
const HEADERS_TO_REMOVE: &str = "x-envoy-auth-headers-to-remove";

/// Istio's timeout for a provider that names none.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// `envoyExtAuthzHttp` (istio/api `EnvoyExternalAuthorizationHttpProvider`), plus `cluster`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct HttpSettings {
    /// `[<namespace>/]<hostname>` of the authorization service.
    service: String,
    /// Its port.
    port: u32,
    /// Ours: the Envoy cluster to call, for proxies whose clusters are not named as Istio names
    /// them (`outbound|<port>||<hostname>`).
    #[serde(default)]
    cluster: Option<String>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    path_prefix: String,
    #[serde(default)]
    fail_open: bool,
    #[serde(default)]
    clear_route_cache: bool,
    #[serde(default)]
    status_on_error: Option<String>,
    #[serde(default)]
    include_headers_in_check: Vec<String>,
    #[serde(default)]
    include_request_headers_in_check: Vec<String>,
    #[serde(default)]
    include_additional_headers_in_check: BTreeMap<String, String>,
    #[serde(default)]
    include_request_body_in_check: Option<Value>,
    #[serde(default)]
    headers_to_upstream_on_allow: Vec<String>,
    #[serde(default)]
    headers_to_downstream_on_deny: Option<Vec<String>>,
    #[serde(default)]
    headers_to_downstream_on_allow: Vec<String>,
}

/// A list of Istio's header-name patterns (exact, `prefix*`, `*suffix`; Istio compiles them to
/// case-insensitive string matchers): the policies' string forms, lower-cased, without `*` alone.
fn patterns(list: &[String], at: &str) -> Result<Vec<Pattern>, ConfigError> {
    list.iter()
        .enumerate()
        .map(|(i, text)| match Pattern::parse(text).lowercase() {
            Pattern::Any | Pattern::Exact(_) if text.is_empty() || text == "*" => {
                Err(ConfigError {
                    path: format!("{at}[{i}]"),
                    message: format!(
                        "{text:?} is not a header name, a prefix such as x-authz-* or a suffix \
                         such as *-id"
                    ),
                })
            }
            pattern => Ok(pattern),
        })
        .collect()
}

/// Whether a header name matches one of the patterns, in any case.
fn any(patterns: &[Pattern], name: &str) -> bool {
    let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(name.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(name)
    };
    patterns.iter().any(|p| p.matches(&name))
}

/// One compiled `envoyExtAuthzHttp` provider.
#[derive(Debug, Clone)]
pub struct Provider {
    /// The provider's name, as CUSTOM policies' `provider.name` gives it.
    pub name: String,
    /// The id of its calls (`ext-authz/<name>`).
    pub id: String,
    /// The Envoy cluster its calls go to.
    pub cluster: String,
    path_prefix: String,
    timeout_ms: u32,
    /// Whether an error lets the request through.
    pub fail_open: bool,
    status_on_error: u16,
    include: Vec<Pattern>,
    additional: Vec<(String, String)>,
    to_upstream: Vec<Pattern>,
    to_downstream_on_deny: Option<Vec<Pattern>>,
    to_downstream_on_allow: Vec<Pattern>,
}

/// What a provider's answer means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 200: the request goes on, with these changes.
    Ok {
        /// Changes to the upstream request.
        request_headers: Vec<HeaderChange>,
        /// Changes to the response the client gets.
        response_headers: Vec<HeaderChange>,
    },
    /// The service refused: its status, body and headers go to the client.
    Denied {
        /// The answer's status.
        status: u16,
        /// The answer's body.
        body: String,
        /// The answer's headers that reach the client.
        headers: Vec<(String, String)>,
    },
    /// No usable answer (5xx, reset, refused, timed out), and the provider does not fail open:
    /// `statusOnError` with no body.
    Error {
        /// `statusOnError`.
        status: u16,
        /// What went wrong, for the log.
        why: String,
    },
    /// No usable answer, and the provider fails open: the request goes on unchanged.
    FailureModeAllowed {
        /// What went wrong, for the log.
        why: String,
    },
}

impl Outcome {
    /// Envoy's name for the outcome (its ext_authz counters).
    #[must_use]
    pub fn stat(&self) -> &'static str {
        match self {
            Self::Ok { .. } => "ok",
            Self::Denied { .. } => "denied",
            Self::Error { .. } => "error",
            Self::FailureModeAllowed { .. } => "failure_mode_allowed",
        }
    }
}

impl Provider {
    fn new(name: &str, settings: HttpSettings) -> Result<Self, ConfigError> {
        let error = |field: &str, message: String| ConfigError {
            path: format!(".envoyExtAuthzHttp.{field}"),
            message,
        };
        if settings.include_request_body_in_check.is_some() {
            return Err(error(
                "includeRequestBodyInCheck",
                "not supported: the filter decides at the request headers, before any body \
                 arrives"
                    .to_owned(),
            ));
        }
        let host = settings
            .service
            .split_once('/')
            .map_or(settings.service.as_str(), |(_, host)| host);
        if host.is_empty() {
            return Err(error(
                "service",
                format!(
                    "{:?} names no host: write [<namespace>/]<hostname>",
                    settings.service
                ),
            ));
        }
        if settings.port == 0 || settings.port > 65_535 {
            return Err(error(
                "port",
                format!("{} is not a port (1-65535)", settings.port),
            ));
        }
        let timeout = match &settings.timeout {
            Some(text) => crate::authentication::duration(text).map_err(|m| error("timeout", m))?,
            None => DEFAULT_TIMEOUT,
        };
        let timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        let status_on_error = match settings.status_on_error.as_deref() {
            None | Some("") => 403,
            Some(text) => text
                .parse::<u16>()
                .ok()
                .filter(|s| (100..=599).contains(s))
                .ok_or_else(|| {
                    error(
                        "statusOnError",
                        format!("{text:?} is not an HTTP status such as \"503\""),
                    )
                })?,
        };
        // Istio reads the deprecated list only when the new one is empty.
        let (include, include_at) = if settings.include_request_headers_in_check.is_empty() {
            (&settings.include_headers_in_check, "includeHeadersInCheck")
        } else {
            (
                &settings.include_request_headers_in_check,
                "includeRequestHeadersInCheck",
            )
        };
        let at = |field: &str| format!(".envoyExtAuthzHttp.{field}");
        let _ = settings.clear_route_cache;
        Ok(Self {
            name: name.to_owned(),
            id: format!("ext-authz/{name}"),
            cluster: settings
                .cluster
                .unwrap_or_else(|| format!("outbound|{}||{host}", settings.port)),
            path_prefix: settings.path_prefix,
            timeout_ms,
            fail_open: settings.fail_open,
            status_on_error,
            include: patterns(include, &at(include_at))?,
            // Istio sorts them by name; Envoy overrides a client header of the same name.
            additional: settings
                .include_additional_headers_in_check
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
            to_upstream: patterns(
                &settings.headers_to_upstream_on_allow,
                &at("headersToUpstreamOnAllow"),
            )?,
            to_downstream_on_deny: settings
                .headers_to_downstream_on_deny
                .map(|list| patterns(&list, &at("headersToDownstreamOnDeny")))
                .transpose()?,
            to_downstream_on_allow: patterns(
                &settings.headers_to_downstream_on_allow,
                &at("headersToDownstreamOnAllow"),
            )?,
        })
    }

    /// The check request for `request`.
    #[must_use]
    pub fn check(&self, request: &HttpRequest) -> Callout {
        let mut headers: Vec<(String, String)> = Vec::new();
        for (name, value) in &request.headers {
            if name == "content-length"
                || self.additional.iter().any(|(n, _)| n == name)
                || !(name == "authorization" || any(&self.include, name))
            {
                continue;
            }
            // One value per name, as in Envoy's CheckRequest map.
            match headers.iter_mut().find(|(n, _)| n == name) {
                Some((_, joined)) => {
                    joined.push(',');
                    joined.push_str(value);
                }
                None => headers.push((name.to_owned(), value.to_owned())),
            }
        }
        headers.extend(self.additional.iter().cloned());
        headers.push(("content-length".to_owned(), "0".to_owned()));
        Callout {
            id: self.id.clone(),
            cluster: self.cluster.clone(),
            method: request.method.clone(),
            path: format!("{}{}", self.path_prefix, request.path),
            authority: request.authority.clone(),
            headers,
            body: String::new(),
            timeout_ms: self.timeout_ms,
            grpc: None,
        }
    }

    /// What the answer to a check request means.
    #[must_use]
    pub fn outcome(&self, answer: &Answer) -> Outcome {
        let failed = |why: String| {
            if self.fail_open {
                Outcome::FailureModeAllowed { why }
            } else {
                Outcome::Error {
                    status: self.status_on_error,
                    why,
                }
            }
        };
        match answer.status {
            0 => failed("no answer (the call was refused or reset)".to_owned()),
            500..=599 => failed(format!("the service answered {}", answer.status)),
            200 => {
                let mut request_headers: Vec<HeaderChange> = answer
                    .headers
                    .iter()
                    .filter(|(name, _)| any(&self.to_upstream, name))
                    .map(|(name, value)| HeaderChange::set(name, value))
                    .collect();
                request_headers.extend(
                    answer
                        .header(HEADERS_TO_REMOVE)
                        .into_iter()
                        .flat_map(|list| list.split(','))
                        .map(str::trim)
                        .filter(|name| !name.is_empty() && !name.starts_with(':'))
                        .map(|name| HeaderChange::remove(name.to_ascii_lowercase())),
                );
                let response_headers = answer
                    .headers
                    .iter()
                    .filter(|(name, _)| any(&self.to_downstream_on_allow, name))
                    .map(|(name, value)| HeaderChange::add(name, value))
                    .collect();
                Outcome::Ok {
                    request_headers,
                    response_headers,
                }
            }
            status => Outcome::Denied {
                status,
                body: answer.body.clone(),
                headers: answer
                    .headers
                    .iter()
                    .filter(|(name, _)| {
                        // The local reply sets its own length.
                        name != "content-length"
                            && self.to_downstream_on_deny.as_ref().is_none_or(|list| {
                                name == "www-authenticate" || name == "location" || any(list, name)
                            })
                    })
                    .cloned()
                    .collect(),
            },
        }
    }
}

/// The compiled `extensionProviders`: the `envoyExtAuthzHttp` ones, and the names of the
/// others (which CUSTOM policies cannot use here).
#[derive(Debug, Clone, Default)]
pub struct Providers {
    http: Vec<Provider>,
    other: Vec<(String, String)>,
}

impl Providers {
    /// Compiles MeshConfig's `extensionProviders` list.
    ///
    /// # Errors
    /// [`ConfigError`] with the path below `extensionProviders` of the first bad entry.
    pub fn new(value: &Value) -> Result<Self, ConfigError> {
        let list = match value {
            Value::Null => return Ok(Self::default()),
            Value::Array(list) => list,
            _ => {
                return Err(ConfigError {
                    path: String::new(),
                    message: "a list of MeshConfig extensionProviders entries \
                              ({name, envoyExtAuthzHttp: {...}})"
                        .to_owned(),
                });
            }
        };
        let mut providers = Self::default();
        for (index, value) in list.iter().enumerate() {
            let at = format!("[{index}]");
            // `{name, <kind>: {...}}`, read by hand: serde's `flatten` costs the module size.
            let entry = value.as_object().ok_or_else(|| ConfigError {
                path: at.clone(),
                message: "an entry is a mapping {name, envoyExtAuthzHttp: {...}}".to_owned(),
            })?;
            let name = match entry.get("name") {
                Some(Value::String(name)) if !name.is_empty() => name.clone(),
                _ => {
                    return Err(ConfigError {
                        path: format!("{at}.name"),
                        message: "every provider has a name (a non-empty string)".to_owned(),
                    });
                }
            };
            if providers.names().any(|n| n == name) {
                return Err(ConfigError {
                    path: format!("{at}.name"),
                    message: format!("{name:?} names two providers"),
                });
            }
            let mut kinds = entry.iter().filter(|(key, _)| *key != "name");
            let (Some((kind, settings)), None) = (kinds.next(), kinds.next()) else {
                return Err(ConfigError {
                    path: at,
                    message: "an entry has a name and exactly one provider kind, such as \
                              envoyExtAuthzHttp"
                        .to_owned(),
                });
            };
            if kind == "envoyExtAuthzHttp" {
                let settings: HttpSettings =
                    serde_path_to_error::deserialize(settings).map_err(|e| ConfigError {
                        path: format!("{at}.envoyExtAuthzHttp.{}", e.path()),
                        message: e.into_inner().to_string(),
                    })?;
                providers
                    .http
                    .push(Provider::new(&name, settings).map_err(|e| ConfigError {
                        path: format!("{at}{}", e.path),
                        message: e.message,
                    })?);
            } else {
                providers.other.push((name, kind.clone()));
            }
        }
        Ok(providers)
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.http
            .iter()
            .map(|p| p.name.as_str())
            .chain(self.other.iter().map(|(n, _)| n.as_str()))
    }

    /// The HTTP provider `name`.
    ///
    /// # Errors
    /// A message saying why a CUSTOM policy cannot use `name`: no such provider, or one of a
    /// kind this filter does not call.
    pub fn get(&self, name: &str) -> Result<&Provider, String> {
        if let Some(provider) = self.http.iter().find(|p| p.name == name) {
            return Ok(provider);
        }
        if let Some((_, kind)) = self.other.iter().find(|(n, _)| n == name) {
            return Err(format!(
                "provider {name:?} is of kind {kind}: this filter calls envoyExtAuthzHttp providers only"
            ));
        }
        let known: Vec<&str> = self.names().collect();
        Err(format!(
            "provider {name:?} is not among extensionProviders {known:?}"
        ))
    }
}

#[cfg(test)]
mod tests;
