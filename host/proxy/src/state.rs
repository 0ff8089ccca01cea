//! The per-VM host state every hostcall reads and writes (the wasmtime `Store` data): contexts,
//! the VM's stream table (the streams' one owner), the root context's callouts and timers, and
//! the callout answer being delivered.

use std::collections::BTreeMap;
use std::sync::Arc;

use palisade_runtime::MemoryCap;
use wasmtime::{Memory, TypedFunc};

use crate::header_map::HeaderMap;
use crate::properties::{Connection, Node, PluginIdentity};
use crate::shared::{LogLine, Shared};
use crate::stream::Stream;
use crate::types::{LogLevel, Status, StreamType};

mod ids;

pub(crate) use ids::{CalloutIds, CalloutType, MetricId, MetricIds};

/// Static facts about the plugin every VM of it shares.
#[derive(Debug)]
pub(crate) struct PluginInfo {
    pub(crate) identity: PluginIdentity,
    pub(crate) vm_configuration: Vec<u8>,
    pub(crate) plugin_configuration: Vec<u8>,
    pub(crate) environment: Vec<(String, String)>,
    pub(crate) node: Node,
    pub(crate) connection: Connection,
    /// Upstream clusters that exist (callouts to others get BAD_ARGUMENT, as in Envoy).
    pub(crate) clusters: Vec<String>,
    /// Envoy's `wasm` logger level, returned by `proxy_get_log_level`.
    pub(crate) log_level: LogLevel,
    /// Wall-clock time at virtual time 0, nanoseconds since the Unix epoch.
    pub(crate) epoch_nanos: u64,
}

/// Where a VM is in its life, for cpp-host's restriction on start-up hostcalls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// `_initialize`/`main` run: only `proxy_log` and WASI are allowed (V8 traps on the rest).
    Initializing,
    /// Root context start and configure: the plugin configuration buffer is readable.
    Configuring,
    /// Serving streams and timers.
    Running,
}

/// A callout the module started; the proxy answers it from the scenario.
#[derive(Debug, Clone)]
pub(crate) struct Callout {
    pub(crate) token: u32,
    pub(crate) kind: CalloutKind,
    pub(crate) cluster: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    pub(crate) timeout_ms: u64,
}

/// HTTP call, or gRPC unary call (service, method).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CalloutKind {
    Http,
    Grpc { service: String, method: String },
}

/// The answer being delivered to `proxy_on_http_call_response` / `proxy_on_grpc_*`.
#[derive(Debug, Default)]
pub(crate) struct CalloutAnswer {
    pub(crate) headers: Option<HeaderMap>,
    pub(crate) trailers: Option<HeaderMap>,
    pub(crate) body: Option<Vec<u8>>,
    pub(crate) grpc_initial: Option<HeaderMap>,
    pub(crate) grpc_trailing: Option<HeaderMap>,
}

/// Everything one VM's hostcalls touch.
pub(crate) struct VmState {
    pub(crate) label: String,
    pub(crate) index: usize,
    pub(crate) plugin: Arc<PluginInfo>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) cap: MemoryCap,
    pub(crate) phase: Phase,
    pub(crate) memory: Option<Memory>,
    pub(crate) allocate: Option<TypedFunc<i32, i32>>,
    /// The context whose callback is running, and the one hostcalls act on.
    pub(crate) current: u32,
    pub(crate) effective: u32,
    pub(crate) root: u32,
    pub(crate) next_context: u32,
    /// The VM's HTTP streams by context id, in the order they arrived (ids only grow); a
    /// stream that arrived while the VM had failed has no context and is kept under 0 while
    /// it is answered.
    pub(crate) streams: BTreeMap<u32, Stream>,
    /// `proxy_done` was called by the root context.
    pub(crate) done: bool,
    pub(crate) tick_period_ms: u64,
    pub(crate) callouts: Vec<Callout>,
    /// Which context issued each pending callout, by token (the SDK routes the answer itself;
    /// tokens are unique per VM across HTTP and gRPC).
    pub(crate) pending: BTreeMap<u32, u32>,
    /// The callout tokens this VM handed out.
    pub(crate) callout_ids: CalloutIds,
    pub(crate) answer: CalloutAnswer,
    /// `proxy_get_status` answer.
    pub(crate) status: (u32, String),
    /// The metric ids this VM handed out.
    pub(crate) metric_ids: MetricIds,
    pub(crate) foreign_args: Option<Vec<u8>>,
    pub(crate) trace: bool,
    /// Callbacks made on this VM while `record_callbacks` is on (start-up and teardown, which
    /// the report lists; streams' callbacks are recorded by the proxy per stream).
    pub(crate) callback_log: Vec<String>,
    pub(crate) record_callbacks: bool,
    pub(crate) hostcalls: u64,
    /// Time spent inside hostcalls (the host's side of them), for benchmarks.
    pub(crate) hostcall_time: std::time::Duration,
    /// State of the deterministic `random_get`.
    pub(crate) random: u64,
}

