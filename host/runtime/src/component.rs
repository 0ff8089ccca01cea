//! The ABI module of `palisade:admission` components (wasm32-wasip2): prepare once (compile,
//! check the world version, link, pre-instantiate, read the metadata), check settings, start
//! instances with settings parsed once, evaluate requests on them. The generated bindings stay
//! private; callers see the SDK's wire types. WASI is linked with nothing granted: no files,
//! environment, clocks beyond the defaults or network; what the guest writes to stderr is kept to
//! explain a trap.
//!
//! Guests run asynchronously: an evaluation is a future that yields to the executor at every
//! epoch tick, so a policy that loops until its timeout holds a thread for one tick at a time.

mod convert;

use std::sync::Arc;
use std::time::Instant;

use palisade_sdk::wire::{AdmissionRequest, PolicyMetadata, Verdict};
use wasmtime::component::{HasSelf, Linker, ResourceAny, ResourceTable};
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::abi::{ADMISSION_INTERFACE, Abi};
use crate::cache::CacheStatus;
use crate::limits::MemoryCap;
use crate::{Engine, EvalError, Limits, LoadError};

mod bindings {
    wasmtime::component::bindgen!({
        world: "admission-policy",
        path: "../../wit",
        exports: { default: async },
        // Requests are lowered into the guest straight from the host's parse, not copied first.
        ownership: Borrowing { duplicate_if_necessary: false },
    });
}

use bindings::AdmissionPolicyPre;
use bindings::palisade::admission::log::Level;

/// The version of the `palisade:admission` package this host implements.
pub(crate) const WORLD_VERSION: &str = "0.1.0";

/// How much of a guest's stderr is kept to explain a trap.
const STDERR_CAPACITY: usize = 16 << 10;

/// Per-instance state: everything a call may touch lives here, nothing is shared.
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

/// A compiled, linked and pre-instantiated admission component.
pub(crate) struct Prepared {
    engine: wasmtime::Engine,
    pre: AdmissionPolicyPre<State>,
    metadata: PolicyMetadata,
    name: Arc<str>,
    cache: CacheStatus,
}

impl Prepared {
    /// Compiles (or loads from the cache), checks the world version, links and
    /// pre-instantiates the component, then reads its metadata once under `limits`.
    pub(crate) async fn new(
        engine: &Engine,
        bytes: &[u8],
        version: &str,
        limits: Limits,
    ) -> Result<Self, LoadError> {
        if version != WORLD_VERSION {
            return Err(LoadError::AbiVersion {
                found: format!("{ADMISSION_INTERFACE}@{version}"),
                supported: format!("{ADMISSION_INTERFACE}@{WORLD_VERSION}"),
            });
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
            metadata: PolicyMetadata::default(),
            name: Arc::from("policy"),
            cache,
        };
        prepared.metadata = prepared
            .call(limits, async |policy, store| {
                let metadata = policy
                    .palisade_admission_policy()
                    .call_metadata(&mut *store)
                    .await?;
                Ok(Ok(convert::metadata_from_abi(metadata)))
            })
            .await
            .map_err(LoadError::Eval)?;
        prepared.name = Arc::from(prepared.metadata.name.as_str());
        Ok(prepared)
    }

    /// The policy's self-description, read at load.
    pub(crate) fn metadata(&self) -> &PolicyMetadata {
        &self.metadata
    }

    /// Whether the compiled code came from the cache.
    pub(crate) fn cache_status(&self) -> CacheStatus {
        self.cache
    }

    /// Checks settings with the policy's own `validate-settings`.
    pub(crate) async fn validate_settings(
        &self,
        settings: &str,
        limits: Limits,
    ) -> Result<(), EvalError> {
        self.call(limits, async |policy, store| {
            Ok(policy
                .palisade_admission_policy()
                .call_validate_settings(&mut *store, settings)
                .await?
                .map_err(|e| EvalError::Settings(convert::settings_error(e))))
        })
        .await
    }

    /// Evaluates one request on a fresh instance whose evaluator is created for this request.
    pub(crate) async fn evaluate_fresh(
        &self,
        settings: &str,
        limits: Limits,
        request: &AdmissionRequest,
    ) -> Result<Verdict, EvalError> {
        let lists = convert::Lists::new(request);
        let extra = lists.extra();
        let abi_request = convert::request_to_abi(request, &lists, &extra);
        self.call(limits, async |policy, store| {
            let evaluator = policy.palisade_admission_policy().evaluator();
            let handle = match evaluator.call_create(&mut *store, settings).await? {
                Ok(handle) => handle,
                Err(e) => return Ok(Err(EvalError::Settings(convert::settings_error(e)))),
            };
            let result = evaluator
                .call_validate(&mut *store, handle, abi_request)
                .await?;
            Ok(match result {
                Ok(verdict) => convert::verdict_from_abi(verdict),
                Err(e) => Err(EvalError::Policy(convert::policy_error(e))),
            })
        })
        .await
    }

    /// Starts an instance and creates its evaluator with `settings`, for reuse across requests.
    pub(crate) async fn start(
        &self,
        settings: &str,
        limits: Limits,
    ) -> Result<Instance, EvalError> {
        let mut store = self.store(limits);
        let started = match self.pre.instantiate_async(&mut store).await {
            Ok(policy) => policy
                .palisade_admission_policy()
                .evaluator()
                .call_create(&mut store, settings)
                .await
                .map(|created| (policy, created)),
            Err(e) => Err(e),
        };
        match started {
            Ok((policy, Ok(evaluator))) => Ok(Instance {
                store,
                policy,
                evaluator,
            }),
            Ok((_, Err(e))) => Err(EvalError::Settings(convert::settings_error(e))),
            Err(e) => Err(classify(e, &store, limits)),
        }
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

/// A live instance with its evaluator (settings parsed once), reused across requests.
pub(crate) struct Instance {
    store: Store<State>,
    policy: bindings::AdmissionPolicy,
    evaluator: ResourceAny,
}

impl Instance {
    /// Evaluates one request; also says whether the instance is still sound (a trap, a timeout
    /// or an invalid answer leaves it unusable; the policy's own error does not).
    pub(crate) async fn evaluate(
        &mut self,
        limits: Limits,
        request: &AdmissionRequest,
    ) -> (Result<Verdict, EvalError>, bool) {
        arm(&mut self.store, limits);
        let lists = convert::Lists::new(request);
        let extra = lists.extra();
        let abi_request = convert::request_to_abi(request, &lists, &extra);
        let result = self
            .policy
            .palisade_admission_policy()
            .evaluator()
            .call_validate(&mut self.store, self.evaluator, abi_request)
            .await;
        match result {
            Ok(Ok(verdict)) => {
                let verdict = convert::verdict_from_abi(verdict);
                let sound = verdict.is_ok();
                (verdict, sound)
            }
            Ok(Err(e)) => (Err(EvalError::Policy(convert::policy_error(e))), true),
            Err(e) => (Err(classify(e, &self.store, limits)), false),
        }
    }
}

/// The ABI a component must have to be prepared here: `palisade:admission/policy@<version>`.
pub(crate) fn expected_abi() -> Abi {
    Abi::Admission {
        version: WORLD_VERSION.into(),
    }
}
