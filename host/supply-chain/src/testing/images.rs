//! A fixed set of small images, signed and attested every way [`crate::image`] verifies (and
//! some ways it must refuse), written into a registry or an OCI layout by [`write_images`]: the
//! fixtures of image-signature policies' examples and of tests.
//!
//! Each image is a tiny config and one tiny layer of its own. Keys (`alpha` ECDSA P-256,
//! `beta` Ed25519, `gamma` RSA 2048, `mallory` ECDSA P-256, trusted by no one) and the local
//! Sigstore [`Instance`] are made afresh on each call; everything else is fixed: the images (so
//! their digests), and the times, all at [`FixtureOptions::time`] (integrated times,
//! timestamps, certificate validity and the trusted root's windows), so that what is written
//! verifies whenever it is checked, with the returned trusted root and keys.
//!
//! | reference | what is attached |
//! |---|---|
//! | [`SIGNED`] | `alpha`'s signature on `.sig`, annotated `env=prod` |
//! | [`TWO_KEYS`] | `alpha`'s and `beta`'s signatures: two `.sig` layers |
//! | [`RSA`] | `gamma`'s signature (PKCS#1 v1.5, SHA-256) |
//! | [`KEYLESS`] | a keyless signature, a v0.3 bundle referrer (cosign v3), of [`KEYLESS_SUBJECT`] |
//! | [`KEYLESS_LEGACY`] | the same identity's signature in cosign's legacy `.sig` layer form |
//! | [`OTHER_IDENTITY`] | a keyless signature of [`OTHER_SUBJECT`] (`evil/fork`) |
//! | [`EXPIRED`] | a keyless bundle whose certificate had expired when it was logged, no timestamp |
//! | [`TAMPERED`] | `alpha`'s signature over a payload changed after signing |
//! | [`WRONG_DIGEST`] | `alpha`'s valid signature of a payload naming [`SIGNED`]'s digest |
//! | [`UNTRUSTED_KEY`] | `mallory`'s signature |
//! | [`UNSIGNED`] | nothing |
//! | [`ATTESTED`] | `alpha`'s signature; `alpha`'s SLSA v1, vuln and SPDX attestations on `.att`; a keyless SLSA v0.2 bundle referrer |
//! | [`VULNERABLE`] | `alpha`'s signature; `alpha`'s vuln (1 critical, 2 high) and CycloneDX attestations |
//! | [`OTHER_REGISTRY`] | `alpha`'s signature |

use std::collections::BTreeMap;

use palisade_oci::{Image, layout};
use serde_json::{Value, json};

use super::{CertificateRequest, Credential, Instance, Leaf, Options, Version};
use crate::attach::{self, Destination, NewLayer};
use crate::cosign::{self, Attached, SimpleSigning};
use crate::dsse::{self, Envelope, Statement};
use crate::image::{self, Resolved, SIGN_PREDICATE_TYPE};
use crate::keys::{Digest, HashAlgorithm, SigningKey, pem_encode};

/// Signed by `alpha`, annotated `env=prod`.
pub const SIGNED: &str = "registry.example.com/team/signed:v1";
/// Signed by `alpha` and by `beta`.
pub const TWO_KEYS: &str = "registry.example.com/team/two-keys:v1";
/// Signed by `gamma` (RSA).
pub const RSA: &str = "registry.example.com/team/rsa:v1";
/// Signed keylessly by [`KEYLESS_SUBJECT`], as a Sigstore bundle v0.3 referrer.
pub const KEYLESS: &str = "registry.example.com/team/keyless:v1";
/// Signed keylessly by [`KEYLESS_SUBJECT`], in cosign's legacy `.sig` layer form.
pub const KEYLESS_LEGACY: &str = "registry.example.com/team/keyless-legacy:v1";
/// Signed keylessly by [`OTHER_SUBJECT`].
pub const OTHER_IDENTITY: &str = "registry.example.com/team/other-identity:v1";
/// A keyless bundle whose certificate was not valid when it was logged, without a timestamp.
pub const EXPIRED: &str = "registry.example.com/team/expired:v1";
/// `alpha`'s signature over a payload altered after signing.
pub const TAMPERED: &str = "registry.example.com/team/tampered:v1";
/// `alpha`'s valid signature of a payload naming another image's digest ([`SIGNED`]'s).
pub const WRONG_DIGEST: &str = "registry.example.com/team/wrong-digest:v1";
/// Signed by `mallory`, whom no one trusts.
pub const UNTRUSTED_KEY: &str = "registry.example.com/team/untrusted-key:v1";
/// Not signed.
pub const UNSIGNED: &str = "registry.example.com/team/unsigned:v1";
/// Signed by `alpha`, with attestations by `alpha` and a keyless one.
pub const ATTESTED: &str = "registry.example.com/team/attested:v1";
/// Signed by `alpha`, with a vulnerability report of critical findings and a CycloneDX SBOM.
pub const VULNERABLE: &str = "registry.example.com/team/vulnerable:v1";
/// Signed by `alpha`, in another registry.
pub const OTHER_REGISTRY: &str = "other.example.org/library/app:v1";

