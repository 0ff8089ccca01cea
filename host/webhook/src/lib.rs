//! Palisade's Kubernetes admission webhook: configuration, the loaded policy set, the router
//! and metrics. Never names a wasmtime type: policies are reached through `palisade-runtime`.

pub mod buckets;
pub mod config;
mod expression;
pub mod kubewarden;
pub mod manifests;
mod metrics;
mod policy_set;
pub mod registry;
mod router;
mod serve;

use std::sync::Arc;

use arc_swap::ArcSwap;
use palisade_runtime::capabilities::Capabilities;

pub use config::{
    CapabilitiesConfig, Config, ConfigError, RateLimitConfig, RedisConfig, StateConfig,
};
pub use expression::Expression;
pub use metrics::Metrics;
pub use palisade_runtime::admission::{Decision, Outcome};
pub use policy_set::{Endpoint, Instances, PolicySet, Status};
pub use router::{ApiError, probes_router, router};
pub use serve::{ServeOptions, Server, serve};

/// What every request handler shares: the current policy set and limits (each swapped whole
/// on reload), the evaluation slots, the host capabilities every policy set is given (so shared
/// state outlives reloads), and metrics.
pub struct AppState {
    set: ArcSwap<PolicySet>,
    limits: ArcSwap<config::ServerLimits>,
    /// `limits.maxConcurrency` evaluation slots; a new semaphore when the limit changes
    /// (evaluations in progress keep the slots they hold of the old one).
    slots: ArcSwap<tokio::sync::Semaphore>,
    /// What policies may ask of the host; built once, kept across reloads.
    pub capabilities: Arc<Capabilities>,
    /// The metrics registry.
    pub metrics: Metrics,
    /// Ready only when every policy loaded.
    pub strict_ready: bool,
}

impl AppState {
    /// State serving `set`, whose policies were given `capabilities`.
    #[must_use]
    pub fn new(
        set: PolicySet,
        capabilities: Arc<Capabilities>,
        limits: config::ServerLimits,
        strict_ready: bool,
    ) -> Self {
        let metrics = Metrics::default();
        metrics.policies_failed.set(
            set.statuses()
                .iter()
                .filter(|s| s.status == "error")
                .count() as i64,
        );
        Self {
            set: ArcSwap::from_pointee(set),
            slots: ArcSwap::from_pointee(tokio::sync::Semaphore::new(limits.max_concurrency)),
            limits: ArcSwap::from_pointee(limits),
            capabilities,
            metrics,
            strict_ready,
        }
    }

    /// The limits now in force.
    #[must_use]
    pub fn limits(&self) -> Arc<config::ServerLimits> {
        self.limits.load_full()
    }

    /// The evaluation slots now in force.
    pub(crate) fn slots(&self) -> Arc<tokio::sync::Semaphore> {
        self.slots.load_full()
    }

    /// Applies new limits (a reload): requests and connections already in progress finish
    /// under the ones they started with.
    pub fn replace_limits(&self, limits: config::ServerLimits) {
        if limits.max_concurrency != self.limits.load().max_concurrency {
            self.slots.store(Arc::new(tokio::sync::Semaphore::new(
                limits.max_concurrency,
            )));
        }
        self.limits.store(Arc::new(limits));
    }

    /// The current policy set.
    #[must_use]
    pub fn policies(&self) -> Arc<PolicySet> {
        self.set.load_full()
    }

    /// Replaces the policy set; requests in flight finish on the set they started with.
    pub fn replace(&self, set: PolicySet) {
        self.metrics.policies_failed.set(
            set.statuses()
                .iter()
                .filter(|s| s.status == "error")
                .count() as i64,
        );
        self.set.store(Arc::new(set));
        self.metrics.reloads.inc();
    }
}
