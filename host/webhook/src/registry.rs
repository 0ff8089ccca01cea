//! Images for policies and for the host operations that read them: the configuration of the
//! image store (a registry with credentials, plain-HTTP registries, limits and a cache, or a
//! local OCI layout for offline runs), the runtime's [`Registry`] and `SupplyChain` over it
//! (image signatures against a trusted root), and policy modules
//! given as `registry://` or `https://` URLs, pulled when the configuration is loaded.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use palisade_oci::{ImageStore, StoreLimits, StoreOptions};
use palisade_runtime::capabilities::registry::{Manifest, Registry, RegistryFuture};
use palisade_runtime::chain;
use palisade_supply_chain::bundle::TrustRoot;
use palisade_supply_chain::capability::VerifierCapability;
use palisade_supply_chain::image::{DEFAULT_RESULT_TTL, ImageVerifier};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

/// Istio's and policy-fetcher's cap on a module, for `https://` downloads too.
const MAX_MODULE_BYTES: u64 = 256 << 20;

/// Where images come from (`hostOperations.registry`, or policy-server's flags).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryConfig {
    /// An OCI image layout directory, relative to the configuration file, to serve every image
    /// from instead of registries (offline: nothing leaves the machine).
    #[serde(default)]
    pub oci_directory: Option<PathBuf>,
    /// A Docker config file (`auths`) with registry credentials; credential helpers are not
    /// run.
    #[serde(default)]
    pub docker_config: Option<PathBuf>,
    /// Registries (`host[:port]`) spoken to over plain HTTP, and `https://` module hosts whose
    /// certificate is not checked (policy-server's `insecure_sources`).
    #[serde(default)]
    pub insecure_registries: Vec<String>,
    /// How long a manifest fetched by tag is reused (content fetched by digest is kept while
    /// the cache has room).
    #[serde(default = "default_cache_ttl", with = "humantime_serde")]
    pub cache_ttl: Duration,
    /// The largest manifest a registry may answer with.
    #[serde(default = "default_manifest_bytes")]
    pub manifest_bytes: u64,
    /// The largest blob (an image config) a registry may answer with.
    #[serde(default = "default_blob_bytes")]
    pub blob_bytes: u64,
    /// The Sigstore `trusted_root.json` keyless signatures and bundles are checked against
    /// (Sigstore's public-good root, as shipped, when unset).
    #[serde(default)]
    pub trusted_root: Option<PathBuf>,
}

fn default_cache_ttl() -> Duration {
    StoreOptions::default().cache_ttl
}

fn default_manifest_bytes() -> u64 {
    StoreLimits::default().manifest_bytes
}

fn default_blob_bytes() -> u64 {
    StoreLimits::default().blob_bytes
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            oci_directory: None,
            docker_config: None,
            insecure_registries: Vec::new(),
            cache_ttl: default_cache_ttl(),
            manifest_bytes: default_manifest_bytes(),
            blob_bytes: default_blob_bytes(),
            trusted_root: None,
        }
    }
}

impl RegistryConfig {
    /// The image store this configuration describes.
    ///
    /// # Errors
    /// When the layout directory or the Docker config cannot be read.
    pub fn store(&self) -> anyhow::Result<ImageStore> {
        let options = StoreOptions {
            docker_config: self.docker_config.clone(),
            insecure_registries: self.insecure_registries.clone(),
            limits: StoreLimits {
                manifest_bytes: self.manifest_bytes,
                blob_bytes: self.blob_bytes,
            },
            cache_ttl: self.cache_ttl,
            ..StoreOptions::default()
        };
        Ok(match &self.oci_directory {
            Some(dir) => ImageStore::layout(dir, options)
                .with_context(|| format!("the OCI layout {}", dir.display()))?,
            None => ImageStore::registry(options).context("the registry client")?,
        })
    }

    /// Whether `host` (`host[:port]`) is one of the insecure registries.
    fn insecure(&self, host: &str) -> bool {
        self.insecure_registries.iter().any(|h| h == host)
    }
}

/// The runtime's registry (what `oci/v1/*` host operations read) over an [`ImageStore`].
#[derive(Debug, Clone)]
pub struct StoreRegistry(pub Arc<ImageStore>);

fn manifest(m: palisade_oci::Manifest) -> Manifest {
    Manifest {
        digest: m.digest,
        media_type: m.media_type,
        bytes: m.bytes,
    }
}

impl Registry for StoreRegistry {
    fn manifest<'a>(&'a self, image: &'a str) -> RegistryFuture<'a, Manifest> {
        Box::pin(async move {
            self.0
                .manifest(image)
                .await
                .map(manifest)
                .map_err(|e| chain(&e))
        })
    }

    fn image_manifest<'a>(&'a self, image: &'a str) -> RegistryFuture<'a, Manifest> {
        Box::pin(async move {
            self.0
                .image_manifest(image)
                .await
                .map(manifest)
                .map_err(|e| chain(&e))
        })
    }

