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
//!
//! WASI commands (`executionMode: wasi`) run as policy-evaluator's `wasi_cli` runtime runs
//! them ([`wasi`]): a fresh instance per operation, the operation in argv, JSON on stdin and
//! stdout. Their metadata must say so; nothing else tells a WASI policy from any WASI program.

mod host_call;
pub mod metadata;
mod response;
mod wapc;
mod wasi;

use std::sync::Arc;
use std::time::Instant;

use palisade_sdk::wire::{AdmissionRequest, PolicyMetadata, Verdict};
use palisade_sdk::{PolicyError, SettingsError};
use wasmtime::{InstancePre, Linker, Store, TypedFunc};

use crate::cache::CacheStatus;
use crate::capabilities::Scope;
use crate::component::{guard, guest_output, sandbox};
use crate::limits::MemoryCap;
use crate::{Abi, Engine, EvalError, Limits, LoadError};

pub use metadata::{ExecutionMode, Metadata, MetadataError};
use wapc::{Breach, State};

/// The name a policy without a title annotation is known by.
const DEFAULT_NAME: &str = "kubewarden-policy";

/// The pre-instantiated module of either execution mode.
enum Pre {
    Wapc(InstancePre<State>),
    Wasi(InstancePre<wasi::State>),
}

/// A compiled, linked and pre-instantiated Kubewarden module (waPC or WASI), with its metadata.
pub(crate) struct Prepared {
    engine: wasmtime::Engine,
    pre: Pre,
    metadata: PolicyMetadata,
    kubewarden: Option<Metadata>,
    name: Arc<str>,
    cache: CacheStatus,
}

impl Prepared {
    /// Reads the metadata and prepares the module in the execution mode it names, as
    /// policy-evaluator chooses its runtime by the metadata, not by the exports (a WASI policy
    /// built with kubewarden-policy-sdk exports waPC's `__guest_call` too). Without metadata the
    /// exports decide: `__guest_call` is waPC, a bare `_start` is refused.
    pub(crate) async fn new(
        engine: &Engine,
        bytes: &[u8],
        abi: &Abi,
        limits: Limits,
    ) -> Result<Self, LoadError> {
        let kubewarden = Metadata::read(bytes).map_err(LoadError::Metadata)?;
        match (kubewarden.as_ref().map(|m| m.execution_mode), abi) {
            (Some(ExecutionMode::Wasi), _) => Self::wasi(engine, bytes, kubewarden),
            (Some(ExecutionMode::Wapc), Abi::Kubewarden) | (None, Abi::Kubewarden) => {
                Self::wapc(engine, bytes, kubewarden, limits).await
            }
            (None, _) => Err(LoadError::AbiVersion {
                found: "a WASI command with no Kubewarden metadata".to_owned(),
                supported: "WASI commands whose io.kubewarden.metadata says executionMode wasi \
                            (kwctl annotate writes it)"
                    .to_owned(),
            }),
            (Some(mode), _) => Err(LoadError::AbiVersion {
                found: format!(
                    "a Kubewarden policy in executionMode {} ({abi})",
                    mode.label()
                ),
                supported: "executionMode kubewarden-wapc (modules exporting __guest_call) and \
                            wasi (WASI commands)"
                    .to_owned(),
            }),
        }
    }

    /// The ABI the module is run by: waPC or WASI.
    pub(crate) fn abi(&self) -> Abi {
        match self.pre {
            Pre::Wapc(_) => Abi::Kubewarden,
            Pre::Wasi(_) => Abi::WasiCommand,
        }
    }

    /// Compiles (or loads from the cache), links and pre-instantiates a waPC module, then
    /// starts it once and asks its protocol version under `limits`.
    async fn wapc(
        engine: &Engine,
        bytes: &[u8],
        kubewarden: Option<Metadata>,
        limits: Limits,
    ) -> Result<Self, LoadError> {
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
        let prepared = Self::with(engine, Pre::Wapc(pre), kubewarden, cache);
        let mut instance = prepared
            .wapc_instance(limits, None)
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
        Ok(prepared)
    }

    /// Compiles (or loads from the cache), links and pre-instantiates a WASI command. Nothing
    /// runs at load: a WASI policy has no protocol version to ask.
    fn wasi(
        engine: &Engine,
        bytes: &[u8],
        kubewarden: Option<Metadata>,
    ) -> Result<Self, LoadError> {
        let (module, cache) = engine.compile::<wasmtime::Module>(bytes)?;
        if !matches!(
            module.get_export("_start"),
            Some(wasmtime::ExternType::Func(_))
        ) {
            return Err(LoadError::MissingExport(
                "_start (a WASI-mode policy is a WASI command)".to_owned(),
            ));
        }
        let mut linker = Linker::<wasi::State>::new(engine.wasmtime());
        wasi::add_to_linker(&mut linker).map_err(LoadError::Link)?;
        let pre = linker.instantiate_pre(&module).map_err(LoadError::Link)?;
        Ok(Self::with(engine, Pre::Wasi(pre), kubewarden, cache))
    }

