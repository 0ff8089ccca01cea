//! A read-only source of image data for host capabilities (Kubewarden's `oci/v1/manifest_digest`,
//! `oci/v1/oci_manifest`, `oci/v1/oci_manifest_config`): manifests, digests and blobs from a
//! registry or, offline, from an image layout directory; every fetch size-capped and checked
//! against its digest, answers cached in memory. Never writes to a registry or a layout.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::StreamExt as _;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::OciImageIndex;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, ParseError, Reference};
use serde::Deserialize;

use crate::extract::{self, Extracted};
use crate::image::digest_of;
use crate::layout::{self, LayoutError, REF_NAME_ANNOTATION};
use crate::media_type;
use crate::registry::{Credentials, RegistryOptions, install_crypto_provider};

/// Distribution's cap on a manifest body (`registry/handlers/manifests.go`, `maxManifestBodySize`).
const DEFAULT_MANIFEST_BYTES: u64 = 4 << 20;
/// Enough for any image config; modules are not fetched through the store.
const DEFAULT_BLOB_BYTES: u64 = 16 << 20;
const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(5 * 60);
const DEFAULT_CACHE_BYTES: u64 = 64 << 20;

/// The manifest media types asked of a registry: both image manifests and both indexes.
const MANIFEST_TYPES: [&str; 4] = [
    media_type::OCI_MANIFEST,
    media_type::DOCKER_MANIFEST,
    media_type::OCI_INDEX,
    media_type::DOCKER_MANIFEST_LIST,
];

/// A manifest as served: an image manifest or an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// `sha256:<hex>` of [`Manifest::bytes`].
    pub digest: String,
    /// Its `mediaType` field; when absent, the OCI index type if it lists `manifests`, else the
    /// OCI image manifest type.
    pub media_type: String,
    /// The bytes exactly as served.
    pub bytes: Vec<u8>,
}

impl Manifest {
    /// Whether it is an index (OCI image index or Docker manifest list).
    #[must_use]
    pub fn is_index(&self) -> bool {
        self.media_type == media_type::OCI_INDEX
            || self.media_type == media_type::DOCKER_MANIFEST_LIST
    }
}

/// A manifest that refers to another (its `subject`): a signature, an attestation, an SBOM, as
/// the referrers API (or its tag-schema fallback) lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrer {
    /// The referring manifest's digest.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Its artifact type (or its config's media type), when listed.
    pub artifact_type: Option<String>,
    /// Its annotations, when listed.
    pub annotations: BTreeMap<String, String>,
}

/// Referrers of one manifest read at most (a registry could list any number).
pub const MAX_REFERRERS: usize = 256;

/// A policy module pulled through the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledModule {
    /// The digest of the image manifest it came from, `sha256:<hex>` (the pin to show).
    pub digest: String,
    /// The module and where it was found.
    pub extracted: Extracted,
}

/// The most the store reads of one response; a response over a limit is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// A manifest or index (default 4 MiB, distribution's own cap).
    pub manifest_bytes: u64,
    /// A blob, such as an image config (default 16 MiB).
    pub blob_bytes: u64,
}

impl Default for StoreLimits {
    fn default() -> Self {
        Self {
            manifest_bytes: DEFAULT_MANIFEST_BYTES,
            blob_bytes: DEFAULT_BLOB_BYTES,
        }
    }
}

/// How an [`ImageStore`] reaches images and what it keeps.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// A Docker `config.json` to take registry credentials from (`auths.<registry>.auth`, or its
    /// `username` and `password`); anonymous everywhere when `None`. `credsStore` and
    /// `credHelpers` are not run: a registry whose secret only they hold is pulled anonymously.
    pub docker_config: Option<PathBuf>,
    /// Registries spoken to over plain HTTP, as `host[:port]` (`127.0.0.1:5000`); all others
    /// over HTTPS.
    pub insecure_registries: Vec<String>,
    /// Size limits on every fetch.
    pub limits: StoreLimits,
    /// How long an answer found by tag (a manifest or a digest) is reused (default 5 min).
    /// Zero disables that cache.
    pub cache_ttl: Duration,
    /// Bound on the cached bytes, all entries together (default 64 MiB); the oldest are dropped
    /// first. Manifests and blobs fetched by digest never go stale and stay until dropped. Zero
    /// disables the cache.
    pub cache_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            docker_config: None,
            insecure_registries: Vec::new(),
            limits: StoreLimits::default(),
            cache_ttl: DEFAULT_CACHE_TTL,
            cache_bytes: DEFAULT_CACHE_BYTES,
        }
    }
}

