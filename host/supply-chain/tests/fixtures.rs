//! The fixed set of signed images (`testing::images`) means what it says: written into an OCI
//! layout (and, where Debian's `docker-registry` is installed, a registry without the referrers
//! API), each image verifies or fails through `ImageVerifier` with the set's trusted root and
//! keys as its documentation claims, and each failure names its cause.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use palisade_oci::{ImageStore, StoreOptions};
use palisade_supply_chain::attach::Destination;
use palisade_supply_chain::bundle::{Identity, Signer, TrustRoot};
use palisade_supply_chain::image::{
    AttestationRequirement, Failure, Found, ImageVerifier, Resolved, SignatureRequirement,
    VerifiedAttestation, VerifiedSignature,
};
use palisade_supply_chain::keys::PublicKey;
use palisade_supply_chain::testing::images::{
    ATTESTED, CYCLONEDX, EXPIRED, FixtureOptions, Fixtures, ISSUER, KEYLESS, KEYLESS_LEGACY,
    KEYLESS_REPOSITORY, KEYLESS_SUBJECT, OTHER_IDENTITY, OTHER_REGISTRY, OTHER_SUBJECT, REFERENCES,
    RSA, SIGNED, SLSA_PROVENANCE_V0_2, SLSA_PROVENANCE_V1, SPDX, TAMPERED, TWO_KEYS, UNSIGNED,
    UNTRUSTED_KEY, VULN, VULNERABLE, WORKFLOW_REF, WRONG_DIGEST, write_images,
};

/// The set, its verifier and how to name its images.
struct Set {
    fixtures: Fixtures,
    verifier: ImageVerifier,
    /// A reference of the set as it was written (relocated to a registry, or as it is).
    written: Box<dyn Fn(&str) -> String>,
}

impl Set {
    fn key(&self, name: &str) -> Signer {
        Signer::Key(PublicKey::from_pem(&self.fixtures.public_keys[name]).unwrap())
    }

    async fn image(&self, reference: &str) -> Resolved {
        let written = (self.written)(reference);
        let image = self.verifier.resolve(&written).await.unwrap();
        assert_eq!(
            image.digest.to_string(),
            self.fixtures.images[&written],
            "{written}"
        );
        image
    }

    async fn signatures(
        &self,
        reference: &str,
        signer: Signer,
        annotations: &[(&str, &str)],
    ) -> Result<Arc<Vec<VerifiedSignature>>, Failure> {
        let image = self.image(reference).await;
        self.verifier
            .signatures(
                &image,
                &SignatureRequirement {
                    signer,
                    annotations: annotations
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                },
            )
            .await
    }

    async fn attestations(
        &self,
        reference: &str,
        signer: Signer,
        predicate_type: &str,
    ) -> Result<Arc<Vec<VerifiedAttestation>>, Failure> {
        let image = self.image(reference).await;
        self.verifier
            .attestations(
                &image,
                &AttestationRequirement {
                    signer,
                    predicate_type: predicate_type.to_owned(),
                },
            )
            .await
    }
}

/// The keyless identity the set's keyless signatures are of, with its repository claim.
fn keyless() -> Signer {
    Signer::Keyless(vec![Identity {
        subject: Some(KEYLESS_SUBJECT.to_owned()),
        issuer: Some(ISSUER.to_owned()),
        claims: BTreeMap::from([(
            "githubWorkflowRepository".to_owned(),
            KEYLESS_REPOSITORY.to_owned(),
        )]),
        ..Identity::default()
    }])
}

fn identity(subject: &str) -> Signer {
    Signer::Keyless(vec![Identity {
        subject: Some(subject.to_owned()),
        issuer: Some(ISSUER.to_owned()),
        ..Identity::default()
    }])
}

/// The reasons of a result that must be [`Failure::Unverified`].
fn unverified<T: std::fmt::Debug>(result: Result<T, Failure>) -> String {
    match result {
        Err(Failure::Unverified(reason)) => reason,
        other => panic!("expected an unverified failure, got {other:?}"),
    }
}

fn verifier(store: ImageStore, fixtures: &Fixtures) -> ImageVerifier {
    let root = TrustRoot::from_json(&fixtures.trusted_root_json, "fixtures").unwrap();
    ImageVerifier::new(Arc::new(store), Some(root), Duration::from_secs(60))
}

