//! The Istio resources that load a proxy-wasm filter into sidecars: a WasmPlugin
//! (`extensions.istio.io/v1alpha1`), or the EnvoyFilter pair Istio documents for ECDS (an
//! `EXTENSION_CONFIG` holding the Wasm config, and an `HTTP_FILTER` that references it through
//! `config_discovery`), so istio-agent downloads and checks the module. Pure: the module's
//! location and digest come from the caller (a file's SHA-256, a registry's manifest digest).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value, json};

/// Why Istio resources cannot be made as asked.
#[derive(Debug, thiserror::Error)]
pub enum IstioError {
    /// A name or label is not what Kubernetes or the CRD accepts.
    #[error("{0}")]
    Invalid(String),
}

/// Where in the HTTP filter chain the plugin runs (WasmPlugin `phase`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Phase {
    /// Before Istio's authentication filters.
    #[cfg_attr(feature = "clap", value(name = "AUTHN"))]
    Authn,
    /// After authentication, before Istio's authorization (RBAC) filters.
    #[cfg_attr(feature = "clap", value(name = "AUTHZ"))]
    Authz,
    /// After authorization, before the stats filter.
    #[cfg_attr(feature = "clap", value(name = "STATS"))]
    Stats,
    /// Just before the router.
    #[cfg_attr(feature = "clap", value(name = "UNSPECIFIED_PHASE"))]
    Unspecified,
}

impl Phase {
    /// The name Istio gives it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Authn => "AUTHN",
            Phase::Authz => "AUTHZ",
            Phase::Stats => "STATS",
            Phase::Unspecified => "UNSPECIFIED_PHASE",
        }
    }
}

/// What the proxy does when the plugin fails fatally (WasmPlugin `failStrategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum FailStrategy {
    /// Deny traffic (HTTP 503) while the plugin is broken.
    #[cfg_attr(feature = "clap", value(name = "FAIL_CLOSE"))]
    Close,
    /// Let traffic bypass the plugin.
    #[cfg_attr(feature = "clap", value(name = "FAIL_OPEN"))]
    Open,
    /// Reload the VM and retry; deny meanwhile.
    #[cfg_attr(feature = "clap", value(name = "FAIL_RELOAD"))]
    Reload,
}

impl FailStrategy {
    /// The name Istio gives it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            FailStrategy::Close => "FAIL_CLOSE",
            FailStrategy::Open => "FAIL_OPEN",
            FailStrategy::Reload => "FAIL_RELOAD",
        }
    }

    /// Envoy's `PluginConfig.failure_policy`, mapped as istiod maps it (`wasmplugin.go`).
    #[must_use]
    pub fn envoy_policy(self) -> &'static str {
        match self {
            FailStrategy::Close => "FAIL_CLOSED",
            FailStrategy::Open => "FAIL_OPEN",
            FailStrategy::Reload => "FAIL_RELOAD",
        }
    }
}

/// When istio-agent fetches the module again (WasmPlugin `imagePullPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum PullPolicy {
    /// Use the cached module when its checksum matches.
    #[cfg_attr(feature = "clap", value(name = "IfNotPresent"))]
    IfNotPresent,
    /// Fetch again whenever the resource changes.
    #[cfg_attr(feature = "clap", value(name = "Always"))]
    Always,
}

impl PullPolicy {
    /// The name Istio gives it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Always => "Always",
        }
    }
}

/// Which proxies an EnvoyFilter patch applies to (EnvoyFilter `PatchContext`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum PatchContext {
    /// Sidecars and gateways, both directions.
    #[cfg_attr(feature = "clap", value(name = "ANY"))]
    Any,
    /// Inbound listeners of sidecars.
    #[cfg_attr(feature = "clap", value(name = "SIDECAR_INBOUND"))]
    SidecarInbound,
    /// Outbound listeners of sidecars.
    #[cfg_attr(feature = "clap", value(name = "SIDECAR_OUTBOUND"))]
    SidecarOutbound,
    /// Gateways.
    #[cfg_attr(feature = "clap", value(name = "GATEWAY"))]
    Gateway,
}

