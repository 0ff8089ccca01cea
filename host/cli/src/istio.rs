//! `palisade istio`: prints the Istio resources that load a proxy-wasm filter, as YAML (a
//! WasmPlugin, or with `--envoyfilter` the EnvoyFilter pair for ECDS). Reads the filter or asks
//! the registry for the image's digest; the resources are `palisade_oci::istio`'s.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail, ensure};
use clap::Args;
use palisade_oci::istio::{
    self, FailStrategy, Module, Options, PatchContext, Phase, Plugin, PullPolicy,
};
use palisade_suite::input::read_document;
use serde_json::Value;

use crate::output;
use crate::package::read_filter;
use crate::push::{RegistryArgs, runtime};

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
    #[arg(long = "selector", value_name = "KEY=VALUE", value_parser = istio::parse_label)]
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

/// An image: its digest pinned in the reference, given with `--digest`, or the registry's.
fn oci_module(reference: &str, args: &IstioArgs) -> anyhow::Result<Module> {
    ensure!(
        args.url.is_none(),
        "--url is for a .wasm file; an oci:// reference is its own url"
    );
    ensure!(!reference.is_empty(), "empty oci:// reference");
    let pinned = reference
        .split_once('@')
        .map(|(_, digest)| istio::digest_hex(digest, "the reference's digest"))
        .transpose()?;
    let given = args
        .digest
        .as_deref()
        .map(|d| istio::digest_hex(d, "--digest"))
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
            istio::digest_hex(&digest, "the registry's digest")?
        }
    };
    Ok(Module::oci(reference, &sha256))
}

/// A module file served from `--url`, with its own SHA-256.
fn file_module(path: &str, args: &IstioArgs) -> anyhow::Result<Module> {
    ensure!(
        args.digest.is_none(),
        "--digest is for an oci:// reference; a .wasm file's sha256 is computed"
    );
    let path = PathBuf::from(path);
    let (_, module) = read_filter(&path)?;
    let url = args.url.as_deref().with_context(|| {
        format!(
            "--url is required with a .wasm file: where sidecars download {} from (http, https or file)",
            path.display()
        )
    })?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Module::served(url, &module.sha256, &stem)?)
}

pub(crate) fn istio(args: &IstioArgs) -> anyhow::Result<ExitCode> {
    let module = match args.source.strip_prefix("oci://") {
        Some(reference) => oci_module(reference, args)?,
        None => file_module(&args.source, args)?,
    };
    let config = match read_document::<Value>(&args.config)? {
        Value::Object(map) => map,
        other => bail!(
            "{}: the plugin configuration must be an object (a protobuf Struct), not {other}",
            args.config.display()
        ),
    };
    let plugin = Plugin::new(
        args.name.clone(),
        &args.namespace,
        module,
        config,
        args.selector.iter().cloned().collect(),
    )?;
    let options = Options {
        phase: args.phase,
        priority: args.priority,
        fail_strategy: args.fail_strategy,
        pull_policy: args.image_pull_policy,
        plugin_name: args.plugin_name.clone(),
        context: args.context,
    };
    let yaml = if args.envoyfilter {
        if args.priority.is_some() {
            tracing::warn!("--priority has no EnvoyFilter equivalent; ignored");
        }
        serde_yaml::to_string(&istio::envoy_filter(&plugin, &options))?
    } else {
        serde_yaml::to_string(&istio::wasm_plugin(&plugin, &options))?
    };
    output::text(yaml)?;
    Ok(ExitCode::SUCCESS)
}
