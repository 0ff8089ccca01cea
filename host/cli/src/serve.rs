//! `palisade serve`: the admission webhook, configured by a `palisade.yaml`, or by Kubewarden
//! policy-server's `policies.yml` with policy-server's own flags.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use palisade_webhook::ServeOptions;
use palisade_webhook::config::TlsConfig;
use palisade_webhook::kubewarden::ServerFlags;
use palisade_webhook::registry::RegistryConfig;

use crate::EngineArgs;

/// Arguments of `palisade serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The configuration file: a palisade.yaml (listen address, TLS, limits, policies, groups),
    /// or Kubewarden policy-server's policies.yml (told apart by its shape).
    #[arg(
        long,
        visible_alias = "policies",
        value_name = "FILE",
        env = "PALISADE_CONFIG"
    )]
    config: PathBuf,
    /// policy-server's own flags, for a policies.yml.
    #[command(flatten)]
    policy_server: PolicyServerArgs,
    /// Serve plain HTTP instead of HTTPS; for local testing only.
    #[arg(long)]
    insecure_http: bool,
    /// Report ready only when every policy loaded (by default: once every policy was tried).
    #[arg(long)]
    strict_ready: bool,
    /// How often configuration, module and certificate files are checked for changes, in ms.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    watch_interval_ms: u64,
}

/// policy-server's flags, which a policies.yml needs and a palisade.yaml refuses.
#[derive(Debug, Args)]
#[command(next_help_heading = "policy-server flags (with a policies.yml)")]
struct PolicyServerArgs {
    /// The address to listen on, as policy-server's --addr [default: 0.0.0.0].
    #[arg(long, value_name = "IP")]
    addr: Option<IpAddr>,
    /// The port, as policy-server's --port [default: 3000].
    #[arg(long, value_name = "PORT")]
    port: Option<u16>,
    /// The serving certificate (PEM), as policy-server's --cert-file.
    #[arg(long, value_name = "FILE", requires = "key_file")]
    cert_file: Option<PathBuf>,
    /// The serving key (PEM), as policy-server's --key-file.
    #[arg(long, value_name = "FILE", requires = "cert_file")]
    key_file: Option<PathBuf>,
    /// Clients must present a certificate this CA signed (--client-ca-file).
    #[arg(long, value_name = "FILE", requires = "cert_file")]
    client_ca_file: Option<PathBuf>,
    /// A plain-HTTP port for /readyz, /healthz and /metrics
    /// (--readiness-probe-port).
    #[arg(long, value_name = "PORT")]
    readiness_probe_port: Option<u16>,
    /// The evaluation deadline of policies without timeoutEvalSeconds, in
    /// seconds (--policy-timeout) [default: 2].
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=30))]
    policy_timeout: Option<u64>,
    /// A directory of Kubernetes manifests the kubernetes/* host
    /// operations answer from (policy-server asks the API server).
    #[arg(long, value_name = "DIR")]
    kubernetes_dir: Option<PathBuf>,
    /// A Docker config file with registry credentials, for registry:// modules and the oci/*
    /// host operations (--docker-config-json-path).
    #[arg(long, value_name = "FILE")]
    docker_config_json_path: Option<PathBuf>,
    /// policy-server's sources file: its `insecure_sources` (registries spoken to over plain
    /// HTTP, HTTPS hosts whose certificate is not checked) (--sources-path).
    #[arg(long, value_name = "FILE")]
    sources_path: Option<PathBuf>,
}

pub(crate) fn serve(args: &ServeArgs, engine_args: &EngineArgs) -> anyhow::Result<ExitCode> {
    let engine = engine_args.engine()?;
    let options = ServeOptions {
        config: args.config.clone(),
        insecure_http: args.insecure_http,
        strict_ready: args.strict_ready,
        watch_interval: Duration::from_millis(args.watch_interval_ms.max(100)),
        flags: args.policy_server.flags()?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("palisade-worker")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(palisade_webhook::serve(options, engine))?;
    Ok(ExitCode::SUCCESS)
}

impl PolicyServerArgs {
    /// The flags as the webhook takes them; paths relative to where the command runs.
    fn flags(&self) -> anyhow::Result<ServerFlags> {
        let ip = self.addr.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let absolute = |path: &PathBuf| std::path::absolute(path).unwrap_or_else(|_| path.clone());
        let mut registry = RegistryConfig {
            docker_config: self.docker_config_json_path.as_ref().map(absolute),
            ..RegistryConfig::default()
        };
        if let Some(path) = &self.sources_path {
            registry.insecure_registries = insecure_sources(path)?;
        }
        Ok(ServerFlags {
            listen: (self.addr.is_some() || self.port.is_some())
                .then(|| SocketAddr::new(ip, self.port.unwrap_or(3000))),
            tls: match (&self.cert_file, &self.key_file) {
                (Some(cert), Some(key)) => Some(TlsConfig {
                    cert: cert.clone(),
                    key: key.clone(),
                    client_ca: self.client_ca_file.clone(),
                }),
                _ => None,
            },
            readiness: self
                .readiness_probe_port
                .map(|port| SocketAddr::new(ip, port)),
            policy_timeout: self.policy_timeout.map(Duration::from_secs),
            kubernetes_directory: self.kubernetes_dir.as_ref().map(absolute),
            registry,
        })
    }
}

/// policy-fetcher's sources file: `insecure_sources` is taken; `source_authorities` (extra CA
/// certificates per host) is refused, naming the file.
fn insecure_sources(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Sources {
        #[serde(default)]
        insecure_sources: Vec<String>,
        #[serde(default)]
        source_authorities: serde_yaml::Mapping,
    }
    let text = palisade_suite::input::read_text(path)?;
    let sources: Sources = serde_yaml::from_str(&text)
        .with_context(|| format!("{}: not a policy-server sources file", path.display()))?;
    if !sources.source_authorities.is_empty() {
        anyhow::bail!(
            "{}: source_authorities is not supported; add the CA to the system's trust store",
            path.display()
        );
    }
    Ok(sources.insecure_sources)
}
