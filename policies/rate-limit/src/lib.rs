#![doc = include_str!("../README.md")]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

pub mod admission;
pub mod bucket;
mod config;
mod descriptors;
pub mod global;
pub mod settings;
mod store;

use std::borrow::Cow;

use palisade_sdk::compare;
use palisade_sdk::host::Level;
use palisade_sdk::wire::{HeaderChange, HttpRequest, HttpVerdict};
use palisade_sdk::{Host, HostError, HttpPolicy, PolicyError, SettingsError};

use bucket::Shape;
pub use config::{Config, Filter};
pub use settings::Settings;
use settings::{
    AppendAction, FractionalPercent, HeaderValueOption, XRateLimitHeaders, unsupported,
};
use store::{Consumed, Item, Keys, Slot};

/// The body and the reason (Envoy's response code details) of a limited request's reply.
pub const LOCAL_RATE_LIMITED: &str = "local_rate_limited";

/// Keys a wildcard descriptor remembers unless configured (Envoy's default).
const DEFAULT_MAX_DYNAMIC: u32 = 20;

/// The rate limit filter: Envoy's local or global one, as its configuration says.
pub struct RateLimit;

/// The settings, compiled once per VM.
#[derive(Debug, Clone)]
pub struct Prepared {
    stats: Stats,
    status: u16,
    enabled: Option<FractionalPercent>,
    enforced: Option<FractionalPercent>,
    when_not_enforced: Vec<HeaderValueOption>,
    reply_headers: Vec<(String, String)>,
    /// The default bucket: static slot 0 when configured.
    default: Option<Shape>,
    /// Exact descriptors.
    exact: Vec<Configured>,
    /// Wildcard descriptors (some entry's value empty).
    wildcard: Vec<Configured>,
    stat_prefix: String,
    rate_limits: Vec<Vec<descriptors::Compiled>>,
    /// Whether an action reads the request's route (`destination_cluster`).
    pub(crate) reads_route: bool,
    always_default: bool,
    headers: bool,
    per_connection: bool,
    groups: usize,
    ways: usize,
    keys: Keys,
    envoy_header: bool,
    resource_exhausted: bool,
}

/// A configured descriptor.
#[derive(Debug, Clone)]
struct Configured {
    entries: Vec<(String, String)>,
    /// Its place in `descriptors`.
    index: usize,
    /// Its static slot (exact descriptors).
    slot: usize,
    shape: Shape,
    shadow: bool,
}

/// The statistics' names: `<stat_prefix>.http_local_rate_limit.<name>`, as Envoy's.
#[derive(Debug, Clone)]
struct Stats {
    enabled: String,
    ok: String,
    rate_limited: String,
    enforced: String,
    shadow_mode: String,
}