/// Why the store could not answer; each names the reference and the step.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The image holds no module in a layout Kubewarden or Istio reads.
    #[error("no policy module in {reference}")]
    Module {
        /// The image reference.
        reference: String,
        /// The reason each layout did not fit.
        #[source]
        source: extract::ExtractError,
    },
    /// The reference is not `registry/repository[:tag][@digest]`.
    #[error("invalid image reference {reference:?}")]
    Reference {
        /// The reference as given.
        reference: String,
        /// The parse error.
        #[source]
        source: ParseError,
    },
    /// A digest in the request is not a sha256 digest (the only algorithm the store checks).
    #[error("unusable digest in the request for {reference}")]
    Digest {
        /// The reference.
        reference: String,
        /// What is wrong with the digest.
        #[source]
        source: LayoutError,
    },
    /// The Docker config file cannot be read.
    #[error("reading the Docker config {}", path.display())]
    DockerConfigRead {
        /// The file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// The Docker config file is not the JSON Docker writes.
    #[error("{} is not a Docker config file", path.display())]
    DockerConfigJson {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// An `auth` field is not base64 of `user:password`.
    #[error("auths.{registry:?}.auth in {} is not base64 of user:password", path.display())]
    DockerAuth {
        /// The file.
        path: PathBuf,
        /// The key under `auths`.
        registry: String,
    },
    /// The HTTP client could not be set up.
    #[error("setting up the registry client")]
    Setup(#[source] OciDistributionError),
    /// The directory is not an image layout.
    #[error("opening the image layout {}", dir.display())]
    Layout {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: LayoutError,
    },
    /// A distribution API call failed.
    #[error("{action} {reference}")]
    Api {
        /// What was being done, e.g. `pulling the manifest of`.
        action: String,
        /// The reference.
        reference: String,
        /// What the client or the registry said.
        #[source]
        source: OciDistributionError,
    },
    /// A file of the layout could not be read.
    #[error("reading the {what} of {reference} from {}", path.display())]
    Read {
        /// What was being read (`manifest`, `blob sha256:..`, `index.json`).
        what: String,
        /// The reference.
        reference: String,
        /// The file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// A response, or its announced size, is over its limit.
    #[error("{what} of {reference} is {size} bytes, more than the {limit}-byte limit")]
    TooLarge {
        /// What was fetched.
        what: String,
        /// The reference.
        reference: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A response of unannounced size went past its limit; reading stopped there.
    #[error("{what} of {reference} is more than the {limit}-byte limit")]
    OverLimit {
        /// What was fetched.
        what: String,
        /// The reference.
        reference: String,
        /// The limit.
        limit: u64,
    },
    /// The bytes do not hash to the digest asked for.
    #[error("{what} of {reference} has digest {actual}, not the {expected} asked for")]
    DigestMismatch {
        /// What was fetched.
        what: String,
        /// The reference.
        reference: String,
        /// The digest asked for.
        expected: String,
        /// The digest of the bytes.
        actual: String,
    },
    /// A manifest or index is not JSON of the expected shape.
    #[error("the {what} of {reference} is not valid")]
    Json {
        /// What was parsed.
        what: String,
        /// The reference.
        reference: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// No index entry is for this machine's platform.
    #[error(
        "no {wanted} entry in the index of {reference} (it has {})",
        listing(available)
    )]
    Platform {
        /// The reference.
        reference: String,
        /// The platform looked for, `linux/amd64`.
        wanted: String,
        /// The platforms the index lists.
        available: Vec<String>,
    },
    /// The entry chosen for this platform is an index again.
    #[error("the {platform} entry {digest} of the index of {reference} is itself an index")]
    NestedIndex {
        /// The reference.
        reference: String,
        /// The platform.
        platform: String,
        /// The entry's digest.
        digest: String,
    },
    /// No `index.json` entry of the layout has this name.
    #[error("{reference} is not in the layout {} (it has {})", dir.display(), listing(available))]
    NotInLayout {
        /// The reference.
        reference: String,
        /// The layout.
        dir: PathBuf,
        /// The names (or, unnamed, the digests) of its entries.
        available: Vec<String>,
    },
    /// The layout lacks a blob.
    #[error("{what} of {reference} is not in the layout {}", dir.display())]
    MissingBlob {
        /// What was looked for.
        what: String,
        /// The reference.
        reference: String,
        /// The layout.
        dir: PathBuf,
    },
}

impl StoreError {
    /// Whether the answer is that the manifest does not exist (a registry's 404 or
    /// `MANIFEST_UNKNOWN`, a name the layout does not hold): an unsigned image's signature tag,
    /// say, rather than a failure.
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        match self {
            Self::NotInLayout { .. } => true,
            Self::Api { source, .. } => match source {
                OciDistributionError::ImageManifestNotFoundError(_) => true,
                OciDistributionError::ServerError { code, .. } => *code == 404,
                OciDistributionError::RegistryError { envelope, .. } => {
                    envelope.errors.iter().any(|e| {
                        matches!(
                            e.code,
                            oci_client::errors::OciErrorCode::ManifestUnknown
                                | oci_client::errors::OciErrorCode::NotFound
                        )
                    })
                }
                _ => false,
            },
            _ => false,
        }
    }
}

fn listing(items: &[String]) -> String {
    if items.is_empty() {
        "nothing".to_owned()
    } else {
        items.join(", ")
    }
}

/// Manifests, digests and blobs of images, from a registry or an image layout directory, with
/// size limits and an in-memory cache. Safe to share between tasks: every method takes `&self`.
pub struct ImageStore {
    source: Source,
    limits: StoreLimits,
    cache: Cache,
    platform: Platform,
    /// Calls to the registry or reads of the layout, for tests to tell hits from misses.
    fetches: AtomicU64,
}

impl fmt::Debug for ImageStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            Source::Registry(_) => "registry".to_owned(),
            Source::Layout(layout) => format!("layout {}", layout.dir.display()),
        };
        f.debug_struct("ImageStore")
            .field("source", &source)
            .field("limits", &self.limits)
            .field("platform", &self.platform.to_string())
            .finish_non_exhaustive()
    }
}

enum Source {
    Registry(RegistrySource),
    Layout(LayoutSource),
}

