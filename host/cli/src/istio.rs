//! `palisade istio`: the Istio resources that load a proxy-wasm filter into sidecars, as YAML: a
//! WasmPlugin (extensions.istio.io/v1alpha1), or with `--envoyfilter` the EnvoyFilter pair Istio
//! documents for ECDS (an `EXTENSION_CONFIG` holding the Wasm config, and an `HTTP_FILTER` that
//! references it through `config_discovery`), so istio-agent downloads and checks the module.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail, ensure};
use clap::{Args, ValueEnum};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::input::read_document;
use crate::package::read_filter;
use crate::push::{RegistryArgs, runtime};

/// Where in the HTTP filter chain the plugin runs (WasmPlugin `phase`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Phase {
    /// Before Istio's authentication filters.
    #[value(name = "AUTHN")]
    Authn,
    /// After authentication, before Istio's authorization (RBAC) filters.
    #[value(name = "AUTHZ")]
    Authz,
    /// After authorization, before the stats filter.
    #[value(name = "STATS")]
    Stats,
    /// Just before the router.
    #[value(name = "UNSPECIFIED_PHASE")]
    Unspecified,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Authn => "AUTHN",
            Phase::Authz => "AUTHZ",
            Phase::Stats => "STATS",
            Phase::Unspecified => "UNSPECIFIED_PHASE",
        }
    }
}

/// What the proxy does when the plugin fails fatally (WasmPlugin `failStrategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FailStrategy {
    /// Deny traffic (HTTP 503) while the plugin is broken.
    #[value(name = "FAIL_CLOSE")]
    Close,
    /// Let traffic bypass the plugin.
    #[value(name = "FAIL_OPEN")]
    Open,
    /// Reload the VM and retry; deny meanwhile.
    #[value(name = "FAIL_RELOAD")]
    Reload,
}

impl FailStrategy {
    fn as_str(self) -> &'static str {
        match self {
            FailStrategy::Close => "FAIL_CLOSE",
            FailStrategy::Open => "FAIL_OPEN",
            FailStrategy::Reload => "FAIL_RELOAD",
        }
    }

    /// Envoy's `PluginConfig.failure_policy`, mapped as istiod maps it (`wasmplugin.go`).
    fn envoy_policy(self) -> &'static str {
        match self {
            FailStrategy::Close => "FAIL_CLOSED",
            FailStrategy::Open => "FAIL_OPEN",
            FailStrategy::Reload => "FAIL_RELOAD",
        }
    }
}

/// When istio-agent fetches the module again (WasmPlugin `imagePullPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PullPolicy {
    /// Use the cached module when its checksum matches.
    #[value(name = "IfNotPresent")]
    IfNotPresent,
    /// Fetch again whenever the resource changes.
    #[value(name = "Always")]
    Always,
}

impl PullPolicy {
    fn as_str(self) -> &'static str {
        match self {
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Always => "Always",
        }
    }
}

/// Which proxies an EnvoyFilter patch applies to (EnvoyFilter `PatchContext`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PatchContext {
    /// Sidecars and gateways, both directions.
    #[value(name = "ANY")]
    Any,
    /// Inbound listeners of sidecars.
    #[value(name = "SIDECAR_INBOUND")]
    SidecarInbound,
    /// Outbound listeners of sidecars.
    #[value(name = "SIDECAR_OUTBOUND")]
    SidecarOutbound,
    /// Gateways.
    #[value(name = "GATEWAY")]
    Gateway,
}

impl PatchContext {
    fn as_str(self) -> &'static str {
        match self {
            PatchContext::Any => "ANY",
            PatchContext::SidecarInbound => "SIDECAR_INBOUND",
            PatchContext::SidecarOutbound => "SIDECAR_OUTBOUND",
            PatchContext::Gateway => "GATEWAY",
        }
    }
}

