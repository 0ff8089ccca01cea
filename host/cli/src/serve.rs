//! `palisade serve`: the admission webhook, configured by a `palisade.yaml`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use palisade_webhook::ServeOptions;

use crate::EngineArgs;

/// Arguments of `palisade serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The configuration file (listen address, TLS, limits, policies, groups).
    #[arg(long, value_name = "FILE", env = "PALISADE_CONFIG")]
    config: PathBuf,
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
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("palisade-worker")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(palisade_webhook::serve(options, engine))?;
    Ok(ExitCode::SUCCESS)
}
