//! Proxy-wasm filters as OCI images: the two variants Istio's agent pulls ([`Image`]), OCI image
//! layouts on disk ([`layout`]), push/pull over the distribution API ([`Registry`]), and the
//! Istio resources that load a filter ([`istio`]).
//! Knows OCI and the wasm binary format only: never wasmtime, never argument parsing.

mod extract;
mod image;
pub mod istio;
pub mod layout;
pub mod media_type;
mod module;
mod registry;

pub use extract::{ExtractError, Extracted, Format};
pub use image::{Image, ImageError, Variant};
pub use layout::LayoutError;
pub use module::{ModuleError, ProxyWasmModule, sha256_hex};
pub use registry::{Credentials, Pulled, Pushed, Registry, RegistryError, RegistryOptions};
