//! An image in memory: the exact manifest bytes and the blobs it references. Built from a module
//! in one of the two variants of the solo-io Wasm image spec, or as a Kubewarden policy artefact,
//! reproducibly: the same module always gives the same bytes, hence the same manifest digest.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::str::FromStr;

use flate2::{Compression, GzBuilder};
use oci_client::manifest::{OciDescriptor, OciImageManifest};
use serde::Serialize;

use crate::extract::{self, ExtractError, Extracted};
use crate::media_type;
use crate::module::{ModuleError, ProxyWasmModule, WASM_MAGIC, sha256_hex};

/// The file name the compat layer holds the module under (solo-io `spec-compat.md`, "Layer").
pub(crate) const PLUGIN_FILE: &str = "plugin.wasm";
/// Manifest annotation that marks a compat image (solo-io `spec-compat.md`, "Annotation").
const VARIANT_ANNOTATION: &str = "module.wasm.image/variant";
/// OCI pre-defined annotation for a blob's file name (image-spec `annotations.md`).
const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";
/// OCI pre-defined annotation for the URL of the image's source (image-spec `annotations.md`).
const SOURCE_ANNOTATION: &str = "org.opencontainers.image.source";
/// Kubewarden metadata annotation for the URL of the policy's source (kwctl `annotate`).
const KUBEWARDEN_SOURCE_ANNOTATION: &str = "io.kubewarden.policy.source";
/// The config blob of a Kubewarden policy artefact: always the empty JSON object.
const KUBEWARDEN_CONFIG_BODY: &[u8] = b"{}";

/// Which of the two image variants Istio's agent accepts to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Variant {
    /// Standard OCI media types: one gzip'd tar layer holding `plugin.wasm`. Any registry and
    /// tool handles it; Istio tries it first.
    Compat,
    /// The "Wasm Artifact Image" spec: a runtime-config layer and the raw module layer, with
    /// custom media types (some registries refuse them).
    Wasm,
}

impl Variant {
    /// Both variants, compat first.
    pub const ALL: [Variant; 2] = [Variant::Compat, Variant::Wasm];

    /// The variant's name, also its `org.opencontainers.image.ref.name` in a layout.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Variant::Compat => "compat",
            Variant::Wasm => "wasm",
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Variant {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Variant::ALL
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| ImageError::UnknownVariant(s.to_owned()))
    }
}

/// Why an image could not be built or assembled.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The module is not a proxy-wasm module.
    #[error("the module cannot be packaged")]
    Module(#[source] ModuleError),
    /// Writing the layer's tar or gzip stream failed.
    #[error("writing the layer archive")]
    Archive(#[source] std::io::Error),
    /// The manifest is not a JSON image manifest.
    #[error("the manifest is not a valid image manifest")]
    Manifest(#[source] serde_json::Error),
    /// A blob the manifest references is not there.
    #[error("blob {digest} referenced by the manifest is missing")]
    MissingBlob {
        /// The referenced digest.
        digest: String,
    },
    /// A blob's size differs from its descriptor's.
    #[error("blob {digest} has {actual} bytes, its descriptor says {expected}")]
    SizeMismatch {
        /// The blob's digest.
        digest: String,
        /// Size in the descriptor.
        expected: i64,
        /// Size of the bytes.
        actual: usize,
    },
    /// A variant name other than `compat` or `wasm`.
    #[error("unknown image variant {0:?} (expected compat or wasm)")]
    UnknownVariant(String),
}

/// An image: the manifest exactly as pushed or stored, and every blob it references by digest.
#[derive(Debug, Clone)]
pub struct Image {
    manifest: Vec<u8>,
    parsed: OciImageManifest,
    blobs: BTreeMap<String, Vec<u8>>,
}

/// `sha256:<hex>` of `bytes`, the OCI digest form (image-spec `descriptor.md`, "Digests").
pub(crate) fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

fn descriptor(media_type: &str, bytes: &[u8], title: Option<&str>) -> OciDescriptor {
    OciDescriptor {
        media_type: media_type.to_owned(),
        digest: digest_of(bytes),
        size: i64::try_from(bytes.len()).unwrap_or(i64::MAX),
        annotations: title.map(|t| BTreeMap::from([(TITLE_ANNOTATION.to_owned(), t.to_owned())])),
        ..OciDescriptor::default()
    }
}

/// OCI image configuration of the compat variant (image-spec `config.md`): the required
/// `architecture`, `os` and `rootfs`, nothing time- or host-dependent.
#[derive(Serialize)]
struct ImageConfig {
    architecture: &'static str,
    os: &'static str,
    rootfs: RootFs,
}

#[derive(Serialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: &'static str,
    /// Digests of the uncompressed layers.
    diff_ids: Vec<String>,
}

/// Runtime configuration of the wasm variant (solo-io `spec.md`, "Envoy WASM Filter
/// Specification"; field names as in its example and in Istio's fetcher tests).
#[derive(Serialize)]
struct RuntimeConfig<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    abi_version: String,
    config: EnvoyConfig<'a>,
}

