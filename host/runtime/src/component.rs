//! Host of the `palisade:admission` world: admission policies compiled as components
//! (wasm32-wasip2). The generated bindings stay private; callers see the SDK's wire types.
//! WASI is linked with nothing granted: no files, environment, clocks beyond the defaults or
//! network; what the guest writes to stderr is kept to explain a trap.
//!
//! Guests run asynchronously: an evaluation is a future that yields to the executor at every
//! epoch tick, so a policy that loops until its timeout holds a thread for one tick at a time
//! and a server keeps answering on the same threads meanwhile. The blocking methods drive the
//! same futures for callers that are not async (the CLI, tests).

mod convert;

use std::sync::Arc;
use std::time::Instant;

use palisade_sdk::wire::{AdmissionRequest, PolicyMetadata, Verdict};
use sha2::{Digest, Sha256};
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::abi::Abi;
use crate::cache::CacheStatus;
use crate::limits::MemoryCap;
use crate::{Engine, EvalError, Limits, LoadError};

mod bindings {
    wasmtime::component::bindgen!({
        world: "admission-policy",
        path: "../../wit",
        exports: { default: async },
    });
}

use bindings::AdmissionPolicyPre;
use bindings::palisade::admission::log::Level;

/// The version of the `palisade:admission` package this host implements.
pub const WORLD_VERSION: &str = "0.1.0";

/// How much of a guest's stderr is kept to explain a trap.
const STDERR_CAPACITY: usize = 16 << 10;

/// Per-evaluation state: everything a call may touch lives here, nothing is shared.
struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    cap: MemoryCap,
    stderr: MemoryOutputPipe,
    policy: Arc<str>,
    /// When the call in progress must stop; checked at every epoch tick.
    deadline: Instant,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl bindings::palisade::admission::types::Host for State {}

impl bindings::palisade::admission::log::Host for State {
    fn log(&mut self, level: Level, message: String) {
        let policy = &*self.policy;
        match level {
            Level::Trace => tracing::trace!(policy, "{message}"),
            Level::Debug => tracing::debug!(policy, "{message}"),
            Level::Info => tracing::info!(policy, "{message}"),
            Level::Warn => tracing::warn!(policy, "{message}"),
            Level::Error => tracing::error!(policy, "{message}"),
        }
    }
}

/// A compiled, linked and pre-instantiated admission policy. Cheap to share between threads;
/// every evaluation gets a fresh instance.
pub struct Prepared {
    engine: wasmtime::Engine,
    pre: AdmissionPolicyPre<State>,
    metadata: PolicyMetadata,
    name: Arc<str>,
    digest: String,
    cache: CacheStatus,
    default_limits: Limits,
    /// Keeps deadlines firing for as long as the policy can run.
    _ticker: Arc<crate::engine::Ticker>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("name", &self.name)
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

impl Prepared {
    /// Compiles (or loads from the cache), checks the ABI and its version, links and
    /// pre-instantiates the component, then reads its metadata once.
    ///
    /// # Errors
    /// [`LoadError`] naming what is wrong: not wasm, another ABI, another version of this ABI,
    /// a compile or link failure, or a policy that fails while describing itself.
    /// Blocks the calling thread (compiling is CPU work: from async code, call it on a blocking
    /// thread).
    pub fn new(engine: &Engine, bytes: &[u8]) -> Result<Self, LoadError> {
        match Abi::detect(bytes)? {
            Abi::Admission { version } if version == WORLD_VERSION => {}
            Abi::Admission { version } => {
                return Err(LoadError::AbiVersion {
                    found: format!("{}@{version}", crate::abi::ADMISSION_INTERFACE),
                    supported: format!("{}@{WORLD_VERSION}", crate::abi::ADMISSION_INTERFACE),
                });
            }
            found => {
                return Err(LoadError::WrongAbi {
                    expected: Abi::Admission {
                        version: WORLD_VERSION.into(),
                    },
                    found,
                });
            }
        }
        let (component, cache) = engine.compile::<wasmtime::component::Component>(bytes)?;
        let mut linker = Linker::<State>::new(engine.wasmtime());
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(LoadError::Link)?;
        bindings::palisade::admission::log::add_to_linker::<State, HasSelf<State>>(
            &mut linker,
            |s| s,
        )
        .map_err(LoadError::Link)?;
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(LoadError::Link)?;
        let pre = AdmissionPolicyPre::new(instance_pre)
            .map_err(|e| LoadError::MissingExport(format!("{e:#}")))?;
        let mut prepared = Self {
            engine: engine.wasmtime().clone(),
            pre,
            metadata: placeholder_metadata(),
            name: Arc::from("policy"),
            digest: hex::encode(Sha256::digest(bytes)),
            cache,
            default_limits: engine.default_limits(),
            _ticker: engine.ticker(),
        };
        prepared.metadata = block_on(prepared.call(
            prepared.default_limits,
            async |policy, store| {
                let metadata = policy
                    .palisade_admission_policy()
                    .call_metadata(&mut *store)
                    .await?;
                Ok(Ok(convert::metadata_from_abi(metadata)))
            },
        ))
        .map_err(LoadError::Eval)?;
        prepared.name = Arc::from(prepared.metadata.name.as_str());
        Ok(prepared)
    }

