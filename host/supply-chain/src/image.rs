//! An image's signatures and attestations, found and verified as `cosign verify` and
//! `cosign verify-attestation` find and verify them, from an [`ImageStore`] (a registry, or an
//! OCI layout offline):
//! - cosign's tag layout (`sha256-<hex>.sig`, `.att`; cosign v2, and v3 with
//!   `--new-bundle-format=false`): one layer per signature. A key-signed layer is checked with the
//!   key; a keyless layer (its certificate, chain and Rekor bundle in annotations) is checked as
//!   the Sigstore v0.1 bundle it is the parts of, so it gets the same log, chain and identity
//!   checks as a bundle;
//! - Sigstore bundles attached as OCI referrers (cosign v3): each bundle is verified over the
//!   image's digest (a DSSE statement must name it as a subject).
//!
//! An image is signed when at least one signature verifies; every candidate that does not is
//! named with its reason when none does. Results are cached per (digest, requirement) for a
//! time, so a second admission of the same image touches neither the registry nor the crypto.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use palisade_oci::ImageStore;
use serde::Deserialize;
use serde_json::json;

use crate::bundle::{self, Artifact, Certificate, Signer, TrustRoot};
use crate::cosign::{self, Attached, SimpleSigning};
use crate::dsse::{self, Envelope, Statement};
use crate::keys::{Digest, HashAlgorithm};

/// The predicate type cosign v3 gives the statement of an image signature.
pub const SIGN_PREDICATE_TYPE: &str = "https://sigstore.dev/cosign/sign/v1";
/// The annotation cosign v3 puts on a bundle referrer's manifest: its statement's predicate type.
pub const BUNDLE_PREDICATE_TYPE_ANNOTATION: &str = "dev.sigstore.bundle.predicateType";
/// Media types of Sigstore bundles (layer or artifact type), any version.
pub const BUNDLE_MEDIA_TYPE_PREFIX: &str = "application/vnd.dev.sigstore.bundle";

/// An image reference resolved to the digest its signatures are about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The reference as given.
    pub reference: String,
    /// `registry/repository`, where cosign's tags live.
    pub repository: String,
    /// The manifest digest (of the index, for a multi-platform image).
    pub digest: Digest,
}

/// What must hold of an image's signatures.
#[derive(Debug, Clone)]
pub struct SignatureRequirement {
    /// Who must have signed.
    pub signer: Signer,
    /// Annotations the signature must carry, with these values.
    pub annotations: BTreeMap<String, String>,
}

/// What must hold of an image's attestations.
#[derive(Debug, Clone)]
pub struct AttestationRequirement {
    /// Who must have signed them.
    pub signer: Signer,
    /// The predicate type wanted.
    pub predicate_type: String,
}

/// Where a verified artefact was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Layer `layer` of cosign's tag (`sha256-<hex>.sig` or `.att`).
    Tag {
        /// The tag.
        tag: String,
        /// The layer's index.
        layer: usize,
    },
    /// A referrer (its manifest digest).
    Referrer(String),
}

impl std::fmt::Display for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tag { tag, layer } => write!(f, "{tag} layer {layer}"),
            Self::Referrer(digest) => write!(f, "referrer {digest}"),
        }
    }
}

/// A signature that verified.
#[derive(Debug, Clone)]
pub struct VerifiedSignature {
    /// Where it was.
    pub found: Found,
    /// The signing certificate's identity, for a keyless signature.
    pub certificate: Option<Certificate>,
    /// The signature's annotations.
    pub annotations: BTreeMap<String, String>,
}

/// An attestation that verified.
#[derive(Debug, Clone)]
pub struct VerifiedAttestation {
    /// Where it was.
    pub found: Found,
    /// The signing certificate's identity, for a keyless attestation.
    pub certificate: Option<Certificate>,
    /// The statement (its subject names the image's digest).
    pub statement: Statement,
}