impl PatchContext {
    /// The name Istio gives it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            PatchContext::Any => "ANY",
            PatchContext::SidecarInbound => "SIDECAR_INBOUND",
            PatchContext::SidecarOutbound => "SIDECAR_OUTBOUND",
            PatchContext::Gateway => "GATEWAY",
        }
    }
}

/// How the plugin is run, as both resources express it.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where in the filter chain it runs.
    pub phase: Phase,
    /// Order within the phase: higher runs first (WasmPlugin only).
    pub priority: Option<i32>,
    /// What the proxy does when it fails.
    pub fail_strategy: FailStrategy,
    /// When istio-agent fetches the module again.
    pub pull_policy: PullPolicy,
    /// Envoy's `root_id`, for modules that pick their root context by it.
    pub plugin_name: Option<String>,
    /// Proxies the EnvoyFilter's HTTP_FILTER patch applies to.
    pub context: PatchContext,
}

/// Where the module comes from, as the resources name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// `url` of the WasmPlugin / `http_uri.uri` of the Wasm config.
    pub url: String,
    /// Hex SHA-256: of the module for http(s)/file, of the manifest for oci.
    pub sha256: String,
    /// A resource name derived from the file or repository.
    pub default_name: String,
}

impl Module {
    /// A module served from `url` (http, https or file), with the file's SHA-256 and a
    /// default name from its file name.
    ///
    /// # Errors
    /// [`IstioError::Invalid`] for another scheme.
    pub fn served(url: &str, sha256: &str, file_stem: &str) -> Result<Self, IstioError> {
        let scheme_ok = ["http://", "https://", "file://"]
            .iter()
            .any(|s| url.starts_with(s));
        if !scheme_ok {
            return Err(IstioError::Invalid(format!(
                "--url {url:?} must be http://, https:// or file:// (push to a registry for oci://)"
            )));
        }
        Ok(Self {
            url: url.to_owned(),
            sha256: sha256.to_owned(),
            default_name: to_dns_label(file_stem),
        })
    }

    /// An image `oci://<reference>` whose manifest digest is `sha256` (hex), named after its
    /// repository.
    #[must_use]
    pub fn oci(reference: &str, sha256: &str) -> Self {
        let name_part = reference.split('@').next().unwrap_or(reference);
        // `registry/path/repo:tag` -> `repo`; a port in the registry part has no '/' after it.
        let repository = name_part.rsplit('/').next().unwrap_or(name_part);
        let repository = repository.split(':').next().unwrap_or(repository);
        Self {
            url: format!("oci://{reference}"),
            sha256: sha256.to_owned(),
            default_name: to_dns_label(repository),
        }
    }
}

/// The hex of a `sha256:<hex>` or `<hex>` digest; `what` names it in the error.
///
/// # Errors
/// [`IstioError::Invalid`] when it is not 64 lowercase hex characters.
pub fn digest_hex(digest: &str, what: &str) -> Result<String, IstioError> {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    if !is_sha256_hex(hex) {
        return Err(IstioError::Invalid(format!(
            "{what} {digest:?} is not a sha256 digest (64 lowercase hex characters)"
        )));
    }
    Ok(hex.to_owned())
}

