//! The loaded policies and groups of one configuration generation: each policy compiled once,
//! configured with its settings and limits, with a pool of warm instances; a policy that fails
//! to load is kept with its error and answered by its failurePolicy.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use palisade_runtime::component::{Policy, Prepared, Warm};
use palisade_runtime::{Engine, EvalError, Limits};
use palisade_sdk::wire::{AdmissionRequest, Rule, Verdict};
use serde::Serialize;

use crate::config::{Config, FailurePolicy, GroupConfig, Mode, PolicyConfig};
use crate::expression::Expression;

/// Every policy and group of one configuration.
pub struct PolicySet {
    policies: BTreeMap<String, Arc<LoadedPolicy>>,
    groups: BTreeMap<String, LoadedGroup>,
}

/// One configured policy, loaded or not.
struct LoadedPolicy {
    config: PolicyConfig,
    state: Result<Ready, String>,
}

struct Ready {
    policy: Policy,
    pool: Mutex<Vec<Warm>>,
    /// Evaluations in progress (each on an instance out of the pool).
    busy: AtomicUsize,
    name: String,
    version: String,
}

/// Modules prepared during one load, by their bytes.
#[derive(Default)]
struct Modules(std::collections::HashMap<Vec<u8>, Arc<Prepared>>);

struct LoadedGroup {
    config: GroupConfig,
    expression: Expression,
}

/// How a request was decided, for the response, the logs and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The policy allowed it.
    Allowed,
    /// The policy denied it.
    Denied,
    /// The policy denied it but runs in monitor mode: allowed.
    Monitored,
    /// The policy failed and its failurePolicy denied the request.
    FailedClosed,
    /// The policy failed and its failurePolicy allowed the request.
    FailedOpen,
}

impl Outcome {
    /// The label used in metrics and logs.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::Monitored => "monitored",
            Self::FailedClosed => "failed-closed",
            Self::FailedOpen => "failed-open",
        }
    }
}

/// The answer to one request.
#[derive(Debug, Clone)]
pub struct Decision {
    /// What to send back.
    pub verdict: Verdict,
    /// How it came about.
    pub outcome: Outcome,
    /// The mode of the policy or group.
    pub mode: Mode,
    /// The kind of each error that happened (`trap`, `timeout`, `load`, ...).
    pub errors: Vec<&'static str>,
    /// The policies that started an instance for this request.
    pub started: Vec<String>,
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
}

