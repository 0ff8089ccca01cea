//! Writing cosign's artefacts, in a registry or in an OCI layout directory:
//! - a signature or attestation layer appended to the image's `sha256-<hex>.sig` or `.att` tag
//!   (created when absent), as `cosign sign` and `cosign attest` append theirs ([`append`]);
//! - a Sigstore bundle attached as an OCI 1.1 referrer of the image, as cosign v3 attaches its
//!   signatures and attestations (`--new-bundle-format`, its default) ([`attach_bundle`]).

use std::collections::BTreeMap;
use std::path::Path;

use palisade_oci::{Image, ImageStore, Registry, StoreOptions, layout};
use serde_json::json;

use crate::cosign::{self, Attached};
use crate::dsse::{self, Statement};
use crate::error_chain;
use crate::image::{
    BUNDLE_MEDIA_TYPE_PREFIX, BUNDLE_PREDICATE_TYPE_ANNOTATION, Resolved, SIGN_PREDICATE_TYPE,
};
use crate::keys::HashAlgorithm;

/// A layer to attach: its bytes, media type and descriptor annotations.
#[derive(Debug, Clone)]
pub struct NewLayer {
    /// The media type (`application/vnd.dev.cosign.simplesigning.v1+json`, or the DSSE one).
    pub media_type: String,
    /// The blob.
    pub bytes: Vec<u8>,
    /// The descriptor's annotations (the signature, the predicate type).
    pub annotations: BTreeMap<String, String>,
}

/// Where artefacts are written.
#[derive(Clone, Copy)]
pub enum Destination<'a> {
    /// A registry: read through `store`, written through `registry`.
    Registry {
        /// The registry client that pushes.
        registry: &'a Registry,
        /// The store that reads what is already there.
        store: &'a ImageStore,
    },
    /// An OCI layout directory: the tag is an `index.json` entry named `<repository>:<tag>`.
    Layout(&'a Path),
}

/// The media type of an image config.
const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";

/// Appends `layer` to `image`'s tag of `kind`, keeping the layers already there; returns the
/// reference written.
///
/// # Errors
/// A message naming the step that failed (reading the tag, pushing, writing the layout).
pub async fn append(
    destination: Destination<'_>,
    image: &Resolved,
    kind: Attached,
    layer: NewLayer,
) -> Result<String, String> {
    let reference = format!("{}:{}", image.repository, cosign::tag(&image.digest, kind));
    let mut layers: Vec<(serde_json::Value, Vec<u8>)> = match destination {
        Destination::Registry { store, .. } => existing_from_store(store, &reference).await?,
        Destination::Layout(dir) => existing_from_layout(dir, &reference)?,
    };
    let descriptor = json!({
        "mediaType": layer.media_type,
        "size": layer.bytes.len(),
        "digest": HashAlgorithm::Sha256.digest(&layer.bytes).to_string(),
        "annotations": layer.annotations,
    });
    if !layers.iter().any(|(d, _)| *d == descriptor) {
        layers.push((descriptor, layer.bytes));
    }
    let image_written = build(&layers)?;
    match destination {
        Destination::Registry { registry, .. } => {
            registry
                .push(&image_written, &reference)
                .await
                .map_err(|e| format!("pushing {reference}: {}", error_chain(&e)))?;
        }
        Destination::Layout(dir) => {
            let mut entries = layout::read_dir(dir).map_err(|e| {
                format!("reading the layout {}: {}", dir.display(), error_chain(&e))
            })?;
            entries.retain(|e| e.name.as_deref() != Some(reference.as_str()));
            let mut named: Vec<(String, Image)> = entries
                .into_iter()
                .map(|e| (e.name.unwrap_or_else(|| e.image.digest()), e.image))
                .collect();
            named.push((reference.clone(), image_written));
            let refs: Vec<(&str, &Image)> = named.iter().map(|(n, i)| (n.as_str(), i)).collect();
            layout::write_dir(dir, &refs).map_err(|e| {
                format!("writing the layout {}: {}", dir.display(), error_chain(&e))
            })?;
        }
    }
    Ok(reference)
}

