//! The loaded policies and groups of one configuration generation: each policy prepared once
//! through the runtime's admission API and configured with its settings, limits, failurePolicy
//! and mode; a policy that fails to load is kept with its error and answered by its
//! failurePolicy. Groups combine their members' decisions.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use palisade_oci::ImageStore;
use palisade_runtime::admission::{Decision, Failure, Options, Outcome, Policy, Prepared};
use palisade_runtime::capabilities::{Capabilities, Grants};
use palisade_runtime::{Engine, Limits};
use palisade_sdk::wire::{AdmissionRequest, Rule, Verdict};
use serde::Serialize;

use crate::config::{Config, GroupConfig, PolicyConfig};
use crate::expression::Expression;
use crate::registry::{ModuleOrigin, RegistryConfig};

/// What an endpoint answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/validate/<id>`: no patch (unless a policies.yml's `allowedToMutate` says so), the mode
    /// applied.
    Validate,
    /// `/mutate/<id>`: the patch kept, the mode applied.
    Mutate,
    /// `/audit/<id>`, for audit scanners (policy-server's): as `/validate`, but the decision as
    /// the policy made it, whatever its mode.
    Audit,
}

impl Endpoint {
    /// Its name in metrics.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::Validate => "validate",
            Endpoint::Mutate => "mutate",
            Endpoint::Audit => "audit",
        }
    }
}

/// Every policy and group of one configuration.
pub struct PolicySet {
    policies: BTreeMap<String, LoadedPolicy>,
    groups: BTreeMap<String, LoadedGroup>,
}

/// One configured policy, loaded or not.
struct LoadedPolicy {
    config: PolicyConfig,
    state: Result<Policy, String>,
    /// Where a module given by URL came from, and its pin.
    origin: Option<ModuleOrigin>,
}

/// Modules prepared during one load, by their bytes, and modules pulled by URL (each URL once).
struct Modules<'a> {
    prepared: std::collections::HashMap<Vec<u8>, Arc<Prepared>>,
    registry: &'a RegistryConfig,
    /// Built on the first URL.
    store: Option<ImageStore>,
    pulled: std::collections::HashMap<String, Result<(Vec<u8>, ModuleOrigin), String>>,
}

impl<'a> Modules<'a> {
    fn new(registry: &'a RegistryConfig) -> Self {
        Self {
            prepared: std::collections::HashMap::new(),
            registry,
            store: None,
            pulled: std::collections::HashMap::new(),
        }
    }

    /// The bytes of `module`: read from its file, or pulled from its URL (once per load).
    fn bytes(&mut self, module: &Path) -> anyhow::Result<(Vec<u8>, Option<ModuleOrigin>)> {
        use anyhow::Context;
        let text = module.to_string_lossy();
        if !crate::registry::is_remote(&text) {
            let bytes =
                std::fs::read(module).with_context(|| format!("reading {}", module.display()))?;
            return Ok((bytes, None));
        }
        let url = text.into_owned();
        if !self.pulled.contains_key(&url) {
            let pulled = self.pull(&url).map_err(|e| format!("{e:#}"));
            self.pulled.insert(url.clone(), pulled);
        }
        match self.pulled.get(&url) {
            Some(Ok((bytes, origin))) => Ok((bytes.clone(), Some(origin.clone()))),
            Some(Err(e)) => Err(anyhow::anyhow!("{e}")),
            None => Err(anyhow::anyhow!("{url} was not pulled")),
        }
    }

    fn pull(&mut self, url: &str) -> anyhow::Result<(Vec<u8>, ModuleOrigin)> {
        if self.store.is_none() {
            self.store = Some(self.registry.store()?);
        }
        let Some(store) = &self.store else {
            anyhow::bail!("no image store for {url}");
        };
        let pulled = crate::registry::fetch_module(url, self.registry, store)?;
        tracing::info!(url, digest = %pulled.1.digest, "pulled a policy module");
        Ok(pulled)
    }
}

struct LoadedGroup {
    config: GroupConfig,
    expression: Expression,
}

/// The instances of one loaded policy, for `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instances {
    /// The policy id.
    pub policy: String,
    /// Live instances in the pool.
    pub idle: usize,
    /// Instances evaluating a request.
    pub busy: usize,
}

/// What `/policies` shows of one policy or group.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The id.
    pub id: String,
    /// `policy` or `group`.
    pub kind: &'static str,
    /// `loaded` or `error`.
    pub status: &'static str,
    /// The load error, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The module file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// SHA-256 of the module.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The policy's own name and version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// protect or monitor.
    pub mode: &'static str,
    /// Fail or Ignore (policies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_policy: Option<&'static str>,
    /// The group's expression.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// The metadata Kubewarden's tools embedded in the module (execution mode, background
    /// audit, context-aware resources, ...), for Kubewarden policies that have it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubewarden: Option<palisade_runtime::kubewarden::Metadata>,
    /// Where a module given by URL was pulled from, and the digest that pins it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<ModuleOrigin>,
}

