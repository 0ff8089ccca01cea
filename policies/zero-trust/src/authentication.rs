//! Istio's RequestAuthentication, as Envoy's `jwt_authn` filter enforces what istiod
//! generates: tokens are looked for in each rule's locations; no token at all leaves the request
//! anonymous (authorization decides); every token found must verify, or the request is refused
//! (401, 403 for an audience not allowed) with Envoy's message and `www-authenticate`; a
//! verified token's payload becomes `request.auth.*` for authorization.
//!
//! Key sets come inline (`jwks`) or from `jwksUri`, fetched in the background by the adapter
//! ([`Authenticator::fetches`]). Verified tokens are cached (bounded, expiring with the
//! token), so a repeated token costs no signature check.
//!
//! Sources mirrored: istio/api `security/v1beta1/request_authentication.proto` and `jwt.proto`,
//! istio/istio `pilot/pkg/security/authn/policy_applier.go`, Envoy's
//! `extensions/filters/http/jwt_authn/{authenticator,extractor,filter}.cc` and
//! `common/jwt/{jwt,verify,status}.cc`.

mod cache;
mod config;
pub(crate) mod jwks;
mod token;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use palisade_sdk::Fetch;
use palisade_sdk::wire::{HeaderChange, HttpRequest};
use serde_json::{Map, Value};

use cache::{Cache, Cached};
pub use config::ConfigError;
use config::JwtRule;
pub(crate) use config::duration;
use jwks::Jwks;
use token::{Failure, Jwt, audience_allowed, check_time, verify_signature};

/// Envoy's default clock skew for `exp` and `nbf` (`clock_skew_seconds`), which Istio keeps.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(60);
/// Verified tokens kept by default (Envoy's `jwt_cache_size` default).
pub const DEFAULT_CACHE_SIZE: usize = 100;
/// Where the device token is read unless the `device` rule says otherwise.
pub const DEVICE_HEADER: &str = "x-device-token";
/// The longest token read; longer ones are refused as malformed rather than parsed.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Options of the `jwt` setting, beyond what RequestAuthentication says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Allowed clock difference for `exp` and `nbf`.
    pub clock_skew: Duration,
    /// Verified tokens kept (0: no cache).
    pub cache_size: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            clock_skew: DEFAULT_CLOCK_SKEW,
            cache_size: DEFAULT_CACHE_SIZE,
        }
    }
}

/// Where a token is looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    /// A header (name lower-case) and the prefix before the token.
    Header { name: String, prefix: String },
    /// A query parameter.
    Param(String),
    /// A cookie.
    Cookie(String),
}

/// Whether `b` may appear in a token (base64url and the dots): a table, since every byte of
/// every token is looked up on every request.
fn token_byte(b: u8) -> bool {
    const TABLE: [bool; 256] = {
        let mut table = [false; 256];
        let mut i = 0;
        while i < 256 {
            #[expect(clippy::cast_possible_truncation, reason = "i < 256")]
            let b = i as u8;
            #[expect(clippy::indexing_slicing, reason = "i < 256, the table's length")]
            {
                table[i] = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
            }
            i += 1;
        }
        table
    };
    TABLE.get(usize::from(b)).copied().unwrap_or(false)
}