    /// The policy's self-description, read at load.
    #[must_use]
    pub fn metadata(&self) -> &PolicyMetadata {
        &self.metadata
    }

    /// The SHA-256 of the module's bytes, hex.
    #[must_use]
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Whether the compiled code came from the cache.
    #[must_use]
    pub fn cache_status(&self) -> CacheStatus {
        self.cache
    }

    /// Checks settings with the policy's own `validate-settings`. Blocks the calling thread.
    ///
    /// # Errors
    /// [`LoadError::Settings`] when the policy rejects them; [`LoadError::Eval`] when the call fails.
    pub fn validate_settings(&self, settings: &str) -> Result<(), LoadError> {
        block_on(self.call(self.default_limits, async |policy, store| {
            Ok(policy
                .palisade_admission_policy()
                .call_validate_settings(&mut *store, settings)
                .await?
                .map_err(|e| EvalError::Settings(convert::settings_error(e))))
        }))
        .map_err(|e| match e {
            EvalError::Settings(s) => LoadError::Settings(s),
            other => LoadError::Eval(other),
        })
    }

    /// Validates `settings` once and binds them with `limits` into a ready [`Policy`].
    ///
    /// # Errors
    /// As [`validate_settings`](Self::validate_settings).
    pub fn configure(
        self: &Arc<Self>,
        settings: &str,
        limits: Option<Limits>,
    ) -> Result<Policy, LoadError> {
        self.validate_settings(settings)?;
        Ok(Policy {
            prepared: Arc::clone(self),
            settings: settings.to_owned(),
            limits: limits.unwrap_or(self.default_limits),
        })
    }

    /// Runs `f` on a fresh instance in a fresh store under `limits`, classifying failures.
    async fn call<R>(
        &self,
        limits: Limits,
        f: impl AsyncFnOnce(
            &bindings::AdmissionPolicy,
            &mut Store<State>,
        ) -> wasmtime::Result<Result<R, EvalError>>,
    ) -> Result<R, EvalError> {
        let mut store = self.store(limits);
        let outcome = match self.pre.instantiate_async(&mut store).await {
            Ok(policy) => f(&policy, &mut store).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(result) => result,
            Err(e) => Err(classify(e, &store, limits)),
        }
    }