/// Every reference of the set, in the order written.
pub const REFERENCES: [&str; 14] = [
    SIGNED,
    TWO_KEYS,
    RSA,
    KEYLESS,
    KEYLESS_LEGACY,
    OTHER_IDENTITY,
    EXPIRED,
    TAMPERED,
    WRONG_DIGEST,
    UNTRUSTED_KEY,
    UNSIGNED,
    ATTESTED,
    VULNERABLE,
    OTHER_REGISTRY,
];

/// 2026-12-01T00:00:00Z, the default signing time.
pub const SIGNING_TIME: i64 = 1_796_083_200;
/// The keyless signer's certificate subject (a GitHub Actions workflow).
pub const KEYLESS_SUBJECT: &str =
    "https://github.com/example/app/.github/workflows/release.yml@refs/heads/main";
/// The keyless signer's repository (claim `githubWorkflowRepository`).
pub const KEYLESS_REPOSITORY: &str = "example/app";
/// The other keyless signer's certificate subject.
pub const OTHER_SUBJECT: &str =
    "https://github.com/evil/fork/.github/workflows/release.yml@refs/heads/main";
/// The other keyless signer's repository.
pub const OTHER_REPOSITORY: &str = "evil/fork";
/// The OIDC issuer of both keyless signers.
pub const ISSUER: &str = "https://token.actions.githubusercontent.com";
/// The ref of both keyless signers' workflows (claim `githubWorkflowRef`).
pub const WORKFLOW_REF: &str = "refs/heads/main";
/// The builder of the provenance attestations.
pub const BUILDER_ID: &str = "https://github.com/actions/runner/github-hosted";
/// SLSA provenance v1.
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
/// SLSA provenance v0.2.
pub const SLSA_PROVENANCE_V0_2: &str = "https://slsa.dev/provenance/v0.2";
/// cosign's vulnerability-scan predicate.
pub const VULN: &str = "https://cosign.sigstore.dev/attestation/vuln/v1";
/// SPDX documents.
pub const SPDX: &str = "https://spdx.dev/Document";
/// CycloneDX BOMs.
pub const CYCLONEDX: &str = "https://cyclonedx.org/bom";

/// How the set is written.
#[derive(Debug, Clone)]
pub struct FixtureOptions {
    /// The signing time, seconds since the epoch ([`SIGNING_TIME`] by default): the log's
    /// integrated times, the timestamps, the certificates' validity (from a minute before), and
    /// the centre of the trusted root's windows.
    pub time: i64,
    /// A registry (`host[:port]`) replacing the registry part of every reference, to write the
    /// set into a real registry (`registry.example.com/team/signed:v1` becomes
    /// `<registry>/team/signed:v1`); the references as they are when `None`.
    pub registry: Option<String>,
}

impl Default for FixtureOptions {
    fn default() -> Self {
        Self {
            time: SIGNING_TIME,
            registry: None,
        }
    }
}

/// What [`write_images`] wrote.
#[derive(Debug, Clone)]
pub struct Fixtures {
    /// The local Sigstore's `trusted_root.json`, which the keyless signatures verify against.
    pub trusted_root_json: String,
    /// Public keys (PEM `PUBLIC KEY`) by name: `alpha`, `beta`, `gamma`, `mallory`.
    pub public_keys: BTreeMap<String, String>,
    /// Each image's reference as written, and its manifest digest (`sha256:<hex>`).
    pub images: BTreeMap<String, String>,
}

