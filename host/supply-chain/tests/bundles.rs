//! Bundles of a local Sigstore instance ([`testing::Instance`]) through [`bundle::verify`]: every
//! version and content kind verifies, by key and keyless, and each defect is rejected.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::time::{SystemTime, UNIX_EPOCH};

use palisade_supply_chain::bundle::{self, Artifact, Identity, Signer, TrustRoot, Verified};
use palisade_supply_chain::dsse::Statement;
use palisade_supply_chain::keys::{HashAlgorithm, SigningKey};
use palisade_supply_chain::testing::{
    CertificateRequest, Credential, Defect, Instance, Leaf, Options, Version,
};

const ARTEFACT: &[u8] = b"the artefact";
const WORKFLOW: &str = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";
const ISSUER: &str = "https://token.actions.githubusercontent.com";

/// The two kinds of content a bundle signs.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Message,
    Dsse,
}

/// A local Sigstore, its trusted root and a leaf issued to [`WORKFLOW`] by [`ISSUER`] with two
/// claims (one current, one deprecated GitHub claim).
struct Fixture {
    sigstore: Instance,
    root: TrustRoot,
    leaf: Leaf,
}

fn fixture() -> Fixture {
    let sigstore = Instance::new().unwrap();
    let root = sigstore.trust_root().unwrap();
    let leaf = sigstore
        .issue(
            &CertificateRequest::uri(WORKFLOW, ISSUER)
                .claim("sourceRepositoryURI", "https://github.com/acme/app")
                .claim("githubWorkflowRepository", "acme/app"),
        )
        .unwrap();
    Fixture {
        sigstore,
        root,
        leaf,
    }
}

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

fn statement() -> Statement {
    Statement::new(
        "app",
        &HashAlgorithm::Sha256.digest(ARTEFACT),
        "https://slsa.dev/provenance/v1",
        serde_json::json!({ "runDetails": { "builder": { "id": "https://builder.example" } } }),
    )
}

fn make(fixture: &Fixture, credential: Credential<'_>, kind: Kind, options: &Options) -> String {
    match kind {
        Kind::Message => fixture.sigstore.sign_blob(credential, ARTEFACT, options),
        Kind::Dsse => fixture.sigstore.attest(credential, &statement(), options),
    }
    .unwrap()
}

fn workflow() -> Identity {
    Identity {
        subject: Some(WORKFLOW.to_owned()),
        issuer: Some(ISSUER.to_owned()),
        ..Identity::default()
    }
}

fn verify(root: &TrustRoot, json: &str, signer: &Signer) -> Result<Verified, String> {
    bundle::verify(root, json, Artifact::Bytes(ARTEFACT), signer)
}

/// Verifies a bundle that must fail and returns the message, naming the case if it passed.
fn rejection(root: &TrustRoot, json: &str, signer: &Signer, case: &str) -> String {
    match verify(root, json, signer) {
        Ok(_) => panic!("{case}: verified"),
        Err(message) => message,
    }
}

#[test]
fn every_version_and_content_verifies_keyless() {
    let fixture = fixture();
    let signer = Signer::Keyless(vec![workflow()]);
    for version in Version::ALL {
        for kind in [Kind::Message, Kind::Dsse] {
            let json = make(
                &fixture,
                Credential::Keyless(&fixture.leaf),
                kind,
                &Options::new(version),
            );
            let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
            assert_eq!(parsed["mediaType"], version.media_type());
            let verified = verify(&fixture.root, &json, &signer)
                .unwrap_or_else(|e| panic!("{version:?} {kind:?}: {e}"));
            let certificate = verified.certificate.unwrap();
            assert_eq!(certificate.subject, WORKFLOW);
            assert_eq!(certificate.issuer, ISSUER);
            assert_eq!(verified.statement.is_some(), matches!(kind, Kind::Dsse));
            // By digest too: a DSSE bundle names it as its statement's subject.
            let digest = HashAlgorithm::Sha256.digest(ARTEFACT);
            bundle::verify(&fixture.root, &json, Artifact::Digest(&digest), &signer)
                .unwrap_or_else(|e| panic!("{version:?} {kind:?} by digest: {e}"));
        }
    }
}

