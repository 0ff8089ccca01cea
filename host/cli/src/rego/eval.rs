//! `palisade rego eval`: one Rego query over modules, data and an input, printed as
//! `opa eval --format json` prints it (`cmd/eval.go`); exit codes as `opa eval`'s.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::Deadline;
use super::load::{self, Syntax};
use crate::output;

/// Arguments of `palisade rego eval`.
#[derive(Debug, Args)]
pub(crate) struct EvalArgs {
    /// The query, e.g. `data.example.allow` or `x := data.servers[_]; x.port > 80`.
    #[arg(value_name = "QUERY")]
    query: String,
    /// A policy (`.rego`) or data (`.json`, `.yaml`, `.yml`) file, or a directory of them
    /// (data goes under the path of its directory below this one); repeatable.
    #[arg(short = 'd', long = "data", value_name = "PATH")]
    data: Vec<PathBuf>,
    /// The input document (JSON or YAML).
    #[arg(short, long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// Parse modules as Rego v0 (OPA 0.x) instead of v1.
    #[arg(long)]
    v0_compatible: bool,
    /// Make a builtin's error end the evaluation (by default the call is undefined, as in OPA).
    #[arg(long)]
    strict_builtin_errors: bool,
    /// Exit 1 when the result is undefined (empty).
    #[arg(long, conflicts_with = "fail_defined")]
    fail: bool,
    /// Exit 1 when the result is defined (not empty).
    #[arg(long)]
    fail_defined: bool,
}

pub(super) fn eval(args: &EvalArgs, deadline: Deadline) -> anyhow::Result<ExitCode> {
    let syntax = if args.v0_compatible {
        Syntax::V0
    } else {
        Syntax::V1
    };
    let mut engine = load::engine(&args.data, syntax)?;
    engine.set_strict_builtin_errors(args.strict_builtin_errors);
    deadline.apply(&mut engine);
    if let Some(path) = &args.input {
        let input: serde_json::Value = palisade_suite::input::read_document(path)?;
        engine.set_input(regorus::Value::from(input));
    }
    // regorus writes `print` output to stderr, as `opa eval` does, so stdout stays one JSON
    // document.
    let results = engine
        .eval_query(args.query.clone(), false)
        .with_context(|| format!("evaluating the query `{}`", args.query))?;
    // An undefined query has no `result` key: `{}`, as OPA prints it.
    let json = serde_json::to_string_pretty(&results).context("rendering the results as JSON")?;
    output::line(json)?;
    let defined = !results.result.is_empty();
    Ok(
        if (args.fail && !defined) || (args.fail_defined && defined) {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        },
    )
}