#[tokio::test]
async fn the_fixture_images_verify_and_fail_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = write_images(Destination::Layout(dir.path()), &FixtureOptions::default())
        .await
        .unwrap();
    assert_eq!(
        fixtures
            .images
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        {
            let mut sorted = REFERENCES.to_vec();
            sorted.sort_unstable();
            sorted
        }
    );
    let digests: std::collections::BTreeSet<&String> = fixtures.images.values().collect();
    assert_eq!(digests.len(), REFERENCES.len(), "every image is distinct");
    assert_eq!(
        fixtures.public_keys.keys().collect::<Vec<_>>(),
        ["alpha", "beta", "gamma", "mallory"]
    );
    let store = ImageStore::layout(dir.path(), StoreOptions::default()).unwrap();
    let set = Set {
        verifier: verifier(store, &fixtures),
        fixtures,
        written: Box::new(str::to_owned),
    };
    check(&set).await;

    // Written again into the same layout: the set is replaced, not added to.
    let again = write_images(Destination::Layout(dir.path()), &FixtureOptions::default())
        .await
        .unwrap();
    assert_eq!(again.images, set.fixtures.images, "the images are fixed");
    let store = ImageStore::layout(dir.path(), StoreOptions::default()).unwrap();
    let set = Set {
        verifier: verifier(store, &again),
        fixtures: again,
        written: Box::new(str::to_owned),
    };
    let two = set
        .signatures(TWO_KEYS, set.key("alpha"), &[])
        .await
        .unwrap();
    assert_eq!(two.len(), 1);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
    // 14 images, 10 `.sig` tags, 2 `.att` tags, 4 referrers.
    assert_eq!(index["manifests"].as_array().unwrap().len(), 30);
}

