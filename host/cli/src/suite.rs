//! `palisade test`: data-driven suites. A suite names a policy, default settings and cases
//! (an AdmissionReview file, or for a proxy-wasm filter a proxy scenario, and what to expect);
//! each case prints a pass/fail line, the run ends with `N passed, N failed`, and `--junit`
//! writes a JUnit XML report for CI.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use palisade_proxy::{Filter, Outcome, Report, RunOptions};
use palisade_runtime::Abi;
use palisade_runtime::admission::{Options, Prepared};
use palisade_sdk::wire::Verdict;
use serde::Deserialize;

use crate::{EngineArgs, input, proxy, run};

/// Arguments of `palisade test`.
#[derive(Debug, Args)]
pub(crate) struct TestArgs {
    /// Suite files (YAML or JSON).
    #[arg(required = true, value_name = "SUITE")]
    suites: Vec<PathBuf>,
    /// Also write a JUnit XML report to this file.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
}

/// A suite file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Suite {
    /// The policy module, relative to the suite file.
    policy: PathBuf,
    /// Settings for every case that does not set its own.
    #[serde(default)]
    settings: Option<serde_json::Value>,
    /// The cases, run in order.
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    /// AdmissionReview or AdmissionRequest file, relative to the suite file (admission policies).
    #[serde(default)]
    request: Option<PathBuf>,
    /// Proxy scenario file, relative to the suite file (proxy-wasm filters); the settings, when
    /// given, replace its plugin configuration.
    #[serde(default)]
    scenario: Option<PathBuf>,
    #[serde(default)]
    settings: Option<serde_json::Value>,
    expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    /// Whether the request must be allowed.
    #[serde(default)]
    allowed: Option<bool>,
    /// The exact reason.
    #[serde(default)]
    reason: Option<String>,
    /// A substring of the message.
    #[serde(default)]
    message: Option<String>,
    /// A substring of the error: the case expects the policy to fail (settings or evaluation).
    #[serde(default)]
    error: Option<String>,
    /// Proxy: whether the plugin must be accepted (a substring of the rejection otherwise:
    /// use `error`).
    #[serde(default)]
    accepted: Option<bool>,
    /// Proxy: what must hold of each request of the scenario, in order.
    #[serde(default)]
    requests: Option<Vec<ExpectRequest>>,
}

/// What a proxy scenario's request must show.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ExpectRequest {
    /// `upstream`, `local-reply`, `reset`, `fail-closed`, `fail-open` or `pending`.
    #[serde(default)]
    outcome: Option<Outcome>,
    /// The status the client got.
    #[serde(default)]
    status: Option<u16>,
    /// Headers the filter must have added to the request sent upstream.
    #[serde(default)]
    headers_added: Option<BTreeMap<String, String>>,
    /// Headers the filter must have removed from the request.
    #[serde(default)]
    headers_removed: Option<Vec<String>>,
    /// Headers the client's response must carry.
    #[serde(default)]
    response_headers: Option<BTreeMap<String, String>>,
    /// A substring of the body the client got.
    #[serde(default)]
    body: Option<String>,
}

/// A suite's policy, by ABI.
#[derive(Clone)]
enum Loaded {
    Admission(Arc<Prepared>),
    Proxy(Arc<Filter>),
}

struct CaseResult {
    suite: String,
    name: String,
    failure: Option<String>,
    seconds: f64,
}

