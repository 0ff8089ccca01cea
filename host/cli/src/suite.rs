//! `palisade test`: runs suite files (a policy, default settings, the host it gets, and cases
//! of a request or proxy scenario with what to expect) through `palisade_suite`, prints a
//! pass/fail line per case and `N passed, N failed`, and with `--junit` writes a JUnit XML
//! report. Exit code 0 when every case passed, 1 when one failed, 2 when an input is unusable.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use palisade_suite::Runner;

use crate::{EngineArgs, output};

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

pub(crate) fn test(args: &TestArgs, engine_args: &EngineArgs) -> anyhow::Result<ExitCode> {
    let engine = engine_args.engine()?;
    let mut runner = Runner::new(&engine);
    let mut reports = Vec::new();
    for path in &args.suites {
        let suite = path.display().to_string();
        let mut printed = Ok(());
        let report = runner.run(path, |case| {
            if printed.is_ok() {
                printed = match &case.failure {
                    None => output::line(format_args!("PASS {suite} :: {}", case.name)),
                    Some(why) => output::line(format_args!("FAIL {suite} :: {}: {why}", case.name)),
                };
            }
        });
        printed?;
        reports.push(report?);
    }
    let cases = || reports.iter().flat_map(|r| &r.cases);
    let failed = cases().filter(|c| c.failure.is_some()).count();
    let passed = cases().count().saturating_sub(failed);
    output::line(format_args!("{passed} passed, {failed} failed"))?;
    if let Some(junit) = &args.junit {
        let xml = palisade_suite::junit(&reports).context("rendering the JUnit report")?;
        std::fs::write(junit, xml).with_context(|| format!("writing {}", junit.display()))?;
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
