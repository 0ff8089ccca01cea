//! The one admission API of every front-end, whatever the policy's ABI: a [`Prepared`] policy
//! (compiled and checked once; its ABI module chosen by [`Abi::detect`]) is configured into a
//! [`Policy`] (settings checked once; limits, failurePolicy and mode bound), which evaluates any
//! number of requests on pooled instances and answers each with a [`Decision`]. The
//! AdmissionReview codec is [`review`].
//!
//! Every ABI module has the same shape: prepare once (compile, check exports and version,
//! pre-instantiate, read the metadata), check settings, start an instance with its settings
//! parsed once, evaluate on it; every call under a deadline and a memory cap, every failure an
//! [`EvalError`]. Adding an ABI adds a variant to the two private enums here and nothing to
//! the front-ends.

mod answer;
mod decision;
#[cfg(test)]
mod properties;
pub mod review;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use palisade_sdk::wire::{AdmissionRequest, PolicyMetadata, Verdict};
use sha2::{Digest, Sha256};

use crate::cache::CacheStatus;
use crate::capabilities::{Capabilities, Grants, Scope};
use crate::component;
use crate::engine::Ticker;
use crate::kubewarden;
use crate::{Abi, Engine, EvalError, Limits, LoadError};

pub use answer::AnswerLimits;
pub use decision::{Decision, Failure, FailurePolicy, Mode, Outcome, Spent};

/// A compiled, checked and pre-instantiated admission policy of any supported ABI, with its
/// metadata. Cheap to share between threads; configure it once per set of settings.
pub struct Prepared {
    abi: Abi,
    module: Module,
    digest: String,
    default_limits: Limits,
    /// Keeps deadlines firing for as long as the policy can run.
    _ticker: Arc<Ticker>,
}

/// The ABI module behind a [`Prepared`] policy.
enum Module {
    Component(component::Prepared),
    Kubewarden(kubewarden::Prepared),
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("abi", &self.abi)
            .field("name", &self.metadata().name)
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

impl Prepared {
    /// Tells the module's ABI, then compiles (or loads from the cache), checks, links and
    /// pre-instantiates it and reads its metadata. Blocks the calling thread (compiling is CPU
    /// work: from async code, call it on a blocking thread).
    ///
    /// # Errors
    /// [`LoadError`] naming what is wrong: not wasm, an ABI that is not an admission ABI (a
    /// proxy-wasm filter), an unsupported version, a compile or link failure, or a policy that
    /// fails while describing itself.
    pub fn new(engine: &Engine, bytes: &[u8]) -> Result<Self, LoadError> {
        let detected = Abi::detect(bytes)?;
        let limits = engine.default_limits();
        let module = match &detected {
            Abi::Admission { version } => Module::Component(block_on(component::Prepared::new(
                engine, bytes, version, limits,
            ))?),
            Abi::Kubewarden | Abi::WasiCommand => Module::Kubewarden(block_on(
                kubewarden::Prepared::new(engine, bytes, &detected, limits),
            )?),
            found => {
                return Err(LoadError::WrongAbi {
                    expected: component::expected_abi(),
                    found: found.clone(),
                });
            }
        };
        // A Kubewarden policy runs in the mode its metadata names, whatever it exports.
        let abi = match &module {
            Module::Kubewarden(k) => k.abi(),
            Module::Component(_) => detected,
        };
        Ok(Self {
            abi,
            module,
            digest: hex::encode(Sha256::digest(bytes)),
            default_limits: limits,
            _ticker: engine.ticker(),
        })
    }

    /// The ABI the module speaks.
    #[must_use]
    pub fn abi(&self) -> &Abi {
        &self.abi
    }

    /// The policy's self-description, read at load.
    #[must_use]
    pub fn metadata(&self) -> &PolicyMetadata {
        match &self.module {
            Module::Component(c) => c.metadata(),
            Module::Kubewarden(k) => k.metadata(),
        }
    }

