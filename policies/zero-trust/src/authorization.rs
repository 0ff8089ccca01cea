//! Istio's AuthorizationPolicy, evaluated in the filter: policies pasted as users keep them
//! (whole objects or just `spec`), checked as istiod's validation checks them, compiled once,
//! then every request decided in Istio's order (istio/api `authorization_policy.proto`, the
//! builder's one RBAC filter per action): CUSTOM (asked by the caller, see
//! [`Authorizer::custom`]), then AUDIT (recorded), DENY, ALLOW.

pub(crate) mod matchers;
mod model;
mod template;

use std::borrow::Cow;
use std::cell::{Ref, RefCell};
use std::net::IpAddr;
use std::rc::Rc;

use palisade_sdk::compare;
use palisade_sdk::path::normalise;
use serde_json::Value;

pub use model::Action;

use crate::Attributes;
use matchers::{
    Block, DeviceValue, Namespace, Pattern, RequestPrincipal, in_block, parse_block, parse_port,
};
use model::{Condition, Object, Operation, Rule, Source, Spec};
use template::{Template, is_template};

/// The most rules one policy may have (istio/api: `rules` max 512).
pub const MAX_RULES: usize = 512;

/// A configuration that cannot be used, with the place of the problem as a JSON path
/// (`[1].spec.rules[0].to[0].operation.ports[0]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    /// Where, from the list of policies.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

fn error(path: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// What the policies decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Let it through.
    Allow,
    /// Refuse it (Envoy: 403 `RBAC: access denied`).
    Deny,
}

/// A rule's name as Envoy gives it (`ns[shop]-policy[deny-admin]-rule[0]`), with the names of
/// its two statistics made once, when the rule is compiled: a decision names its rule, and
/// counts under it, on every request.
#[derive(Debug, PartialEq, Eq)]
pub struct RuleName {
    name: String,
    allowed: String,
    denied: String,
}

impl RuleName {
    /// The name `name` and its statistics.
    #[must_use]
    pub fn new(name: String) -> Rc<Self> {
        Rc::new(Self {
            allowed: counter(&name, true),
            denied: counter(&name, false),
            name,
        })
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The statistic of the requests this rule allowed or denied (see [`counter`]).
    #[must_use]
    pub fn counter(&self, allowed: bool) -> &str {
        if allowed { &self.allowed } else { &self.denied }
    }
}

impl std::fmt::Display for RuleName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// The statistic of the requests the rule `rule` allowed or denied:
/// `zero_trust.rule.<rule>.allowed|denied` (`none` when no rule decided, `token` /
/// `device-token` for refused tokens).
#[must_use]
pub fn counter(rule: &str, allowed: bool) -> String {
    let result = if allowed { "allowed" } else { "denied" };
    format!("zero_trust.rule.{rule}.{result}")
}

/// A decision and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Allow or deny.
    pub effect: Effect,
    /// The rule that decided; `None` when no rule did (no ALLOW policy at all, or none of them
    /// matched).
    pub policy: Option<Rc<RuleName>>,
    /// The AUDIT rules that matched (Envoy's `access_log_hint`), one per policy.
    pub audited: Vec<String>,
    /// What the dry-run policies (`istio.io/dry-run: "true"`) alone would decide, when there
    /// are any: Envoy's `shadow_engine_result` and `shadow_effective_policy_id`.
    pub dry_run: Option<(Effect, Option<String>)>,
}

impl Decision {
    /// The name of the rule that decided, if one did.
    #[must_use]
    pub fn rule(&self) -> Option<&str> {
        self.policy.as_deref().map(RuleName::as_str)
    }
}

/// Where a CUSTOM policy is and which provider it names (see [`Authorizer::custom_policy`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomPolicy {
    /// The policy's place in the list (`[i]`), empty for a single policy.
    pub at: String,
    /// The place of its `provider.name` (`[i].spec.provider.name`).
    pub provider_at: String,
    /// The provider's name.
    pub provider: String,
}

/// Options beyond Istio's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Strict zero trust: deny when no ALLOW policy exists at all (Istio allows).
    pub default_deny: bool,
}

/// The compiled policies of one filter or admission policy.
#[derive(Debug, Clone, Default)]
pub struct Authorizer {
    policies: Vec<Policy>,
    options: Options,
    /// Given one policy, not a list (error paths have no index).
    single: bool,
    /// Whether a condition reads the time (found once; asked on every request).
    uses_time: bool,
    /// The peer part of every source, worked out once per set of peer identities.
    peers: PeerMemo,
}

/// The peer part of a source (`principals`, `notPrincipals`, `namespaces`, `notNamespaces`)
/// depends on the peer identities alone, which a proxy sees over and over (a sidecar has a
/// handful of callers, each on long-lived connections): so it is worked out once per set of
/// identities, for every source of every policy, and kept for the next requests, with the
/// rules that can still match (a rule none of whose sources holds is not looked at). The
/// other parts of a source (request principals, addresses) change per request and are
/// matched every time.
#[derive(Debug, Clone, Default)]
struct PeerMemo {
    /// How many sources have a peer part (each has its bit, [`SourceMatch::peer`]).
    sources: usize,
    /// The most recently seen sets of identities first, with what holds for them.
    seen: RefCell<Vec<(Vec<String>, Peers)>>,
}

