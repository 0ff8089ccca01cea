//! One proxy-wasm VM: a compiled [`Filter`] instantiated in its own store, with the callbacks
//! the module exports looked up once. Every call runs under the deadline and memory cap; a trap
//! fails the VM for good (cpp-host's RuntimeError), and the proxy decides what happens next.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};
use wasmtime::{InstancePre, Linker, Module, Store, TypedFunc, WasmParams, WasmResults};

use super::hostcalls::{self, ENV_FUNCTIONS, WASI_MODULES};
use super::state::{Phase, VmState};
use super::types::{LogLevel, SUPPORTED_VERSIONS};
use palisade_runtime::{Abi, CacheStatus, Engine, EvalError, Limits, LoadError, Ticker};

/// A compiled, checked and pre-linked proxy-wasm module. Cheap to share; each VM instantiates it.
pub struct Filter {
    engine: wasmtime::Engine,
    pre: InstancePre<VmState>,
    version: String,
    digest: String,
    size: usize,
    cache: CacheStatus,
    tick: TickBudget,
    exports: BTreeSet<String>,
    /// Keeps deadlines firing for as long as the filter can run.
    _ticker: std::sync::Arc<Ticker>,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("version", &self.version)
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

impl Filter {
    /// Compiles (or loads from the cache) a proxy-wasm module, checks its ABI version, memory,
    /// allocator and imports, and pre-links it.
    ///
    /// # Errors
    /// [`LoadError`] naming the problem: not wasm, another ABI, an unsupported ABI version, no
    /// memory or allocator export, or imports this host does not provide (all listed).
    pub fn new(engine: &Engine, bytes: &[u8]) -> Result<Self, LoadError> {
        let version = match Abi::detect(bytes)? {
            Abi::ProxyWasm { version } if SUPPORTED_VERSIONS.contains(&version.as_str()) => version,
            Abi::ProxyWasm { version } => {
                return Err(LoadError::AbiVersion {
                    found: format!("proxy-wasm ABI {version}"),
                    supported: format!("proxy-wasm ABI {}", SUPPORTED_VERSIONS.join(" or ")),
                });
            }
            found => {
                return Err(LoadError::WrongAbi {
                    expected: Abi::ProxyWasm {
                        version: "0.2.1".into(),
                    },
                    found,
                });
            }
        };
        let (module, cache) = engine.compile_module(bytes)?;
        let exports: BTreeSet<String> = module.exports().map(|e| e.name().to_owned()).collect();
        if !exports.contains("memory") {
            return Err(LoadError::MissingExport("memory".into()));
        }
        if !exports.contains("malloc") && !exports.contains("proxy_on_memory_allocate") {
            return Err(LoadError::MissingExport(
                "proxy_on_memory_allocate (or malloc), the allocator the host hands values through"
                    .into(),
            ));
        }
        check_imports(&module, &version)?;
        let mut linker = Linker::new(engine.wasmtime());
        hostcalls::add_to_linker(&mut linker).map_err(LoadError::Link)?;
        let pre = linker.instantiate_pre(&module).map_err(LoadError::Link)?;
        Ok(Self {
            engine: engine.wasmtime().clone(),
            pre,
            version,
            digest: hex::encode(Sha256::digest(bytes)),
            size: bytes.len(),
            cache,
            tick: TickBudget {
                tick_nanos: engine.tick().as_nanos(),
            },
            exports,
            _ticker: engine.ticker(),
        })
    }

    /// The ABI version the module declares (`0.2.1`).
    #[must_use]
    pub fn abi_version(&self) -> &str {
        &self.version
    }

    /// SHA-256 of the module bytes, hex.
    #[must_use]
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Size of the module in bytes.
    #[must_use]
    pub fn size(&self) -> usize {
        self.size
    }