#[test]
fn every_version_and_content_verifies_with_a_key() {
    let fixture = fixture();
    let key = SigningKey::generate_p256();
    let signer = Signer::Key(key.public_key());
    for version in Version::ALL {
        for kind in [Kind::Message, Kind::Dsse] {
            let json = make(
                &fixture,
                Credential::Key(&key),
                kind,
                &Options::new(version),
            );
            let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
            assert!(parsed["verificationMaterial"]["publicKey"]["hint"].is_string());
            let verified = verify(&fixture.root, &json, &signer)
                .unwrap_or_else(|e| panic!("{version:?} {kind:?}: {e}"));
            assert!(verified.certificate.is_none());
        }
    }
}

#[test]
fn other_key_algorithms_verify_in_dsse_and_rsa_in_message_signatures() {
    let fixture = fixture();
    let keys = [
        SigningKey::generate_p384(),
        SigningKey::generate_ed25519(),
        SigningKey::generate_rsa(2048).unwrap(),
    ];
    for key in &keys {
        let algorithm = key.public_key().algorithm();
        let signer = Signer::Key(key.public_key());
        let options = Options::new(Version::V0_3);
        let dsse = make(&fixture, Credential::Key(key), Kind::Dsse, &options);
        verify(&fixture.root, &dsse, &signer).unwrap_or_else(|e| panic!("{algorithm} DSSE: {e}"));
        match fixture
            .sigstore
            .sign_blob(Credential::Key(key), ARTEFACT, &options)
        {
            Ok(message) => {
                verify(&fixture.root, &message, &signer)
                    .unwrap_or_else(|e| panic!("{algorithm} message: {e}"));
            }
            Err(e) => assert!(
                matches!(algorithm, "Ed25519" | "ECDSA P-384"),
                "{algorithm}: {e}"
            ),
        }
    }
}

#[test]
fn the_right_identity_is_accepted_and_its_claims_are_read() {
    let fixture = fixture();
    let json = make(
        &fixture,
        Credential::Keyless(&fixture.leaf),
        Kind::Message,
        &Options::default(),
    );
    let by_regexp = Identity {
        subject: None,
        subject_regexp: Some(regex::Regex::new("^https://github.com/acme/").unwrap()),
        issuer: None,
        issuer_regexp: Some(regex::Regex::new("githubusercontent").unwrap()),
        claims: [
            (
                "sourceRepositoryURI".to_owned(),
                "https://github.com/acme/app".to_owned(),
            ),
            ("githubWorkflowRepository".to_owned(), "acme/app".to_owned()),
        ]
        .into_iter()
        .collect(),
        ..Identity::default()
    };
    for identity in [workflow(), by_regexp] {
        let verified = verify(&fixture.root, &json, &Signer::Keyless(vec![identity])).unwrap();
        let certificate = verified.certificate.unwrap();
        assert_eq!(
            certificate.claims["sourceRepositoryURI"],
            "https://github.com/acme/app"
        );
        assert_eq!(certificate.claims["githubWorkflowRepository"], "acme/app");
    }
}

#[test]
fn email_subjects_verify() {
    let fixture = fixture();
    let leaf = fixture
        .sigstore
        .issue(&CertificateRequest::email(
            "dev@example.com",
            "https://accounts.example",
        ))
        .unwrap();
    let json = make(
        &fixture,
        Credential::Keyless(&leaf),
        Kind::Dsse,
        &Options::default(),
    );
    let identity = Identity {
        subject: Some("dev@example.com".to_owned()),
        issuer: Some("https://accounts.example".to_owned()),
        ..Identity::default()
    };
    verify(&fixture.root, &json, &Signer::Keyless(vec![identity])).unwrap();
}

#[test]
fn a_wrong_subject_is_rejected() {
    let fixture = fixture();
    let json = make(
        &fixture,
        Credential::Keyless(&fixture.leaf),
        Kind::Message,
        &Options::default(),
    );
    let other = Identity {
        subject: Some(
            "https://github.com/acme/other/.github/workflows/release.yml@refs/heads/main"
                .to_owned(),
        ),
        ..workflow()
    };
    let message = rejection(
        &fixture.root,
        &json,
        &Signer::Keyless(vec![other]),
        "wrong subject",
    );
    assert!(
        message.contains("not one of the allowed identities"),
        "{message}"
    );
    assert!(
        message.contains(&format!("the subject is {WORKFLOW}")),
        "{message}"
    );
}