/// Why nothing verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// There is nothing to verify: no signature (or attestation) at all.
    #[error("{0}")]
    Missing(String),
    /// There were candidates, and none verified; each with its reason.
    #[error("{0}")]
    Unverified(String),
    /// The store could not answer.
    #[error("{0}")]
    Store(String),
}

/// How long a verification result is kept.
pub const DEFAULT_RESULT_TTL: Duration = Duration::from_secs(60);

type Cached<T> = (Instant, Result<Arc<Vec<T>>, Failure>);

/// Verifies images' signatures and attestations from a store, with a result cache.
pub struct ImageVerifier {
    store: Arc<ImageStore>,
    root: Option<TrustRoot>,
    ttl: Duration,
    signatures: Mutex<HashMap<String, Cached<VerifiedSignature>>>,
    attestations: Mutex<HashMap<String, Cached<VerifiedAttestation>>>,
}

impl std::fmt::Debug for ImageVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageVerifier")
            .field("root", &self.root)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// Cache entries kept at most (oldest dropped past this).
const MAX_CACHED: usize = 4096;

impl ImageVerifier {
    /// A verifier reading from `store`, checking keyless signatures against `root` (keyless
    /// signatures fail without one), keeping results for `ttl`.
    #[must_use]
    pub fn new(store: Arc<ImageStore>, root: Option<TrustRoot>, ttl: Duration) -> Self {
        Self {
            store,
            root,
            ttl,
            signatures: Mutex::new(HashMap::new()),
            attestations: Mutex::new(HashMap::new()),
        }
    }

    /// The store it reads.
    #[must_use]
    pub fn store(&self) -> &Arc<ImageStore> {
        &self.store
    }

    /// The digest `reference` names (a pinned digest is checked against the manifest).
    ///
    /// # Errors
    /// The store's error, as text.
    pub async fn resolve(&self, reference: &str) -> Result<Resolved, Failure> {
        let digest = self
            .store
            .digest(reference)
            .await
            .map_err(|e| Failure::Store(crate::error_chain(&e)))?;
        let digest = Digest::parse(&digest).map_err(Failure::Store)?;
        Ok(Resolved {
            reference: reference.to_owned(),
            repository: repository(reference),
            digest,
        })
    }

    /// The image's signatures that `requirement` accepts (at least one).
    ///
    /// # Errors
    /// [`Failure::Missing`] when it has none, [`Failure::Unverified`] with each candidate's
    /// reason when none verifies, [`Failure::Store`] when the store fails.
    pub async fn signatures(
        &self,
        image: &Resolved,
        requirement: &SignatureRequirement,
    ) -> Result<Arc<Vec<VerifiedSignature>>, Failure> {
        let key = format!(
            "{}|{}|{}",
            image.digest,
            signer_key(&requirement.signer),
            serde_json::to_string(&requirement.annotations).unwrap_or_default()
        );
        if let Some(hit) = cached(&self.signatures, &key, self.ttl) {
            return hit;
        }
        let result = self.find_signatures(image, requirement).await.map(Arc::new);
        remember(&self.signatures, key, &result);
        result
    }

    /// The image's attestations of `requirement`'s predicate type that its signer signed (at
    /// least one).
    ///
    /// # Errors
    /// As [`signatures`](Self::signatures).
    pub async fn attestations(
        &self,
        image: &Resolved,
        requirement: &AttestationRequirement,
    ) -> Result<Arc<Vec<VerifiedAttestation>>, Failure> {
        let key = format!(
            "{}|{}|{}",
            image.digest,
            signer_key(&requirement.signer),
            requirement.predicate_type
        );
        if let Some(hit) = cached(&self.attestations, &key, self.ttl) {
            return hit;
        }
        let result = self
            .find_attestations(image, requirement)
            .await
            .map(Arc::new);
        remember(&self.attestations, key, &result);
        result
    }