    /// The metadata Kubewarden's tools embedded in the module (a Kubewarden policy's execution
    /// mode, context-aware resources, background audit, ...), if it has any.
    #[must_use]
    pub fn kubewarden(&self) -> Option<&kubewarden::Metadata> {
        match &self.module {
            Module::Component(_) => None,
            Module::Kubewarden(k) => k.kubewarden(),
        }
    }

    /// The SHA-256 of the module's bytes, hex.
    #[must_use]
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Whether the compiled code came from the cache.
    #[must_use]
    pub fn cache_status(&self) -> CacheStatus {
        match &self.module {
            Module::Component(c) => c.cache_status(),
            Module::Kubewarden(k) => k.cache_status(),
        }
    }

    /// Checks settings (JSON text; empty means the defaults) with the policy's own validation,
    /// under the engine's default limits. Blocks the calling thread.
    ///
    /// # Errors
    /// [`LoadError::Settings`] when the policy rejects them; [`LoadError::Eval`] when the call
    /// fails.
    pub fn validate_settings(&self, settings: &str) -> Result<(), LoadError> {
        let result = match &self.module {
            Module::Component(c) => block_on(c.validate_settings(settings, self.default_limits)),
            Module::Kubewarden(k) => block_on(k.validate_settings(settings, self.default_limits)),
        };
        result.map_err(|e| match e {
            EvalError::Settings(s) => LoadError::Settings(s),
            other => LoadError::Eval(other),
        })
    }

    /// Validates `settings` once and binds them with `options` into a ready [`Policy`].
    /// Blocks the calling thread.
    ///
    /// # Errors
    /// As [`validate_settings`](Self::validate_settings).
    pub fn configure(
        self: &Arc<Self>,
        settings: &str,
        options: Options,
    ) -> Result<Policy, LoadError> {
        self.validate_settings(settings)?;
        let id = options.id.unwrap_or_else(|| self.metadata().name.clone());
        let scope = Arc::new(Scope {
            capabilities: options.capabilities.unwrap_or_default(),
            grants: options.grants,
            namespace: id.clone(),
        });
        Ok(Policy {
            id,
            scope,
            prepared: Arc::clone(self),
            settings: settings.to_owned(),
            limits: options.limits.unwrap_or(self.default_limits),
            failure_policy: options.failure_policy,
            mode: options.mode,
            instances: options.instances,
            answer: options.answer,
            turns: options.max_concurrency.map(tokio::sync::Semaphore::new),
            pool: Mutex::new(Vec::new()),
            busy: AtomicUsize::new(0),
        })
    }
}

/// How a configured policy is run; the default is the engine's limits, failurePolicy `Fail`,
/// protect mode, warm instances and no capabilities, under the policy's own name.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The embedder's capabilities (shared by every policy it configures, so that state
    /// outlives reloads); a private set if unset.
    pub capabilities: Option<Arc<Capabilities>>,
    /// What of them the policy may use; its state lives under its id.
    pub grants: Grants,
    /// The id the host knows the policy by (in decisions and logs); the policy's name if unset.
    pub id: Option<String>,
    /// Deadline and memory cap of each evaluation; the engine's defaults if unset.
    pub limits: Option<Limits>,
    /// What a failure to decide becomes.
    pub failure_policy: FailurePolicy,
    /// Whether denials are enforced.
    pub mode: Mode,
    /// Whether instances are kept between requests.
    pub instances: Instances,
    /// Bounds on the policy's answers.
    pub answer: AnswerLimits,
    /// Evaluations of this policy at once; more wait their turn (without using a worker), so
    /// one slow or hostile policy cannot take every worker from the others. Unbounded if unset.
    pub max_concurrency: Option<usize>,
}

/// Whether a policy's instances are reused between requests.
///
/// Reuse skips instantiation and settings parsing; what carries over between requests is the
/// guest's own memory. SDK policies keep no state outside their settings, but a guest could:
/// for policies that cannot be trusted to be stateless, `Fresh` gives every request a new
/// instance. A warm instance is dropped after any trap, timeout, memory-limit error or invalid
/// answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instances {
    /// Keep up to `max_idle` idle instances and reuse them.
    Warm {
        /// Idle instances kept; more are dropped when they finish.
        max_idle: usize,
    },
    /// A new instance for every request.
    Fresh,
}