/// What holds for one set of peer identities.
#[derive(Debug, Clone, Default)]
struct Peers {
    /// A bit per source whose peer part holds.
    bits: Vec<u64>,
    /// Per policy, the rules (ascending) that have no source or a source whose peer part holds.
    candidates: Vec<Vec<u32>>,
}

/// Sets of peer identities remembered per authorizer (per VM in the proxy).
const PEER_SETS_KEPT: usize = 8;

/// Whether bit `index` is set.
fn bit(bits: &[u64], index: usize) -> bool {
    bits.get(index / 64)
        .is_some_and(|word| word & (1 << (index % 64)) != 0)
}

#[derive(Debug, Clone)]
struct Policy {
    /// Its place in the list.
    index: usize,
    action: Action,
    provider: Option<String>,
    /// Where `provider.name` is in the settings (below `policies`).
    provider_at: String,
    dry_run: bool,
    rules: Vec<CompiledRule>,
    /// `ns[<namespace>]-policy[<name>]-rule[<i>]` per rule.
    rule_ids: Vec<Rc<RuleName>>,
}

#[derive(Debug, Clone, Default)]
struct CompiledRule {
    from: Vec<SourceMatch>,
    to: Vec<OperationMatch>,
    when: Vec<ConditionMatch>,
}

/// `values` ORed, `notValues` NOR-ed, both ANDed; an empty field constrains nothing.
#[derive(Debug, Clone)]
struct Field<M> {
    any_of: Vec<M>,
    none_of: Vec<M>,
}

impl<M> Default for Field<M> {
    fn default() -> Self {
        Self {
            any_of: Vec::new(),
            none_of: Vec::new(),
        }
    }
}

impl<M> Field<M> {
    /// Whether the field asks anything.
    fn constrains(&self) -> bool {
        !(self.any_of.is_empty() && self.none_of.is_empty())
    }

    /// `positive(m)` is false for an absent attribute, so a positive field fails and a negative
    /// one holds, as in Envoy.
    fn holds(&self, positive: impl Fn(&M) -> bool) -> bool {
        (self.any_of.is_empty() || self.any_of.iter().any(&positive))
            && !self.none_of.iter().any(&positive)
    }
}

#[derive(Debug, Clone, Default)]
struct SourceMatch {
    /// This source's bit in the [`PeerMemo`]; `None` when it has no peer part.
    peer: Option<usize>,
    principals: Field<Pattern>,
    request_principals: Field<RequestPrincipal>,
    namespaces: Field<Namespace>,
    ip_blocks: Field<Block>,
    remote_ip_blocks: Field<Block>,
}

#[derive(Debug, Clone, Default)]
struct OperationMatch {
    hosts: Field<Pattern>,
    ports: Field<u16>,
    methods: Field<Pattern>,
    paths: Field<PathMatch>,
}

#[derive(Debug, Clone)]
enum PathMatch {
    Pattern(Pattern),
    Template(Template),
}

impl PathMatch {
    fn matches(&self, path: &str) -> bool {
        match self {
            Self::Pattern(p) => p.matches(path),
            Self::Template(t) => t.matches(path),
        }
    }
}

#[derive(Debug, Clone)]
enum ConditionMatch {
    Header(String, Field<Pattern>),
    SourceIp(Field<Block>),
    RemoteIp(Field<Block>),
    DestinationIp(Field<Block>),
    DestinationPort(Field<u16>),
    SourceNamespace(Field<Namespace>),
    SourcePrincipal(Field<Pattern>),
    SourceGroups(Field<Pattern>),
    RequestPrincipal(Field<RequestPrincipal>),
    /// `request.auth.audiences`, `.presenter`, `.claims[..]`: a path into the token's payload.
    Claim(Vec<String>, Field<Pattern>),
    Sni(Field<Pattern>),
    /// `resource.group` ... `resource.name` (admission).
    Resource(ResourceField, Field<Pattern>),
    /// `request.userInfo.extra[..]` (admission): any of the values.
    Extra(String, Field<Pattern>),
    /// `object.labels[..]` (admission).
    Label(String, Field<Pattern>),
    /// `device.claims[..]`: a path into the verified device token's payload (ours).
    DeviceClaim(Vec<String>, Field<DeviceValue>),
    /// `time.hour`: inclusive ranges of hours, local to the configured zone (ours).
    Hour(Field<(u8, u8)>),
    /// `time.weekday`: inclusive ranges of days, 0 = Monday (ours).
    Weekday(Field<(u8, u8)>),
}

/// Whether `value` is in the inclusive range `from..=to`, which wraps (`22-6` is the night).
fn in_range((from, to): (u8, u8), value: u8) -> bool {
    if from <= to {
        (from..=to).contains(&value)
    } else {
        value >= from || value <= to
    }
}

const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// `9`, `9-17` (hours, 0-23) or `Mon`, `Mon-Fri`, `saturday` (days, any case): an inclusive
/// range.
fn parse_range(text: &str, hours: bool) -> Result<(u8, u8), String> {
    let one = |part: &str| -> Option<u8> {
        let part = part.trim();
        let index = if hours {
            usize::from(part.parse::<u8>().ok().filter(|h| *h < 24)?)
        } else {
            WEEKDAYS.iter().position(|day| {
                day.eq_ignore_ascii_case(part)
                    || (part.len() == 3
                        && day.get(..3).is_some_and(|d| d.eq_ignore_ascii_case(part)))
            })?
        };
        u8::try_from(index).ok()
    };
    let range = match text.split_once('-') {
        Some((from, to)) => one(from).zip(one(to)),
        None => one(text).map(|v| (v, v)),
    };
    range.ok_or_else(|| {
        if hours {
            "is not an hour or a range of hours (0-23, such as 9-17)".to_owned()
        } else {
            "is not a weekday or a range of weekdays (Mon ... Sun, such as Mon-Fri)".to_owned()
        }
    })
}