impl ImageStore {
    /// A store reading from registries, over HTTPS except for `options.insecure_registries`,
    /// with credentials from `options.docker_config`.
    ///
    /// # Errors
    /// [`StoreError::DockerConfigRead`], [`StoreError::DockerConfigJson`] or
    /// [`StoreError::DockerAuth`] if the Docker config is unusable, [`StoreError::Setup`] if
    /// the HTTP client cannot be built.
    pub fn registry(options: StoreOptions) -> Result<Self, StoreError> {
        let credentials = match &options.docker_config {
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|source| StoreError::DockerConfigRead {
                    path: path.clone(),
                    source,
                })?;
                docker_credentials(path, &bytes)?
            }
            None => BTreeMap::new(),
        };
        let cache = Cache::new(options.cache_ttl, options.cache_bytes);
        install_crypto_provider();
        let options_insecure = options.insecure_registries.clone();
        let config = ClientConfig {
            protocol: if options.insecure_registries.is_empty() {
                ClientProtocol::Https
            } else {
                ClientProtocol::HttpsExcept(options.insecure_registries)
            },
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            ..ClientConfig::default()
        };
        let client = Client::try_from(config).map_err(StoreError::Setup)?;
        Ok(Self::with_source(
            Source::Registry(RegistrySource {
                client,
                credentials,
                insecure: options_insecure,
            }),
            options.limits,
            cache,
        ))
    }

    /// A store reading the image layout directory `dir` only, never the network.
    ///
    /// A reference names an `index.json` entry by its `org.opencontainers.image.ref.name`
    /// annotation, tried in this order: the annotation equals the reference as given (so a bare
    /// word such as `v1` is a tag); the annotation is a full reference naming the same image
    /// (`nginx:1` and `docker.io/library/nginx:1` are the same); the annotation is a bare tag
    /// equal to the reference's tag (`127.0.0.1:5000/app:v1` finds `v1`). A reference that pins
    /// a digest (`anything@sha256:<hex>`, or just `sha256:<hex>`) is read from
    /// `blobs/sha256/<hex>`, listed in `index.json` or not; its repository is not checked.
    /// `index.json` is read again on each uncached request, so the layout may be updated in place.
    ///
    /// # Errors
    /// [`StoreError::Layout`] if `dir` has no readable `oci-layout` and `index.json`.
    #[expect(
        clippy::needless_pass_by_value,
        reason = "taken as `registry` takes them; offline, the registry fields go unused"
    )]
    pub fn layout(dir: &Path, options: StoreOptions) -> Result<Self, StoreError> {
        layout::read_index(dir, |relative| {
            let path = dir.join(relative);
            std::fs::read(&path).map_err(|source| LayoutError::Io {
                action: "reading",
                path,
                source,
            })
        })
        .map_err(|source| StoreError::Layout {
            dir: dir.to_path_buf(),
            source,
        })?;
        Ok(Self::with_source(
            Source::Layout(LayoutSource {
                dir: dir.to_path_buf(),
            }),
            options.limits,
            Cache::new(options.cache_ttl, options.cache_bytes),
        ))
    }

    fn with_source(source: Source, limits: StoreLimits, cache: Cache) -> Self {
        Self {
            source,
            limits,
            cache,
            platform: Platform::host(),
            fetches: AtomicU64::new(0),
        }
    }

    /// The manifest `reference` names, as served: an image manifest or an index. A reference
    /// that pins a digest gets bytes of that digest or an error.
    ///
    /// # Errors
    /// [`StoreError`] naming the reference and the step that failed.
    pub async fn manifest(&self, reference: &str) -> Result<Manifest, StoreError> {
        let target = self.target(reference)?;
        self.manifest_of(&target).await
    }

    /// The image manifest `reference` names: an index is resolved to its entry for `linux` and
    /// this machine's architecture (an entry with the same CPU variant first, else one without
    /// a variant), fetched by digest.
    ///
    /// # Errors
    /// [`StoreError::Platform`] naming the platforms the index has when none fits,
    /// [`StoreError::NestedIndex`] if the entry is an index itself, or any error of
    /// [`ImageStore::manifest`].
    pub async fn image_manifest(&self, reference: &str) -> Result<Manifest, StoreError> {
        let target = self.target(reference)?;
        let top = self.manifest_of(&target).await?;
        if !top.is_index() {
            return Ok(top);
        }
        let index: Index =
            serde_json::from_slice(&top.bytes).map_err(|source| StoreError::Json {
                what: "index".to_owned(),
                reference: target.name.clone(),
                source,
            })?;
        let entry = self
            .platform
            .select(&index.manifests)
            .ok_or_else(|| StoreError::Platform {
                reference: target.name.clone(),
                wanted: self.platform.to_string(),
                available: index.manifests.iter().map(IndexEntry::describe).collect(),
            })?;
        if let Some(size) = entry.size
            && size > self.limits.manifest_bytes
        {
            return Err(StoreError::TooLarge {
                what: format!("{} manifest", self.platform),
                reference: target.name.clone(),
                size,
                limit: self.limits.manifest_bytes,
            });
        }
        let child = target.pinned_to(&entry.digest)?;
        let manifest = self.manifest_of(&child).await?;
        if manifest.is_index() {
            return Err(StoreError::NestedIndex {
                reference: target.name,
                platform: self.platform.to_string(),
                digest: entry.digest.clone(),
            });
        }
        Ok(manifest)
    }

    /// The manifest digest `reference` resolves to (a registry is asked with `HEAD`).
    ///
    /// # Errors
    /// [`StoreError`] naming the reference and the step that failed.
    pub async fn digest(&self, reference: &str) -> Result<String, StoreError> {
        let target = self.target(reference)?;
        if let Some(digest) = self.cache.digest(&target) {
            return Ok(digest);
        }
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let digest = match &self.source {
            Source::Registry(registry) => registry.digest(&target).await?,
            Source::Layout(layout) => layout.digest(&target, self.limits)?,
        };
        if let Some(pinned) = &target.pinned
            && *pinned != digest
        {
            return Err(StoreError::DigestMismatch {
                what: "manifest".to_owned(),
                reference: target.name,
                expected: pinned.clone(),
                actual: digest,
            });
        }
        self.cache.put(
            Key::Digest(target.name),
            Value::Digest(digest.clone()),
            true,
        );
        Ok(digest)
    }

    /// How to push to `reference`'s registry as this store reads it: over plain HTTP if it is
    /// one of the insecure registries, with the Docker config's credentials for its host; `None`
    /// for a layout store.
    ///
    /// # Errors
    /// [`StoreError::Reference`] if `reference` does not parse.
    pub fn push_options(&self, reference: &str) -> Result<Option<RegistryOptions>, StoreError> {
        let Source::Registry(registry) = &self.source else {
            return Ok(None);
        };
        let target = Target::registry(reference)?;
        let parsed = RegistrySource::reference(&target)?;
        let host = parsed.resolve_registry().to_owned();
        Ok(Some(RegistryOptions {
            plain_http: registry.insecure.contains(&host),
            credentials: registry
                .credentials
                .get(&registry_host(parsed.registry()))
                .cloned(),
        }))
    }

    /// The manifests that refer to the manifest `digest` of `reference`'s repository (OCI 1.1
    /// referrers: the registry's referrers API, else its `sha256-<hex>` tag-schema index; in a
    /// layout, the manifests its `index.json` lists whose `subject` is `digest`). At most
    /// [`MAX_REFERRERS`] are returned; the listing is not cached.
    ///
    /// # Errors
    /// [`StoreError`] naming the reference and the step that failed.
    pub async fn referrers(
        &self,
        reference: &str,
        digest: &str,
    ) -> Result<Vec<Referrer>, StoreError> {
        let target = self.target(reference)?.pinned_to(digest)?;
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let mut referrers = match &self.source {
            Source::Registry(registry) => registry.referrers(&target).await?,
            Source::Layout(layout) => layout.referrers(&target, digest, self.limits)?,
        };
        referrers.truncate(MAX_REFERRERS);
        Ok(referrers)
    }

    /// The blob `digest` of the repository `reference` names (its tag or digest play no part),
    /// checked against the digest.
    ///
    /// # Errors
    /// [`StoreError::Digest`] if `digest` is not a sha256 digest, or another [`StoreError`]
    /// naming the reference and the step that failed.
    pub async fn blob(&self, reference: &str, digest: &str) -> Result<Vec<u8>, StoreError> {
        let target = self.target(reference)?;
        self.blob_of(target, digest, self.limits.blob_bytes, true)
            .await
    }

    /// The policy module of the image `reference` names (an index resolved as by
    /// [`image_manifest`](Self::image_manifest)), found as Kubewarden and Istio find theirs: a
    /// Kubewarden artefact's wasm layer, else Istio's three layouts. The layer may be as large
    /// as a module may be (256 MiB, Istio's cap), not the blob limit; it is not cached.
    ///
    /// # Errors
    /// [`StoreError::Module`] with the reason each layout did not fit, or any error of
    /// [`image_manifest`](Self::image_manifest) and [`blob`](Self::blob).
    pub async fn module(&self, reference: &str) -> Result<PulledModule, StoreError> {
        let manifest = self.image_manifest(reference).await?;
        let target = self.target(reference)?;
        let parsed: oci_client::manifest::OciImageManifest =
            serde_json::from_slice(&manifest.bytes).map_err(|source| StoreError::Json {
                what: "image manifest".to_owned(),
                reference: target.name.clone(),
                source,
            })?;
        let mut reasons = Vec::new();
        for (format, layer) in extract::candidates(&parsed) {
            let layer = match layer {
                Ok(layer) => layer,
                Err(reason) => {
                    reasons.push((format, reason));
                    continue;
                }
            };
            let blob = self
                .blob_of(
                    target.clone(),
                    &layer.digest,
                    extract::MAX_MODULE_SIZE,
                    false,
                )
                .await?;
            match extract::decode(format, blob) {
                Ok(module) => {
                    return Ok(PulledModule {
                        digest: manifest.digest,
                        extracted: Extracted {
                            format,
                            layer_digest: layer.digest,
                            module,
                        },
                    });
                }
                Err(reason) => reasons.push((format, reason)),
            }
        }
        Err(StoreError::Module {
            reference: target.name,
            source: extract::failure(reasons),
        })
    }

    /// A blob of `target`'s repository under `limit`, checked against its digest; kept in the
    /// cache when `cached`.
    async fn blob_of(
        &self,
        target: Target,
        digest: &str,
        limit: u64,
        cached: bool,
    ) -> Result<Vec<u8>, StoreError> {
        check_digest(&target.name, digest)?;
        let key = Key::Content(format!("{}@{digest}", target.scope));
        if let Some(Value::Blob(bytes)) = self.cache.get(&key) {
            return Ok(bytes);
        }
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let bytes = match &self.source {
            Source::Registry(registry) => registry.blob(&target, digest, limit).await?,
            Source::Layout(layout) => layout.blob(&target, digest, limit)?,
        };
        let actual = digest_of(&bytes);
        if actual != digest {
            return Err(StoreError::DigestMismatch {
                what: format!("blob {digest}"),
                reference: target.name,
                expected: digest.to_owned(),
                actual,
            });
        }
        if cached {
            self.cache.put(key, Value::Blob(bytes.clone()), false);
        }
        Ok(bytes)
    }

    /// How many times the store went to its registry or layout (cache misses).
    #[cfg(test)]
    pub(crate) fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    fn target(&self, reference: &str) -> Result<Target, StoreError> {
        match self.source {
            Source::Registry(_) => Target::registry(reference),
            Source::Layout(_) => Target::layout(reference),
        }
    }

    async fn manifest_of(&self, target: &Target) -> Result<Manifest, StoreError> {
        if let Some(manifest) = self.cache.manifest(target) {
            return Ok(manifest);
        }
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let bytes = match &self.source {
            Source::Registry(registry) => {
                registry
                    .manifest(target, self.limits.manifest_bytes)
                    .await?
            }
            Source::Layout(layout) => layout.manifest(target, self.limits)?,
        };
        let digest = digest_of(&bytes);
        if let Some(pinned) = &target.pinned
            && *pinned != digest
        {
            return Err(StoreError::DigestMismatch {
                what: "manifest".to_owned(),
                reference: target.name.clone(),
                expected: pinned.clone(),
                actual: digest,
            });
        }
        let manifest = Manifest {
            media_type: media_type_of(target, &bytes)?,
            digest,
            bytes,
        };
        self.cache.put_manifest(target, &manifest);
        Ok(manifest)
    }
}

