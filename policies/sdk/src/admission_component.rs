//! The adapter that exports an [`AdmissionPolicy`] as a component of the `palisade:admission`
//! WIT world (wasm32-wasip2), and serves its [`Host`] with the world's imports. Only this module
//! and its children name the generated bindings.

mod convert;

use std::marker::PhantomData;
use std::time::Duration;

use crate::host::{Entry, Host, HostError, Level, images, rate};
use crate::{AdmissionPolicy, parse_settings};
use bindings::exports::palisade::admission::policy as abi;
use bindings::palisade::admission::{clock, data, log, rate_limit, state, supply_chain};

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "admission-policy",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "__export_admission_policy",
        default_bindings_module: "::palisade_sdk::admission_component::bindings",
        runtime_path: "::palisade_sdk::admission_component::rt",
    });
}

#[doc(hidden)]
pub use wit_bindgen::rt;

/// The component's `policy` export for the policy `P`; named by [`export_admission!`](crate::export_admission).
#[doc(hidden)]
pub struct Component<P>(PhantomData<P>);

/// An `evaluator` resource: settings parsed and prepared once, then any number of requests.
#[doc(hidden)]
pub struct Evaluator<P: AdmissionPolicy> {
    prepared: P::Prepared,
}

/// Settings text to prepared settings: parsed, validated, compiled.
fn prepare<P: AdmissionPolicy>(settings: &str) -> Result<P::Prepared, abi::SettingsError> {
    let settings = parse_settings::<P::Settings>(settings)?;
    Ok(P::prepare(settings)?)
}

impl<P: AdmissionPolicy + 'static> abi::Guest for Component<P> {
    type Evaluator = Evaluator<P>;

    fn metadata() -> abi::PolicyMetadata {
        P::metadata().into()
    }

    fn validate_settings(settings: String) -> Result<(), abi::SettingsError> {
        prepare::<P>(&settings).map(drop)
    }
}

impl<P: AdmissionPolicy + 'static> abi::GuestEvaluator for Evaluator<P> {
    fn create(settings: String) -> Result<abi::Evaluator, abi::SettingsError> {
        let prepared = prepare::<P>(&settings)?;
        Ok(abi::Evaluator::new(Self { prepared }))
    }

    fn validate(&self, request: abi::AdmissionRequest) -> Result<abi::Verdict, abi::PolicyError> {
        let request = convert::request_from_abi(request);
        let verdict = P::evaluate(&request, &self.prepared, &Imports)?;
        convert::verdict_to_abi(verdict)
    }
}

/// The [`Host`] of a component: the world's imports.
struct Imports;

impl Host for Imports {
    fn now(&self) -> Result<Duration, HostError> {
        clock::now()
            .map(Duration::from_nanos)
            .map_err(convert::host_error)
    }

    fn get(&self, key: &str) -> Result<Option<Entry>, HostError> {
        state::get(key)
            .map(|entry| {
                entry.map(|e| Entry {
                    value: e.value,
                    cas: e.cas,
                })
            })
            .map_err(convert::host_error)
    }

    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<bool, HostError> {
        state::set(key, value, cas).map_err(convert::host_error)
    }

    fn take(&self, name: &str, shape: rate::Shape, tokens: u64) -> Result<rate::Taken, HostError> {
        let shape = rate_limit::Shape {
            capacity: shape.capacity,
            refill_tokens: shape.refill_tokens,
            refill_period_ms: shape.refill_period_ms,
        };
        let millis = |ms: u64| {
            if ms == u64::MAX {
                Duration::MAX
            } else {
                Duration::from_millis(ms)
            }
        };
        rate_limit::take(name, shape, tokens)
            .map(|t| rate::Taken {
                allowed: t.allowed,
                remaining: t.remaining,
                retry_after: millis(t.retry_after_ms),
                reset: millis(t.reset_ms),
            })
            .map_err(convert::host_error)
    }

    fn data(&self, table: &str, key: &str) -> Result<Option<String>, HostError> {
        data::get(table, key).map_err(convert::host_error)
    }

    fn data_keys(&self, table: &str, prefix: &str) -> Result<Vec<String>, HostError> {
        data::keys(table, prefix).map_err(convert::host_error)
    }

    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Trace => log::Level::Trace,
            Level::Debug => log::Level::Debug,
            Level::Info => log::Level::Info,
            Level::Warn => log::Level::Warn,
            Level::Error => log::Level::Error,
        };
        log::log(level, message);
    }

    fn resolve_image(&self, image: &str) -> Result<String, HostError> {
        supply_chain::resolve(image).map_err(convert::host_error)
    }

    fn image_signatures(
        &self,
        image: &str,
        signer: &images::Signer,
        annotations: &[(String, String)],
    ) -> Result<images::Verified<images::Signature>, HostError> {
        let verified = supply_chain::signatures(image, &convert::signer(signer), annotations)
            .map_err(convert::host_error)?;
        Ok(convert::verified(verified, |s| images::Signature {
            signed_by: convert::signed_by(s.signed_by),
            annotations: s.annotations,
        }))
    }

    fn image_attestations(
        &self,
        image: &str,
        signer: &images::Signer,
        predicate_type: &str,
    ) -> Result<images::Verified<images::Attestation>, HostError> {
        let verified = supply_chain::attestations(image, &convert::signer(signer), predicate_type)
            .map_err(convert::host_error)?;
        Ok(convert::verified(verified, |a| images::Attestation {
            signed_by: convert::signed_by(a.signed_by),
            statement: a.statement,
        }))
    }
}

/// Exports a policy type as a `palisade:admission` component:
/// `palisade_sdk::export_admission!(PodSecurity);` in the policy's `lib.rs`, under
/// `#[cfg(all(target_arch = "wasm32", feature = "admission-component"))]`.
#[macro_export]
macro_rules! export_admission {
    ($policy:ty) => {
        type __PalisadeAdmissionComponent = $crate::admission_component::Component<$policy>;
        $crate::admission_component::bindings::__export_admission_policy!(
            __PalisadeAdmissionComponent with_types_in $crate::admission_component::bindings
        );
    };
}
