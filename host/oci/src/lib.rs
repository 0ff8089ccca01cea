//! Wasm modules as OCI images: proxy-wasm filters in the two variants Istio's agent pulls and
//! Kubewarden policy artefacts ([`Image`]), OCI image layouts on disk ([`layout`]), push/pull over
//! the distribution API ([`Registry`]), a read-only, size-limited, cached source of image data for
//! host capabilities ([`ImageStore`]), and the Istio resources that load a filter ([`istio`]).
//! Knows OCI and the wasm binary format only: never wasmtime, never argument parsing.

mod extract;
mod image;
pub mod istio;
pub mod layout;
pub mod media_type;
mod module;
mod registry;
mod store;

pub use extract::{ExtractError, Extracted, Format};
pub use image::{Image, ImageError, Variant};
pub use layout::LayoutError;
pub use module::{ModuleError, ProxyWasmModule, sha256_hex};
pub use registry::{
    Credentials, Pulled, Pushed, Registry, RegistryError, RegistryOptions, install_crypto_provider,
};
pub use store::{
    ImageStore, MAX_REFERRERS, Manifest, PulledModule, Referrer, StoreError, StoreLimits,
    StoreOptions,
};