pub(crate) fn test(args: &TestArgs, engine_args: &EngineArgs) -> anyhow::Result<ExitCode> {
    let engine = engine_args.engine()?;
    let mut policies: BTreeMap<PathBuf, Loaded> = BTreeMap::new();
    let mut results = Vec::new();
    for path in &args.suites {
        let suite: Suite = input::read_document(path)?;
        if suite.cases.is_empty() {
            bail!("suite {} has no cases", path.display());
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let policy_path = base.join(&suite.policy);
        let prepared = match policies.get(&policy_path) {
            Some(p) => p.clone(),
            None => {
                let module = input::read_module(&policy_path)
                    .with_context(|| format!("in suite {}", path.display()))?;
                let loading = || {
                    format!(
                        "loading policy {} of suite {}",
                        policy_path.display(),
                        path.display()
                    )
                };
                let loaded = match Abi::detect(&module).with_context(loading)? {
                    Abi::ProxyWasm { .. } => Loaded::Proxy(Arc::new(
                        Filter::new(&engine, &module).with_context(loading)?,
                    )),
                    _ => Loaded::Admission(Arc::new(
                        Prepared::new(&engine, &module).with_context(loading)?,
                    )),
                };
                policies.insert(policy_path.clone(), loaded.clone());
                loaded
            }
        };
        let suite_name = path.display().to_string();
        for case in &suite.cases {
            let started = Instant::now();
            let limits = engine.default_limits();
            let failure = run_case(&prepared, base, suite.settings.as_ref(), case, limits)
                .err()
                .map(|e| format!("{e:#}"));
            let result = CaseResult {
                suite: suite_name.clone(),
                name: case.name.clone(),
                failure,
                seconds: started.elapsed().as_secs_f64(),
            };
            match &result.failure {
                None => println!("PASS {} :: {}", result.suite, result.name),
                Some(why) => println!("FAIL {} :: {}: {why}", result.suite, result.name),
            }
            results.push(result);
        }
    }
    let failed = results.iter().filter(|r| r.failure.is_some()).count();
    let passed = results.len().saturating_sub(failed);
    println!("{passed} passed, {failed} failed");
    if let Some(junit) = &args.junit {
        write_junit(junit, &results)?;
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn run_case(
    loaded: &Loaded,
    base: &Path,
    suite_settings: Option<&serde_json::Value>,
    case: &Case,
    limits: palisade_runtime::Limits,
) -> anyhow::Result<()> {
    let prepared = match (loaded, &case.request, &case.scenario) {
        (Loaded::Admission(prepared), Some(_), None) => prepared,
        (Loaded::Proxy(filter), None, Some(scenario)) => {
            let mut scenario = proxy::read_scenario(&base.join(scenario))?;
            if let Some(settings) = case.settings.as_ref().or(suite_settings) {
                scenario.plugin.configuration = Some(settings.clone());
            }
            let options = RunOptions {
                limits,
                trace: false,
            };
            let (report, _) = palisade_proxy::run(filter, &scenario, options);
            return check_proxy(&case.expect, &report);
        }
        (Loaded::Admission(_), _, _) => {
            bail!("an admission policy's case needs `request` (and no `scenario`)")
        }
        (Loaded::Proxy(_), _, _) => {
            bail!("a proxy filter's case needs `scenario` (and no `request`)")
        }
    };
    let Some(request) = &case.request else {
        bail!("the case needs `request`");
    };
    let request = run::read_request(&base.join(request))?.request;
    let settings = case
        .settings
        .as_ref()
        .or(suite_settings)
        .map(ToString::to_string)
        .unwrap_or_default();
    let outcome = prepared
        .configure(&settings, Options::default())
        .map_err(anyhow::Error::from)
        .and_then(|policy| {
            policy
                .evaluate_blocking(&request)
                .result
                .map_err(anyhow::Error::from)
        });
    check(&case.expect, outcome)
}

fn check(expect: &Expect, outcome: anyhow::Result<Verdict>) -> anyhow::Result<()> {
    let verdict = match (outcome, &expect.error) {
        (Err(e), Some(wanted)) => {
            let text = format!("{e:#}");
            if text.contains(wanted.as_str()) {
                return Ok(());
            }
            bail!("expected an error containing {wanted:?}, got: {text}");
        }
        (Err(e), None) => bail!("the policy failed: {e:#}"),
        (Ok(verdict), Some(wanted)) => {
            bail!(
                "expected an error containing {wanted:?}, got a verdict: {}",
                run::summary("policy", &verdict)
            )
        }
        (Ok(verdict), None) => verdict,
    };
    let mut problems = Vec::new();
    if let Some(allowed) = expect.allowed
        && verdict.allowed != allowed
    {
        problems.push(format!(
            "expected allowed={allowed}, got allowed={}",
            verdict.allowed
        ));
    }
    if let Some(reason) = &expect.reason
        && &verdict.reason != reason
    {
        problems.push(format!(
            "expected reason {reason:?}, got {:?}",
            verdict.reason
        ));
    }
    if let Some(message) = &expect.message
        && !verdict.message.contains(message.as_str())
    {
        problems.push(format!(
            "expected the message to contain {message:?}, got {:?}",
            verdict.message
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("{}", problems.join("; "))
    }
}

/// Checks a proxy scenario's report against the expectations.
fn check_proxy(expect: &Expect, report: &Report) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    match (&report.rejected, &expect.error) {
        (Some(reason), Some(wanted)) if reason.contains(wanted.as_str()) => return Ok(()),
        (Some(reason), Some(wanted)) => {
            bail!("expected the plugin to be rejected with {wanted:?}, got: {reason}")
        }
        (None, Some(wanted)) => {
            bail!("expected the plugin to be rejected with {wanted:?}, it was accepted")
        }
        (Some(reason), None) if expect.accepted != Some(false) => {
            bail!("the plugin was rejected: {reason}")
        }
        _ => {}
    }
    if let Some(accepted) = expect.accepted
        && accepted != report.accepted
    {
        problems.push(format!(
            "expected accepted={accepted}, got {}",
            report.accepted
        ));
    }
    for (i, wanted) in expect.requests.iter().flatten().enumerate() {
        let Some(got) = report.requests.get(i) else {
            problems.push(format!(
                "request {}: the scenario has no such request",
                i + 1
            ));
            continue;
        };
        let label = &got.name;
        if let Some(outcome) = wanted.outcome
            && got.outcome != outcome
        {
            problems.push(format!(
                "{label}: expected outcome {outcome}, got {}",
                got.outcome
            ));
        }
        let response = got.response.as_ref();
        if let Some(status) = wanted.status
            && response.map(|r| r.status) != Some(status)
        {
            problems.push(format!(
                "{label}: expected status {status}, got {}",
                response.map_or("no response".into(), |r| r.status.to_string())
            ));
        }
        if let Some(body) = &wanted.body
            && !response.is_some_and(|r| r.body.contains(body.as_str()))
        {
            problems.push(format!(
                "{label}: expected the response body to contain {body:?}"
            ));
        }
        for (name, value) in wanted.response_headers.iter().flatten() {
            if response.and_then(|r| r.headers.get(name)) != Some(value.as_str()) {
                problems.push(format!("{label}: expected response header {name}: {value}"));
            }
        }
        let upstream = got.upstream.as_ref();
        for (name, value) in wanted.headers_added.iter().flatten() {
            let added = upstream
                .is_some_and(|u| u.headers_added.iter().any(|(k, v)| k == name && v == value));
            if !added {
                problems.push(format!(
                    "{label}: expected the request to gain {name}: {value}"
                ));
            }
        }
        for name in wanted.headers_removed.iter().flatten() {
            if !upstream.is_some_and(|u| u.headers_removed.iter().any(|(k, _)| k == name)) {
                problems.push(format!("{label}: expected the request to lose {name}"));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("{}", problems.join("; "))
    }
}

fn write_junit(path: &Path, results: &[CaseResult]) -> anyhow::Result<()> {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let mut report = Report::new("palisade");
    let mut suites: BTreeMap<&str, TestSuite> = BTreeMap::new();
    for result in results {
        let status = match &result.failure {
            None => TestCaseStatus::success(),
            Some(why) => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status.set_message(why.as_str());
                status
            }
        };
        let mut case = TestCase::new(result.name.as_str(), status);
        case.set_time(std::time::Duration::from_secs_f64(result.seconds));
        suites
            .entry(result.suite.as_str())
            .or_insert_with(|| TestSuite::new(result.suite.as_str()))
            .add_test_case(case);
    }
    report.add_test_suites(suites.into_values());
    let xml = report.to_string().context("rendering the JUnit report")?;
    std::fs::write(path, xml).with_context(|| format!("writing {}", path.display()))
}