/// The part of a Kubernetes request a `resource.*` key reads.
#[derive(Debug, Clone, Copy)]
enum ResourceField {
    Group,
    Version,
    Resource,
    Subresource,
    Namespace,
    Name,
}

impl ResourceField {
    fn of(self, r: &crate::Resource) -> &str {
        match self {
            Self::Group => &r.group,
            Self::Version => &r.version,
            Self::Resource => &r.resource,
            Self::Subresource => &r.subresource,
            Self::Namespace => &r.namespace,
            Self::Name => &r.name,
        }
    }
}

/// Claims Envoy splits at spaces before matching (`normalize_payload_in_metadata`).
const SPACE_DELIMITED_CLAIMS: [&str; 2] = ["scope", "permission"];

impl Authorizer {
    /// Reads and checks `policies`: one policy or a list, each a whole AuthorizationPolicy
    /// object or only its `spec`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first field istiod's validation would refuse, or that this
    /// engine does not implement.
    pub fn new(policies: &Value, options: Options) -> Result<Self, ConfigError> {
        let list: Vec<(String, &Value)> = match policies {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("[{i}]"), v))
                .collect(),
            Value::Null => Vec::new(),
            one => vec![(String::new(), one)],
        };
        let mut compiled = Vec::with_capacity(list.len());
        for (index, (at, value)) in list.into_iter().enumerate() {
            let (object, spec_at) = read(value, &at)?;
            compiled.push(compile(object, index, &at, &spec_at)?);
        }
        let providers: Vec<&str> = compiled
            .iter()
            .filter_map(|p| p.provider.as_deref())
            .collect();
        if let Some(first) = providers.first()
            && let Some(other) = providers.iter().find(|p| *p != first)
        {
            return Err(error(
                "",
                format!(
                    "CUSTOM policies name providers {first:?} and {other:?}: Istio allows one \
                     provider per workload"
                ),
            ));
        }
        let uses_time = compiled
            .iter()
            .flat_map(|p| &p.rules)
            .flat_map(|r| &r.when)
            .any(ConditionMatch::uses_time);
        let mut sources = 0;
        for source in compiled
            .iter_mut()
            .flat_map(|p| &mut p.rules)
            .flat_map(|r| &mut r.from)
            .filter(|s| s.principals.constrains() || s.namespaces.constrains())
        {
            source.peer = Some(sources);
            sources = sources.saturating_add(1);
        }
        Ok(Self {
            policies: compiled,
            options,
            single: !matches!(policies, Value::Array(_)),
            uses_time,
            peers: PeerMemo {
                sources,
                seen: RefCell::default(),
            },
        })
    }

    /// What holds for the peer identities `principals` (see [`PeerMemo`]); `None` when no
    /// source has a peer part.
    fn peers(&self, principals: &[String]) -> Option<Ref<'_, Peers>> {
        let memo = &self.peers;
        if memo.sources == 0 {
            return None;
        }
        {
            let mut seen = memo.seen.borrow_mut();
            let same = |(kept, _): &(Vec<String>, Peers)| {
                kept.len() == principals.len()
                    && kept.iter().zip(principals).all(|(a, b)| compare::eq(a, b))
            };
            match seen.iter().position(same) {
                Some(0) => {}
                Some(at) => {
                    if let Some(recent) = seen.get_mut(..=at) {
                        recent.rotate_right(1);
                    }
                }
                None => {
                    let peers = self.work_out(principals);
                    seen.truncate(PEER_SETS_KEPT - 1);
                    seen.insert(0, (principals.to_vec(), peers));
                }
            }
        }
        Ref::filter_map(memo.seen.borrow(), |seen| {
            seen.first().map(|(_, peers)| peers)
        })
        .ok()
    }

    /// [`Peers`] for `principals`, worked out.
    fn work_out(&self, principals: &[String]) -> Peers {
        let mut bits = vec![0u64; self.peers.sources.div_ceil(64)];
        let mut candidates = Vec::with_capacity(self.policies.len());
        for policy in &self.policies {
            let mut rules = Vec::new();
            for (index, rule) in (0u32..).zip(&policy.rules) {
                let mut candidate = rule.from.is_empty();
                for source in &rule.from {
                    let Some(peer) = source.peer else {
                        candidate = true;
                        continue;
                    };
                    if source.peer_holds(principals)
                        && let Some(word) = bits.get_mut(peer / 64)
                    {
                        *word |= 1 << (peer % 64);
                        candidate = true;
                    }
                }
                if candidate {
                    rules.push(index);
                }
            }
            candidates.push(rules);
        }
        Peers { bits, candidates }
    }

    /// The number of policies.
    #[must_use]
    pub fn len(&self) -> usize {
        self.policies.len()
    }

    /// Whether there are none (every request is allowed, unless `default_deny`).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Whether a condition reads the time (`time.hour`, `time.weekday`): the home then reads
    /// the clock for every request.
    #[must_use]
    pub fn uses_time(&self) -> bool {
        self.uses_time
    }

    /// The first CUSTOM policy, if any: where it is (`[i]`, or empty for a single policy),
    /// where its `provider.name` is, and the name (all CUSTOM policies name the same provider).
    #[must_use]
    pub fn custom_policy(&self) -> Option<CustomPolicy> {
        let (index, policy) = self
            .policies
            .iter()
            .enumerate()
            .find(|(_, p)| p.action == Action::Custom)?;
        Some(CustomPolicy {
            at: if self.single {
                String::new()
            } else {
                format!("[{index}]")
            },
            provider_at: policy.provider_at.clone(),
            provider: policy.provider.clone().unwrap_or_default(),
        })
    }

    /// The first CUSTOM rule that matches (its id): the caller asks the policies' provider and
    /// denies if it refuses, before calling [`Authorizer::decide`] (Istio runs the CUSTOM
    /// filter first, before token verification).
    #[must_use]
    pub fn custom(&self, request: &Attributes) -> Option<Rc<RuleName>> {
        let asked = self.asked(request);
        self.policies
            .iter()
            .filter(|p| p.action == Action::Custom && !p.dry_run)
            .find_map(|p| p.matching_rule(&asked))
    }

    /// The id of the first rule, of any policy and action, that `request` matches: the
    /// policies used as plain matchers (sensitivity routes and requirements).
    #[must_use]
    pub fn first_match(&self, request: &Attributes) -> Option<String> {
        let asked = self.asked(request);
        self.policies
            .iter()
            .find_map(|p| p.matching_rule(&asked))
            .map(|rule| rule.as_str().to_owned())
    }

    /// AUDIT, DENY and ALLOW in Istio's order: a DENY match denies; no ALLOW policy allows
    /// (denies with `default_deny`); otherwise an ALLOW match is needed.
    #[must_use]
    pub fn decide(&self, request: &Attributes) -> Decision {
        let asked = self.asked(request);
        let audited = self
            .policies
            .iter()
            .filter(|p| p.action == Action::Audit && !p.dry_run)
            .filter_map(|p| p.matching_rule(&asked))
            .map(|rule| rule.as_str().to_owned())
            .collect();
        let (effect, policy) = self.outcome(&asked, false);
        let dry_run = self.policies.iter().any(|p| p.dry_run).then(|| {
            let (effect, rule) = self.outcome(&asked, true);
            (effect, rule.map(|rule| rule.as_str().to_owned()))
        });
        Decision {
            effect,
            policy,
            audited,
            dry_run,
        }
    }

    fn outcome(&self, asked: &Asked<'_>, dry_run: bool) -> (Effect, Option<Rc<RuleName>>) {
        let of = |action: Action| {
            self.policies
                .iter()
                .filter(move |p| p.action == action && p.dry_run == dry_run)
        };
        if let Some(rule) = of(Action::Deny).find_map(|p| p.matching_rule(asked)) {
            return (Effect::Deny, Some(rule));
        }
        if of(Action::Allow).next().is_none() {
            let effect = if self.options.default_deny {
                Effect::Deny
            } else {
                Effect::Allow
            };
            return (effect, None);
        }
        match of(Action::Allow).find_map(|p| p.matching_rule(asked)) {
            Some(rule) => (Effect::Allow, Some(rule)),
            None => (Effect::Deny, None),
        }
    }
}

