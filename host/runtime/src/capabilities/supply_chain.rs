//! Image signatures for policies that require them (`oci/v1/verify`, `oci/v2/verify`; later the
//! WIT `supply-chain` interface). The runtime knows no cryptography: an embedder gives a
//! [`SupplyChain`] (the CLI and the webhook build one on `palisade-supply-chain`, reading the
//! same image store as the registry operations, and caching results per digest and
//! requirement).

use std::collections::BTreeMap;

use super::registry::RegistryFuture;

/// How a certificate field must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// Equal to this.
    Exact(String),
    /// Starting with this.
    Prefix(String),
    /// Matching this regular expression (unanchored, as cosign's).
    Regexp(String),
}

/// Who must have signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    /// The holder of this public key (PEM).
    Key(String),
    /// Keyless: a Fulcio certificate of this subject from this OIDC issuer, with these claims
    /// (by name: `githubWorkflowRepository`, `sourceRepositoryURI`, ...).
    Keyless {
        /// The certificate's subject (its URI or email SAN).
        subject: Match,
        /// Its OIDC issuer.
        issuer: Match,
        /// Fulcio claims by name.
        claims: BTreeMap<String, Match>,
    },
}

/// A request that an image be signed by every one of `signers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureQuery {
    /// The image reference.
    pub image: String,
    /// Each must have signed it.
    pub signers: Vec<Signer>,
    /// Each signature must carry these annotations.
    pub annotations: BTreeMap<String, String>,
}

/// Verifies images' signatures.
pub trait SupplyChain: Send + Sync + std::fmt::Debug {
    /// The digest of `query.image` when every signer of `query` signed it (with its
    /// annotations); otherwise why not, naming the signer and the reason.
    fn verify_signatures<'a>(&'a self, query: &'a SignatureQuery) -> RegistryFuture<'a, String>;
}
