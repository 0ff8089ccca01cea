//! The adapter that exports an [`AdmissionPolicy`] as a component of the `palisade:admission`
//! WIT world (wasm32-wasip2). Only this module and its children name the generated bindings.

mod convert;

use std::marker::PhantomData;

use crate::{AdmissionPolicy, parse_settings};
use bindings::exports::palisade::admission::policy as abi;

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

/// An `evaluator` resource: settings parsed once, then any number of requests.
#[doc(hidden)]
pub struct Evaluator<P: AdmissionPolicy> {
    settings: P::Settings,
}

impl<P: AdmissionPolicy + 'static> abi::Guest for Component<P> {
    type Evaluator = Evaluator<P>;

    fn metadata() -> abi::PolicyMetadata {
        P::metadata().into()
    }

    fn validate_settings(settings: String) -> Result<(), abi::SettingsError> {
        parse_settings::<P::Settings>(&settings)
            .map(drop)
            .map_err(Into::into)
    }
}

impl<P: AdmissionPolicy + 'static> abi::GuestEvaluator for Evaluator<P> {
    fn create(settings: String) -> Result<abi::Evaluator, abi::SettingsError> {
        let settings = parse_settings::<P::Settings>(&settings)?;
        Ok(abi::Evaluator::new(Self { settings }))
    }

    fn validate(&self, request: abi::AdmissionRequest) -> Result<abi::Verdict, abi::PolicyError> {
        let request = convert::request_from_abi(request)?;
        let verdict = P::evaluate(&request, &self.settings)?;
        convert::verdict_to_abi(verdict)
    }
}

/// Exports a policy type as a `palisade:admission` component:
/// `palisade_sdk::export_admission!(PodSecurity);` in the policy's `lib.rs`, under
/// `#[cfg(target_arch = "wasm32")]`.
#[macro_export]
macro_rules! export_admission {
    ($policy:ty) => {
        type __PalisadeAdmissionComponent = $crate::admission_component::Component<$policy>;
        $crate::admission_component::bindings::__export_admission_policy!(
            __PalisadeAdmissionComponent with_types_in $crate::admission_component::bindings
        );
    };
}
