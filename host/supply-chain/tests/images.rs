//! Images signed and attested with keys in an OCI layout (offline), then verified as
//! `cosign verify` does: through `attach::append` and `ImageVerifier`, as the CLI and the host
//! capability use them.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use palisade_oci::{Image, ImageStore, StoreOptions, layout};
use palisade_supply_chain::attach::{self, Destination, NewLayer};
use palisade_supply_chain::bundle::Signer;
use palisade_supply_chain::cosign::{self, Attached, SimpleSigning};
use palisade_supply_chain::dsse::{self, Envelope, Statement};
use palisade_supply_chain::image::{
    AttestationRequirement, Failure, ImageVerifier, Resolved, SignatureRequirement,
};
use palisade_supply_chain::keys::{HashAlgorithm, SigningKey};
use serde_json::json;

const IMAGE: &str = "registry.example/team/app:v1";
const OTHER: &str = "registry.example/team/other:v1";

/// An image whose only layer is `content`.
fn image(content: &[u8]) -> Image {
    let config = b"{}".to_vec();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "size": config.len(),
            "digest": HashAlgorithm::Sha256.digest(&config).to_string(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "size": content.len(),
            "digest": HashAlgorithm::Sha256.digest(content).to_string(),
        }],
    });
    Image::from_parts(
        serde_json::to_vec(&manifest).unwrap(),
        [config, content.to_vec()],
    )
    .unwrap()
}

/// A layout holding `IMAGE` and `OTHER`.
fn layout_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    layout::write_dir(
        dir.path(),
        &[(IMAGE, &image(b"app")), (OTHER, &image(b"other"))],
    )
    .unwrap();
    dir
}

fn verifier(dir: &Path) -> ImageVerifier {
    let store = ImageStore::layout(dir, StoreOptions::default()).unwrap();
    ImageVerifier::new(Arc::new(store), None, Duration::from_secs(60))
}

fn signature_layer(key: &SigningKey, image: &Resolved, annotations: &[(&str, &str)]) -> NewLayer {
    let annotations: BTreeMap<String, String> = annotations
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let payload = SimpleSigning::new(&image.repository, &image.digest, &annotations).to_json();
    NewLayer {
        media_type: cosign::SIMPLE_SIGNING_MEDIA_TYPE.to_owned(),
        annotations: BTreeMap::from([(
            cosign::SIGNATURE_ANNOTATION.to_owned(),
            dsse::encode_base64(&key.sign(&payload).unwrap()),
        )]),
        bytes: payload,
    }
}

fn attestation_layer(
    key: &SigningKey,
    image: &Resolved,
    predicate_type: &str,
    predicate: serde_json::Value,
) -> NewLayer {
    let statement = Statement::new(&image.repository, &image.digest, predicate_type, predicate);
    let envelope = Envelope::sign(
        dsse::IN_TOTO_PAYLOAD_TYPE,
        serde_json::to_vec(&statement).unwrap(),
        key,
    )
    .unwrap();
    NewLayer {
        media_type: cosign::DSSE_MEDIA_TYPE.to_owned(),
        bytes: envelope.to_json(),
        annotations: BTreeMap::from([(
            cosign::PREDICATE_TYPE_ANNOTATION.to_owned(),
            predicate_type.to_owned(),
        )]),
    }
}

/// The reasons of a result that must be [`Failure::Unverified`].
fn unverified<T: std::fmt::Debug>(result: Result<T, Failure>) -> String {
    match result {
        Err(Failure::Unverified(reason)) => reason,
        other => panic!("expected an unverified failure, got {other:?}"),
    }
}

