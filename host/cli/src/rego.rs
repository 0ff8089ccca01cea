//! `palisade rego`: Rego tried, debugged and unit-tested without OPA, evaluated natively by
//! regorus. `eval` prints what `opa eval --format json` prints; `test` runs `test_*` rules as
//! `opa test` does. Paths load as OPA's loader loads them (`rego/load.rs`).

mod eval;
mod load;
mod unit;

use std::num::NonZeroU32;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use regorus::utils::limits::ExecutionTimerConfig;

use crate::EngineArgs;

/// Arguments of `palisade rego`.
#[derive(Debug, Args)]
pub(crate) struct RegoArgs {
    #[command(subcommand)]
    command: RegoCommand,
}

#[derive(Debug, Subcommand)]
enum RegoCommand {
    /// Evaluate a query and print its result as `opa eval --format json` does.
    ///
    /// An undefined result prints `{}`. Exit 0; 1 with `--fail` on an undefined result or with
    /// `--fail-defined` on a defined one; 2 on an error (a file that cannot be read or parsed,
    /// a data conflict, an evaluation error).
    Eval(eval::EvalArgs),
    /// Run every rule named `test_*` as `opa test` does.
    ///
    /// A test passes when it is true; false, undefined or any other value fails; an evaluation
    /// error is an error. Rules named `todo_test_*` are skipped. Failures (`FAIL`), errors
    /// (`ERROR name: why`) and skipped tests (`SKIPPED`) print a line each, with the test's
    /// `print()` output below; `--verbose` prints passing tests (`PASS`) too. The run ends
    /// with `N passed, N failed` (errors count as failed). Exit 0 when all passed, 1 when one
    /// failed or erred, 2 when an input is unusable or no test is found.
    Test(unit::TestArgs),
}

pub(crate) fn rego(args: &RegoArgs, engine_args: &EngineArgs) -> anyhow::Result<ExitCode> {
    let deadline = Deadline(Duration::from_millis(engine_args.timeout_ms));
    match &args.command {
        RegoCommand::Eval(args) => eval::eval(args, deadline),
        RegoCommand::Test(args) => unit::test(args, deadline),
    }
}

/// `--timeout-ms`, the deadline of one evaluation: here one query, or one test rule.
#[derive(Debug, Clone, Copy)]
struct Deadline(Duration);

impl Deadline {
    /// Sets the deadline on `engine`: regorus checks the clock every 100 units of work, and an
    /// evaluation that runs past it ends with an error.
    fn apply(self, engine: &mut regorus::Engine) {
        engine.set_execution_timer_config(ExecutionTimerConfig {
            limit: self.0,
            check_interval: NonZeroU32::MIN.saturating_add(99),
        });
    }
}
