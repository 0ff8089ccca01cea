//! Palisade's Kubernetes admission webhook: configuration, the loaded policy set, the router
//! and metrics. Never names a wasmtime type: policies are reached through `palisade-runtime`.

pub mod config;
mod expression;
pub mod manifests;
mod metrics;
mod policy_set;
mod router;
mod serve;

use std::sync::Arc;

use arc_swap::ArcSwap;
use palisade_runtime::capabilities::Capabilities;

pub use config::{CapabilitiesConfig, Config, ConfigError, StateConfig};
pub use expression::Expression;
pub use metrics::Metrics;
pub use palisade_runtime::admission::{Decision, Outcome};
pub use policy_set::{Instances, PolicySet, Status};
pub use router::{ApiError, router};
pub use serve::{ServeOptions, Server, serve};

/// What every request handler shares: the current policy set (swapped whole on reload), the
/// host capabilities every policy set is given (so shared state outlives reloads), metrics and
/// server limits.
pub struct AppState {
    set: ArcSwap<PolicySet>,
    /// What policies may ask of the host; built once, kept across reloads.
    pub capabilities: Arc<Capabilities>,
    /// The metrics registry.
    pub metrics: Metrics,
    /// Input limits of the current configuration.
    pub limits: config::ServerLimits,
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
            capabilities,
            metrics,
            limits,
            strict_ready,
        }
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