impl PolicySet {
    /// Loads every policy of `config` (failures are recorded, not returned) and its groups;
    /// policies get what their grants allow of `capabilities`. Blocks the calling thread
    /// (compiling is CPU work).
    #[must_use]
    pub fn load(config: &Config, engine: &Engine, capabilities: &Arc<Capabilities>) -> Self {
        // Policies sharing a module (same bytes) share one compiled, pre-instantiated copy.
        let mut modules = Modules::new(&config.host_operations.registry);
        let policies = config
            .policies
            .iter()
            .map(|p| {
                let loaded = LoadedPolicy::load(p, engine, capabilities, &mut modules);
                (p.id.clone(), loaded)
            })
            .collect();
        let groups = config
            .groups
            .iter()
            .filter_map(|g| {
                // Config::validate has parsed every expression already.
                Expression::parse(&g.expression).ok().map(|expression| {
                    (
                        g.id.clone(),
                        LoadedGroup {
                            config: g.clone(),
                            expression,
                        },
                    )
                })
            })
            .collect();
        Self { policies, groups }
    }

    /// Whether every policy loaded.
    #[must_use]
    pub fn all_loaded(&self) -> bool {
        self.policies.values().all(|p| p.state.is_ok())
    }

    /// Whether `id` names a policy or group.
    #[must_use]
    pub fn contains(&self, id: &str) -> bool {
        self.policies.contains_key(id) || self.groups.contains_key(id)
    }

    /// The status of every policy and group.
    #[must_use]
    pub fn statuses(&self) -> Vec<Status> {
        let policies = self.policies.values().map(LoadedPolicy::status);
        let groups = self.groups.values().map(|g| Status {
            id: g.config.id.clone(),
            kind: "group",
            status: "loaded",
            error: None,
            module: None,
            digest: None,
            policy: None,
            mode: g.config.mode.label(),
            failure_policy: None,
            expression: Some(g.config.expression.clone()),
            kubewarden: None,
            origin: None,
        });
        policies.chain(groups).collect()
    }

    /// The instances of every loaded policy.
    #[must_use]
    pub fn instances(&self) -> Vec<Instances> {
        self.policies
            .iter()
            .filter_map(|(id, p)| {
                let count = p.state.as_ref().ok()?.instances();
                Some(Instances {
                    policy: id.clone(),
                    idle: count.idle,
                    busy: count.busy,
                })
            })
            .collect()
    }

    /// Drops every policy's instances idle for longer than `idle_for`; returns how many.
    pub fn drop_idle(&self, idle_for: std::time::Duration) -> usize {
        self.policies
            .values()
            .filter_map(|p| p.state.as_ref().ok())
            .map(|policy| policy.drop_idle(idle_for))
            .sum()
    }

    /// What each policy and group wants to see: `(id, rules, mutating)`; a group's rules are
    /// its members' rules together. Policies that did not load are left out.
    #[must_use]
    pub fn webhook_rules(&self) -> Vec<(String, Vec<Rule>, bool)> {
        let mut out: Vec<(String, Vec<Rule>, bool)> = self
            .policies
            .iter()
            .filter(|(_, p)| p.config.member_of.is_none())
            .filter_map(|(id, p)| {
                p.state.as_ref().ok().map(|policy| {
                    let metadata = policy.prepared().metadata();
                    (id.clone(), metadata.rules.clone(), metadata.mutating)
                })
            })
            .collect();
        for (id, group) in &self.groups {
            let mut rules: Vec<Rule> = Vec::new();
            for member in group.expression.members() {
                if let Some(Ok(policy)) = self.policies.get(&member).map(|p| p.state.as_ref()) {
                    for rule in &policy.prepared().metadata().rules {
                        if !rules.contains(rule) {
                            rules.push(rule.clone());
                        }
                    }
                }
            }
            out.push((id.clone(), rules, false));
        }
        out
    }

    /// Decides `request` with the policy or group `id` as `endpoint` answers; `None` when there
    /// is no such id.
    pub async fn decide(
        &self,
        id: &str,
        request: &AdmissionRequest,
        endpoint: Endpoint,
    ) -> Option<Decision> {
        let audit = endpoint == Endpoint::Audit;
        if let Some(policy) = self.policies.get(id) {
            if policy.config.member_of.is_some() {
                return None;
            }
            let decision = if audit {
                policy.decide_enforced(request).await
            } else {
                policy.decide(request).await
            };
            let decision = match policy.config.allowed_to_mutate {
                None if endpoint == Endpoint::Mutate => decision,
                None => decision.without_patch(),
                Some(allowed) => policy_server_answer(decision, allowed, &policy.config),
            };
            return Some(with_message(decision, &policy.config));
        }
        let group = self.groups.get(id)?;
        let decision = self.decide_group(group, request).await;
        Some(if audit {
            decision
        } else {
            decision.in_mode(&group.config.id, group.config.mode)
        })
    }

