//! Images' signatures and attestations as the host verifies them (the admission world's
//! `supply-chain` interface): who must have signed, and the evidence that verified. The host
//! answers one signer at a time; policies decide what must hold.

/// How a certificate field must match.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// Equal to this.
    Exact(String),
    /// Starting with this.
    Prefix(String),
    /// Matching this regular expression (unanchored, as cosign's `-regexp` flags).
    Regexp(String),
}

/// A keyless signer: whom the Fulcio certificate was issued to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    /// The certificate's subject (its URI or email SAN).
    pub subject: Pattern,
    /// The OIDC issuer.
    pub issuer: Pattern,
    /// Fulcio's certificate claims by name (`githubWorkflowRepository`, ...).
    pub claims: Vec<(String, Pattern)>,
}

/// Who must have signed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Signer {
    /// The holder of this public key (PEM).
    Key(String),
    /// A keyless signature by this identity.
    Keyless(Identity),
}

/// Who signed what verified, and where it was found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignedBy {
    /// Cosign's tag and layer, or the referrer's digest.
    pub source: String,
    /// The certificate's subject, for a keyless signature.
    pub subject: Option<String>,
    /// The certificate's OIDC issuer, for a keyless signature.
    pub issuer: Option<String>,
}

/// A signature that verified.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signature {
    /// Who signed it.
    pub signed_by: SignedBy,
    /// Its annotations.
    pub annotations: Vec<(String, String)>,
}

/// An attestation that verified: an in-toto statement about the image's digest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attestation {
    /// Who signed it.
    pub signed_by: SignedBy,
    /// The statement, JSON text.
    pub statement: String,
}

/// Why an image holds nothing the signer verifiably signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Nothing of the kind is attached.
    #[error("{0}")]
    Missing(String),
    /// Candidates, none verified for this signer; each with its reason.
    #[error("{0}")]
    Unverified(String),
}

/// What a verification gave: the evidence (at least one item), or why there is none.
pub type Verified<T> = Result<Vec<T>, Rejection>;

/// cosign's short names for predicate types (`cosign attest --type`), and the URI each stands
/// for.
pub const PREDICATE_ALIASES: [(&str, &str); 10] = [
    ("slsaprovenance", "https://slsa.dev/provenance/v0.2"),
    ("slsaprovenance02", "https://slsa.dev/provenance/v0.2"),
    ("slsaprovenance1", "https://slsa.dev/provenance/v1"),
    ("vuln", "https://cosign.sigstore.dev/attestation/vuln/v1"),
    ("spdx", "https://spdx.dev/Document"),
    ("spdxjson", "https://spdx.dev/Document"),
    ("cyclonedx", "https://cyclonedx.org/bom"),
    ("openvex", "https://openvex.dev/ns"),
    ("link", "https://in-toto.io/Link/v1"),
    ("custom", "https://cosign.sigstore.dev/attestation/v1"),
];

/// The predicate type `name` stands for: one of cosign's aliases, or a URI as it is.
///
/// ```
/// use palisade_sdk::host::images::predicate_type;
/// assert_eq!(predicate_type("slsaprovenance1").unwrap(), "https://slsa.dev/provenance/v1");
/// assert_eq!(predicate_type("https://example.com/p").unwrap(), "https://example.com/p");
/// assert!(predicate_type("provenance").unwrap_err().contains("slsaprovenance"));
/// ```
///
/// # Errors
/// When it is neither.
pub fn predicate_type(name: &str) -> Result<&str, String> {
    if let Some((_, uri)) = PREDICATE_ALIASES.iter().find(|(alias, _)| *alias == name) {
        return Ok(uri);
    }
    if name.contains("://") {
        return Ok(name);
    }
    Err(format!(
        "`{name}` is not a predicate type: give a URI or one of {}",
        PREDICATE_ALIASES
            .iter()
            .map(|(alias, _)| *alias)
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// The names of Fulcio's certificate claims (fulcio `docs/oid-info.md`), in OID order: `.1.9`
/// to `.1.24`, then the deprecated GitHub ones `.1.2` to `.1.6`.
pub const FULCIO_CLAIMS: [&str; 21] = [
    "buildSignerURI",
    "buildSignerDigest",
    "runnerEnvironment",
    "sourceRepositoryURI",
    "sourceRepositoryDigest",
    "sourceRepositoryRef",
    "sourceRepositoryIdentifier",
    "sourceRepositoryOwnerURI",
    "sourceRepositoryOwnerIdentifier",
    "buildConfigURI",
    "buildConfigDigest",
    "buildTrigger",
    "runInvocationURI",
    "sourceRepositoryVisibilityAtSigning",
    "deploymentEnvironment",
    "tokenSubject",
    "githubWorkflowTrigger",
    "githubWorkflowSHA",
    "githubWorkflowName",
    "githubWorkflowRepository",
    "githubWorkflowRef",
];
