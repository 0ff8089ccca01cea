#![doc = include_str!("../README.md")]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

pub mod envoy;
pub mod gatekeeper;
pub mod rego;

pub use envoy::OpaEnvoy;
pub use gatekeeper::Gatekeeper;

#[cfg(all(target_arch = "wasm32", feature = "admission-component"))]
palisade_sdk::export_admission!(gatekeeper::Gatekeeper);

#[cfg(all(target_arch = "wasm32", feature = "proxy-wasm"))]
palisade_sdk::export_proxy_wasm!(envoy::OpaEnvoy);