/// The manifest of `layers` with cosign's config (its `rootfs.diff_ids` list the layers).
fn build(layers: &[(serde_json::Value, Vec<u8>)]) -> Result<Image, String> {
    let config = json!({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|(d, _)| d["digest"].clone()).collect::<Vec<_>>(),
        },
        "config": {},
    });
    let config = serde_json::to_vec(&config).map_err(|e| e.to_string())?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": palisade_oci::media_type::OCI_MANIFEST,
        "config": {
            "mediaType": CONFIG_MEDIA_TYPE,
            "size": config.len(),
            "digest": HashAlgorithm::Sha256.digest(&config).to_string(),
        },
        "layers": layers.iter().map(|(d, _)| d.clone()).collect::<Vec<_>>(),
    });
    let manifest = serde_json::to_vec(&manifest).map_err(|e| e.to_string())?;
    let blobs = std::iter::once(config).chain(layers.iter().map(|(_, bytes)| bytes.clone()));
    Image::from_parts(manifest, blobs).map_err(|e| format!("assembling the manifest: {e}"))
}

async fn existing_from_store(
    store: &ImageStore,
    reference: &str,
) -> Result<Vec<(serde_json::Value, Vec<u8>)>, String> {
    let manifest = match store.manifest(reference).await {
        Ok(manifest) => manifest,
        Err(e) if e.is_not_found() => return Ok(Vec::new()),
        Err(e) => return Err(format!("reading {reference}: {}", error_chain(&e))),
    };
    let parsed: serde_json::Value = serde_json::from_slice(&manifest.bytes)
        .map_err(|e| format!("{reference} is not JSON: {e}"))?;
    let mut layers = Vec::new();
    for descriptor in parsed["layers"].as_array().into_iter().flatten() {
        let digest = descriptor["digest"].as_str().unwrap_or_default();
        let bytes = store
            .blob(reference, digest)
            .await
            .map_err(|e| format!("reading {digest} of {reference}: {}", error_chain(&e)))?;
        layers.push((descriptor.clone(), bytes));
    }
    Ok(layers)
}

fn existing_from_layout(
    dir: &Path,
    reference: &str,
) -> Result<Vec<(serde_json::Value, Vec<u8>)>, String> {
    let entries = layout::read_dir(dir)
        .map_err(|e| format!("reading the layout {}: {}", dir.display(), error_chain(&e)))?;
    let Some(entry) = entries
        .into_iter()
        .find(|e| e.name.as_deref() == Some(reference))
    else {
        return Ok(Vec::new());
    };
    let parsed: serde_json::Value = serde_json::from_slice(entry.image.manifest())
        .map_err(|e| format!("{reference} is not JSON: {e}"))?;
    Ok(parsed["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| {
            let bytes = entry.image.blob(d["digest"].as_str()?)?.to_vec();
            Some((d.clone(), bytes))
        })
        .collect())
}

/// The annotation cosign v3 puts on a bundle referrer's manifest: what the bundle holds,
/// `dsse-envelope` or `message-signature`.
pub const BUNDLE_CONTENT_ANNOTATION: &str = "dev.sigstore.bundle.content";
/// The media type of the empty config (`{}`) of a referrer (image-spec `manifest.md`,
/// "Guidance for an Empty Descriptor").
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// The empty config's content.
const EMPTY_CONFIG: &[u8] = b"{}";

