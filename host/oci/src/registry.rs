//! Push and pull over the OCI distribution API, through `oci-client`. The manifest is pushed as
//! the exact bytes of the [`Image`], so the digest a registry reports is the one `package` printed.

use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::{OciDescriptor, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use crate::extract::{self, ExtractError, Extracted};
use crate::image::Image;
use crate::media_type;

/// Username and password for HTTP basic auth (or the registry's token exchange).
#[derive(Clone)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password or token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// How to reach registries.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Speak plain HTTP instead of HTTPS (a local test registry on 127.0.0.1).
    pub plain_http: bool,
    /// Credentials; anonymous when `None`.
    pub credentials: Option<Credentials>,
}

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The reference is not `registry/repository[:tag][@digest]`.
    #[error("invalid image reference {reference:?}")]
    Reference {
        /// The reference as given.
        reference: String,
        /// The parse error.
        #[source]
        source: oci_client::ParseError,
    },
    /// The HTTP client could not be set up.
    #[error("setting up the registry client")]
    Setup(#[source] OciDistributionError),
    /// A distribution API call failed.
    #[error("{action} {reference}")]
    Api {
        /// What was being done, e.g. `pushing blob sha256:..`.
        action: String,
        /// The image reference.
        reference: String,
        /// What the client or the registry said.
        #[source]
        source: OciDistributionError,
    },
    /// The reference pins a digest other than the image's.
    #[error("reference {reference} pins {pinned}, but the image's manifest digest is {actual}")]
    DigestMismatch {
        /// The reference.
        reference: String,
        /// The digest in the reference.
        pinned: String,
        /// The image's digest.
        actual: String,
    },
    /// The pulled manifest is not an image manifest.
    #[error("the manifest of {reference} is not an image manifest")]
    Manifest {
        /// The image reference.
        reference: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The image holds no module in a layout Istio accepts.
    #[error("no module in {reference}")]
    Extract {
        /// The image reference.
        reference: String,
        /// Why.
        #[source]
        source: ExtractError,
    },
}

/// The result of a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The full reference pushed to, `registry/repository:tag`.
    pub reference: String,
    /// The manifest digest, `sha256:<hex>`.
    pub digest: String,
}

/// The result of a pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// The full reference pulled.
    pub reference: String,
    /// The manifest digest, `sha256:<hex>`, checked against the manifest bytes.
    pub digest: String,
    /// The module and where it was found.
    pub extracted: Extracted,
}

/// A client for OCI registries.
pub struct Registry {
    client: Client,
    auth: RegistryAuth,
}

fn parse(reference: &str) -> Result<Reference, RegistryError> {
    reference
        .parse()
        .map_err(|source| RegistryError::Reference {
            reference: reference.to_owned(),
            source,
        })
}

fn api(
    action: impl Into<String>,
    reference: &Reference,
) -> impl FnOnce(OciDistributionError) -> RegistryError {
    let action = action.into();
    let reference = reference.whole();
    move |source| RegistryError::Api {
        action,
        reference,
        source,
    }
}

/// oci-client is built without a TLS crypto provider of its own; ring is the one already in the
/// tree. Installing fails harmlessly when the process has one.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        drop(rustls::crypto::ring::default_provider().install_default());
    }
}