/// A request as the rules are matched against it.
struct Asked<'a> {
    request: &'a Attributes<'a>,
    /// The normalised forms of the request's path (one, or two when a backend that merges
    /// slashes first would resolve it differently); none without a path.
    forms: Vec<Cow<'a, str>>,
    /// What holds for the request's peer identities ([`PeerMemo`]); `None` when no source
    /// has a peer part.
    peers: Option<Ref<'a, Peers>>,
}

impl Authorizer {
    fn asked<'a>(&'a self, request: &'a Attributes<'a>) -> Asked<'a> {
        Asked {
            request,
            forms: request.path.as_deref().map(normalise).unwrap_or_default(),
            peers: self.peers(&request.principals),
        }
    }
}

impl Policy {
    /// The id of the first rule that matches. A path with two normal forms must match in
    /// both for ALLOW (a narrower allow) and in either for the other actions (a wider deny), so
    /// that no spelling of a path gets through a rule another spelling would not.
    fn matching_rule(&self, asked: &Asked<'_>) -> Option<Rc<RuleName>> {
        let forms = &asked.forms;
        let matches = |rule: &CompiledRule| {
            if forms.len() < 2 {
                rule.matches(asked, forms.first().map(|f| &**f))
            } else if self.action == Action::Allow {
                forms.iter().all(|f| rule.matches(asked, Some(f)))
            } else {
                forms.iter().any(|f| rule.matches(asked, Some(f)))
            }
        };
        let candidates = asked
            .peers
            .as_ref()
            .and_then(|peers| peers.candidates.get(self.index));
        let index = match candidates {
            Some(candidates) => candidates
                .iter()
                .map(|i| *i as usize)
                .find(|i| self.rules.get(*i).is_some_and(matches))?,
            None => self.rules.iter().position(matches)?,
        };
        self.rule_ids.get(index).cloned()
    }
}