impl Location {
    /// The token at this location, if the request has one, as Envoy's extractor reads it: a
    /// header's values joined by `,`, the prefix found anywhere in them (case-sensitive), the
    /// token the run of token characters after it. `verified` says whether a text is a token
    /// verified before: when the rest of the header after the prefix is one, that is the token
    /// (a verified token has only token characters), with no byte of it scanned.
    fn extract<'a>(
        &self,
        request: &'a HttpRequest,
        mut verified: impl FnMut(&str) -> bool,
    ) -> Option<std::borrow::Cow<'a, str>> {
        use std::borrow::Cow;
        match self {
            Self::Header { name, prefix } => {
                // Names are lower-case on both sides.
                let mut values = request.headers.get_all(name);
                let first = values.next()?;
                let joined: Cow<'a, str> = match values.next() {
                    None => first.into(),
                    Some(second) => {
                        let mut all = format!("{first},{second}");
                        for v in values {
                            all.push(',');
                            all.push_str(v);
                        }
                        all.into()
                    }
                };
                // The prefix may be anywhere, but nearly always opens the value.
                let at = if palisade_sdk::compare::starts_with(&joined, prefix) {
                    0
                } else {
                    joined.find(prefix.as_str())?
                };
                let start = at.saturating_add(prefix.len());
                let rest = joined.get(start..)?;
                let end = if verified(rest) {
                    rest.len()
                } else {
                    token_length(rest.as_bytes())
                };
                if end == 0 {
                    return None;
                }
                let range = start..start.saturating_add(end);
                match joined {
                    Cow::Borrowed(all) => all.get(range).map(Cow::Borrowed),
                    Cow::Owned(all) => all.get(range).map(|t| Cow::Owned(t.to_owned())),
                }
            }
            Self::Param(name) => {
                palisade_sdk::path::query_param(&request.path, name).filter(|v| !v.is_empty())
            }
            Self::Cookie(name) => request
                .cookie(name)
                .filter(|v| !v.is_empty())
                .map(Cow::Borrowed),
        }
    }
}

/// How many bytes at the start of `text` are token bytes (token characters are ASCII, so this
/// ends on a character boundary). Eight at a time without a branch per byte: every byte of
/// every token is scanned on every request, cached token or not.
fn token_length(text: &[u8]) -> usize {
    let mut chunks = text.chunks_exact(8);
    let mut length = 0usize;
    for chunk in &mut chunks {
        if !chunk.iter().fold(true, |all, b| all & token_byte(*b)) {
            break;
        }
        length = length.saturating_add(8);
    }
    let rest = text.get(length..).unwrap_or_default();
    length.saturating_add(
        rest.iter()
            .position(|b| !token_byte(*b))
            .unwrap_or(rest.len()),
    )
}

/// A location and the providers (rules) that read it.
#[derive(Debug, Clone)]
struct Group {
    location: Location,
    providers: Vec<usize>,
}

/// Where a provider's keys come from.
#[derive(Debug)]
enum Keys {
    Inline(Rc<Jwks>),
    Remote {
        fetch: Fetch,
        /// The last key set fetched; `None` until the first fetch succeeds.
        current: RefCell<Option<Rc<Jwks>>>,
    },
}

/// One `jwtRules` entry, compiled.
#[derive(Debug)]
struct Provider {
    issuer: String,
    audiences: Vec<String>,
    keys: Keys,
    output_payload: Option<String>,
    /// Header and claim path (`a.b` split).
    output_claims: Vec<(String, Vec<String>)>,
    forward_original_token: bool,
    space_delimited: Vec<String>,
}

/// The outcome of a request that passes authentication.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Authenticated {
    /// The verified payload (claims normalised as Envoy writes them to metadata), `None` for an
    /// anonymous request.
    pub payload: Option<Rc<Map<String, Value>>>,
    /// The payload's `iss` and `sub` (empty when absent), `None` for an anonymous request.
    pub principal: Option<Rc<(String, String)>>,
    /// Request header changes: output headers of other origin removed, tokens taken out of
    /// their headers (unless `forwardOriginalToken`), payload and claim headers added.
    pub request_headers: Vec<HeaderChange>,
}

/// A request refused by authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    /// 401, or 403 for an audience that is not allowed.
    pub status: u16,
    /// Envoy's status string, the body of the reply.
    pub message: &'static str,
}

impl From<Failure> for Rejection {
    fn from(failure: Failure) -> Self {
        Self {
            status: failure.status(),
            message: failure.message(),
        }
    }
}

/// The compiled RequestAuthentications of the filter.
#[derive(Debug)]
pub struct Authenticator {
    providers: Vec<Provider>,
    groups: Vec<Group>,
    /// Output headers, removed from every request before anything is added.
    sanitized: Vec<String>,
    skew: u64,
    cache: RefCell<Cache>,
}