/// A digest the store can check and a layout can hold: `sha256:` and 64 lower-case hex digits.
fn check_digest(reference: &str, digest: &str) -> Result<(), StoreError> {
    layout::blob_path(digest)
        .map(drop)
        .map_err(|source| StoreError::Digest {
            reference: reference.to_owned(),
            source,
        })
}

/// The fields of a manifest that tell its kind.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestKind {
    media_type: Option<String>,
    manifests: Option<serde::de::IgnoredAny>,
}

/// The manifest's `mediaType`, or, when it has none (image-spec allows that), what its fields
/// say it is.
fn media_type_of(target: &Target, bytes: &[u8]) -> Result<String, StoreError> {
    let kind: ManifestKind = serde_json::from_slice(bytes).map_err(|source| StoreError::Json {
        what: "manifest".to_owned(),
        reference: target.name.clone(),
        source,
    })?;
    Ok(match (kind.media_type, kind.manifests) {
        (Some(media_type), _) => media_type,
        (None, Some(_)) => media_type::OCI_INDEX.to_owned(),
        (None, None) => media_type::OCI_MANIFEST.to_owned(),
    })
}

// --- references ---------------------------------------------------------------------------------

/// A reference as the store's source reads it.
#[derive(Debug, Clone)]
struct Target {
    /// How errors and the by-reference cache name it (a registry reference in full:
    /// `docker.io/library/nginx:latest`).
    name: String,
    /// What content-addressed cache entries are scoped to: `registry/repository`, so that one
    /// repository's content is never served as another's; empty in a layout.
    scope: String,
    /// The digest the reference pins.
    pinned: Option<String>,
    /// Where to find it.
    locator: Locator,
}

