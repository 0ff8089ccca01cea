//! The adapter that exports an [`AdmissionPolicy`] as a Kubewarden policy: a waPC module
//! (wasm32-wasip1) built on `kubewarden-policy-sdk`, registering the three operations
//! Kubewarden's hosts call (`protocol_version`, `validate_settings`, `validate`), with its
//! metadata embedded as the `io.kubewarden.metadata` section `kwctl annotate` writes. The same
//! policy source then runs in Kubewarden's policy-server and kwctl, and in Palisade's waPC host.
//!
//! Kubewarden sends the settings with every request: they are parsed and prepared once and
//! kept while they stay the same. A verdict's patch becomes the `mutated_object` Kubewarden
//! wants (the object with the patch applied; policy-server diffs it back into a patch). The
//! answer also carries the verdict's `reason`, which Kubewarden ignores and Palisade reads.
//! The [`Host`] here has the WASI clock and logs through Kubewarden's `tracing` capability;
//! shared state, token buckets and data tables are Palisade's and not available.

use std::cell::RefCell;
use std::time::Duration;

use kubewarden_policy_sdk::wapc_guest::{self as wapc, CallResult};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::host::{Entry, Host, HostError, Level};
use crate::wire::{AdmissionRequest, PatchOperation, Verdict};
use crate::{AdmissionPolicy, SettingsError, parse_settings};

#[doc(hidden)]
pub use kubewarden_policy_sdk;

/// Prepared settings kept between requests, with the settings text they came from.
#[doc(hidden)]
pub type Cache<P> = RefCell<Option<(String, <P as AdmissionPolicy>::Prepared)>>;

fn prepare<P: AdmissionPolicy>(settings: &str) -> Result<P::Prepared, SettingsError> {
    P::prepare(parse_settings::<P::Settings>(settings)?)
}

fn settings_message(error: &SettingsError) -> String {
    if error.path.is_empty() {
        error.message.clone()
    } else {
        format!("{}: {}", error.path, error.message)
    }
}

/// `validate_settings`: the settings object itself; `{valid, message}`.
#[doc(hidden)]
pub fn validate_settings<P: AdmissionPolicy>(payload: &[u8]) -> CallResult {
    let text = std::str::from_utf8(payload)?;
    let answer = match prepare::<P>(text) {
        Ok(_) => serde_json::json!({"valid": true, "message": null}),
        Err(error) => serde_json::json!({"valid": false, "message": settings_message(&error)}),
    };
    Ok(serde_json::to_vec(&answer)?)
}

/// What `validate` gets: the request and the settings.
#[derive(Deserialize)]
struct Validation<'a> {
    request: AdmissionRequest,
    #[serde(borrow)]
    settings: Option<&'a RawValue>,
}

/// `validate`: `{"request", "settings"}`; a `ValidationResponse` (with the verdict's reason).
#[doc(hidden)]
pub fn validate<P: AdmissionPolicy>(payload: &[u8], cache: &Cache<P>) -> CallResult {
    let validation: Validation<'_> = serde_json::from_slice(payload)?;
    let settings = validation.settings.map_or("{}", RawValue::get);
    let mut cache = cache.try_borrow_mut()?;
    if cache.as_ref().is_none_or(|(text, _)| text != settings) {
        let prepared = prepare::<P>(settings)
            .map_err(|e| format!("invalid settings: {}", settings_message(&e)))?;
        *cache = Some((settings.to_owned(), prepared));
    }
    let Some((_, prepared)) = cache.as_ref() else {
        return Err("the settings could not be prepared".into());
    };
    let request = &validation.request;
    let verdict = P::evaluate(request, prepared, &Kubewarden).map_err(|e| e.to_string())?;
    answer(request, &verdict)
}

fn answer(request: &AdmissionRequest, verdict: &Verdict) -> CallResult {
    let mutated = match (&verdict.patch, &request.object) {
        (Some(patch), Some(object)) => Some(
            patched(object.get(), patch)
                .map_err(|e| format!("applying the verdict's patch: {e}"))?,
        ),
        (Some(_), None) => return Err("the verdict patches a request without an object".into()),
        (None, _) => None,
    };
    let message = (!verdict.message.is_empty()).then_some(&verdict.message);
    let warnings = (!verdict.warnings.is_empty()).then_some(&verdict.warnings);
    let annotations = (!verdict.audit_annotations.is_empty()).then_some(&verdict.audit_annotations);
    Ok(serde_json::to_vec(&serde_json::json!({
        "accepted": verdict.allowed,
        "message": message,
        "code": if verdict.allowed { None } else { verdict.code },
        "mutated_object": mutated,
        "audit_annotations": annotations,
        "warnings": warnings,
        "reason": verdict.reason,
    }))?)
}