impl Stats {
    fn new(prefix: &str) -> Self {
        let name = |n: &str| format!("{prefix}.http_local_rate_limit.{n}");
        Self {
            enabled: name("enabled"),
            ok: name("ok"),
            rate_limited: name("rate_limited"),
            enforced: name("enforced"),
            shadow_mode: name("shadow_mode"),
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
        if settings.stat_prefix.is_empty() {
            return Err(SettingsError::new("stat_prefix", "is required"));
        }
        if settings.local_cluster_rate_limit.is_some() {
            return Err(unsupported(
                "local_cluster_rate_limit",
                "a filter does not see the local cluster's membership",
            ));
        }
        if let Some(mode) = &settings.vh_rate_limits
            && mode != "OVERRIDE"
        {
            return Err(unsupported(
                "vh_rate_limits",
                "route and virtual-host rate_limits do not reach a filter; use rate_limits",
            ));
        }
        settings::check_headers(
            "request_headers_to_add_when_not_enforced",
            &settings.request_headers_to_add_when_not_enforced,
        )?;
        settings::check_headers("response_headers_to_add", &settings.response_headers_to_add)?;
        let default = settings
            .token_bucket
            .map(|b| b.shape("token_bucket"))
            .transpose()?;
        let mut exact: Vec<Configured> = Vec::new();
        let mut wildcard: Vec<Configured> = Vec::new();
        let mut statics = 1usize;
        for (i, d) in settings.descriptors.iter().enumerate() {
            let at = format!("descriptors[{i}]");
            let Some(bucket) = d.token_bucket else {
                return Err(SettingsError::new(
                    format!("{at}.token_bucket"),
                    "is required",
                ));
            };
            let shape = bucket.shape(&format!("{at}.token_bucket"))?;
            if d.entries.is_empty() {
                return Err(SettingsError::new(
                    format!("{at}.entries"),
                    "needs at least one entry",
                ));
            }
            if let Some(j) = d.entries.iter().position(|e| e.key.is_empty()) {
                return Err(SettingsError::new(
                    format!("{at}.entries[{j}].key"),
                    "must not be empty",
                ));
            }
            let entries: Vec<(String, String)> = d
                .entries
                .iter()
                .map(|e| (e.key.clone(), e.value.clone()))
                .collect();
            if exact.iter().chain(&wildcard).any(|c| c.entries == entries) {
                return Err(SettingsError::new(at, "repeats an earlier descriptor"));
            }
            if entries.iter().any(|(_, v)| v.is_empty()) {
                if settings.local_rate_limit_per_downstream_connection {
                    return Err(unsupported(
                        &format!("{at}.entries"),
                        "wildcard descriptors with local_rate_limit_per_downstream_connection \
                         (Envoy refuses them too)",
                    ));
                }
                wildcard.push(Configured {
                    entries,
                    index: i,
                    slot: 0,
                    shape,
                    shadow: d.shadow_mode,
                });
            } else {
                exact.push(Configured {
                    entries,
                    index: i,
                    slot: statics,
                    shape,
                    shadow: d.shadow_mode,
                });
                statics = statics.saturating_add(1);
            }
        }
        let max_dynamic = settings
            .max_dynamic_descriptors
            .unwrap_or(DEFAULT_MAX_DYNAMIC);
        if max_dynamic == 0 {
            return Err(SettingsError::new(
                "max_dynamic_descriptors",
                "must be at least 1",
            ));
        }
        let max_dynamic = usize::try_from(max_dynamic).unwrap_or(usize::MAX);
        let ways = max_dynamic.min(store::GROUP_WAYS);
        let rate_limits = descriptors::compile(&settings.rate_limits, settings.stage)?;
        // A new configuration gets buckets of its own, as a new Envoy filter config does.
        let id = compare::hash(format!("{settings:?}").as_bytes());
        let namespace = format!("palisade.rate_limit/{}/{id:016x}", settings.stat_prefix);
        Ok(Self {
            stats: Stats::new(&settings.stat_prefix),
            stat_prefix: settings.stat_prefix.clone(),
            status: settings
                .status
                .map_or(429, |s| if s.code < 400 { 429 } else { s.code }),
            enabled: settings.filter_enabled.as_ref().map(|f| f.default_value),
            enforced: settings.filter_enforced.as_ref().map(|f| f.default_value),
            when_not_enforced: settings.request_headers_to_add_when_not_enforced.clone(),
            reply_headers: settings
                .response_headers_to_add
                .iter()
                .filter(|h| h.keep_empty_value || !h.header.value.is_empty())
                .map(|h| (h.header.key.clone(), h.header.value.clone()))
                .collect(),
            default,
            exact,
            wildcard,
            reads_route: descriptors::reads_route(rate_limits.iter().flatten()),
            rate_limits,
            always_default: settings.always_consume_default_token_bucket.unwrap_or(true),
            headers: settings.enable_x_ratelimit_headers == XRateLimitHeaders::DraftVersion03,
            per_connection: settings.local_rate_limit_per_downstream_connection,
            groups: max_dynamic.div_ceil(ways.max(1)),
            ways,
            keys: Keys::new(id, namespace, statics),
            envoy_header: settings.x_envoy_ratelimited_header.unwrap_or(true),
            resource_exhausted: settings.rate_limited_as_resource_exhausted,
        })
    }

    /// The buckets a request takes from, in Envoy's order: its matched descriptors' (exact
    /// before wildcard), the slowest-filling first, then the default bucket when no descriptor
    /// matched or `always_consume_default_token_bucket`.
    fn items<'a>(&'a self, request: &'a HttpRequest) -> Vec<Item<'a>> {
        let mut items = Vec::with_capacity(self.rate_limits.len().saturating_add(1));
        if !self.exact.is_empty() || !self.wildcard.is_empty() {
            let described = descriptors::describe(&self.rate_limits, request);
            for entries in described.iter() {
                let same = |c: &Configured, wildcards: bool| {
                    c.entries.len() == entries.len()
                        && c.entries.iter().zip(entries).all(|((k, v), (rk, rv))| {
                            compare::eq(k, rk)
                                && ((wildcards && v.is_empty()) || compare::eq(v, rv))
                        })
                };
                if let Some(c) = self.exact.iter().find(|c| same(c, false)) {
                    items.push(Item {
                        slot: Slot::Static(c.slot),
                        shape: c.shape,
                        shadow: c.shadow,
                        origin: Some(c.index),
                    });
                    continue;
                }
                if let Some((index, c)) = self
                    .wildcard
                    .iter()
                    .enumerate()
                    .find(|(_, c)| same(c, true))
                {
                    // The bucket's key: the values (one borrowed as it is).
                    let value = match entries {
                        [(_, only)] => only.clone(),
                        many => Cow::Owned(
                            many.iter()
                                .map(|(_, v)| &**v)
                                .collect::<Vec<_>>()
                                .join("\u{0}"),
                        ),
                    };
                    items.push(Item {
                        slot: Slot::Dynamic {
                            descriptor: index,
                            groups: self.groups,
                            ways: self.ways,
                            value,
                        },
                        shape: c.shape,
                        shadow: c.shadow,
                        origin: Some(c.index),
                    });
                }
            }
            // Stable: equal rates keep the order they matched in.
            items.sort_by(|a, b| {
                if a.shape.slower_than(&b.shape) {
                    std::cmp::Ordering::Less
                } else if b.shape.slower_than(&a.shape) {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Equal
                }
            });
        }
        if let Some(shape) = self.default
            && (items.is_empty() || self.always_default)
        {
            items.push(Item {
                slot: Slot::Static(0),
                shape,
                shadow: false,
                origin: None,
            });
        }
        items
    }
}

/// A number drawn from the request's nonce (the proxy's randomness), for the fractions.
fn draw(request: &HttpRequest, which: usize) -> u64 {
    let bytes = request.nonce.0;
    let at = which.saturating_mul(8);
    let word: [u8; 8] = bytes
        .get(at..at.saturating_add(8))
        .and_then(|w| w.try_into().ok())
        .unwrap_or_default();
    u64::from_le_bytes(word)
}

fn count(host: &dyn Host, name: &str) {
    // A statistic that cannot be written does not change the decision.
    let _ = host.count(name, 1);
}

impl HttpPolicy for RateLimit {
    type Settings = Config;
    type Prepared = Filter;

