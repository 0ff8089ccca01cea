//! `palisade run`: one policy, one request, the AdmissionReview response on stdout and a
//! one-line summary on stderr. Exit code 0 allowed, 1 denied, 2 error (fail closed).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};
use palisade_runtime::component::Prepared;
use palisade_runtime::proxy_wasm::{Filter, RunOptions};
use palisade_runtime::review;
use palisade_sdk::wire::Verdict;

use crate::{EngineArgs, input, proxy};

/// Arguments of `palisade run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The policy module: a Palisade admission component, or a proxy-wasm filter with `--http`.
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// The AdmissionReview (or bare AdmissionRequest) to evaluate, JSON or YAML.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "http",
        conflicts_with = "http"
    )]
    request: Option<PathBuf>,
    /// A proxy scenario (plugin configuration, connection, clusters, requests, time advances),
    /// YAML or JSON, run through the filter as Envoy would; prints the report as JSON.
    #[arg(long, value_name = "FILE")]
    http: Option<PathBuf>,
    /// With `--http`: print every callback and hostcall with its status to stderr.
    #[arg(long, requires = "http")]
    trace: bool,
    /// The policy's settings, JSON or YAML [default: the policy's defaults].
    #[arg(long, value_name = "FILE")]
    settings: Option<PathBuf>,
    /// Output format of the response.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    output: Format,
}

/// How `palisade run` prints the response.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Format {
    /// Pretty-printed JSON.
    Json,
    /// YAML.
    Yaml,
}

pub(crate) fn run(args: &RunArgs, engine_args: &EngineArgs) -> anyhow::Result<ExitCode> {
    if let Some(scenario) = &args.http {
        return run_http(args, scenario, engine_args);
    }
    let Some(request_path) = &args.request else {
        anyhow::bail!("give --request (an AdmissionReview) or --http (a proxy scenario)");
    };
    let (api_version, request) = read_request(request_path)?;
    let settings = args
        .settings
        .as_deref()
        .map(input::read_as_json)
        .transpose()?
        .unwrap_or_default();
    let engine = engine_args.engine()?;
    let module = input::read_module(&args.policy)?;
    let prepared = Arc::new(
        Prepared::new(&engine, &module)
            .with_context(|| format!("loading policy {}", args.policy.display()))?,
    );
    let policy = prepared
        .configure(&settings, None)
        .with_context(|| format!("configuring policy {}", args.policy.display()))?;
    let name = prepared.metadata().name.clone();
    let (verdict, code) = match policy.evaluate(&request) {
        Ok(verdict) => {
            let code = if verdict.allowed { 0 } else { 1 };
            (verdict, code)
        }
        Err(e) => {
            let backtrace = match &e {
                palisade_runtime::EvalError::Trap { backtrace, .. } => backtrace.as_str(),
                _ => "",
            };
            tracing::error!(policy = %name, uid = %request.uid, error = %e, backtrace, "evaluation failed");
            (review::policy_error_verdict(&name, &e), 2)
        }
    };
    print_response(
        &review::response(&api_version, &request.uid, &verdict),
        args.output,
    )?;
    eprintln!("{}", summary(&name, &verdict));
    Ok(ExitCode::from(code))
}

/// `palisade run --http`: one scenario through a proxy-wasm filter. Exit code 0 when the plugin
/// was accepted, 1 when Envoy would have rejected it (start or configure failed).
fn run_http(args: &RunArgs, scenario: &Path, engine_args: &EngineArgs) -> anyhow::Result<ExitCode> {
    let scenario = proxy::read_scenario(scenario)?;
    let engine = engine_args.engine()?;
    let module = input::read_module(&args.policy)?;
    let filter = Filter::new(&engine, &module)
        .with_context(|| format!("loading filter {}", args.policy.display()))?;
    let options = RunOptions {
        limits: engine.default_limits(),
        trace: args.trace,
    };
    let (report, trace) = palisade_runtime::proxy_wasm::run(&filter, &scenario, options);
    for line in trace {
        eprintln!("{line}");
    }
    let text = match args.output {
        Format::Json => serde_json::to_string_pretty(&report)?,
        Format::Yaml => serde_yaml::to_string(&report)?,
    };
    println!("{}", text.trim_end());
    for request in &report.requests {
        eprintln!("{}", proxy::summary(request));
    }
    if let Some(reason) = &report.rejected {
        eprintln!("plugin rejected: {reason}");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads an AdmissionReview or AdmissionRequest from JSON or YAML.
pub(crate) fn read_request(
    path: &Path,
) -> anyhow::Result<(String, palisade_sdk::wire::AdmissionRequest)> {
    let json = input::read_as_json(path)?;
    review::parse(&json).with_context(|| format!("reading the request in {}", path.display()))
}

fn print_response(
    response: &palisade_sdk::wire::AdmissionReview,
    format: Format,
) -> anyhow::Result<()> {
    let text = match format {
        Format::Json => serde_json::to_string_pretty(response)?,
        Format::Yaml => serde_yaml::to_string(response)?,
    };
    println!("{}", text.trim_end());
    Ok(())
}

/// The one-line human summary: decision, policy, reason and message.
pub(crate) fn summary(policy: &str, verdict: &Verdict) -> String {
    let decision = if verdict.allowed { "allowed" } else { "denied" };
    let mut line = format!("{decision} by {policy} ({})", verdict.reason);
    if !verdict.message.is_empty() {
        line.push_str(": ");
        line.push_str(&verdict.message);
    }
    line
}
