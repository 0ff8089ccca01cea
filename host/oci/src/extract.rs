//! Finding the module in an image: a Kubewarden policy artefact's layer (policy-fetcher's
//! pull), else the way Istio's agent does (`pkg/wasm/imagefetcher.go`, proxy-wasm.md 2.3): a
//! Docker manifest's last layer, else the compat variant's last layer, else the wasm variant's
//! content layer.

use std::fmt;
use std::io::Read as _;

use flate2::read::GzDecoder;
use oci_client::manifest::{OciDescriptor, OciImageManifest};

use crate::image::PLUGIN_FILE;
use crate::media_type;
use crate::module::WASM_MAGIC;

/// Istio's cap on a module (`ISTIO_WASM_MAX_BINARY_SIZE_BYTES` default, 256 MiB).
pub(crate) const MAX_MODULE_SIZE: u64 = 256 << 20;

/// Which layout an image has: one of the three Istio accepts, or Kubewarden's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Docker manifest v2; the last layer is a Docker gzip'd tar with `plugin.wasm`.
    Docker,
    /// OCI manifest; the last layer is an OCI gzip'd tar with `plugin.wasm`.
    Compat,
    /// OCI manifest with exactly two layers, one the raw module (Wasm Artifact Image spec).
    Wasm,
    /// Kubewarden policy artefact (`kwctl push`): config `application/vnd.wasm.config.v1+json`,
    /// every layer the raw module's media type, the first one read (as policy-fetcher does).
    Kubewarden,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Docker => "docker",
            Format::Compat => "compat",
            Format::Wasm => "wasm",
            Format::Kubewarden => "kubewarden",
        })
    }
}

/// A module found in an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// The layout it was found in.
    pub format: Format,
    /// Digest of the layer that held it.
    pub layer_digest: String,
    /// The module bytes.
    pub module: Vec<u8>,
}

/// Why an image yields no module.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// The manifest lists no layers.
    #[error("the manifest has no layers")]
    NoLayers,
    /// The layer Istio reads has another media type.
    #[error("{format}: last layer has media type {found}, expected {expected}")]
    LayerMediaType {
        /// The layout being tried.
        format: Format,
        /// The layer's media type.
        found: String,
        /// The media type that layout needs.
        expected: &'static str,
    },
    /// A Kubewarden artefact has a layer of another media type (policy-fetcher's pull accepts
    /// only the module's).
    #[error(
        "kubewarden: layer {index} has media type {found}, expected {}",
        media_type::KUBEWARDEN_LAYER
    )]
    KubewardenLayer {
        /// The layer's position in the manifest, from 0.
        index: usize,
        /// Its media type.
        found: String,
    },
    /// The wasm variant needs exactly two layers.
    #[error("wasm: {0} layers, expected exactly 2")]
    LayerCount(usize),
    /// No layer has the wasm content media type.
    #[error("wasm: no layer of media type {}", media_type::WASM_CONTENT)]
    NoContentLayer,
    /// A blob the manifest references could not be had.
    #[error("blob {0} is missing")]
    MissingBlob(String),
    /// The layer is not a readable gzip'd tar.
    #[error("{format}: reading the layer as tar.gz")]
    Archive {
        /// The layout being tried.
        format: Format,
        /// What the gzip or tar reader said.
        #[source]
        source: std::io::Error,
    },
    /// The archive has no `plugin.wasm`.
    #[error("{0}: no {PLUGIN_FILE} in the layer")]
    NoPluginFile(Format),
    /// The module is over Istio's size cap.
    #[error("{format}: module of {size} bytes is over the {MAX_MODULE_SIZE}-byte cap")]
    TooLarge {
        /// The layout being tried.
        format: Format,
        /// The module's size.
        size: u64,
    },
    /// The bytes found do not start with the wasm magic.
    #[error("{0}: the layer's content is not a wasm module")]
    NotWasm(Format),
    /// Neither OCI layout fits; each one's reason.
    #[error(
        "no layout Istio accepts (compat: {}; wasm: {})",
        chain(compat),
        chain(wasm)
    )]
    NoLayout {
        /// Why the compat layout failed.
        compat: Box<ExtractError>,
        /// Why the wasm layout failed.
        wasm: Box<ExtractError>,
    },
}

