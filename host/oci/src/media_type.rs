//! The media types of the manifests, configs and layers we write or accept, with where each is
//! defined (OCI image-spec, Docker image manifest v2.2, solo-io Wasm Artifact Image spec,
//! Kubewarden's policy-fetcher).

/// OCI image manifest (image-spec `manifest.md`).
pub const OCI_MANIFEST: &str = oci_client::manifest::OCI_IMAGE_MEDIA_TYPE;
/// OCI image index (image-spec `image-index.md`), the `index.json` of a layout.
pub const OCI_INDEX: &str = oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE;
/// OCI image configuration (image-spec `config.md`): the config of the compat variant.
pub const OCI_CONFIG: &str = oci_client::manifest::IMAGE_CONFIG_MEDIA_TYPE;
/// Gzip'd tar layer (image-spec `layer.md`): the compat variant's only layer.
pub const OCI_LAYER_GZIP: &str = oci_client::manifest::IMAGE_LAYER_GZIP_MEDIA_TYPE;
/// Docker manifest list (image manifest v2.2, "Manifest List"), Docker's multi-platform index.
pub const DOCKER_MANIFEST_LIST: &str = oci_client::manifest::IMAGE_MANIFEST_LIST_MEDIA_TYPE;
/// Docker image manifest v2 schema 2 (Istio's first case, `extractDockerImage`).
pub const DOCKER_MANIFEST: &str = oci_client::manifest::IMAGE_MANIFEST_MEDIA_TYPE;
/// Docker image configuration.
pub const DOCKER_CONFIG: &str = oci_client::manifest::IMAGE_DOCKER_CONFIG_MEDIA_TYPE;
/// Docker gzip'd tar layer (what `docker build` of `FROM scratch` + `COPY plugin.wasm` makes).
pub const DOCKER_LAYER_GZIP: &str = oci_client::manifest::IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE;
/// Wasm Artifact Image spec (solo-io/wasm `spec/spec.md`, "Format"): the runtime configuration,
/// `{"type":"envoy_proxy","abi_version":..,"config":{"root_ids":[..]}}`.
pub const WASM_CONFIG: &str = "application/vnd.module.wasm.config.v1+json";
/// Wasm Artifact Image spec: the raw, uncompressed module.
pub const WASM_CONTENT: &str = "application/vnd.module.wasm.content.layer.v1+wasm";
/// Kubewarden policy config (policy-fetcher's push, `kwctl push`): the body is always `{}`.
pub const KUBEWARDEN_CONFIG: &str = oci_client::manifest::WASM_CONFIG_MEDIA_TYPE;
/// Kubewarden policy layer: the raw module, the only layer type policy-fetcher's pull accepts.
pub const KUBEWARDEN_LAYER: &str = oci_client::manifest::WASM_LAYER_MEDIA_TYPE;
