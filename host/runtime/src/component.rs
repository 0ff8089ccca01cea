//! The ABI module of `palisade:admission` components (wasm32-wasip2), worlds 0.2.2 (and 0.2.1 and
//! 0.2.0, whose imports are subsets of it, through the same bindings: wasmtime links semver-compatible
//! names) and 0.1.0:
//! prepare once (compile, check the world version, link, pre-instantiate, read the metadata),
//! check settings, start instances with settings parsed once, evaluate requests on them. The
//! generated bindings stay private; callers see the SDK's wire types. The older world is served
//! by converting to and from the newest one's types (`v0_1`).
//!
//! WASI is linked with nothing granted: no files, environment or network, and clocks that read
//! zero unless the policy has the `clock` capability; what the guest writes to stderr is kept
//! to explain a trap. The world's capability imports answer from the policy's [`Scope`]: what
//! its grants do not cover is a `denied` error to the guest.
//!
//! Guests run asynchronously: an evaluation is a future that yields to the executor at every
//! epoch tick, so a policy that loops until its timeout holds a thread for one tick at a time.
//! A capability call is bounded by the same deadline: while the guest waits on the host no
//! epoch interrupt can fire, so the host stops waiting itself when the deadline passes.

mod convert;
mod v0_1;

use std::sync::Arc;
use std::time::{Duration, Instant};

use palisade_sdk::wire::{AdmissionRequest, PolicyMetadata, Verdict};
use wasmtime::component::{HasSelf, Linker, ResourceAny, ResourceTable};
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{
    HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView,
};

use crate::abi::{ADMISSION_INTERFACE, Abi};
use crate::cache::CacheStatus;
use crate::capabilities::supply_chain::{self as chain, Refusal};
use crate::capabilities::{Clock, Scope, Shape, StateError};
use crate::error::DeadlineExceeded;
use crate::limits::MemoryCap;
use crate::{Engine, EvalError, Limits, LoadError};

mod bindings {
    wasmtime::component::bindgen!({
        world: "admission-policy",
        path: "../../wit",
        imports: { default: async | trappable },
        exports: { default: async },
        // Requests are lowered into the guest straight from the host's parse, not copied first.
        ownership: Borrowing { duplicate_if_necessary: false },
    });
}

use bindings::palisade::admission::types::CapabilityError;
use bindings::palisade::admission::{clock, data, log, rate_limit, state, supply_chain, types};

/// The newest version of the `palisade:admission` package, the one the SDK builds.
pub(crate) const WORLD_VERSION: &str = "0.2.2";

/// Older versions served by the newest world's bindings: semver-compatible, with fewer imports.
const COMPATIBLE_VERSIONS: [&str; 2] = ["0.2.0", "0.2.1"];

/// How much of a guest's stderr is kept to explain a trap.
const STDERR_CAPACITY: usize = 16 << 10;

/// Per-instance state: everything a call may touch lives here or in the policy's scope.
struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    cap: MemoryCap,
    stderr: MemoryOutputPipe,
    policy: Arc<str>,
    /// What the policy may use; `None` while loading (metadata, settings checks).
    scope: Option<Arc<Scope>>,
    /// When the call in progress must stop; checked at every epoch tick and by host calls.
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

impl State {
    /// The scope, if it grants `capability`; the guest's error otherwise.
    fn granted(
        &self,
        capability: &str,
        allowed: impl FnOnce(&Scope) -> bool,
    ) -> Result<&Arc<Scope>, CapabilityError> {
        match &self.scope {
            Some(scope) if allowed(scope) => Ok(scope),
            Some(_) => Err(CapabilityError::Denied(format!(
                "policy {} is not granted the {capability} capability",
                self.policy
            ))),
            None => Err(CapabilityError::Denied(format!(
                "capabilities are not available while the policy is loaded ({capability})"
            ))),
        }
    }
}

/// Waits for a host future, at most until the call's `deadline`; past it, the call ends as a
/// timeout (a trap the classifier names so).
pub(crate) async fn before<T>(
    deadline: Instant,
    future: impl Future<Output = T>,
) -> wasmtime::Result<T> {
    tokio::time::timeout_at(deadline.into(), future)
        .await
        .map_err(|_| wasmtime::Error::new(DeadlineExceeded))
}

impl types::Host for State {}

