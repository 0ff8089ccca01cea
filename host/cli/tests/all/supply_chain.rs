//! `palisade generate-key-pair`, `sign-blob`, `verify-blob`, `sign`, `attest` and
//! `verify-image` as a user runs them: keys made here, blobs and images signed with them, and the
//! exit codes cosign gives (0 only when a signature verifies, 1 when none does, 2 when the input
//! cannot be used), offline in an OCI layout and against a real registry (Debian's
//! `docker-registry` on 127.0.0.1; skipped, and said so, where it is missing).

use std::path::Path;

use assert_cmd::Command;
use palisade_supply_chain::keys::HashAlgorithm;

/// Runs `palisade` in `dir`: exit code, stdout, stderr.
fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::cargo_bin("palisade")
        .expect("binary")
        .current_dir(dir)
        .env_remove("PALISADE_LOG")
        .args(args)
        .output()
        .expect("run palisade");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let (code, out, err) = run(dir, args);
    assert_eq!(code, 0, "palisade {args:?} failed: {err}");
    out
}

/// Makes the key pair `<name>.key`/`<name>.pub` of `algorithm` in `dir`.
fn key_pair(dir: &Path, name: &str, algorithm: &str) {
    ok(
        dir,
        &[
            "generate-key-pair",
            "--output-key-prefix",
            name,
            "--algorithm",
            algorithm,
        ],
    );
}