impl Default for Instances {
    fn default() -> Self {
        Self::Warm { max_idle: 64 }
    }
}

/// A prepared policy bound to validated settings and options: what hosts evaluate with.
pub struct Policy {
    id: String,
    scope: Arc<Scope>,
    prepared: Arc<Prepared>,
    settings: String,
    limits: Limits,
    failure_policy: FailurePolicy,
    mode: Mode,
    instances: Instances,
    answer: AnswerLimits,
    /// Turns to evaluate, when the policy's concurrency is bounded.
    turns: Option<tokio::sync::Semaphore>,
    /// Idle instances with the time they became idle, most recently used last.
    pool: Mutex<Vec<(Instance, Instant)>>,
    /// Evaluations in progress.
    busy: AtomicUsize,
}

/// A live instance of any ABI, its settings already parsed.
enum Instance {
    Component(component::Instance),
    Kubewarden(kubewarden::Instance),
}

impl Instance {
    /// Evaluates one request; also says whether the instance may be reused.
    async fn evaluate(
        &mut self,
        limits: Limits,
        request: &AdmissionRequest,
    ) -> (Result<Verdict, EvalError>, bool) {
        match self {
            Self::Component(i) => i.evaluate(limits, request).await,
            Self::Kubewarden(i) => i.evaluate(limits, request).await,
        }
    }
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("id", &self.id)
            .field("prepared", &self.prepared)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// One evaluation's result, whether it started an instance, and where its time went.
#[derive(Debug)]
pub struct Evaluation {
    /// The verdict (within the policy's [`AnswerLimits`]), or why there is none.
    pub result: Result<Verdict, EvalError>,
    /// Whether an instance was started for it.
    pub started: bool,
    /// Time spent waiting for a turn (the policy's `max_concurrency`).
    pub waited: Duration,
    /// Time spent starting an instance and evaluating.
    pub ran: Duration,
}

/// A policy's instances at one moment, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceCount {
    /// Live instances waiting for a request.
    pub idle: usize,
    /// Instances evaluating a request.
    pub busy: usize,
}

impl Policy {
    /// The id the host knows the policy by.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

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

    /// What a failure to decide becomes.
    #[must_use]
    pub fn failure_policy(&self) -> FailurePolicy {
        self.failure_policy
    }

    /// Whether denials are enforced.
    #[must_use]
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Idle and busy instances.
    #[must_use]
    pub fn instances(&self) -> InstanceCount {
        InstanceCount {
            idle: self.pool.lock().map_or(0, |pool| pool.len()),
            busy: self.busy.load(Ordering::Relaxed),
        }
    }

    /// Evaluates one request on an idle instance (or a new one). The future yields at every
    /// epoch tick; dropped before it completes (client gone, server timeout), it takes its
    /// instance with it.
    pub async fn evaluate(&self, request: &AdmissionRequest) -> Evaluation {
        let queued = Instant::now();
        let _turn = match &self.turns {
            // The semaphore is never closed, so acquiring fails never.
            Some(turns) => turns.acquire().await.ok(),
            None => None,
        };
        let waited = queued.elapsed();
        let running = Instant::now();
        let _busy = Busy::enter(&self.busy);
        let (result, started) = self.run(request).await;
        let result = result.and_then(|mut verdict| {
            self.answer
                .apply(&mut verdict)
                .map(|()| verdict)
                .map_err(EvalError::BadOutput)
        });
        Evaluation {
            result,
            started,
            waited,
            ran: running.elapsed(),
        }
    }