    /// The answer to a request the server's deadline cut short: for a policy, what its
    /// failurePolicy makes of a timeout; for a group, a failed-closed denial (a group has no
    /// failurePolicy of its own). `None` when there is no such id.
    #[must_use]
    pub fn timed_out(
        &self,
        id: &str,
        request: &AdmissionRequest,
        deadline: std::time::Duration,
    ) -> Option<Decision> {
        let failure = Failure {
            kind: "timeout",
            message: format!(
                "the server's deadline of {} (limits.requestTimeout) passed before {id} answered",
                humantime::format_duration(deadline)
            ),
            backtrace: String::new(),
        };
        if let Some(policy) = self.policies.get(id) {
            let config = &policy.config;
            let decision =
                Decision::enforced(id, &request.uid, Err(failure), config.failure_policy);
            return Some(decision.in_mode(id, config.mode));
        }
        let group = self.groups.get(id)?;
        let decision = Decision::enforced(
            id,
            &request.uid,
            Err(failure),
            crate::config::FailurePolicy::Fail,
        );
        Some(decision.in_mode(id, group.config.mode))
    }

    /// The group's decision as if in protect mode.
    async fn decide_group(&self, group: &LoadedGroup, request: &AdmissionRequest) -> Decision {
        let mut members = BTreeMap::new();
        let mut errors = Vec::new();
        let mut started = Vec::new();
        let mut spent = Vec::new();
        // Members are independent: evaluated concurrently, so the group takes as long as its
        // slowest member, not their sum (each evaluation yields at every epoch tick).
        let no_mutation = group.config.members_may_not_mutate;
        let evaluations = group.expression.members().into_iter().filter_map(|id| {
            let policy = self.policies.get(&id)?;
            // A member's own failurePolicy decides what its failure counts as; its mode
            // does not matter inside a group: the group's mode does.
            Some(async move {
                let decision = policy.decide_enforced(request).await;
                let decision = if no_mutation {
                    policy_server_answer(decision, false, &policy.config)
                } else {
                    decision
                };
                (id, decision)
            })
        });
        for (id, decision) in futures_util::future::join_all(evaluations).await {
            errors.extend(decision.errors.iter().copied());
            started.extend(decision.started.iter().cloned());
            spent.extend(decision.spent.iter().cloned());
            members.insert(id, decision);
        }
        let allowed = group
            .expression
            .evaluate(&|id| members.get(id).is_some_and(|d| d.verdict.allowed));
        let mut verdict = if allowed {
            Verdict::allow()
        } else {
            let mut message = group
                .config
                .message
                .clone()
                .unwrap_or_else(|| format!("denied by policy group {}", group.config.id));
            for (id, member) in members.iter().filter(|(_, d)| !d.verdict.allowed) {
                message.push_str(&format!("; {id}: {}", member.verdict.message));
            }
            let reason = members
                .values()
                .find(|d| !d.verdict.allowed)
                .map_or("group-denied", |d| d.verdict.reason.as_str());
            Verdict::deny(reason, message)
        };
        for member in members.values() {
            verdict
                .warnings
                .extend(member.verdict.warnings.iter().cloned());
            verdict
                .audit_annotations
                .extend(member.verdict.audit_annotations.clone());
        }
        Decision {
            verdict,
            outcome: if allowed {
                Outcome::Allowed
            } else {
                Outcome::Denied
            },
            mode: group.config.mode,
            errors,
            started,
            spent,
        }
    }
}

/// What policy-server makes of a policy's decision on `/validate` (its
/// `admission_response_handler.rs`): in monitor mode no patch; in protect mode a patch from a
/// policy not allowed to mutate is a rejection, in its words.
fn policy_server_answer(mut decision: Decision, allowed: bool, config: &PolicyConfig) -> Decision {
    if decision.mode == crate::config::Mode::Monitor {
        return decision.without_patch();
    }
    if !allowed && decision.verdict.allowed && decision.verdict.patch.is_some() {
        decision.verdict = Verdict::deny(
            "",
            format!(
                "Request rejected by policy {}. The policy attempted to mutate the request, but it is currently configured to not allow mutations.",
                config.id
            ),
        );
        decision.outcome = Outcome::Denied;
    }
    decision
}

