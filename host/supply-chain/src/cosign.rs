//! cosign's artefacts in OCI registries (cosign `specs/SIGNATURE_SPEC.md`,
//! `specs/ATTESTATION_SPEC.md`, `pkg/oci/static/signature.go`, `pkg/cosign/verifiers.go`):
//! - signatures live in the image's repository under the tag `sha256-<hex>.sig`, one layer per
//!   signature: the layer is a simple-signing payload and its descriptor's annotation
//!   `dev.cosignproject.cosign/signature` holds the base64 signature over the layer's bytes;
//! - attestations live under `sha256-<hex>.att`, one layer per attestation: the layer is a DSSE
//!   envelope holding an in-toto statement.
//!
//! The signed payload's `critical.image.docker-manifest-digest` must be the image's digest, and
//! every required annotation must be in its `optional` map (cosign's `SimpleClaimVerifier`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::keys::Digest;

/// The media type of a simple-signing layer.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The media type of a DSSE layer (`.att`).
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The layer annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The layer annotation holding the PEM signing certificate.
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// The layer annotation holding the PEM chain of the certificate.
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
/// The layer annotation holding the Rekor bundle (its signed entry timestamp and entry).
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
/// The layer annotation holding an RFC 3161 timestamp.
pub const TIMESTAMP_ANNOTATION: &str = "dev.sigstore.cosign/rfc3161timestamp";
/// The layer annotation naming an attestation's predicate type.
pub const PREDICATE_TYPE_ANNOTATION: &str = "predicateType";
/// `critical.type` of a simple-signing payload.
pub const SIGNATURE_TYPE: &str = "cosign container image signature";

/// What kind of artefact a tag holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attached {
    /// Signatures (`.sig`).
    Signatures,
    /// Attestations (`.att`).
    Attestations,
}

/// The tag cosign stores `kind` for the image `digest` under: `sha256-<hex>.sig` or `.att`.
#[must_use]
pub fn tag(digest: &Digest, kind: Attached) -> String {
    let suffix = match kind {
        Attached::Signatures => "sig",
        Attached::Attestations => "att",
    };
    format!(
        "{}-{}.{suffix}",
        digest.algorithm.name(),
        hex::encode(&digest.bytes)
    )
}

/// A simple-signing payload (the "Red Hat simple signing" format cosign signs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimpleSigning {
    /// What must hold.
    pub critical: Critical,
    /// Annotations (cosign `-a key=value`); `null` when none.
    #[serde(default)]
    pub optional: Option<BTreeMap<String, serde_json::Value>>,
}

/// The critical part of a simple-signing payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Critical {
    /// The image's name (not checked, as in cosign).
    pub identity: Identity,
    /// The image's digest.
    pub image: ImageClaim,
    /// `cosign container image signature`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// `critical.identity`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// The repository the image was signed as.
    #[serde(rename = "docker-reference")]
    pub docker_reference: String,
}

/// `critical.image`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageClaim {
    /// `sha256:<hex>` of the signed manifest.
    #[serde(rename = "docker-manifest-digest")]
    pub docker_manifest_digest: String,
}

impl SimpleSigning {
    /// The payload cosign signs for `repository`'s image `digest` with `annotations`.
    #[must_use]
    pub fn new(repository: &str, digest: &Digest, annotations: &BTreeMap<String, String>) -> Self {
        Self {
            critical: Critical {
                identity: Identity {
                    docker_reference: repository.to_owned(),
                },
                image: ImageClaim {
                    docker_manifest_digest: digest.to_string(),
                },
                kind: SIGNATURE_TYPE.to_owned(),
            },
            optional: (!annotations.is_empty()).then(|| {
                annotations
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                    .collect()
            }),
        }
    }

    /// Parses a payload.
    ///
    /// # Errors
    /// A message naming what is missing or malformed.
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("not a simple-signing payload: {e}"))
    }

    /// The payload's JSON, as signed.
    #[must_use]
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Checks cosign's claims: the payload is about `digest` and carries every annotation of
    /// `required` with its value.
    ///
    /// # Errors
    /// A message naming the claim that does not hold.
    pub fn check_claims(
        &self,
        digest: &Digest,
        required: &BTreeMap<String, String>,
    ) -> Result<(), String> {
        let claimed = &self.critical.image.docker_manifest_digest;
        if *claimed != digest.to_string() {
            return Err(format!(
                "the signature is for the image {claimed}, not {digest}"
            ));
        }
        check_annotations(self.optional.as_ref(), required)
    }

    /// The annotations as strings (non-string values as their JSON).
    #[must_use]
    pub fn annotations(&self) -> BTreeMap<String, String> {
        self.optional
            .iter()
            .flatten()
            .map(|(k, v)| {
                let value = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                (k.clone(), value)
            })
            .collect()
    }
}

/// Checks that `present` has every annotation of `required` with its value.
///
/// # Errors
/// A message naming the first one missing or different.
pub fn check_annotations(
    present: Option<&BTreeMap<String, serde_json::Value>>,
    required: &BTreeMap<String, String>,
) -> Result<(), String> {
    for (key, value) in required {
        match present.and_then(|p| p.get(key)) {
            None => return Err(format!("the signature has no annotation `{key}`")),
            Some(found) if found.as_str() == Some(value.as_str()) => {}
            Some(found) => {
                return Err(format!(
                    "the signature's annotation `{key}` is {found}, not \"{value}\""
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use crate::keys::HashAlgorithm;

    #[test]
    fn payloads_are_cosigns_and_their_claims_are_checked() {
        let digest = HashAlgorithm::Sha256.digest(b"manifest");
        let annotations = BTreeMap::from([("env".to_owned(), "prod".to_owned())]);
        let payload = SimpleSigning::new("registry.example/app", &digest, &annotations);
        let json: serde_json::Value = serde_json::from_slice(&payload.to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "critical": {
                    "identity": {"docker-reference": "registry.example/app"},
                    "image": {"docker-manifest-digest": digest.to_string()},
                    "type": "cosign container image signature"
                },
                "optional": {"env": "prod"}
            })
        );
        let parsed = SimpleSigning::from_json(&payload.to_json()).unwrap();
        parsed.check_claims(&digest, &annotations).unwrap();
        parsed.check_claims(&digest, &BTreeMap::new()).unwrap();
        let other = HashAlgorithm::Sha256.digest(b"other");
        assert!(
            parsed
                .check_claims(&other, &BTreeMap::new())
                .unwrap_err()
                .contains("not sha256:")
        );
        let wrong = BTreeMap::from([("env".to_owned(), "dev".to_owned())]);
        assert_eq!(
            parsed.check_claims(&digest, &wrong).unwrap_err(),
            "the signature's annotation `env` is \"prod\", not \"dev\""
        );
        let missing = BTreeMap::from([("team".to_owned(), "a".to_owned())]);
        assert_eq!(
            parsed.check_claims(&digest, &missing).unwrap_err(),
            "the signature has no annotation `team`"
        );
        let bare = SimpleSigning::new("r", &digest, &BTreeMap::new());
        assert!(
            String::from_utf8(bare.to_json())
                .unwrap()
                .contains("\"optional\":null")
        );
    }

    #[test]
    fn tags_are_cosigns() {
        let digest = Digest::parse(
            "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        )
        .unwrap();
        assert_eq!(
            tag(&digest, Attached::Signatures),
            "sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.sig"
        );
        assert!(tag(&digest, Attached::Attestations).ends_with(".att"));
    }
}