/// Every claim of the set's documentation.
async fn check(set: &Set) {
    let alpha = || set.key("alpha");

    // Key-signed images, by the right key only.
    let signed = set
        .signatures(SIGNED, alpha(), &[("env", "prod")])
        .await
        .unwrap();
    assert_eq!(signed[0].annotations["env"], "prod");
    assert!(matches!(signed[0].found, Found::Tag { layer: 0, .. }));
    let reason = unverified(set.signatures(SIGNED, set.key("beta"), &[]).await);
    assert!(
        reason.contains("does not verify with the Ed25519 key"),
        "{reason}"
    );
    for key in ["alpha", "beta"] {
        let found = set.signatures(TWO_KEYS, set.key(key), &[]).await.unwrap();
        assert_eq!(found.len(), 1, "{key}");
    }
    let reason = unverified(set.signatures(TWO_KEYS, set.key("gamma"), &[]).await);
    assert!(
        reason.contains("layer 0:") && reason.contains("layer 1:"),
        "{reason}"
    );
    set.signatures(RSA, set.key("gamma"), &[]).await.unwrap();
    let reason = unverified(set.signatures(RSA, alpha(), &[]).await);
    assert!(
        reason.contains("does not verify with the ECDSA P-256 key"),
        "{reason}"
    );
    set.signatures(OTHER_REGISTRY, alpha(), &[]).await.unwrap();

    // Keyless: the bundle referrer and the legacy layer, of the same identity and claims.
    let found = set.signatures(KEYLESS, keyless(), &[]).await.unwrap();
    assert!(
        matches!(found[0].found, Found::Referrer(_)),
        "{:?}",
        found[0].found
    );
    let certificate = found[0].certificate.as_ref().unwrap();
    assert_eq!(certificate.subject, KEYLESS_SUBJECT);
    assert_eq!(certificate.issuer, ISSUER);
    assert_eq!(
        certificate.claims["githubWorkflowRepository"],
        KEYLESS_REPOSITORY
    );
    assert_eq!(certificate.claims["githubWorkflowRef"], WORKFLOW_REF);
    let found = set
        .signatures(KEYLESS_LEGACY, keyless(), &[])
        .await
        .unwrap();
    assert!(
        matches!(&found[0].found, Found::Tag { tag, layer: 0 } if tag.ends_with(".sig")),
        "{:?}",
        found[0].found
    );
    assert_eq!(
        found[0].certificate.as_ref().unwrap().subject,
        KEYLESS_SUBJECT
    );
    let reason = unverified(set.signatures(KEYLESS, alpha(), &[]).await);
    assert!(reason.contains("referrer sha256:"), "{reason}");

    // Another identity: refused for the expected one, its own verifies.
    let reason = unverified(set.signatures(OTHER_IDENTITY, keyless(), &[]).await);
    assert!(
        reason.contains("not one of the allowed identities"),
        "{reason}"
    );
    let found = set
        .signatures(OTHER_IDENTITY, identity(OTHER_SUBJECT), &[])
        .await
        .unwrap();
    assert_eq!(
        found[0].certificate.as_ref().unwrap().claims["githubWorkflowRepository"],
        "evil/fork"
    );

    // Expired: the certificate was not valid at the integrated time, and nothing else dates it.
    let reason = unverified(set.signatures(EXPIRED, keyless(), &[]).await);
    assert!(reason.contains("CertExpired"), "{reason}");
    let reason = unverified(
        set.signatures(EXPIRED, identity(KEYLESS_SUBJECT), &[])
            .await,
    );
    assert!(reason.contains("CertExpired"), "{reason}");

    // Tampered, for another image, by an untrusted key, or not signed at all.
    let reason = unverified(set.signatures(TAMPERED, alpha(), &[]).await);
    assert!(
        reason.contains(".sig layer 0: the signature does not verify with the ECDSA P-256 key"),
        "{reason}"
    );
    let reason = unverified(set.signatures(WRONG_DIGEST, alpha(), &[]).await);
    let elsewhere = &set.fixtures.images[&(set.written)(SIGNED)];
    assert!(
        reason.contains(&format!("the signature is for the image {elsewhere}")),
        "{reason}"
    );
    let reason = unverified(set.signatures(UNTRUSTED_KEY, alpha(), &[]).await);
    assert!(
        reason.contains("does not verify with the ECDSA P-256 key"),
        "{reason}"
    );
    set.signatures(UNTRUSTED_KEY, set.key("mallory"), &[])
        .await
        .unwrap();
    for signer in [alpha(), keyless()] {
        let missing = set.signatures(UNSIGNED, signer, &[]).await.unwrap_err();
        assert!(
            matches!(missing, Failure::Missing(ref m) if m.contains("has no signature")),
            "{missing}"
        );
    }

    // Attestations by key, of each predicate type, and a keyless one.
    set.signatures(ATTESTED, alpha(), &[]).await.unwrap();
    let provenance = set
        .attestations(ATTESTED, alpha(), SLSA_PROVENANCE_V1)
        .await
        .unwrap();
    assert_eq!(provenance.len(), 1);
    let predicate = &provenance[0].statement.predicate;
    assert_eq!(
        predicate["runDetails"]["builder"]["id"],
        "https://github.com/actions/runner/github-hosted"
    );
    let workflow = &predicate["buildDefinition"]["externalParameters"]["workflow"];
    assert_eq!(workflow["repository"], "https://github.com/example/app");
    assert_eq!(workflow["ref"], "refs/heads/main");
    assert_eq!(
        predicate["buildDefinition"]["resolvedDependencies"][0]["uri"],
        "git+https://github.com/example/app@refs/heads/main"
    );
    let vuln = set.attestations(ATTESTED, alpha(), VULN).await.unwrap();
    let report = &vuln[0].statement.predicate;
    assert_eq!(report["metadata"]["scanFinishedOn"], "2026-12-01T00:00:00Z");
    assert_eq!(
        severities(report),
        [("CVE-2026-1000", "MEDIUM"), ("CVE-2026-1001", "LOW")]
    );
    let sbom = set.attestations(ATTESTED, alpha(), SPDX).await.unwrap();
    assert_eq!(sbom[0].statement.predicate["spdxVersion"], "SPDX-2.3");
    let old = set
        .attestations(ATTESTED, keyless(), SLSA_PROVENANCE_V0_2)
        .await
        .unwrap();
    assert!(matches!(old[0].found, Found::Referrer(_)));
    assert_eq!(
        old[0].certificate.as_ref().unwrap().subject,
        KEYLESS_SUBJECT
    );
    assert_eq!(
        old[0].statement.predicate["invocation"]["configSource"]["uri"],
        "git+https://github.com/example/app@refs/heads/main"
    );
    // Each attestation is about this image.
    let attested = set.image(ATTESTED).await;
    for found in [&provenance[0], &vuln[0], &sbom[0], &old[0]] {
        assert!(found.statement.subject_with(&attested.digest).is_some());
    }
    // The keyless provenance is no key's, and there is no CycloneDX SBOM here.
    assert!(
        set.attestations(ATTESTED, alpha(), SLSA_PROVENANCE_V0_2)
            .await
            .is_err()
    );
    assert!(matches!(
        set.attestations(ATTESTED, alpha(), CYCLONEDX)
            .await
            .unwrap_err(),
        Failure::Missing(_)
    ));
    let reason = unverified(
        set.attestations(ATTESTED, set.key("mallory"), SLSA_PROVENANCE_V1)
            .await,
    );
    assert!(
        reason.contains("no signature of the envelope verifies"),
        "{reason}"
    );

    set.signatures(VULNERABLE, alpha(), &[]).await.unwrap();
    let vuln = set.attestations(VULNERABLE, alpha(), VULN).await.unwrap();
    let report = &vuln[0].statement.predicate;
    assert_eq!(report["metadata"]["scanFinishedOn"], "2026-11-01T00:00:00Z");
    assert_eq!(
        severities(report),
        [
            ("CVE-2026-2000", "CRITICAL"),
            ("CVE-2026-2001", "HIGH"),
            ("CVE-2026-2002", "HIGH"),
        ]
    );
    let bom = set
        .attestations(VULNERABLE, alpha(), CYCLONEDX)
        .await
        .unwrap();
    assert_eq!(bom[0].statement.predicate["bomFormat"], "CycloneDX");
    assert!(matches!(
        set.attestations(UNSIGNED, alpha(), VULN).await.unwrap_err(),
        Failure::Missing(_)
    ));
}

