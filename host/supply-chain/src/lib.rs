//! Supply-chain verification the way cosign does it, for the host: its capability that admission
//! policies call, and the CLI's `verify-blob`, `verify-image`, `sign` and `attest`.
//!
//! - [`keys`]: public and private keys, signatures as cosign makes and checks them;
//! - [`dsse`]: DSSE envelopes and in-toto statements;
//! - [`cosign`]: cosign's simple-signing payloads and its artefacts' tags and annotations;
//! - [`bundle`]: Sigstore bundles against a trusted root, by key or keyless identity;
//! - [`image`]: an image's signatures and attestations, from a registry or an OCI layout;
//! - [`attach`]: signatures and attestations written where cosign writes them;
//! - [`capability`]: the runtime's `SupplyChain` capability over the image verifier;
//! - `testing` (feature `testing`): a local Sigstore that makes bundles for tests.

pub mod attach;
pub mod bundle;
pub mod capability;
pub mod cosign;
pub mod dsse;
pub mod image;
pub mod keys;
mod provider;
#[cfg(feature = "testing")]
pub mod testing;

/// An error and its sources, on one line (the runtime's formatter).
pub(crate) use palisade_runtime::chain as error_chain;