/// Attaches the Sigstore bundle `bundle` (its JSON, as signed) to `image` as an OCI 1.1
/// referrer, as cosign v3 does (`cosign sign` and `cosign attest` with `--new-bundle-format`):
/// an image manifest whose `artifactType` is the bundle's media type, with the empty config
/// (`application/vnd.oci.empty.v1+json`, `{}`), one layer holding the bundle (of that media
/// type), the image's manifest descriptor as its `subject`, and the annotations
/// `dev.sigstore.bundle.content` and `dev.sigstore.bundle.predicateType` (the statement's
/// predicate type for a DSSE bundle, [`SIGN_PREDICATE_TYPE`] for a message signature).
///
/// In a layout, the referrer is listed in `index.json` (named by its digest), where
/// [`ImageStore::referrers`] finds it. In a registry, it is pushed by digest; a registry with
/// the referrers API lists it from then on, and one without (whose listing does not show it)
/// gets it added to the tag-schema index `sha256-<hex>` of the image's digest, as cosign does.
/// The registry destination's store should not cache tags (`StoreOptions::cache_ttl` zero) when
/// several bundles are attached to one image in turn.
///
/// Returns the referrer written, `repository@sha256:<hex>`.
///
/// # Errors
/// A bundle that is not JSON of a Sigstore bundle's media type, or whose DSSE payload is no
/// in-toto statement; or a message naming the step that failed (reading the image's manifest,
/// pushing, writing the layout).
pub async fn attach_bundle(
    destination: Destination<'_>,
    image: &Resolved,
    bundle: &str,
) -> Result<String, String> {
    let (media_type, content, predicate_type) = bundle_kind(bundle)?;
    let subject = match destination {
        Destination::Registry { store, .. } => subject_descriptor(store, image).await?,
        Destination::Layout(dir) => {
            let store = ImageStore::layout(dir, StoreOptions::default()).map_err(|e| {
                format!("reading the layout {}: {}", dir.display(), error_chain(&e))
            })?;
            subject_descriptor(&store, image).await?
        }
    };
    let bytes = bundle.as_bytes().to_vec();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": palisade_oci::media_type::OCI_MANIFEST,
        "artifactType": media_type,
        "config": {
            "mediaType": EMPTY_MEDIA_TYPE,
            "size": EMPTY_CONFIG.len(),
            "digest": HashAlgorithm::Sha256.digest(EMPTY_CONFIG).to_string(),
        },
        "layers": [{
            "mediaType": media_type,
            "size": bytes.len(),
            "digest": HashAlgorithm::Sha256.digest(&bytes).to_string(),
        }],
        "subject": subject,
        "annotations": {
            BUNDLE_CONTENT_ANNOTATION: content,
            BUNDLE_PREDICATE_TYPE_ANNOTATION: predicate_type,
        },
    });
    let manifest = serde_json::to_vec(&manifest).map_err(|e| e.to_string())?;
    let referrer = Image::from_parts(manifest, [EMPTY_CONFIG.to_vec(), bytes])
        .map_err(|e| format!("assembling the referrer's manifest: {e}"))?;
    let digest = referrer.digest();
    let written = format!("{}@{digest}", image.repository);
    match destination {
        Destination::Registry { registry, store } => {
            registry
                .push(&referrer, &written)
                .await
                .map_err(|e| format!("pushing {written}: {}", error_chain(&e)))?;
            let listed = list_referrers(store, image).await?;
            if !listed.iter().any(|r| r.digest == digest) {
                push_fallback_index(registry, store, image, &listed, &referrer).await?;
            }
        }
        Destination::Layout(dir) => {
            let entries = layout::read_dir(dir).map_err(|e| {
                format!("reading the layout {}: {}", dir.display(), error_chain(&e))
            })?;
            let mut named: Vec<(String, Image)> = entries
                .into_iter()
                .map(|e| (e.name.unwrap_or_else(|| e.image.digest()), e.image))
                .collect();
            if !named.iter().any(|(_, i)| i.digest() == digest) {
                named.push((digest.clone(), referrer));
            }
            let refs: Vec<(&str, &Image)> = named.iter().map(|(n, i)| (n.as_str(), i)).collect();
            layout::write_dir(dir, &refs).map_err(|e| {
                format!("writing the layout {}: {}", dir.display(), error_chain(&e))
            })?;
        }
    }
    Ok(written)
}

