#![doc = include_str!("../README.md")]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use palisade_sdk::wire::{AdmissionRequest, PolicyMetadata, Verdict};
use palisade_sdk::{AdmissionPolicy, PolicyError};

mod settings;

pub use settings::Settings;

/// The Pod Security Standards policy, as exported to every ABI.
pub struct PodSecurity;

impl AdmissionPolicy for PodSecurity {
    type Settings = Settings;

    fn metadata() -> PolicyMetadata {
        todo!("helper fills in")
    }

    fn evaluate(request: &AdmissionRequest, settings: &Settings) -> Result<Verdict, PolicyError> {
        evaluate(request, settings)
    }
}

/// Evaluates one admission request against the configured Pod Security Standard.
///
/// # Errors
/// [`PolicyError::InvalidRequest`] when the object does not parse as the kind it claims to be.
pub fn evaluate(request: &AdmissionRequest, settings: &Settings) -> Result<Verdict, PolicyError> {
    todo!("helper fills in")
}

#[cfg(target_arch = "wasm32")]
palisade_sdk::export_admission!(PodSecurity);
