//! Prometheus metrics of the webhook, in the text exposition format at `/metrics`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of a decided request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Policy or group id.
    pub policy: String,
    /// allowed, denied, monitored, failed-closed, failed-open.
    pub decision: &'static str,
    /// protect or monitor.
    pub mode: &'static str,
    /// validate or mutate.
    pub endpoint: &'static str,
}

/// Labels of a policy error.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Policy id.
    pub policy: String,
    /// trap, timeout, memory-limit, bad-output, load, ...
    pub kind: &'static str,
}

/// Labels naming a policy.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabels {
    /// Policy or group id.
    pub policy: String,
}

/// Labels of the instance gauge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InstanceLabels {
    /// Policy id.
    pub policy: String,
    /// idle (pooled, ready) or busy (evaluating).
    pub state: &'static str,
}

/// Every metric the webhook exports.
pub struct Metrics {
    registry: Registry,
    /// Requests by policy, decision, mode and endpoint.
    pub requests: Family<RequestLabels, Counter>,
    /// Evaluation latency by policy, in seconds.
    pub latency: Family<PolicyLabels, Histogram>,
    /// Policy errors by policy and kind.
    pub errors: Family<ErrorLabels, Counter>,
    /// Rejected inputs (malformed reviews, unknown policies) by HTTP status.
    pub rejected: Family<StatusLabels, Counter>,
    /// Successful configuration reloads.
    pub reloads: Counter,
    /// Failed configuration reloads (the previous configuration stays).
    pub reload_failures: Counter,
    /// Policies that failed to load in the current configuration.
    pub policies_failed: Gauge,
    /// Live policy instances by policy and state, refreshed from the policy set at every scrape.
    pub instances: Family<InstanceLabels, Gauge>,
    /// Instances started by policy, counted as the request that started one is decided: first
    /// uses, concurrency beyond the pool, and replacements of instances dropped after a failure.
    pub instance_starts: Family<PolicyLabels, Counter>,
    /// Seconds each policy spent starting instances and evaluating.
    pub policy_busy: Family<PolicyLabels, Counter<f64, AtomicU64>>,
    /// Seconds requests waited for a turn of each policy (its `maxConcurrency`).
    pub policy_waits: Family<PolicyLabels, Counter<f64, AtomicU64>>,
    /// Connections the listener failed to accept (out of file descriptors, most often).
    pub accept_errors: Counter,
    /// Connections closed as they arrived: over `maxConnections` or `maxConnectionsPerClient`.
    pub rejected_connections: Counter,
}

/// Labels of a rejected request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    /// The HTTP status code.
    pub status: u16,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("palisade");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<PolicyLabels, Histogram>::new_with_constructor(|| {
            // 25 µs to ~3 s.
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.000_025, 2.0, 17,
            ))
        });
        let errors = Family::<ErrorLabels, Counter>::default();
        let rejected = Family::<StatusLabels, Counter>::default();
        let reloads = Counter::default();
        let reload_failures = Counter::default();
        let policies_failed = Gauge::default();
        let instances = Family::<InstanceLabels, Gauge>::default();
        let instance_starts = Family::<PolicyLabels, Counter>::default();
        let accept_errors = Counter::default();
        let rejected_connections = Counter::default();
        let policy_busy = Family::<PolicyLabels, Counter<f64, AtomicU64>>::default();
        let policy_waits = Family::<PolicyLabels, Counter<f64, AtomicU64>>::default();
        registry.register(
            "policy_busy_seconds",
            "Time each policy spent starting instances and evaluating",
            policy_busy.clone(),
        );
        registry.register(
            "policy_wait_seconds",
            "Time requests waited for a turn of each policy (maxConcurrency)",
            policy_waits.clone(),
        );
        registry.register(
            "admission_requests",
            "Admission requests decided",
            requests.clone(),
        );
        registry.register(
            "evaluation_seconds",
            "Policy evaluation time",
            latency.clone(),
        );
        registry.register("policy_errors", "Policy errors by kind", errors.clone());
        registry.register(
            "rejected_requests",
            "Requests rejected before evaluation",
            rejected.clone(),
        );
        registry.register(
            "config_reloads",
            "Successful configuration reloads",
            reloads.clone(),
        );
        registry.register(
            "config_reload_failures",
            "Failed configuration reloads",
            reload_failures.clone(),
        );
        registry.register(
            "policies_failed",
            "Policies that failed to load",
            policies_failed.clone(),
        );
        registry.register(
            "policy_instances",
            "Live policy instances (idle in the pool, or busy evaluating)",
            instances.clone(),
        );
        registry.register(
            "policy_instance_starts",
            "Policy instances started",
            instance_starts.clone(),
        );
        registry.register(
            "accept_errors",
            "Connections the listener failed to accept",
            accept_errors.clone(),
        );
        registry.register(
            "rejected_connections",
            "Connections closed as they arrived, over the connection limits",
            rejected_connections.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            errors,
            rejected,
            reloads,
            reload_failures,
            policies_failed,
            instances,
            instance_starts,
            accept_errors,
            policy_busy,
            policy_waits,
            rejected_connections,
        }
    }
}

impl Metrics {
    /// The text exposition of every metric.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
