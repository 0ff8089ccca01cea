//! Writing cosign's artefacts: a signature or attestation layer appended to the image's
//! `sha256-<hex>.sig` or `.att` tag (created when absent), as `cosign sign` and `cosign attest`
//! append theirs, in a registry or in an OCI layout directory.

use std::collections::BTreeMap;
use std::path::Path;

use palisade_oci::{Image, ImageStore, Registry, layout};
use serde_json::json;

use crate::cosign::{self, Attached};
use crate::error_chain;
use crate::image::Resolved;
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
