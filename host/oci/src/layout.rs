//! OCI image layouts (image-spec `image-layout.md`): a directory, or a tar of it, holding
//! `oci-layout`, `index.json` and `blobs/sha256/<hex>`. One layout holds several images, each
//! named by its `org.opencontainers.image.ref.name` annotation in `index.json` (we use the
//! variant names, `compat` and `wasm`). Written reproducibly: same images, same bytes.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use oci_client::manifest::{ImageIndexEntry, OciImageIndex};
use serde::{Deserialize, Serialize};

use crate::image::{Image, ImageError, digest_of};
use crate::media_type;

/// The annotation naming an image in `index.json` (image-spec `annotations.md`).
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
pub(crate) const LAYOUT_FILE: &str = "oci-layout";
pub(crate) const INDEX_FILE: &str = "index.json";
const BLOBS_DIR: &str = "blobs/sha256";

/// Why a layout could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// A file could not be read or written.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done (`reading`, `writing`, `creating`).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// `oci-layout` or `index.json` is not the JSON the spec defines.
    #[error("{} is not valid", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A descriptor's digest is not `sha256:` and 64 lower-case hex digits, so it names no blob
    /// of the layout (and is never turned into a path: `sha256:../../x` reads nothing).
    #[error("digest {digest:?} is not sha256: followed by 64 lower-case hex digits")]
    Digest {
        /// The digest as written.
        digest: String,
    },
    /// A blob's content does not hash to its file name.
    #[error("blob {digest} does not match its content")]
    Corrupt {
        /// The blob's name.
        digest: String,
    },
    /// An `index.json` entry is not an image manifest (nested indexes are not supported).
    #[error("index entry {digest} has media type {media_type}, not an image manifest")]
    Unsupported {
        /// The entry's digest.
        digest: String,
        /// Its media type.
        media_type: String,
    },
    /// A manifest in the layout does not assemble into an image.
    #[error("image {digest} in the layout")]
    Image {
        /// The manifest digest.
        digest: String,
        /// Why.
        #[source]
        source: ImageError,
    },
}

/// An image of a layout and its name, if `index.json` gives one.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The `org.opencontainers.image.ref.name` annotation.
    pub name: Option<String>,
    /// The image.
    pub image: Image,
}

/// `oci-layout` (image-spec `image-layout.md`, "oci-layout file").
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayoutMarker {
    image_layout_version: String,
}

/// Every file of the layout by relative path, in the order they are written. Blob paths are
/// sorted by digest, so the order depends only on the images.
fn files(images: &[(&str, &Image)]) -> Result<Vec<(String, Vec<u8>)>, serde_json::Error> {
    let mut blobs = BTreeMap::new();
    let mut manifests = Vec::new();
    for (name, image) in images {
        blobs.insert(image.digest(), image.manifest().to_vec());
        for (digest, bytes) in image.blobs() {
            blobs.insert(digest.to_owned(), bytes.to_vec());
        }
        manifests.push(ImageIndexEntry {
            media_type: image.media_type().to_owned(),
            digest: image.digest(),
            size: i64::try_from(image.manifest().len()).unwrap_or(i64::MAX),
            platform: None,
            annotations: Some(BTreeMap::from([(
                REF_NAME_ANNOTATION.to_owned(),
                (*name).to_owned(),
            )])),
            artifact_type: None,
        });
    }
    let index = OciImageIndex {
        schema_version: 2,
        media_type: Some(media_type::OCI_INDEX.to_owned()),
        manifests,
        artifact_type: None,
        annotations: None,
    };
    let marker = LayoutMarker {
        image_layout_version: "1.0.0".to_owned(),
    };
    let mut out = vec![
        (LAYOUT_FILE.to_owned(), serde_json::to_vec(&marker)?),
        (INDEX_FILE.to_owned(), serde_json::to_vec(&index)?),
    ];
    for (digest, bytes) in blobs {
        let hex = digest.trim_start_matches("sha256:");
        out.push((format!("{BLOBS_DIR}/{hex}"), bytes));
    }
    Ok(out)
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> LayoutError {
    let path = path.to_path_buf();
    move |source| LayoutError::Io {
        action,
        path,
        source,
    }
}

/// Writes `images` as a layout into `dir` (created if needed), each named by its `&str`.
/// An existing `index.json` is replaced; blobs already there are kept.
///
/// # Errors
/// [`LayoutError::Io`] if a file cannot be written.
pub fn write_dir(dir: &Path, images: &[(&str, &Image)]) -> Result<(), LayoutError> {
    let files = files(images).map_err(|source| LayoutError::Json {
        path: dir.join(INDEX_FILE),
        source,
    })?;
    let blobs = dir.join(BLOBS_DIR);
    std::fs::create_dir_all(&blobs).map_err(io_error("creating", &blobs))?;
    for (relative, bytes) in files {
        let path = dir.join(&relative);
        std::fs::write(&path, bytes).map_err(io_error("writing", &path))?;
    }
    Ok(())
}

/// The layout of `images` as an uncompressed tar (what `skopeo copy oci-archive:` and
/// `docker load`-style tools read), with fixed metadata: mtime 0, uid/gid 0, modes 0644/0755.
///
/// # Errors
/// [`LayoutError::Json`] only if serialization fails, which it does not for these types.
pub fn to_tar(images: &[(&str, &Image)]) -> Result<Vec<u8>, LayoutError> {
    let files = files(images).map_err(|source| LayoutError::Json {
        path: PathBuf::from(INDEX_FILE),
        source,
    })?;
    let tar_error = io_error("archiving", Path::new("layout tar"));
    let mut tar = tar::Builder::new(Vec::new());
    let mut append = |path: &str, bytes: &[u8], kind: tar::EntryType, mode: u32| {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_size(bytes.len() as u64);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        tar.append_data(&mut header, path, bytes)
    };
    let result = (|| {
        append("blobs/", &[], tar::EntryType::Directory, 0o755)?;
        append(
            &format!("{BLOBS_DIR}/"),
            &[],
            tar::EntryType::Directory,
            0o755,
        )?;
        for (path, bytes) in &files {
            append(path, bytes, tar::EntryType::Regular, 0o644)?;
        }
        Ok(())
    })();
    result.map_err(tar_error)?;
    tar.into_inner()
        .map_err(io_error("archiving", Path::new("layout tar")))
}

/// Writes [`to_tar`] of `images` to `path`.
///
/// # Errors
/// [`LayoutError::Io`] if the file cannot be written.
pub fn write_tar(path: &Path, images: &[(&str, &Image)]) -> Result<(), LayoutError> {
    let bytes = to_tar(images)?;
    std::fs::write(path, bytes).map_err(io_error("writing", path))
}

/// Reads every image of the layout directory `dir`, in `index.json` order, checking each blob
/// against its digest.
///
/// # Errors
/// [`LayoutError`] naming the file or blob at fault.
pub fn read_dir(dir: &Path) -> Result<Vec<Entry>, LayoutError> {
    read_with(dir, |relative| {
        let path = dir.join(relative);
        std::fs::read(&path).map_err(io_error("reading", &path))
    })
}

/// Reads every image of a layout tar (as [`to_tar`] writes it, or any tar of a layout).
///
/// # Errors
/// [`LayoutError`] naming the entry or blob at fault.
pub fn read_tar(bytes: &[u8]) -> Result<Vec<Entry>, LayoutError> {
    let mut files = BTreeMap::new();
    let tar_error = || io_error("reading", Path::new("layout tar"));
    let mut archive = tar::Archive::new(bytes);
    for entry in archive.entries().map_err(tar_error())? {
        let mut entry = entry.map_err(tar_error())?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = entry.path().map_err(tar_error())?;
        let path = path.to_string_lossy().trim_start_matches("./").to_owned();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).map_err(tar_error())?;
        files.insert(path, content);
    }
    read_with(Path::new(""), |relative| {
        files.remove(relative).ok_or_else(|| LayoutError::Io {
            action: "reading",
            path: PathBuf::from(relative),
            source: std::io::ErrorKind::NotFound.into(),
        })
    })
}

