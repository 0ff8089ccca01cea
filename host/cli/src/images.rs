//! `palisade sign`, `palisade attest` and `palisade verify-image`: cosign's key-based signing and
//! attesting of images (signatures and attestations appended to the image's `.sig` and `.att`
//! tags, in a registry or an OCI layout), and verification of what is attached to an image as
//! `cosign verify` and `cosign verify-attestation` do it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use palisade_oci::{ImageStore, Registry};
use palisade_suite::input;
use palisade_supply_chain::attach::{self, Destination, NewLayer};
use palisade_supply_chain::cosign::{self, Attached, SimpleSigning};
use palisade_supply_chain::dsse::{self, Envelope, Statement};
use palisade_supply_chain::image::{
    AttestationRequirement, DEFAULT_RESULT_TTL, ImageVerifier, Resolved, SignatureRequirement,
};
use palisade_supply_chain::keys::SigningKey;
use palisade_webhook::registry::RegistryConfig;
use serde_json::json;

use crate::output;
use crate::push::runtime;
use crate::verify::SignerArgs;

/// Where images and what is attached to them are read and written.
#[derive(Debug, Args)]
pub(crate) struct ImageSourceArgs {
    /// Read images (and what is attached to them) from this OCI image layout directory instead
    /// of registries (offline; images found by their `org.opencontainers.image.ref.name`);
    /// `sign` and `attest` write there.
    #[arg(long, value_name = "DIR")]
    oci_dir: Option<PathBuf>,
    /// A Docker config file with registry credentials.
    #[arg(long, value_name = "FILE")]
    docker_config: Option<PathBuf>,
    /// A registry (`host[:port]`) spoken to over plain HTTP (repeatable).
    #[arg(long, value_name = "HOST")]
    insecure_registry: Vec<String>,
}

impl ImageSourceArgs {
    /// The image-store configuration these flags describe.
    pub(crate) fn config(&self) -> RegistryConfig {
        RegistryConfig {
            oci_directory: self.oci_dir.clone(),
            docker_config: self.docker_config.clone(),
            insecure_registries: self.insecure_registry.clone(),
            ..RegistryConfig::default()
        }
    }

    /// The image store these flags describe; an error names the flag at fault.
    pub(crate) fn store(&self) -> anyhow::Result<ImageStore> {
        self.config().store().map_err(|e| {
            let flag = if self.oci_dir.is_some() {
                "--oci-dir"
            } else {
                "--docker-config"
            };
            anyhow::anyhow!("{flag}: {e:#}")
        })
    }
}

