//! Sigstore bundles (v0.1, v0.2, v0.3; a message signature or a DSSE envelope) verified against
//! a trusted root, as `cosign verify-blob --bundle` and sigstore-go verify them: the
//! transparency-log entry (signed entry timestamp, inclusion proof and checkpoint) and its
//! match with the bundle, RFC 3161 timestamps, the Fulcio certificate's chain to the root at the
//! verified signing times, its embedded SCTs, and the signature over the artefact (or, for DSSE,
//! over the envelope, whose statement must name the artefact's digest). sigstore-verify does the
//! verification; this module states who must have signed:
//! - a public key ([`Signer::Key`]);
//! - or, keyless, any one of a list of identities ([`Identity`]): the certificate's subject
//!   (its first URI or email SAN) and OIDC issuer, exact or by regular expression, and Fulcio's
//!   other claims (`1.3.6.1.4.1.57264.1.x`) by name, exact. Regular expressions are unanchored,
//!   as cosign's and sigstore-go's Go regexps are: write `^...$` to match a whole value.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use sigstore_verify::trust_root::TrustedRoot;
use sigstore_verify::types::{Bundle, DerPublicKey, Sha256Hash, SignatureContent};
use sigstore_verify::{PublicKeyVerificationPolicy, VerificationPolicy, Verifier};

use crate::dsse::Statement;
use crate::keys::{Digest, HashAlgorithm, PublicKey};

/// A trusted root (`trusted_root.json`): the Fulcio CAs, Rekor logs, CT logs and timestamp
/// authorities signatures are checked against.
#[derive(Clone)]
pub struct TrustRoot {
    verifier: Arc<Verifier>,
    name: String,
}

impl fmt::Debug for TrustRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustRoot")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TrustRoot {
    /// Sigstore's public-good instance, as sigstore-trust-root 0.15.1 ships it (refreshed
    /// 2026-10-23; TUF refresh is not done here).
    ///
    /// # Errors
    /// Never in practice: the embedded root is valid.
    pub fn production() -> Result<Self, String> {
        Self::from_json(
            sigstore_verify::trust_root::SIGSTORE_PRODUCTION_TRUSTED_ROOT,
            "Sigstore public-good",
        )
    }

    /// Sigstore's staging instance.
    ///
    /// # Errors
    /// Never in practice: the embedded root is valid.
    pub fn staging() -> Result<Self, String> {
        Self::from_json(
            sigstore_verify::trust_root::SIGSTORE_STAGING_TRUSTED_ROOT,
            "Sigstore staging",
        )
    }

    /// Reads a `trusted_root.json` named `name` (in messages).
    ///
    /// # Errors
    /// A message naming what is malformed or unusable in it.
    pub fn from_json(json: &str, name: &str) -> Result<Self, String> {
        crate::provider::install();
        let root = TrustedRoot::from_json(json)
            .map_err(|e| format!("{name}: not a usable trusted root: {e}"))?;
        let verifier =
            Verifier::new(&root).map_err(|e| format!("{name}: not a usable trusted root: {e}"))?;
        Ok(Self {
            verifier: Arc::new(verifier),
            name: name.to_owned(),
        })
    }

    /// Its name in messages.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// What was signed: the artefact's bytes, or only its SHA-256 digest.
#[derive(Debug, Clone, Copy)]
pub enum Artifact<'a> {
    /// The bytes.
    Bytes(&'a [u8]),
    /// The SHA-256 digest (an image's manifest digest, or a file given by digest).
    Digest(&'a Digest),
}

/// A keyless signer: who the Fulcio certificate must have been issued to.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// The subject, exactly.
    pub subject: Option<String>,
    /// The subject, by regular expression (unanchored).
    pub subject_regexp: Option<regex::Regex>,
    /// The OIDC issuer, exactly.
    pub issuer: Option<String>,
    /// The OIDC issuer, by regular expression (unanchored).
    pub issuer_regexp: Option<regex::Regex>,
    /// Fulcio claims by name ([`CLAIMS`]), exactly.
    pub claims: BTreeMap<String, String>,
    /// Fulcio claims by name, by regular expression (unanchored).
    pub claim_regexps: BTreeMap<String, regex::Regex>,
}

pub use palisade_sdk::host::images::FULCIO_CLAIMS as CLAIMS;