fn error(path: &str, field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        path: if field.is_empty() {
            path.to_owned()
        } else {
            format!("{path}.{field}")
        },
        message: message.into(),
    }
}

/// Whether `name` is a header name an output may use (Istio's `^[-_A-Za-z0-9]+$`).
fn header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The Envoy cluster Istio sends a JWKS fetch to, and the call's authority and path.
fn remote(uri: &str) -> Option<(String, String, String)> {
    let (scheme, rest) = uri.split_once("://")?;
    let default_port = match scheme {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => {
            (host, port.parse::<u16>().ok()?)
        }
        _ => (authority, default_port),
    };
    Some((
        format!("outbound|{port}||{host}"),
        authority.to_owned(),
        path.to_owned(),
    ))
}

impl Provider {
    fn new(
        at: &str,
        fetch_id: String,
        rule: JwtRule,
    ) -> Result<(Self, Vec<Location>), ConfigError> {
        if rule.issuer.is_empty() {
            return Err(error(at, "issuer", "an issuer is required"));
        }
        let refresh = rule
            .jwks_refresh
            .as_deref()
            .map(duration)
            .transpose()
            .map_err(|m| error(at, "jwksRefresh", m))?;
        let timeout = rule
            .timeout
            .as_deref()
            .map(duration)
            .transpose()
            .map_err(|m| error(at, "timeout", m))?;
        if rule.jwks_uri.is_none() {
            for (field, given) in [
                ("jwksCluster", rule.jwks_cluster.is_some()),
                ("jwksRefresh", refresh.is_some()),
                ("timeout", timeout.is_some()),
            ] {
                if given {
                    return Err(error(at, field, "only used with jwksUri"));
                }
            }
        }
        let keys = match (rule.jwks, rule.jwks_uri) {
            (Some(_), Some(_)) => {
                return Err(error(at, "jwks", "give jwks or jwksUri, not both"));
            }
            (Some(jwks), None) => {
                let text = match &jwks {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                let set = Jwks::parse(&text, true).map_err(|e| {
                    let path = if e.path.is_empty() {
                        "jwks".to_owned()
                    } else {
                        format!("jwks.{}", e.path)
                    };
                    error(at, &path, e.message)
                })?;
                Keys::Inline(Rc::new(set))
            }
            (None, Some(uri)) => {
                let (default_cluster, authority, path) = remote(&uri).ok_or_else(|| {
                    error(
                        at,
                        "jwksUri",
                        format!("{uri:?} is not an http:// or https:// URL with a host"),
                    )
                })?;
                let cluster = rule.jwks_cluster.unwrap_or(default_cluster);
                if cluster.is_empty() {
                    return Err(error(at, "jwksCluster", "the cluster name is empty"));
                }
                let mut fetch = Fetch::get(fetch_id, cluster, authority, path);
                fetch
                    .headers
                    .push(("accept".into(), "application/json".into()));
                if let Some(refresh) = refresh {
                    fetch.refresh = refresh;
                }
                if let Some(timeout) = timeout {
                    fetch.timeout = timeout;
                }
                Keys::Remote {
                    fetch,
                    current: RefCell::new(None),
                }
            }
            (None, None) => {
                return Err(error(
                    at,
                    "jwksUri",
                    "give jwks or jwksUri (OpenID discovery from the issuer is not supported)",
                ));
            }
        };
        if let Some(name) = &rule.output_payload_to_header
            && !header_name(name)
        {
            return Err(error(
                at,
                "outputPayloadToHeader",
                format!("{name:?} is not a header name"),
            ));
        }
        let mut output_claims = Vec::new();
        for (i, c) in rule.output_claim_to_headers.iter().enumerate() {
            let field = format!("outputClaimToHeaders[{i}]");
            if !header_name(&c.header) {
                return Err(error(
                    at,
                    &format!("{field}.header"),
                    format!("{:?} is not a header name", c.header),
                ));
            }
            let header = c.header.to_ascii_lowercase();
            if output_claims.iter().any(|(h, _)| *h == header) {
                return Err(error(
                    at,
                    &format!("{field}.header"),
                    format!("{:?} is given twice", c.header),
                ));
            }
            if c.claim.is_empty() || c.claim.split('.').any(str::is_empty) {
                return Err(error(
                    at,
                    &format!("{field}.claim"),
                    format!("{:?} is not a claim name", c.claim),
                ));
            }
            output_claims.push((header, c.claim.split('.').map(str::to_owned).collect()));
        }
        let mut locations: Vec<Location> = Vec::new();
        for (i, h) in rule.from_headers.iter().enumerate() {
            if !header_name(&h.name) {
                return Err(error(
                    at,
                    &format!("fromHeaders[{i}].name"),
                    format!("{:?} is not a header name", h.name),
                ));
            }
            locations.push(Location::Header {
                name: h.name.to_ascii_lowercase(),
                prefix: h.prefix.clone(),
            });
        }
        for (i, p) in rule.from_params.iter().enumerate() {
            if p.is_empty() {
                return Err(error(
                    at,
                    &format!("fromParams[{i}]"),
                    "the parameter name is empty",
                ));
            }
            locations.push(Location::Param(p.clone()));
        }
        for (i, c) in rule.from_cookies.iter().enumerate() {
            if c.is_empty() {
                return Err(error(
                    at,
                    &format!("fromCookies[{i}]"),
                    "the cookie name is empty",
                ));
            }
            locations.push(Location::Cookie(c.clone()));
        }
        if locations.is_empty() {
            locations = vec![
                Location::Header {
                    name: "authorization".into(),
                    prefix: "Bearer ".into(),
                },
                Location::Param("access_token".into()),
            ];
        }
        let mut space_delimited = vec!["scope".to_owned(), "permission".to_owned()];
        for claim in rule.space_delimited_claims {
            if !space_delimited.contains(&claim) {
                space_delimited.push(claim);
            }
        }
        Ok((
            Self {
                issuer: rule.issuer,
                audiences: rule.audiences,
                keys,
                output_payload: rule
                    .output_payload_to_header
                    .map(|h| h.to_ascii_lowercase()),
                output_claims,
                forward_original_token: rule.forward_original_token,
                space_delimited,
            },
            locations,
        ))
    }

    fn jwks(&self) -> Option<Rc<Jwks>> {
        match &self.keys {
            Keys::Inline(set) => Some(Rc::clone(set)),
            Keys::Remote { current, .. } => current.borrow().clone(),
        }
    }

    /// The payload as Envoy writes it to metadata: space-delimited top-level string claims
    /// become lists of their words.
    fn normalise(&self, mut payload: Map<String, Value>) -> Map<String, Value> {
        for claim in &self.space_delimited {
            if let Some(Value::String(words)) = payload.get(claim) {
                let words = words
                    .split(' ')
                    .filter(|w| !w.is_empty())
                    .map(|w| Value::String(w.to_owned()))
                    .collect();
                payload.insert(claim.clone(), Value::Array(words));
            }
        }
        payload
    }

    /// The output headers of a verified token.
    fn outputs(&self, payload_bytes: &[u8], payload: &Map<String, Value>) -> Vec<HeaderChange> {
        let mut changes = Vec::new();
        if let Some(header) = &self.output_payload {
            changes.push(HeaderChange::set(
                header,
                URL_SAFE_NO_PAD.encode(payload_bytes),
            ));
        }
        for (header, path) in &self.output_claims {
            let mut value = path.first().and_then(|first| payload.get(first));
            for part in path.iter().skip(1) {
                value = value.and_then(|v| v.get(part));
            }
            let rendered = match value {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                Some(Value::Bool(b)) => Some(b.to_string()),
                _ => None,
            };
            if let Some(rendered) = rendered {
                changes.push(HeaderChange::set(header, rendered));
            }
        }
        changes
    }
}

impl Authenticator {
    /// Compiles the `authentication` setting: RequestAuthentication objects, their specs, or
    /// a list of them.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first field that cannot be used: a rule without issuer or
    /// keys, a key set or key that cannot be read, a bad output header.
    pub fn new(value: &Value, options: Options) -> Result<Self, ConfigError> {
        Self::compile(config::rules(value)?, options, "jwks")
    }