    /// A fresh store: its own WASI context (nothing granted, stderr kept), memory cap and
    /// deadline. At every epoch tick the guest yields to the executor, or traps with
    /// `Interrupt` once the deadline (wall clock, see [`arm`]) has passed.
    fn store(&self, limits: Limits) -> Store<State> {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let wasi = WasiCtx::builder().stderr(stderr.clone()).build();
        let state = State {
            wasi,
            table: ResourceTable::new(),
            cap: MemoryCap::new(limits.memory),
            stderr,
            policy: Arc::clone(&self.name),
            deadline: Instant::now(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.cap);
        store.epoch_deadline_callback(|store| {
            Ok(if Instant::now() >= store.data().deadline {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });
        arm(&mut store, limits);
        store
    }
}

/// Starts the clock of one call: the deadline is `limits.timeout` from now, checked at the next
/// epoch tick and every tick after.
fn arm(store: &mut Store<State>, limits: Limits) {
    store.data_mut().deadline = Instant::now() + limits.timeout;
    store.set_epoch_deadline(1);
}

/// Drives one of this module's futures to completion for a blocking caller, on a Tokio runtime
/// of the calling thread's own (a light current-thread one, for WASI's timers). Called from
/// inside a Tokio runtime, where blocking on a future would panic or stall a worker, it runs the
/// future on a thread of its own and waits for it; async callers use the `_async` methods.
fn block_on<F: Future<Output: Send> + Send>(future: F) -> F::Output {
    thread_local! {
        static RUNTIME: std::io::Result<tokio::runtime::Runtime> =
            tokio::runtime::Builder::new_current_thread().enable_all().build();
    }
    if tokio::runtime::Handle::try_current().is_ok() {
        return std::thread::scope(|scope| match scope.spawn(|| block_on(future)).join() {
            Ok(output) => output,
            Err(panic) => std::panic::resume_unwind(panic),
        });
    }
    RUNTIME.with(|runtime| match runtime {
        Ok(runtime) => runtime.block_on(future),
        // Without a runtime of its own (the OS refused its resources), WASI's shared one.
        Err(_) => wasmtime_wasi::runtime::in_tokio(future),
    })
}

fn placeholder_metadata() -> PolicyMetadata {
    PolicyMetadata {
        name: String::new(),
        version: String::new(),
        description: String::new(),
        rules: Vec::new(),
        mutating: false,
    }
}

/// Names what stopped a call: the memory cap, the deadline, or a trap (with the guest's stderr).
fn classify(error: wasmtime::Error, store: &Store<State>, limits: Limits) -> EvalError {
    // A Rust guest's panic message, without the hint about RUST_BACKTRACE.
    let stderr = String::from_utf8_lossy(&store.data().stderr.contents())
        .lines()
        .filter(|line| !line.starts_with("note: run with `RUST_BACKTRACE=1`"))
        .collect::<Vec<_>>()
        .join(" ")
        .trim()
        .to_owned();
    crate::error::classify(error, store.data().cap.refused, limits, &stderr)
}

/// A prepared policy bound to validated settings and limits: what a host evaluates requests with.
#[derive(Debug, Clone)]
pub struct Policy {
    prepared: Arc<Prepared>,
    settings: String,
    limits: Limits,
}

impl Policy {
    /// The prepared policy behind this configuration.
    #[must_use]
    pub fn prepared(&self) -> &Prepared {
        &self.prepared
    }

    /// The limits each evaluation runs under.
    #[must_use]
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// A reusable instance of this policy, for hosts that evaluate many requests (see [`Warm`]).
    #[must_use]
    pub fn warm(&self) -> Warm {
        Warm {
            policy: self.clone(),
            live: None,
        }
    }

    /// Evaluates one request on a fresh instance, blocking the calling thread; from async code
    /// use [`evaluate_async`](Self::evaluate_async).
    ///
    /// # Errors
    /// [`EvalError`]: timeout, memory limit, trap, the policy's own error, or an invalid answer.
    pub fn evaluate(&self, request: &AdmissionRequest) -> Result<Verdict, EvalError> {
        block_on(self.evaluate_async(request))
    }

    /// Evaluates one request on a fresh instance. The future yields at every epoch tick.
    ///
    /// # Errors
    /// As [`evaluate`](Self::evaluate).
    pub async fn evaluate_async(&self, request: &AdmissionRequest) -> Result<Verdict, EvalError> {
        let abi_request = convert::request_to_abi(request);
        self.prepared
            .call(self.limits, async |policy, store| {
                let evaluator = policy.palisade_admission_policy().evaluator();
                let handle = match evaluator.call_create(&mut *store, &self.settings).await? {
                    Ok(handle) => handle,
                    Err(e) => return Ok(Err(EvalError::Settings(convert::settings_error(e)))),
                };
                let result = evaluator
                    .call_validate(&mut *store, handle, &abi_request)
                    .await?;
                Ok(match result {
                    Ok(verdict) => convert::verdict_from_abi(verdict),
                    Err(e) => Err(EvalError::Policy(convert::policy_error(e))),
                })
            })
            .await
    }
}

/// A live instance of a configured policy, reused across evaluations: the instance and its
/// `evaluator` (settings parsed once) are created on first use and kept until a call fails.
///
/// Reuse skips instantiation and settings parsing; what carries over between requests is only
/// the guest's own memory. SDK policies keep no state outside their settings, but a guest
/// could: hosts that cannot trust a policy to be stateless use [`Policy::evaluate`], which
/// gives every request a fresh instance. After any error (trap, timeout, memory limit, bad
/// output) the instance is dropped and the next call starts a new one.
pub struct Warm {
    policy: Policy,
    live: Option<Live>,
}

impl std::fmt::Debug for Warm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Warm")
            .field("policy", &self.policy)
            .field("live", &self.live.is_some())
            .finish()
    }
}

struct Live {
    store: Store<State>,
    policy: bindings::AdmissionPolicy,
    evaluator: wasmtime::component::ResourceAny,
}

impl Warm {
    /// Whether an instance is kept (the next evaluation starts none).
    #[must_use]
    pub fn is_live(&self) -> bool {
        self.live.is_some()
    }

