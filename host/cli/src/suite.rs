//! `palisade test`: runs suite files (a policy, default settings, the host it gets, and cases
//! of a request or proxy scenario with what to expect) and gator's suites (Gatekeeper templates
//! and constraints, `test.gatekeeper.sh` `Suite`) through `palisade_suite`, prints a pass/fail
//! line per case and `N passed, N failed` (`, N skipped` when gator cases were skipped), and
//! with `--junit` writes a JUnit XML report. Exit code 0 when every case passed, 1 when one
//! failed, 2 when an input is unusable.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use palisade_suite::Runner;

use crate::{EngineArgs, output};

/// Arguments of `palisade test`.
#[derive(Debug, Args)]
pub(crate) struct TestArgs {
    /// Suite files (YAML or JSON): Palisade suites or gator suites; a directory (or `dir/...`,
    /// as gator writes it) runs every gator suite under it.
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
    for path in suite_files(&args.suites)? {
        let suite = path.display().to_string();
        let mut printed = Ok(());
        let print = |case: &palisade_suite::CaseResult| {
            if printed.is_ok() {
                printed = match &case.failure {
                    None if case.skipped => {
                        output::line(format_args!("SKIP {suite} :: {}", case.name))
                    }
                    None => output::line(format_args!("PASS {suite} :: {}", case.name)),
                    Some(why) => output::line(format_args!("FAIL {suite} :: {}: {why}", case.name)),
                };
            }
        };
        let report = if palisade_suite::gator::is_suite(&path) {
            palisade_suite::gator::run(&path, print)
        } else {
            runner.run(&path, print)
        };
        printed?;
        reports.push(report?);
    }
    let cases = || reports.iter().flat_map(|r| &r.cases);
    let failed = cases().filter(|c| c.failure.is_some()).count();
    let skipped = cases().filter(|c| c.skipped).count();
    let passed = cases()
        .count()
        .saturating_sub(failed)
        .saturating_sub(skipped);
    if skipped == 0 {
        output::line(format_args!("{passed} passed, {failed} failed"))?;
    } else {
        output::line(format_args!(
            "{passed} passed, {failed} failed, {skipped} skipped"
        ))?;
    }
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

/// The suite files named: files as they are; a directory, or `dir/...` as gator writes it, gives
/// every gator suite under it (an error when it holds none, so a typo cannot pass).
fn suite_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        let dir = path
            .to_str()
            .and_then(|p| {
                p.strip_suffix("/...")
                    .or_else(|| (p == "...").then_some("."))
            })
            .map_or_else(|| path.clone(), PathBuf::from);
        if dir.is_dir() {
            let found = palisade_suite::gator::find_suites(&dir)
                .with_context(|| format!("looking for gator suites under {}", dir.display()))?;
            anyhow::ensure!(
                !found.is_empty(),
                "{} holds no gator suite (a YAML file of kind Suite, apiVersion test.gatekeeper.sh/v1alpha1)",
                dir.display()
            );
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}