    /// Compiles the `device` setting: one rule, as a `jwtRules` entry, for the device
    /// attestation token (read from `x-device-token` unless the rule says where). Its fetch is
    /// `device-jwks/0`.
    ///
    /// # Errors
    /// [`ConfigError`] as [`Authenticator::new`], paths relative to the rule.
    pub fn device(value: &Value, options: Options) -> Result<Self, ConfigError> {
        if value.is_null() {
            return Self::compile(Vec::new(), options, "device-jwks");
        }
        // Read as the one rule of a spec: the same reader (and code) as `authentication`.
        let spec = serde_json::json!({ "jwtRules": [value] });
        let mut rules = config::rules(&spec).map_err(|e| ConfigError {
            path: e.path.replacen(".jwtRules[0]", "", 1),
            message: e.message,
        })?;
        let Some((_, mut rule)) = rules.pop() else {
            return Self::compile(Vec::new(), options, "device-jwks");
        };
        if rule.from_headers.is_empty()
            && rule.from_params.is_empty()
            && rule.from_cookies.is_empty()
        {
            rule.from_headers.push(config::FromHeader {
                name: DEVICE_HEADER.to_owned(),
                prefix: String::new(),
            });
        }
        Self::compile(vec![(String::new(), rule)], options, "device-jwks")
    }