impl CompiledRule {
    fn matches(&self, asked: &Asked<'_>, path: Option<&str>) -> bool {
        let request = asked.request;
        (self.from.is_empty() || self.from.iter().any(|s| s.matches(asked)))
            && (self.to.is_empty() || self.to.iter().any(|o| o.matches(request, path)))
            && self.when.iter().all(|c| c.matches(request))
    }
}

fn ip_holds(field: &Field<Block>, ip: Option<IpAddr>) -> bool {
    field.holds(|block| ip.is_some_and(|ip| in_block(block, ip)))
}

fn principal_holds(field: &Field<Pattern>, principals: &[String]) -> bool {
    field.holds(|p| principals.iter().any(|v| p.matches(v)))
}

fn namespace_holds(field: &Field<Namespace>, principals: &[String]) -> bool {
    field.holds(|n| principals.iter().any(|v| n.matches(v)))
}

fn request_principal_holds(field: &Field<RequestPrincipal>, request: &Attributes) -> bool {
    if field.any_of.is_empty() && field.none_of.is_empty() {
        return true;
    }
    let principal = request.request_principal();
    field.holds(|m| principal.is_some_and(|(iss, sub)| m.matches(iss, sub)))
}

impl SourceMatch {
    fn matches(&self, asked: &Asked<'_>) -> bool {
        let request = asked.request;
        self.peer.is_none_or(|index| {
            asked
                .peers
                .as_ref()
                .is_some_and(|peers| bit(&peers.bits, index))
        }) && request_principal_holds(&self.request_principals, request)
            && ip_holds(&self.ip_blocks, request.source_ip)
            && ip_holds(&self.remote_ip_blocks, request.remote_ip)
    }

    /// Whether the peer part holds for the peer identities `principals`.
    fn peer_holds(&self, principals: &[String]) -> bool {
        principal_holds(&self.principals, principals)
            && namespace_holds(&self.namespaces, principals)
    }
}

impl OperationMatch {
    fn matches(&self, request: &Attributes, path: Option<&str>) -> bool {
        // Authorities are lower-case almost always: copy only one that is not, and only for a
        // rule that names hosts.
        let names_hosts = !(self.hosts.any_of.is_empty() && self.hosts.none_of.is_empty());
        let host = request.host.as_deref().filter(|_| names_hosts).map(|h| {
            if h.bytes().any(|b| b.is_ascii_uppercase()) {
                std::borrow::Cow::Owned(h.to_ascii_lowercase())
            } else {
                std::borrow::Cow::Borrowed(h)
            }
        });
        self.hosts
            .holds(|p| host.as_deref().is_some_and(|h| p.matches_header(h)))
            && self
                .ports
                .holds(|p| request.destination_port.is_some_and(|port| port == *p))
            && self.methods.holds(|p| {
                request
                    .method
                    .as_deref()
                    .is_some_and(|m| p.matches_header(m))
            })
            && self
                .paths
                .holds(|p| path.is_some_and(|path| p.matches(path)))
    }
}

/// The claim at `path` in the token's payload; `scope` and `permission` split into words.
fn claim<'a>(request: &'a Attributes, path: &[String]) -> Option<std::borrow::Cow<'a, Value>> {
    payload_claim(request.auth.as_deref(), path)
}

/// The claim at `path` in a verified payload; `scope` and `permission` split into words.
fn payload_claim<'a>(
    payload: Option<&'a serde_json::Map<String, Value>>,
    path: &[String],
) -> Option<std::borrow::Cow<'a, Value>> {
    let auth = payload?;
    let (first, rest) = path.split_first()?;
    let mut value = auth.get(first)?;
    for part in rest {
        value = value.as_object()?.get(part)?;
    }
    if rest.is_empty()
        && SPACE_DELIMITED_CLAIMS.contains(&first.as_str())
        && let Value::String(words) = value
    {
        let words = words
            .split(' ')
            .filter(|w| !w.is_empty())
            .map(|w| Value::String(w.to_owned()))
            .collect();
        return Some(std::borrow::Cow::Owned(Value::Array(words)));
    }
    Some(std::borrow::Cow::Borrowed(value))
}

impl ConditionMatch {
    fn matches(&self, request: &Attributes) -> bool {
        match self {
            Self::Header(name, field) => {
                let value = request.header(name);
                field.holds(|p| value.as_deref().is_some_and(|v| p.matches_header(v)))
            }
            Self::SourceIp(field) => ip_holds(field, request.source_ip),
            Self::RemoteIp(field) => ip_holds(field, request.remote_ip),
            Self::DestinationIp(field) => ip_holds(field, request.destination_ip),
            Self::DestinationPort(field) => {
                field.holds(|p| request.destination_port.is_some_and(|port| port == *p))
            }
            Self::SourceNamespace(field) => namespace_holds(field, &request.principals),
            Self::SourcePrincipal(field) => principal_holds(field, &request.principals),
            Self::SourceGroups(field) => principal_holds(field, &request.groups),
            Self::RequestPrincipal(field) => request_principal_holds(field, request),
            Self::Claim(path, field) => {
                let value = claim(request, path);
                field.holds(|p| value.as_deref().is_some_and(|v| p.matches_claim(v)))
            }
            Self::Sni(field) => {
                field.holds(|p| request.sni.as_deref().is_some_and(|sni| p.matches(sni)))
            }
            Self::Resource(part, field) => field.holds(|p| {
                request
                    .resource
                    .as_ref()
                    .is_some_and(|r| p.matches(part.of(r)))
            }),
            Self::Extra(key, field) => field.holds(|p| {
                request
                    .extra
                    .get(key)
                    .is_some_and(|values| values.iter().any(|v| p.matches(v)))
            }),
            Self::Label(key, field) => {
                field.holds(|p| request.labels.get(key).is_some_and(|v| p.matches(v)))
            }
            Self::DeviceClaim(path, field) => {
                let value = payload_claim(request.device.as_deref(), path);
                field.holds(|p| value.as_deref().is_some_and(|v| p.matches_claim(v)))
            }
            Self::Hour(field) => {
                field.holds(|r| request.time.is_some_and(|t| in_range(*r, t.hour)))
            }
            Self::Weekday(field) => {
                field.holds(|r| request.time.is_some_and(|t| in_range(*r, t.weekday)))
            }
        }
    }

