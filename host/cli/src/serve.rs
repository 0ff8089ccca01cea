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
    /// With a policies.yml: the address to listen on, as policy-server's --addr [default: 0.0.0.0].
    #[arg(
        long,
        value_name = "IP",
        help_heading = "policy-server flags (with a policies.yml)"
    )]
    addr: Option<IpAddr>,
    /// With a policies.yml: the port, as policy-server's --port [default: 3000].
    #[arg(
        long,
        value_name = "PORT",
        help_heading = "policy-server flags (with a policies.yml)"
    )]
    port: Option<u16>,
    /// With a policies.yml: the serving certificate (PEM), as policy-server's --cert-file.
    #[arg(
        long,
        value_name = "FILE",
        requires = "key_file",
        help_heading = "policy-server flags (with a policies.yml)"
    )]
    cert_file: Option<PathBuf>,
    /// With a policies.yml: the serving key (PEM), as policy-server's --key-file.
    #[arg(
        long,
        value_name = "FILE",
        requires = "cert_file",
        help_heading = "policy-server flags (with a policies.yml)"
    )]
    key_file: Option<PathBuf>,
    /// With a policies.yml: clients must present a certificate this CA signed (--client-ca-file).
    #[arg(
        long,
        value_name = "FILE",
        requires = "cert_file",
        help_heading = "policy-server flags (with a policies.yml)"
    )]
    client_ca_file: Option<PathBuf>,
    /// With a policies.yml: a plain-HTTP port for /readyz, /healthz and /metrics
    /// (--readiness-probe-port).
    #[arg(
        long,
        value_name = "PORT",
        help_heading = "policy-server flags (with a policies.yml)"
    )]
    readiness_probe_port: Option<u16>,
    /// With a policies.yml: the evaluation deadline of policies without timeoutEvalSeconds, in
    /// seconds (--policy-timeout).
    #[arg(long, default_value_t = 2, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=30), help_heading = "policy-server flags (with a policies.yml)")]
    policy_timeout: u64,
    /// With a policies.yml: a directory of Kubernetes manifests the kubernetes/* host
    /// operations answer from (policy-server asks the API server).
    #[arg(
        long,
        value_name = "DIR",
        help_heading = "policy-server flags (with a policies.yml)"
    )]
    kubernetes_dir: Option<PathBuf>,
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

pub(crate) fn serve(args: &ServeArgs, engine_args: &EngineArgs) -> anyhow::Result<ExitCode> {
    let engine = engine_args.engine()?;
    let options = ServeOptions {
        config: args.config.clone(),
        insecure_http: args.insecure_http,
        strict_ready: args.strict_ready,
        watch_interval: Duration::from_millis(args.watch_interval_ms.max(100)),
        flags: flags(args),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("palisade-worker")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(palisade_webhook::serve(options, engine))?;
    Ok(ExitCode::SUCCESS)
}

/// policy-server's flags, for a policies.yml.
fn flags(args: &ServeArgs) -> ServerFlags {
    let ip = args.addr.unwrap_or(IpAddr::from([0, 0, 0, 0]));
    ServerFlags {
        listen: (args.addr.is_some() || args.port.is_some())
            .then(|| SocketAddr::new(ip, args.port.unwrap_or(3000))),
        tls: match (&args.cert_file, &args.key_file) {
            (Some(cert), Some(key)) => Some(TlsConfig {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: args.client_ca_file.clone(),
            }),
            _ => None,
        },
        readiness: args
            .readiness_probe_port
            .map(|port| SocketAddr::new(ip, port)),
        policy_timeout: Duration::from_secs(args.policy_timeout),
        // Relative to where the command runs, not to the policies.yml.
        kubernetes_directory: args
            .kubernetes_dir
            .as_ref()
            .map(|dir| std::path::absolute(dir).unwrap_or_else(|_| dir.clone())),
    }
}