/// Arguments of `palisade istio`.
#[derive(Debug, Args)]
pub(crate) struct IstioArgs {
    /// The filter: a proxy-wasm module (.wasm, with --url) or `oci://registry/repo:tag[@sha256:..]`.
    #[arg(value_name = "FILTER|oci://REFERENCE")]
    source: String,
    /// The plugin configuration (JSON or YAML object), passed to the module as JSON.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Resource name [default: from the file or repository name].
    #[arg(long)]
    name: Option<String>,
    /// Namespace of the resource (the root namespace makes it mesh-wide).
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Where in the filter chain the plugin runs.
    #[arg(long, value_enum, default_value_t = Phase::Authz)]
    phase: Phase,
    /// Order within the phase: higher runs first (WasmPlugin only).
    #[arg(long, allow_negative_numbers = true)]
    priority: Option<i32>,
    /// What the proxy does when the plugin fails.
    #[arg(long, value_enum, default_value_t = FailStrategy::Close)]
    fail_strategy: FailStrategy,
    /// Workload label the resource selects, `key=value` (repeatable).
    #[arg(long = "selector", value_name = "KEY=VALUE", value_parser = parse_label)]
    selector: Vec<(String, String)>,
    /// Where the module is served: an http(s):// or file:// url (required for a .wasm file).
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// The plugin's root id (Envoy `root_id`), for modules that pick their root context by it.
    #[arg(long, value_name = "ROOT_ID")]
    plugin_name: Option<String>,
    /// When istio-agent fetches the module again.
    #[arg(long, value_enum, default_value_t = PullPolicy::IfNotPresent)]
    image_pull_policy: PullPolicy,
    /// Manifest digest of the oci image (`sha256:<hex>` or `<hex>`), instead of asking the
    /// registry.
    #[arg(long, value_name = "DIGEST")]
    digest: Option<String>,
    /// Print the EnvoyFilter (EXTENSION_CONFIG + HTTP_FILTER over ECDS) instead of a WasmPlugin.
    #[arg(long)]
    envoyfilter: bool,
    /// Proxies the EnvoyFilter's HTTP_FILTER patch applies to.
    #[arg(long, value_enum, default_value_t = PatchContext::SidecarInbound)]
    context: PatchContext,
    #[command(flatten)]
    registry: RegistryArgs,
}

fn parse_label(text: &str) -> Result<(String, String), String> {
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

/// Where the module comes from, as the resources name it.
struct Module {
    /// `url` of the WasmPlugin / `http_uri.uri` of the Wasm config.
    url: String,
    /// Hex SHA-256: of the module for http(s)/file, of the manifest for oci.
    sha256: String,
    /// A resource name derived from the file or repository.
    default_name: String,
}

fn digest_hex(digest: &str, what: &str) -> anyhow::Result<String> {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    ensure!(
        is_sha256_hex(hex),
        "{what} {digest:?} is not a sha256 digest (64 lowercase hex characters)"
    );
    Ok(hex.to_owned())
}

fn oci_module(reference: &str, args: &IstioArgs) -> anyhow::Result<Module> {
    ensure!(
        args.url.is_none(),
        "--url is for a .wasm file; an oci:// reference is its own url"
    );
    ensure!(!reference.is_empty(), "empty oci:// reference");
    let (name_part, pinned) = match reference.split_once('@') {
        Some((name, digest)) => (name, Some(digest_hex(digest, "the reference's digest")?)),
        None => (reference, None),
    };
    let given = args
        .digest
        .as_deref()
        .map(|d| digest_hex(d, "--digest"))
        .transpose()?;
    let sha256 = match (pinned, given) {
        (Some(pinned), Some(given)) if pinned != given => {
            bail!("--digest sha256:{given} disagrees with the reference's @sha256:{pinned}")
        }
        (Some(digest), _) | (None, Some(digest)) => digest,
        (None, None) => {
            let registry = args.registry.registry()?;
            let digest = runtime()?
                .block_on(registry.resolve(reference))
                .with_context(|| format!("resolving the manifest digest of {reference}"))?;
            digest_hex(&digest, "the registry's digest")?
        }
    };
    // `registry/path/repo:tag` -> `repo`; a port in the registry part has no '/' after it.
    let repository = name_part.rsplit('/').next().unwrap_or(name_part);
    let repository = repository.split(':').next().unwrap_or(repository);
    Ok(Module {
        url: format!("oci://{reference}"),
        sha256,
        default_name: to_dns_label(repository),
    })
}

fn file_module(path: &str, args: &IstioArgs) -> anyhow::Result<Module> {
    ensure!(
        args.digest.is_none(),
        "--digest is for an oci:// reference; a .wasm file's sha256 is computed"
    );
    let path = PathBuf::from(path);
    let (_, module) = read_filter(&path)?;
    let url = args.url.clone().with_context(|| {
        format!(
            "--url is required with a .wasm file: where sidecars download {} from (http, https or file)",
            path.display()
        )
    })?;
    let scheme_ok = ["http://", "https://", "file://"]
        .iter()
        .any(|s| url.starts_with(s));
    ensure!(
        scheme_ok,
        "--url {url:?} must be http://, https:// or file:// (push to a registry for oci://)"
    );
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Module {
        url,
        sha256: module.sha256,
        default_name: to_dns_label(&stem),
    })
}

/// WasmPlugin (istio/api `extensions/v1alpha1/wasm.proto`), the fields we set.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WasmPlugin {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata,
    spec: WasmPluginSpec,
}