fn requirement(key: &SigningKey, annotations: &[(&str, &str)]) -> SignatureRequirement {
    SignatureRequirement {
        signer: Signer::Key(key.public_key()),
        annotations: annotations
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

#[tokio::test]
async fn a_key_signed_image_verifies_and_every_other_key_or_image_does_not() {
    let dir = layout_dir();
    let verifier = verifier(dir.path());
    let image = verifier.resolve(IMAGE).await.unwrap();
    let other = verifier.resolve(OTHER).await.unwrap();
    let alice = SigningKey::generate_p256();
    let bob = SigningKey::generate_p384();

    // Unsigned: nothing to verify, said as such.
    let unsigned = verifier
        .signatures(&image, &requirement(&alice, &[]))
        .await
        .unwrap_err();
    assert!(
        matches!(unsigned, Failure::Missing(ref m) if m.contains("has no signature")),
        "{unsigned}"
    );

    let written = attach::append(
        Destination::Layout(dir.path()),
        &image,
        Attached::Signatures,
        signature_layer(&alice, &image, &[("env", "prod")]),
    )
    .await
    .unwrap();
    assert_eq!(
        written,
        format!(
            "registry.example/team/app:{}",
            cosign::tag(&image.digest, Attached::Signatures)
        )
    );
    // A second signer's layer is appended, not replacing the first.
    attach::append(
        Destination::Layout(dir.path()),
        &image,
        Attached::Signatures,
        signature_layer(&bob, &image, &[]),
    )
    .await
    .unwrap();

    // A fresh verifier (no cached results) reads the layout again.
    let verifier = self::verifier(dir.path());
    let found = verifier
        .signatures(&image, &requirement(&alice, &[("env", "prod")]))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].annotations["env"], "prod");
    assert!(
        found[0].found.to_string().ends_with(".sig layer 0"),
        "{}",
        found[0].found
    );
    verifier
        .signatures(&image, &requirement(&bob, &[]))
        .await
        .unwrap();

    // Another key: every layer is named with why it failed.
    let carol = SigningKey::generate_ed25519();
    let reason = unverified(verifier.signatures(&image, &requirement(&carol, &[])).await);
    assert!(
        reason.contains("layer 0: the signature does not verify with the Ed25519 key"),
        "{reason}"
    );
    assert!(
        reason.contains("layer 1: the signature does not verify"),
        "{reason}"
    );

    // A missing or different annotation.
    let reason = unverified(
        verifier
            .signatures(&image, &requirement(&alice, &[("env", "dev")]))
            .await,
    );
    assert!(
        reason.contains("annotation `env` is \"prod\", not \"dev\""),
        "{reason}"
    );
    let reason = unverified(
        verifier
            .signatures(&image, &requirement(&bob, &[("env", "prod")]))
            .await,
    );
    assert!(reason.contains("no annotation `env`"), "{reason}");

    // The other image is not signed by alice's signature of this one.
    assert!(matches!(
        verifier
            .signatures(&other, &requirement(&alice, &[]))
            .await
            .unwrap_err(),
        Failure::Missing(_)
    ));
}

#[tokio::test]
async fn a_signature_of_another_image_copied_to_this_one_is_refused() {
    let dir = layout_dir();
    let verifier = verifier(dir.path());
    let image = verifier.resolve(IMAGE).await.unwrap();
    let other = verifier.resolve(OTHER).await.unwrap();
    let key = SigningKey::generate_p256();
    // A valid signature of OTHER, stored under IMAGE's tag (a replayed signature).
    attach::append(
        Destination::Layout(dir.path()),
        &image,
        Attached::Signatures,
        signature_layer(&key, &other, &[]),
    )
    .await
    .unwrap();
    let reason = unverified(verifier.signatures(&image, &requirement(&key, &[])).await);
    assert!(
        reason.contains(&format!("the signature is for the image {}", other.digest)),
        "{reason}"
    );
}

#[tokio::test]
async fn a_tampered_payload_does_not_verify() {
    let dir = layout_dir();
    let verifier = verifier(dir.path());
    let image = verifier.resolve(IMAGE).await.unwrap();
    let key = SigningKey::generate_p256();
    let mut layer = signature_layer(&key, &image, &[]);
    // The payload changed after signing (an annotation added).
    let mut payload: serde_json::Value = serde_json::from_slice(&layer.bytes).unwrap();
    payload["optional"] = json!({"env": "prod"});
    layer.bytes = serde_json::to_vec(&payload).unwrap();
    attach::append(
        Destination::Layout(dir.path()),
        &image,
        Attached::Signatures,
        layer,
    )
    .await
    .unwrap();
    let reason = unverified(verifier.signatures(&image, &requirement(&key, &[])).await);
    assert!(
        reason.contains("does not verify with the ECDSA P-256 key"),
        "{reason}"
    );
}