/// A rejection with the policy's configured message instead of its own (policy-server's
/// `message`; it keeps the policy's own as a status cause, which a verdict has no room for:
/// it is logged instead).
fn with_message(mut decision: Decision, config: &PolicyConfig) -> Decision {
    if let Some(message) = &config.message
        && !decision.verdict.allowed
    {
        let original = std::mem::replace(&mut decision.verdict.message, message.clone());
        tracing::info!(policy = %config.id, original = %original, "rejection answered with the configured message");
    }
    decision
}

impl LoadedPolicy {
    fn load(
        config: &PolicyConfig,
        engine: &Engine,
        capabilities: &Arc<Capabilities>,
        modules: &mut Modules<'_>,
    ) -> Self {
        let mut origin = None;
        let state = Self::prepare(config, engine, capabilities, modules, &mut origin).map_err(|e| {
            let message = format!("{e:#}");
            tracing::error!(policy = %config.id, module = %config.module.display(), error = %message, "policy failed to load");
            message
        });
        Self {
            config: config.clone(),
            state,
            origin,
        }
    }

    fn prepare(
        config: &PolicyConfig,
        engine: &Engine,
        capabilities: &Arc<Capabilities>,
        modules: &mut Modules<'_>,
        origin: &mut Option<ModuleOrigin>,
    ) -> anyhow::Result<Policy> {
        use anyhow::Context;
        let (bytes, pulled_from) = modules.bytes(&config.module)?;
        *origin = pulled_from;
        let prepared = match modules.prepared.get(&bytes) {
            Some(prepared) => Arc::clone(prepared),
            None => {
                let prepared = Arc::new(
                    Prepared::new(engine, &bytes)
                        .with_context(|| format!("loading {}", config.module.display()))?,
                );
                modules.prepared.insert(bytes, Arc::clone(&prepared));
                prepared
            }
        };
        let settings = if config.settings.is_null() {
            String::new()
        } else {
            config.settings.to_string()
        };
        let options = Options {
            id: Some(config.id.clone()),
            limits: Some(Limits {
                timeout: config.timeout,
                memory: config.memory_mib << 20,
            }),
            failure_policy: config.failure_policy,
            mode: config.mode,
            capabilities: Some(Arc::clone(capabilities)),
            grants: Grants::from(&config.capabilities),
            answer: config.answer,
            max_concurrency: Some(config.max_concurrency),
            // Never more idle instances than can be busy at once.
            instances: palisade_runtime::admission::Instances::Warm {
                max_idle: config.max_concurrency,
            },
        };
        let policy = prepared
            .configure(&settings, options)
            .context("configuring")?;
        let metadata = prepared.metadata();
        tracing::info!(policy = %config.id, name = %metadata.name, version = %metadata.version, digest = %prepared.digest(), "policy loaded");
        Ok(policy)
    }

    fn status(&self) -> Status {
        let (status, error, digest, policy) = match &self.state {
            Ok(policy) => {
                let prepared = policy.prepared();
                let metadata = prepared.metadata();
                (
                    "loaded",
                    None,
                    Some(prepared.digest().to_owned()),
                    Some(format!("{} {}", metadata.name, metadata.version)),
                )
            }
            Err(e) => ("error", Some(e.clone()), None, None),
        };
        let kubewarden = self
            .state
            .as_ref()
            .ok()
            .and_then(|p| p.prepared().kubewarden().cloned());
        Status {
            id: self.config.id.clone(),
            kind: "policy",
            status,
            error,
            module: Some(self.config.module.display().to_string()),
            digest,
            policy,
            mode: self.config.mode.label(),
            failure_policy: Some(self.config.failure_policy.label()),
            expression: None,
            kubewarden,
            origin: self.origin.clone(),
        }
    }

    /// The decision with failurePolicy and mode applied.
    async fn decide(&self, request: &AdmissionRequest) -> Decision {
        match &self.state {
            Ok(policy) => policy.decide(request).await,
            Err(_) => self
                .not_loaded(request)
                .in_mode(&self.config.id, self.config.mode),
        }
    }

    /// The decision with the failurePolicy applied, as if in protect mode.
    async fn decide_enforced(&self, request: &AdmissionRequest) -> Decision {
        match &self.state {
            Ok(policy) => policy.decide_enforced(request).await,
            Err(_) => self.not_loaded(request),
        }
    }

    /// What the failurePolicy makes of a policy that did not load.
    fn not_loaded(&self, request: &AdmissionRequest) -> Decision {
        let error = self.state.as_ref().err().cloned().unwrap_or_default();
        let failure = Failure {
            kind: "load",
            message: format!("the policy is not loaded: {error}"),
            backtrace: String::new(),
        };
        Decision::enforced(
            &self.config.id,
            &request.uid,
            Err(failure),
            self.config.failure_policy,
        )
    }
}