#[test]
fn a_wrong_issuer_is_rejected_exactly_and_by_regexp() {
    let fixture = fixture();
    let json = make(
        &fixture,
        Credential::Keyless(&fixture.leaf),
        Kind::Dsse,
        &Options::default(),
    );
    let exact = Identity {
        issuer: Some("https://accounts.google.com".to_owned()),
        ..workflow()
    };
    let message = rejection(
        &fixture.root,
        &json,
        &Signer::Keyless(vec![exact]),
        "wrong issuer",
    );
    assert!(
        message.contains(&format!(
            "the OIDC issuer is {ISSUER}, not https://accounts.google.com"
        )),
        "{message}"
    );
    let by_regexp = Identity {
        issuer: None,
        issuer_regexp: Some(regex::Regex::new("^https://gitlab\\.com$").unwrap()),
        ..workflow()
    };
    let message = rejection(
        &fixture.root,
        &json,
        &Signer::Keyless(vec![by_regexp]),
        "issuer regexp",
    );
    assert!(
        message.contains("does not match /^https://gitlab\\.com$/"),
        "{message}"
    );
}

#[test]
fn a_wrong_or_missing_claim_is_rejected_by_name() {
    let fixture = fixture();
    let json = make(
        &fixture,
        Credential::Keyless(&fixture.leaf),
        Kind::Message,
        &Options::default(),
    );
    let with_claim = |name: &str, value: &str| Identity {
        claims: [(name.to_owned(), value.to_owned())].into_iter().collect(),
        ..workflow()
    };
    let wrong = with_claim("sourceRepositoryURI", "https://github.com/acme/other");
    let message = rejection(
        &fixture.root,
        &json,
        &Signer::Keyless(vec![wrong]),
        "wrong claim",
    );
    assert!(
        message.contains("sourceRepositoryURI is https://github.com/acme/app"),
        "{message}"
    );
    let missing = with_claim("buildTrigger", "push");
    let message = rejection(
        &fixture.root,
        &json,
        &Signer::Keyless(vec![missing]),
        "missing claim",
    );
    assert!(message.contains("no buildTrigger claim"), "{message}");
}

#[test]
fn any_one_of_several_identities_suffices() {
    let fixture = fixture();
    let json = make(
        &fixture,
        Credential::Keyless(&fixture.leaf),
        Kind::Message,
        &Options::default(),
    );
    let other = Identity {
        subject: Some("someone@example.com".to_owned()),
        ..workflow()
    };
    verify(
        &fixture.root,
        &json,
        &Signer::Keyless(vec![other, workflow()]),
    )
    .unwrap();
}

#[test]
fn a_tampered_artifact_is_rejected() {
    let fixture = fixture();
    let key = SigningKey::generate_p256();
    for kind in [Kind::Message, Kind::Dsse] {
        for (credential, signer) in [
            (
                Credential::Keyless(&fixture.leaf),
                Signer::Keyless(vec![workflow()]),
            ),
            (Credential::Key(&key), Signer::Key(key.public_key())),
        ] {
            let json = make(&fixture, credential, kind, &Options::default());
            let result = bundle::verify(
                &fixture.root,
                &json,
                Artifact::Bytes(b"the artefacT"),
                &signer,
            );
            assert!(
                result.is_err(),
                "{kind:?} {credential:?}: verified another artefact"
            );
        }
    }
}

#[test]
fn tampered_content_is_rejected() {
    let fixture = fixture();
    let key = SigningKey::generate_p256();
    let options = Options::default().with_defect(Defect::TamperedContent);
    for kind in [Kind::Message, Kind::Dsse] {
        for (credential, signer) in [
            (
                Credential::Keyless(&fixture.leaf),
                Signer::Keyless(vec![workflow()]),
            ),
            (Credential::Key(&key), Signer::Key(key.public_key())),
        ] {
            let json = make(&fixture, credential, kind, &options);
            let message = rejection(&fixture.root, &json, &signer, &format!("tampered {kind:?}"));
            assert!(
                message.contains("signature verification failed"),
                "{message}"
            );
        }
    }
}

#[test]
fn a_wrong_key_is_rejected() {
    let fixture = fixture();
    let key = SigningKey::generate_p256();
    let other = Signer::Key(SigningKey::generate_p256().public_key());
    for kind in [Kind::Message, Kind::Dsse] {
        let json = make(&fixture, Credential::Key(&key), kind, &Options::default());
        let message = rejection(
            &fixture.root,
            &json,
            &other,
            &format!("{kind:?} with another key"),
        );
        assert!(
            message.contains("signature verification failed"),
            "{message}"
        );
    }
}