    /// Whether the compiled code came from the cache.
    #[must_use]
    pub fn cache_status(&self) -> CacheStatus {
        self.cache
    }
}

/// Refuses imports this host does not provide, naming all of them at once.
fn check_imports(module: &Module, version: &str) -> Result<(), LoadError> {
    let wasi = [
        "fd_write",
        "fd_read",
        "fd_close",
        "fd_seek",
        "fd_fdstat_get",
        "fd_prestat_get",
        "fd_prestat_dir_name",
        "environ_sizes_get",
        "environ_get",
        "args_sizes_get",
        "args_get",
        "clock_time_get",
        "clock_res_get",
        "random_get",
        "sched_yield",
        "poll_oneoff",
        "proc_exit",
    ];
    let unknown: Vec<String> = module
        .imports()
        .filter(|i| {
            let known = match i.module() {
                "env" => {
                    ENV_FUNCTIONS.contains(&i.name())
                        // cpp-host links proxy_get_log_level for 0.2.1 modules only.
                        && !(version == "0.2.0" && i.name() == "proxy_get_log_level")
                }
                m if WASI_MODULES.contains(&m) => wasi.contains(&i.name()),
                _ => false,
            };
            !known
        })
        .map(|i| format!("{}::{}", i.module(), i.name()))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(LoadError::Link(wasmtime::Error::msg(format!(
        "the module imports {} that this proxy-wasm {version} host (like Envoy) does not provide: {}",
        if unknown.len() == 1 {
            "a function"
        } else {
            "functions"
        },
        unknown.join(", ")
    ))))
}

/// `proxy_on_http_call_response(context, token, headers, body_size, trailers)`.
type FiveArgs = (i32, i32, i32, i32, i32);

/// The callbacks a module may export, looked up once per instance.
#[derive(Default)]
struct Callbacks {
    on_context_create: Option<TypedFunc<(i32, i32), ()>>,
    on_vm_start: Option<TypedFunc<(i32, i32), i32>>,
    on_configure: Option<TypedFunc<(i32, i32), i32>>,
    on_tick: Option<TypedFunc<i32, ()>>,
    on_queue_ready: Option<TypedFunc<(i32, i32), ()>>,
    on_done: Option<TypedFunc<i32, i32>>,
    on_log: Option<TypedFunc<i32, ()>>,
    on_delete: Option<TypedFunc<i32, ()>>,
    on_request_headers: Option<TypedFunc<(i32, i32, i32), i32>>,
    on_request_body: Option<TypedFunc<(i32, i32, i32), i32>>,
    on_request_trailers: Option<TypedFunc<(i32, i32), i32>>,
    on_response_headers: Option<TypedFunc<(i32, i32, i32), i32>>,
    on_response_body: Option<TypedFunc<(i32, i32, i32), i32>>,
    on_response_trailers: Option<TypedFunc<(i32, i32), i32>>,
    on_http_call_response: Option<TypedFunc<FiveArgs, ()>>,
    on_grpc_receive: Option<TypedFunc<(i32, i32, i32), ()>>,
    on_grpc_close: Option<TypedFunc<(i32, i32, i32), ()>>,
}

/// A callback the proxy can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Callback {
    ContextCreate,
    VmStart,
    Configure,
    Tick,
    QueueReady,
    Done,
    Log,
    Delete,
    RequestHeaders,
    RequestBody,
    RequestTrailers,
    ResponseHeaders,
    ResponseBody,
    ResponseTrailers,
    HttpCallResponse,
    GrpcReceive,
    GrpcClose,
}

impl Callback {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::ContextCreate => "proxy_on_context_create",
            Self::VmStart => "proxy_on_vm_start",
            Self::Configure => "proxy_on_configure",
            Self::Tick => "proxy_on_tick",
            Self::QueueReady => "proxy_on_queue_ready",
            Self::Done => "proxy_on_done",
            Self::Log => "proxy_on_log",
            Self::Delete => "proxy_on_delete",
            Self::RequestHeaders => "proxy_on_request_headers",
            Self::RequestBody => "proxy_on_request_body",
            Self::RequestTrailers => "proxy_on_request_trailers",
            Self::ResponseHeaders => "proxy_on_response_headers",
            Self::ResponseBody => "proxy_on_response_body",
            Self::ResponseTrailers => "proxy_on_response_trailers",
            Self::HttpCallResponse => "proxy_on_http_call_response",
            Self::GrpcReceive => "proxy_on_grpc_receive",
            Self::GrpcClose => "proxy_on_grpc_close",
        }
    }
}

/// One instantiated VM.
pub(crate) struct Vm {
    pub(crate) store: Store<VmState>,
    callbacks: Callbacks,
    limits: Limits,
    tick: TickBudget,
    /// A callback failed: the VM is never called again (cpp-host's failed state).
    failed: bool,
}

/// Why a callback did not complete.
#[derive(Debug, thiserror::Error)]
pub(crate) enum VmError {
    /// The VM failed in an earlier call and is not called again.
    #[error("the VM failed earlier")]
    Failed,
    /// The guest trapped or ran out of time or memory in this call: the VM has failed.
    #[error(transparent)]
    Guest(EvalError),
}

fn typed<P: WasmParams, R: WasmResults>(
    instance: &wasmtime::Instance,
    store: &mut Store<VmState>,
    exports: &BTreeSet<String>,
    name: &str,
) -> Result<Option<TypedFunc<P, R>>, EvalError> {
    if !exports.contains(name) {
        return Ok(None);
    }
    instance
        .get_typed_func::<P, R>(&mut *store, name)
        .map(Some)
        .map_err(|e| EvalError::BadOutput(format!("export {name} has the wrong signature: {e:#}")))
}