    async fn find_signatures(
        &self,
        image: &Resolved,
        requirement: &SignatureRequirement,
    ) -> Result<Vec<VerifiedSignature>, Failure> {
        let mut verified = Vec::new();
        let mut reasons = Vec::new();
        let mut candidates = 0;
        let tag = cosign::tag(&image.digest, Attached::Signatures);
        for (layer, descriptor) in self.tag_layers(image, &tag).await?.into_iter().enumerate() {
            if descriptor.media_type != cosign::SIMPLE_SIGNING_MEDIA_TYPE {
                continue;
            }
            candidates += 1;
            let found = Found::Tag {
                tag: tag.clone(),
                layer,
            };
            match self.tag_signature(image, requirement, &descriptor).await {
                Ok(signature) => verified.push(VerifiedSignature { found, ..signature }),
                Err(reason) => reasons.push(format!("{found}: {reason}")),
            }
        }
        for (found, json) in self.referrer_bundles(image, SIGN_PREDICATE_TYPE).await? {
            candidates += 1;
            match self.bundle_signature(image, requirement, &json) {
                Ok(mut signature) => {
                    signature.found = found;
                    verified.push(signature);
                }
                Err(reason) => reasons.push(format!("{found}: {reason}")),
            }
        }
        settle(verified, &reasons, candidates, "signature", image)
    }

    async fn find_attestations(
        &self,
        image: &Resolved,
        requirement: &AttestationRequirement,
    ) -> Result<Vec<VerifiedAttestation>, Failure> {
        let mut verified = Vec::new();
        let mut reasons = Vec::new();
        let mut candidates = 0;
        let tag = cosign::tag(&image.digest, Attached::Attestations);
        for (layer, descriptor) in self.tag_layers(image, &tag).await?.into_iter().enumerate() {
            if descriptor.media_type != cosign::DSSE_MEDIA_TYPE {
                continue;
            }
            let found = Found::Tag {
                tag: tag.clone(),
                layer,
            };
            // A layer whose annotation names another predicate type is not a candidate.
            if descriptor
                .annotations
                .get(cosign::PREDICATE_TYPE_ANNOTATION)
                .is_some_and(|t| *t != requirement.predicate_type)
            {
                continue;
            }
            candidates += 1;
            match self.tag_attestation(image, requirement, &descriptor).await {
                Ok(statement) => verified.push(VerifiedAttestation {
                    found,
                    certificate: None,
                    statement,
                }),
                Err(reason) => reasons.push(format!("{found}: {reason}")),
            }
        }
        for (found, json) in self
            .referrer_bundles(image, &requirement.predicate_type)
            .await?
        {
            // A bundle's log entries are checked against a root, even for a key; without one
            // configured, the public-good instance is not assumed.
            let Some(root) = self.root.as_ref() else {
                continue;
            };
            match bundle::verify(
                root,
                &json,
                Artifact::Digest(&image.digest),
                &requirement.signer,
            ) {
                Ok(result) => match result.statement {
                    Some(statement) if statement.predicate_type == requirement.predicate_type => {
                        candidates += 1;
                        verified.push(VerifiedAttestation {
                            found,
                            certificate: result.certificate,
                            statement,
                        });
                    }
                    // Another predicate type (an image signature, an SBOM when provenance
                    // is wanted): not a candidate.
                    _ => {}
                },
                Err(reason) => {
                    candidates += 1;
                    reasons.push(format!("{found}: {reason}"));
                }
            }
        }
        settle(verified, &reasons, candidates, "attestation", image)
    }

    /// The layers of cosign's tag `tag` in the image's repository; none when it does not exist.
    async fn tag_layers(&self, image: &Resolved, tag: &str) -> Result<Vec<Layer>, Failure> {
        let reference = format!("{}:{tag}", image.repository);
        let manifest = match self.store.manifest(&reference).await {
            Ok(manifest) => manifest,
            Err(e) if e.is_not_found() => return Ok(Vec::new()),
            Err(e) => return Err(Failure::Store(crate::error_chain(&e))),
        };
        let parsed: Layers = serde_json::from_slice(&manifest.bytes)
            .map_err(|e| Failure::Store(format!("{reference}: not an image manifest: {e}")))?;
        Ok(parsed.layers)
    }

