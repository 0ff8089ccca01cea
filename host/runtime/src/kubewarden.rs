//! The ABI module of Kubewarden policies: waPC modules (`executionMode: kubewarden-wapc`, the
//! default of Kubewarden's SDKs) built for wasm32-wasip1, run as policy-evaluator runs them
//! (`runtimes/wapc`): WASI preview 1 and the `wapc` imports linked, `_start` (if exported)
//! then `wapc_init` called once per instance, then one `__guest_call` per operation:
//! `protocol_version` (probed at load: it must answer `"v1"`), `validate_settings` with the
//! settings object, `validate` with `{"request", "settings"}`. The answer becomes a verdict as
//! policy-server makes it ([`response`]); host capabilities are answered from the policy's
//! scope ([`host_call`]). The metadata Kubewarden's tools embed ([`Metadata`]) is read at load.
//!
//! WASI is linked with nothing granted, as for components: no files, environment or network,
//! clocks that read zero without the `clock` capability; stderr is kept to explain a trap.
//! Every call runs under the policy's deadline and memory cap, and yields at every epoch tick.

mod host_call;
pub mod metadata;
mod response;
mod wapc;

use std::sync::Arc;
use std::time::Instant;

use palisade_sdk::wire::{AdmissionRequest, PolicyMetadata, Verdict};
use palisade_sdk::{PolicyError, SettingsError};
use wasmtime::{InstancePre, Linker, Store, TypedFunc};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use crate::cache::CacheStatus;
use crate::capabilities::Scope;
use crate::component::{MonotonicClock, WallClock, guard, guest_output};
use crate::limits::MemoryCap;
use crate::{Engine, EvalError, Limits, LoadError};

pub use metadata::{ExecutionMode, Metadata, MetadataError};
use wapc::{Breach, State};

/// How much of a guest's stderr is kept to explain a trap.
const STDERR_CAPACITY: usize = 16 << 10;

/// The name a policy without a title annotation is known by.
const DEFAULT_NAME: &str = "kubewarden-policy";

/// A compiled, linked and pre-instantiated Kubewarden waPC module, with its metadata.
pub(crate) struct Prepared {
    engine: wasmtime::Engine,
    pre: InstancePre<State>,
    metadata: PolicyMetadata,
    kubewarden: Option<Metadata>,
    name: Arc<str>,
    cache: CacheStatus,
}