/// Reads a `key=value` workload label as the CRD accepts it.
///
/// # Errors
/// A message naming the label: no `=`, an empty key, or a `*`.
pub fn parse_label(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))?;
    // The CRD's CEL rules: no empty key, no wildcard in keys or values.
    if key.is_empty() || key.contains('*') || value.contains('*') {
        return Err(format!(
            "{text:?}: the key must be non-empty, and neither may contain '*'"
        ));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// A DNS-1123 label (Kubernetes names of namespaces): lowercase alphanumerics and '-', at most
/// 63 characters, alphanumeric at both ends.
fn is_dns_label(s: &str) -> bool {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(ok_char)
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS-1123 subdomain (Kubernetes object names): dot-separated labels, at most 253 characters.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// `text` lowercased with anything outside `[a-z0-9-]` turned into '-', trimmed of '-'.
fn to_dns_label(text: &str) -> String {
    let mapped: String = text
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    mapped.trim_matches('-').chars().take(63).collect()
}

/// Lowercase hex SHA-256, 64 characters (the CRD's `sha256` pattern).
fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// Everything both renderings need, checked.
#[derive(Debug, Clone)]
pub struct Plugin {
    name: String,
    namespace: String,
    module: Module,
    config: Map<String, Value>,
    labels: BTreeMap<String, String>,
}

impl Plugin {
    /// The plugin `name` (the module's default name when `None`) in `namespace`, loading
    /// `module` with the plugin configuration `config`, for workloads with `labels`.
    ///
    /// # Errors
    /// [`IstioError::Invalid`] when the name is not a DNS-1123 subdomain or the namespace not
    /// a DNS-1123 label.
    pub fn new(
        name: Option<String>,
        namespace: &str,
        module: Module,
        config: Map<String, Value>,
        labels: BTreeMap<String, String>,
    ) -> Result<Self, IstioError> {
        let name = name.unwrap_or_else(|| module.default_name.clone());
        if !is_dns_subdomain(&name) {
            return Err(IstioError::Invalid(format!(
                "resource name {name:?} is not a DNS-1123 subdomain (use --name)"
            )));
        }
        if !is_dns_label(namespace) {
            return Err(IstioError::Invalid(format!(
                "namespace {namespace:?} is not a DNS-1123 label"
            )));
        }
        Ok(Self {
            name,
            namespace: namespace.to_owned(),
            module,
            config,
            labels,
        })
    }
}

/// WasmPlugin (istio/api `extensions/v1alpha1/wasm.proto`), the fields we set, in the order
/// the API documents them; serialize it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WasmPlugin<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata<'a>,
    spec: WasmPluginSpec<'a>,
}

#[derive(Debug, Serialize)]
struct Metadata<'a> {
    name: &'a str,
    namespace: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct WasmPluginSpec<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    selector: Option<Selector<'a>>,
    url: &'a str,
    sha256: &'a str,
    image_pull_policy: &'static str,
    phase: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    priority: Option<i32>,
    fail_strategy: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    plugin_name: Option<&'a str>,
    plugin_config: &'a Map<String, Value>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Selector<'a> {
    match_labels: &'a BTreeMap<String, String>,
}

/// The WasmPlugin loading `plugin`.
#[must_use]
pub fn wasm_plugin<'a>(plugin: &'a Plugin, options: &'a Options) -> WasmPlugin<'a> {
    WasmPlugin {
        api_version: "extensions.istio.io/v1alpha1",
        kind: "WasmPlugin",
        metadata: Metadata {
            name: &plugin.name,
            namespace: &plugin.namespace,
        },
        spec: WasmPluginSpec {
            selector: (!plugin.labels.is_empty()).then_some(Selector {
                match_labels: &plugin.labels,
            }),
            url: &plugin.module.url,
            sha256: &plugin.module.sha256,
            image_pull_policy: options.pull_policy.as_str(),
            phase: options.phase.as_str(),
            priority: options.priority,
            fail_strategy: options.fail_strategy.as_str(),
            plugin_name: options.plugin_name.as_deref(),
            plugin_config: &plugin.config,
        },
    }
}

const WASM_TYPE_URL: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";

/// The EnvoyFilter pair loading `plugin`, built as istiod builds a WasmPlugin's ECDS resource
/// (`pilot/pkg/model/wasmplugin.go`): v8 runtime, remote code with a 30 s timeout and the
/// sha256, the plugin config as a JSON `StringValue`, and istio-agent's pull policy variable.
/// `priority` has no EnvoyFilter equivalent.
#[must_use]
pub fn envoy_filter(plugin: &Plugin, options: &Options) -> Value {
    let resource = format!("{}.{}", plugin.namespace, plugin.name);
    let code = match plugin.module.url.strip_prefix("file://") {
        Some(filename) => json!({"local": {"filename": filename}}),
        None => json!({"remote": {
            // Envoy requires a cluster; istio-agent fetches the module itself (as istiod's "_").
            "http_uri": {"uri": plugin.module.url, "cluster": "_", "timeout": "30s"},
            "sha256": plugin.module.sha256,
        }}),
    };
    let mut config = json!({
        "name": resource,
        "vm_config": {
            "runtime": "envoy.wasm.runtime.v8",
            "code": code,
            "environment_variables": {
                "key_values": {"ISTIO_META_WASM_IMAGE_PULL_POLICY": options.pull_policy.as_str()},
            },
        },
        "failure_policy": options.fail_strategy.envoy_policy(),
        // Proxies before Istio 1.25 read only the deprecated boolean.
        "fail_open": options.fail_strategy == FailStrategy::Open,
    });
    if let Some(root_id) = &options.plugin_name {
        config["root_id"] = json!(root_id);
    }
    if !plugin.config.is_empty() {
        // As istiod passes pluginConfig: JSON text in a google.protobuf.StringValue.
        config["configuration"] = json!({
            "@type": "type.googleapis.com/google.protobuf.StringValue",
            "value": Value::Object(plugin.config.clone()).to_string(),
        });
    }
    // AUTHN/AUTHZ/STATS are EnvoyFilter filter classes; the unspecified phase means "just before
    // the router", which needs an explicit INSERT_BEFORE.
    let (http_match, mut http_patch) = match options.phase {
        Phase::Unspecified => (
            json!({"context": options.context.as_str(), "listener": {"filterChain": {"filter": {
                "name": "envoy.filters.network.http_connection_manager",
                "subFilter": {"name": "envoy.filters.http.router"},
            }}}}),
            json!({"operation": "INSERT_BEFORE"}),
        ),
        phase => (
            json!({"context": options.context.as_str()}),
            json!({"operation": "ADD", "filterClass": phase.as_str()}),
        ),
    };
    // ECDS through the ADS stream istio-agent intercepts; initial_fetch_timeout 0 holds the
    // listener until the module is there (fail closed). The api_config_source form of older docs
    // does not reach the agent (istio/istio#32415, fixed in istio/api#2020).
    http_patch["value"] = json!({
        "name": resource,
        "config_discovery": {
            "config_source": {"ads": {}, "initial_fetch_timeout": "0s"},
            "type_urls": [WASM_TYPE_URL],
        },
    });
    let mut spec = json!({
        "configPatches": [
            {
                "applyTo": "EXTENSION_CONFIG",
                "patch": {
                    "operation": "ADD",
                    "value": {
                        "name": resource,
                        "typed_config": {"@type": WASM_TYPE_URL, "config": config},
                    },
                },
            },
            {"applyTo": "HTTP_FILTER", "match": http_match, "patch": http_patch},
        ],
    });
    if !plugin.labels.is_empty() {
        spec["workloadSelector"] = json!({"labels": plugin.labels});
    }
    json!({
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "EnvoyFilter",
        "metadata": {"name": plugin.name, "namespace": plugin.namespace},
        "spec": spec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dns_1123() {
        assert!(is_dns_subdomain("request-guard"));
        assert!(is_dns_subdomain("a.b-c"));
        assert!(!is_dns_subdomain("Request_Guard"));
        assert!(!is_dns_subdomain("-x"));
        assert!(!is_dns_label("a.b"));
        assert_eq!(to_dns_label("Request_Guard.v2"), "request-guard-v2");
    }

    #[test]
    fn labels_are_key_value_without_wildcards() {
        assert_eq!(
            parse_label("app=api=v1"),
            Ok(("app".to_owned(), "api=v1".to_owned()))
        );
        assert!(parse_label("app").is_err());
        assert!(parse_label("=x").is_err());
        assert!(parse_label("app=*").is_err());
    }

    #[test]
    fn oci_modules_are_named_after_their_repository() {
        let module = Module::oci("registry:5000/team/Guard_X:1.0@sha256:abc", "abc");
        assert_eq!(module.default_name, "guard-x");
        assert_eq!(
            module.url,
            "oci://registry:5000/team/Guard_X:1.0@sha256:abc"
        );
    }
}
