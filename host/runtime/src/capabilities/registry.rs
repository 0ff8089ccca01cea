//! OCI registries for policies that read image manifests (`oci/v1/manifest_digest`,
//! `oci/v1/oci_manifest`, `oci/v1/oci_manifest_config`). The runtime knows no HTTP: an
//! embedder gives a [`Registry`] (the CLI and the webhook build one over the distribution API,
//! with limits and a cache, or over a local OCI layout for offline runs).

use std::future::Future;
use std::pin::Pin;

/// A future of a registry.
pub type RegistryFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// A manifest as the registry serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// `sha256:<hex>` of `bytes`.
    pub digest: String,
    /// Its media type (an image manifest or an image index).
    pub media_type: String,
    /// The manifest's JSON.
    pub bytes: Vec<u8>,
}

/// Where image manifests and blobs come from.
pub trait Registry: Send + Sync + std::fmt::Debug {
    /// The manifest `image` names (a tag is resolved; a digest is checked), as served: an image
    /// manifest or an index.
    fn manifest<'a>(&'a self, image: &'a str) -> RegistryFuture<'a, Manifest>;

    /// The image manifest `image` names for the host's platform (an index is resolved to its
    /// `linux` entry for this machine's architecture), with its digest.
    fn image_manifest<'a>(&'a self, image: &'a str) -> RegistryFuture<'a, Manifest>;

    /// The blob `digest` of `image`'s repository (its config), checked against the digest.
    fn blob<'a>(&'a self, image: &'a str, digest: &'a str) -> RegistryFuture<'a, Vec<u8>>;
}
