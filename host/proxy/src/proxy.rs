//! The emulated proxy: Envoy's plugin start (base VM, canary, one VM per worker), HTTP streams
//! driven through the filter in Envoy's callback order, the virtual clock with tick timers and
//! delayed callout answers, shared queues, and the failure policy once a VM has trapped.
//! Deterministic: one thread, events ordered by virtual time then by arrival.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::header_map::HeaderMap;
use super::properties::PluginIdentity;
use super::scenario::{
    CalloutReply, CalloutReport, Delivered, Exchange, FailStrategy, Forwarded, Report,
    RequestReport, Scenario, Step, configuration_bytes,
};
use super::shared::Shared;
use super::state::{CalloutKind, LocalReply, Phase, PluginInfo, Stream, VmState};
use super::types::Action;
use super::vm::{Callback, Filter, Vm};
use palisade_runtime::{EvalError, Limits};

/// Envoy's default FAIL_RELOAD backoff base interval.
const RELOAD_BACKOFF: u64 = 1_000_000_000;
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

/// Runs a scenario through the filter as Envoy would and reports what happened.
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
    let trace = proxy.shared.take_trace();
    let mut report = proxy.report;
    report.logs = proxy.shared.take_logs();
    report.metrics = proxy.shared.metrics();
    report.shared_data = proxy.shared.data();
    (report, trace)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    RequestHeaders,
    RequestBody,
    RequestTrailers,
    Upstream,
    ResponseHeaders,
    ResponseBody,
    ResponseTrailers,
    Complete,
}

/// The response being sent to the client: the upstream's or a local reply.
#[derive(Debug, Clone)]
struct Outgoing {
    status: u16,
    details: String,
    headers: Vec<(String, String)>,
    body: Vec<String>,
    trailers: Option<Vec<(String, String)>>,
}

/// One HTTP stream in flight.
#[derive(Debug)]
struct Flight {
    report: usize,
    worker: usize,
    generation: u64,
    context: u32,
    exchange: Exchange,
    stage: Stage,
    paused: bool,
    buffering: bool,
    coalesce: bool,
    chunk: usize,
    original: HeaderMap,
    forwarded_body: Vec<u8>,
    outgoing: Option<Outgoing>,
    delivered_body: Vec<u8>,
    outcome: Option<&'static str>,
    bypass: bool,
    finished: bool,
    busy: bool,
    hostcalls: u64,
}

struct Worker {
    vm: Option<Vm>,
    generation: u64,
    label: String,
    tick_period: u64,
    next_tick: Option<u64>,
    /// Whether a tick event for this VM is queued.
    tick_queued: bool,
    failed_at: Option<u64>,
}

#[derive(Debug, Clone)]
enum Event {
    Tick {
        worker: usize,
        generation: u64,
    },
    Queue {
        worker: usize,
        root: u32,
        token: u32,
    },
    Callout {
        worker: usize,
        generation: u64,
        token: u32,
        kind: CalloutKind,
        reply: CalloutReply,
        timed_out: bool,
    },
}