#[tokio::test]
async fn attestations_verify_by_key_and_predicate_type() {
    let dir = layout_dir();
    let verifier = verifier(dir.path());
    let image = verifier.resolve(IMAGE).await.unwrap();
    let key = SigningKey::generate_p256();
    let provenance = "https://slsa.dev/provenance/v1";
    let vuln = dsse::predicate_type("vuln").unwrap();
    attach::append(
        Destination::Layout(dir.path()),
        &image,
        Attached::Attestations,
        attestation_layer(
            &key,
            &image,
            provenance,
            json!({"runDetails": {"builder": {"id": "https://builder.example/v1"}}}),
        ),
    )
    .await
    .unwrap();
    let wanted = |predicate_type: &str, key: &SigningKey| AttestationRequirement {
        signer: Signer::Key(key.public_key()),
        predicate_type: predicate_type.to_owned(),
    };
    let found = verifier
        .attestations(&image, &wanted(provenance, &key))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].statement.predicate["runDetails"]["builder"]["id"],
        "https://builder.example/v1"
    );
    assert!(found[0].statement.subject_with(&image.digest).is_some());

    // No vulnerability report: missing, not unverified.
    assert!(matches!(
        verifier
            .attestations(&image, &wanted(vuln, &key))
            .await
            .unwrap_err(),
        Failure::Missing(_)
    ));
    // Another key.
    let reason = unverified(
        verifier
            .attestations(&image, &wanted(provenance, &SigningKey::generate_p256()))
            .await,
    );
    assert!(
        reason.contains("no signature of the envelope verifies"),
        "{reason}"
    );
}

#[tokio::test]
async fn results_are_cached_per_digest_and_requirement() {
    let dir = layout_dir();
    let verifier = verifier(dir.path());
    let image = verifier.resolve(IMAGE).await.unwrap();
    let key = SigningKey::generate_p256();
    attach::append(
        Destination::Layout(dir.path()),
        &image,
        Attached::Signatures,
        signature_layer(&key, &image, &[]),
    )
    .await
    .unwrap();
    verifier
        .signatures(&image, &requirement(&key, &[]))
        .await
        .unwrap();
    // The layout is gone: a cached result answers the same requirement, another one fails.
    std::fs::remove_dir_all(dir.path().join("blobs")).unwrap();
    verifier
        .signatures(&image, &requirement(&key, &[]))
        .await
        .unwrap();
    assert!(matches!(
        verifier
            .signatures(&image, &requirement(&key, &[("env", "prod")]))
            .await
            .unwrap_err(),
        Failure::Store(_)
    ));
}

mod keyless {
    //! Keyless signatures of images, made by a local Sigstore instance: cosign's legacy `.sig`
    //! layer (certificate, chain and Rekor bundle in its annotations) and a v0.3 bundle attached
    //! as a referrer, each checked against the instance's trusted root and an identity.

    use super::*;
    use palisade_supply_chain::bundle::Identity;
    use palisade_supply_chain::image::SIGN_PREDICATE_TYPE;
    use palisade_supply_chain::keys::pem_encode;
    use palisade_supply_chain::testing::{
        CertificateRequest, Credential, Instance, Options, Version,
    };

    const SUBJECT: &str =
        "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";
    const ISSUER: &str = "https://token.actions.githubusercontent.com";

    fn identity(subject: &str) -> Signer {
        Signer::Keyless(vec![Identity {
            subject: Some(subject.to_owned()),
            issuer: Some(ISSUER.to_owned()),
            ..Identity::default()
        }])
    }

    fn keyless_verifier(dir: &Path, sigstore: &Instance) -> ImageVerifier {
        let store = ImageStore::layout(dir, StoreOptions::default()).unwrap();
        ImageVerifier::new(
            Arc::new(store),
            Some(sigstore.trust_root().unwrap()),
            Duration::from_secs(60),
        )
    }