impl Identity {
    /// Checks the identity's fields: a subject and an issuer are required (exact or regexp, not
    /// both), claims must be known.
    ///
    /// # Errors
    /// A message naming what is missing or unknown.
    pub fn check(&self) -> Result<(), String> {
        match (&self.subject, &self.subject_regexp) {
            (None, None) => {
                return Err(
                    "a keyless identity needs its subject (exact or regexp): it is required for verification in keyless mode"
                        .to_owned(),
                );
            }
            (Some(_), Some(_)) => {
                return Err("give the subject exactly or by regexp, not both".to_owned());
            }
            _ => {}
        }
        match (&self.issuer, &self.issuer_regexp) {
            (None, None) => {
                return Err(
                    "a keyless identity needs its OIDC issuer (exact or regexp): it is required for verification in keyless mode"
                        .to_owned(),
                );
            }
            (Some(_), Some(_)) => {
                return Err("give the issuer exactly or by regexp, not both".to_owned());
            }
            _ => {}
        }
        if let Some(unknown) = self
            .claims
            .keys()
            .chain(self.claim_regexps.keys())
            .find(|k| !CLAIMS.contains(&k.as_str()))
        {
            return Err(format!(
                "unknown certificate claim `{unknown}`; known: {}",
                CLAIMS.join(", ")
            ));
        }
        Ok(())
    }

    /// Why `certificate` is not this identity's, if it is not.
    fn mismatch(&self, certificate: &Certificate) -> Option<String> {
        let subject = &certificate.subject;
        if let Some(wanted) = &self.subject
            && wanted != subject
        {
            return Some(format!("the subject is {subject}, not {wanted}"));
        }
        if let Some(wanted) = &self.subject_regexp
            && !wanted.is_match(subject)
        {
            return Some(format!("the subject {subject} does not match /{wanted}/"));
        }
        let issuer = &certificate.issuer;
        if let Some(wanted) = &self.issuer
            && wanted != issuer
        {
            return Some(format!("the OIDC issuer is {issuer}, not {wanted}"));
        }
        if let Some(wanted) = &self.issuer_regexp
            && !wanted.is_match(issuer)
        {
            return Some(format!(
                "the OIDC issuer {issuer} does not match /{wanted}/"
            ));
        }
        for (name, wanted) in &self.claims {
            match certificate.claims.get(name) {
                None => return Some(format!("the certificate has no {name} claim")),
                Some(found) if found != wanted => {
                    return Some(format!("the certificate's {name} is {found}, not {wanted}"));
                }
                Some(_) => {}
            }
        }
        for (name, wanted) in &self.claim_regexps {
            match certificate.claims.get(name) {
                None => return Some(format!("the certificate has no {name} claim")),
                Some(found) if !wanted.is_match(found) => {
                    return Some(format!(
                        "the certificate's {name} {found} does not match /{wanted}/"
                    ));
                }
                Some(_) => {}
            }
        }
        None
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.subject, &self.subject_regexp) {
            (Some(s), _) => write!(f, "subject {s}")?,
            (None, Some(r)) => write!(f, "subject /{r}/")?,
            (None, None) => write!(f, "any subject")?,
        }
        match (&self.issuer, &self.issuer_regexp) {
            (Some(s), _) => write!(f, " from {s}")?,
            (None, Some(r)) => write!(f, " from /{r}/")?,
            (None, None) => {}
        }
        for (name, value) in &self.claims {
            write!(f, ", {name}={value}")?;
        }
        for (name, value) in &self.claim_regexps {
            write!(f, ", {name}=/{value}/")?;
        }
        Ok(())
    }
}

/// Who must have signed.
#[derive(Debug, Clone)]
pub enum Signer {
    /// The holder of this key.
    Key(PublicKey),
    /// Keyless: a Fulcio certificate issued to any one of these identities.
    Keyless(Vec<Identity>),
}

/// A verified Fulcio certificate's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// Its subject (first URI or email SAN).
    pub subject: String,
    /// Its OIDC issuer.
    pub issuer: String,
    /// Its Fulcio claims, by name ([`CLAIMS`]).
    pub claims: BTreeMap<String, String>,
}

/// What a verified bundle established.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The certificate, for a keyless signature.
    pub certificate: Option<Certificate>,
    /// The log's integrated time (seconds since the epoch), when a Rekor v1 entry gave one.
    pub integrated_time: Option<i64>,
    /// Every verified signing time (integrated times and RFC 3161 timestamps).
    pub timestamps: Vec<i64>,
    /// The in-toto statement of a DSSE bundle.
    pub statement: Option<Statement>,
}