#[derive(Debug, Clone)]
enum Locator {
    Registry(Reference),
    /// The name to look for in `index.json`, unless the reference is only a digest.
    Layout(Option<String>),
}

impl Target {
    fn registry(reference: &str) -> Result<Self, StoreError> {
        let parsed: Reference = reference.parse().map_err(|source| StoreError::Reference {
            reference: reference.to_owned(),
            source,
        })?;
        let name = parsed.whole();
        if let Some(digest) = parsed.digest() {
            check_digest(&name, digest)?;
        }
        Ok(Self {
            scope: format!("{}/{}", parsed.registry(), parsed.repository()),
            pinned: parsed.digest().map(str::to_owned),
            name,
            locator: Locator::Registry(parsed),
        })
    }

    fn layout(reference: &str) -> Result<Self, StoreError> {
        let (name, pinned) = match reference.rsplit_once('@') {
            Some((name, digest)) => (name, Some(digest)),
            None if reference.starts_with("sha256:") => ("", Some(reference)),
            None => (reference, None),
        };
        if let Some(digest) = pinned {
            check_digest(reference, digest)?;
        } else if name.is_empty() {
            return Err(StoreError::Reference {
                reference: reference.to_owned(),
                source: ParseError::NameEmpty,
            });
        }
        Ok(Self {
            name: reference.to_owned(),
            scope: String::new(),
            pinned: pinned.map(str::to_owned),
            locator: Locator::Layout((!name.is_empty()).then(|| name.to_owned())),
        })
    }

    /// The same repository at `digest` (an index entry).
    fn pinned_to(&self, digest: &str) -> Result<Self, StoreError> {
        check_digest(&self.name, digest)?;
        Ok(match &self.locator {
            Locator::Registry(reference) => {
                let pinned = reference.clone_with_digest(digest.to_owned());
                Self {
                    name: pinned.whole(),
                    scope: self.scope.clone(),
                    pinned: Some(digest.to_owned()),
                    locator: Locator::Registry(pinned),
                }
            }
            Locator::Layout(name) => Self {
                name: format!("{}@{digest}", name.as_deref().unwrap_or_default()),
                scope: self.scope.clone(),
                pinned: Some(digest.to_owned()),
                locator: Locator::Layout(name.clone()),
            },
        })
    }
}

// --- platforms ----------------------------------------------------------------------------------

/// An OS, CPU architecture and variant, named as in image indexes (Go's `GOOS`/`GOARCH`,
/// image-spec `image-index.md`, "Platform Variants").
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct Platform {
    os: String,
    architecture: String,
    variant: Option<String>,
}

impl Platform {
    /// `linux` and this machine's architecture.
    fn host() -> Self {
        let little = cfg!(target_endian = "little");
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "x86" => ("386", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" if cfg!(target_feature = "v7") => ("arm", Some("v7")),
            "arm" if cfg!(target_feature = "v6") => ("arm", Some("v6")),
            "powerpc" => ("ppc", None),
            "powerpc64" if little => ("ppc64le", None),
            "mips" if little => ("mipsle", None),
            "mips64" if little => ("mips64le", None),
            "loongarch64" => ("loong64", None),
            "wasm32" => ("wasm", None),
            // riscv64, s390x, sparc64, big-endian ppc64 and mips: the same name in both.
            other => (other, None),
        };
        Self {
            os: "linux".to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.map(str::to_owned),
        }
    }

    /// The entry for this platform: one with the same variant first, else the first whose
    /// variant is unset (or any variant, when this platform has none).
    fn select<'a>(&self, entries: &'a [IndexEntry]) -> Option<&'a IndexEntry> {
        let fits = |entry: &&IndexEntry| {
            entry.platform.as_ref().is_some_and(|p| {
                p.os == self.os
                    && p.architecture == self.architecture
                    && (self.variant.is_none() || p.variant.is_none() || p.variant == self.variant)
            })
        };
        let same_variant = |entry: &&IndexEntry| {
            entry
                .platform
                .as_ref()
                .is_some_and(|p| p.variant == self.variant)
        };
        entries
            .iter()
            .filter(fits)
            .find(same_variant)
            .or_else(|| entries.iter().find(fits))
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// An image index or Docker manifest list, the fields platform selection reads.
#[derive(Deserialize)]
struct Index {
    manifests: Vec<IndexEntry>,
}

#[derive(Deserialize)]
struct IndexEntry {
    digest: String,
    size: Option<u64>,
    platform: Option<Platform>,
}

impl IndexEntry {
    fn describe(&self) -> String {
        self.platform.as_ref().map_or_else(
            || format!("{} (no platform)", self.digest),
            Platform::to_string,
        )
    }
}

// --- registry -----------------------------------------------------------------------------------

struct RegistrySource {
    client: Client,
    /// By registry host as [`registry_host`] writes it.
    credentials: BTreeMap<String, Credentials>,
    /// Registries spoken to over plain HTTP.
    insecure: Vec<String>,
}

fn api(
    action: impl Into<String>,
    target: &Target,
) -> impl FnOnce(OciDistributionError) -> StoreError {
    let action = action.into();
    let reference = target.name.clone();
    move |source| StoreError::Api {
        action,
        reference,
        source,
    }
}