    fn uses_time(&self) -> bool {
        matches!(self, Self::Hour(_) | Self::Weekday(_))
    }
}

// --- reading and checking -----------------------------------------------------------------------

/// A whole object or a bare spec, and the JSON path of its spec.
fn read(value: &Value, at: &str) -> Result<(Object, String), ConfigError> {
    let whole = value
        .as_object()
        .ok_or_else(|| error(at, "an AuthorizationPolicy must be an object"))?;
    let is_object = ["apiVersion", "kind", "metadata", "spec"]
        .iter()
        .any(|k| whole.contains_key(*k));
    if is_object {
        let object: Object = serde_path_to_error::deserialize(value)
            .map_err(|e| error(&join(at, &e.path().to_string()), e.inner().to_string()))?;
        if let Some(kind) = object.kind.as_deref()
            && kind != "AuthorizationPolicy"
        {
            return Err(error(
                &dot(at, "kind"),
                format!("is {kind:?}, not AuthorizationPolicy"),
            ));
        }
        if let Some(version) = object.api_version.as_deref()
            && !version.starts_with("security.istio.io/")
        {
            return Err(error(
                &dot(at, "apiVersion"),
                format!("is {version:?}, not security.istio.io/v1 or v1beta1"),
            ));
        }
        Ok((object, dot(at, "spec")))
    } else {
        let spec: Spec = serde_path_to_error::deserialize(value)
            .map_err(|e| error(&join(at, &e.path().to_string()), e.inner().to_string()))?;
        Ok((
            Object {
                api_version: None,
                kind: None,
                metadata: model::Metadata::default(),
                spec,
            },
            at.to_owned(),
        ))
    }
}

/// `at.rest`, or `rest` at the top.
fn dot(at: &str, rest: &str) -> String {
    if at.is_empty() {
        rest.to_owned()
    } else {
        format!("{at}.{rest}")
    }
}

fn join(at: &str, inner: &str) -> String {
    if inner == "." || inner.is_empty() {
        at.to_owned()
    } else {
        dot(at, inner)
    }
}

fn compile(object: Object, index: usize, at: &str, spec_at: &str) -> Result<Policy, ConfigError> {
    let name = object
        .metadata
        .name
        .clone()
        .unwrap_or_else(|| format!("policy-{index}"));
    let namespace = object
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    let dry_run = match object.metadata.annotations.get("istio.io/dry-run") {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(v) => {
            return Err(error(
                &dot(at, "metadata.annotations.istio.io/dry-run"),
                format!("is {v:?}, not \"true\" or \"false\""),
            ));
        }
    };
    let spec = object.spec;
    let action = spec.action;
    let provider = match (&spec.provider, action) {
        (Some(p), Action::Custom) if !p.name.is_empty() => Some(p.name.clone()),
        (_, Action::Custom) => {
            return Err(error(
                &dot(spec_at, "provider.name"),
                "a CUSTOM policy needs a provider",
            ));
        }
        (Some(_), _) => {
            return Err(error(
                &dot(spec_at, "provider"),
                "only a CUSTOM policy has a provider",
            ));
        }
        (None, _) => None,
    };
    let rules = match spec.rules {
        Some(rules) => rules,
        None if matches!(action, Action::Deny | Action::Custom) => {
            let name = if action == Action::Deny {
                "DENY"
            } else {
                "CUSTOM"
            };
            return Err(error(
                &dot(spec_at, "rules"),
                format!(
                    "a {name} policy without rules matches nothing; add an empty rule {{}} to \
                     match every request"
                ),
            ));
        }
        None => Vec::new(),
    };
    if rules.len() > MAX_RULES {
        return Err(error(
            &dot(spec_at, "rules"),
            format!("has {} rules; at most {MAX_RULES}", rules.len()),
        ));
    }
    let rules: Vec<CompiledRule> = rules
        .iter()
        .enumerate()
        .map(|(i, rule)| compile_rule(rule, action, &dot(spec_at, &format!("rules[{i}]"))))
        .collect::<Result<_, _>>()?;
    let id = format!("ns[{namespace}]-policy[{name}]");
    Ok(Policy {
        index,
        rule_ids: (0..rules.len())
            .map(|i| RuleName::new(format!("{id}-rule[{i}]")))
            .collect(),
        action,
        provider,
        provider_at: dot(spec_at, "provider.name"),
        dry_run,
        rules,
    })
}