#[derive(Serialize)]
struct EnvoyConfig<'a> {
    root_ids: &'a [String],
}

/// A gzip'd tar holding `plugin.wasm`, with nothing that varies between runs or machines:
/// mtime 0, uid/gid 0, no user or group names, mode 0644; gzip header without name or mtime
/// and with the "unknown" OS byte.
fn compat_layer(module: &[u8]) -> Result<(Vec<u8>, Vec<u8>), std::io::Error> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(module.len() as u64);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, PLUGIN_FILE, module)?;
    let tar = tar.into_inner()?;
    let mut gz = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::best());
    gz.write_all(&tar)?;
    let gzipped = gz.finish()?;
    Ok((tar, gzipped))
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, ImageError> {
    serde_json::to_vec(value).map_err(ImageError::Manifest)
}

impl Image {
    /// Packages a proxy-wasm module as `variant`. `root_ids` go into the wasm variant's runtime
    /// configuration (Envoy root context ids the module registers); compat ignores them.
    ///
    /// # Errors
    /// [`ImageError::Module`] if the bytes are not a proxy-wasm module.
    pub fn from_module(
        module: &[u8],
        variant: Variant,
        root_ids: &[String],
    ) -> Result<Self, ImageError> {
        let checked = ProxyWasmModule::parse(module).map_err(ImageError::Module)?;
        let mut annotations = None;
        let (config, layers) = match variant {
            Variant::Compat => {
                let (tar, layer) = compat_layer(module).map_err(ImageError::Archive)?;
                let config = to_json(&ImageConfig {
                    architecture: "wasm",
                    os: "wasip1",
                    rootfs: RootFs {
                        kind: "layers",
                        diff_ids: vec![digest_of(&tar)],
                    },
                })?;
                annotations = Some(BTreeMap::from([(
                    VARIANT_ANNOTATION.to_owned(),
                    "compat".to_owned(),
                )]));
                (
                    (media_type::OCI_CONFIG, config, None),
                    vec![(media_type::OCI_LAYER_GZIP, layer, None)],
                )
            }
            Variant::Wasm => {
                let config = to_json(&RuntimeConfig {
                    kind: "envoy_proxy",
                    abi_version: checked.abi_version(),
                    config: EnvoyConfig { root_ids },
                })?;
                // Istio's fetcher wants exactly two layers, one of them the module; the spec's
                // example lists the runtime config first. The same blob is the manifest config.
                (
                    (media_type::WASM_CONFIG, config.clone(), None),
                    vec![
                        (media_type::WASM_CONFIG, config, Some("runtime-config.json")),
                        (media_type::WASM_CONTENT, module.to_vec(), Some(PLUGIN_FILE)),
                    ],
                )
            }
        };
        let manifest = OciImageManifest {
            schema_version: 2,
            media_type: Some(media_type::OCI_MANIFEST.to_owned()),
            config: descriptor(config.0, &config.1, config.2),
            layers: layers
                .iter()
                .map(|(media_type, bytes, title)| descriptor(media_type, bytes, *title))
                .collect(),
            annotations,
            ..OciImageManifest::default()
        };
        let blobs = std::iter::once(config.1)
            .chain(layers.into_iter().map(|(_, bytes, _)| bytes))
            .collect::<Vec<_>>();
        Self::from_parts(to_json(&manifest)?, blobs)
    }