/// Writes the set into `destination` and returns its trusted root, keys and images.
///
/// A layout directory is created if needed; images of the set already in it are replaced, and
/// so are their cosign tags and referrers (other entries are kept). A registry's repositories
/// should hold none of the set's tags yet (signatures are appended to what is there), and the
/// registry destination's store should not cache tags (`StoreOptions::cache_ttl` zero), since
/// several layers and referrers are added to one image in turn.
///
/// # Errors
/// A message naming the image and the step that failed.
pub async fn write_images(
    destination: Destination<'_>,
    options: &FixtureOptions,
) -> Result<Fixtures, String> {
    let time = options.time;
    let sigstore = Instance::at(time)?;
    let alpha = SigningKey::generate_p256();
    let beta = SigningKey::generate_ed25519();
    let gamma = SigningKey::generate_rsa(2048).map_err(|e| e.to_string())?;
    let mallory = SigningKey::generate_p256();
    let keyless = sigstore.issue(&github_identity(
        KEYLESS_SUBJECT,
        KEYLESS_REPOSITORY,
        time - 60,
        time + 600,
    ))?;
    let other = sigstore.issue(&github_identity(
        OTHER_SUBJECT,
        OTHER_REPOSITORY,
        time - 60,
        time + 600,
    ))?;
    // Valid for ten minutes, ending twenty minutes before it is used.
    let expired = sigstore.issue(&github_identity(
        KEYLESS_SUBJECT,
        KEYLESS_REPOSITORY,
        time - 1800,
        time - 1200,
    ))?;

    let written = write_base_images(destination, options).await?;
    let image = |reference: &str| -> Result<&Resolved, String> {
        written
            .get(reference)
            .ok_or_else(|| format!("{reference} was not written"))
    };
    let writer = Writer {
        destination,
        sigstore: &sigstore,
        time,
    };

    let prod = BTreeMap::from([("env".to_owned(), "prod".to_owned())]);
    writer
        .key_signature(image(SIGNED)?, &alpha, &prod, None)
        .await?;
    for key in [&alpha, &beta] {
        writer
            .key_signature(image(TWO_KEYS)?, key, &BTreeMap::new(), None)
            .await?;
    }
    writer
        .key_signature(image(RSA)?, &gamma, &BTreeMap::new(), None)
        .await?;
    writer
        .keyless_signature(image(KEYLESS)?, &keyless, true)
        .await?;
    writer
        .legacy_keyless_signature(image(KEYLESS_LEGACY)?, &keyless)
        .await?;
    writer
        .keyless_signature(image(OTHER_IDENTITY)?, &other, true)
        .await?;
    writer
        .keyless_signature(image(EXPIRED)?, &expired, false)
        .await?;
    writer.tampered_signature(image(TAMPERED)?, &alpha).await?;
    let elsewhere = image(SIGNED)?.digest.clone();
    writer
        .key_signature(
            image(WRONG_DIGEST)?,
            &alpha,
            &BTreeMap::new(),
            Some(&elsewhere),
        )
        .await?;
    writer
        .key_signature(image(UNTRUSTED_KEY)?, &mallory, &BTreeMap::new(), None)
        .await?;

    let attested = image(ATTESTED)?;
    writer
        .key_signature(attested, &alpha, &BTreeMap::new(), None)
        .await?;
    writer
        .key_attestation(
            attested,
            &alpha,
            SLSA_PROVENANCE_V1,
            slsa_provenance_v1(time)?,
        )
        .await?;
    writer
        .key_attestation(
            attested,
            &alpha,
            VULN,
            vulnerability_report(
                attested,
                &[
                    ("CVE-2026-1000", "MEDIUM", "libexample"),
                    ("CVE-2026-1001", "LOW", "libsample"),
                ],
                time,
            )?,
        )
        .await?;
    writer
        .key_attestation(attested, &alpha, SPDX, spdx_document(attested, time)?)
        .await?;
    writer
        .keyless_attestation(
            attested,
            &keyless,
            SLSA_PROVENANCE_V0_2,
            slsa_provenance_v0_2(time)?,
        )
        .await?;

    let vulnerable = image(VULNERABLE)?;
    writer
        .key_signature(vulnerable, &alpha, &BTreeMap::new(), None)
        .await?;
    writer
        .key_attestation(
            vulnerable,
            &alpha,
            VULN,
            vulnerability_report(
                vulnerable,
                &[
                    ("CVE-2026-2000", "CRITICAL", "libexample"),
                    ("CVE-2026-2001", "HIGH", "libexample"),
                    ("CVE-2026-2002", "HIGH", "libsample"),
                ],
                // Scanned a month before the signing time.
                time - 30 * 24 * 3600,
            )?,
        )
        .await?;
    writer
        .key_attestation(
            vulnerable,
            &alpha,
            CYCLONEDX,
            cyclonedx_bom(vulnerable, time)?,
        )
        .await?;
    writer
        .key_signature(image(OTHER_REGISTRY)?, &alpha, &BTreeMap::new(), None)
        .await?;

    Ok(Fixtures {
        trusted_root_json: sigstore.trusted_root_json(),
        public_keys: [
            ("alpha", &alpha),
            ("beta", &beta),
            ("gamma", &gamma),
            ("mallory", &mallory),
        ]
        .into_iter()
        .map(|(name, key)| (name.to_owned(), key.public_key().to_pem()))
        .collect(),
        images: written
            .into_values()
            .map(|image| (image.reference, image.digest.to_string()))
            .collect(),
    })
}