    /// Evaluates one request on the kept instance (starting one if needed), blocking the
    /// calling thread; from async code use [`evaluate_async`](Self::evaluate_async).
    ///
    /// # Errors
    /// As [`Policy::evaluate`]; the instance is discarded afterwards.
    pub fn evaluate(&mut self, request: &AdmissionRequest) -> Result<Verdict, EvalError> {
        block_on(self.evaluate_async(request))
    }

    /// Evaluates one request on the kept instance (starting one if needed). The future yields
    /// at every epoch tick; dropped before it completes, it takes the instance with it.
    ///
    /// # Errors
    /// As [`Policy::evaluate`]; the instance is discarded afterwards.
    pub async fn evaluate_async(
        &mut self,
        request: &AdmissionRequest,
    ) -> Result<Verdict, EvalError> {
        let limits = self.policy.limits;
        let mut live = match self.live.take() {
            Some(live) => live,
            None => self.policy.start().await?,
        };
        arm(&mut live.store, limits);
        let abi_request = convert::request_to_abi(request);
        let result = live
            .policy
            .palisade_admission_policy()
            .evaluator()
            .call_validate(&mut live.store, live.evaluator, &abi_request)
            .await;
        // The policy's own error leaves the instance sound; a trap or an invalid answer does not.
        let (outcome, sound) = match result {
            Ok(Ok(verdict)) => {
                let verdict = convert::verdict_from_abi(verdict);
                let sound = verdict.is_ok();
                (verdict, sound)
            }
            Ok(Err(e)) => (Err(EvalError::Policy(convert::policy_error(e))), true),
            Err(e) => (Err(classify(e, &live.store, limits)), false),
        };
        if sound {
            self.live = Some(live);
        }
        outcome
    }
}

impl Policy {
    /// Instantiates the policy and creates its evaluator, for [`Warm`].
    async fn start(&self) -> Result<Live, EvalError> {
        let mut store = self.prepared.store(self.limits);
        let started = match self.prepared.pre.instantiate_async(&mut store).await {
            Ok(policy) => policy
                .palisade_admission_policy()
                .evaluator()
                .call_create(&mut store, &self.settings)
                .await
                .map(|created| (policy, created)),
            Err(e) => Err(e),
        };
        match started {
            Ok((policy, Ok(evaluator))) => Ok(Live {
                store,
                policy,
                evaluator,
            }),
            Ok((_, Err(e))) => Err(EvalError::Settings(convert::settings_error(e))),
            Err(e) => Err(classify(e, &store, self.limits)),
        }
    }
}
