//! `palisade test`: data-driven suites. A suite names a policy, default settings and cases
//! (a request file and what to expect); each case prints a pass/fail line, the run ends with
//! `N passed, N failed`, and `--junit` writes a JUnit XML report for CI.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use palisade_runtime::component::Prepared;
use palisade_sdk::wire::Verdict;
use serde::Deserialize;

use crate::{EngineArgs, input, run};

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
    /// AdmissionReview or AdmissionRequest file, relative to the suite file.
    request: PathBuf,
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
}

struct CaseResult {
    suite: String,
    name: String,
    failure: Option<String>,
    seconds: f64,
}

pub(crate) fn test(args: &TestArgs, engine_args: &EngineArgs) -> anyhow::Result<ExitCode> {
    let engine = engine_args.engine()?;
    let mut policies: BTreeMap<PathBuf, Arc<Prepared>> = BTreeMap::new();
    let mut results = Vec::new();
    for path in &args.suites {
        let suite: Suite = input::read_document(path)?;
        if suite.cases.is_empty() {
            bail!("suite {} has no cases", path.display());
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let policy_path = base.join(&suite.policy);
        let prepared = match policies.get(&policy_path) {
            Some(p) => Arc::clone(p),
            None => {
                let module = input::read_module(&policy_path)
                    .with_context(|| format!("in suite {}", path.display()))?;
                let prepared = Arc::new(Prepared::new(&engine, &module).with_context(|| {
                    format!(
                        "loading policy {} of suite {}",
                        policy_path.display(),
                        path.display()
                    )
                })?);
                policies.insert(policy_path.clone(), Arc::clone(&prepared));
                prepared
            }
        };
        let suite_name = path.display().to_string();
        for case in &suite.cases {
            let started = Instant::now();
            let failure = run_case(&prepared, base, suite.settings.as_ref(), case)
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
    prepared: &Arc<Prepared>,
    base: &Path,
    suite_settings: Option<&serde_json::Value>,
    case: &Case,
) -> anyhow::Result<()> {
    let (_, request) = run::read_request(&base.join(&case.request))?;
    let settings = case
        .settings
        .as_ref()
        .or(suite_settings)
        .map(ToString::to_string)
        .unwrap_or_default();
    let outcome = prepared
        .configure(&settings, None)
        .map_err(anyhow::Error::from)
        .and_then(|policy| policy.evaluate(&request).map_err(anyhow::Error::from));
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