/// The object with the patch applied.
fn patched(object: &str, patch: &[PatchOperation]) -> Result<serde_json::Value, String> {
    let mut object: serde_json::Value = serde_json::from_str(object).map_err(|e| e.to_string())?;
    let patch: json_patch::Patch = serde_json::to_value(patch)
        .and_then(serde_json::from_value)
        .map_err(|e| e.to_string())?;
    json_patch::patch(&mut object, &patch).map_err(|e| e.to_string())?;
    Ok(object)
}

/// Registers the three operations; called from the exported `wapc_init`.
#[doc(hidden)]
pub fn register(validate: fn(&[u8]) -> CallResult, validate_settings: fn(&[u8]) -> CallResult) {
    wapc::register_function(
        "protocol_version",
        kubewarden_policy_sdk::protocol_version_guest,
    );
    wapc::register_function("validate_settings", validate_settings);
    wapc::register_function("validate", validate);
}

/// The [`Host`] of a Kubewarden policy.
struct Kubewarden;

const UNSUPPORTED: &str = "Palisade's shared state, token buckets and data tables";

impl Host for Kubewarden {
    fn now(&self) -> Result<Duration, HostError> {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| HostError::Unavailable(e.to_string()))
    }

    fn get(&self, _key: &str) -> Result<Option<Entry>, HostError> {
        Err(HostError::Unsupported(UNSUPPORTED))
    }

    fn set(&self, _key: &str, _value: &[u8], _cas: u32) -> Result<bool, HostError> {
        Err(HostError::Unsupported(UNSUPPORTED))
    }

    fn data(&self, _table: &str, _key: &str) -> Result<Option<String>, HostError> {
        Err(HostError::Unsupported(UNSUPPORTED))
    }

    fn data_keys(&self, _table: &str, _prefix: &str) -> Result<Vec<String>, HostError> {
        Err(HostError::Unsupported(UNSUPPORTED))
    }

    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warning",
            Level::Error => "error",
        };
        if let Ok(event) =
            serde_json::to_vec(&serde_json::json!({"level": level, "message": message}))
        {
            // A log line that cannot be written is not worth failing the request for.
            drop(wapc::host_call("kubewarden", "tracing", "log", &event));
        }
    }
}

/// Exports a policy type as a Kubewarden waPC module with its metadata embedded:
/// `palisade_sdk::export_kubewarden!(PodSecurity, "kubewarden-metadata.json");` in the policy's
/// `lib.rs`, under `#[cfg(all(target_arch = "wasm32", feature = "kubewarden"))]`. The file,
/// relative to the crate's manifest, is the metadata's JSON as `kwctl annotate` writes it.
#[macro_export]
macro_rules! export_kubewarden {
    ($policy:ty, $metadata:literal) => {
        /// The metadata Kubewarden's tools read, as `kwctl annotate` embeds it.
        #[allow(
            unsafe_code,
            reason = "a custom section is a static with a link section"
        )]
        #[unsafe(link_section = "io.kubewarden.metadata")]
        #[used]
        static __PALISADE_KUBEWARDEN_METADATA: [u8; include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/",
            $metadata
        ))
        .len()] = *include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/", $metadata));

        ::std::thread_local! {
            static __PALISADE_KUBEWARDEN_PREPARED: $crate::kubewarden::Cache<$policy> =
                const { ::std::cell::RefCell::new(None) };
        }

        fn __palisade_kubewarden_validate(
            payload: &[u8],
        ) -> $crate::kubewarden::kubewarden_policy_sdk::wapc_guest::CallResult {
            __PALISADE_KUBEWARDEN_PREPARED
                .with(|cache| $crate::kubewarden::validate::<$policy>(payload, cache))
        }

        /// waPC's initialiser: registers the policy's operations.
        #[allow(unsafe_code, reason = "waPC's entry point must keep its exported name")]
        #[unsafe(no_mangle)]
        pub extern "C" fn wapc_init() {
            $crate::kubewarden::register(
                __palisade_kubewarden_validate,
                $crate::kubewarden::validate_settings::<$policy>,
            );
        }
    };
}