    fn reads_route(prepared: &Filter) -> bool {
        match prepared {
            Filter::Local(prepared) => prepared.reads_route,
            Filter::Global(prepared) => prepared.reads_route,
        }
    }

    fn prepare(config: Config) -> Result<Filter, SettingsError> {
        Filter::new(&config)
    }

    fn evaluate(
        request: &HttpRequest,
        prepared: &Filter,
        host: &dyn Host,
    ) -> Result<HttpVerdict, PolicyError> {
        match prepared {
            Filter::Local(prepared) => evaluate(request, prepared, host),
            Filter::Global(prepared) => Ok(global::evaluate(request, prepared, host)),
        }
    }
}

/// Decides on one request as Envoy's local rate limit filter does (`Filter::decodeHeaders`,
/// envoyproxy/envoy `source/extensions/filters/http/local_ratelimit/local_ratelimit.cc`).
///
/// # Errors
/// [`PolicyError`] when the clock cannot be read. A bucket store that fails lets the request
/// through (logged), as a rate limiter that cannot count must not take the service down.
pub fn evaluate(
    request: &HttpRequest,
    prepared: &Prepared,
    host: &dyn Host,
) -> Result<HttpVerdict, PolicyError> {
    if !prepared.enabled.is_some_and(|f| f.holds(draw(request, 0))) {
        return Ok(HttpVerdict::allow());
    }
    count(host, &prepared.stats.enabled);
    let items = prepared.items(request);
    if items.is_empty() {
        count(host, &prepared.stats.ok);
        return Ok(HttpVerdict::allow());
    }
    let now = host.now()?.as_nanos();
    let consumed = if prepared.per_connection {
        store::consume_per_connection(
            &prepared.keys,
            request.connection.id.unwrap_or(0),
            &items,
            now,
        )
    } else {
        store::consume_shared(host, &prepared.keys, &items, now)
    };
    let consumed = match consumed {
        Ok(consumed) => consumed,
        // Workers kept winning the bucket from this one: the tokens went to them, so this
        // request is counted as over the limit at its first bucket (never let through uncounted).
        Err(HostError::Contended(why)) => {
            host.log(
                Level::Warn,
                &format!(
                    "local rate limit {:?}: {why}; limiting the request",
                    prepared.stat_prefix
                ),
            );
            Consumed {
                takes: vec![None; items.len()],
                denied: Some((0, None)),
            }
        }
        Err(e) => {
            host.log(
                Level::Warn,
                &format!(
                    "local rate limit {:?}: the buckets could not be read or written ({e}); \
                     letting the request through",
                    prepared.stat_prefix
                ),
            );
            count(host, &prepared.stats.ok);
            return Ok(HttpVerdict::allow());
        }
    };
    let limit_headers = prepared.limit_headers(&items, &consumed);
    let Some((denied_at, wait)) = consumed.denied else {
        count(host, &prepared.stats.ok);
        return Ok(HttpVerdict::Continue {
            request_headers: Vec::new(),
            response_headers: limit_headers,
        });
    };
    count(host, &prepared.stats.rate_limited);
    if items.get(denied_at).is_some_and(|i| i.shadow) {
        count(host, &prepared.stats.shadow_mode);
        return Ok(HttpVerdict::Continue {
            request_headers: Vec::new(),
            response_headers: limit_headers,
        });
    }
    if !prepared.enforced.is_some_and(|f| f.holds(draw(request, 1))) {
        return Ok(HttpVerdict::Continue {
            request_headers: not_enforced_headers(request, &prepared.when_not_enforced),
            response_headers: limit_headers,
        });
    }
    count(host, &prepared.stats.enforced);
    let mut headers = prepared.reply_headers.clone();
    if prepared.envoy_header {
        headers.push(("x-envoy-ratelimited".into(), "true".into()));
    }
    // Envoy makes a local reply to a gRPC request a gRPC one, its status mapped from 429
    // (UNAVAILABLE, 14) unless the reply names one: RESOURCE_EXHAUSTED (8) when asked.
    if prepared.resource_exhausted && request.is_grpc() {
        headers.push(("grpc-status".into(), "8".into()));
    }
    headers.extend(limit_headers.into_iter().filter_map(|change| match change {
        HeaderChange::Set { name, value } => Some((name, value)),
        _ => None,
    }));
    if let Some(wait) = wait {
        let seconds = wait
            .as_secs()
            .saturating_add(u64::from(wait.subsec_nanos() > 0));
        headers.push(("retry-after".into(), seconds.max(1).to_string()));
    }
    Ok(HttpVerdict::Deny {
        status: prepared.status,
        reason: LOCAL_RATE_LIMITED.to_owned(),
        message: format!(
            "local rate limit {:?}: {} is empty",
            prepared.stat_prefix,
            items.get(denied_at).and_then(|i| i.origin).map_or_else(
                || "the token_bucket".to_owned(),
                |i| format!("the bucket of descriptors[{i}]")
            )
        ),
        body: LOCAL_RATE_LIMITED.to_owned(),
        headers,
    })
}

impl Prepared {
    /// draft-03 headers of the bucket Envoy reports: the one that denied, else the first
    /// (strictest) descriptor's, else the default bucket's.
    fn limit_headers(&self, items: &[Item], consumed: &Consumed) -> Vec<HeaderChange> {
        if !self.headers {
            return Vec::new();
        }
        let at = consumed.denied.map_or(0, |(at, _)| at);
        let (Some(item), Some(Some(take))) = (items.get(at), consumed.takes.get(at)) else {
            return Vec::new();
        };
        vec![
            HeaderChange::set("x-ratelimit-limit", item.shape.max_tokens.to_string()),
            HeaderChange::set("x-ratelimit-remaining", take.remaining.to_string()),
            HeaderChange::set(
                "x-ratelimit-reset",
                item.shape.reset_seconds(take.remaining).to_string(),
            ),
        ]
    }
}

/// `request_headers_to_add_when_not_enforced`, applied as their append actions say.
fn not_enforced_headers(request: &HttpRequest, headers: &[HeaderValueOption]) -> Vec<HeaderChange> {
    headers
        .iter()
        .filter(|h| h.keep_empty_value || !h.header.value.is_empty())
        .filter_map(|h| {
            let (name, value) = (&h.header.key, &h.header.value);
            let present = request.header(name).is_some();
            match h.action() {
                AppendAction::AppendIfExistsOrAdd => Some(HeaderChange::add(name, value)),
                AppendAction::AddIfAbsent => (!present).then(|| HeaderChange::add(name, value)),
                AppendAction::OverwriteIfExistsOrAdd => Some(HeaderChange::set(name, value)),
                AppendAction::OverwriteIfExists => present.then(|| HeaderChange::set(name, value)),
            }
        })
        .collect()
}

#[cfg(all(target_arch = "wasm32", feature = "proxy-wasm"))]
palisade_sdk::export_proxy_wasm!(RateLimit);

#[cfg(all(target_arch = "wasm32", feature = "admission-component"))]
palisade_sdk::export_admission!(admission::AdmissionRateLimit);
