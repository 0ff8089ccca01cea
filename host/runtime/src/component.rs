//! Host of the `palisade:admission` world: admission policies compiled as components
//! (wasm32-wasip2). The generated bindings stay private; callers see the SDK's wire types.
//! WASI is linked with nothing granted: no files, environment, clocks beyond the defaults or
//! network; what the guest writes to stderr is kept to explain a trap.

mod convert;

use std::sync::Arc;

use palisade_sdk::wire::{AdmissionRequest, PolicyMetadata, Verdict};
use sha2::{Digest, Sha256};
use wasmtime::Store;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::abi::Abi;
use crate::cache::CacheStatus;
use crate::limits::{MemoryCap, TickBudget};
use crate::{Engine, EvalError, Limits, LoadError};

mod bindings {
    wasmtime::component::bindgen!({
        world: "admission-policy",
        path: "../../wit",
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
    tick: TickBudget,
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
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(LoadError::Link)?;
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
            tick: TickBudget {
                tick_nanos: engine.tick().as_nanos(),
            },
            _ticker: engine.ticker(),
        };
        prepared.metadata = prepared
            .call(prepared.default_limits, |policy, store| {
                let metadata = policy
                    .palisade_admission_policy()
                    .call_metadata(&mut *store)?;
                Ok(Ok(convert::metadata_from_abi(metadata)))
            })
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

    /// Checks settings with the policy's own `validate-settings`.
    ///
    /// # Errors
    /// [`LoadError::Settings`] when the policy rejects them; [`LoadError::Eval`] when the call fails.
    pub fn validate_settings(&self, settings: &str) -> Result<(), LoadError> {
        self.call(self.default_limits, |policy, store| {
            Ok(policy
                .palisade_admission_policy()
                .call_validate_settings(&mut *store, settings)?
                .map_err(|e| EvalError::Settings(convert::settings_error(e))))
        })
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
    fn call<R>(
        &self,
        limits: Limits,
        f: impl FnOnce(
            &bindings::AdmissionPolicy,
            &mut Store<State>,
        ) -> wasmtime::Result<Result<R, EvalError>>,
    ) -> Result<R, EvalError> {
        let mut store = self.store(limits);
        let outcome = self
            .pre
            .instantiate(&mut store)
            .and_then(|policy| f(&policy, &mut store));
        match outcome {
            Ok(result) => result,
            Err(e) => Err(classify(e, &store, limits)),
        }
    }

    /// A fresh store: its own WASI context (nothing granted, stderr kept), memory cap and deadline.
    fn store(&self, limits: Limits) -> Store<State> {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let wasi = WasiCtx::builder().stderr(stderr.clone()).build();
        let state = State {
            wasi,
            table: ResourceTable::new(),
            cap: MemoryCap::new(limits.memory),
            stderr,
            policy: Arc::clone(&self.name),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.cap);
        store.set_epoch_deadline(self.tick.ticks(limits.timeout));
        store
    }
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

    /// Evaluates one request on a fresh instance. Blocks the calling thread (WASI host calls
    /// block on their own runtime): from async code, call it where blocking is allowed
    /// (`block_in_place`, `spawn_blocking`).
    ///
    /// # Errors
    /// [`EvalError`]: timeout, memory limit, trap, the policy's own error, or an invalid answer.
    pub fn evaluate(&self, request: &AdmissionRequest) -> Result<Verdict, EvalError> {
        let abi_request = convert::request_to_abi(request);
        self.prepared.call(self.limits, |policy, store| {
            let evaluator = policy.palisade_admission_policy().evaluator();
            let handle = match evaluator.call_create(&mut *store, &self.settings)? {
                Ok(handle) => handle,
                Err(e) => return Ok(Err(EvalError::Settings(convert::settings_error(e)))),
            };
            let result = evaluator.call_validate(&mut *store, handle, &abi_request)?;
            Ok(match result {
                Ok(verdict) => convert::verdict_from_abi(verdict),
                Err(e) => Err(EvalError::Policy(convert::policy_error(e))),
            })
        })
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
    /// Evaluates one request on the kept instance (starting one if needed).
    ///
    /// # Errors
    /// As [`Policy::evaluate`]; the instance is discarded afterwards.
    pub fn evaluate(&mut self, request: &AdmissionRequest) -> Result<Verdict, EvalError> {
        let limits = self.policy.limits;
        let prepared = Arc::clone(&self.policy.prepared);
        let live = match &mut self.live {
            Some(live) => live,
            slot @ None => slot.insert(self.policy.start()?),
        };
        live.store
            .set_epoch_deadline(prepared.tick.ticks(limits.timeout));
        let abi_request = convert::request_to_abi(request);
        let result = live
            .policy
            .palisade_admission_policy()
            .evaluator()
            .call_validate(&mut live.store, live.evaluator, &abi_request);
        let outcome = match result {
            Ok(Ok(verdict)) => convert::verdict_from_abi(verdict),
            Ok(Err(e)) => return Err(EvalError::Policy(convert::policy_error(e))),
            Err(e) => Err(classify(e, &live.store, limits)),
        };
        if outcome.is_err() {
            self.live = None;
        }
        outcome
    }
}

impl Policy {
    /// Instantiates the policy and creates its evaluator, for [`Warm`].
    fn start(&self) -> Result<Live, EvalError> {
        let mut store = self.prepared.store(self.limits);
        let started = self
            .prepared
            .pre
            .instantiate(&mut store)
            .and_then(|policy| {
                let created = policy
                    .palisade_admission_policy()
                    .evaluator()
                    .call_create(&mut store, &self.settings)?;
                Ok((policy, created))
            });
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
