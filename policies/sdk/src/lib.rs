//! Palisade's guest SDK: the [`wire`] types every host and policy share, the [`AdmissionPolicy`]
//! and [`HttpPolicy`] traits a policy implements, the [`Host`] it may ask for time, shared state
//! and data, settings parsing, and one export macro per ABI (behind features).
//! Without features this crate needs serde and serde_json only and builds for native and wasm.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

// The generated bindings name this crate by its path, inside the crate as outside.
#[cfg(all(feature = "admission-component", target_arch = "wasm32"))]
extern crate self as palisade_sdk;

#[cfg(all(feature = "admission-component", target_arch = "wasm32"))]
pub mod admission_component;
pub mod compare;
pub mod fetch;
pub mod host;
#[cfg(all(feature = "kubewarden", target_arch = "wasm32"))]
pub mod kubewarden;
pub mod path;
pub mod pods;
mod policy;
#[cfg(any(test, all(feature = "proxy-wasm", target_arch = "wasm32")))]
mod property;
#[cfg(all(feature = "proxy-wasm", target_arch = "wasm32"))]
pub mod proxy_filter;
mod settings;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;
pub mod wire;

pub use fetch::Fetch;
pub use host::{Host, HostError};
pub use policy::{AdmissionPolicy, HttpPolicy, PolicyError};
pub use settings::{PolicySettings, SettingsError, parse_settings};