fn compile_rule(rule: &Rule, action: Action, at: &str) -> Result<CompiledRule, ConfigError> {
    let mut compiled = CompiledRule::default();
    if let Some(from) = &rule.from {
        if from.is_empty() {
            return Err(error(&dot(at, "from"), "must not be empty; leave it out"));
        }
        for (i, f) in from.iter().enumerate() {
            let here = dot(at, &format!("from[{i}].source"));
            let source = f
                .source
                .as_ref()
                .ok_or_else(|| error(&here, "is missing"))?;
            compiled.from.push(compile_source(source, action, &here)?);
        }
    }
    if let Some(to) = &rule.to {
        if to.is_empty() {
            return Err(error(&dot(at, "to"), "must not be empty; leave it out"));
        }
        for (i, t) in to.iter().enumerate() {
            let here = dot(at, &format!("to[{i}].operation"));
            let operation = t
                .operation
                .as_ref()
                .ok_or_else(|| error(&here, "is missing"))?;
            compiled.to.push(compile_operation(operation, &here)?);
        }
    }
    for (i, condition) in rule.when.iter().flatten().enumerate() {
        compiled.when.push(compile_condition(
            condition,
            action,
            &dot(at, &format!("when[{i}]")),
        )?);
    }
    Ok(compiled)
}

/// Compiles `values` and `notValues` of one field with `parse`, refusing empty strings.
fn field<M>(
    at: &str,
    name: &str,
    values: Option<&Vec<String>>,
    not_name: &str,
    not_values: Option<&Vec<String>>,
    parse: impl Fn(&str) -> Result<M, String>,
) -> Result<Field<M>, ConfigError> {
    let each = |list: Option<&Vec<String>>, name: &str| -> Result<Vec<M>, ConfigError> {
        list.into_iter()
            .flatten()
            .enumerate()
            .map(|(i, v)| {
                let here = dot(at, &format!("{name}[{i}]"));
                if v.is_empty() {
                    return Err(error(&here, "must not be empty"));
                }
                parse(v).map_err(|m| error(&here, format!("{v:?} {m}")))
            })
            .collect()
    };
    Ok(Field {
        any_of: each(values, name)?,
        none_of: each(not_values, not_name)?,
    })
}

fn pattern(v: &str) -> Result<Pattern, String> {
    Ok(Pattern::parse(v))
}

fn compile_source(source: &Source, action: Action, at: &str) -> Result<SourceMatch, ConfigError> {
    let s = source;
    let set = [
        &s.principals,
        &s.not_principals,
        &s.request_principals,
        &s.not_request_principals,
        &s.namespaces,
        &s.not_namespaces,
        &s.ip_blocks,
        &s.not_ip_blocks,
        &s.remote_ip_blocks,
        &s.not_remote_ip_blocks,
    ];
    if set.iter().all(|f| f.is_none()) {
        return Err(error(at, "is empty; set at least one field"));
    }
    if action == Action::Custom
        && (s.request_principals.is_some() || s.not_request_principals.is_some())
    {
        return Err(error(
            at,
            "requestPrincipals cannot be used in a CUSTOM policy (it runs before token \
             verification)",
        ));
    }
    Ok(SourceMatch {
        peer: None,
        principals: field(
            at,
            "principals",
            s.principals.as_ref(),
            "notPrincipals",
            s.not_principals.as_ref(),
            pattern,
        )?,
        request_principals: field(
            at,
            "requestPrincipals",
            s.request_principals.as_ref(),
            "notRequestPrincipals",
            s.not_request_principals.as_ref(),
            |v| Ok(RequestPrincipal::parse(v)),
        )?,
        namespaces: field(
            at,
            "namespaces",
            s.namespaces.as_ref(),
            "notNamespaces",
            s.not_namespaces.as_ref(),
            |v| Ok(Namespace::parse(v)),
        )?,
        ip_blocks: field(
            at,
            "ipBlocks",
            s.ip_blocks.as_ref(),
            "notIpBlocks",
            s.not_ip_blocks.as_ref(),
            parse_block,
        )?,
        remote_ip_blocks: field(
            at,
            "remoteIpBlocks",
            s.remote_ip_blocks.as_ref(),
            "notRemoteIpBlocks",
            s.not_remote_ip_blocks.as_ref(),
            parse_block,
        )?,
    })
}

fn path_match(v: &str) -> Result<PathMatch, String> {
    if is_template(v) {
        Template::parse(v).map(PathMatch::Template)
    } else {
        Ok(PathMatch::Pattern(Pattern::parse(v)))
    }
}

fn compile_operation(operation: &Operation, at: &str) -> Result<OperationMatch, ConfigError> {
    let o = operation;
    let set = [
        &o.hosts,
        &o.not_hosts,
        &o.ports,
        &o.not_ports,
        &o.methods,
        &o.not_methods,
        &o.paths,
        &o.not_paths,
    ];
    if set.iter().all(|f| f.is_none()) {
        return Err(error(at, "is empty; set at least one field"));
    }
    Ok(OperationMatch {
        hosts: field(
            at,
            "hosts",
            o.hosts.as_ref(),
            "notHosts",
            o.not_hosts.as_ref(),
            |v| Ok(Pattern::parse(v).lowercase()),
        )?,
        ports: field(
            at,
            "ports",
            o.ports.as_ref(),
            "notPorts",
            o.not_ports.as_ref(),
            parse_port,
        )?,
        methods: field(
            at,
            "methods",
            o.methods.as_ref(),
            "notMethods",
            o.not_methods.as_ref(),
            pattern,
        )?,
        paths: field(
            at,
            "paths",
            o.paths.as_ref(),
            "notPaths",
            o.not_paths.as_ref(),
            path_match,
        )?,
    })
}