impl log::Host for State {
    async fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let policy = &*self.policy;
        match level {
            log::Level::Trace => tracing::trace!(policy, "{message}"),
            log::Level::Debug => tracing::debug!(policy, "{message}"),
            log::Level::Info => tracing::info!(policy, "{message}"),
            log::Level::Warn => tracing::warn!(policy, "{message}"),
            log::Level::Error => tracing::error!(policy, "{message}"),
        }
        Ok(())
    }
}

impl clock::Host for State {
    async fn now(&mut self) -> wasmtime::Result<Result<u64, CapabilityError>> {
        Ok(self.granted("clock", |s| s.grants.clock).map(|scope| {
            u64::try_from(scope.capabilities.clock().now().as_nanos()).unwrap_or(u64::MAX)
        }))
    }
}

fn state_error(error: StateError) -> CapabilityError {
    match error {
        StateError::Invalid(message) => CapabilityError::Invalid(message),
        StateError::Unavailable(message) => CapabilityError::Unavailable(message),
    }
}

impl state::Host for State {
    async fn get(
        &mut self,
        key: String,
    ) -> wasmtime::Result<Result<Option<state::Entry>, CapabilityError>> {
        let scope = match self.granted("state", |s| s.grants.state) {
            Ok(scope) => Arc::clone(scope),
            Err(denied) => return Ok(Err(denied)),
        };
        let store = scope.capabilities.state();
        let answer = before(self.deadline, store.get(&scope.namespace, &key)).await?;
        Ok(answer
            .map(|entry| {
                entry.map(|e| state::Entry {
                    value: e.value,
                    cas: e.cas,
                })
            })
            .map_err(state_error))
    }

    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
        cas: u32,
    ) -> wasmtime::Result<Result<bool, CapabilityError>> {
        let scope = match self.granted("state", |s| s.grants.state) {
            Ok(scope) => Arc::clone(scope),
            Err(denied) => return Ok(Err(denied)),
        };
        let store = scope.capabilities.state();
        let answer = before(self.deadline, store.set(&scope.namespace, &key, value, cas)).await?;
        Ok(answer.map_err(state_error))
    }
}

/// Milliseconds for the WIT's `u64` fields: the largest value for "never".
fn whole_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl rate_limit::Host for State {
    async fn take(
        &mut self,
        name: String,
        shape: rate_limit::Shape,
        tokens: u64,
    ) -> wasmtime::Result<Result<rate_limit::Taken, CapabilityError>> {
        let scope = match self.granted("rate-limit", |s| s.grants.rate_limit) {
            Ok(scope) => Arc::clone(scope),
            Err(denied) => return Ok(Err(denied)),
        };
        let shape = Shape {
            capacity: shape.capacity,
            refill_tokens: shape.refill_tokens,
            refill_period_ms: shape.refill_period_ms,
        };
        if let Err(message) = shape.check(tokens) {
            return Ok(Err(CapabilityError::Invalid(message)));
        }
        let buckets = scope.capabilities.buckets();
        let answer = before(
            self.deadline,
            buckets.take(&scope.namespace, &name, shape, tokens),
        )
        .await?;
        Ok(answer
            .map(|t| rate_limit::Taken {
                allowed: t.allowed,
                remaining: t.remaining,
                retry_after_ms: whole_millis(t.retry_after),
                reset_ms: whole_millis(t.reset),
            })
            .map_err(state_error))
    }
}

impl data::Host for State {
    async fn get(
        &mut self,
        table: String,
        key: String,
    ) -> wasmtime::Result<Result<Option<String>, CapabilityError>> {
        let capability = format!("data table {table:?}");
        Ok(self
            .granted(&capability, |s| s.grants.data_table(&table))
            .and_then(|scope| {
                scope
                    .capabilities
                    .data()
                    .get(&table, &key)
                    .map(|value| value.map(str::to_owned))
                    .ok_or_else(|| unknown_table(&table))
            }))
    }

    async fn keys(
        &mut self,
        table: String,
        prefix: String,
    ) -> wasmtime::Result<Result<Vec<String>, CapabilityError>> {
        let capability = format!("data table {table:?}");
        Ok(self
            .granted(&capability, |s| s.grants.data_table(&table))
            .and_then(|scope| {
                scope
                    .capabilities
                    .data()
                    .keys(&table, &prefix)
                    .ok_or_else(|| unknown_table(&table))
            }))
    }
}