#[test]
fn keyless_and_key_bundles_do_not_stand_in_for_each_other() {
    let fixture = fixture();
    let key = SigningKey::generate_p256();
    let keyless = make(
        &fixture,
        Credential::Keyless(&fixture.leaf),
        Kind::Message,
        &Options::default(),
    );
    let by_key = Signer::Key(fixture.leaf.signing_key().public_key());
    let message = rejection(&fixture.root, &keyless, &by_key, "keyless bundle by key");
    assert!(message.contains("certificate"), "{message}");
    let keyed = make(
        &fixture,
        Credential::Key(&key),
        Kind::Message,
        &Options::default(),
    );
    let message = rejection(
        &fixture.root,
        &keyed,
        &Signer::Keyless(vec![workflow()]),
        "key bundle keyless",
    );
    assert!(message.contains("no signing certificate"), "{message}");
}

#[test]
fn a_certificate_from_an_untrusted_ca_is_rejected() {
    let fixture = fixture();
    let request = CertificateRequest::uri(WORKFLOW, ISSUER);
    // Same CA names, other keys; and a whole other instance.
    let impostor = fixture.sigstore.issue_untrusted(&request).unwrap();
    let stranger = Instance::new().unwrap().issue(&request).unwrap();
    for leaf in [&impostor, &stranger] {
        for version in Version::ALL {
            let json = make(
                &fixture,
                Credential::Keyless(leaf),
                Kind::Message,
                &Options::new(version),
            );
            let message = rejection(
                &fixture.root,
                &json,
                &Signer::Keyless(vec![workflow()]),
                &format!("untrusted CA {version:?}"),
            );
            assert!(
                message.contains("certificate chain validation failed"),
                "{message}"
            );
        }
    }
}

#[test]
fn a_v0_1_bundle_without_its_set_is_rejected() {
    let fixture = fixture();
    let key = SigningKey::generate_p256();
    let options = Options::new(Version::V0_1).with_defect(Defect::NoSignedEntryTimestamp);
    for kind in [Kind::Message, Kind::Dsse] {
        for (credential, signer) in [
            (
                Credential::Keyless(&fixture.leaf),
                Signer::Keyless(vec![workflow()]),
            ),
            (Credential::Key(&key), Signer::Key(key.public_key())),
        ] {
            let json = make(&fixture, credential, kind, &options);
            let message = rejection(&fixture.root, &json, &signer, &format!("no SET {kind:?}"));
            assert!(
                message.to_lowercase().contains("inclusion promise"),
                "{message}"
            );
        }
    }
}

#[test]
fn without_a_set_a_keyless_bundle_has_no_signing_time_but_a_key_bundle_needs_none() {
    let fixture = fixture();
    let key = SigningKey::generate_p256();
    for version in [Version::V0_2, Version::V0_3] {
        let options = Options::new(version).with_defect(Defect::NoSignedEntryTimestamp);
        let keyless = make(
            &fixture,
            Credential::Keyless(&fixture.leaf),
            Kind::Dsse,
            &options,
        );
        let message = rejection(
            &fixture.root,
            &keyless,
            &Signer::Keyless(vec![workflow()]),
            "no SET",
        );
        assert!(message.contains("No verified timestamp"), "{message}");
        let keyed = make(&fixture, Credential::Key(&key), Kind::Dsse, &options);
        let verified = verify(&fixture.root, &keyed, &Signer::Key(key.public_key())).unwrap();
        assert_eq!(verified.integrated_time, None);
    }
}

#[test]
fn a_wrong_log_key_is_rejected() {
    let fixture = fixture();
    let key = SigningKey::generate_p256();
    for version in Version::ALL {
        let options = Options::new(version).with_defect(Defect::WrongLogKey);
        for (credential, signer) in [
            (
                Credential::Keyless(&fixture.leaf),
                Signer::Keyless(vec![workflow()]),
            ),
            (Credential::Key(&key), Signer::Key(key.public_key())),
        ] {
            let json = make(&fixture, credential, Kind::Message, &options);
            let message = rejection(
                &fixture.root,
                &json,
                &signer,
                &format!("wrong log key {version:?}"),
            );
            // A keyless bundle's SET is checked first (it dates the certificate), a key
            // bundle's checkpoint.
            let expected = match credential {
                Credential::Keyless(_) => "SET verification failed",
                Credential::Key(_) => "No valid Rekor signature found on checkpoint",
            };
            assert!(message.contains(expected), "{message}");
        }
    }
}