impl Vm {
    /// Instantiates the filter and runs the module's start-up (`_initialize`, then `main` if
    /// exported, or `_start`) with only `proxy_log` and WASI allowed, as under V8.
    pub(crate) fn start(
        filter: &Filter,
        state: VmState,
        limits: Limits,
    ) -> Result<Self, EvalError> {
        let mut store = Store::new(&filter.engine, state);
        store.limiter(|s| &mut s.cap);
        store.set_epoch_deadline(filter.tick.ticks(limits.timeout));
        let instance = match filter.pre.instantiate(&mut store) {
            Ok(i) => i,
            Err(e) => return Err(classify(e, &store, limits)),
        };
        let memory = instance.get_memory(&mut store, "memory");
        let allocate = match instance.get_typed_func::<i32, i32>(&mut store, "malloc") {
            Ok(f) => Some(f),
            Err(_) => typed::<i32, i32>(
                &instance,
                &mut store,
                &filter.exports,
                "proxy_on_memory_allocate",
            )?,
        };
        store.data_mut().memory = memory;
        store.data_mut().allocate = allocate;
        let ex = &filter.exports;
        let callbacks = Callbacks {
            on_context_create: typed(&instance, &mut store, ex, "proxy_on_context_create")?,
            on_vm_start: typed(&instance, &mut store, ex, "proxy_on_vm_start")?,
            on_configure: typed(&instance, &mut store, ex, "proxy_on_configure")?,
            on_tick: typed(&instance, &mut store, ex, "proxy_on_tick")?,
            on_queue_ready: typed(&instance, &mut store, ex, "proxy_on_queue_ready")?,
            on_done: typed(&instance, &mut store, ex, "proxy_on_done")?,
            on_log: typed(&instance, &mut store, ex, "proxy_on_log")?,
            on_delete: typed(&instance, &mut store, ex, "proxy_on_delete")?,
            on_request_headers: typed(&instance, &mut store, ex, "proxy_on_request_headers")?,
            on_request_body: typed(&instance, &mut store, ex, "proxy_on_request_body")?,
            on_request_trailers: typed(&instance, &mut store, ex, "proxy_on_request_trailers")?,
            on_response_headers: typed(&instance, &mut store, ex, "proxy_on_response_headers")?,
            on_response_body: typed(&instance, &mut store, ex, "proxy_on_response_body")?,
            on_response_trailers: typed(&instance, &mut store, ex, "proxy_on_response_trailers")?,
            on_http_call_response: typed(&instance, &mut store, ex, "proxy_on_http_call_response")?,
            on_grpc_receive: typed(&instance, &mut store, ex, "proxy_on_grpc_receive")?,
            on_grpc_close: typed(&instance, &mut store, ex, "proxy_on_grpc_close")?,
        };
        let mut vm = Self {
            store,
            callbacks,
            limits,
            tick: filter.tick,
            failed: false,
        };
        let init: Vec<(&str, bool)> = if ex.contains("_initialize") {
            vec![("_initialize", false), ("main", true)]
        } else {
            vec![("_start", false)]
        };
        for (name, with_args) in init {
            if !ex.contains(name) {
                continue;
            }
            vm.store.data_mut().trace_callback(name, &[]);
            vm.arm();
            let outcome = if with_args {
                instance
                    .get_typed_func::<(i32, i32), i32>(&mut vm.store, name)
                    .and_then(|f| f.call(&mut vm.store, (0, 0)).map(drop))
            } else {
                instance
                    .get_typed_func::<(), ()>(&mut vm.store, name)
                    .and_then(|f| f.call(&mut vm.store, ()))
            };
            if let Err(e) = outcome {
                return Err(classify(e, &vm.store, limits));
            }
        }
        vm.store.data_mut().phase = Phase::Configuring;
        Ok(vm)
    }

    fn arm(&mut self) {
        let ticks = self.tick.ticks(self.limits.timeout);
        self.store.set_epoch_deadline(ticks);
    }