    fn with(engine: &Engine, pre: Pre, kubewarden: Option<Metadata>, cache: CacheStatus) -> Self {
        let metadata = kubewarden.as_ref().map_or_else(
            || PolicyMetadata {
                name: DEFAULT_NAME.to_owned(),
                ..PolicyMetadata::default()
            },
            |m| m.describe(DEFAULT_NAME),
        );
        Self {
            engine: engine.wasmtime().clone(),
            pre,
            name: Arc::from(metadata.name.as_str()),
            metadata,
            kubewarden,
            cache,
        }
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
        let payload = settings_object(settings).into_bytes();
        let answer = match &self.pre {
            Pre::Wapc(_) => {
                let mut instance = self.wapc_instance(limits, None).await?;
                instance
                    .call("validate_settings", payload, limits)
                    .await?
                    .map_err(|error| EvalError::Settings(SettingsError::new("", error)))?
            }
            Pre::Wasi(pre) => {
                let ended = wasi::run(
                    &self.engine,
                    pre,
                    "validate-settings",
                    payload,
                    limits,
                    Arc::clone(&self.name),
                    None,
                )
                .await?;
                match ended {
                    wasi::Ended::Success(stdout) => stdout,
                    wasi::Ended::Failure { code, stderr } => {
                        return Err(EvalError::Settings(SettingsError::new(
                            "",
                            exit_failure(code, &stderr),
                        )));
                    }
                }
            }
        };
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
    /// from `scope`. A WASI policy's "instance" only holds what each run needs: every request
    /// runs in a fresh one, as policy-evaluator runs them.
    pub(crate) async fn start(
        &self,
        settings: &str,
        limits: Limits,
        scope: &Arc<Scope>,
    ) -> Result<Instance, EvalError> {
        Ok(match &self.pre {
            Pre::Wapc(_) => {
                let mut instance = self.wapc_instance(limits, Some(Arc::clone(scope))).await?;
                instance.settings = settings_object(settings);
                Instance::Wapc(instance)
            }
            Pre::Wasi(pre) => Instance::Wasi(WasiInstance {
                engine: self.engine.clone(),
                pre: pre.clone(),
                settings: settings_object(settings),
                scope: Arc::clone(scope),
            }),
        })
    }

    /// A new waPC instance, initialised (`_start`, then `wapc_init`) under `limits`.
    async fn wapc_instance(
        &self,
        limits: Limits,
        scope: Option<Arc<Scope>>,
    ) -> Result<WapcInstance, EvalError> {
        let Pre::Wapc(pre) = &self.pre else {
            return Err(EvalError::Unsupported(
                "waPC calls on a WASI-mode policy".to_owned(),
            ));
        };
        let (mut wasi, stderr) = sandbox(scope.as_ref());
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
            let instance = pre.instantiate_async(&mut store).await?;
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
            Ok(guest_call) => Ok(WapcInstance {
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

/// What `validate` gets: `{"settings": .., "request": ..}`.
fn validate_payload(settings: &str, request: &AdmissionRequest) -> Result<Vec<u8>, EvalError> {
    let mut payload = Vec::with_capacity(settings.len().saturating_add(1024));
    payload.extend_from_slice(b"{\"settings\":");
    payload.extend_from_slice(settings.as_bytes());
    payload.extend_from_slice(b",\"request\":");
    serde_json::to_writer(&mut payload, request)
        .map_err(|e| EvalError::BadOutput(format!("the request: {e}")))?;
    payload.push(b'}');
    Ok(payload)
}

/// Why a WASI policy that exited with `code` failed.
fn exit_failure(code: i32, stderr: &str) -> String {
    if stderr.is_empty() {
        format!("the policy exited with code {code}")
    } else {
        format!("the policy exited with code {code}: {stderr}")
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

/// A live policy of either mode, its settings sent with every request.
pub(crate) enum Instance {
    Wapc(WapcInstance),
    Wasi(WasiInstance),
}

impl Instance {
    /// Evaluates one request; also says whether the instance is still sound (a trap, a timeout
    /// or an invalid answer leaves a waPC instance unusable; the policy's own error does not; a
    /// WASI policy's runs leave nothing behind).
    pub(crate) async fn evaluate(
        &mut self,
        limits: Limits,
        request: &AdmissionRequest,
    ) -> (Result<Verdict, EvalError>, bool) {
        match self {
            Self::Wapc(i) => i.evaluate(limits, request).await,
            Self::Wasi(i) => (i.evaluate(limits, request).await, true),
        }
    }
}

/// A live, initialised waPC instance.
pub(crate) struct WapcInstance {
    store: Store<State>,
    guest_call: TypedFunc<(i32, i32), i32>,
    settings: String,
}

impl WapcInstance {
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

    async fn evaluate(
        &mut self,
        limits: Limits,
        request: &AdmissionRequest,
    ) -> (Result<Verdict, EvalError>, bool) {
        let payload = match validate_payload(&self.settings, request) {
            Ok(payload) => payload,
            Err(e) => return (Err(e), true),
        };
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

/// What each run of a WASI policy needs.
pub(crate) struct WasiInstance {
    engine: wasmtime::Engine,
    pre: InstancePre<wasi::State>,
    settings: String,
    scope: Arc<Scope>,
}

impl WasiInstance {
    async fn evaluate(
        &self,
        limits: Limits,
        request: &AdmissionRequest,
    ) -> Result<Verdict, EvalError> {
        let payload = validate_payload(&self.settings, request)?;
        let ended = wasi::run(
            &self.engine,
            &self.pre,
            "validate",
            payload,
            limits,
            Arc::from(self.scope.namespace.as_str()),
            Some(Arc::clone(&self.scope)),
        )
        .await?;
        match ended {
            wasi::Ended::Success(stdout) => response::verdict(request, &stdout),
            wasi::Ended::Failure { code, stderr } => Err(EvalError::Policy(PolicyError::Internal(
                exit_failure(code, &stderr),
            ))),
        }
    }
}