    async fn layer_blob(&self, image: &Resolved, layer: &Layer) -> Result<Vec<u8>, String> {
        self.store
            .blob(&image.repository, &layer.digest)
            .await
            .map_err(|e| crate::error_chain(&e))
    }

    async fn tag_signature(
        &self,
        image: &Resolved,
        requirement: &SignatureRequirement,
        layer: &Layer,
    ) -> Result<VerifiedSignature, String> {
        let payload = self.layer_blob(image, layer).await?;
        let signature = layer
            .annotations
            .get(cosign::SIGNATURE_ANNOTATION)
            .ok_or("the layer has no signature annotation")?;
        let signature = dsse::decode_base64(signature)?;
        let certificate = match &requirement.signer {
            Signer::Key(key) => {
                key.verify(&payload, &signature)
                    .map_err(|e| e.to_string())?;
                None
            }
            Signer::Keyless(_) => {
                let root = self
                    .root
                    .as_ref()
                    .ok_or("no trusted root is configured for keyless signatures")?;
                let json = legacy_bundle(&layer.annotations, &payload, &signature)?;
                bundle::verify(root, &json, Artifact::Bytes(&payload), &requirement.signer)?
                    .certificate
            }
        };
        let claims = SimpleSigning::from_json(&payload)?;
        claims.check_claims(&image.digest, &requirement.annotations)?;
        Ok(VerifiedSignature {
            found: Found::Referrer(String::new()),
            certificate,
            annotations: claims.annotations(),
        })
    }

    async fn tag_attestation(
        &self,
        image: &Resolved,
        requirement: &AttestationRequirement,
        layer: &Layer,
    ) -> Result<Statement, String> {
        let Signer::Key(key) = &requirement.signer else {
            return Err(
                "keyless attestations in cosign's .att tag layout are not verified here: attach them as Sigstore bundles (cosign v3 default)"
                    .to_owned(),
            );
        };
        let envelope = Envelope::from_json(&self.layer_blob(image, layer).await?)?;
        envelope.verify(key)?;
        let statement = envelope.statement()?;
        if statement.subject_with(&image.digest).is_none() {
            return Err(format!("the statement is not about {}", image.digest));
        }
        if statement.predicate_type != requirement.predicate_type {
            return Err(format!(
                "the predicate type is {}, not {}",
                statement.predicate_type, requirement.predicate_type
            ));
        }
        Ok(statement)
    }