    /// cosign's legacy layer for `payload`, from the parts of a v0.1 bundle over it.
    fn legacy_layer(bundle: &str, payload: Vec<u8>) -> NewLayer {
        let bundle: serde_json::Value = serde_json::from_str(bundle).unwrap();
        let material = &bundle["verificationMaterial"];
        let certificates: Vec<Vec<u8>> = material["x509CertificateChain"]["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| dsse::decode_base64(c["rawBytes"].as_str().unwrap()).unwrap())
            .collect();
        let entry = &material["tlogEntries"][0];
        let log_id = dsse::decode_base64(entry["logId"]["keyId"].as_str().unwrap()).unwrap();
        let rekor = json!({
            "SignedEntryTimestamp": entry["inclusionPromise"]["signedEntryTimestamp"],
            "Payload": {
                "body": entry["canonicalizedBody"],
                "integratedTime": entry["integratedTime"].as_str().unwrap().parse::<i64>().unwrap(),
                "logIndex": entry["logIndex"].as_str().unwrap().parse::<i64>().unwrap(),
                "logID": hex::encode(log_id),
            }
        });
        NewLayer {
            media_type: cosign::SIMPLE_SIGNING_MEDIA_TYPE.to_owned(),
            bytes: payload,
            annotations: BTreeMap::from([
                (
                    cosign::SIGNATURE_ANNOTATION.to_owned(),
                    bundle["messageSignature"]["signature"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                ),
                (
                    cosign::CERTIFICATE_ANNOTATION.to_owned(),
                    pem_encode("CERTIFICATE", &certificates[0]),
                ),
                (
                    cosign::CHAIN_ANNOTATION.to_owned(),
                    certificates[1..]
                        .iter()
                        .map(|c| pem_encode("CERTIFICATE", c))
                        .collect(),
                ),
                (cosign::BUNDLE_ANNOTATION.to_owned(), rekor.to_string()),
            ]),
        }
    }

    #[tokio::test]
    async fn a_legacy_keyless_signature_verifies_against_the_root_and_identity() {
        let dir = layout_dir();
        let sigstore = Instance::new().unwrap();
        let verifier = keyless_verifier(dir.path(), &sigstore);
        let image = verifier.resolve(IMAGE).await.unwrap();
        let leaf = sigstore
            .issue(&CertificateRequest::uri(SUBJECT, ISSUER))
            .unwrap();
        let payload =
            SimpleSigning::new(&image.repository, &image.digest, &BTreeMap::new()).to_json();
        let bundle = sigstore
            .sign_blob(
                Credential::Keyless(&leaf),
                &payload,
                &Options::new(Version::V0_1),
            )
            .unwrap();
        attach::append(
            Destination::Layout(dir.path()),
            &image,
            Attached::Signatures,
            legacy_layer(&bundle, payload),
        )
        .await
        .unwrap();
        let found = verifier
            .signatures(
                &image,
                &SignatureRequirement {
                    signer: identity(SUBJECT),
                    annotations: BTreeMap::new(),
                },
            )
            .await
            .unwrap();
        assert_eq!(found[0].certificate.as_ref().unwrap().subject, SUBJECT);

        let reason = unverified(verifier
            .signatures(
                &image,
                &SignatureRequirement {
                    signer: identity(
                        "https://github.com/evil/app/.github/workflows/release.yml@refs/heads/main",
                    ),
                    annotations: BTreeMap::new(),
                },
            )
            .await);
        assert!(
            reason.contains("not one of the allowed identities"),
            "{reason}"
        );

        // Another instance's root does not trust this instance's certificates or log.
        let other = Instance::new().unwrap();
        let reason = unverified(
            keyless_verifier(dir.path(), &other)
                .signatures(
                    &image,
                    &SignatureRequirement {
                        signer: identity(SUBJECT),
                        annotations: BTreeMap::new(),
                    },
                )
                .await,
        );
        assert!(reason.contains(".sig layer 0"), "{reason}");
    }

    #[tokio::test]
    async fn a_bundle_attached_as_a_referrer_verifies_with_its_annotations() {
        let dir = layout_dir();
        let sigstore = Instance::new().unwrap();
        let verifier = keyless_verifier(dir.path(), &sigstore);
        let image = verifier.resolve(IMAGE).await.unwrap();
        let leaf = sigstore
            .issue(&CertificateRequest::uri(SUBJECT, ISSUER))
            .unwrap();
        // cosign v3's signature: a statement about the image with annotations on its subject.
        let mut statement = Statement::new(
            &image.repository,
            &image.digest,
            SIGN_PREDICATE_TYPE,
            json!({}),
        );
        statement.subject[0].annotations = Some(serde_json::Map::from_iter([(
            "env".to_owned(),
            json!("prod"),
        )]));
        let bundle = sigstore
            .attest(
                Credential::Keyless(&leaf),
                &statement,
                &Options::new(Version::V0_3),
            )
            .unwrap();
        attach_referrer(dir.path(), &image, bundle.into_bytes(), SIGN_PREDICATE_TYPE);

        let wanted = |annotations: &[(&str, &str)]| SignatureRequirement {
            signer: identity(SUBJECT),
            annotations: annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        let found = verifier
            .signatures(&image, &wanted(&[("env", "prod")]))
            .await
            .unwrap();
        assert!(
            found[0].found.to_string().starts_with("referrer sha256:"),
            "{}",
            found[0].found
        );
        assert_eq!(found[0].annotations["env"], "prod");
        let reason = unverified(verifier.signatures(&image, &wanted(&[("team", "a")])).await);
        assert!(reason.contains("no annotation `team`"), "{reason}");

        // The same bundle is no signature of the other image.
        let other = verifier.resolve(OTHER).await.unwrap();
        assert!(matches!(
            verifier.signatures(&other, &wanted(&[])).await.unwrap_err(),
            Failure::Missing(_)
        ));
    }

    #[tokio::test]
    async fn an_attestation_referrer_is_no_signature_and_a_signature_is_no_attestation() {
        let dir = layout_dir();
        let sigstore = Instance::new().unwrap();
        let verifier = keyless_verifier(dir.path(), &sigstore);
        let image = verifier.resolve(IMAGE).await.unwrap();
        let leaf = sigstore
            .issue(&CertificateRequest::uri(SUBJECT, ISSUER))
            .unwrap();
        let provenance = "https://slsa.dev/provenance/v1";
        let statement = Statement::new(
            &image.repository,
            &image.digest,
            provenance,
            json!({"buildDefinition": {}}),
        );
        let bundle = sigstore
            .attest(
                Credential::Keyless(&leaf),
                &statement,
                &Options::new(Version::V0_3),
            )
            .unwrap();
        attach_referrer(dir.path(), &image, bundle.into_bytes(), provenance);
        // Only an attestation: the image has no signature at all.
        let unsigned = verifier
            .signatures(
                &image,
                &SignatureRequirement {
                    signer: identity(SUBJECT),
                    annotations: BTreeMap::new(),
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(unsigned, Failure::Missing(ref m) if m.contains("has no signature")),
            "{unsigned}"
        );
        let found = verifier
            .attestations(
                &image,
                &AttestationRequirement {
                    signer: identity(SUBJECT),
                    predicate_type: provenance.to_owned(),
                },
            )
            .await
            .unwrap();
        assert_eq!(found[0].statement.predicate_type, provenance);
        assert_eq!(found[0].certificate.as_ref().unwrap().subject, SUBJECT);
        let vuln = verifier
            .attestations(
                &image,
                &AttestationRequirement {
                    signer: identity(SUBJECT),
                    predicate_type: "https://cosign.sigstore.dev/attestation/vuln/v1".to_owned(),
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(vuln, Failure::Missing(_)), "{vuln}");
    }

    #[tokio::test]
    async fn bundles_attached_by_attach_bundle_are_referrers_the_verifier_finds() {
        let dir = layout_dir();
        let sigstore = Instance::new().unwrap();
        let verifier = keyless_verifier(dir.path(), &sigstore);
        let image = verifier.resolve(IMAGE).await.unwrap();
        let leaf = sigstore
            .issue(&CertificateRequest::uri(SUBJECT, ISSUER))
            .unwrap();
        let options = Options::new(Version::V0_3);
        let signature = sigstore
            .attest(
                Credential::Keyless(&leaf),
                &Statement::new(
                    &image.repository,
                    &image.digest,
                    SIGN_PREDICATE_TYPE,
                    json!({}),
                ),
                &options,
            )
            .unwrap();
        let provenance = "https://slsa.dev/provenance/v1";
        let attestation = sigstore
            .attest(
                Credential::Keyless(&leaf),
                &Statement::new(
                    &image.repository,
                    &image.digest,
                    provenance,
                    json!({"runDetails": {"builder": {"id": "https://builder.example"}}}),
                ),
                &options,
            )
            .unwrap();
        let destination = Destination::Layout(dir.path());
        let written = attach::attach_bundle(destination, &image, &signature)
            .await
            .unwrap();
        assert!(
            written.starts_with("registry.example/team/app@sha256:"),
            "{written}"
        );
        // Attaching the same bundle again changes nothing.
        assert_eq!(
            attach::attach_bundle(destination, &image, &signature)
                .await
                .unwrap(),
            written
        );
        attach::attach_bundle(destination, &image, &attestation)
            .await
            .unwrap();

        // The referrer is cosign v3's: empty config, the bundle as its one layer, the image as
        // its subject, the predicate type annotated.
        let store = ImageStore::layout(dir.path(), StoreOptions::default()).unwrap();
        let manifest = store.manifest(&written).await.unwrap();
        let manifest: serde_json::Value = serde_json::from_slice(&manifest.bytes).unwrap();
        let bundle_type = "application/vnd.dev.sigstore.bundle.v0.3+json";
        assert_eq!(manifest["artifactType"], bundle_type);
        assert_eq!(
            manifest["config"]["mediaType"],
            "application/vnd.oci.empty.v1+json"
        );
        assert_eq!(manifest["config"]["size"], 2);
        assert_eq!(manifest["layers"][0]["mediaType"], bundle_type);
        assert_eq!(manifest["subject"]["digest"], image.digest.to_string());
        let subject = store.manifest(IMAGE).await.unwrap();
        assert_eq!(manifest["subject"]["size"], subject.bytes.len());
        assert_eq!(manifest["subject"]["mediaType"], subject.media_type);
        assert_eq!(
            manifest["annotations"],
            json!({
                "dev.sigstore.bundle.content": "dsse-envelope",
                "dev.sigstore.bundle.predicateType": SIGN_PREDICATE_TYPE,
            })
        );
        let referrers = store
            .referrers(&image.repository, &image.digest.to_string())
            .await
            .unwrap();
        assert_eq!(referrers.len(), 2, "{referrers:?}");

        let signatures = verifier
            .signatures(
                &image,
                &SignatureRequirement {
                    signer: identity(SUBJECT),
                    annotations: BTreeMap::new(),
                },
            )
            .await
            .unwrap();
        assert_eq!(signatures.len(), 1);
        assert_eq!(
            signatures[0].found.to_string(),
            format!("referrer {}", written.split_once('@').unwrap().1)
        );
        let attestations = verifier
            .attestations(
                &image,
                &AttestationRequirement {
                    signer: identity(SUBJECT),
                    predicate_type: provenance.to_owned(),
                },
            )
            .await
            .unwrap();
        assert_eq!(attestations.len(), 1);
        assert_eq!(
            attestations[0].statement.predicate["runDetails"]["builder"]["id"],
            "https://builder.example"
        );
        assert_eq!(
            attestations[0].certificate.as_ref().unwrap().subject,
            SUBJECT
        );
        // The image tags are untouched, and nothing was attached to the other image.
        let other = verifier.resolve(OTHER).await.unwrap();
        assert!(matches!(
            verifier
                .signatures(
                    &other,
                    &SignatureRequirement {
                        signer: identity(SUBJECT),
                        annotations: BTreeMap::new(),
                    },
                )
                .await
                .unwrap_err(),
            Failure::Missing(_)
        ));
    }

    #[tokio::test]
    async fn what_is_not_a_sigstore_bundle_is_not_attached() {
        let dir = layout_dir();
        let verifier = verifier(dir.path());
        let image = verifier.resolve(IMAGE).await.unwrap();
        let destination = Destination::Layout(dir.path());
        for (bundle, reason) in [
            ("not json", "not JSON"),
            (r#"{"mediaType": "application/json"}"#, "mediaType"),
            (
                r#"{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}"#,
                "neither a DSSE envelope nor a message signature",
            ),
        ] {
            let error = attach::attach_bundle(destination, &image, bundle)
                .await
                .unwrap_err();
            assert!(error.contains(reason), "{error}");
        }
    }

    /// Writes `bundle` into the layout as cosign v3 attaches it: a manifest whose `subject` is
    /// the image, listed in `index.json`.
    fn attach_referrer(dir: &Path, image: &Resolved, bundle: Vec<u8>, predicate_type: &str) {
        let empty = b"{}".to_vec();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "size": 2,
                "digest": HashAlgorithm::Sha256.digest(&empty).to_string(),
            },
            "layers": [{
                "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                "size": bundle.len(),
                "digest": HashAlgorithm::Sha256.digest(&bundle).to_string(),
            }],
            "subject": {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": image.digest.to_string(),
                "size": 0,
            },
            "annotations": {
                "dev.sigstore.bundle.content": "dsse-envelope",
                "dev.sigstore.bundle.predicateType": predicate_type,
            },
        });
        let referrer =
            Image::from_parts(serde_json::to_vec(&manifest).unwrap(), [empty, bundle]).unwrap();
        let mut entries = layout::read_dir(dir).unwrap();
        entries.push(layout::Entry {
            name: None,
            image: referrer,
        });
        let named: Vec<(String, Image)> = entries
            .into_iter()
            .map(|e| (e.name.unwrap_or_else(|| e.image.digest()), e.image))
            .collect();
        let refs: Vec<(&str, &Image)> = named.iter().map(|(n, i)| (n.as_str(), i)).collect();
        layout::write_dir(dir, &refs).unwrap();
    }
}