/// The name between the brackets of `[name]`.
fn in_brackets(rest: &str) -> Option<&str> {
    rest.strip_prefix('[')?
        .strip_suffix(']')
        .filter(|name| !name.is_empty())
}

fn compile_condition(
    condition: &Condition,
    action: Action,
    at: &str,
) -> Result<ConditionMatch, ConfigError> {
    let key = condition.key.as_str();
    let key_at = dot(at, "key");
    if condition.values.is_none() && condition.not_values.is_none() {
        return Err(error(at, "needs values or notValues"));
    }
    if action == Action::Custom && (key.starts_with("request.auth.") || key.starts_with("device."))
    {
        return Err(error(
            &key_at,
            format!("{key} cannot be used in a CUSTOM policy (it runs before token verification)"),
        ));
    }
    let values = condition.values.as_ref();
    let not_values = condition.not_values.as_ref();
    let strings = || field(at, "values", values, "notValues", not_values, pattern);
    let blocks = || field(at, "values", values, "notValues", not_values, parse_block);
    let claim_path = |rest: &str| -> Result<Vec<String>, ConfigError> {
        let inner = in_brackets(rest)
            .ok_or_else(|| error(&key_at, format!("{key:?}: the claim must be in brackets")))?;
        Ok(inner.split("][").map(str::to_owned).collect())
    };
    Ok(match key {
        "source.ip" => ConditionMatch::SourceIp(blocks()?),
        "remote.ip" => ConditionMatch::RemoteIp(blocks()?),
        "destination.ip" => ConditionMatch::DestinationIp(blocks()?),
        "destination.port" => ConditionMatch::DestinationPort(field(
            at,
            "values",
            values,
            "notValues",
            not_values,
            parse_port,
        )?),
        "source.namespace" => ConditionMatch::SourceNamespace(field(
            at,
            "values",
            values,
            "notValues",
            not_values,
            |v| Ok(Namespace::parse(v)),
        )?),
        "source.principal" => ConditionMatch::SourcePrincipal(strings()?),
        "source.groups" => ConditionMatch::SourceGroups(strings()?),
        "request.auth.principal" => ConditionMatch::RequestPrincipal(field(
            at,
            "values",
            values,
            "notValues",
            not_values,
            |v| Ok(RequestPrincipal::parse(v)),
        )?),
        "request.auth.audiences" => ConditionMatch::Claim(vec!["aud".into()], strings()?),
        "request.auth.presenter" => ConditionMatch::Claim(vec!["azp".into()], strings()?),
        "connection.sni" => ConditionMatch::Sni(strings()?),
        "time.hour" => {
            ConditionMatch::Hour(field(at, "values", values, "notValues", not_values, |v| {
                parse_range(v, true)
            })?)
        }
        "time.weekday" => {
            ConditionMatch::Weekday(field(at, "values", values, "notValues", not_values, |v| {
                parse_range(v, false)
            })?)
        }
        "resource.group" => ConditionMatch::Resource(ResourceField::Group, strings()?),
        "resource.version" => ConditionMatch::Resource(ResourceField::Version, strings()?),
        "resource.resource" => ConditionMatch::Resource(ResourceField::Resource, strings()?),
        "resource.subresource" => ConditionMatch::Resource(ResourceField::Subresource, strings()?),
        "resource.namespace" => ConditionMatch::Resource(ResourceField::Namespace, strings()?),
        "resource.name" => ConditionMatch::Resource(ResourceField::Name, strings()?),
        "destination.namespace" | "destination.name" | "destination.user" => {
            return Err(error(
                &key_at,
                format!("{key} is not supported by Istio any more"),
            ));
        }
        _ => {
            // `prefix[name]`: the name in brackets, or an error naming what it is.
            let bracketed = |prefix: &str, what: &str| -> Result<Option<String>, ConfigError> {
                let Some(rest) = key.strip_prefix(prefix) else {
                    return Ok(None);
                };
                let name = in_brackets(rest).ok_or_else(|| {
                    error(&key_at, format!("{key:?}: the {what} must be in brackets"))
                })?;
                Ok(Some(name.to_owned()))
            };
            if let Some(name) = bracketed("request.headers", "header name")? {
                ConditionMatch::Header(name.to_ascii_lowercase(), strings()?)
            } else if let Some(name) = bracketed("request.userInfo.extra", "extra key")? {
                ConditionMatch::Extra(name, strings()?)
            } else if let Some(name) = bracketed("object.labels", "label")? {
                ConditionMatch::Label(name, strings()?)
            } else if let Some(rest) = key.strip_prefix("request.auth.claims") {
                ConditionMatch::Claim(claim_path(rest)?, strings()?)
            } else if let Some(rest) = key.strip_prefix("device.claims") {
                ConditionMatch::DeviceClaim(
                    claim_path(rest)?,
                    field(
                        at,
                        "values",
                        values,
                        "notValues",
                        not_values,
                        DeviceValue::parse,
                    )?,
                )
            } else if key.starts_with("destination.labels") {
                return Err(error(
                    &key_at,
                    format!("{key} is not supported by Istio any more"),
                ));
            } else {
                return Err(error(&key_at, format!("unknown attribute {key:?}")));
            }
        }
    })
}

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