    fn bundle_signature(
        &self,
        image: &Resolved,
        requirement: &SignatureRequirement,
        json: &str,
    ) -> Result<VerifiedSignature, String> {
        let root = self
            .root
            .as_ref()
            .ok_or("no trusted root is configured for keyless signatures")?;
        let verified = bundle::verify(
            root,
            json,
            Artifact::Digest(&image.digest),
            &requirement.signer,
        )?;
        let annotations = match &verified.statement {
            Some(statement) => {
                if statement.predicate_type != SIGN_PREDICATE_TYPE {
                    return Err(format!(
                        "an attestation of {}, not a signature",
                        statement.predicate_type
                    ));
                }
                let subject = statement
                    .subject_with(&image.digest)
                    .ok_or_else(|| format!("the statement is not about {}", image.digest))?;
                let present = subject.annotations.as_ref().map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect::<BTreeMap<_, _>>()
                });
                cosign::check_annotations(present.as_ref(), &requirement.annotations)?;
                present
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                    .collect()
            }
            None => {
                cosign::check_annotations(None, &requirement.annotations)?;
                BTreeMap::new()
            }
        };
        Ok(VerifiedSignature {
            found: Found::Referrer(String::new()),
            certificate: verified.certificate,
            annotations,
        })
    }

    /// The Sigstore bundles attached to the image as referrers, each with where it was; a
    /// referrer whose `dev.sigstore.bundle.predicateType` annotation names another predicate
    /// type than `predicate_type` is left out unread (it is no candidate: an SBOM is not a
    /// signature).
    async fn referrer_bundles(
        &self,
        image: &Resolved,
        predicate_type: &str,
    ) -> Result<Vec<(Found, String)>, Failure> {
        let referrers = self
            .store
            .referrers(&image.repository, &image.digest.to_string())
            .await
            .map_err(|e| Failure::Store(crate::error_chain(&e)))?;
        let mut bundles = Vec::new();
        for referrer in referrers {
            if referrer
                .annotations
                .get(BUNDLE_PREDICATE_TYPE_ANNOTATION)
                .is_some_and(|t| t != predicate_type)
            {
                continue;
            }
            // Index entries may lack the artifact type (or carry the config's): filter on the
            // manifest's layers, not on the listing.
            if referrer.artifact_type.as_deref().is_some_and(|t| {
                !t.starts_with(BUNDLE_MEDIA_TYPE_PREFIX) && t != EMPTY_CONFIG_MEDIA_TYPE
            }) {
                continue;
            }
            let reference = format!("{}@{}", image.repository, referrer.digest);
            let manifest = self
                .store
                .manifest(&reference)
                .await
                .map_err(|e| Failure::Store(crate::error_chain(&e)))?;
            let Ok(parsed) = serde_json::from_slice::<Layers>(&manifest.bytes) else {
                continue;
            };
            let Some(layer) = parsed
                .layers
                .iter()
                .find(|l| l.media_type.starts_with(BUNDLE_MEDIA_TYPE_PREFIX))
            else {
                continue;
            };
            let bytes = self
                .store
                .blob(&image.repository, &layer.digest)
                .await
                .map_err(|e| Failure::Store(crate::error_chain(&e)))?;
            let json = String::from_utf8(bytes).map_err(|_| {
                Failure::Store(format!("{reference}: the bundle is not UTF-8 JSON"))
            })?;
            bundles.push((Found::Referrer(referrer.digest), json));
        }
        Ok(bundles)
    }
}

/// The media type of the empty config (`{}`), which referrer index entries may carry as their
/// artifact type.
const EMPTY_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";

#[derive(Deserialize)]
struct Layers {
    #[serde(default)]
    layers: Vec<Layer>,
}

/// A layer descriptor as far as cosign's artefacts need it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Layer {
    media_type: String,
    digest: String,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// A keyless layer of cosign's tag layout as the Sigstore v0.1 bundle it is the parts of: its
/// certificate (and chain), its signature over the payload, and its Rekor bundle's entry and
/// signed entry timestamp (cosign `pkg/cosign/bundle/rekor.go`).
fn legacy_bundle(
    annotations: &BTreeMap<String, String>,
    payload: &[u8],
    signature: &[u8],
) -> Result<String, String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct RekorBundle {
        signed_entry_timestamp: String,
        payload: RekorPayload,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct RekorPayload {
        body: String,
        integrated_time: i64,
        log_index: i64,
        #[serde(rename = "logID")]
        log_id: String,
    }
    let certificate = annotations
        .get(cosign::CERTIFICATE_ANNOTATION)
        .ok_or("the layer has no certificate: it was signed with a key")?;
    let mut chain =
        crate::keys::pem_blocks(certificate, "CERTIFICATE").map_err(|e| e.to_string())?;
    if chain.is_empty() {
        return Err("the layer's certificate annotation holds no certificate".to_owned());
    }
    if let Some(rest) = annotations.get(cosign::CHAIN_ANNOTATION) {
        chain.extend(crate::keys::pem_blocks(rest, "CERTIFICATE").map_err(|e| e.to_string())?);
    }
    let rekor: RekorBundle =
        serde_json::from_str(annotations.get(cosign::BUNDLE_ANNOTATION).ok_or(
            "the layer has no Rekor bundle: offline, its log inclusion cannot be checked",
        )?)
        .map_err(|e| format!("the layer's Rekor bundle: {e}"))?;
    let body = dsse::decode_base64(&rekor.payload.body)?;
    let entry: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| format!("the Rekor entry: {e}"))?;
    let kind = entry["kind"].as_str().unwrap_or_default();
    let version = entry["apiVersion"].as_str().unwrap_or_default();
    let log_id = hex::decode(&rekor.payload.log_id)
        .map_err(|e| format!("the Rekor bundle's logID is not hex: {e}"))?;
    let bundle = json!({
        "mediaType": "application/vnd.dev.sigstore.bundle+json;version=0.1",
        "verificationMaterial": {
            "x509CertificateChain": {
                "certificates": chain.iter().map(|der| json!({"rawBytes": dsse::encode_base64(der)})).collect::<Vec<_>>()
            },
            "tlogEntries": [{
                "logIndex": rekor.payload.log_index.to_string(),
                "logId": {"keyId": dsse::encode_base64(&log_id)},
                "kindVersion": {"kind": kind, "version": version},
                "integratedTime": rekor.payload.integrated_time.to_string(),
                "inclusionPromise": {"signedEntryTimestamp": rekor.signed_entry_timestamp},
                "canonicalizedBody": rekor.payload.body,
            }]
        },
        "messageSignature": {
            "messageDigest": {
                "algorithm": "SHA2_256",
                "digest": dsse::encode_base64(&HashAlgorithm::Sha256.digest(payload).bytes)
            },
            "signature": dsse::encode_base64(signature)
        }
    });
    Ok(bundle.to_string())
}