    fn compile(
        rules: Vec<(String, JwtRule)>,
        options: Options,
        fetch_prefix: &str,
    ) -> Result<Self, ConfigError> {
        let mut providers = Vec::new();
        let mut groups: Vec<Group> = Vec::new();
        let mut sanitized = Vec::new();
        for (index, (at, rule)) in rules.into_iter().enumerate() {
            let (provider, locations) =
                Provider::new(&at, format!("{fetch_prefix}/{index}"), rule)?;
            for location in locations {
                match groups.iter_mut().find(|g| g.location == location) {
                    Some(group) => group.providers.push(index),
                    None => groups.push(Group {
                        location,
                        providers: vec![index],
                    }),
                }
            }
            for header in provider
                .output_payload
                .iter()
                .chain(provider.output_claims.iter().map(|(h, _)| h))
            {
                if !sanitized.contains(header) {
                    sanitized.push(header.clone());
                }
            }
            providers.push(provider);
        }
        Ok(Self {
            providers,
            groups,
            sanitized,
            skew: options.clock_skew.as_secs(),
            cache: RefCell::new(Cache::new(options.cache_size)),
        })
    }

    /// Whether there are no rules: every request is anonymous.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }

    /// The key sets to fetch (one per `jwksUri` rule, id `jwks/<rule index>`).
    #[must_use]
    pub fn fetches(&self) -> Vec<Fetch> {
        self.providers
            .iter()
            .filter_map(|p| match &p.keys {
                Keys::Remote { fetch, .. } => Some(fetch.clone()),
                Keys::Inline(_) => None,
            })
            .collect()
    }

    /// Whether `id` names one of this authenticator's fetches.
    #[must_use]
    pub fn fetches_as(&self, id: &str) -> bool {
        self.providers
            .iter()
            .any(|p| matches!(&p.keys, Keys::Remote { fetch, .. } if fetch.id == id))
    }

    /// Takes a fetched key set. Unusable keys in it are skipped (as Envoy does); a set with no
    /// usable key is refused and the previous one stays. Cached tokens are forgotten, so a key
    /// that was removed stops verifying at once.
    ///
    /// # Errors
    /// Why the body is not a usable key set, or an unknown fetch id.
    pub fn fetched(&self, id: &str, body: &[u8]) -> Result<(), String> {
        let provider = self
            .providers
            .iter()
            .find_map(|p| match &p.keys {
                Keys::Remote { fetch, current } if fetch.id == id => Some(current),
                _ => None,
            })
            .ok_or_else(|| format!("no key set is fetched as {id:?}"))?;
        let text =
            std::str::from_utf8(body).map_err(|e| format!("the key set is not UTF-8: {e}"))?;
        let set = Jwks::parse(text, false).map_err(|e| e.to_string())?;
        *provider.borrow_mut() = Some(Rc::new(set));
        self.cache.borrow_mut().clear();
        Ok(())
    }