    fn blob<'a>(&'a self, image: &'a str, digest: &'a str) -> RegistryFuture<'a, Vec<u8>> {
        Box::pin(async move { self.0.blob(image, digest).await.map_err(|e| chain(&e)) })
    }
}

impl RegistryConfig {
    /// Image signature verification over `store`, against the configured trusted root.
    ///
    /// # Errors
    /// When the trusted root cannot be read or used.
    pub fn supply_chain(&self, store: Arc<ImageStore>) -> anyhow::Result<VerifierCapability> {
        let root = match &self.trusted_root {
            Some(path) => {
                let json = std::fs::read_to_string(path)
                    .with_context(|| format!("reading the trusted root {}", path.display()))?;
                TrustRoot::from_json(&json, &path.display().to_string())
            }
            None => TrustRoot::production(),
        }
        .map_err(anyhow::Error::msg)?;
        Ok(VerifierCapability::new(ImageVerifier::new(
            store,
            Some(root),
            DEFAULT_RESULT_TTL,
        )))
    }
}

/// Where a pulled module came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleOrigin {
    /// The URL as configured (`registry://...`, `https://...`).
    pub url: String,
    /// What pins it: the image manifest's digest for a registry, the SHA-256 of the download
    /// for HTTPS (`sha256:<hex>`).
    pub digest: String,
}

/// Whether a module given as `module` is fetched rather than read from a file.
#[must_use]
pub fn is_remote(module: &str) -> bool {
    module.starts_with("registry://") || module.starts_with("https://")
}

/// Fetches the module at `url` (`registry://<reference>` through the image store, or
/// `https://`): its bytes and what pins them. Runs on a thread of its own, so it may be called
/// from anywhere, async code included.
///
/// # Errors
/// When the URL is neither, or the fetch fails, naming the URL and the step.
pub fn fetch_module(
    url: &str,
    config: &RegistryConfig,
    store: &ImageStore,
) -> anyhow::Result<(Vec<u8>, ModuleOrigin)> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("starting the module download")?;
                runtime.block_on(fetch(url, config, store))
            })
            .join()
            .unwrap_or_else(|_| bail!("the download of {url} failed"))
    })
}

async fn fetch(
    url: &str,
    config: &RegistryConfig,
    store: &ImageStore,
) -> anyhow::Result<(Vec<u8>, ModuleOrigin)> {
    if let Some(reference) = url.strip_prefix("registry://") {
        let pulled = store
            .module(reference)
            .await
            .with_context(|| format!("pulling {url}"))?;
        return Ok((
            pulled.extracted.module,
            ModuleOrigin {
                url: url.to_owned(),
                digest: pulled.digest,
            },
        ));
    }
    if url.starts_with("https://") {
        let bytes = download(url, config)
            .await
            .with_context(|| format!("downloading {url}"))?;
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        return Ok((
            bytes,
            ModuleOrigin {
                url: url.to_owned(),
                digest,
            },
        ));
    }
    bail!("{url}: a module URL is registry://, https:// or file://")
}

/// GETs `url` with the module cap; a host among the insecure registries gets no certificate
/// check, as policy-fetcher treats its insecure sources.
async fn download(url: &str, config: &RegistryConfig) -> anyhow::Result<Vec<u8>> {
    let host = url
        .strip_prefix("https://")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default();
    palisade_oci::install_crypto_provider();
    let client = https_client::Client::builder()
        .danger_accept_invalid_certs(config.insecure(host))
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(120))
        .build()
        .context("setting up the HTTPS client")?;
    let mut response = client.get(url).send().await?.error_for_status()?;
    if let Some(length) = response.content_length()
        && length > MAX_MODULE_BYTES
    {
        bail!("the module is {length} bytes, more than the {MAX_MODULE_BYTES}-byte limit");
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 > MAX_MODULE_BYTES {
            bail!("the module is more than the {MAX_MODULE_BYTES}-byte limit");
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn a_trusted_root_that_cannot_be_read_or_used_is_named() {
        let images = tempfile::tempdir().unwrap();
        palisade_oci::layout::write_dir(images.path(), &[]).unwrap();
        let store = Arc::new(ImageStore::layout(images.path(), StoreOptions::default()).unwrap());
        let missing = RegistryConfig {
            trusted_root: Some(PathBuf::from("no/such/trusted_root.json")),
            ..RegistryConfig::default()
        };
        let error = format!(
            "{:#}",
            missing.supply_chain(Arc::clone(&store)).unwrap_err()
        );
        assert!(
            error.contains("reading the trusted root no/such/trusted_root.json"),
            "{error}"
        );

        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("trusted_root.json");
        std::fs::write(&garbage, "{}").unwrap();
        let unusable = RegistryConfig {
            trusted_root: Some(garbage.clone()),
            ..RegistryConfig::default()
        };
        let error = format!(
            "{:#}",
            unusable.supply_chain(Arc::clone(&store)).unwrap_err()
        );
        assert!(error.contains("not a usable trusted root"), "{error}");
        // Unset: Sigstore's public-good root, as shipped.
        RegistryConfig::default().supply_chain(store).unwrap();
    }
}