/// A GitHub Actions identity: `subject` from [`ISSUER`], with the claims `githubWorkflowRepository`
/// (`repository`) and `githubWorkflowRef` ([`WORKFLOW_REF`]), valid from `not_before` to
/// `not_after`.
fn github_identity(
    subject: &str,
    repository: &str,
    not_before: i64,
    not_after: i64,
) -> CertificateRequest {
    CertificateRequest::uri(subject, ISSUER)
        .claim("githubWorkflowRepository", repository)
        .claim("githubWorkflowRef", WORKFLOW_REF)
        .valid(not_before, not_after)
}

/// `reference` with its registry replaced by `registry`, if given.
fn relocate(reference: &str, registry: Option<&str>) -> String {
    match (registry, reference.split_once('/')) {
        (Some(registry), Some((_, rest))) => format!("{registry}/{rest}"),
        _ => reference.to_owned(),
    }
}

/// Writes the set's images (unsigned) and returns each, resolved, by its reference in the set.
async fn write_base_images(
    destination: Destination<'_>,
    options: &FixtureOptions,
) -> Result<BTreeMap<&'static str, Resolved>, String> {
    let mut images = Vec::new();
    for reference in REFERENCES {
        let name = image::repository(reference);
        let name = name.rsplit('/').next().unwrap_or(&name).to_owned();
        let image = tiny_image(&name, reference)?;
        let written = relocate(reference, options.registry.as_deref());
        let digest = Digest::parse(&image.digest())?;
        let resolved = Resolved {
            repository: image::repository(&written),
            reference: written,
            digest,
        };
        images.push((reference, resolved, image));
    }
    match destination {
        Destination::Registry { registry, .. } => {
            for (_, resolved, image) in &images {
                registry
                    .push(image, &resolved.reference)
                    .await
                    .map_err(|e| {
                        format!("pushing {}: {}", resolved.reference, crate::error_chain(&e))
                    })?;
            }
        }
        Destination::Layout(dir) => {
            let existing = if dir.join("index.json").exists() {
                layout::read_dir(dir).map_err(|e| {
                    format!(
                        "reading the layout {}: {}",
                        dir.display(),
                        crate::error_chain(&e)
                    )
                })?
            } else {
                Vec::new()
            };
            // What the set replaces: its images, their cosign tags and their referrers.
            let mut replaced: Vec<String> = Vec::new();
            let mut digests: Vec<String> = Vec::new();
            for (_, resolved, _) in &images {
                replaced.push(resolved.reference.clone());
                for kind in [Attached::Signatures, Attached::Attestations] {
                    replaced.push(format!(
                        "{}:{}",
                        resolved.repository,
                        cosign::tag(&resolved.digest, kind)
                    ));
                }
                digests.push(resolved.digest.to_string());
            }
            let mut named: Vec<(String, Image)> = existing
                .into_iter()
                .map(|e| (e.name.unwrap_or_else(|| e.image.digest()), e.image))
                .filter(|(name, image)| {
                    let refers = image
                        .parsed()
                        .subject
                        .as_ref()
                        .is_some_and(|s| digests.contains(&s.digest));
                    !replaced.contains(name) && !refers
                })
                .collect();
            for (_, resolved, image) in &images {
                named.push((resolved.reference.clone(), image.clone()));
            }
            let refs: Vec<(&str, &Image)> = named.iter().map(|(n, i)| (n.as_str(), i)).collect();
            layout::write_dir(dir, &refs).map_err(|e| {
                format!(
                    "writing the layout {}: {}",
                    dir.display(),
                    crate::error_chain(&e)
                )
            })?;
        }
    }
    Ok(images
        .into_iter()
        .map(|(reference, resolved, _)| (reference, resolved))
        .collect())
}

