//! `palisade run`: one policy (or a policy or group of a server configuration), one request,
//! the AdmissionReview response on stdout and a one-line summary on stderr. The answer is the
//! one `palisade serve` gives: same codec, same failurePolicy and mode. Exit code 0 allowed,
//! 1 denied, 2 error (the policy failed, or the inputs are unusable).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use palisade_proxy::{Filter, RunOptions};
use palisade_runtime::admission::{Decision, FailurePolicy, Mode, Options, Prepared, review};
use palisade_runtime::capabilities::{Grants, StateLimits};
use palisade_sdk::wire::Verdict;
use palisade_webhook::{Config, PolicySet};

use palisade_suite::input;

use crate::host::HostArgs;
use crate::{EngineArgs, output, proxy};

/// Arguments of `palisade run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The policy module: an admission policy, or a proxy-wasm filter with `--http`.
    #[arg(long, value_name = "FILE", required_unless_present = "config")]
    policy: Option<PathBuf>,
    /// A server configuration (as `palisade serve` reads it): run its policy or group `--id`
    /// with the configured settings, limits, failurePolicy and mode.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["policy", "settings", "http"], requires = "id")]
    config: Option<PathBuf>,
    /// The id of the policy or group (with `--config`), or the id the policy is named by in
    /// decisions and logs [default: the policy's name].
    #[arg(long, value_name = "ID")]
    id: Option<String>,
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
    /// What a failure to decide becomes (without `--config`).
    #[arg(long, value_enum, default_value_t = FailureArg::Fail, conflicts_with = "config")]
    failure_policy: FailureArg,
    /// Whether denials are enforced (without `--config`).
    #[arg(long, value_enum, default_value_t = ModeArg::Protect, conflicts_with = "config")]
    mode: ModeArg,
    /// Answer as the webhook's `/mutate/<id>` (with the policy's patch) or `/validate/<id>`
    /// (without).
    #[arg(long, value_enum, default_value_t = Endpoint::Mutate)]
    endpoint: Endpoint,
    /// Output format of the response.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    output: Format,
    #[command(flatten)]
    host: HostArgs,
}

/// How `palisade run` prints the response.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Format {
    /// Pretty-printed JSON.
    Json,
    /// The bytes the webhook sends: compact JSON.
    Compact,
    /// YAML.
    Yaml,
}

/// The webhook endpoint `palisade run` answers as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Endpoint {
    /// `/mutate/<id>`: the patch is kept.
    Mutate,
    /// `/validate/<id>`: the patch is dropped.
    Validate,
}

/// A failurePolicy on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum FailureArg {
    /// Deny (fail closed).
    #[value(name = "Fail")]
    Fail,
    /// Allow with a warning (fail open).
    #[value(name = "Ignore")]
    Ignore,
}

/// A mode on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ModeArg {
    /// Denials deny.
    Protect,
    /// Denials are allowed and recorded.
    Monitor,
}

pub(crate) fn run(args: &RunArgs, engine_args: &EngineArgs) -> anyhow::Result<ExitCode> {
    if let Some(scenario) = &args.http {
        return run_http(args, scenario, engine_args);
    }
    let Some(request_path) = &args.request else {
        bail!("give --request (an AdmissionReview) or --http (a proxy scenario)");
    };
    let review = input::read_request(request_path)?;
    let engine = engine_args.engine()?;
    let (name, decision) = match (&args.config, &args.policy) {
        (Some(config), _) => decide_configured(args, config, &engine, &review)?,
        (None, Some(policy)) => decide_policy(args, policy, &engine, &review)?,
        (None, None) => bail!("give --policy (a module) or --config (a server configuration)"),
    };
    let decision = if args.endpoint == Endpoint::Validate {
        decision.without_patch()
    } else {
        decision
    };
    let verdict = &decision.verdict;
    let uid = &review.request.uid;
    let text = match args.output {
        Format::Json => {
            serde_json::to_string_pretty(&review::response(&review.api_version, uid, verdict))?
        }
        Format::Compact => String::from_utf8(review::encode(&review.api_version, uid, verdict)?)?,
        Format::Yaml => {
            serde_yaml::to_string(&review::response(&review.api_version, uid, verdict))?
        }
    };
    output::line(text.trim_end())?;
    output::note(summary(&name, verdict));
    Ok(ExitCode::from(if !decision.errors.is_empty() {
        2
    } else if verdict.allowed {
        0
    } else {
        1
    }))
}