struct Proxy<'a> {
    filter: &'a Filter,
    plugin: Arc<PluginInfo>,
    shared: Arc<Shared>,
    options: RunOptions,
    fail: FailStrategy,
    workers: Vec<Worker>,
    clusters: BTreeMap<String, Vec<CalloutReply>>,
    cursor: BTreeMap<String, usize>,
    events: BTreeMap<(u64, u64), Event>,
    seq: u64,
    flights: Vec<Flight>,
    /// Flights not finished yet (what `settle` and failures look at, not every flight ever).
    open: std::collections::BTreeSet<usize>,
    report: Report,
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
            workers: (0..p.workers.max(1))
                .map(|i| Worker {
                    vm: None,
                    generation: 0,
                    label: format!("worker-{i}"),
                    tick_period: 0,
                    next_tick: None,
                    tick_queued: false,
                    failed_at: None,
                })
                .collect(),
            clusters: scenario.clusters.clone(),
            cursor: BTreeMap::new(),
            events: BTreeMap::new(),
            seq: 0,
            flights: Vec::new(),
            open: std::collections::BTreeSet::new(),
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

    fn vm_state(&self, label: &str, index: usize) -> VmState {
        VmState::new(
            label.to_owned(),
            index,
            Arc::clone(&self.plugin),
            Arc::clone(&self.shared),
            self.options.limits.memory,
            self.options.trace,
        )
    }

    fn note_startup(&mut self, vm: &mut Vm) {
        let label = vm.store.data().label.clone();
        for call in std::mem::take(&mut vm.store.data_mut().callback_log) {
            self.report.startup.push(format!("{label}: {call}"));
        }
    }

    /// Starts and configures one VM as cpp-host does for a plugin: root context 1, then
    /// `on_vm_start(root, vm_config_size)` and `on_configure(root, plugin_config_size)`.
    fn configured_vm(&mut self, label: &str, index: usize) -> Result<Vm, String> {
        let state = self.vm_state(label, index);
        let mut vm = Vm::start(self.filter, state, self.options.limits)
            .map_err(|e| format!("{label}: initialising the module failed: {e}"))?;
        let root = vm.store.data_mut().allocate_context();
        vm.store.data_mut().root = root;
        let vm_size = i32::try_from(self.plugin.vm_configuration.len()).unwrap_or(i32::MAX);
        let plugin_size = i32::try_from(self.plugin.plugin_configuration.len()).unwrap_or(i32::MAX);
        let steps = [
            (Callback::ContextCreate, 0, None),
            (Callback::VmStart, vm_size, Some("proxy_on_vm_start")),
            (Callback::Configure, plugin_size, Some("proxy_on_configure")),
        ];
        for (callback, arg, verdict) in steps {
            let result = vm.call(callback, root, &[arg]);
            self.note_startup(&mut vm);
            match result {
                Err(e) => return Err(format!("{label}: {} failed: {e}", callback.name())),
                Ok(Some(0)) if verdict.is_some() => {
                    return Err(format!(
                        "{label}: {} returned false: the plugin rejected its configuration",
                        callback.name()
                    ));
                }
                Ok(_) => {}
            }
        }
        let state = vm.store.data_mut();
        state.phase = Phase::Running;
        state.record_callbacks = false;
        Ok(vm)
    }

    /// Envoy's plugin start: the base VM (initialised only), the canary (started, configured,
    /// thrown away), then one VM per worker.
    fn start(&mut self) {
        match Vm::start(
            self.filter,
            self.vm_state("base", usize::MAX),
            self.options.limits,
        ) {
            Ok(mut base) => self.note_startup(&mut base),
            Err(e) => {
                self.report.rejected = Some(format!("base: initialising the module failed: {e}"));
                return;
            }
        }
        match self.configured_vm("canary", usize::MAX) {
            Ok(canary) => drop(canary),
            Err(reason) => {
                self.report.rejected = Some(reason);
                return;
            }
        }
        for index in 0..self.workers.len() {
            if let Err(reason) = self.start_worker(index) {
                self.report.rejected = Some(reason);
                return;
            }
        }
        self.report.accepted = true;
    }

    fn start_worker(&mut self, index: usize) -> Result<(), String> {
        let label = self
            .workers
            .get(index)
            .map(|w| w.label.clone())
            .unwrap_or_default();
        let vm = self.configured_vm(&label, index)?;
        let now = self.shared.now();
        if let Some(worker) = self.workers.get_mut(index) {
            worker.vm = Some(vm);
            worker.generation = worker.generation.wrapping_add(1);
            worker.failed_at = None;
            worker.tick_period = 0;
            worker.next_tick = None;
            worker.tick_queued = false;
        }
        self.settle(index, now);
        Ok(())
    }

    fn schedule(&mut self, at: u64, event: Event) {
        self.seq = self.seq.wrapping_add(1);
        self.events.insert((at, self.seq), event);
    }

    /// Runs every event due at or before `until`, in order, moving the clock with them.
    fn drain(&mut self, until: u64) {
        while let Some((&(at, seq), _)) = self.events.iter().next() {
            if at > until {
                break;
            }
            let Some(event) = self.events.remove(&(at, seq)) else {
                break;
            };
            self.shared.set_now(at);
            self.dispatch(event);
        }
        self.shared.set_now(until);
    }

    fn advance(&mut self, by: Duration) {
        let until = self
            .shared
            .now()
            .saturating_add(u64::try_from(by.as_nanos()).unwrap_or(u64::MAX));
        self.drain(until);
    }

    fn live_vm(&mut self, worker: usize, generation: u64) -> Option<&mut Vm> {
        self.workers
            .get_mut(worker)
            .filter(|w| w.generation == generation)
            .and_then(|w| w.vm.as_mut())
            .filter(|vm| !vm.failed())
    }

    fn generation(&self, worker: usize) -> u64 {
        self.workers
            .get(worker)
            .map(|w| w.generation)
            .unwrap_or_default()
    }

    fn dispatch(&mut self, event: Event) {
        match event {
            Event::Tick { worker, generation } => {
                if let Some(w) = self.workers.get_mut(worker)
                    && w.generation == generation
                {
                    w.tick_queued = false;
                }
                let Some(vm) = self.live_vm(worker, generation) else {
                    return;
                };
                let root = vm.store.data().root;
                let result = vm.call(Callback::Tick, root, &[]);
                let now = self.shared.now();
                if let Some(w) = self.workers.get_mut(worker) {
                    w.next_tick = None;
                    if w.tick_period > 0 {
                        w.next_tick = Some(now.saturating_add(w.tick_period));
                    }
                }
                self.after(worker, result.err(), now);
            }
            Event::Queue {
                worker,
                root,
                token,
            } => {
                let generation = self.generation(worker);
                let Some(vm) = self.live_vm(worker, generation) else {
                    return;
                };
                let result = vm.call(Callback::QueueReady, root, &[token.cast_signed()]);
                let now = self.shared.now();
                self.after(worker, result.err(), now);
            }
            Event::Callout {
                worker,
                generation,
                token,
                kind,
                reply,
                timed_out,
            } => {
                self.deliver(worker, generation, token, &kind, &reply, timed_out);
            }
        }
    }

    /// Delivers a callout's answer to the root context that owns it.
    fn deliver(
        &mut self,
        worker: usize,
        generation: u64,
        token: u32,
        kind: &CalloutKind,
        reply: &CalloutReply,
        timed_out: bool,
    ) {
        let Some(vm) = self.live_vm(worker, generation) else {
            return;
        };
        let state = vm.store.data_mut();
        let root = state.root;
        let pending = match kind {
            CalloutKind::Http => state.pending.remove(&token),
            CalloutKind::Grpc { .. } => state.pending_grpc.remove(&token),
        };
        if pending.is_none() {
            return;
        }
        let token_arg = token.cast_signed();
        let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        let result = match kind {
            CalloutKind::Http => {
                let (headers, body, trailers, status) = if reply.reset {
                    (None, Vec::new(), None, (11, "reset".to_owned()))
                } else if timed_out {
                    // Envoy's async client turns an expired timeout into a local 504.
                    let mut h = HeaderMap::default();
                    h.add(":status", "504");
                    h.add("content-length", "24");
                    h.add("content-type", "text/plain");
                    (
                        Some(h),
                        b"upstream request timeout".to_vec(),
                        Some(HeaderMap::default()),
                        (0, String::new()),
                    )
                } else {
                    let mut h = HeaderMap::default();
                    h.add(":status", &reply.status.to_string());
                    for (k, v) in &reply.headers.0 {
                        h.add(k, v);
                    }
                    let t = HeaderMap::from_pairs(reply.trailers.0.clone());
                    (
                        Some(h),
                        reply.body.clone().into_bytes(),
                        Some(t),
                        (0, String::new()),
                    )
                };
                let args = [
                    token_arg,
                    count(headers.as_ref().map_or(0, HeaderMap::len)),
                    count(body.len()),
                    count(trailers.as_ref().map_or(0, HeaderMap::len)),
                ];
                state.answer.headers = headers;
                state.answer.trailers = trailers;
                state.answer.body = Some(body);
                state.status = status;
                vm.call(Callback::HttpCallResponse, root, &args)
            }
            CalloutKind::Grpc { .. } => {
                if timed_out || reply.reset || reply.grpc_status != 0 {
                    let (code, message) = if timed_out {
                        (4, "upstream request timeout".to_owned())
                    } else if reply.reset {
                        (
                            14,
                            "upstream connect error or disconnect/reset before headers".to_owned(),
                        )
                    } else {
                        (reply.grpc_status, reply.grpc_message.clone())
                    };
                    state.status = (code, message);
                    vm.call(Callback::GrpcClose, root, &[token_arg, code.cast_signed()])
                } else {
                    state.answer.body = Some(reply.body.clone().into_bytes());
                    state.status = (0, String::new());
                    vm.call(
                        Callback::GrpcReceive,
                        root,
                        &[token_arg, count(reply.body.len())],
                    )
                }
            }
        };
        let state = vm.store.data_mut();
        state.answer = Default::default();
        state.status = (0, String::new());
        let now = self.shared.now();
        self.after(worker, result.err(), now);
    }

    /// After any callback on `worker`: a failure fails the VM and its streams; callouts and
    /// queue notices are scheduled; the tick timer is re-armed; streams the module resumed,
    /// answered or reset move on.
    fn after(&mut self, worker: usize, error: Option<EvalError>, now: u64) {
        if let Some(error) = error {
            self.fail_worker(worker, &error, now);
            return;
        }
        self.settle(worker, now);
    }

    fn settle(&mut self, worker: usize, now: u64) {
        let generation = self.generation(worker);
        let Some(w) = self.workers.get_mut(worker) else {
            return;
        };
        let Some(vm) = w.vm.as_mut() else {
            return;
        };
        let state = vm.store.data_mut();
        let callouts = std::mem::take(&mut state.callouts);
        let period = state.tick_period_ms.saturating_mul(1_000_000);
        if period != w.tick_period {
            w.tick_period = period;
            w.next_tick = (period > 0).then(|| now.saturating_add(period));
        }
        if let Some(at) = w.next_tick
            && !w.tick_queued
        {
            w.tick_queued = true;
            self.schedule(at, Event::Tick { worker, generation });
        }
        for callout in callouts {
            let replies = self
                .clusters
                .get(&callout.cluster)
                .cloned()
                .unwrap_or_default();
            let at = self.cursor.entry(callout.cluster.clone()).or_default();
            let reply = replies
                .get(*at)
                .or_else(|| replies.last())
                .cloned()
                .unwrap_or_else(|| CalloutReply {
                    status: 200,
                    headers: Default::default(),
                    body: String::new(),
                    trailers: Default::default(),
                    grpc_status: 0,
                    grpc_message: String::new(),
                    delay: Duration::ZERO,
                    reset: false,
                });
            *at = at.saturating_add(1);
            let delay = u64::try_from(reply.delay.as_nanos()).unwrap_or(u64::MAX);
            let timeout = callout.timeout_ms.saturating_mul(1_000_000);
            let timed_out = timeout > 0 && delay > timeout;
            let due = now.saturating_add(if timed_out { timeout } else { delay });
            self.report.callouts.push(CalloutReport {
                worker,
                kind: match &callout.kind {
                    CalloutKind::Http => "http".into(),
                    CalloutKind::Grpc { service, method } => format!("grpc {service}/{method}"),
                },
                cluster: callout.cluster.clone(),
                headers: HeaderMap::from_pairs(callout.headers.clone()),
                body: String::from_utf8_lossy(&callout.body).into_owned(),
                timeout_ms: callout.timeout_ms,
            });
            self.schedule(
                due,
                Event::Callout {
                    worker,
                    generation,
                    token: callout.token,
                    kind: callout.kind,
                    reply,
                    timed_out,
                },
            );
        }
        for notice in self.shared.take_notices() {
            self.schedule(
                now,
                Event::Queue {
                    worker: notice.vm,
                    root: notice.root,
                    token: notice.token,
                },
            );
        }
        // Streams the module resumed or answered from another context.
        let ready: Vec<usize> = self
            .open
            .iter()
            .copied()
            .filter(|i| {
                self.flights
                    .get(*i)
                    .is_some_and(|f| f.worker == worker && !f.busy)
            })
            .collect();
        for index in ready {
            if self.take_actions(index) {
                self.pump(index);
            }
        }
    }

    /// A VM trapped (or ran out of time or memory): it is never called again; its streams take
    /// the fail path now, and later requests follow the failure policy.
    fn fail_worker(&mut self, worker: usize, error: &EvalError, now: u64) {
        let label = self
            .workers
            .get(worker)
            .map(|w| w.label.clone())
            .unwrap_or_default();
        self.report.failures.push(format!("{label}: {error}"));
        if let Some(w) = self.workers.get_mut(worker) {
            w.failed_at = Some(now);
            w.next_tick = None;
        }
        let affected: Vec<usize> = self
            .open
            .iter()
            .copied()
            .filter(|i| self.flights.get(*i).is_some_and(|f| f.worker == worker))
            .collect();
        for index in affected {
            self.fail_flight(index);
        }
    }

    fn fail_flight(&mut self, index: usize) {
        let fail = self.fail;
        let Some(flight) = self.flights.get_mut(index) else {
            return;
        };
        if fail == FailStrategy::FailOpen {
            flight.bypass = true;
            flight.paused = false;
            if flight.outcome.is_none() {
                flight.outcome = Some("fail-open");
            }
        } else {
            flight.bypass = true;
            flight.paused = false;
            flight.outcome = Some("fail-closed");
            flight.stage = Stage::ResponseHeaders;
            flight.chunk = 0;
            flight.outgoing = Some(Outgoing {
                status: 503,
                details: "wasm_fail_stream".into(),
                headers: Vec::new(),
                body: Vec::new(),
                trailers: None,
            });
        }
        if !flight.busy {
            self.pump(index);
        }
    }

    /// The VM for a new stream on `worker`, applying the failure policy to a failed one.
    fn vm_for_request(&mut self, worker: usize) -> Option<()> {
        let now = self.shared.now();
        let w = self.workers.get(worker)?;
        let failed = w.vm.as_ref().is_none_or(Vm::failed);
        if !failed {
            return Some(());
        }
        if self.fail == FailStrategy::FailReload
            && w.failed_at
                .is_some_and(|at| now >= at.saturating_add(RELOAD_BACKOFF))
        {
            if let Err(reason) = self.start_worker(worker) {
                self.report.failures.push(format!("reloading: {reason}"));
                if let Some(w) = self.workers.get_mut(worker) {
                    w.failed_at = Some(now);
                }
                return None;
            }
            return Some(());
        }
        None
    }

    fn request(&mut self, exchange: &Exchange, worker: usize) {
        let report = self.report.requests.len();
        let name = exchange
            .name
            .clone()
            .unwrap_or_else(|| format!("request {}", report.saturating_add(1)));
        let r = &exchange.request;
        let mut headers = HeaderMap::default();
        headers.add(":authority", &r.authority);
        headers.add(":path", &r.path);
        headers.add(":method", &r.method);
        headers.add(":scheme", &r.scheme);
        for (k, v) in &exchange.request.headers.0 {
            headers.add(k, v);
        }
        let usable = self.vm_for_request(worker).is_some();
        let generation = self.generation(worker);
        let mut flight = Flight {
            report,
            worker,
            generation,
            context: 0,
            exchange: exchange.clone(),
            stage: Stage::RequestHeaders,
            paused: false,
            buffering: false,
            coalesce: false,
            chunk: 0,
            original: headers.clone(),
            forwarded_body: Vec::new(),
            outgoing: None,
            delivered_body: Vec::new(),
            outcome: None,
            bypass: false,
            finished: false,
            busy: false,
            hostcalls: 0,
        };
        self.report.requests.push(RequestReport {
            name,
            worker,
            context: 0,
            outcome: "pending".into(),
            upstream: None,
            response: None,
            callbacks: Vec::new(),
            hostcalls: 0,
        });
        let now = self.shared.now();
        if usable && let Some(vm) = self.workers.get_mut(worker).and_then(|w| w.vm.as_mut()) {
            let state = vm.store.data_mut();
            let context = state.allocate_context();
            flight.context = context;
            state.streams.insert(
                context,
                Stream {
                    request_headers: headers,
                    protocol: r.protocol.clone(),
                    start_nanos: now,
                    ..Stream::default()
                },
            );
        }
        self.flights.push(flight);
        let index = self.flights.len().saturating_sub(1);
        self.open.insert(index);
        if let Some(entry) = self.report.requests.get_mut(report) {
            entry.context = self.flights.get(index).map_or(0, |f| f.context);
        }
        if !usable {
            self.fail_flight(index);
            return;
        }
        let root = self
            .workers
            .get(worker)
            .and_then(|w| w.vm.as_ref())
            .map_or(0, |vm| vm.store.data().root);
        // Envoy creates the stream's context lazily, at decodeHeaders.
        if self
            .call(index, Callback::ContextCreate, &[root.cast_signed()])
            .is_ok()
        {
            self.pump(index);
        }
    }

    /// Calls the module for a stream; `None` when the VM failed (the flight has taken the fail
    /// path) or the module does not export the callback (treated as Continue).
    fn call(&mut self, index: usize, callback: Callback, args: &[i32]) -> Result<Option<i32>, ()> {
        let Some(flight) = self.flights.get(index) else {
            return Err(());
        };
        let (worker, generation, context, report) = (
            flight.worker,
            flight.generation,
            flight.context,
            flight.report,
        );
        if flight.bypass {
            return Err(());
        }
        let Some(vm) = self.live_vm(worker, generation) else {
            self.fail_flight(index);
            return Err(());
        };
        let before = vm.store.data().hostcalls;
        let result = vm.call(callback, context, args);
        let spent = vm.store.data().hostcalls.saturating_sub(before);
        let shown: Vec<String> = std::iter::once(context.to_string())
            .chain(args.iter().map(ToString::to_string))
            .collect();
        let name = format!("{}({})", callback.name(), shown.join(", "));
        if let Some(entry) = self.report.requests.get_mut(report) {
            entry.callbacks.push(name);
        }
        if let Some(flight) = self.flights.get_mut(index) {
            flight.hostcalls = flight.hostcalls.saturating_add(spent);
            flight.busy = true;
        }
        let now = self.shared.now();
        match result {
            Ok(value) => {
                self.settle(worker, now);
                if let Some(flight) = self.flights.get_mut(index) {
                    flight.busy = false;
                }
                Ok(value)
            }
            Err(error) => {
                if let Some(flight) = self.flights.get_mut(index) {
                    flight.busy = false;
                }
                self.fail_worker(worker, &error, now);
                Err(())
            }
        }
    }

    fn stream_mut(&mut self, index: usize) -> Option<&mut Stream> {
        let flight = self.flights.get(index)?;
        let (worker, context) = (flight.worker, flight.context);
        self.workers
            .get_mut(worker)?
            .vm
            .as_mut()?
            .store
            .data_mut()
            .streams
            .get_mut(&context)
    }

    /// Applies what the module asked for during the last callbacks (deferred by Envoy): a local
    /// reply, a reset, or continuing a paused direction. Returns whether the flight can move.
    fn take_actions(&mut self, index: usize) -> bool {
        let Some(stream) = self.stream_mut(index) else {
            return false;
        };
        let reply = stream.local_reply.take();
        let reset = std::mem::take(&mut stream.reset);
        let resume_request = std::mem::take(&mut stream.continue_request);
        let resume_response = std::mem::take(&mut stream.continue_response);
        let Some(flight) = self.flights.get_mut(index) else {
            return false;
        };
        if reset {
            flight.outcome = Some("reset");
            flight.stage = Stage::Complete;
            flight.paused = false;
            flight.outgoing = None;
            return true;
        }
        if let Some(reply) = reply {
            start_local_reply(flight, reply);
            if let Some(stream) = self.stream_mut(index) {
                stream.live_request_headers = false;
                stream.live_request_body = false;
                stream.live_request_trailers = false;
            }
            return true;
        }
        let Some(flight) = self.flights.get_mut(index) else {
            return false;
        };
        let in_request = flight.stage <= Stage::Upstream;
        if flight.paused && ((in_request && resume_request) || (!in_request && resume_response)) {
            flight.paused = false;
            if flight.stage == Stage::RequestBody && flight.chunk == 0 {
                // Resuming after StopAllIteration on headers: Envoy delivers the data it
                // buffered meanwhile in one call.
                flight.coalesce = true;
            }
            if flight.buffering {
                flight.buffering = false;
                self.forward_buffer(index);
            }
            return true;
        }
        false
    }

    fn forward_buffer(&mut self, index: usize) {
        let Some(flight) = self.flights.get(index) else {
            return;
        };
        let request = flight.stage <= Stage::Upstream;
        let Some(stream) = self.stream_mut(index) else {
            return;
        };
        let bytes = if request {
            std::mem::take(&mut stream.request_body)
        } else {
            std::mem::take(&mut stream.response_body)
        };
        if let Some(flight) = self.flights.get_mut(index) {
            if request {
                flight.forwarded_body.extend(bytes);
            } else {
                flight.delivered_body.extend(bytes);
            }
        }
    }

    /// Moves a stream forward until it pauses or completes.
    fn pump(&mut self, index: usize) {
        loop {
            let Some(flight) = self.flights.get(index) else {
                return;
            };
            if flight.finished || flight.paused || flight.busy {
                return;
            }
            match flight.stage {
                Stage::RequestHeaders => self.headers_stage(index, true),
                Stage::RequestBody => self.body_stage(index, true),
                Stage::RequestTrailers => self.trailers_stage(index, true),
                Stage::Upstream => self.upstream_stage(index),
                Stage::ResponseHeaders => self.headers_stage(index, false),
                Stage::ResponseBody => self.body_stage(index, false),
                Stage::ResponseTrailers => self.trailers_stage(index, false),
                Stage::Complete => {
                    self.complete(index);
                    return;
                }
            }
        }
    }

    /// Interprets a callback's result: the fail path, deferred actions, then the action.
    fn step(&mut self, index: usize, result: Result<Option<i32>, ()>, next: Stage) {
        let Ok(value) = result else {
            // Bypassed (fail-open: move on as if the filter were absent) or failed (the flight
            // was redirected to the 503).
            if let Some(flight) = self.flights.get_mut(index)
                && flight.outcome == Some("fail-open")
                && flight.stage != Stage::Complete
            {
                flight.stage = next;
            }
            return;
        };
        if self.take_actions(index) {
            return;
        }
        let action = value.map_or(Action::Continue, Action::from_raw);
        let Some(flight) = self.flights.get_mut(index) else {
            return;
        };
        flight.stage = next;
        if action == Action::Pause {
            flight.paused = true;
        }
    }

    fn headers_stage(&mut self, index: usize, request: bool) {
        let Some(flight) = self.flights.get_mut(index) else {
            return;
        };
        flight.chunk = 0;
        let eos;
        if request {
            let r = &flight.exchange.request;
            eos = r.body.0.is_empty() && r.trailers.is_none();
        } else {
            let out = flight.outgoing.clone();
            let Some(out) = out else {
                flight.stage = Stage::Complete;
                return;
            };
            eos = out.body.is_empty() && out.trailers.is_none();
            let mut headers = HeaderMap::default();
            headers.add(":status", &out.status.to_string());
            for (k, v) in &out.headers {
                headers.add(k, v);
            }
            let details = out.details.clone();
            if let Some(stream) = self.stream_mut(index) {
                stream.response_headers = headers;
                stream.live_response_headers = true;
                stream.response_code_details = Some(details);
            }
        }
        let count = self.stream_mut(index).map_or(0, |s| {
            if request {
                s.request_headers.len()
            } else {
                s.response_headers.len()
            }
        });
        if let Some(stream) = self.stream_mut(index)
            && request
        {
            stream.live_request_headers = true;
        }
        let bypass = self.flights.get(index).is_some_and(|f| f.bypass);
        let callback = if request {
            Callback::RequestHeaders
        } else {
            Callback::ResponseHeaders
        };
        // A bypassed stream (fail-open) is not called: `call` answers Err.
        let result = self.call(index, callback, &[abi_count(count), i32::from(eos)]);
        let next = if request {
            Stage::RequestBody
        } else {
            Stage::ResponseBody
        };
        if bypass {
            if let Some(flight) = self.flights.get_mut(index) {
                flight.stage = next;
            }
            return;
        }
        let continued = matches!(result, Ok(None | Some(0)));
        self.step(index, result, next);
        if continued && let Some(stream) = self.stream_mut(index) {
            // Envoy drops its pointer to the headers once the filter continues.
            if request {
                stream.live_request_headers = false;
            } else {
                stream.live_response_headers = false;
            }
        }
    }

    fn body_stage(&mut self, index: usize, request: bool) {
        let Some(flight) = self.flights.get_mut(index) else {
            return;
        };
        let (chunks, has_trailers) = if request {
            (
                flight.exchange.request.body.0.clone(),
                flight.exchange.request.trailers.is_some(),
            )
        } else {
            match &flight.outgoing {
                Some(out) => (out.body.clone(), out.trailers.is_some()),
                None => (Vec::new(), false),
            }
        };
        let next = if request {
            Stage::RequestTrailers
        } else {
            Stage::ResponseTrailers
        };
        if flight.chunk >= chunks.len() {
            flight.stage = next;
            return;
        }
        let (chunk, last) = if flight.coalesce {
            let rest = chunks.get(flight.chunk..).unwrap_or_default().concat();
            flight.chunk = chunks.len();
            flight.coalesce = false;
            (rest, true)
        } else {
            let c = chunks.get(flight.chunk).cloned().unwrap_or_default();
            flight.chunk = flight.chunk.saturating_add(1);
            (c, flight.chunk >= chunks.len())
        };
        let eos = last && !has_trailers;
        let buffering = flight.buffering;
        let size = {
            let Some(stream) = self.stream_mut(index) else {
                if let Some(flight) = self.flights.get_mut(index) {
                    if request {
                        flight.forwarded_body.extend(chunk.as_bytes());
                    } else {
                        flight.delivered_body.extend(chunk.as_bytes());
                    }
                    if last {
                        flight.stage = next;
                    }
                }
                return;
            };
            let body = if request {
                &mut stream.request_body
            } else {
                &mut stream.response_body
            };
            if !buffering {
                body.clear();
            }
            body.extend_from_slice(chunk.as_bytes());
            let size = body.len();
            if request {
                stream.live_request_body = true;
                stream.may_add_request_trailers = eos;
            } else {
                stream.live_response_body = true;
                stream.may_add_response_trailers = eos;
            }
            size
        };
        let callback = if request {
            Callback::RequestBody
        } else {
            Callback::ResponseBody
        };
        // A bypassed stream (fail-open) is not called: `call` answers Err.
        let result = self.call(index, callback, &[abi_count(size), i32::from(eos)]);
        if let Some(stream) = self.stream_mut(index) {
            stream.may_add_request_trailers = false;
            stream.may_add_response_trailers = false;
        }
        match result {
            Ok(value) => {
                if self.take_actions(index) {
                    return;
                }
                let action = value.map_or(Action::Continue, Action::from_raw);
                if action == Action::Continue {
                    self.forward_buffer(index);
                    if let Some(flight) = self.flights.get_mut(index) {
                        flight.buffering = false;
                    }
                } else if let Some(flight) = self.flights.get_mut(index) {
                    // StopIterationAndBuffer: Envoy keeps the data and shows it again, with the
                    // next chunk, in the next call; at the end of the stream it waits for continue.
                    flight.buffering = true;
                    if last {
                        flight.paused = true;
                    }
                }
                if last && let Some(flight) = self.flights.get_mut(index) {
                    flight.stage = next;
                }
                if let Some(stream) = self.stream_mut(index) {
                    if request {
                        stream.live_request_body = stream.live_request_body && !last;
                    } else {
                        stream.live_response_body = stream.live_response_body && !last;
                    }
                }
            }
            Err(()) => {
                let open = self
                    .flights
                    .get(index)
                    .is_some_and(|f| f.outcome == Some("fail-open"));
                if open {
                    self.forward_buffer(index);
                    if last && let Some(flight) = self.flights.get_mut(index) {
                        flight.stage = next;
                    }
                }
            }
        }
    }

    fn trailers_stage(&mut self, index: usize, request: bool) {
        let Some(flight) = self.flights.get(index) else {
            return;
        };
        let trailers = if request {
            flight.exchange.request.trailers.clone().map(|t| t.0)
        } else {
            flight.outgoing.as_ref().and_then(|o| o.trailers.clone())
        };
        let bypass = flight.bypass;
        let next = if request {
            Stage::Upstream
        } else {
            Stage::Complete
        };
        let Some(trailers) = trailers else {
            if let Some(flight) = self.flights.get_mut(index) {
                flight.stage = next;
            }
            return;
        };
        let map = HeaderMap::from_pairs(trailers);
        let count = map.len();
        if let Some(stream) = self.stream_mut(index) {
            if request {
                stream.request_trailers = map;
                stream.live_request_trailers = true;
            } else {
                stream.response_trailers = map;
                stream.live_response_trailers = true;
            }
        }
        let callback = if request {
            Callback::RequestTrailers
        } else {
            Callback::ResponseTrailers
        };
        let result = self.call(index, callback, &[abi_count(count)]);
        if bypass {
            if let Some(flight) = self.flights.get_mut(index) {
                flight.stage = next;
            }
            return;
        }
        self.step(index, result, next);
    }

    /// The request reaches the upstream: record what it got, then take its response.
    fn upstream_stage(&mut self, index: usize) {
        let (headers, trailers) = match self.stream_mut(index) {
            Some(s) => (s.request_headers.clone(), s.request_trailers.clone()),
            None => {
                let original = self
                    .flights
                    .get(index)
                    .map(|f| f.original.clone())
                    .unwrap_or_default();
                (original, HeaderMap::default())
            }
        };
        let Some(flight) = self.flights.get_mut(index) else {
            return;
        };
        let (added, removed) = diff(&flight.original, &headers);
        let forwarded = Forwarded {
            headers_added: added,
            headers_removed: removed,
            body: String::from_utf8_lossy(&flight.forwarded_body).into_owned(),
            trailers,
        };
        if flight.outcome.is_none() {
            flight.outcome = Some("upstream");
        }
        let response = &flight.exchange.response;
        flight.outgoing = Some(Outgoing {
            status: response.status,
            details: "via_upstream".into(),
            headers: response.headers.0.clone(),
            body: response.body.0.clone(),
            trailers: response.trailers.clone().map(|t| t.0),
        });
        flight.stage = Stage::ResponseHeaders;
        let report = flight.report;
        if let Some(entry) = self.report.requests.get_mut(report) {
            entry.upstream = Some(forwarded);
        }
    }

    /// The stream ends: the client has its response; Envoy then logs (`proxy_on_log`) and
    /// destroys the filter (`proxy_on_done`, `proxy_on_delete`).
    fn complete(&mut self, index: usize) {
        let stream = self.stream_mut(index).map(|s| {
            s.access_log = true;
            (s.response_headers.clone(), s.response_trailers.clone())
        });
        let Some(flight) = self.flights.get_mut(index) else {
            return;
        };
        flight.finished = true;
        self.open.remove(&index);
        let report = flight.report;
        let outcome = flight.outcome.unwrap_or("upstream");
        let bypass = flight.bypass;
        let delivered = flight.outgoing.as_ref().map(|out| {
            let (headers, trailers) = match (&stream, bypass) {
                (Some((h, t)), false) => (h.clone(), t.clone()),
                _ => {
                    let mut h = HeaderMap::default();
                    h.add(":status", &out.status.to_string());
                    for (k, v) in &out.headers {
                        h.add(k, v);
                    }
                    (
                        h,
                        HeaderMap::from_pairs(out.trailers.clone().unwrap_or_default()),
                    )
                }
            };
            let status = headers
                .get(":status")
                .and_then(|s| s.parse().ok())
                .unwrap_or(out.status);
            Delivered {
                status,
                details: out.details.clone(),
                headers: HeaderMap(
                    headers
                        .0
                        .into_iter()
                        .filter(|(k, _)| !k.starts_with(':'))
                        .collect(),
                ),
                body: String::from_utf8_lossy(&flight.delivered_body).into_owned(),
                trailers,
            }
        });
        let hostcalls = flight.hostcalls;
        if let Some(entry) = self.report.requests.get_mut(report) {
            entry.outcome = outcome.into();
            entry.response = delivered;
        }
        if !bypass {
            let _ = self.call(index, Callback::Log, &[]);
            let _ = self.call(index, Callback::Done, &[]);
            let _ = self.call(index, Callback::Delete, &[]);
        }
        let total = self.flights.get(index).map_or(hostcalls, |f| f.hostcalls);
        if let Some(entry) = self.report.requests.get_mut(report) {
            entry.hostcalls = total;
        }
        if let Some(flight) = self.flights.get(index) {
            let (worker, context) = (flight.worker, flight.context);
            if let Some(vm) = self.workers.get_mut(worker).and_then(|w| w.vm.as_mut()) {
                vm.store.data_mut().streams.remove(&context);
            }
        }
    }

    /// The scenario ended: streams still paused are reported as pending (ticks would fire
    /// forever, so the clock is not run on); then the plugin is torn down as Envoy does it:
    /// each root context gets `proxy_on_done`, and `proxy_on_delete` once it is done (at once,
    /// or after it calls `proxy_done` when `on_done` returned false).
    fn finish(&mut self) {
        for flight in self.flights.iter().filter(|f| !f.finished) {
            if let Some(entry) = self.report.requests.get_mut(flight.report) {
                entry.outcome = "pending".into();
                entry.hostcalls = flight.hostcalls;
            }
        }
        for index in 0..self.workers.len() {
            let Some(vm) = self
                .workers
                .get_mut(index)
                .and_then(|w| w.vm.as_mut())
                .filter(|vm| !vm.failed())
            else {
                continue;
            };
            let label = vm.store.data().label.clone();
            let root = vm.store.data().root;
            vm.store.data_mut().record_callbacks = true;
            let done = vm.call(Callback::Done, root, &[]);
            let finished = match done {
                Ok(Some(0)) => vm.store.data().done,
                Ok(_) => true,
                Err(e) => {
                    self.report.failures.push(format!("{label}: {e}"));
                    continue;
                }
            };
            if finished && let Err(e) = vm.call(Callback::Delete, root, &[]) {
                self.report.failures.push(format!("{label}: {e}"));
            }
            for call in std::mem::take(&mut vm.store.data_mut().callback_log) {
                self.report.shutdown.push(format!("{label}: {call}"));
            }
            if !finished {
                self.report.shutdown.push(format!(
                    "{label}: root context {root} still finishing (proxy_on_done returned false and proxy_done was not called)"
                ));
            }
        }
    }
}