#[test]
fn another_instances_log_is_not_trusted() {
    let fixture = fixture();
    let key = SigningKey::generate_p256();
    let json = Instance::new()
        .unwrap()
        .sign_blob(Credential::Key(&key), ARTEFACT, &Options::default())
        .unwrap();
    let message = rejection(
        &fixture.root,
        &json,
        &Signer::Key(key.public_key()),
        "another log",
    );
    assert!(
        message.contains("No matching Rekor key found for checkpoint"),
        "{message}"
    );
}

#[test]
fn an_integrated_time_outside_the_certificate_validity_is_rejected() {
    let fixture = fixture();
    let now = now();
    let expired = fixture
        .sigstore
        .issue(&CertificateRequest::uri(WORKFLOW, ISSUER).valid(now - 1200, now - 600))
        .unwrap();
    // The chain is validated at the integrated time (webpki's error names).
    let cases = [
        (
            &fixture.leaf,
            fixture.leaf.not_before() - 30,
            "CertNotValidYet",
        ),
        (&expired, now - 60, "CertExpired"),
    ];
    for (leaf, time, error) in cases {
        for version in Version::ALL {
            for kind in [Kind::Message, Kind::Dsse] {
                let options = Options::new(version).integrated_at(time);
                let json = make(&fixture, Credential::Keyless(leaf), kind, &options);
                let message = rejection(
                    &fixture.root,
                    &json,
                    &Signer::Keyless(vec![workflow()]),
                    &format!("integrated at {time} {version:?} {kind:?}"),
                );
                assert!(message.contains(error), "{message}");
            }
        }
    }
}

#[test]
fn an_integrated_time_within_the_validity_is_reported() {
    let fixture = fixture();
    let now = now();
    let old = fixture
        .sigstore
        .issue(&CertificateRequest::uri(WORKFLOW, ISSUER).valid(now - 1200, now - 600))
        .unwrap();
    let json = make(
        &fixture,
        Credential::Keyless(&old),
        Kind::Dsse,
        &Options::default().integrated_at(now - 900),
    );
    let verified = verify(&fixture.root, &json, &Signer::Keyless(vec![workflow()])).unwrap();
    assert_eq!(verified.integrated_time, Some(now - 900));
    assert_eq!(verified.timestamps, vec![now - 900]);
    // The validity's bounds are inclusive.
    for time in [old.not_before(), old.not_after()] {
        let json = make(
            &fixture,
            Credential::Keyless(&old),
            Kind::Message,
            &Options::default().integrated_at(time),
        );
        verify(&fixture.root, &json, &Signer::Keyless(vec![workflow()])).unwrap();
    }
}

#[test]
fn a_future_integrated_time_is_rejected() {
    let fixture = fixture();
    let json = make(
        &fixture,
        Credential::Keyless(&fixture.leaf),
        Kind::Message,
        &Options::default().integrated_at(now() + 120),
    );
    let message = rejection(
        &fixture.root,
        &json,
        &Signer::Keyless(vec![workflow()]),
        "future",
    );
    assert!(message.contains("in the future"), "{message}");
}

#[test]
fn one_log_proves_each_of_many_entries() {
    let fixture = fixture();
    let key = SigningKey::generate_p256();
    let bundles: Vec<String> = (0..12)
        .map(|i| {
            let version = Version::ALL[i % 3];
            make(
                &fixture,
                Credential::Key(&key),
                Kind::Message,
                &Options::new(version),
            )
        })
        .collect();
    let mut indices = Vec::new();
    for json in &bundles {
        verify(&fixture.root, json, &Signer::Key(key.public_key())).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(json).unwrap();
        let proof = &parsed["verificationMaterial"]["tlogEntries"][0]["inclusionProof"];
        indices.push((proof["logIndex"].clone(), proof["treeSize"].clone()));
    }
    // Entries are appended, and not always as the newest leaf.
    assert!(
        indices
            .windows(2)
            .all(|w| w[0].0.as_str().unwrap().parse::<u64>().unwrap()
                < w[1].0.as_str().unwrap().parse::<u64>().unwrap())
    );
    assert!(indices.iter().any(|(index, size)| {
        index.as_str().unwrap().parse::<u64>().unwrap() + 1
            < size.as_str().unwrap().parse::<u64>().unwrap()
    }));
}