impl VmState {
    pub(crate) fn new(
        label: String,
        index: usize,
        plugin: Arc<PluginInfo>,
        shared: Arc<Shared>,
        memory_limit: usize,
        trace: bool,
    ) -> Self {
        Self {
            label,
            index,
            plugin,
            shared,
            cap: MemoryCap::new(memory_limit),
            phase: Phase::Initializing,
            memory: None,
            allocate: None,
            current: 0,
            effective: 0,
            root: 0,
            next_context: 1,
            streams: BTreeMap::new(),
            done: false,
            tick_period_ms: 0,
            callouts: Vec::new(),
            pending: BTreeMap::new(),
            callout_ids: CalloutIds::default(),
            answer: CalloutAnswer::default(),
            status: (0, String::new()),
            metric_ids: MetricIds::default(),
            foreign_args: None,
            trace,
            callback_log: Vec::new(),
            record_callbacks: true,
            hostcalls: 0,
            hostcall_time: std::time::Duration::ZERO,
            random: 0x9e37_79b9_7f4a_7c15 ^ (index as u64).wrapping_add(1),
        }
    }

    /// Allocates the next context id (per VM, from 1, never reused).
    pub(crate) fn allocate_context(&mut self) -> u32 {
        let id = self.next_context;
        self.next_context = self.next_context.saturating_add(1);
        id
    }

    /// The stream the effective context is, if it is one.
    pub(crate) fn stream(&mut self) -> Option<&mut Stream> {
        self.streams.get_mut(&self.effective)
    }

    /// Appends a log line under this VM's label.
    pub(crate) fn log(&self, level: LogLevel, message: String) {
        self.shared.log(LogLine {
            vm: self.label.clone(),
            level,
            message,
        });
    }

    /// Counts a hostcall and refuses what V8 refuses during start-up.
    pub(crate) fn enter(&mut self, name: &str) -> wasmtime::Result<()> {
        self.hostcalls = self.hostcalls.saturating_add(1);
        if self.phase == Phase::Initializing && name != "proxy_log" {
            return Err(wasmtime::Error::msg(format!(
                "restricted_callback: {name} was called while the module was initialising \
                 (only proxy_log and WASI may be called from _initialize/main)"
            )));
        }
        Ok(())
    }

    /// Records a hostcall in the trace when tracing.
    pub(crate) fn traced(&mut self, name: &str, args: &[i64], status: Status) {
        if self.trace {
            let args: Vec<String> = args.iter().map(ToString::to_string).collect();
            self.shared.trace(format!(
                "{} ctx={} {name}({}) -> {}",
                self.label,
                self.effective,
                args.join(", "),
                status.name()
            ));
        }
    }

    /// Notes a callback the host made.
    pub(crate) fn trace_callback(&mut self, name: &str, args: &[i64]) {
        if !self.trace && !self.record_callbacks {
            return;
        }
        let args: Vec<String> = args.iter().map(ToString::to_string).collect();
        let call = format!("{name}({})", args.join(", "));
        if self.trace {
            self.shared.trace(format!("{} => {call}", self.label));
        }
        if self.record_callbacks {
            self.callback_log.push(call);
        }
    }

    /// Whether a stream type can be continued or closed in the current context.
    pub(crate) fn stream_control(&mut self, kind: StreamType, close: bool) -> Status {
        let Some(stream) = self.stream() else {
            // Envoy's root context has no decoder callbacks: the call does nothing.
            return match kind {
                StreamType::Request | StreamType::Response => Status::Ok,
                StreamType::Downstream | StreamType::Upstream => Status::BadArgument,
            };
        };
        match (kind, close) {
            (StreamType::Request, false) => {
                stream.continue_request = true;
                stream.live_request_headers = false;
                stream.live_request_body = false;
                stream.live_request_trailers = false;
                Status::Ok
            }
            (StreamType::Response, false) => {
                stream.continue_response = true;
                Status::Ok
            }
            (StreamType::Request | StreamType::Response, true) => {
                stream.reset = true;
                Status::Ok
            }
            (StreamType::Downstream | StreamType::Upstream, false) => Status::Unimplemented,
            (StreamType::Downstream | StreamType::Upstream, true) => Status::BadArgument,
        }
    }
}