/// Annotations given as KEY=VALUE.
fn parse_annotation(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{text}` is not KEY=VALUE"))
}

/// `palisade sign`.
#[derive(Debug, Args)]
pub(crate) struct SignArgs {
    /// The image (`registry/repository:tag` or `@sha256:<hex>`); its manifest digest is signed.
    #[arg(value_name = "IMAGE")]
    image: String,
    /// Private key (PEM: PKCS#8, SEC 1 or PKCS#1).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// An annotation to sign with the image, KEY=VALUE (repeatable), as `cosign sign -a`.
    #[arg(short = 'a', long = "annotation", value_name = "KEY=VALUE", value_parser = parse_annotation)]
    annotations: Vec<(String, String)>,
    #[command(flatten)]
    source: ImageSourceArgs,
}

/// `palisade attest`.
#[derive(Debug, Args)]
pub(crate) struct AttestArgs {
    /// The image (`registry/repository:tag` or `@sha256:<hex>`).
    #[arg(value_name = "IMAGE")]
    image: String,
    /// Private key (PEM: PKCS#8, SEC 1 or PKCS#1).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The predicate (JSON).
    #[arg(long, value_name = "FILE")]
    predicate: PathBuf,
    /// Its type: a URI, or cosign's names (slsaprovenance, slsaprovenance1, vuln, spdxjson,
    /// cyclonedx, openvex, link, custom).
    #[arg(long = "type", default_value = "custom", value_name = "TYPE")]
    predicate_type: String,
    #[command(flatten)]
    source: ImageSourceArgs,
}

/// `palisade verify-image`.
#[derive(Debug, Args)]
pub(crate) struct VerifyImageArgs {
    /// The image (`registry/repository:tag` or `@sha256:<hex>`).
    #[arg(value_name = "IMAGE")]
    image: String,
    /// An annotation the signature must carry, KEY=VALUE (repeatable), as `cosign verify -a`.
    #[arg(short = 'a', long = "annotation", value_name = "KEY=VALUE", value_parser = parse_annotation)]
    annotations: Vec<(String, String)>,
    /// Verify attestations of this predicate type (a URI or cosign's names) instead of
    /// signatures, as `cosign verify-attestation --type`.
    #[arg(long = "type", value_name = "TYPE", conflicts_with = "annotations")]
    predicate_type: Option<String>,
    #[command(flatten)]
    signer: SignerArgs,
    #[command(flatten)]
    source: ImageSourceArgs,
}

fn read_key(path: &std::path::Path) -> anyhow::Result<SigningKey> {
    SigningKey::from_pem(&input::read_text(path)?)
        .with_context(|| format!("--key {}", path.display()))
}

/// Resolves `image` in `store`, then appends `layer` to its tag of `kind` where `source` says.
fn append(
    source: &ImageSourceArgs,
    image: &str,
    kind: Attached,
    layer: impl FnOnce(&Resolved) -> anyhow::Result<NewLayer>,
) -> anyhow::Result<ExitCode> {
    let store = Arc::new(source.store()?);
    runtime()?.block_on(async {
        let verifier = ImageVerifier::new(Arc::clone(&store), None, DEFAULT_RESULT_TTL);
        let resolved = verifier
            .resolve(image)
            .await
            .with_context(|| format!("resolving {image}"))?;
        let layer = layer(&resolved)?;
        let written = match &source.oci_dir {
            Some(dir) => attach::append(Destination::Layout(dir), &resolved, kind, layer).await,
            None => {
                let options = store
                    .push_options(image)?
                    .context("the image store is not a registry")?;
                let registry = Registry::new(options)?;
                attach::append(
                    Destination::Registry {
                        registry: &registry,
                        store: &store,
                    },
                    &resolved,
                    kind,
                    layer,
                )
                .await
            }
        }
        .map_err(anyhow::Error::msg)?;
        output::line(written)?;
        Ok(ExitCode::SUCCESS)
    })
}

pub(crate) fn sign(args: &SignArgs) -> anyhow::Result<ExitCode> {
    let key = read_key(&args.key)?;
    let annotations: BTreeMap<String, String> = args.annotations.iter().cloned().collect();
    append(&args.source, &args.image, Attached::Signatures, |image| {
        let payload = SimpleSigning::new(&image.repository, &image.digest, &annotations).to_json();
        let signature = key.sign(&payload)?;
        Ok(NewLayer {
            media_type: cosign::SIMPLE_SIGNING_MEDIA_TYPE.to_owned(),
            bytes: payload,
            annotations: BTreeMap::from([(
                cosign::SIGNATURE_ANNOTATION.to_owned(),
                dsse::encode_base64(&signature),
            )]),
        })
    })
}

pub(crate) fn attest(args: &AttestArgs) -> anyhow::Result<ExitCode> {
    let key = read_key(&args.key)?;
    let predicate_type = dsse::predicate_type(&args.predicate_type)
        .map_err(anyhow::Error::msg)
        .context("--type")?
        .to_owned();
    let predicate: serde_json::Value = input::read_document(&args.predicate)?;
    append(&args.source, &args.image, Attached::Attestations, |image| {
        let statement =
            Statement::new(&image.repository, &image.digest, &predicate_type, predicate);
        let envelope = Envelope::sign(
            dsse::IN_TOTO_PAYLOAD_TYPE,
            serde_json::to_vec(&statement)?,
            &key,
        )
        .map_err(anyhow::Error::msg)?;
        Ok(NewLayer {
            media_type: cosign::DSSE_MEDIA_TYPE.to_owned(),
            bytes: envelope.to_json(),
            annotations: BTreeMap::from([
                (cosign::SIGNATURE_ANNOTATION.to_owned(), String::new()),
                (
                    cosign::PREDICATE_TYPE_ANNOTATION.to_owned(),
                    predicate_type.clone(),
                ),
            ]),
        })
    })
}

pub(crate) fn verify_image(args: &VerifyImageArgs) -> anyhow::Result<ExitCode> {
    let signer = args.signer.signer()?;
    let root = match (&signer, args.signer.has_trust_root()) {
        // A key-signed cosign layer needs no root; a bundle does, so one given is used.
        (palisade_supply_chain::bundle::Signer::Key(_), false) => None,
        _ => Some(args.signer.trust_root()?),
    };
    let predicate_type = args
        .predicate_type
        .as_deref()
        .map(dsse::predicate_type)
        .transpose()
        .map_err(anyhow::Error::msg)
        .context("--type")?
        .map(str::to_owned);
    let store = Arc::new(args.source.store()?);
    let verifier = ImageVerifier::new(store, root, DEFAULT_RESULT_TTL);
    runtime()?.block_on(async {
        let image = match verifier.resolve(&args.image).await {
            Ok(image) => image,
            Err(e) => bail!("resolving {}: {e}", args.image),
        };
        let verified = match &predicate_type {
            None => verifier
                .signatures(
                    &image,
                    &SignatureRequirement {
                        signer,
                        annotations: args.annotations.iter().cloned().collect(),
                    },
                )
                .await
                .map(|found| {
                    found
                        .iter()
                        .map(|s| {
                            json!({
                                "found": s.found.to_string(),
                                "certificate": s.certificate.as_ref().map(|c| json!({
                                    "subject": c.subject, "issuer": c.issuer, "claims": c.claims,
                                })),
                                "annotations": s.annotations,
                            })
                        })
                        .collect::<Vec<_>>()
                }),
            Some(predicate_type) => verifier
                .attestations(
                    &image,
                    &AttestationRequirement {
                        signer,
                        predicate_type: predicate_type.clone(),
                    },
                )
                .await
                .map(|found| {
                    found
                        .iter()
                        .map(|a| {
                            json!({
                                "found": a.found.to_string(),
                                "certificate": a.certificate.as_ref().map(|c| json!({
                                    "subject": c.subject, "issuer": c.issuer, "claims": c.claims,
                                })),
                                "statement": a.statement,
                            })
                        })
                        .collect::<Vec<_>>()
                }),
        };
        match verified {
            Ok(found) => {
                output::line(serde_json::to_string_pretty(&found)?)?;
                output::note(format_args!(
                    "Verified OK: {} ({}): {} {}",
                    args.image,
                    image.digest,
                    found.len(),
                    if predicate_type.is_some() {
                        "attestation(s)"
                    } else {
                        "signature(s)"
                    }
                ));
                Ok(ExitCode::SUCCESS)
            }
            Err(failure) => {
                output::note(format_args!("error: {failure}"));
                Ok(ExitCode::FAILURE)
            }
        }
    })
}