/// Switches a stream to sending a local reply (Envoy's `sendLocalReply`): the filter's own
/// response callbacks still see it.
fn start_local_reply(flight: &mut Flight, reply: LocalReply) {
    let mut headers = Vec::new();
    if !reply.body.is_empty() {
        headers.push(("content-length".to_owned(), reply.body.len().to_string()));
        headers.push(("content-type".to_owned(), "text/plain".to_owned()));
    }
    if let Some(grpc) = reply.grpc_status {
        headers.push(("grpc-status".to_owned(), grpc.to_string()));
    }
    headers.extend(reply.headers);
    flight.outcome = Some("local-reply");
    flight.stage = Stage::ResponseHeaders;
    flight.paused = false;
    flight.buffering = false;
    flight.chunk = 0;
    flight.outgoing = Some(Outgoing {
        status: u16::try_from(reply.status).unwrap_or(500),
        details: reply.details,
        headers,
        body: if reply.body.is_empty() {
            Vec::new()
        } else {
            vec![String::from_utf8_lossy(&reply.body).into_owned()]
        },
        trailers: None,
    });
}

/// A count or size as the ABI's i32 argument.
fn abi_count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Header pairs, in order.
type Pairs = Vec<(String, String)>;

/// Header pairs added and removed between two maps (as multisets, order kept).
fn diff(before: &HeaderMap, after: &HeaderMap) -> (Pairs, Pairs) {
    let mut removed = before.0.clone();
    let mut added = Vec::new();
    for pair in &after.0 {
        match removed.iter().position(|p| p == pair) {
            Some(at) => {
                removed.remove(at);
            }
            None => added.push(pair.clone()),
        }
    }
    (added, removed)
}