/// An image of `name`: one layer, a tar of `hello.txt` naming the image, and a config whose
/// title label is `name`.
fn tiny_image(name: &str, reference: &str) -> Result<Image, String> {
    let layer = tar_of("hello.txt", format!("{reference}\n").as_bytes())?;
    let layer_digest = HashAlgorithm::Sha256.digest(&layer).to_string();
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Labels": { "org.opencontainers.image.title": name } },
        "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
    });
    let config = serde_json::to_vec(&config).map_err(|e| e.to_string())?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": palisade_oci::media_type::OCI_MANIFEST,
        "config": {
            "mediaType": palisade_oci::media_type::OCI_CONFIG,
            "size": config.len(),
            "digest": HashAlgorithm::Sha256.digest(&config).to_string(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "size": layer.len(),
            "digest": layer_digest,
        }],
    });
    let manifest = serde_json::to_vec(&manifest).map_err(|e| e.to_string())?;
    Image::from_parts(manifest, [config, layer]).map_err(|e| format!("image {name}: {e}"))
}

/// A ustar archive of one regular file `path` (under 100 bytes) holding `content`: mode 0644,
/// owner 0, mtime 0.
fn tar_of(path: &str, content: &[u8]) -> Result<Vec<u8>, String> {
    const BLOCK: usize = 512;
    if path.len() >= 100 {
        return Err(format!("{path} is too long for a ustar name"));
    }
    let mut header = [0u8; BLOCK];
    let mut put = |offset: usize, bytes: &[u8]| {
        header[offset..offset + bytes.len()].copy_from_slice(bytes);
    };
    put(0, path.as_bytes());
    put(100, b"0000644\0");
    put(108, b"0000000\0");
    put(116, b"0000000\0");
    put(124, format!("{:011o}\0", content.len()).as_bytes());
    put(136, b"00000000000\0");
    // The checksum is summed with its own field as spaces.
    put(148, b"        ");
    put(156, b"0");
    put(257, b"ustar\0");
    put(263, b"00");
    let checksum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    header[148..156].copy_from_slice(format!("{checksum:06o}\0 ").as_bytes());
    let mut out = header.to_vec();
    out.extend(content);
    out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
    // Two zero blocks end the archive.
    out.resize(out.len() + 2 * BLOCK, 0);
    Ok(out)
}

/// Writes signatures and attestations into the destination.
struct Writer<'a> {
    destination: Destination<'a>,
    sigstore: &'a Instance,
    time: i64,
}