/// An error and its sources on one line, for the aggregate [`ExtractError::NoLayout`].
fn chain(error: &ExtractError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Whether a manifest is a Kubewarden policy artefact: its config, or its only layer, has
/// Kubewarden's media type.
fn is_kubewarden(manifest: &OciImageManifest) -> bool {
    let only_layer = match manifest.layers.as_slice() {
        [only] => Some(only.media_type.as_str()),
        _ => None,
    };
    manifest.config.media_type == media_type::KUBEWARDEN_CONFIG
        || only_layer == Some(media_type::KUBEWARDEN_LAYER)
}

/// The layers to try, in order, each with the layout it would be read as or the reason it
/// cannot be. A Kubewarden artefact is only ever read as Kubewarden; a Docker manifest only as
/// Docker (no fallback, as in Istio); any other OCI manifest as compat, then wasm (Istio's order).
pub(crate) fn candidates(
    manifest: &OciImageManifest,
) -> Vec<(Format, Result<OciDescriptor, ExtractError>)> {
    if is_kubewarden(manifest) {
        // oci-client's pull, which policy-fetcher calls with only the module's media type,
        // refuses a manifest with any other layer type; policy-fetcher then reads the first layer.
        let other = manifest
            .layers
            .iter()
            .enumerate()
            .find(|(_, layer)| layer.media_type != media_type::KUBEWARDEN_LAYER);
        let layer = match other {
            Some((index, layer)) => Err(ExtractError::KubewardenLayer {
                index,
                found: layer.media_type.clone(),
            }),
            None => manifest
                .layers
                .first()
                .cloned()
                .ok_or(ExtractError::NoLayers),
        };
        return vec![(Format::Kubewarden, layer)];
    }
    let last = manifest.layers.last();
    let last_with = |format: Format, expected: &'static str| match last {
        None => Err(ExtractError::NoLayers),
        Some(layer) if layer.media_type == expected => Ok(layer.clone()),
        Some(layer) => Err(ExtractError::LayerMediaType {
            format,
            found: layer.media_type.clone(),
            expected,
        }),
    };
    if manifest.media_type.as_deref() == Some(media_type::DOCKER_MANIFEST) {
        return vec![(
            Format::Docker,
            last_with(Format::Docker, media_type::DOCKER_LAYER_GZIP),
        )];
    }
    let wasm = if manifest.layers.len() == 2 {
        manifest
            .layers
            .iter()
            .find(|l| l.media_type == media_type::WASM_CONTENT)
            .cloned()
            .ok_or(ExtractError::NoContentLayer)
    } else {
        Err(ExtractError::LayerCount(manifest.layers.len()))
    };
    vec![
        (
            Format::Compat,
            last_with(Format::Compat, media_type::OCI_LAYER_GZIP),
        ),
        (Format::Wasm, wasm),
    ]
}

/// The module in a layer blob read as `format`.
pub(crate) fn decode(format: Format, blob: Vec<u8>) -> Result<Vec<u8>, ExtractError> {
    let module = match format {
        Format::Wasm | Format::Kubewarden => blob,
        Format::Docker | Format::Compat => {
            let archive = |source| ExtractError::Archive { format, source };
            let mut tar = tar::Archive::new(GzDecoder::new(blob.as_slice()));
            let mut found = None;
            for entry in tar.entries().map_err(archive)? {
                let entry = entry.map_err(archive)?;
                let path = entry.path().map_err(archive)?;
                // Istio matches on the base name (Go's filepath.Base), so `./plugin.wasm` counts.
                if path.file_name().is_some_and(|n| n == PLUGIN_FILE) {
                    found = Some(entry);
                    break;
                }
            }
            let mut entry = found.ok_or(ExtractError::NoPluginFile(format))?;
            let size = entry.size();
            if size > MAX_MODULE_SIZE {
                return Err(ExtractError::TooLarge { format, size });
            }
            let mut module = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            entry.read_to_end(&mut module).map_err(archive)?;
            module
        }
    };
    if module.len() as u64 > MAX_MODULE_SIZE {
        return Err(ExtractError::TooLarge {
            format,
            size: module.len() as u64,
        });
    }
    if !module.starts_with(WASM_MAGIC) {
        return Err(ExtractError::NotWasm(format));
    }
    Ok(module)
}

/// The error for a run where every candidate failed: the only reason, or both.
pub(crate) fn failure(mut reasons: Vec<(Format, ExtractError)>) -> ExtractError {
    let wasm = reasons.pop();
    let compat = reasons.pop();
    match (compat, wasm) {
        (Some((_, compat)), Some((_, wasm))) => ExtractError::NoLayout {
            compat: Box::new(compat),
            wasm: Box::new(wasm),
        },
        (None, Some((_, only))) | (Some((_, only)), None) => only,
        (None, None) => ExtractError::NoLayers,
    }
}

/// Tries the candidates in order with `fetch` giving each layer's bytes.
pub(crate) fn extract(
    manifest: &OciImageManifest,
    mut fetch: impl FnMut(&OciDescriptor) -> Result<Vec<u8>, ExtractError>,
) -> Result<Extracted, ExtractError> {
    let mut reasons = Vec::new();
    for (format, layer) in candidates(manifest) {
        let attempt = layer.and_then(|layer| {
            let module = decode(format, fetch(&layer)?)?;
            Ok(Extracted {
                format,
                layer_digest: layer.digest,
                module,
            })
        });
        match attempt {
            Ok(extracted) => return Ok(extracted),
            Err(reason) => reasons.push((format, reason)),
        }
    }
    Err(failure(reasons))
}
