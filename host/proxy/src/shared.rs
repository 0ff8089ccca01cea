//! What Envoy keeps per process rather than per VM: shared data with CAS and shared queues
//! (keyed by vm_id, seen by every worker's VM), stats, logs and the virtual clock. One per
//! emulated proxy, never global, so tests run in parallel.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::Serialize;

use super::types::{LogLevel, MetricType, Status};

/// A log line written by the plugin (`proxy_log`, or WASI stdout/stderr).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    /// Which VM wrote it: `canary`, `base`, `worker-0`, ...
    pub vm: String,
    /// Level as the plugin gave it.
    pub level: LogLevel,
    /// The text.
    pub message: String,
}

/// A stat as `/stats` would show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metric {
    /// Counter, gauge or histogram.
    #[serde(rename = "type")]
    pub kind: MetricType,
    /// Counter or gauge value (0 for histograms).
    pub value: i64,
    /// Histogram samples in recording order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<u64>,
}

/// A value in shared data with its CAS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SharedValue {
    /// The bytes, as text when they are UTF-8.
    pub value: String,
    /// The CAS Envoy would hand out with it.
    pub cas: u32,
}

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Vec<u8>>,
    /// The worker VM whose root context registered the queue last (it gets `on_queue_ready`).
    owner: usize,
    /// That root context's id.
    root: u32,
}

/// A `proxy_on_queue_ready` the dispatcher owes a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueNotice {
    pub(crate) vm: usize,
    pub(crate) root: u32,
    pub(crate) token: u32,
}

#[derive(Debug, Default)]
struct Inner {
    data: HashMap<(String, Vec<u8>), (Vec<u8>, u32)>,
    next_cas: u32,
    queue_tokens: HashMap<(String, Vec<u8>), u32>,
    queues: BTreeMap<u32, Queue>,
    notices: Vec<QueueNotice>,
    metrics: BTreeMap<String, Metric>,
    logs: Vec<LogLine>,
    trace: Vec<String>,
    now_nanos: u64,
}