    /// Evaluates on an idle instance or a new one; says whether it started one.
    async fn run(&self, request: &AdmissionRequest) -> (Result<Verdict, EvalError>, bool) {
        let max_idle = match self.instances {
            Instances::Fresh => {
                let result = match self.start().await {
                    Ok(mut instance) => instance.evaluate(self.limits, request).await.0,
                    Err(e) => Err(e),
                };
                return (result, true);
            }
            Instances::Warm { max_idle } => max_idle,
        };
        let idle = self.pool.lock().ok().and_then(|mut pool| pool.pop());
        let (mut instance, started) = match idle {
            Some((instance, _)) => (instance, false),
            None => match self.start().await {
                Ok(instance) => (instance, true),
                Err(e) => return (Err(e), true),
            },
        };
        let (result, sound) = instance.evaluate(self.limits, request).await;
        if sound
            && let Ok(mut pool) = self.pool.lock()
            && pool.len() < max_idle
        {
            pool.push((instance, Instant::now()));
        }
        (result, started)
    }

    /// Drops the instances idle for longer than `idle_for` (their memory goes back to the
    /// system); returns how many. Hosts call it now and then so that a burst's instances do not
    /// stay for good.
    pub fn drop_idle(&self, idle_for: Duration) -> usize {
        let Ok(mut pool) = self.pool.lock() else {
            return 0;
        };
        let now = Instant::now();
        // Oldest first: the instances to drop are a prefix.
        let stale = pool
            .iter()
            .take_while(|(_, since)| now.duration_since(*since) > idle_for)
            .count();
        let dropped: Vec<_> = pool.drain(..stale).collect();
        drop(pool);
        dropped.len()
    }

    async fn start(&self) -> Result<Instance, EvalError> {
        match &self.prepared.module {
            Module::Component(c) => c
                .start(&self.settings, self.limits, &self.scope)
                .await
                .map(Instance::Component),
            Module::Kubewarden(k) => k
                .start(&self.settings, self.limits, &self.scope)
                .await
                .map(Instance::Kubewarden),
        }
    }

    /// The grants the policy was configured with.
    #[must_use]
    pub fn grants(&self) -> &Grants {
        &self.scope.grants
    }

    /// [`evaluate`](Self::evaluate) for callers that are not async (the CLI, tests): blocks
    /// the calling thread.
    pub fn evaluate_blocking(&self, request: &AdmissionRequest) -> Evaluation {
        block_on(self.evaluate(request))
    }

    /// The answer to one request: the verdict, or what the failurePolicy makes of a failure,
    /// in the policy's mode.
    pub async fn decide(&self, request: &AdmissionRequest) -> Decision {
        self.decide_enforced(request)
            .await
            .in_mode(&self.id, self.mode)
    }

    /// [`decide`](Self::decide) as if in protect mode (what groups combine).
    pub async fn decide_enforced(&self, request: &AdmissionRequest) -> Decision {
        let evaluation = self.evaluate(request).await;
        let result = evaluation.result.map_err(|e| Failure::from(&e));
        let mut decision = Decision::enforced(&self.id, &request.uid, result, self.failure_policy);
        if evaluation.started {
            decision.started.push(self.id.clone());
        }
        decision.spent.push(Spent {
            policy: self.id.clone(),
            waited: evaluation.waited,
            ran: evaluation.ran,
        });
        decision
    }

    /// [`decide`](Self::decide), blocking the calling thread.
    pub fn decide_blocking(&self, request: &AdmissionRequest) -> Decision {
        block_on(self.decide(request))
    }
}

/// Counts one evaluation in progress, until dropped (also when the request is dropped midway).
struct Busy<'a>(&'a AtomicUsize);

impl<'a> Busy<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Drives a guest future to completion for a blocking caller, on a Tokio runtime of the calling
/// thread's own (a light current-thread one, for WASI's timers). Called from inside a Tokio
/// runtime, where blocking on a future would panic or stall a worker, it runs the future on a
/// thread of its own and waits for it; async callers use the async methods.
pub(crate) fn block_on<F: Future<Output: Send> + Send>(future: F) -> F::Output {
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