#[derive(Serialize)]
struct Metadata {
    name: String,
    namespace: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WasmPluginSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    selector: Option<Selector>,
    url: String,
    sha256: String,
    image_pull_policy: &'static str,
    phase: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    priority: Option<i32>,
    fail_strategy: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    plugin_name: Option<String>,
    plugin_config: Map<String, Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Selector {
    match_labels: BTreeMap<String, String>,
}

/// Everything both renderings need, checked.
struct Plugin {
    name: String,
    namespace: String,
    module: Module,
    config: Map<String, Value>,
    labels: BTreeMap<String, String>,
}

fn wasm_plugin(plugin: Plugin, args: &IstioArgs) -> WasmPlugin {
    WasmPlugin {
        api_version: "extensions.istio.io/v1alpha1",
        kind: "WasmPlugin",
        metadata: Metadata {
            name: plugin.name,
            namespace: plugin.namespace,
        },
        spec: WasmPluginSpec {
            selector: (!plugin.labels.is_empty()).then_some(Selector {
                match_labels: plugin.labels,
            }),
            url: plugin.module.url,
            sha256: plugin.module.sha256,
            image_pull_policy: args.image_pull_policy.as_str(),
            phase: args.phase.as_str(),
            priority: args.priority,
            fail_strategy: args.fail_strategy.as_str(),
            plugin_name: args.plugin_name.clone(),
            plugin_config: plugin.config,
        },
    }
}

const WASM_TYPE_URL: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";

/// The EnvoyFilter pair, built as istiod builds a WasmPlugin's ECDS resource
/// (`pilot/pkg/model/wasmplugin.go`): v8 runtime, remote code with a 30 s timeout and the
/// sha256, the plugin config as a JSON `StringValue`, and istio-agent's pull policy variable.
fn envoy_filter(plugin: &Plugin, args: &IstioArgs) -> anyhow::Result<Value> {
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
                "key_values": {"ISTIO_META_WASM_IMAGE_PULL_POLICY": args.image_pull_policy.as_str()},
            },
        },
        "failure_policy": args.fail_strategy.envoy_policy(),
        // Proxies before Istio 1.25 read only the deprecated boolean.
        "fail_open": args.fail_strategy == FailStrategy::Open,
    });
    if let Some(root_id) = &args.plugin_name {
        config["root_id"] = json!(root_id);
    }
    if !plugin.config.is_empty() {
        // As istiod passes pluginConfig: JSON text in a google.protobuf.StringValue.
        let text = serde_json::to_string(&plugin.config).context("encoding the plugin config")?;
        config["configuration"] = json!({
            "@type": "type.googleapis.com/google.protobuf.StringValue",
            "value": text,
        });
    }
    // AUTHN/AUTHZ/STATS are EnvoyFilter filter classes; the unspecified phase means "just before
    // the router", which needs an explicit INSERT_BEFORE.
    let (http_match, http_patch) = match args.phase {
        Phase::Unspecified => (
            json!({"context": args.context.as_str(), "listener": {"filterChain": {"filter": {
                "name": "envoy.filters.network.http_connection_manager",
                "subFilter": {"name": "envoy.filters.http.router"},
            }}}}),
            json!({"operation": "INSERT_BEFORE"}),
        ),
        phase => (
            json!({"context": args.context.as_str()}),
            json!({"operation": "ADD", "filterClass": phase.as_str()}),
        ),
    };
    let mut http_patch = http_patch;
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
    Ok(json!({
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "EnvoyFilter",
        "metadata": {"name": plugin.name, "namespace": plugin.namespace},
        "spec": spec,
    }))
}

pub(crate) fn istio(args: &IstioArgs) -> anyhow::Result<ExitCode> {
    let module = match args.source.strip_prefix("oci://") {
        Some(reference) => oci_module(reference, args)?,
        None => file_module(&args.source, args)?,
    };
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| module.default_name.clone());
    ensure!(
        is_dns_subdomain(&name),
        "resource name {name:?} is not a DNS-1123 subdomain (use --name)"
    );
    ensure!(
        is_dns_label(&args.namespace),
        "namespace {:?} is not a DNS-1123 label",
        args.namespace
    );
    let config = match read_document::<Value>(&args.config)? {
        Value::Object(map) => map,
        other => bail!(
            "{}: the plugin configuration must be an object (a protobuf Struct), not {other}",
            args.config.display()
        ),
    };
    let plugin = Plugin {
        name,
        namespace: args.namespace.clone(),
        module,
        config,
        labels: args.selector.iter().cloned().collect(),
    };
    let yaml = if args.envoyfilter {
        if args.priority.is_some() {
            tracing::warn!("--priority has no EnvoyFilter equivalent; ignored");
        }
        serde_yaml::to_string(&envoy_filter(&plugin, args)?)?
    } else {
        serde_yaml::to_string(&wasm_plugin(plugin, args))?
    };
    print!("{yaml}");
    Ok(ExitCode::SUCCESS)
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
}