impl Prepared {
    /// Reads the metadata, compiles (or loads from the cache), links and pre-instantiates the
    /// module, then starts it once and asks its protocol version under `limits`.
    pub(crate) async fn new(
        engine: &Engine,
        bytes: &[u8],
        limits: Limits,
    ) -> Result<Self, LoadError> {
        let kubewarden = Metadata::read(bytes).map_err(LoadError::Metadata)?;
        if let Some(mode) = kubewarden
            .as_ref()
            .map(|m| m.execution_mode)
            .filter(|m| *m != ExecutionMode::Wapc)
        {
            return Err(LoadError::AbiVersion {
                found: format!(
                    "a waPC module whose metadata says executionMode {}",
                    mode.label()
                ),
                supported: "executionMode kubewarden-wapc for modules exporting __guest_call"
                    .to_owned(),
            });
        }
        let (module, cache) = engine.compile::<wasmtime::Module>(bytes)?;
        if !matches!(
            module.get_export("memory"),
            Some(wasmtime::ExternType::Memory(_))
        ) {
            return Err(LoadError::MissingExport(
                "its linear memory as \"memory\" (waPC reads and writes it)".to_owned(),
            ));
        }
        let mut linker = Linker::<State>::new(engine.wasmtime());
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s: &mut State| &mut s.wasi)
            .map_err(LoadError::Link)?;
        wapc::add_to_linker(&mut linker).map_err(LoadError::Link)?;
        let pre = linker.instantiate_pre(&module).map_err(LoadError::Link)?;
        let name: Arc<str> = Arc::from(kubewarden.as_ref().map_or_else(
            || DEFAULT_NAME.to_owned(),
            |m| m.describe(DEFAULT_NAME).name,
        ));
        let mut prepared = Self {
            engine: engine.wasmtime().clone(),
            pre,
            metadata: kubewarden.as_ref().map_or_else(
                || PolicyMetadata {
                    name: DEFAULT_NAME.to_owned(),
                    ..PolicyMetadata::default()
                },
                |m| m.describe(DEFAULT_NAME),
            ),
            kubewarden,
            name,
            cache,
        };
        let mut instance = prepared
            .instantiate(limits, None)
            .await
            .map_err(LoadError::Eval)?;
        let answer = instance
            .call("protocol_version", Vec::new(), limits)
            .await
            .map_err(LoadError::Eval)?
            .map_err(|error| {
                LoadError::Eval(EvalError::BadOutput(format!(
                    "protocol_version failed: {error}"
                )))
            })?;
        if answer != br#""v1""# {
            return Err(LoadError::AbiVersion {
                found: format!(
                    "Kubewarden waPC protocol {}",
                    String::from_utf8_lossy(&answer)
                ),
                supported: "Kubewarden waPC protocol \"v1\"".to_owned(),
            });
        }
        prepared.metadata.name = prepared.name.to_string();
        Ok(prepared)
    }

    /// The policy's self-description, from its metadata (its title annotation as the name).
    pub(crate) fn metadata(&self) -> &PolicyMetadata {
        &self.metadata
    }

    /// The Kubewarden metadata embedded in the module, if any.
    pub(crate) fn kubewarden(&self) -> Option<&Metadata> {
        self.kubewarden.as_ref()
    }

    /// Whether the compiled code came from the cache.
    pub(crate) fn cache_status(&self) -> CacheStatus {
        self.cache
    }

    /// Checks settings with the policy's own `validate_settings` (the settings object itself;
    /// `{}` when there are none). A guest error (settings that do not parse) is a settings
    /// error, as policy-server makes it one.
    pub(crate) async fn validate_settings(
        &self,
        settings: &str,
        limits: Limits,
    ) -> Result<(), EvalError> {
        let mut instance = self.instantiate(limits, None).await?;
        let answer = instance
            .call(
                "validate_settings",
                settings_object(settings).into_bytes(),
                limits,
            )
            .await?
            .map_err(|error| EvalError::Settings(SettingsError::new("", error)))?;
        let answer = response::settings(&answer)?;
        if answer.valid {
            Ok(())
        } else {
            Err(EvalError::Settings(SettingsError::new(
                "",
                answer
                    .message
                    .unwrap_or_else(|| "the policy rejected its settings".to_owned()),
            )))
        }
    }

    /// Starts an instance for any number of requests with `settings`; capability calls answer
    /// from `scope`.
    pub(crate) async fn start(
        &self,
        settings: &str,
        limits: Limits,
        scope: &Arc<Scope>,
    ) -> Result<Instance, EvalError> {
        let mut instance = self.instantiate(limits, Some(Arc::clone(scope))).await?;
        instance.settings = settings_object(settings);
        Ok(instance)
    }

    /// A new instance, initialised (`_start`, then `wapc_init`) under `limits`.
    async fn instantiate(
        &self,
        limits: Limits,
        scope: Option<Arc<Scope>>,
    ) -> Result<Instance, EvalError> {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let clock = scope
            .as_ref()
            .filter(|s| s.grants.clock)
            .map(|s| Arc::clone(s.capabilities.clock()));
        let mut wasi = WasiCtx::builder();
        wasi.stderr(stderr.clone())
            .monotonic_clock(MonotonicClock(clock.as_ref().map(|_| Instant::now())))
            .wall_clock(WallClock(clock));
        let policy = scope.as_ref().map_or_else(
            || Arc::clone(&self.name),
            |s| Arc::from(s.namespace.as_str()),
        );
        let state = State::new(
            wasi.build_p1(),
            MemoryCap::new(limits.memory),
            stderr,
            policy,
            scope,
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.cap);
        guard(&mut store, |s: &State| s.deadline);
        arm(&mut store, limits);
        let init = async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            if let Some(start) = instance.get_func(&mut store, "_start") {
                let start = start.typed::<(), ()>(&store)?;
                if let Err(error) = start.call_async(&mut store, ()).await {
                    // TinyGo's `_start` ends with proc_exit(0): not a failure.
                    match error.downcast_ref::<wasmtime_wasi::I32Exit>() {
                        Some(wasmtime_wasi::I32Exit(0)) => {}
                        _ => return Err(error),
                    }
                }
            }
            if let Some(init) = instance.get_func(&mut store, "wapc_init") {
                init.typed::<(), ()>(&store)?
                    .call_async(&mut store, ())
                    .await?;
            }
            instance.get_typed_func::<(i32, i32), i32>(&mut store, "__guest_call")
        };
        match init.await {
            Ok(guest_call) => Ok(Instance {
                store,
                guest_call,
                settings: String::new(),
            }),
            Err(e) => Err(classify(e, &store, limits)),
        }
    }
}