    /// Authenticates one request at `now` (seconds since 1970).
    ///
    /// # Errors
    /// [`Rejection`] when a token was found and does not verify.
    pub fn authenticate(
        &self,
        request: &HttpRequest,
        now: u64,
    ) -> Result<Authenticated, Rejection> {
        let mut outcome = Authenticated::default();
        if self.providers.is_empty() || cors_preflight(request) {
            return Ok(outcome);
        }
        for header in &self.sanitized {
            if request.headers.contains(header) {
                outcome.request_headers.push(HeaderChange::remove(header));
            }
        }
        for group in &self.groups {
            // What the cache holds for the token, found while it is extracted.
            let mut found = None;
            let Some(token) = group.location.extract(request, |text| {
                found = self.cache.borrow().find(text);
                found.is_some()
            }) else {
                continue;
            };
            let (provider, verified) = self.verify(group, &token, now, found)?;
            let provider = self.providers.get(provider).ok_or(Failure::UnknownIssuer)?;
            if let Location::Header { name, .. } = &group.location
                && !provider.forward_original_token
            {
                outcome.request_headers.push(HeaderChange::remove(name));
            }
            outcome
                .request_headers
                .extend(verified.outputs.iter().cloned());
            outcome.payload = Some(Rc::clone(&verified.payload));
            outcome.principal = Some(Rc::clone(&verified.principal));
        }
        Ok(outcome)
    }

    /// Verifies one token found at `group`'s location: the cache first (`found`, when the
    /// extraction already looked), else parse, issuer, time, audiences, keys and signature in
    /// Envoy's order.
    fn verify(
        &self,
        group: &Group,
        token: &str,
        now: u64,
        found: Option<Rc<Cached>>,
    ) -> Result<(usize, Rc<Cached>), Failure> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Failure::BadFormat);
        }
        let found = found.or_else(|| self.cache.borrow().find(token));
        if let Some(found) = found
            && let Some(hit) =
                self.cache
                    .borrow_mut()
                    .check(token, found, now, self.skew, &group.providers)
        {
            return hit.map(|cached| (cached.provider, cached));
        }
        let jwt = Jwt::parse(token)?;
        let index = group
            .providers
            .iter()
            .copied()
            .find(|i| self.providers.get(*i).is_some_and(|p| p.issuer == jwt.iss))
            .ok_or(Failure::UnknownIssuer)?;
        let provider = self.providers.get(index).ok_or(Failure::UnknownIssuer)?;
        check_time(jwt.nbf, jwt.exp, now, self.skew)?;
        if !audience_allowed(&provider.audiences, &jwt.audiences) {
            return Err(Failure::AudienceNotAllowed);
        }
        let jwks = provider.jwks().ok_or(Failure::JwksFetchFail)?;
        verify_signature(&jwt, &jwks)?;
        let payload = provider.normalise(jwt.payload);
        let claim = |name: &str| {
            payload
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let cached = Rc::new(Cached {
            provider: index,
            principal: Rc::new((claim("iss"), claim("sub"))),
            outputs: provider.outputs(&jwt.payload_bytes, &payload),
            payload: Rc::new(payload),
            nbf: jwt.nbf,
            exp: jwt.exp,
        });
        self.cache.borrow_mut().insert(token, Rc::clone(&cached));
        Ok((index, cached))
    }
}

/// A CORS preflight (`OPTIONS` with `origin` and `access-control-request-method`), which
/// Istio lets through `jwt_authn` untouched (`bypass_cors_preflight`).
fn cors_preflight(request: &HttpRequest) -> bool {
    request.method == "OPTIONS"
        && request.header("origin").is_some_and(|v| !v.is_empty())
        && request
            .header("access-control-request-method")
            .is_some_and(|v| !v.is_empty())
}

#[cfg(test)]
mod tests;
