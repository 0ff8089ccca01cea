//! Images' signatures and attestations, for policies that require them: the WIT `supply-chain`
//! interface and Kubewarden's `oci/v1/verify` and `oci/v2/verify`. The runtime knows no
//! cryptography: an embedder gives a [`SupplyChain`] (the CLI, the webhook and the test suites
//! give `palisade-supply-chain`'s image verifier, reading the same image store as the registry
//! operations and caching results per digest and requirement).
//!
//! The host answers one signer at a time, with the evidence that verified; the policy decides
//! what must hold (all of its keys, any of them, a threshold, what the attestations must say).

use std::future::Future;
use std::pin::Pin;

use super::registry::RegistryFuture;

pub use palisade_sdk::host::images::{Attestation, Identity, Pattern, Signature, SignedBy, Signer};

/// Why a signer's signatures (or attestations) were not found on an image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Nothing of the kind is attached to the image (it is unsigned, or has no attestation of
    /// that predicate type).
    #[error("{0}")]
    Missing(String),
    /// There were candidates and none verified for this signer: each with its reason.
    #[error("{0}")]
    Unverified(String),
    /// The query cannot be used (a malformed key or regular expression, a bad reference).
    #[error("{0}")]
    Invalid(String),
    /// The registry (or the trusted root) could not answer.
    #[error("{0}")]
    Unavailable(String),
}

/// A verification in progress.
pub type Verification<'a, T> = Pin<Box<dyn Future<Output = Result<T, Refusal>> + Send + 'a>>;

/// Verifies images' signatures and attestations.
pub trait SupplyChain: Send + Sync + std::fmt::Debug {
    /// The digest `image` names now (`sha256:<hex>`; for a pinned reference, checked against
    /// the manifest).
    fn resolve<'a>(&'a self, image: &'a str) -> RegistryFuture<'a, String>;

    /// The signatures on `image` that `signer` made and that carry `annotations` (at least
    /// one).
    fn signatures<'a>(
        &'a self,
        image: &'a str,
        signer: &'a Signer,
        annotations: &'a [(String, String)],
    ) -> Verification<'a, Vec<Signature>>;

    /// The attestations on `image` of `predicate_type` that `signer` signed (at least one).
    fn attestations<'a>(
        &'a self,
        image: &'a str,
        signer: &'a Signer,
        predicate_type: &'a str,
    ) -> Verification<'a, Vec<Attestation>>;
}

/// A request that an image be signed by every one of `signers` (Kubewarden's `oci/*/verify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureQuery {
    /// The image reference.
    pub image: String,
    /// Each must have signed it.
    pub signers: Vec<Signer>,
    /// Each signature must carry these annotations.
    pub annotations: Vec<(String, String)>,
}

impl SignatureQuery {
    /// The digest of the image when every signer signed it (with the annotations), resolved
    /// once so that every signer is checked against the same digest; otherwise why not, naming
    /// the signer and the reason.
    ///
    /// # Errors
    /// The first signer whose signature is not there, or the registry's failure.
    pub async fn verify(&self, supply_chain: &dyn SupplyChain) -> Result<String, String> {
        let digest = supply_chain.resolve(&self.image).await?;
        let pinned = pinned(&self.image, &digest);
        for (index, signer) in self.signers.iter().enumerate() {
            supply_chain
                .signatures(&pinned, signer, &self.annotations)
                .await
                .map_err(|e| format!("signer {index}: {e}"))?;
        }
        Ok(digest)
    }
}

/// `image` pinned to `digest`: its repository (without tag or digest) `@digest`.
#[must_use]
pub fn pinned(image: &str, digest: &str) -> String {
    let name = image.split_once('@').map_or(image, |(name, _)| name);
    // A tag follows the last `:` after the last `/` (a registry's port comes before it).
    let repository = match (name.rfind(':'), name.rfind('/')) {
        (Some(colon), Some(slash)) if colon > slash => &name[..colon],
        (Some(colon), None) => &name[..colon],
        _ => name,
    };
    format!("{repository}@{digest}")
}

#[cfg(test)]
mod tests {
    use super::pinned;

    #[test]
    fn pinning_drops_the_tag_and_keeps_the_registry_port() {
        let digest = "sha256:00";
        assert_eq!(pinned("nginx", digest), "nginx@sha256:00");
        assert_eq!(pinned("nginx:1.27", digest), "nginx@sha256:00");
        assert_eq!(
            pinned("127.0.0.1:5000/team/app:v1", digest),
            "127.0.0.1:5000/team/app@sha256:00"
        );
        assert_eq!(
            pinned("127.0.0.1:5000/team/app", digest),
            "127.0.0.1:5000/team/app@sha256:00"
        );
        assert_eq!(
            pinned("r.example/app:v1@sha256:11", digest),
            "r.example/app@sha256:00"
        );
    }
}