/// The process-wide state of one emulated proxy.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while holding the lock; recover the data if a test thread did.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `proxy_get_shared_data`: the value and its CAS, or NOT_FOUND.
    pub(crate) fn get(&self, vm_id: &str, key: &[u8]) -> Result<(Vec<u8>, u32), Status> {
        self.lock()
            .data
            .get(&(vm_id.to_owned(), key.to_vec()))
            .cloned()
            .ok_or(Status::NotFound)
    }

    /// `proxy_set_shared_data` with cpp-host's rules: CAS 0 writes unconditionally; a non-zero
    /// CAS must match the stored one when the key exists (a missing key is created); every write
    /// takes a fresh process-wide CAS that skips 0.
    pub(crate) fn set(&self, vm_id: &str, key: &[u8], value: Vec<u8>, cas: u32) -> Status {
        let mut inner = self.lock();
        let slot = (vm_id.to_owned(), key.to_vec());
        if cas != 0
            && let Some((_, current)) = inner.data.get(&slot)
            && *current != cas
        {
            return Status::CasMismatch;
        }
        inner.next_cas = inner.next_cas.wrapping_add(1);
        if inner.next_cas == 0 {
            inner.next_cas = 1;
        }
        let fresh = inner.next_cas;
        inner.data.insert(slot, (value, fresh));
        Status::Ok
    }

    /// `proxy_register_shared_queue`: the same token for the same (vm_id, name); the caller's
    /// root context becomes the receiver (the most recent registrant wins).
    pub(crate) fn register_queue(&self, vm_id: &str, name: &[u8], vm: usize, root: u32) -> u32 {
        let mut inner = self.lock();
        let slot = (vm_id.to_owned(), name.to_vec());
        let next = u32::try_from(inner.queue_tokens.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        let token = *inner.queue_tokens.entry(slot).or_insert(next);
        let queue = inner.queues.entry(token).or_default();
        queue.owner = vm;
        queue.root = root;
        token
    }

    /// `proxy_resolve_shared_queue`.
    pub(crate) fn resolve_queue(&self, vm_id: &str, name: &[u8]) -> Result<u32, Status> {
        self.lock()
            .queue_tokens
            .get(&(vm_id.to_owned(), name.to_vec()))
            .copied()
            .ok_or(Status::NotFound)
    }

    /// `proxy_enqueue_shared_queue`: appends and owes the receiver one `on_queue_ready`.
    pub(crate) fn enqueue(&self, token: u32, item: Vec<u8>) -> Status {
        let mut inner = self.lock();
        let Some(queue) = inner.queues.get_mut(&token) else {
            return Status::NotFound;
        };
        queue.items.push_back(item);
        let notice = QueueNotice {
            vm: queue.owner,
            root: queue.root,
            token,
        };
        inner.notices.push(notice);
        Status::Ok
    }

    /// `proxy_dequeue_shared_queue`: EMPTY when nothing is queued.
    pub(crate) fn dequeue(&self, token: u32) -> Result<Vec<u8>, Status> {
        let mut inner = self.lock();
        let queue = inner.queues.get_mut(&token).ok_or(Status::NotFound)?;
        queue.items.pop_front().ok_or(Status::Empty)
    }

    /// The queue notifications owed so far, oldest first.
    pub(crate) fn take_notices(&self) -> Vec<QueueNotice> {
        std::mem::take(&mut self.lock().notices)
    }

    /// `proxy_define_metric`: defining an existing name returns the same stat (Envoy's stats
    /// scope deduplicates by name); the first definition's type is the one reported.
    pub(crate) fn define_metric(&self, name: &str, kind: MetricType) {
        self.lock()
            .metrics
            .entry(name.to_owned())
            .or_insert(Metric {
                kind,
                value: 0,
                samples: Vec::new(),
            });
    }

    /// Adds to a counter or gauge (a negative `delta` subtracts); which calls may do so is the
    /// hostcall's business (see `hostcalls/metrics.rs`).
    pub(crate) fn add_to_metric(&self, name: &str, delta: i64) {
        if let Some(metric) = self.lock().metrics.get_mut(name) {
            metric.value = metric.value.saturating_add(delta);
        }
    }

    /// Sets a gauge.
    pub(crate) fn set_metric(&self, name: &str, value: u64) {
        if let Some(metric) = self.lock().metrics.get_mut(name) {
            metric.value = i64::try_from(value).unwrap_or(i64::MAX);
        }
    }

    /// Records a histogram sample.
    pub(crate) fn record_sample(&self, name: &str, value: u64) {
        if let Some(metric) = self.lock().metrics.get_mut(name) {
            metric.samples.push(value);
        }
    }

    /// A counter's or gauge's value as `proxy_get_metric` writes it (a u64).
    pub(crate) fn metric_value(&self, name: &str) -> u64 {
        self.lock()
            .metrics
            .get(name)
            .map_or(0, |metric| metric.value.cast_unsigned())
    }

    /// Appends a plugin log line.
    pub(crate) fn log(&self, line: LogLine) {
        self.lock().logs.push(line);
    }

    /// The most recent line `vm` wrote at `level`.
    pub(crate) fn last_log(&self, vm: &str, level: LogLevel) -> Option<String> {
        self.lock()
            .logs
            .iter()
            .rev()
            .find(|l| l.vm == vm && l.level == level)
            .map(|l| l.message.clone())
    }

    /// Appends a trace line (`--trace`).
    pub(crate) fn trace(&self, line: String) {
        self.lock().trace.push(line);
    }

    /// Takes the trace lines written so far.
    pub(crate) fn take_trace(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().trace)
    }

    /// Takes the log lines written so far.
    pub(crate) fn take_logs(&self) -> Vec<LogLine> {
        std::mem::take(&mut self.lock().logs)
    }

    /// The virtual clock, nanoseconds since the scenario started.
    pub(crate) fn now(&self) -> u64 {
        self.lock().now_nanos
    }

    /// Moves the virtual clock to `nanos` (never backwards).
    pub(crate) fn set_now(&self, nanos: u64) {
        let mut inner = self.lock();
        inner.now_nanos = inner.now_nanos.max(nanos);
    }

    /// Every stat, by name.
    pub(crate) fn metrics(&self) -> BTreeMap<String, Metric> {
        self.lock().metrics.clone()
    }

    /// Shared data, by `vm_id` then key (keys and values shown as text where they are UTF-8).
    pub(crate) fn data(&self) -> BTreeMap<String, SharedValue> {
        self.lock()
            .data
            .iter()
            .map(|((vm_id, key), (value, cas))| {
                let key = String::from_utf8_lossy(key);
                let name = if vm_id.is_empty() {
                    key.into_owned()
                } else {
                    format!("{vm_id}/{key}")
                };
                (
                    name,
                    SharedValue {
                        value: String::from_utf8_lossy(value).into_owned(),
                        cas: *cas,
                    },
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn cas_follows_cpp_host() {
        let shared = Shared::default();
        assert_eq!(shared.get("", b"k"), Err(Status::NotFound));
        // A non-zero CAS on a missing key creates it.
        assert_eq!(shared.set("", b"k", b"1".to_vec(), 77), Status::Ok);
        let (_, cas) = shared.get("", b"k").unwrap();
        assert_eq!(shared.set("", b"k", b"2".to_vec(), cas), Status::Ok);
        // The old CAS is now stale.
        assert_eq!(
            shared.set("", b"k", b"3".to_vec(), cas),
            Status::CasMismatch
        );
        assert_eq!(shared.set("", b"k", b"4".to_vec(), 0), Status::Ok);
        assert_eq!(shared.get("", b"k").unwrap().0, b"4");
        // vm_ids are separate namespaces.
        assert_eq!(shared.get("other", b"k"), Err(Status::NotFound));
    }

    #[test]
    fn stats_are_kept_by_name() {
        let shared = Shared::default();
        shared.define_metric("c", MetricType::Counter);
        shared.define_metric("c", MetricType::Counter);
        shared.define_metric("g", MetricType::Gauge);
        shared.define_metric("h", MetricType::Histogram);
        shared.add_to_metric("c", 2);
        shared.add_to_metric("c", 3);
        assert_eq!(shared.metric_value("c"), 5);
        shared.add_to_metric("g", -4);
        assert_eq!(shared.metric_value("g"), (-4i64).cast_unsigned());
        shared.set_metric("g", 9);
        assert_eq!(shared.metric_value("g"), 9);
        shared.record_sample("h", 7);
        let metrics = shared.metrics();
        assert_eq!(metrics.len(), 3);
        assert_eq!(metrics.get("h").map(|h| h.samples.clone()), Some(vec![7]));
        assert_eq!(shared.metric_value("missing"), 0);
    }

    #[test]
    fn queues_notify_the_last_registrant() {
        let shared = Shared::default();
        let a = shared.register_queue("", b"q", 0, 1);
        let b = shared.register_queue("", b"q", 1, 1);
        assert_eq!(a, b);
        assert_eq!(shared.resolve_queue("", b"q"), Ok(a));
        assert_eq!(shared.resolve_queue("", b"nope"), Err(Status::NotFound));
        assert_eq!(shared.enqueue(a, b"x".to_vec()), Status::Ok);
        assert_eq!(
            shared.take_notices(),
            vec![QueueNotice {
                vm: 1,
                root: 1,
                token: a
            }]
        );
        assert_eq!(shared.dequeue(a).unwrap(), b"x");
        assert_eq!(shared.dequeue(a), Err(Status::Empty));
        assert_eq!(shared.enqueue(99, Vec::new()), Status::NotFound);
    }
}