impl RegistrySource {
    fn reference(target: &Target) -> Result<&Reference, StoreError> {
        match &target.locator {
            Locator::Registry(reference) => Ok(reference),
            // Targets are made by the store for its own source.
            Locator::Layout(_) => Err(StoreError::Reference {
                reference: target.name.clone(),
                source: ParseError::ReferenceInvalidFormat,
            }),
        }
    }

    fn auth(&self, reference: &Reference) -> RegistryAuth {
        match self.credentials.get(&registry_host(reference.registry())) {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
            None => RegistryAuth::Anonymous,
        }
    }

    /// The manifest bytes. oci-client reads the whole body before returning it, so the limit is
    /// checked on the bytes (an index entry's size is checked before the fetch by the caller).
    async fn manifest(&self, target: &Target, limit: u64) -> Result<Vec<u8>, StoreError> {
        let reference = Self::reference(target)?;
        let (bytes, _) = self
            .client
            .pull_manifest_raw(reference, &self.auth(reference), &MANIFEST_TYPES)
            .await
            .map_err(api("pulling the manifest of", target))?;
        let size = bytes.len() as u64;
        if size > limit {
            return Err(StoreError::TooLarge {
                what: "manifest".to_owned(),
                reference: target.name.clone(),
                size,
                limit,
            });
        }
        Ok(bytes.to_vec())
    }

    async fn digest(&self, target: &Target) -> Result<String, StoreError> {
        let reference = Self::reference(target)?;
        self.client
            .fetch_manifest_digest(reference, &self.auth(reference))
            .await
            .map_err(api("resolving the digest of", target))
    }

    async fn referrers(&self, target: &Target) -> Result<Vec<Referrer>, StoreError> {
        let reference = Self::reference(target)?;
        self.client
            .store_auth_if_needed(reference.resolve_registry(), &self.auth(reference))
            .await;
        let index = self
            .client
            .pull_referrers(reference, None)
            .await
            .map_err(api("listing the referrers of", target))?;
        Ok(index
            .manifests
            .into_iter()
            .map(|entry| Referrer {
                digest: entry.digest,
                media_type: entry.media_type,
                artifact_type: entry.artifact_type,
                annotations: entry.annotations.unwrap_or_default(),
            })
            .collect())
    }

    /// The blob, refused before reading if its `Content-Length` is over `limit`, and reading
    /// stopped as soon as the body goes past it.
    async fn blob(&self, target: &Target, digest: &str, limit: u64) -> Result<Vec<u8>, StoreError> {
        let reference = Self::reference(target)?;
        let what = format!("blob {digest}");
        self.client
            .store_auth_if_needed(reference.resolve_registry(), &self.auth(reference))
            .await;
        let mut stream = self
            .client
            .pull_blob_stream(reference, digest)
            .await
            .map_err(api(format!("pulling {what} of"), target))?;
        if let Some(size) = stream.content_length
            && size > limit
        {
            return Err(StoreError::TooLarge {
                what,
                reference: target.name.clone(),
                size,
                limit,
            });
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk
                .map_err(OciDistributionError::IoError)
                .map_err(api(format!("pulling {what} of"), target))?;
            if (bytes.len() as u64).saturating_add(chunk.len() as u64) > limit {
                return Err(StoreError::OverLimit {
                    what,
                    reference: target.name.clone(),
                    limit,
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }
}

/// `~/.docker/config.json` as far as the store reads it; other fields (`credsStore`,
/// `credHelpers`, `identitytoken`, ..) are ignored.
#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
}

#[derive(Deserialize)]
struct DockerAuth {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// The registry host an `auths` key or a reference names: without scheme or path, lower-case,
/// with Docker Hub's names (`https://index.docker.io/v1/`, `registry-1.docker.io`) as `docker.io`,
/// the name a parsed reference gives it.
fn registry_host(server: &str) -> String {
    let host = server
        .strip_prefix("https://")
        .or_else(|| server.strip_prefix("http://"))
        .unwrap_or(server);
    let host = host.split('/').next().unwrap_or(host).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_owned(),
        _ => host,
    }
}

/// Credentials by registry host from a Docker config file's `auths`: `auth` (base64 of
/// `user:password`, Docker's form) or else `username` and `password`. An entry with neither (what
/// Docker writes when a credential store holds the secret) gives none. When two keys name one
/// host, the bare host wins over a URL form.
fn docker_credentials(
    path: &Path,
    bytes: &[u8],
) -> Result<BTreeMap<String, Credentials>, StoreError> {
    let config: DockerConfig =
        serde_json::from_slice(bytes).map_err(|source| StoreError::DockerConfigJson {
            path: path.to_path_buf(),
            source,
        })?;
    let mut credentials = BTreeMap::new();
    for (key, entry) in config.auths {
        let found = match (
            entry.auth.filter(|a| !a.trim().is_empty()),
            entry.username,
            entry.password,
        ) {
            (Some(auth), _, _) => {
                let invalid = || StoreError::DockerAuth {
                    path: path.to_path_buf(),
                    registry: key.clone(),
                };
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .map_err(|_| invalid())?;
                let decoded = String::from_utf8(decoded).map_err(|_| invalid())?;
                let (username, password) = decoded.split_once(':').ok_or_else(invalid)?;
                Credentials {
                    username: username.to_owned(),
                    password: password.to_owned(),
                }
            }
            (None, Some(username), Some(password)) => Credentials { username, password },
            _ => continue,
        };
        let host = registry_host(&key);
        if key.contains("://") {
            credentials.entry(host).or_insert(found);
        } else {
            credentials.insert(host, found);
        }
    }
    Ok(credentials)
}

// --- layout -------------------------------------------------------------------------------------

struct LayoutSource {
    dir: PathBuf,
}

impl LayoutSource {
    /// The file `relative` to the layout, refused unread if larger than `limit`.
    fn read(
        &self,
        relative: &str,
        what: &str,
        target: &Target,
        limit: u64,
    ) -> Result<Vec<u8>, StoreError> {
        let path = self.dir.join(relative);
        let read_error = |source| StoreError::Read {
            what: what.to_owned(),
            reference: target.name.clone(),
            path: path.clone(),
            source,
        };
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::MissingBlob {
                    what: what.to_owned(),
                    reference: target.name.clone(),
                    dir: self.dir.clone(),
                });
            }
            Err(e) => return Err(read_error(e)),
        };
        let size = file.metadata().map_err(read_error)?.len();
        if size > limit {
            return Err(StoreError::TooLarge {
                what: what.to_owned(),
                reference: target.name.clone(),
                size,
                limit,
            });
        }
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        // One byte more than the limit tells a file that grew since its size was read.
        file.take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
        if bytes.len() as u64 > limit {
            return Err(StoreError::OverLimit {
                what: what.to_owned(),
                reference: target.name.clone(),
                limit,
            });
        }
        Ok(bytes)
    }