impl Writer<'_> {
    /// A keyless bundle's options: v0.3, logged at the signing time, timestamped then when
    /// `timestamped`.
    fn options(&self, timestamped: bool) -> Options {
        let options = Options::new(Version::V0_3).integrated_at(self.time);
        if timestamped {
            options.timestamped_at(self.time)
        } else {
            options
        }
    }

    async fn append(
        &self,
        image: &Resolved,
        kind: Attached,
        layer: NewLayer,
    ) -> Result<(), String> {
        attach::append(self.destination, image, kind, layer)
            .await
            .map(drop)
            .map_err(|e| format!("{}: {e}", image.reference))
    }

    async fn referrer(&self, image: &Resolved, bundle: &str) -> Result<(), String> {
        attach::attach_bundle(self.destination, image, bundle)
            .await
            .map(drop)
            .map_err(|e| format!("{}: {e}", image.reference))
    }

    /// `key`'s signature of the payload cosign signs for `image` with `annotations` (naming
    /// `digest` instead of the image's when given), on `.sig`.
    async fn key_signature(
        &self,
        image: &Resolved,
        key: &SigningKey,
        annotations: &BTreeMap<String, String>,
        digest: Option<&Digest>,
    ) -> Result<(), String> {
        let payload = SimpleSigning::new(
            &image.repository,
            digest.unwrap_or(&image.digest),
            annotations,
        )
        .to_json();
        let layer = signature_layer(key, payload)?;
        self.append(image, Attached::Signatures, layer).await
    }

    /// `key`'s signature of `image`'s payload, whose payload then gains an annotation.
    async fn tampered_signature(&self, image: &Resolved, key: &SigningKey) -> Result<(), String> {
        let payload = SimpleSigning::new(&image.repository, &image.digest, &BTreeMap::new());
        let mut layer = signature_layer(key, payload.to_json())?;
        let mut altered = payload;
        altered.optional = Some(BTreeMap::from([("env".to_owned(), json!("prod"))]));
        layer.bytes = altered.to_json();
        self.append(image, Attached::Signatures, layer).await
    }

    /// A keyless signature as cosign v3 makes it: a DSSE bundle of a statement about the image
    /// of [`SIGN_PREDICATE_TYPE`], attached as a referrer.
    async fn keyless_signature(
        &self,
        image: &Resolved,
        leaf: &Leaf,
        timestamped: bool,
    ) -> Result<(), String> {
        let statement = Statement::new(
            &image.repository,
            &image.digest,
            SIGN_PREDICATE_TYPE,
            json!({}),
        );
        let bundle = self.sigstore.attest(
            Credential::Keyless(leaf),
            &statement,
            &self.options(timestamped),
        )?;
        self.referrer(image, &bundle).await
    }

    /// A keyless signature as cosign v2 makes it: cosign's payload signed, its certificate,
    /// chain and Rekor bundle in the `.sig` layer's annotations.
    async fn legacy_keyless_signature(&self, image: &Resolved, leaf: &Leaf) -> Result<(), String> {
        let payload =
            SimpleSigning::new(&image.repository, &image.digest, &BTreeMap::new()).to_json();
        let bundle = self.sigstore.sign_blob(
            Credential::Keyless(leaf),
            &payload,
            &Options::new(Version::V0_1).integrated_at(self.time),
        )?;
        let layer = legacy_signature_layer(&bundle, payload)?;
        self.append(image, Attached::Signatures, layer).await
    }

    /// `key`'s attestation of `predicate_type` about `image`, on `.att`.
    async fn key_attestation(
        &self,
        image: &Resolved,
        key: &SigningKey,
        predicate_type: &str,
        predicate: Value,
    ) -> Result<(), String> {
        let statement = Statement::new(&image.repository, &image.digest, predicate_type, predicate);
        let payload = serde_json::to_vec(&statement).map_err(|e| e.to_string())?;
        let envelope = Envelope::sign(dsse::IN_TOTO_PAYLOAD_TYPE, payload, key)?;
        let layer = NewLayer {
            media_type: cosign::DSSE_MEDIA_TYPE.to_owned(),
            bytes: envelope.to_json(),
            annotations: BTreeMap::from([(
                cosign::PREDICATE_TYPE_ANNOTATION.to_owned(),
                predicate_type.to_owned(),
            )]),
        };
        self.append(image, Attached::Attestations, layer).await
    }

    /// A keyless attestation, a v0.3 bundle attached as a referrer.
    async fn keyless_attestation(
        &self,
        image: &Resolved,
        leaf: &Leaf,
        predicate_type: &str,
        predicate: Value,
    ) -> Result<(), String> {
        let statement = Statement::new(&image.repository, &image.digest, predicate_type, predicate);
        let bundle =
            self.sigstore
                .attest(Credential::Keyless(leaf), &statement, &self.options(true))?;
        self.referrer(image, &bundle).await
    }
}

/// A `.sig` layer of `payload` signed by `key`.
fn signature_layer(key: &SigningKey, payload: Vec<u8>) -> Result<NewLayer, String> {
    let signature = key.sign(&payload).map_err(|e| e.to_string())?;
    Ok(NewLayer {
        media_type: cosign::SIMPLE_SIGNING_MEDIA_TYPE.to_owned(),
        annotations: BTreeMap::from([(
            cosign::SIGNATURE_ANNOTATION.to_owned(),
            dsse::encode_base64(&signature),
        )]),
        bytes: payload,
    })
}

/// Writes the set into the plain-HTTP registry at `address` (`127.0.0.1:<port>`), its
/// references moved there (`<address>/team/signed:v1`).
///
/// # Errors
/// As [`write_images`], and when the registry clients cannot be made.
pub async fn push_images(address: &str) -> Result<Fixtures, String> {
    // Layers are appended to one tag in turn: every read must see the last write.
    let store = palisade_oci::ImageStore::registry(palisade_oci::StoreOptions {
        insecure_registries: vec![address.to_owned()],
        cache_ttl: std::time::Duration::ZERO,
        ..palisade_oci::StoreOptions::default()
    })
    .map_err(|e| format!("the image store: {e}"))?;
    let pusher = palisade_oci::Registry::new(palisade_oci::RegistryOptions {
        plain_http: true,
        credentials: None,
    })
    .map_err(|e| format!("the registry client: {e}"))?;
    write_images(
        Destination::Registry {
            registry: &pusher,
            store: &store,
        },
        &FixtureOptions {
            registry: Some(address.to_owned()),
            ..FixtureOptions::default()
        },
    )
    .await
}