impl Registry {
    /// A client with `options`.
    ///
    /// # Errors
    /// [`RegistryError::Setup`] if the HTTP client cannot be built.
    pub fn new(options: RegistryOptions) -> Result<Self, RegistryError> {
        install_crypto_provider();
        let config = ClientConfig {
            protocol: if options.plain_http {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            ..ClientConfig::default()
        };
        let client = Client::try_from(config).map_err(RegistryError::Setup)?;
        let auth = match options.credentials {
            Some(c) => RegistryAuth::Basic(c.username, c.password),
            None => RegistryAuth::Anonymous,
        };
        Ok(Self { client, auth })
    }

    /// Pushes `image` to `reference` (`registry/repository:tag`): each blob the registry lacks,
    /// then the manifest bytes unchanged.
    ///
    /// # Errors
    /// [`RegistryError`] naming the step that failed.
    pub async fn push(&self, image: &Image, reference: &str) -> Result<Pushed, RegistryError> {
        let digest = image.digest();
        let target = self.target(reference, &digest).await?;
        for (blob_digest, bytes) in image.blobs() {
            let exists = self
                .client
                .blob_exists(&target, blob_digest)
                .await
                .map_err(api(format!("checking blob {blob_digest} in"), &target))?;
            if !exists {
                self.client
                    .push_blob(&target, bytes.to_vec(), blob_digest)
                    .await
                    .map_err(api(format!("pushing blob {blob_digest} to"), &target))?;
            }
        }
        self.put_manifest(&target, image.manifest(), image.media_type())
            .await?;
        Ok(Pushed {
            reference: target.whole(),
            digest,
        })
    }

    /// Pushes the manifest bytes `manifest` of type `media_type` to `reference` as they are,
    /// and nothing else: an image index (such as an OCI 1.1 referrers tag-schema index), whose
    /// manifests must already be in the repository.
    ///
    /// # Errors
    /// [`RegistryError`] naming the step that failed; [`RegistryError::DigestMismatch`] if
    /// `reference` pins another digest.
    pub async fn push_manifest(
        &self,
        manifest: &[u8],
        media_type: &str,
        reference: &str,
    ) -> Result<Pushed, RegistryError> {
        let digest = crate::image::digest_of(manifest);
        let target = self.target(reference, &digest).await?;
        self.put_manifest(&target, manifest, media_type).await?;
        Ok(Pushed {
            reference: target.whole(),
            digest,
        })
    }

    /// `reference` parsed, checked against the `digest` about to be pushed when it pins one, with
    /// the credentials stored for its registry.
    async fn target(&self, reference: &str, digest: &str) -> Result<Reference, RegistryError> {
        let target = parse(reference)?;
        if let Some(pinned) = target.digest()
            && pinned != digest
        {
            return Err(RegistryError::DigestMismatch {
                reference: target.whole(),
                pinned: pinned.to_owned(),
                actual: digest.to_owned(),
            });
        }
        self.client
            .store_auth_if_needed(target.resolve_registry(), &self.auth)
            .await;
        Ok(target)
    }

    /// `PUT`s the manifest bytes unchanged with `media_type` as their content type.
    async fn put_manifest(
        &self,
        target: &Reference,
        manifest: &[u8],
        media_type: &str,
    ) -> Result<(), RegistryError> {
        let content_type =
            http::HeaderValue::from_str(media_type).map_err(|_| RegistryError::Api {
                action: "pushing the manifest to".to_owned(),
                reference: target.whole(),
                source: OciDistributionError::GenericError(Some(format!(
                    "media type {media_type:?} is not a valid header value"
                ))),
            })?;
        self.client
            .push_manifest_raw(target, manifest.to_vec(), content_type)
            .await
            .map_err(api("pushing the manifest to", target))?;
        Ok(())
    }

    /// The manifest digest `reference` resolves to (`HEAD` on the manifest).
    ///
    /// # Errors
    /// [`RegistryError`] if the reference is invalid or the registry does not answer with one.
    pub async fn resolve(&self, reference: &str) -> Result<String, RegistryError> {
        let target = parse(reference)?;
        self.client
            .fetch_manifest_digest(&target, &self.auth)
            .await
            .map_err(api("resolving the digest of", &target))
    }

    /// Pulls `reference` and finds its module the way Istio's agent does: a Docker image's last
    /// layer, else the compat layer, else the wasm variant's content layer (proxy-wasm.md 2.3).
    /// Every blob is checked against its digest.
    ///
    /// # Errors
    /// [`RegistryError`] naming the step that failed, or [`RegistryError::Extract`] with the
    /// reason each layout did not fit.
    pub async fn pull(&self, reference: &str) -> Result<Pulled, RegistryError> {
        let target = parse(reference)?;
        let (bytes, digest) = self
            .client
            .pull_manifest_raw(
                &target,
                &self.auth,
                &[media_type::OCI_MANIFEST, media_type::DOCKER_MANIFEST],
            )
            .await
            .map_err(api("pulling the manifest of", &target))?;
        let manifest: OciImageManifest =
            serde_json::from_slice(&bytes).map_err(|source| RegistryError::Manifest {
                reference: target.whole(),
                source,
            })?;
        let mut reasons = Vec::new();
        for (format, layer) in extract::candidates(&manifest) {
            let layer = match layer {
                Ok(layer) => layer,
                Err(reason) => {
                    reasons.push((format, reason));
                    continue;
                }
            };
            let blob = self.blob(&target, &layer).await?;
            match extract::decode(format, blob) {
                Ok(module) => {
                    return Ok(Pulled {
                        reference: target.whole(),
                        digest,
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
        Err(RegistryError::Extract {
            reference: target.whole(),
            source: extract::failure(reasons),
        })
    }

    async fn blob(
        &self,
        target: &Reference,
        layer: &OciDescriptor,
    ) -> Result<Vec<u8>, RegistryError> {
        let mut out = Vec::new();
        self.client
            .pull_blob(target, layer, &mut out)
            .await
            .map_err(api(format!("pulling blob {} of", layer.digest), target))?;
        Ok(out)
    }
}
