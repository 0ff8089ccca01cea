//! The emulated proxy: one Envoy process running one plugin, deterministic (one thread, events
//! by virtual time then arrival). [`run`] starts the plugin (`lifecycle`), plays the steps
//! (`stages`, `events`, `callouts`, `failure`) and tears the plugin down.

mod callouts;
mod events;
mod failure;
mod lifecycle;
mod stages;

use std::collections::BTreeMap;
use std::sync::Arc;

use palisade_runtime::Limits;
// An error and its sources, joined by `": "`, as the report shows them.
use palisade_runtime::chain as describe;

use crate::properties::{Connection, PluginIdentity};
use crate::scenario::{
    CalloutReply, FailStrategy, Report, RequestReport, Scenario, Step, configuration_bytes,
};
use crate::shared::Shared;
use crate::state::PluginInfo;
use crate::stream::Stream;
use crate::vm::{Filter, Vm};

use events::Event;

/// Wall-clock time at virtual time 0: 2026-01-01T00:00:00Z.
const EPOCH_NANOS: u64 = 1_767_225_600_000_000_000;

/// How to run a scenario.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Limits of every callback.
    pub limits: Limits,
    /// Record every hostcall and callback.
    pub trace: bool,
}

/// Runs a scenario through the filter as Envoy would and reports what happened, with the trace
/// lines when [`RunOptions::trace`] is on.
#[must_use]
pub fn run(filter: &Filter, scenario: &Scenario, options: RunOptions) -> (Report, Vec<String>) {
    let mut proxy = Proxy::new(filter, scenario, options);
    proxy.start();
    if proxy.report.accepted {
        let mut round_robin = 0usize;
        for step in &scenario.steps {
            match step {
                Step::Advance { advance } => proxy.advance(*advance),
                Step::Request(exchange) => {
                    let workers = proxy.workers.len().max(1);
                    let worker = exchange
                        .worker
                        .unwrap_or(round_robin % workers)
                        .min(workers - 1);
                    round_robin = round_robin.wrapping_add(1);
                    proxy.request(exchange, worker);
                    proxy.drain(proxy.shared.now());
                }
            }
        }
        proxy.finish();
    }
    proxy.into_report()
}

/// One worker thread (Envoy's `--concurrency`): its VM and the VM's tick timer.
struct Worker {
    vm: Vm,
    /// Counts the VMs the worker has had, so that events of a replaced VM are dropped.
    generation: u64,
    label: String,
    /// The tick period the VM asked for, in nanoseconds (0: no timer).
    tick_period: u64,
    next_tick: Option<u64>,
    /// Whether a tick event for this VM is queued.
    tick_queued: bool,
    /// When the VM failed (the FAIL_RELOAD backoff counts from there).
    failed_at: Option<u64>,
}

/// A stream: the worker whose VM it runs on and its context id in that VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StreamKey {
    worker: usize,
    context: u32,
}

/// The emulated Envoy process.
struct Proxy<'a> {
    filter: &'a Filter,
    plugin: Arc<PluginInfo>,
    shared: Arc<Shared>,
    options: RunOptions,
    fail: FailStrategy,
    /// How many workers the plugin runs on.
    concurrency: usize,
    /// The workers started so far, by index.
    workers: Vec<Worker>,
    /// The scenario's clusters, and how many answers each has given.
    clusters: BTreeMap<String, Vec<CalloutReply>>,
    cursor: BTreeMap<String, usize>,
    /// Events by (virtual time, arrival).
    events: BTreeMap<(u64, u64), Event>,
    seq: u64,
    /// Each request step's report, filed when its stream completes or the scenario ends.
    requests: Vec<Option<RequestReport>>,
    report: Report,
    /// The connections steps named (as written, as the proxy knows them), other than the
    /// scenario's.
    connections: Vec<(Connection, Arc<Connection>)>,
}

impl<'a> Proxy<'a> {
    fn new(filter: &'a Filter, scenario: &Scenario, options: RunOptions) -> Self {
        let p = &scenario.plugin;
        let plugin = Arc::new(PluginInfo {
            identity: PluginIdentity {
                name: p.name.clone(),
                root_id: p.root_id.clone(),
                vm_id: p.vm_id.clone(),
            },
            vm_configuration: configuration_bytes(p.vm_configuration.as_ref()),
            plugin_configuration: configuration_bytes(p.configuration.as_ref()),
            environment: p.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            node: scenario.node.clone(),
            connection: scenario.connection.clone(),
            clusters: scenario.clusters.keys().cloned().collect(),
            log_level: p.log_level,
            epoch_nanos: EPOCH_NANOS,
        });
        Self {
            filter,
            plugin,
            shared: Arc::new(Shared::default()),
            options,
            fail: p.fail_strategy,
            concurrency: p.workers.max(1),
            workers: Vec::new(),
            clusters: scenario.clusters.clone(),
            cursor: BTreeMap::new(),
            events: BTreeMap::new(),
            seq: 0,
            requests: Vec::new(),
            connections: Vec::new(),
            report: Report {
                accepted: false,
                rejected: None,
                startup: Vec::new(),
                requests: Vec::new(),
                shutdown: Vec::new(),
                failures: Vec::new(),
                logs: Vec::new(),
                metrics: BTreeMap::new(),
                shared_data: BTreeMap::new(),
                callouts: Vec::new(),
            },
        }
    }

    /// The report, with the process-wide state as the run left it, and the trace.
    fn into_report(self) -> (Report, Vec<String>) {
        let trace = self.shared.take_trace();
        let mut report = self.report;
        report.requests = self.requests.into_iter().flatten().collect();
        report.logs = self.shared.take_logs();
        report.metrics = self.shared.metrics();
        report.shared_data = self.shared.data();
        (report, trace)
    }

    /// The VM of `worker` if it is still the one of `generation` and has not failed.
    fn live_vm(&mut self, worker: usize, generation: u64) -> Option<&mut Vm> {
        self.workers
            .get_mut(worker)
            .filter(|w| w.generation == generation)
            .map(|w| &mut w.vm)
            .filter(|vm| !vm.failed())
    }

    /// Which VM `worker` runs now.
    fn generation(&self, worker: usize) -> u64 {
        self.workers
            .get(worker)
            .map(|w| w.generation)
            .unwrap_or_default()
    }

    /// A stream, in the table of its worker's VM.
    fn stream_mut(&mut self, key: StreamKey) -> Option<&mut Stream> {
        self.workers
            .get_mut(key.worker)?
            .vm
            .store
            .data_mut()
            .streams
            .get_mut(&key.context)
    }

    /// The streams of `worker` that are neither completed nor in a callback, in arrival order.
    fn open_streams(&self, worker: usize, include_busy: bool) -> Vec<StreamKey> {
        let Some(w) = self.workers.get(worker) else {
            return Vec::new();
        };
        w.vm.store
            .data()
            .streams
            .iter()
            .filter(|(_, s)| !s.progress.finished && (include_busy || !s.progress.busy))
            .map(|(&context, _)| StreamKey { worker, context })
            .collect()
    }

    /// Files a stream's report in its step's place.
    fn file(&mut self, stream: Stream) {
        let slot = stream.progress.slot;
        if let Some(entry) = self.requests.get_mut(slot) {
            *entry = Some(stream.progress.report);
        }
    }
}