/// A module with settings from the command line.
fn decide_policy(
    args: &RunArgs,
    path: &Path,
    engine: &palisade_runtime::Engine,
    review: &review::Review,
) -> anyhow::Result<(String, Decision)> {
    let settings = args
        .settings
        .as_deref()
        .map(input::read_as_json)
        .transpose()?
        .unwrap_or_default();
    let module = input::read_module(path)?;
    let prepared = Arc::new(
        Prepared::new(engine, &module)
            .with_context(|| format!("loading policy {}", path.display()))?,
    );
    let session = args.host.session()?;
    let capabilities =
        args.host
            .capabilities(args.host.data()?, StateLimits::default(), session.clone())?;
    let options = Options {
        id: args.id.clone(),
        capabilities: Some(capabilities),
        grants: args.host.grants()?,
        failure_policy: match args.failure_policy {
            FailureArg::Fail => FailurePolicy::Fail,
            FailureArg::Ignore => FailurePolicy::Ignore,
        },
        mode: match args.mode {
            ModeArg::Protect => Mode::Protect,
            ModeArg::Monitor => Mode::Monitor,
        },
        ..Options::default()
    };
    let policy = prepared
        .configure(&settings, options)
        .with_context(|| format!("configuring policy {}", path.display()))?;
    let decision = policy.decide_blocking(&review.request);
    args.host.finish(session.as_deref())?;
    Ok((policy.id().to_owned(), decision))
}

/// A policy or group of a server configuration, loaded as the server loads it (its data
/// tables, state bounds and grants; the clock is `--now`'s or the system's).
fn decide_configured(
    args: &RunArgs,
    path: &Path,
    engine: &palisade_runtime::Engine,
    review: &review::Review,
) -> anyhow::Result<(String, Decision)> {
    let Some(id) = args.id.as_deref() else {
        bail!("--config needs --id (the policy or group to run)");
    };
    let config = Config::load(path)?;
    let Some(config) = config.only(id) else {
        bail!("{}: no policy or group has the id {id:?}", path.display());
    };
    if args.host.grants()? != Grants::default() {
        bail!("--capability does not apply with --config: its policies have their own grants");
    }
    let session = args.host.session()?;
    let capabilities =
        args.host
            .capabilities(config.load_data()?, config.state.into(), session.clone())?;
    let set = PolicySet::load(&config, engine, &capabilities);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // The configuration's endpoint is chosen by `--endpoint`: decide as /mutate does.
    let decision = runtime
        .block_on(set.decide(id, &review.request, palisade_webhook::Endpoint::Mutate))
        .with_context(|| format!("{}: no policy or group has the id {id:?}", path.display()))?;
    args.host.finish(session.as_deref())?;
    Ok((id.to_owned(), decision))
}

/// `palisade run --http`: one scenario through a proxy-wasm filter. Exit code 0 when the plugin
/// was accepted, 1 when Envoy would have rejected it (start or configure failed).
fn run_http(args: &RunArgs, scenario: &Path, engine_args: &EngineArgs) -> anyhow::Result<ExitCode> {
    let Some(policy) = &args.policy else {
        bail!("--http needs --policy (the filter)");
    };
    let scenario: palisade_proxy::Scenario = input::read_document(scenario)?;
    let engine = engine_args.engine()?;
    let module = input::read_module(policy)?;
    let filter = Filter::new(&engine, &module)
        .with_context(|| format!("loading filter {}", policy.display()))?;
    let options = RunOptions {
        limits: engine.default_limits(),
        trace: args.trace,
    };
    let (report, trace) = palisade_proxy::run(&filter, &scenario, options);
    for line in trace {
        output::note(line);
    }
    let text = match args.output {
        Format::Json => serde_json::to_string_pretty(&report)?,
        Format::Compact => serde_json::to_string(&report)?,
        Format::Yaml => serde_yaml::to_string(&report)?,
    };
    output::line(text.trim_end())?;
    for request in &report.requests {
        output::note(proxy::summary(request));
    }
    if let Some(reason) = &report.rejected {
        output::note(format_args!("plugin rejected: {reason}"));
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// The one-line human summary: decision, policy, reason and message.
pub(crate) fn summary(policy: &str, verdict: &Verdict) -> String {
    let decision = if verdict.allowed { "allowed" } else { "denied" };
    let mut line = format!("{decision} by {policy}");
    // Kubewarden policies give no reason.
    if !verdict.reason.is_empty() {
        line.push_str(&format!(" ({})", verdict.reason));
    }
    if !verdict.message.is_empty() {
        line.push_str(": ");
        line.push_str(&verdict.message);
    }
    line
}