#[test]
fn the_trusted_root_names_its_logs_and_ca_with_validity_windows() {
    let fixture = fixture();
    let root: serde_json::Value =
        serde_json::from_str(&fixture.sigstore.trusted_root_json()).unwrap();
    assert_eq!(
        root["mediaType"],
        "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
    );
    for member in ["tlogs", "ctlogs", "certificateAuthorities"] {
        let first = &root[member][0];
        let valid_for = if member == "certificateAuthorities" {
            &first["validFor"]
        } else {
            &first["publicKey"]["validFor"]
        };
        assert!(
            valid_for["start"].is_string() && valid_for["end"].is_string(),
            "{member}"
        );
    }
    assert_eq!(
        root["certificateAuthorities"][0]["certChain"]["certificates"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn rfc3161_timestamps_verify_and_count_as_signing_times() {
    let fixture = fixture();
    let key = SigningKey::generate_p256();
    let now = now();
    let options = Options::default()
        .integrated_at(now)
        .timestamped_at(now - 5);
    for kind in [Kind::Message, Kind::Dsse] {
        let keyless = make(&fixture, Credential::Keyless(&fixture.leaf), kind, &options);
        let verified = verify(&fixture.root, &keyless, &Signer::Keyless(vec![workflow()]))
            .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        let mut times = verified.timestamps;
        times.sort_unstable();
        assert_eq!(times, vec![now - 5, now], "{kind:?}");
        let keyed = make(&fixture, Credential::Key(&key), kind, &options);
        verify(&fixture.root, &keyed, &Signer::Key(key.public_key()))
            .unwrap_or_else(|e| panic!("{kind:?} by key: {e}"));
    }
}

#[test]
fn a_timestamp_dates_a_keyless_bundle_without_set() {
    let fixture = fixture();
    for version in [Version::V0_2, Version::V0_3] {
        let options = Options::new(version)
            .timestamped_at(now())
            .with_defect(Defect::NoSignedEntryTimestamp);
        let json = make(
            &fixture,
            Credential::Keyless(&fixture.leaf),
            Kind::Dsse,
            &options,
        );
        let verified = verify(&fixture.root, &json, &Signer::Keyless(vec![workflow()]))
            .unwrap_or_else(|e| panic!("{version:?}: {e}"));
        assert_eq!(verified.integrated_time, None);
        assert_eq!(verified.timestamps.len(), 1);
    }
}

#[test]
fn a_timestamp_outside_the_certificate_validity_is_rejected() {
    let fixture = fixture();
    let early = Options::default().timestamped_at(fixture.leaf.not_before() - 30);
    let json = make(
        &fixture,
        Credential::Keyless(&fixture.leaf),
        Kind::Message,
        &early,
    );
    let message = rejection(
        &fixture.root,
        &json,
        &Signer::Keyless(vec![workflow()]),
        "early stamp",
    );
    assert!(message.contains("CertNotValidYet"), "{message}");
}

#[test]
fn another_instances_timestamp_is_not_trusted() {
    let fixture = fixture();
    let key = SigningKey::generate_p256();
    let other = Instance::new().unwrap();
    let options = Options::default().timestamped_at(now());
    let json = other
        .sign_blob(Credential::Key(&key), ARTEFACT, &options)
        .unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    // This instance's log entry, the other's timestamp: over the same signature, as the key
    // signs deterministically (RFC 6979), so only the TSA is wrong.
    let mut ours: serde_json::Value = serde_json::from_str(
        &fixture
            .sigstore
            .sign_blob(Credential::Key(&key), ARTEFACT, &Options::default())
            .unwrap(),
    )
    .unwrap();
    ours["verificationMaterial"]["timestampVerificationData"] =
        parsed["verificationMaterial"]["timestampVerificationData"].clone();
    let message = rejection(
        &fixture.root,
        &ours.to_string(),
        &Signer::Key(key.public_key()),
        "foreign TSA",
    );
    assert!(
        message.contains("does not match any trusted TSA certificate"),
        "{message}"
    );
}