impl supply_chain::Host for State {
    async fn resolve(
        &mut self,
        image: String,
    ) -> wasmtime::Result<Result<String, CapabilityError>> {
        let verifier = match self.supply_chain() {
            Ok(verifier) => verifier,
            Err(refused) => return Ok(Err(refused)),
        };
        let answer = before(self.deadline, verifier.resolve(&image)).await?;
        Ok(answer.map_err(CapabilityError::Unavailable))
    }

    async fn signatures(
        &mut self,
        image: String,
        signer: supply_chain::Signer,
        annotations: Vec<(String, String)>,
    ) -> wasmtime::Result<Verified<supply_chain::Signature>> {
        let verifier = match self.supply_chain() {
            Ok(verifier) => verifier,
            Err(refused) => return Ok(Err(refused)),
        };
        let signer = wanted(signer);
        let answer = before(
            self.deadline,
            verifier.signatures(&image, &signer, &annotations),
        )
        .await?;
        Ok(verified(answer, |s| supply_chain::Signature {
            signed_by: signed_by(s.signed_by),
            annotations: s.annotations,
        }))
    }

    async fn attestations(
        &mut self,
        image: String,
        signer: supply_chain::Signer,
        predicate_type: String,
    ) -> wasmtime::Result<Verified<supply_chain::Attestation>> {
        let verifier = match self.supply_chain() {
            Ok(verifier) => verifier,
            Err(refused) => return Ok(Err(refused)),
        };
        let signer = wanted(signer);
        let answer = before(
            self.deadline,
            verifier.attestations(&image, &signer, &predicate_type),
        )
        .await?;
        Ok(verified(answer, |a| supply_chain::Attestation {
            signed_by: signed_by(a.signed_by),
            statement: a.statement,
        }))
    }
}

/// What the guest gets from a verification: the evidence, why there is none, or why the host
/// could not tell.
type Verified<T> = Result<Result<Vec<T>, supply_chain::Rejection>, CapabilityError>;

impl State {
    /// The host's verifier, if the scope grants `supply-chain` and the host has one.
    fn supply_chain(&self) -> Result<Arc<dyn chain::SupplyChain>, CapabilityError> {
        let scope = self.granted("supply-chain", |s| s.grants.supply_chain)?;
        scope.capabilities.supply_chain().cloned().ok_or_else(|| {
            CapabilityError::Unavailable("this host verifies no image signatures".to_owned())
        })
    }
}

fn verified<T, U>(answer: Result<Vec<T>, Refusal>, convert: impl FnMut(T) -> U) -> Verified<U> {
    match answer {
        Ok(found) => Ok(Ok(found.into_iter().map(convert).collect())),
        Err(Refusal::Missing(why)) => Ok(Err(supply_chain::Rejection::Missing(why))),
        Err(Refusal::Unverified(why)) => Ok(Err(supply_chain::Rejection::Unverified(why))),
        Err(Refusal::Invalid(why)) => Err(CapabilityError::Invalid(why)),
        Err(Refusal::Unavailable(why)) => Err(CapabilityError::Unavailable(why)),
    }
}

fn signed_by(by: chain::SignedBy) -> supply_chain::SignedBy {
    supply_chain::SignedBy {
        source: by.source,
        subject: by.subject,
        issuer: by.issuer,
    }
}

fn pattern(pattern: supply_chain::Pattern) -> chain::Pattern {
    match pattern {
        supply_chain::Pattern::Exact(value) => chain::Pattern::Exact(value),
        supply_chain::Pattern::Prefix(prefix) => chain::Pattern::Prefix(prefix),
        supply_chain::Pattern::Regexp(regexp) => chain::Pattern::Regexp(regexp),
    }
}

fn wanted(signer: supply_chain::Signer) -> chain::Signer {
    match signer {
        supply_chain::Signer::Key(pem) => chain::Signer::Key(pem),
        supply_chain::Signer::Keyless(identity) => chain::Signer::Keyless(chain::Identity {
            subject: pattern(identity.subject),
            issuer: pattern(identity.issuer),
            claims: identity
                .claims
                .into_iter()
                .map(|(name, p)| (name, pattern(p)))
                .collect(),
        }),
    }
}

fn unknown_table(table: &str) -> CapabilityError {
    CapabilityError::Invalid(format!("the configuration has no data table {table:?}"))
}

/// WASI's wall clock: the scope's clock when the policy has the `clock` capability, zero
/// otherwise.
struct WallClock(Option<Arc<dyn Clock>>);