    /// Makes one callback on `context`; `None` when the module does not export it (the host
    /// then behaves as if it returned Continue / true). A failure fails the VM for good.
    ///
    /// # Errors
    /// [`VmError::Guest`] when the guest fails in this call, [`VmError::Failed`] when it had
    /// failed before.
    pub(crate) fn call(
        &mut self,
        callback: Callback,
        context: u32,
        args: &[i32],
    ) -> Result<Option<i32>, VmError> {
        if self.failed {
            return Err(VmError::Failed);
        }
        let ctx = context.cast_signed();
        let a = |i: usize| args.get(i).copied().unwrap_or_default();
        {
            let state = self.store.data_mut();
            state.current = context;
            state.effective = context;
            if state.trace || state.record_callbacks {
                let mut traced = vec![i64::from(ctx)];
                traced.extend(args.iter().map(|v| i64::from(*v)));
                state.trace_callback(callback.name(), &traced);
            }
        }
        self.arm();
        let store = &mut self.store;
        let cb = &self.callbacks;
        let outcome: Option<wasmtime::Result<i32>> = match callback {
            Callback::ContextCreate => cb
                .on_context_create
                .as_ref()
                .map(|f| f.call(store, (ctx, a(0))).map(|()| 0)),
            Callback::VmStart => cb.on_vm_start.as_ref().map(|f| f.call(store, (ctx, a(0)))),
            Callback::Configure => cb.on_configure.as_ref().map(|f| f.call(store, (ctx, a(0)))),
            Callback::Tick => cb.on_tick.as_ref().map(|f| f.call(store, ctx).map(|()| 0)),
            Callback::QueueReady => cb
                .on_queue_ready
                .as_ref()
                .map(|f| f.call(store, (ctx, a(0))).map(|()| 0)),
            Callback::Done => cb.on_done.as_ref().map(|f| f.call(store, ctx)),
            Callback::Log => cb.on_log.as_ref().map(|f| f.call(store, ctx).map(|()| 0)),
            Callback::Delete => cb
                .on_delete
                .as_ref()
                .map(|f| f.call(store, ctx).map(|()| 0)),
            Callback::RequestHeaders => cb
                .on_request_headers
                .as_ref()
                .map(|f| f.call(store, (ctx, a(0), a(1)))),
            Callback::RequestBody => cb
                .on_request_body
                .as_ref()
                .map(|f| f.call(store, (ctx, a(0), a(1)))),
            Callback::RequestTrailers => cb
                .on_request_trailers
                .as_ref()
                .map(|f| f.call(store, (ctx, a(0)))),
            Callback::ResponseHeaders => cb
                .on_response_headers
                .as_ref()
                .map(|f| f.call(store, (ctx, a(0), a(1)))),
            Callback::ResponseBody => cb
                .on_response_body
                .as_ref()
                .map(|f| f.call(store, (ctx, a(0), a(1)))),
            Callback::ResponseTrailers => cb
                .on_response_trailers
                .as_ref()
                .map(|f| f.call(store, (ctx, a(0)))),
            Callback::HttpCallResponse => cb
                .on_http_call_response
                .as_ref()
                .map(|f| f.call(store, (ctx, a(0), a(1), a(2), a(3))).map(|()| 0)),
            Callback::GrpcReceive => cb
                .on_grpc_receive
                .as_ref()
                .map(|f| f.call(store, (ctx, a(0), a(1))).map(|()| 0)),
            Callback::GrpcClose => cb
                .on_grpc_close
                .as_ref()
                .map(|f| f.call(store, (ctx, a(0), a(1))).map(|()| 0)),
        };
        match outcome {
            None => Ok(None),
            Some(Ok(value)) => Ok(Some(value)),
            Some(Err(e)) => {
                self.failed = true;
                Err(VmError::Guest(classify(e, &self.store, self.limits)))
            }
        }
    }

    /// Whether the VM has failed.
    pub(crate) fn failed(&self) -> bool {
        self.failed
    }
}

/// Classifies a failed call; host-raised errors (a restricted hostcall, `proc_exit`) count as
/// traps. The Rust SDK's panic hook logs the panic at CRITICAL before the trap: that is the
/// guest's last word, kept in the message.
fn classify(error: wasmtime::Error, store: &Store<VmState>, limits: Limits) -> EvalError {
    let state = store.data();
    let last_words = state
        .shared
        .last_log(&state.label, LogLevel::Critical)
        .unwrap_or_default();
    match EvalError::classify(error, state.cap.refused(), limits, &last_words) {
        EvalError::Instantiate(e) => EvalError::Trap {
            message: format!("{e:#}"),
            backtrace: String::new(),
        },
        other => other,
    }
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm")
            .field("label", &self.store.data().label)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

/// Converts a wall-clock timeout into epoch ticks of the engine a filter was compiled on.
#[derive(Debug, Clone, Copy)]
struct TickBudget {
    tick_nanos: u128,
}

impl TickBudget {
    /// The epoch deadline for `timeout`: whole ticks, rounded up, plus the tick in progress.
    fn ticks(self, timeout: std::time::Duration) -> u64 {
        let ticks = timeout.as_nanos().div_ceil(self.tick_nanos.max(1));
        u64::try_from(ticks).unwrap_or(u64::MAX).saturating_add(1)
    }
}