impl PolicySet {
    /// Loads every policy of `config` (failures are recorded, not returned) and its groups.
    #[must_use]
    pub fn load(config: &Config, engine: &Engine) -> Self {
        // Policies sharing a module (same bytes) share one compiled, pre-instantiated copy.
        let mut modules = Modules::default();
        let policies = config
            .policies
            .iter()
            .map(|p| {
                (
                    p.id.clone(),
                    Arc::new(LoadedPolicy::load(p, engine, &mut modules)),
                )
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
        let policies = self.policies.values().map(|p| p.status());
        let groups = self.groups.values().map(|g| Status {
            id: g.config.id.clone(),
            kind: "group",
            status: "loaded",
            error: None,
            module: None,
            digest: None,
            policy: None,
            mode: mode_label(g.config.mode),
            failure_policy: None,
            expression: Some(g.config.expression.clone()),
        });
        policies.chain(groups).collect()
    }

    /// The instances of every loaded policy.
    #[must_use]
    pub fn instances(&self) -> Vec<Instances> {
        self.policies
            .iter()
            .filter_map(|(id, p)| {
                let ready = p.state.as_ref().ok()?;
                let idle = ready
                    .pool
                    .lock()
                    .map_or(0, |pool| pool.iter().filter(|w| w.is_live()).count());
                Some(Instances {
                    policy: id.clone(),
                    idle,
                    busy: ready.busy.load(Ordering::Relaxed),
                })
            })
            .collect()
    }

    /// What each policy and group wants to see: `(id, rules, mutating)`; a group's rules are
    /// its members' rules together. Policies that did not load are left out.
    #[must_use]
    pub fn webhook_rules(&self) -> Vec<(String, Vec<Rule>, bool)> {
        let mut out: Vec<(String, Vec<Rule>, bool)> = self
            .policies
            .iter()
            .filter_map(|(id, p)| {
                p.state.as_ref().ok().map(|r| {
                    let metadata = r.policy.prepared().metadata();
                    (id.clone(), metadata.rules.clone(), metadata.mutating)
                })
            })
            .collect();
        for (id, group) in &self.groups {
            let mut rules: Vec<Rule> = Vec::new();
            for member in group.expression.members() {
                if let Some(Ok(ready)) = self.policies.get(&member).map(|p| p.state.as_ref()) {
                    for rule in &ready.policy.prepared().metadata().rules {
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

    /// Decides `request` with the policy or group `id`; `None` when there is no such id.
    /// `mutating` keeps the policy's patch (validating webhooks must not return one).
    pub async fn decide(
        &self,
        id: &str,
        request: &AdmissionRequest,
        mutating: bool,
    ) -> Option<Decision> {
        if let Some(policy) = self.policies.get(id) {
            let mut decision = policy.decide(request).await;
            if !mutating {
                decision.verdict.patch = None;
            }
            return Some(decision);
        }
        let group = self.groups.get(id)?;
        Some(self.decide_group(group, request).await)
    }

    async fn decide_group(&self, group: &LoadedGroup, request: &AdmissionRequest) -> Decision {
        let mut members = BTreeMap::new();
        let mut errors = Vec::new();
        let mut started = Vec::new();
        for id in group.expression.members() {
            if let Some(policy) = self.policies.get(&id) {
                // A member's own failurePolicy decides what its failure counts as; its mode
                // does not matter inside a group: the group's mode does.
                let decision = policy.decide_enforced(request).await;
                errors.extend(decision.errors.iter().copied());
                started.extend(decision.started.iter().cloned());
                members.insert(id, decision);
            }
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
        let outcome = if allowed {
            Outcome::Allowed
        } else {
            Outcome::Denied
        };
        apply_mode(
            Decision {
                verdict,
                outcome,
                mode: group.config.mode,
                errors,
                started,
            },
            &group.config.id,
        )
    }
}

impl LoadedPolicy {
    fn load(config: &PolicyConfig, engine: &Engine, modules: &mut Modules) -> Self {
        let state = Self::prepare(config, engine, modules).map_err(|e| {
            let message = format!("{e:#}");
            tracing::error!(policy = %config.id, module = %config.module.display(), error = %message, "policy failed to load");
            message
        });
        Self {
            config: config.clone(),
            state,
        }
    }

    fn prepare(
        config: &PolicyConfig,
        engine: &Engine,
        modules: &mut Modules,
    ) -> anyhow::Result<Ready> {
        use anyhow::Context;
        let bytes = std::fs::read(&config.module)
            .with_context(|| format!("reading {}", config.module.display()))?;
        let prepared = match modules.0.get(&bytes) {
            Some(prepared) => Arc::clone(prepared),
            None => {
                let prepared = Arc::new(
                    Prepared::new(engine, &bytes)
                        .with_context(|| format!("loading {}", config.module.display()))?,
                );
                modules.0.insert(bytes, Arc::clone(&prepared));
                prepared
            }
        };
        let limits = Limits {
            timeout: config.timeout,
            memory: config.memory_mib << 20,
        };
        let settings = config.settings.to_string();
        let settings = if config.settings.is_null() {
            String::new()
        } else {
            settings
        };
        let policy = prepared
            .configure(&settings, Some(limits))
            .context("configuring")?;
        let metadata = prepared.metadata();
        tracing::info!(policy = %config.id, name = %metadata.name, version = %metadata.version, digest = %prepared.digest(), "policy loaded");
        Ok(Ready {
            name: metadata.name.clone(),
            version: metadata.version.clone(),
            policy,
            pool: Mutex::new(Vec::new()),
            busy: AtomicUsize::new(0),
        })
    }

    fn status(&self) -> Status {
        let (status, error, digest, policy) = match &self.state {
            Ok(ready) => (
                "loaded",
                None,
                Some(ready.policy.prepared().digest().to_owned()),
                Some(format!("{} {}", ready.name, ready.version)),
            ),
            Err(e) => ("error", Some(e.clone()), None, None),
        };
        Status {
            id: self.config.id.clone(),
            kind: "policy",
            status,
            error,
            module: Some(self.config.module.display().to_string()),
            digest,
            policy,
            mode: mode_label(self.config.mode),
            failure_policy: Some(match self.config.failure_policy {
                FailurePolicy::Fail => "Fail",
                FailurePolicy::Ignore => "Ignore",
            }),
            expression: None,
        }
    }

    /// The decision with mode and failurePolicy applied.
    async fn decide(&self, request: &AdmissionRequest) -> Decision {
        apply_mode(self.decide_enforced(request).await, &self.config.id)
    }

    /// The decision with the failurePolicy applied, as if in protect mode.
    async fn decide_enforced(&self, request: &AdmissionRequest) -> Decision {
        let (result, started) = match &self.state {
            Ok(ready) => {
                let (result, started) = ready.evaluate(request).await;
                (result.map_err(|e| (e.kind(), e.to_string())), started)
            }
            Err(load) => (
                Err(("load", format!("the policy is not loaded: {load}"))),
                false,
            ),
        };
        let started = if started {
            vec![self.config.id.clone()]
        } else {
            Vec::new()
        };
        let mode = self.config.mode;
        match result {
            Ok(verdict) => {
                let outcome = if verdict.allowed {
                    Outcome::Allowed
                } else {
                    Outcome::Denied
                };
                Decision {
                    verdict,
                    outcome,
                    mode,
                    errors: Vec::new(),
                    started,
                }
            }
            Err((kind, error)) => {
                let id = &self.config.id;
                tracing::error!(policy = %id, uid = %request.uid, kind, error = %error, "policy failed");
                match self.config.failure_policy {
                    FailurePolicy::Fail => Decision {
                        verdict: Verdict::deny("policy-error", format!("policy {id} failed ({kind}): {error}; failurePolicy Fail denies the request"))
                            .with_code(500),
                        outcome: Outcome::FailedClosed,
                        mode,
                        errors: vec![kind],
                        started,
                    },
                    FailurePolicy::Ignore => Decision {
                        verdict: Verdict::allow().with_warning(format!(
                            "policy {id} failed ({kind}): {error}; failurePolicy Ignore allows the request"
                        )),
                        outcome: Outcome::FailedOpen,
                        mode,
                        errors: vec![kind],
                        started,
                    },
                }
            }
        }
    }
}

impl Ready {
    /// Evaluates on a pooled warm instance (one is started when the pool is empty). The
    /// instance is out of the pool while the evaluation runs, so a request dropped midway
    /// (client gone, timeout) drops its instance with it.
    /// Also says whether the evaluation started an instance.
    async fn evaluate(&self, request: &AdmissionRequest) -> (Result<Verdict, EvalError>, bool) {
        let taken = self.pool.lock().ok().and_then(|mut pool| pool.pop());
        let mut warm = taken.unwrap_or_else(|| self.policy.warm());
        let started = !warm.is_live();
        let busy = Busy::enter(&self.busy);
        let result = warm.evaluate_async(request).await;
        drop(busy);
        if let Ok(mut pool) = self.pool.lock() {
            pool.push(warm);
        }
        (result, started)
    }
}

/// Counts one evaluation in progress, until dropped (also when the request is dropped midway).
struct Busy<'a>(&'a AtomicUsize);

impl<'a> Busy<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Monitor mode: a denial is allowed, logged and marked in the audit annotations.
fn apply_mode(mut decision: Decision, id: &str) -> Decision {
    if decision.mode == Mode::Monitor && !decision.verdict.allowed {
        tracing::warn!(policy = %id, reason = %decision.verdict.reason, message = %decision.verdict.message, "monitor mode: would have denied");
        let denied = std::mem::replace(&mut decision.verdict, Verdict::allow());
        decision.verdict.warnings = denied.warnings;
        decision.verdict.audit_annotations = denied.audit_annotations;
        decision.verdict.audit_annotations.insert(
            format!("{id}.monitor-denied"),
            format!("{}: {}", denied.reason, denied.message),
        );
        decision.outcome = if decision.outcome == Outcome::FailedClosed {
            Outcome::FailedOpen
        } else {
            Outcome::Monitored
        };
    }
    decision
}

fn mode_label(mode: Mode) -> &'static str {
    match mode {
        Mode::Protect => "protect",
        Mode::Monitor => "monitor",
    }
}