/// cosign's legacy keyless `.sig` layer (cosign v2) of `payload`, from a v0.1 or v0.2 bundle
/// of a message signature over it (its certificate chain and Rekor v1 entry): the signature,
/// the leaf certificate (PEM), the rest of the chain (PEM) and the Rekor bundle (its signed
/// entry timestamp and `{body, integratedTime, logIndex, logID}`) as the layer's annotations.
///
/// # Errors
/// A bundle without a message signature, an `x509CertificateChain`, or a Rekor v1 entry with
/// its signed entry timestamp.
pub fn legacy_signature_layer(bundle: &str, payload: Vec<u8>) -> Result<NewLayer, String> {
    let bundle: Value =
        serde_json::from_str(bundle).map_err(|e| format!("the bundle is not JSON: {e}"))?;
    let missing = |what: &str| format!("the bundle has no {what}");
    let material = &bundle["verificationMaterial"];
    let certificates = material["x509CertificateChain"]["certificates"]
        .as_array()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| missing("x509CertificateChain"))?
        .iter()
        .map(|c| {
            c["rawBytes"]
                .as_str()
                .ok_or_else(|| missing("certificate rawBytes"))
                .and_then(dsse::decode_base64)
                .map(|der| pem_encode("CERTIFICATE", &der))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let entry = &material["tlogEntries"][0];
    let number = |field: &str| -> Result<i64, String> {
        entry[field]
            .as_str()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| missing(&format!("tlog entry {field}")))
    };
    let log_id = entry["logId"]["keyId"]
        .as_str()
        .ok_or_else(|| missing("log id"))
        .and_then(dsse::decode_base64)?;
    let rekor = json!({
        "SignedEntryTimestamp": entry["inclusionPromise"]["signedEntryTimestamp"]
            .as_str()
            .ok_or_else(|| missing("signed entry timestamp"))?,
        "Payload": {
            "body": entry["canonicalizedBody"].as_str().ok_or_else(|| missing("entry body"))?,
            "integratedTime": number("integratedTime")?,
            "logIndex": number("logIndex")?,
            "logID": hex::encode(log_id),
        },
    });
    let signature = bundle["messageSignature"]["signature"]
        .as_str()
        .ok_or_else(|| missing("message signature"))?;
    let mut annotations = BTreeMap::from([
        (
            cosign::SIGNATURE_ANNOTATION.to_owned(),
            signature.to_owned(),
        ),
        (
            cosign::CERTIFICATE_ANNOTATION.to_owned(),
            certificates[0].clone(),
        ),
        (cosign::BUNDLE_ANNOTATION.to_owned(), rekor.to_string()),
    ]);
    if certificates.len() > 1 {
        annotations.insert(
            cosign::CHAIN_ANNOTATION.to_owned(),
            certificates[1..].concat(),
        );
    }
    Ok(NewLayer {
        media_type: cosign::SIMPLE_SIGNING_MEDIA_TYPE.to_owned(),
        bytes: payload,
        annotations,
    })
}

/// `seconds` as RFC 3339.
fn rfc3339(seconds: i64) -> Result<String, String> {
    super::rfc3339(seconds)
}

/// SLSA provenance v1 of a GitHub Actions build of `example/app` at `refs/heads/main`.
fn slsa_provenance_v1(time: i64) -> Result<Value, String> {
    Ok(json!({
        "buildDefinition": {
            "buildType": "https://actions.github.io/buildtypes/workflow/v1",
            "externalParameters": {
                "workflow": {
                    "ref": WORKFLOW_REF,
                    "repository": "https://github.com/example/app",
                    "path": ".github/workflows/release.yml",
                },
            },
            "internalParameters": {
                "github": { "event_name": "push", "runner_environment": "github-hosted" },
            },
            "resolvedDependencies": [{
                "uri": "git+https://github.com/example/app@refs/heads/main",
                "digest": { "gitCommit": "0123456789abcdef0123456789abcdef01234567" },
            }],
        },
        "runDetails": {
            "builder": { "id": BUILDER_ID },
            "metadata": {
                "invocationId": "https://github.com/example/app/actions/runs/1/attempts/1",
                "startedOn": rfc3339(time - 300)?,
                "finishedOn": rfc3339(time - 60)?,
            },
        },
    }))
}