/// The settings as the object Kubewarden policies get: `{}` when there are none.
fn settings_object(settings: &str) -> String {
    let trimmed = settings.trim();
    if trimmed.is_empty() || trimmed == "null" {
        "{}".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Starts the clock of one call.
fn arm(store: &mut Store<State>, limits: Limits) {
    store.data_mut().deadline = Instant::now() + limits.timeout;
    store.set_epoch_deadline(1);
}

/// Names what stopped a call: a protocol breach (an invalid answer), the memory cap, the
/// deadline, or a trap (with the guest's stderr).
fn classify(error: wasmtime::Error, store: &Store<State>, limits: Limits) -> EvalError {
    if let Some(breach) = error.downcast_ref::<Breach>() {
        return EvalError::BadOutput(breach.to_string());
    }
    let stderr = guest_output(&store.data().stderr);
    EvalError::classify(error, store.data().cap.refused, limits, &stderr)
}

/// A live, initialised instance; its settings are sent with every request.
pub(crate) struct Instance {
    store: Store<State>,
    guest_call: TypedFunc<(i32, i32), i32>,
    settings: String,
}

impl Instance {
    /// Calls `operation` with `payload`: the guest's response, or its error message.
    async fn call(
        &mut self,
        operation: &str,
        payload: Vec<u8>,
        limits: Limits,
    ) -> Result<Result<Vec<u8>, String>, EvalError> {
        arm(&mut self.store, limits);
        let lengths = (
            i32::try_from(operation.len()).unwrap_or(i32::MAX),
            i32::try_from(payload.len()).map_err(|_| {
                EvalError::BadOutput(format!(
                    "the payload of {operation} is {} bytes, more than waPC can pass",
                    payload.len()
                ))
            })?,
        );
        self.store.data_mut().begin(operation, payload);
        let result = self.guest_call.call_async(&mut self.store, lengths).await;
        let state = self.store.data_mut();
        match result {
            Ok(1) => Ok(Ok(state.response.take().unwrap_or_default())),
            Ok(0) => Ok(Err(state.error.take().unwrap_or_else(|| {
                format!("the guest failed {operation} without saying why")
            }))),
            Ok(other) => Err(EvalError::BadOutput(format!(
                "__guest_call returned {other} (waPC: 1 for success, 0 for failure)"
            ))),
            Err(e) => Err(classify(e, &self.store, limits)),
        }
    }

    /// Evaluates one request; also says whether the instance is still sound (a trap, a timeout
    /// or an invalid answer leaves it unusable; the policy's own error does not).
    pub(crate) async fn evaluate(
        &mut self,
        limits: Limits,
        request: &AdmissionRequest,
    ) -> (Result<Verdict, EvalError>, bool) {
        let mut payload = Vec::with_capacity(self.settings.len().saturating_add(1024));
        payload.extend_from_slice(b"{\"settings\":");
        payload.extend_from_slice(self.settings.as_bytes());
        payload.extend_from_slice(b",\"request\":");
        if let Err(e) = serde_json::to_writer(&mut payload, request) {
            return (Err(EvalError::BadOutput(format!("the request: {e}"))), true);
        }
        payload.push(b'}');
        match self.call("validate", payload, limits).await {
            Ok(Ok(answer)) => {
                let verdict = response::verdict(request, &answer);
                let sound = verdict.is_ok();
                (verdict, sound)
            }
            Ok(Err(error)) => (Err(EvalError::Policy(PolicyError::Internal(error))), true),
            Err(e) => (Err(e), false),
        }
    }
}