#[test]
fn blobs_signed_with_each_key_type_verify_with_that_key_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    std::fs::write(d.join("blob.txt"), "release artefact\n").expect("write");
    std::fs::write(d.join("tampered.txt"), "release artefact!\n").expect("write");
    key_pair(d, "other", "ecdsa-p256");
    for algorithm in ["ecdsa-p256", "ecdsa-p384", "ed25519", "rsa3072"] {
        key_pair(d, algorithm, algorithm);
        let key = format!("{algorithm}.key");
        let public = format!("{algorithm}.pub");
        let signature = format!("{algorithm}.sig");
        ok(
            d,
            &[
                "sign-blob",
                "blob.txt",
                "--key",
                &key,
                "--output-signature",
                &signature,
            ],
        );
        let verify = |blob: &str, public: &str| {
            run(
                d,
                &[
                    "verify-blob",
                    blob,
                    "--key",
                    public,
                    "--signature",
                    &signature,
                ],
            )
        };
        let (code, _, err) = verify("blob.txt", &public);
        assert_eq!(code, 0, "{algorithm}: {err}");
        assert!(err.contains("Verified OK"), "{err}");
        let (code, _, err) = verify("tampered.txt", &public);
        assert_eq!(code, 1, "{algorithm}: a tampered blob: {err}");
        assert!(err.contains("does not verify"), "{err}");
        let (code, _, _) = verify("blob.txt", "other.pub");
        assert_eq!(code, 1, "{algorithm}: another key");
    }

    // By digest, as the conformance protocol gives artefacts (ECDSA and RSA sign digests).
    let digest = HashAlgorithm::Sha256
        .digest(b"release artefact\n")
        .to_string();
    let (code, _, err) = run(
        d,
        &[
            "verify-blob",
            &digest,
            "--key",
            "ecdsa-p256.pub",
            "--signature",
            "ecdsa-p256.sig",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(
        d,
        &[
            "verify-blob",
            &digest,
            "--key",
            "ed25519.pub",
            "--signature",
            "ed25519.sig",
        ],
    );
    assert_eq!(code, 1, "Ed25519 cannot verify a digest: {err}");
    assert!(err.contains("give the artefact, not its digest"), "{err}");

    // Bad input is exit 2, naming it.
    std::fs::write(d.join("garbage.pub"), "not a key").expect("write");
    let (code, _, err) = run(
        d,
        &[
            "verify-blob",
            "blob.txt",
            "--key",
            "garbage.pub",
            "--signature",
            "ecdsa-p256.sig",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--key garbage.pub") && err.contains("no PEM block"),
        "{err}"
    );
    let (code, _, err) = run(d, &["verify-blob", "blob.txt", "--signature", "x.sig"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run(d, &["verify-blob", "blob.txt", "--bundle", "none.json"]);
    assert_eq!(code, 2, "no signer: {err}");
    assert!(
        err.contains("required for verification in keyless mode"),
        "{err}"
    );

    // A key pair is never overwritten; the private key is its owner's only.
    let (code, _, err) = run(d, &["generate-key-pair", "--output-key-prefix", "other"]);
    assert_eq!(code, 2);
    assert!(err.contains("exists"), "{err}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(d.join("other.key"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

/// A temp dir with a proxy-wasm filter packaged into the OCI layout `layout`.
fn packaged() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let module = wat::parse_str(
        r#"(module (memory (export "memory") 1) (func (export "proxy_abi_version_0_2_1")))"#,
    )
    .expect("wat");
    std::fs::write(dir.path().join("filter.wasm"), module).expect("write");
    ok(
        dir.path(),
        &[
            "package",
            "filter.wasm",
            "--output",
            "layout",
            "--root-id",
            "guard",
        ],
    );
    dir
}

/// Signs, attests and verifies `image` with the image-source flags `source`.
fn sign_attest_verify(d: &Path, image: &str, source: &[&str]) {
    let with = |args: &[&str]| -> Vec<String> {
        args.iter().chain(source).map(|s| (*s).to_owned()).collect()
    };
    let run_with = |args: &[&str]| {
        let args = with(args);
        run(d, &args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let ok_with = |args: &[&str]| {
        let (code, out, err) = run_with(args);
        assert_eq!(code, 0, "palisade {args:?} failed: {err}");
        out
    };

    // Unsigned: exit 1, said so.
    let (code, _, err) = run_with(&["verify-image", image, "--key", "team.pub"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("has no signature"), "{err}");

    let written = ok_with(&["sign", image, "--key", "team.key", "-a", "env=prod"]);
    assert!(written.trim().ends_with(".sig"), "{written}");
    let out = ok_with(&["verify-image", image, "--key", "team.pub", "-a", "env=prod"]);
    let found: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(found[0]["annotations"]["env"], "prod", "{out}");

    let (code, _, err) = run_with(&["verify-image", image, "--key", "other.pub"]);
    assert_eq!(code, 1, "another key: {err}");
    assert!(
        err.contains("does not verify with the ECDSA P-256 key"),
        "{err}"
    );
    let (code, _, err) = run_with(&["verify-image", image, "--key", "team.pub", "-a", "env=dev"]);
    assert_eq!(code, 1, "another annotation: {err}");
    assert!(
        err.contains("annotation `env` is \"prod\", not \"dev\""),
        "{err}"
    );

    std::fs::write(
        d.join("provenance.json"),
        r#"{"buildDefinition":{"buildType":"https://example/build"},"runDetails":{"builder":{"id":"https://builder.example/v1"}}}"#,
    )
    .expect("write");
    let written = ok_with(&[
        "attest",
        image,
        "--key",
        "team.key",
        "--predicate",
        "provenance.json",
        "--type",
        "slsaprovenance1",
    ]);
    assert!(written.trim().ends_with(".att"), "{written}");
    let out = ok_with(&[
        "verify-image",
        image,
        "--key",
        "team.pub",
        "--type",
        "slsaprovenance1",
    ]);
    let found: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        found[0]["statement"]["predicate"]["runDetails"]["builder"]["id"],
        "https://builder.example/v1",
        "{out}"
    );
    let (code, _, err) = run_with(&["verify-image", image, "--key", "team.pub", "--type", "vuln"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("has no attestation"), "{err}");
}

#[test]
fn images_in_an_oci_layout_are_signed_attested_and_verified_offline() {
    let dir = packaged();
    let d = dir.path();
    key_pair(d, "team", "ecdsa-p256");
    key_pair(d, "other", "ecdsa-p256");
    sign_attest_verify(
        d,
        "registry.example/palisade/guard:compat",
        &["--oci-dir", "layout"],
    );
    // The layout still serves the image itself.
    let (code, _, err) = run(
        d,
        &[
            "verify-image",
            "registry.example/palisade/guard:wasm",
            "--key",
            "team.pub",
            "--oci-dir",
            "layout",
        ],
    );
    assert_eq!(code, 1, "the other variant is not signed: {err}");
}

#[test]
fn images_in_a_registry_are_signed_attested_and_verified() {
    let registry = match e2e::registry::LocalRegistry::start() {
        Ok(registry) => registry,
        Err(reason) => {
            e2e::skip(&reason);
            return;
        }
    };
    let dir = packaged();
    let d = dir.path();
    key_pair(d, "team", "ecdsa-p256");
    key_pair(d, "other", "ecdsa-p256");
    let image = format!("{}/palisade/guard:compat", registry.address);
    ok(
        d,
        &[
            "push",
            "layout",
            &image,
            "--variant",
            "compat",
            "--plain-http",
        ],
    );
    sign_attest_verify(d, &image, &["--insecure-registry", &registry.address]);
}

/// The image-signature policy's example images (an OCI layout with its trusted root and keys).
fn examples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/image-signature/examples")
}

#[test]
fn the_example_images_verify_and_fail_through_the_cli_as_through_the_policy() {
    let d = examples();
    let layout = [
        "--oci-dir",
        "images/registry",
        "--trusted-root",
        "images/trusted_root.json",
    ];
    let key = |name: &str| format!("images/keys/{name}.pub");
    let verify = |image: &str, signer: &[&str]| {
        let mut args = vec!["verify-image", image];
        args.extend(layout);
        args.extend(signer);
        run(&d, &args)
    };
    let alpha = key("alpha");
    let alpha = ["--key", alpha.as_str()];
    let workflow = [
        "--certificate-identity",
        "https://github.com/example/app/.github/workflows/release.yml@refs/heads/main",
        "--certificate-oidc-issuer",
        "https://token.actions.githubusercontent.com",
    ];
    let other_issuer = [
        workflow[0],
        workflow[1],
        "--certificate-oidc-issuer",
        "https://accounts.google.com",
    ];
    let staging = [alpha[0], alpha[1], "-a", "env=staging"];
    for (image, signer) in [
        ("registry.example.com/team/signed:v1", &alpha[..]),
        ("registry.example.com/team/keyless:v1", &workflow[..]),
        ("registry.example.com/team/keyless-legacy:v1", &workflow[..]),
    ] {
        let (code, out, err) = verify(image, signer);
        assert_eq!(code, 0, "{image}: {err}");
        assert!(out.contains("\"found\""), "{image}: {out}");
    }
    // Each invalid fixture, refused with its reason.
    for (image, signer, why) in [
        (
            "registry.example.com/team/unsigned:v1",
            &alpha[..],
            "has no signature",
        ),
        (
            "registry.example.com/team/untrusted-key:v1",
            &alpha[..],
            "does not verify with the ECDSA P-256 key",
        ),
        (
            "registry.example.com/team/tampered:v1",
            &alpha[..],
            "does not verify with the ECDSA P-256 key",
        ),
        (
            "registry.example.com/team/wrong-digest:v1",
            &alpha[..],
            "the signature is for the image",
        ),
        (
            "registry.example.com/team/other-identity:v1",
            &workflow[..],
            "not one of the allowed identities",
        ),
        (
            "registry.example.com/team/expired:v1",
            &workflow[..],
            "CertExpired",
        ),
        (
            "registry.example.com/team/keyless:v1",
            &other_issuer[..],
            "the OIDC issuer is https://token.actions.githubusercontent.com, not https://accounts.google.com",
        ),
        (
            "registry.example.com/team/signed:v1",
            &staging[..],
            "the signature's annotation `env` is \"prod\", not \"staging\"",
        ),
    ] {
        let (code, _, err) = verify(image, signer);
        assert_eq!(code, 1, "{image}: {err}");
        assert!(err.contains(why), "{image}: {err}");
    }
    // Attestations by type.
    let (code, out, err) = verify(
        "registry.example.com/team/attested:v1",
        &["--key", "images/keys/alpha.pub", "--type", "vuln"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("CVE-2026-1000"), "{out}");
    let (code, _, err) = verify(
        "registry.example.com/team/attested:v1",
        &["--key", "images/keys/alpha.pub", "--type", "cyclonedx"],
    );
    assert_eq!(code, 1, "{err}");
}

#[test]
fn the_image_signature_example_suite_passes() {
    let d = examples();
    let module = d.join("../../../target/policies/admission-component/image_signature.wasm");
    assert!(
        module.is_file(),
        "{} is missing: run make policies",
        module.display()
    );
    let (code, out, err) = run(&d, &["test", "suite.yaml"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.ends_with("47 passed, 0 failed\n"), "{out}");
}