impl HostWallClock for WallClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        self.0.as_ref().map_or(Duration::ZERO, |clock| clock.now())
    }
}

/// WASI's monotonic clock: time since the instance started with the `clock` capability, zero
/// otherwise.
struct MonotonicClock(Option<Instant>);

impl HostMonotonicClock for MonotonicClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        self.0.map_or(0, |start| {
            u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
        })
    }
}

/// The pre-instantiated component, of whichever world it exports.
enum Pre {
    Newest(bindings::AdmissionPolicyPre<State>),
    V0_1(v0_1::Pre<State>),
}

/// A compiled, linked and pre-instantiated admission component.
pub(crate) struct Prepared {
    engine: wasmtime::Engine,
    pre: Pre,
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
        let newest = version == WORLD_VERSION || COMPATIBLE_VERSIONS.contains(&version);
        if !newest && version != v0_1::VERSION {
            return Err(LoadError::AbiVersion {
                found: format!("{ADMISSION_INTERFACE}@{version}"),
                supported: format!(
                    "{ADMISSION_INTERFACE}@{WORLD_VERSION}, @{} and @{}",
                    COMPATIBLE_VERSIONS.join(", @"),
                    v0_1::VERSION
                ),
            });
        }
        let (component, cache) = engine.compile::<wasmtime::component::Component>(bytes)?;
        let mut linker = Linker::<State>::new(engine.wasmtime());
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(LoadError::Link)?;
        let pre = if newest {
            bindings::AdmissionPolicy::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)
                .map_err(LoadError::Link)?;
            let instance_pre = linker
                .instantiate_pre(&component)
                .map_err(LoadError::Link)?;
            Pre::Newest(
                bindings::AdmissionPolicyPre::new(instance_pre)
                    .map_err(|e| LoadError::MissingExport(format!("{e:#}")))?,
            )
        } else {
            Pre::V0_1(v0_1::link(&mut linker, &component)?)
        };
        let mut prepared = Self {
            engine: engine.wasmtime().clone(),
            pre,
            metadata: PolicyMetadata::default(),
            name: Arc::from("policy"),
            cache,
        };
        let mut store = prepared.store(limits, None);
        prepared.metadata = match &prepared.pre {
            Pre::Newest(pre) => match pre.instantiate_async(&mut store).await {
                Ok(policy) => policy
                    .palisade_admission_policy()
                    .call_metadata(&mut store)
                    .await
                    .map(convert::metadata_from_abi),
                Err(e) => Err(e),
            },
            Pre::V0_1(pre) => v0_1::metadata(pre, &mut store).await,
        }
        .map_err(|e| LoadError::Eval(classify(e, &store, limits)))?;
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
        let mut store = self.store(limits, None);
        let result = match &self.pre {
            Pre::Newest(pre) => match pre.instantiate_async(&mut store).await {
                Ok(policy) => policy
                    .palisade_admission_policy()
                    .call_validate_settings(&mut store, settings)
                    .await
                    .map(|r| r.map_err(convert::settings_error)),
                Err(e) => Err(e),
            },
            Pre::V0_1(pre) => v0_1::validate_settings(pre, &mut store, settings).await,
        };
        match result {
            Ok(answer) => answer.map_err(EvalError::Settings),
            Err(e) => Err(classify(e, &store, limits)),
        }
    }

    /// Starts an instance and creates its evaluator with `settings`, for any number of
    /// requests; capability calls answer from `scope`.
    pub(crate) async fn start(
        &self,
        settings: &str,
        limits: Limits,
        scope: &Arc<Scope>,
    ) -> Result<Instance, EvalError> {
        let mut store = self.store(limits, Some(Arc::clone(scope)));
        let started = match &self.pre {
            Pre::Newest(pre) => match pre.instantiate_async(&mut store).await {
                Ok(policy) => policy
                    .palisade_admission_policy()
                    .evaluator()
                    .call_create(&mut store, settings)
                    .await
                    .map(|created| {
                        created
                            .map(|evaluator| (World::Newest(policy), evaluator))
                            .map_err(convert::settings_error)
                    }),
                Err(e) => Err(e),
            },
            Pre::V0_1(pre) => v0_1::start(pre, &mut store, settings)
                .await
                .map(|created| created.map(|(policy, evaluator)| (World::V0_1(policy), evaluator))),
        };
        match started {
            Ok(Ok((world, evaluator))) => Ok(Instance {
                store,
                world,
                evaluator,
            }),
            Ok(Err(settings)) => Err(EvalError::Settings(settings)),
            Err(e) => Err(classify(e, &store, limits)),
        }
    }

    /// A fresh store: its own WASI context (nothing granted, clocks only with the `clock`
    /// capability, stderr kept), memory cap and deadline. At every epoch tick the guest yields
    /// to the executor, or traps with `Interrupt` once the deadline (wall clock, see [`arm`])
    /// has passed.
    fn store(&self, limits: Limits, scope: Option<Arc<Scope>>) -> Store<State> {
        let (mut wasi, stderr) = sandbox(scope.as_ref());
        let state = State {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            cap: MemoryCap::new(limits.memory),
            stderr,
            // Logs and errors name the policy by the id the host knows it by.
            policy: scope.as_ref().map_or_else(
                || Arc::clone(&self.name),
                |s| Arc::from(s.namespace.as_str()),
            ),
            scope,
            deadline: Instant::now(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.cap);
        guard(&mut store, |s: &State| s.deadline);
        arm(&mut store, limits);
        store
    }
}

