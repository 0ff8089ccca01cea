//! `palisade run`: one policy, one request, the AdmissionReview response on stdout and a
//! one-line summary on stderr. Exit code 0 allowed, 1 denied, 2 error (fail closed).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};
use palisade_runtime::component::Prepared;
use palisade_runtime::review;
use palisade_sdk::wire::Verdict;

use crate::{EngineArgs, input};

/// Arguments of `palisade run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The policy module (a Palisade admission component, .wasm).
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// The AdmissionReview (or bare AdmissionRequest) to evaluate, JSON or YAML.
    #[arg(long, value_name = "FILE")]
    request: PathBuf,
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
    let (api_version, request) = read_request(&args.request)?;
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
