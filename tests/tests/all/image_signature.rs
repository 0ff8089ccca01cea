//! The image-signature policy through `palisade serve`, against a real registry the test starts
//! (Debian's `docker-registry`): the fixture images, signed and attested with keys and a local
//! Sigstore instance made in the test, pushed with cosign's `.sig`/`.att` tags and Sigstore
//! bundle referrers; then, with the registry gone, the images already verified are still
//! decided from the host's cache, and a new one cannot be.

use base64::Engine as _;
use palisade_supply_chain::testing::images::{Fixtures, push_images};
use serde_json::{Value, json};

use crate::serving::{post_review_to, serve};

/// The workflow the keyless fixtures were signed by.
const SUBJECT: &str =
    "https://github.com/example/app/.github/workflows/release.yml@refs/heads/main";
const ISSUER: &str = "https://token.actions.githubusercontent.com";

fn pod(image: &str) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "3d5c3c1e-6f8e-4a8e-9d8e-1c2b3a4d5e6f",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {"username": "deployer"},
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "app", "namespace": "shop"},
                "spec": {"containers": [{"name": "app", "image": image}]}
            }
        }
    })
}

fn push(address: &str) -> Fixtures {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(push_images(address))
        .expect("the fixture images are pushed")
}

#[test]
fn image_signature_decides_from_a_real_registry_and_then_from_its_cache() {
    let registry = match e2e::registry::LocalRegistry::start() {
        Ok(registry) => registry,
        Err(reason) => {
            e2e::skip(&reason);
            return;
        }
    };
    let address = registry.address.clone();
    let fixtures = push(&address);
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("trusted_root.json"),
        &fixtures.trusted_root_json,
    )
    .expect("root");
    let alpha = &fixtures.public_keys["alpha"];
    let signed_by = json!([{"count": 1, "entries": [
        {"name": "alpha", "key": alpha},
        {"name": "release workflow", "keyless": {"subject": SUBJECT, "issuer": ISSUER}},
    ]}]);
    let alpha_only = json!([{"entries": [{"key": alpha}]}]);
    let config = json!({
        "listen": "127.0.0.1:0",
        "policies": [
            {
                "id": "signed",
                "module": e2e::artefact("image-signature"),
                "capabilities": {"supplyChain": true},
                "failurePolicy": "Fail",
                "timeout": "5s",
                "settings": {
                    "allowedRegistries": [address],
                    "rules": [{"name": "team", "images": [format!("{address}/team/*")], "digest": "mutate", "signatures": signed_by}]
                }
            },
            {
                "id": "attested",
                "module": e2e::artefact("image-signature"),
                "capabilities": {"supplyChain": true, "clock": true},
                "timeout": "5s",
                "settings": {"rules": [{"images": ["**"], "attestations": [
                    {"predicateType": "slsaprovenance1", "attestors": alpha_only,
                     "provenance": {"builderIds": ["https://github.com/actions/runner/*"], "sourceRepositories": ["https://github.com/example/app"]}},
                    {"predicateType": "slsaprovenance02", "attestors": [{"entries": [{"keyless": {"subjectRegexp": "^https://github\\.com/example/", "issuer": ISSUER}}]}]},
                    {"predicateType": "vuln", "attestors": alpha_only, "vulnerabilities": {"maxSeverity": "MEDIUM"}},
                ]}]}
            },
            {
                "id": "ungranted",
                "module": e2e::artefact("image-signature"),
                "settings": {"rules": [{"images": ["**"], "signatures": alpha_only}]}
            }
        ],
        "hostOperations": {"registry": {"insecureRegistries": [address], "trustedRoot": "trusted_root.json"}}
    });
    let path = dir.path().join("palisade.yaml");
    std::fs::write(&path, serde_json::to_string_pretty(&config).expect("json")).expect("config");
    let server = serve(path);
    let image = |name: &str| format!("{address}/team/{name}:v1");
    let decide = |policy: &str, image: &str| {
        post_review_to(server.address, &format!("mutate/{policy}"), &pod(image))
    };

    // Signed with the key (a .sig tag): admitted, pinned to the digest that was verified.
    let signed = decide("signed", &image("signed"));
    assert_eq!(signed["allowed"], true, "{signed}");
    let patch: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(signed["patch"].as_str().expect("a patch"))
            .expect("base64"),
    )
    .expect("json patch");
    let digest = &fixtures.images[&image("signed")];
    assert_eq!(
        patch,
        json!([{"op": "replace", "path": "/spec/containers/0/image", "value": format!("{}@{digest}", image("signed"))}])
    );
    // Keyless, as a bundle referrer (found through the registry's referrers tag: distribution
    // 2.8 has no referrers API) and in cosign's .sig tag.
    for keyless in ["keyless", "keyless-legacy"] {
        let answer = decide("signed", &image(keyless));
        assert_eq!(answer["allowed"], true, "{keyless}: {answer}");
    }
    // Each failure names the container, the image, the rule and why.
    for (name, why) in [
        ("unsigned", "missing"),
        ("tampered", "not verified"),
        (
            "other-identity",
            "the certificate is not one of the allowed identities",
        ),
        ("untrusted-key", "alpha: not verified"),
    ] {
        let answer = decide("signed", &image(name));
        let message = answer["status"]["message"].as_str().unwrap_or_default();
        assert_eq!(answer["allowed"], false, "{name}: {answer}");
        assert!(
            message.starts_with(&format!(
                "container \"app\" (image \"{}\"): rule \"team\" signatures[0]: 0 of the 1 required signers verified",
                image(name)
            )) && message.contains(why),
            "{name}: {message}"
        );
    }
    let elsewhere = decide("signed", "other.example.org/library/app:v1");
    assert!(
        elsewhere["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("allowed registries: other.example.org/library/app is not in"),
        "{elsewhere}"
    );
    // Attestations: provenance v1 by key, v0.2 keyless as a referrer, a clean report.
    let attested = decide("attested", &image("attested"));
    assert_eq!(attested["allowed"], true, "{attested}");
    let vulnerable = decide("attested", &image("vulnerable"));
    let message = vulnerable["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("CVE-2026-2000 (CRITICAL)") && message.contains("missing"),
        "{message}"
    );

    // Without the grant the host answers `denied`: the policy cannot decide, and the failure
    // policy (Fail, the default) refuses.
    let ungranted = decide("ungranted", &image("signed"));
    assert_eq!(ungranted["allowed"], false, "{ungranted}");
    assert!(
        ungranted["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("is not granted the supply-chain capability"),
        "{ungranted}"
    );

    // The registry is gone: what was verified is still decided, from the host's caches; an
    // image never seen cannot be, and the failure policy (Fail) refuses it.
    drop(registry);
    let again = decide("signed", &image("signed"));
    assert_eq!(again["allowed"], true, "{again}");
    let again = decide("attested", &image("attested"));
    assert_eq!(again["allowed"], true, "{again}");
    let unseen = decide("signed", &image("rsa"));
    assert_eq!(unseen["allowed"], false, "{unseen}");
    assert!(
        unseen["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("verifying image \"{}\"", image("rsa"))),
        "{unseen}"
    );
}