/// The path of the blob `digest` relative to the layout's root, `blobs/sha256/<hex>`.
///
/// # Errors
/// [`LayoutError::Digest`] unless the digest is `sha256:` and 64 lower-case hex digits, so that
/// no digest ever names a path outside `blobs/sha256`.
pub(crate) fn blob_path(digest: &str) -> Result<String, LayoutError> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|hex| {
            hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
        .ok_or_else(|| LayoutError::Digest {
            digest: digest.to_owned(),
        })?;
    Ok(format!("{BLOBS_DIR}/{hex}"))
}

/// Checks the `oci-layout` marker and parses `index.json` of the layout at `root`, each read
/// by `read` from its path relative to `root`.
pub(crate) fn read_index(
    root: &Path,
    mut read: impl FnMut(&str) -> Result<Vec<u8>, LayoutError>,
) -> Result<OciImageIndex, LayoutError> {
    let json = |relative: &str| {
        let path = root.join(relative);
        move |source| LayoutError::Json { path, source }
    };
    let marker = read(LAYOUT_FILE)?;
    serde_json::from_slice::<LayoutMarker>(&marker).map_err(json(LAYOUT_FILE))?;
    let index_bytes = read(INDEX_FILE)?;
    serde_json::from_slice(&index_bytes).map_err(json(INDEX_FILE))
}

fn read_with(
    root: &Path,
    mut read: impl FnMut(&str) -> Result<Vec<u8>, LayoutError>,
) -> Result<Vec<Entry>, LayoutError> {
    let index = read_index(root, &mut read)?;
    let mut cache: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut blob = |digest: &str| -> Result<Vec<u8>, LayoutError> {
        if let Some(bytes) = cache.get(digest) {
            return Ok(bytes.clone());
        }
        let bytes = read(&blob_path(digest)?)?;
        if digest_of(&bytes) != digest {
            return Err(LayoutError::Corrupt {
                digest: digest.to_owned(),
            });
        }
        cache.insert(digest.to_owned(), bytes.clone());
        Ok(bytes)
    };
    let mut entries = Vec::new();
    for entry in index.manifests {
        if entry.media_type != media_type::OCI_MANIFEST
            && entry.media_type != media_type::DOCKER_MANIFEST
        {
            return Err(LayoutError::Unsupported {
                digest: entry.digest,
                media_type: entry.media_type,
            });
        }
        let manifest = blob(&entry.digest)?;
        let image_error = |source| LayoutError::Image {
            digest: entry.digest.clone(),
            source,
        };
        let parsed: oci_client::manifest::OciImageManifest =
            serde_json::from_slice(&manifest).map_err(|e| image_error(ImageError::Manifest(e)))?;
        let mut blobs = Vec::new();
        for desc in std::iter::once(&parsed.config).chain(&parsed.layers) {
            blobs.push(blob(&desc.digest)?);
        }
        let image = Image::from_parts(manifest, blobs).map_err(image_error)?;
        let name = entry
            .annotations
            .and_then(|mut a| a.remove(REF_NAME_ANNOTATION));
        entries.push(Entry { name, image });
    }
    Ok(entries)
}