fn settle<T>(
    verified: Vec<T>,
    reasons: &[String],
    candidates: usize,
    what: &str,
    image: &Resolved,
) -> Result<Vec<T>, Failure> {
    if !verified.is_empty() {
        return Ok(verified);
    }
    // A reference pinned by digest names it already.
    let named = if image.reference.contains('@') {
        image.reference.clone()
    } else {
        format!("{} ({})", image.reference, image.digest)
    };
    if candidates == 0 {
        return Err(Failure::Missing(format!("{named} has no {what}")));
    }
    Err(Failure::Unverified(format!(
        "no {what} of {named} verifies: {}",
        reasons.join("; ")
    )))
}

/// A cache key for a signer: its key's id, or its identities.
fn signer_key(signer: &Signer) -> String {
    match signer {
        Signer::Key(key) => format!("key:{}", hex::encode(key.key_id())),
        Signer::Keyless(identities) => format!(
            "keyless:{}",
            identities
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("|")
        ),
    }
}

fn cached<T>(
    map: &Mutex<HashMap<String, Cached<T>>>,
    key: &str,
    ttl: Duration,
) -> Option<Result<Arc<Vec<T>>, Failure>> {
    let map = map.lock().unwrap_or_else(PoisonError::into_inner);
    map.get(key)
        .filter(|(at, _)| at.elapsed() < ttl)
        .map(|(_, result)| result.clone())
}

fn remember<T>(
    map: &Mutex<HashMap<String, Cached<T>>>,
    key: String,
    result: &Result<Arc<Vec<T>>, Failure>,
) {
    // A store failure is not kept: the next admission asks again.
    if matches!(result, Err(Failure::Store(_))) {
        return;
    }
    let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
    if map.len() >= MAX_CACHED
        && let Some(oldest) = map
            .iter()
            .min_by_key(|(_, (at, _))| *at)
            .map(|(k, _)| k.clone())
    {
        map.remove(&oldest);
    }
    map.insert(key, (Instant::now(), result.clone()));
}

/// `registry/repository` of a reference (its tag and digest dropped).
#[must_use]
pub fn repository(reference: &str) -> String {
    let without_digest = reference.split_once('@').map_or(reference, |(r, _)| r);
    match without_digest.rfind(':') {
        Some(colon) if !without_digest[colon..].contains('/') => without_digest[..colon].to_owned(),
        _ => without_digest.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_drop_tags_and_digests_but_not_ports() {
        assert_eq!(repository("127.0.0.1:5000/app:v1"), "127.0.0.1:5000/app");
        assert_eq!(repository("127.0.0.1:5000/app"), "127.0.0.1:5000/app");
        assert_eq!(
            repository("registry.example/team/app@sha256:00"),
            "registry.example/team/app"
        );
        assert_eq!(repository("app:v1@sha256:00"), "app");
    }
}