/// Verifies the bundle `json` over `artifact`, signed by `signer`, against `root`.
///
/// # Errors
/// A message saying what failed: the bundle's form, its log evidence, its certificate, its
/// signature, or the signer's identity.
pub fn verify(
    root: &TrustRoot,
    json: &str,
    artifact: Artifact<'_>,
    signer: &Signer,
) -> Result<Verified, String> {
    crate::provider::install();
    let bundle = Bundle::from_json(json).map_err(|e| format!("not a Sigstore bundle: {e}"))?;
    let digest;
    let target: sigstore_verify::types::Artifact<'_> = match artifact {
        Artifact::Bytes(bytes) => bytes.into(),
        Artifact::Digest(given) => {
            if given.algorithm != HashAlgorithm::Sha256 {
                return Err(format!(
                    "an artefact is given by its sha256 digest, not {}",
                    given.algorithm.name()
                ));
            }
            digest = Sha256Hash::from_hex(&hex::encode(&given.bytes))
                .map_err(|e| format!("bad digest {given}: {e}"))?;
            (&digest).into()
        }
    };
    let result = match signer {
        Signer::Key(key) => {
            let policy =
                PublicKeyVerificationPolicy::new(DerPublicKey::new(key.spki_der().to_vec()));
            root.verifier
                .verify(target, &bundle, &policy)
                .map_err(|e| e.to_string())?
        }
        Signer::Keyless(identities) => {
            if identities.is_empty() {
                return Err("no keyless identity to verify against".to_owned());
            }
            let policy = VerificationPolicy::any_identity();
            root.verifier
                .verify(target, &bundle, &policy)
                .map_err(|e| e.to_string())?
        }
    };
    let certificate = match signer {
        Signer::Key(_) => None,
        Signer::Keyless(identities) => {
            let info = result
                .certificate()
                .ok_or("the bundle has no certificate: it was signed with a key")?;
            if !result.certificate_verified() {
                return Err("the certificate's chain was not verified".to_owned());
            }
            let certificate = Certificate {
                subject: result
                    .identity()
                    .map(|s| s.as_str().to_owned())
                    .ok_or("the certificate has no URI or email subject")?,
                issuer: result
                    .issuer()
                    .map(str::to_owned)
                    .ok_or("the certificate names no OIDC issuer")?,
                claims: claims(&info.ci_claims),
            };
            let mut reasons = Vec::new();
            if !identities
                .iter()
                .any(|identity| match identity.mismatch(&certificate) {
                    None => true,
                    Some(reason) => {
                        reasons.push(reason);
                        false
                    }
                })
            {
                return Err(format!(
                    "the certificate is not one of the allowed identities: {}",
                    reasons.join("; ")
                ));
            }
            Some(certificate)
        }
    };
    let statement = match &bundle.content {
        SignatureContent::DsseEnvelope(envelope) => {
            Some(Statement::from_json(envelope.payload.as_bytes())?)
        }
        _ => None,
    };
    Ok(Verified {
        certificate,
        integrated_time: result.integrated_time().map(|t| t.as_second()),
        timestamps: result
            .verified_timestamps()
            .iter()
            .map(|t| t.as_second())
            .collect(),
        statement,
    })
}

/// The claims of a certificate, by name.
fn claims(ci: &sigstore_verify::crypto::x509::FulcioCiClaims) -> BTreeMap<String, String> {
    let github = &ci.deprecated_github;
    let values = [
        &ci.build_signer_uri,
        &ci.build_signer_digest,
        &ci.runner_environment,
        &ci.source_repository_uri,
        &ci.source_repository_digest,
        &ci.source_repository_ref,
        &ci.source_repository_identifier,
        &ci.source_repository_owner_uri,
        &ci.source_repository_owner_identifier,
        &ci.build_config_uri,
        &ci.build_config_digest,
        &ci.build_trigger,
        &ci.run_invocation_uri,
        &ci.source_repository_visibility_at_signing,
        &ci.deployment_environment,
        &ci.token_subject,
        &github.workflow_trigger,
        &github.workflow_sha,
        &github.workflow_name,
        &github.workflow_repository,
        &github.workflow_ref,
    ];
    CLAIMS
        .iter()
        .zip(values)
        .filter_map(|(name, value)| value.as_ref().map(|v| ((*name).to_owned(), v.clone())))
        .collect()
}