/// A vuln predicate's findings: id and severity.
fn severities(report: &serde_json::Value) -> Vec<(&str, &str)> {
    report["scanner"]["result"]["Results"][0]["Vulnerabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["VulnerabilityID"].as_str().unwrap(),
                v["Severity"].as_str().unwrap(),
            )
        })
        .collect()
}

mod registry {
    //! The same set pushed to a real registry: Debian's `docker-registry` (distribution 2.8),
    //! which has no referrers API, so bundles are found through the referrers tag schema.

    use palisade_supply_chain::testing::images::push_images;

    use super::*;

    #[tokio::test]
    async fn the_fixture_images_pushed_to_a_registry_verify_the_same() {
        let registry = match e2e::registry::LocalRegistry::start() {
            Ok(registry) => registry,
            Err(reason) => {
                e2e::skip(&reason);
                return;
            }
        };
        let address = registry.address.clone();
        let fixtures = push_images(&address).await.unwrap();
        assert!(
            fixtures
                .images
                .contains_key(&format!("{address}/team/signed:v1")),
            "{:?}",
            fixtures.images.keys()
        );
        assert!(
            fixtures
                .images
                .contains_key(&format!("{address}/library/app:v1"))
        );
        let set = Set {
            verifier: verifier(
                ImageStore::registry(StoreOptions {
                    insecure_registries: vec![address.clone()],
                    cache_ttl: Duration::ZERO,
                    ..StoreOptions::default()
                })
                .unwrap(),
                &fixtures,
            ),
            fixtures,
            written: Box::new(move |reference: &str| {
                format!("{address}/{}", reference.split_once('/').unwrap().1)
            }),
        };
        check(&set).await;

        // The referrers came from the tag-schema index: the registry has no referrers API.
        let attested = set.image(ATTESTED).await;
        let index = set
            .verifier
            .store()
            .manifest(&format!(
                "{}:sha256-{}",
                attested.repository,
                hex::encode(&attested.digest.bytes)
            ))
            .await
            .unwrap();
        assert!(index.is_index());
        let index: serde_json::Value = serde_json::from_slice(&index.bytes).unwrap();
        assert_eq!(
            index["manifests"][0]["annotations"]["dev.sigstore.bundle.predicateType"],
            SLSA_PROVENANCE_V0_2
        );
    }
}