/// The WASI context every ABI's guests get: nothing granted (no files, environment, network or
/// arguments), clocks that read zero unless the scope grants `clock`, and stderr kept (the
/// returned pipe) to explain a trap.
pub(crate) fn sandbox(scope: Option<&Arc<Scope>>) -> (WasiCtxBuilder, MemoryOutputPipe) {
    let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
    let clock = scope
        .filter(|s| s.grants.clock)
        .map(|s| Arc::clone(s.capabilities.clock()));
    let mut wasi = WasiCtx::builder();
    wasi.stderr(stderr.clone())
        .monotonic_clock(MonotonicClock(clock.as_ref().map(|_| Instant::now())))
        .wall_clock(WallClock(clock));
    (wasi, stderr)
}

/// At every epoch tick the guest yields to the executor, or traps with `Interrupt` once the
/// store's deadline (`deadline` reads it) has passed. Every ABI's stores are guarded so.
pub(crate) fn guard<T: 'static>(store: &mut Store<T>, deadline: fn(&T) -> Instant) {
    store.epoch_deadline_callback(move |store| {
        Ok(if Instant::now() >= deadline(store.data()) {
            UpdateDeadline::Interrupt
        } else {
            // Tokio's own yield: the evaluation goes to the back of the run queue (a
            // self-wake would put it in the worker's LIFO slot, where a spinning guest runs
            // again before the requests waiting on that worker).
            UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
        })
    });
}

/// What a guest wrote to stderr before it died (a Rust panic message), on one line, without
/// the hint about RUST_BACKTRACE.
pub(crate) fn guest_output(stderr: &MemoryOutputPipe) -> String {
    String::from_utf8_lossy(&stderr.contents())
        .lines()
        .filter(|line| !line.starts_with("note: run with `RUST_BACKTRACE=1`"))
        .collect::<Vec<_>>()
        .join(" ")
        .trim()
        .to_owned()
}

/// Starts the clock of one call: the deadline is `limits.timeout` from now, checked at the next
/// epoch tick and every tick after, and by every capability call.
fn arm(store: &mut Store<State>, limits: Limits) {
    store.data_mut().deadline = Instant::now() + limits.timeout;
    store.set_epoch_deadline(1);
}

/// Names what stopped a call: the memory cap, the deadline, or a trap (with the guest's stderr).
fn classify(error: wasmtime::Error, store: &Store<State>, limits: Limits) -> EvalError {
    let stderr = guest_output(&store.data().stderr);
    EvalError::classify(error, store.data().cap.refused, limits, &stderr)
}

/// The instance of whichever world the component exports.
enum World {
    Newest(bindings::AdmissionPolicy),
    V0_1(v0_1::Policy),
}

/// A live instance with its evaluator (settings parsed once), reused across requests.
pub(crate) struct Instance {
    store: Store<State>,
    world: World,
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
        let result = match &self.world {
            World::Newest(policy) => {
                policy
                    .palisade_admission_policy()
                    .evaluator()
                    .call_validate(&mut self.store, self.evaluator, abi_request)
                    .await
            }
            World::V0_1(policy) => {
                v0_1::validate(policy, &mut self.store, self.evaluator, &abi_request).await
            }
        };
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