    /// `index.json`, read under the blob limit: it is not a manifest a caller asked for, and a
    /// layout of many images may list more than fits the manifest limit.
    fn index(&self, target: &Target, limit: u64) -> Result<OciImageIndex, StoreError> {
        let bytes = self.read(layout::INDEX_FILE, layout::INDEX_FILE, target, limit)?;
        serde_json::from_slice(&bytes).map_err(|source| StoreError::Json {
            what: layout::INDEX_FILE.to_owned(),
            reference: target.name.clone(),
            source,
        })
    }

    /// The digest and size of the `index.json` entry `name` names (see [`ImageStore::layout`]).
    fn find(
        &self,
        target: &Target,
        name: &str,
        limits: StoreLimits,
    ) -> Result<(String, i64), StoreError> {
        let index = self.index(target, limits.blob_bytes)?;
        let ref_name = |entry: &oci_client::manifest::ImageIndexEntry| {
            entry
                .annotations
                .as_ref()
                .and_then(|a| a.get(REF_NAME_ANNOTATION))
                .cloned()
        };
        let is_bare_tag = |n: &str| !n.contains(['/', ':', '@']);
        let wanted: Option<Reference> = if is_bare_tag(name) {
            None
        } else {
            name.parse().ok()
        };
        let same_image = |n: &str| {
            !is_bare_tag(n)
                && wanted.as_ref().is_some_and(|w| {
                    n.parse::<Reference>()
                        .is_ok_and(|candidate| candidate.whole() == w.whole())
                })
        };
        let same_tag =
            |n: &str| is_bare_tag(n) && wanted.as_ref().and_then(Reference::tag) == Some(n);
        let rules: [&dyn Fn(&str) -> bool; 3] = [&|n: &str| n == name, &same_image, &same_tag];
        for rule in rules {
            let found = index
                .manifests
                .iter()
                .find(|entry| ref_name(entry).is_some_and(|n| rule(&n)));
            if let Some(entry) = found {
                return Ok((entry.digest.clone(), entry.size));
            }
        }
        Err(StoreError::NotInLayout {
            reference: target.name.clone(),
            dir: self.dir.clone(),
            available: index
                .manifests
                .iter()
                .map(|entry| ref_name(entry).unwrap_or_else(|| entry.digest.clone()))
                .collect(),
        })
    }

    /// The manifests `index.json` lists whose `subject` is `digest` (a layout has no referrers
    /// API; writers list referrers in the index, as `palisade sign` does).
    fn referrers(
        &self,
        target: &Target,
        digest: &str,
        limits: StoreLimits,
    ) -> Result<Vec<Referrer>, StoreError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Referring {
            media_type: Option<String>,
            artifact_type: Option<String>,
            config: Option<oci_client::manifest::OciDescriptor>,
            subject: Option<oci_client::manifest::OciDescriptor>,
            #[serde(default)]
            annotations: BTreeMap<String, String>,
        }
        let index = self.index(target, limits.blob_bytes)?;
        let mut found = Vec::new();
        for entry in &index.manifests {
            if entry.media_type == media_type::OCI_INDEX || found.len() == MAX_REFERRERS {
                continue;
            }
            let Ok(path) = layout::blob_path(&entry.digest) else {
                continue;
            };
            let bytes = self.read(&path, "manifest", target, limits.manifest_bytes)?;
            let Ok(manifest) = serde_json::from_slice::<Referring>(&bytes) else {
                continue;
            };
            if manifest
                .subject
                .as_ref()
                .is_some_and(|s| s.digest == digest)
            {
                found.push(Referrer {
                    digest: entry.digest.clone(),
                    media_type: manifest
                        .media_type
                        .unwrap_or_else(|| entry.media_type.clone()),
                    artifact_type: manifest
                        .artifact_type
                        .or_else(|| manifest.config.map(|c| c.media_type)),
                    annotations: manifest.annotations,
                });
            }
        }
        Ok(found)
    }

    fn manifest(&self, target: &Target, limits: StoreLimits) -> Result<Vec<u8>, StoreError> {
        let limit = limits.manifest_bytes;
        let digest = match (&target.pinned, &target.locator) {
            (Some(digest), _) => digest.clone(),
            (None, Locator::Layout(Some(name))) => {
                let (digest, size) = self.find(target, name, limits)?;
                if let Ok(size) = u64::try_from(size)
                    && size > limit
                {
                    return Err(StoreError::TooLarge {
                        what: "manifest".to_owned(),
                        reference: target.name.clone(),
                        size,
                        limit,
                    });
                }
                digest
            }
            (None, _) => {
                return Err(StoreError::Reference {
                    reference: target.name.clone(),
                    source: ParseError::NameEmpty,
                });
            }
        };
        let bytes = self.read(&self.blob_path(target, &digest)?, "manifest", target, limit)?;
        // A pinned digest is checked by the caller; an index entry's is checked here.
        let actual = digest_of(&bytes);
        if actual != digest {
            return Err(StoreError::DigestMismatch {
                what: "manifest".to_owned(),
                reference: target.name.clone(),
                expected: digest,
                actual,
            });
        }
        Ok(bytes)
    }

    fn digest(&self, target: &Target, limits: StoreLimits) -> Result<String, StoreError> {
        match (&target.pinned, &target.locator) {
            (Some(digest), _) => {
                let path = self.dir.join(self.blob_path(target, digest)?);
                if path.is_file() {
                    Ok(digest.clone())
                } else {
                    Err(StoreError::MissingBlob {
                        what: "manifest".to_owned(),
                        reference: target.name.clone(),
                        dir: self.dir.clone(),
                    })
                }
            }
            (None, Locator::Layout(Some(name))) => Ok(self.find(target, name, limits)?.0),
            (None, _) => Err(StoreError::Reference {
                reference: target.name.clone(),
                source: ParseError::NameEmpty,
            }),
        }
    }

    fn blob(&self, target: &Target, digest: &str, limit: u64) -> Result<Vec<u8>, StoreError> {
        let what = format!("blob {digest}");
        self.read(&self.blob_path(target, digest)?, &what, target, limit)
    }

    fn blob_path(&self, target: &Target, digest: &str) -> Result<String, StoreError> {
        layout::blob_path(digest).map_err(|source| StoreError::Digest {
            reference: target.name.clone(),
            source,
        })
    }
}