/// SLSA provenance v0.2 of the same build.
fn slsa_provenance_v0_2(time: i64) -> Result<Value, String> {
    Ok(json!({
        "builder": { "id": BUILDER_ID },
        "buildType": "https://github.com/slsa-framework/slsa-github-generator/container@v1",
        "invocation": {
            "configSource": {
                "uri": "git+https://github.com/example/app@refs/heads/main",
                "digest": { "sha1": "0123456789abcdef0123456789abcdef01234567" },
                "entryPoint": ".github/workflows/release.yml",
            },
            "parameters": {},
        },
        "metadata": {
            "buildInvocationID": "1-1",
            "buildStartedOn": rfc3339(time - 300)?,
            "buildFinishedOn": rfc3339(time - 60)?,
            "completeness": { "parameters": true, "environment": false, "materials": false },
            "reproducible": false,
        },
        "materials": [{
            "uri": "git+https://github.com/example/app@refs/heads/main",
            "digest": { "sha1": "0123456789abcdef0123456789abcdef01234567" },
        }],
    }))
}

/// cosign's vuln predicate of a Trivy scan of `image` that found `findings` (id, severity,
/// package), finished at `finished`.
fn vulnerability_report(
    image: &Resolved,
    findings: &[(&str, &str, &str)],
    finished: i64,
) -> Result<Value, String> {
    let vulnerabilities: Vec<Value> = findings
        .iter()
        .map(|(id, severity, package)| {
            json!({
                "VulnerabilityID": id,
                "PkgName": package,
                "InstalledVersion": "1.0.0",
                "FixedVersion": "1.0.1",
                "Severity": severity,
                "Title": format!("{package}: an example {} vulnerability", severity.to_lowercase()),
            })
        })
        .collect();
    Ok(json!({
        "invocation": {
            "parameters": null,
            "uri": "https://github.com/example/app/actions/runs/1",
            "event_id": "1",
            "builder.id": BUILDER_ID,
        },
        "scanner": {
            "uri": "pkg:github/aquasecurity/trivy@0.58.0",
            "version": "0.58.0",
            "db": { "uri": "pkg:github/aquasecurity/trivy-db@2", "version": "2" },
            "result": {
                "SchemaVersion": 2,
                "ArtifactName": image.reference,
                "ArtifactType": "container_image",
                "Results": [{
                    "Target": format!("{} (debian 12.8)", image.reference),
                    "Class": "os-pkgs",
                    "Type": "debian",
                    "Vulnerabilities": vulnerabilities,
                }],
            },
        },
        "metadata": {
            "scanStartedOn": rfc3339(finished - 60)?,
            "scanFinishedOn": rfc3339(finished)?,
        },
    }))
}

/// A minimal SPDX 2.3 document describing `image`'s one package.
fn spdx_document(image: &Resolved, time: i64) -> Result<Value, String> {
    Ok(json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": image.repository,
        "documentNamespace": format!("https://example.com/spdx/{}", hex::encode(&image.digest.bytes)),
        "creationInfo": {
            "created": rfc3339(time)?,
            "creators": ["Tool: palisade-image-fixtures"],
        },
        "packages": [{
            "name": "libexample",
            "SPDXID": "SPDXRef-Package-libexample",
            "versionInfo": "1.0.0",
            "downloadLocation": "NOASSERTION",
            "licenseConcluded": "Apache-2.0",
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": "pkg:deb/debian/libexample@1.0.0",
            }],
        }],
        "relationships": [{
            "spdxElementId": "SPDXRef-DOCUMENT",
            "relationshipType": "DESCRIBES",
            "relatedSpdxElement": "SPDXRef-Package-libexample",
        }],
    }))
}

/// A minimal CycloneDX 1.5 BOM of `image`.
fn cyclonedx_bom(image: &Resolved, time: i64) -> Result<Value, String> {
    Ok(json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "timestamp": rfc3339(time)?,
            "component": {
                "type": "container",
                "name": image.repository,
                "version": image.digest.to_string(),
            },
        },
        "components": [
            {
                "type": "library",
                "name": "libexample",
                "version": "1.0.0",
                "purl": "pkg:deb/debian/libexample@1.0.0",
            },
            {
                "type": "library",
                "name": "libsample",
                "version": "1.0.0",
                "purl": "pkg:deb/debian/libsample@1.0.0",
            },
        ],
    }))
}