    /// Packages a module as a Kubewarden policy artefact, as `kwctl push` does: an OCI manifest
    /// with the config `{}` (media type [`media_type::KUBEWARDEN_CONFIG`]), the module as its one
    /// layer ([`media_type::KUBEWARDEN_LAYER`]) and `annotations` on the manifest. As kwctl does,
    /// `io.kubewarden.policy.source` is copied to `org.opencontainers.image.source` unless that
    /// is already given. Leaving out multi-line annotations, as kwctl does, is the caller's job.
    ///
    /// # Errors
    /// [`ImageError::Module`] with [`ModuleError::NotWasm`] if the bytes do not start with the
    /// wasm magic.
    pub fn kubewarden(
        module: &[u8],
        mut annotations: BTreeMap<String, String>,
    ) -> Result<Self, ImageError> {
        if !module.starts_with(WASM_MAGIC) {
            return Err(ImageError::Module(ModuleError::NotWasm));
        }
        if let Some(source) = annotations.get(KUBEWARDEN_SOURCE_ANNOTATION).cloned() {
            annotations
                .entry(SOURCE_ANNOTATION.to_owned())
                .or_insert(source);
        }
        let manifest = OciImageManifest {
            schema_version: 2,
            media_type: Some(media_type::OCI_MANIFEST.to_owned()),
            config: descriptor(media_type::KUBEWARDEN_CONFIG, KUBEWARDEN_CONFIG_BODY, None),
            layers: vec![descriptor(media_type::KUBEWARDEN_LAYER, module, None)],
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..OciImageManifest::default()
        };
        Self::from_parts(
            to_json(&manifest)?,
            [KUBEWARDEN_CONFIG_BODY.to_vec(), module.to_vec()],
        )
    }

    /// Assembles an image from manifest bytes and blobs (from a layout, a registry or a test),
    /// keeping the blobs the manifest references and checking their sizes.
    ///
    /// # Errors
    /// [`ImageError::Manifest`] if the manifest does not parse, [`ImageError::MissingBlob`] or
    /// [`ImageError::SizeMismatch`] if a referenced blob is absent or of the wrong size.
    pub fn from_parts(
        manifest: Vec<u8>,
        blobs: impl IntoIterator<Item = Vec<u8>>,
    ) -> Result<Self, ImageError> {
        let parsed: OciImageManifest =
            serde_json::from_slice(&manifest).map_err(ImageError::Manifest)?;
        let mut available: BTreeMap<String, Vec<u8>> = blobs
            .into_iter()
            .map(|bytes| (digest_of(&bytes), bytes))
            .collect();
        let mut kept = BTreeMap::new();
        for desc in std::iter::once(&parsed.config).chain(&parsed.layers) {
            if kept.contains_key(&desc.digest) {
                // Referenced twice (the wasm variant's config is also its first layer).
                continue;
            }
            let Some(bytes) = available.remove(&desc.digest) else {
                return Err(ImageError::MissingBlob {
                    digest: desc.digest.clone(),
                });
            };
            if i64::try_from(bytes.len()).ok() != Some(desc.size) {
                return Err(ImageError::SizeMismatch {
                    digest: desc.digest.clone(),
                    expected: desc.size,
                    actual: bytes.len(),
                });
            }
            kept.insert(desc.digest.clone(), bytes);
        }
        Ok(Self {
            manifest,
            parsed,
            blobs: kept,
        })
    }

    /// The manifest bytes, exactly as stored and pushed.
    #[must_use]
    pub fn manifest(&self) -> &[u8] {
        &self.manifest
    }

    /// The parsed manifest.
    #[must_use]
    pub fn parsed(&self) -> &OciImageManifest {
        &self.parsed
    }

    /// The manifest's media type (the OCI one when the manifest does not say).
    #[must_use]
    pub fn media_type(&self) -> &str {
        self.parsed
            .media_type
            .as_deref()
            .unwrap_or(media_type::OCI_MANIFEST)
    }

    /// The manifest digest, `sha256:<hex>`: what a WasmPlugin's `sha256` is for an oci url
    /// (without the `sha256:` prefix).
    #[must_use]
    pub fn digest(&self) -> String {
        digest_of(&self.manifest)
    }

    /// The blob with this digest, if the manifest references it.
    #[must_use]
    pub fn blob(&self, digest: &str) -> Option<&[u8]> {
        self.blobs.get(digest).map(Vec::as_slice)
    }

    /// Every referenced blob, by digest, each once.
    pub fn blobs(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.blobs.iter().map(|(d, b)| (d.as_str(), b.as_slice()))
    }

    /// The module: the layer of a Kubewarden artefact, else found the way Istio's agent finds it
    /// (proxy-wasm.md 2.3).
    ///
    /// # Errors
    /// [`ExtractError`] if no layout Istio accepts, nor Kubewarden's, yields a wasm module.
    pub fn module(&self) -> Result<Extracted, ExtractError> {
        extract::extract(&self.parsed, |desc| {
            self.blob(&desc.digest)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| ExtractError::MissingBlob(desc.digest.clone()))
        })
    }
}

#[cfg(test)]
mod tests;