// --- cache --------------------------------------------------------------------------------------

/// Answers kept in memory: by reference for `ttl` (what a tag points to may change), by digest
/// until dropped (content cannot change). Bounded in total bytes, oldest dropped first.
struct Cache {
    ttl: Duration,
    capacity: u64,
    state: Mutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    entries: HashMap<Key, Entry>,
    /// Keys in insertion order, each with the number of the insertion, so that a key stored
    /// again is not dropped for its earlier insertion.
    order: VecDeque<(Key, u64)>,
    bytes: u64,
    next: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// The manifest a reference named.
    Manifest(String),
    /// The digest a reference resolved to.
    Digest(String),
    /// A manifest or blob by `scope@digest`.
    Content(String),
}

#[derive(Clone)]
enum Value {
    Manifest(Manifest),
    Digest(String),
    Blob(Vec<u8>),
}

struct Entry {
    value: Value,
    stored: Instant,
    expires: bool,
    size: u64,
    number: u64,
}

impl Key {
    fn len(&self) -> usize {
        match self {
            Key::Manifest(k) | Key::Digest(k) | Key::Content(k) => k.len(),
        }
    }
}

impl Value {
    fn len(&self) -> usize {
        match self {
            Value::Manifest(m) => m.bytes.len() + m.digest.len() + m.media_type.len(),
            Value::Digest(d) => d.len(),
            Value::Blob(b) => b.len(),
        }
    }
}

impl CacheState {
    fn remove(&mut self, key: &Key) {
        if let Some(entry) = self.entries.remove(key) {
            self.bytes = self.bytes.saturating_sub(entry.size);
        }
    }
}

impl Cache {
    fn new(ttl: Duration, capacity: u64) -> Self {
        Self {
            ttl,
            capacity,
            state: Mutex::new(CacheState::default()),
        }
    }

    /// The cache's state; a panic elsewhere while it was locked leaves it consistent (each
    /// change is complete before the lock is released), so a poisoned lock is taken as is.
    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, key: &Key) -> Option<Value> {
        let mut state = self.lock();
        let entry = state.entries.get(key)?;
        if entry.expires && entry.stored.elapsed() >= self.ttl {
            state.remove(key);
            return None;
        }
        Some(entry.value.clone())
    }

    fn put(&self, key: Key, value: Value, expires: bool) {
        if expires && self.ttl.is_zero() {
            return;
        }
        let size = (key.len() + value.len()) as u64;
        if size > self.capacity {
            return;
        }
        let mut state = self.lock();
        state.remove(&key);
        let number = state.next;
        state.next += 1;
        state.order.push_back((key.clone(), number));
        state.entries.insert(
            key,
            Entry {
                value,
                stored: Instant::now(),
                expires,
                size,
                number,
            },
        );
        state.bytes += size;
        while state.bytes > self.capacity {
            let Some((oldest, number)) = state.order.pop_front() else {
                break;
            };
            if state
                .entries
                .get(&oldest)
                .is_some_and(|e| e.number == number)
            {
                state.remove(&oldest);
            }
        }
        // Keys stored again leave stale order slots behind; drop them once they outnumber the
        // entries, so the queue stays proportional to the cache.
        if state.order.len() > 2 * state.entries.len() + 16 {
            let CacheState { entries, order, .. } = &mut *state;
            order.retain(|(key, number)| entries.get(key).is_some_and(|e| e.number == *number));
        }
    }

    /// A manifest for `target`: by its pinned digest, else by reference while fresh.
    fn manifest(&self, target: &Target) -> Option<Manifest> {
        let key = match &target.pinned {
            Some(digest) => Key::Content(format!("{}@{digest}", target.scope)),
            None => Key::Manifest(target.name.clone()),
        };
        match self.get(&key)? {
            Value::Manifest(manifest) => Some(manifest),
            Value::Digest(_) | Value::Blob(_) => None,
        }
    }

    fn put_manifest(&self, target: &Target, manifest: &Manifest) {
        let content = Key::Content(format!("{}@{}", target.scope, manifest.digest));
        self.put(content, Value::Manifest(manifest.clone()), false);
        if target.pinned.is_none() {
            self.put(
                Key::Manifest(target.name.clone()),
                Value::Manifest(manifest.clone()),
                true,
            );
            self.put(
                Key::Digest(target.name.clone()),
                Value::Digest(manifest.digest.clone()),
                true,
            );
        }
    }

    /// The digest `target` resolves to, if known: pinned and its manifest cached, or found
    /// by reference while fresh.
    fn digest(&self, target: &Target) -> Option<String> {
        if let Some(manifest) = self.manifest(target) {
            return Some(manifest.digest);
        }
        match self.get(&Key::Digest(target.name.clone()))? {
            Value::Digest(digest) => Some(digest),
            Value::Manifest(_) | Value::Blob(_) => None,
        }
    }
}

#[cfg(test)]
mod tests;
