#![doc = include_str!("../README.md")]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

pub mod gatekeeper;
pub mod rego;

pub use gatekeeper::Gatekeeper;

#[cfg(all(target_arch = "wasm32", feature = "admission-component"))]
palisade_sdk::export_admission!(gatekeeper::Gatekeeper);