/// A bundle's media type, its content kind (`dsse-envelope` or `message-signature`) and the
/// predicate type it stands for.
fn bundle_kind(bundle: &str) -> Result<(String, &'static str, String), String> {
    let json: serde_json::Value =
        serde_json::from_str(bundle).map_err(|e| format!("the bundle is not JSON: {e}"))?;
    let media_type = json["mediaType"]
        .as_str()
        .filter(|t| t.starts_with(BUNDLE_MEDIA_TYPE_PREFIX))
        .ok_or_else(|| {
            format!("the bundle's mediaType is not one of a Sigstore bundle ({BUNDLE_MEDIA_TYPE_PREFIX}...)")
        })?
        .to_owned();
    if let Some(payload) = json["dsseEnvelope"]["payload"].as_str() {
        let statement = Statement::from_json(&dsse::decode_base64(payload)?)?;
        Ok((media_type, "dsse-envelope", statement.predicate_type))
    } else if json.get("messageSignature").is_some() {
        Ok((
            media_type,
            "message-signature",
            SIGN_PREDICATE_TYPE.to_owned(),
        ))
    } else {
        Err("the bundle holds neither a DSSE envelope nor a message signature".to_owned())
    }
}

/// The descriptor of `image`'s manifest (its media type, digest and size), as read from `store`.
async fn subject_descriptor(
    store: &ImageStore,
    image: &Resolved,
) -> Result<serde_json::Value, String> {
    let reference = format!("{}@{}", image.repository, image.digest);
    let manifest = store
        .manifest(&reference)
        .await
        .map_err(|e| format!("reading {reference}: {}", error_chain(&e)))?;
    Ok(json!({
        "mediaType": manifest.media_type,
        "digest": manifest.digest,
        "size": manifest.bytes.len(),
    }))
}

async fn list_referrers(
    store: &ImageStore,
    image: &Resolved,
) -> Result<Vec<palisade_oci::Referrer>, String> {
    store
        .referrers(&image.repository, &image.digest.to_string())
        .await
        .map_err(|e| {
            format!(
                "listing the referrers of {}@{}: {}",
                image.repository,
                image.digest,
                error_chain(&e)
            )
        })
}

/// Pushes the referrers tag-schema index of `image` (distribution-spec 1.1, "Referrers Tag
/// Schema": the tag `sha256-<hex>` of its digest): the referrers `listed` and `referrer`.
async fn push_fallback_index(
    registry: &Registry,
    store: &ImageStore,
    image: &Resolved,
    listed: &[palisade_oci::Referrer],
    referrer: &Image,
) -> Result<(), String> {
    let mut manifests = Vec::new();
    for entry in listed {
        // The listing has no sizes: each manifest is read (by digest, so from the cache if seen).
        let reference = format!("{}@{}", image.repository, entry.digest);
        let manifest = store
            .manifest(&reference)
            .await
            .map_err(|e| format!("reading {reference}: {}", error_chain(&e)))?;
        let mut descriptor = json!({
            "mediaType": entry.media_type,
            "digest": entry.digest,
            "size": manifest.bytes.len(),
        });
        if let Some(artifact_type) = &entry.artifact_type {
            descriptor["artifactType"] = json!(artifact_type);
        }
        if !entry.annotations.is_empty() {
            descriptor["annotations"] = json!(entry.annotations);
        }
        manifests.push(descriptor);
    }
    let parsed = referrer.parsed();
    manifests.push(json!({
        "mediaType": referrer.media_type(),
        "digest": referrer.digest(),
        "size": referrer.manifest().len(),
        "artifactType": parsed.artifact_type,
        "annotations": parsed.annotations,
    }));
    let index = json!({
        "schemaVersion": 2,
        "mediaType": palisade_oci::media_type::OCI_INDEX,
        "manifests": manifests,
    });
    let index = serde_json::to_vec(&index).map_err(|e| e.to_string())?;
    let tag = format!(
        "{}:{}-{}",
        image.repository,
        image.digest.algorithm.name(),
        hex::encode(&image.digest.bytes)
    );
    registry
        .push_manifest(&index, palisade_oci::media_type::OCI_INDEX, &tag)
        .await
        .map_err(|e| format!("pushing the referrers index {tag}: {}", error_chain(&e)))?;
    Ok(())
}
