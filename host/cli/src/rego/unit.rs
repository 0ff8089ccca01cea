//! `palisade rego test`: finds every rule named `test_*` (and `todo_test_*`, skipped) in the
//! modules under the paths and evaluates it as `opa test` does (`v1/tester/runner.go`): true
//! passes; false, undefined or any other value fails; an evaluation error is an error.
//!
//! Rules are found in regorus's parsed modules (`Engine::get_modules`, its `unstable` AST: 0.14.1
//! has no public list of rules), and each definition is evaluated on its own
//! (`Engine::eval_rule_in_module`), so two definitions of one name are two tests, the second
//! named `#01` as OPA names it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use regorus::unstable::{Expr, Module, Ref, Rule, RuleHead};

use super::Deadline;
use super::load::{self, Syntax, data_path};
use crate::output;

/// Arguments of `palisade rego test`.
#[derive(Debug, Args)]
pub(crate) struct TestArgs {
    /// Policy (`.rego`) and data (`.json`, `.yaml`, `.yml`) files, or directories of them, loaded
    /// as `rego eval --data` loads them.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Run only the tests whose full name (`data.pkg.test_x`) this regular expression matches.
    #[arg(short, long, value_name = "REGEX")]
    run: Option<regex::Regex>,
    /// Print passing tests and every test's `print()` output too (by default: failures, errors
    /// and skipped tests, with their output).
    #[arg(short, long)]
    verbose: bool,
    /// Parse modules as Rego v0 (OPA 0.x) instead of v1.
    #[arg(long)]
    v0_compatible: bool,
}

/// OPA's `tester.TestPrefix` and `SkipTestPrefix`.
const TEST_PREFIX: &str = "test_";
const SKIP_PREFIX: &str = "todo_test_";

/// One rule definition to report on.
struct Case {
    /// `data.pkg.test_x`, or `data.pkg.test_x#01` for the name's second definition.
    name: String,
    /// The keys below `data` where the rule's value lands.
    path: Vec<String>,
    module: Ref<Module>,
    rule: Ref<Rule>,
    kind: Kind,
}

#[derive(Clone, Copy)]
enum Kind {
    /// `test_x`; `keyed` when its head goes on past the name with a variable key
    /// (`test_x[name] if ..`): one sub-case per key, as OPA's partial-object tests.
    Test { keyed: bool },
    /// `todo_test_x`: reported as skipped.
    Todo,
    /// `test_x(a)`: a function cannot be evaluated without arguments.
    Function,
}

/// What one case came to.
enum Outcome {
    Pass,
    /// The sub-cases that did not hold (empty for a plain test).
    Fail(Vec<String>),
    Error(String),
    Skipped,
}

pub(super) fn test(args: &TestArgs, deadline: Deadline) -> anyhow::Result<ExitCode> {
    let syntax = if args.v0_compatible {
        Syntax::V0
    } else {
        Syntax::V1
    };
    let mut engine = load::engine(&args.paths, syntax)?;
    // OPA's test runner makes builtin errors undefined unless asked otherwise.
    engine.set_strict_builtin_errors(false);
    engine.set_gather_prints(true);
    deadline.apply(&mut engine);
    // Analysing the modules (imports, rule conflicts, recursion) happens on the first
    // evaluation: a failure there is unusable input, not a failed test.
    engine
        .eval_query("true".to_owned(), false)
        .context("preparing the modules for evaluation")?;
    let cases: Vec<Case> = cases(&mut engine)?
        .into_iter()
        .filter(|case| args.run.as_ref().is_none_or(|run| run.is_match(&case.name)))
        .collect();
    if cases.is_empty() {
        bail!(
            "no test rules (named {TEST_PREFIX}* or {SKIP_PREFIX}*){} under the paths given",
            if args.run.is_some() {
                " match --run"
            } else {
                ""
            }
        );
    }
    let (mut passed, mut failed) = (0_usize, 0_usize);
    for case in &cases {
        let outcome = run(&mut engine, case);
        let prints = engine
            .take_prints()
            .context("collecting the output of print()")?;
        let (line, keys) = match &outcome {
            Outcome::Pass => {
                passed = passed.saturating_add(1);
                (args.verbose.then(|| format!("PASS {}", case.name)), &[][..])
            }
            Outcome::Fail(keys) => {
                failed = failed.saturating_add(1);
                (Some(format!("FAIL {}", case.name)), keys.as_slice())
            }
            Outcome::Error(message) => {
                failed = failed.saturating_add(1);
                let message = message.trim().replace('\n', "\n  ");
                (Some(format!("ERROR {}: {message}", case.name)), &[][..])
            }
            Outcome::Skipped => (Some(format!("SKIPPED {}", case.name)), &[][..]),
        };
        let Some(line) = line else { continue };
        output::line(line)?;
        for key in keys {
            output::line(format_args!("  {key}: FAIL"))?;
        }
        for print in prints {
            output::line(format_args!("  {print}"))?;
        }
    }
    output::line(format_args!("{passed} passed, {failed} failed"))?;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Every test rule definition, in module order (the order files were loaded) and rule order.
fn cases(engine: &mut regorus::Engine) -> anyhow::Result<Vec<Case>> {
    let modules = engine.get_modules().clone();
    let mut definitions: BTreeMap<String, usize> = BTreeMap::new();
    let mut cases = Vec::new();
    for module in modules {
        let mut package = Vec::new();
        components(&module.package.refr, &mut package);
        let Some(package) = package.into_iter().collect::<Option<Vec<String>>>() else {
            bail!(
                "{}: a package whose path is not constant",
                module.package.span.source.file()
            );
        };
        for rule in &module.policy {
            let (refr, function, set) = match rule.as_ref() {
                Rule::Spec { head, .. } => match head {
                    RuleHead::Compr { refr, .. } => (refr, false, false),
                    RuleHead::Set { refr, .. } => (refr, false, true),
                    RuleHead::Func { refr, .. } => (refr, true, false),
                },
                // A default value is part of its rule, not a test of its own.
                Rule::Default { .. } => continue,
            };
            let mut head = Vec::new();
            components(refr, &mut head);
            // OPA looks for the name in the head's ground prefix (`ruleName`).
            let ground: Vec<&String> = head.iter().map_while(Option::as_ref).collect();
            let Some(at) = ground
                .iter()
                .position(|c| c.starts_with(TEST_PREFIX) || c.starts_with(SKIP_PREFIX))
            else {
                continue;
            };
            let Some(rule_keys) = ground.get(..=at) else {
                continue;
            };
            let path: Vec<String> = package
                .iter()
                .cloned()
                .chain(rule_keys.iter().map(|k| (*k).clone()))
                .collect();
            let keyed = !set && head.get(at.saturating_add(1)).is_some_and(Option::is_none);
            let skipped = rule_keys
                .last()
                .is_some_and(|name| name.starts_with(SKIP_PREFIX));
            let kind = if skipped {
                Kind::Todo
            } else if function {
                Kind::Function
            } else {
                Kind::Test { keyed }
            };
            let base = data_path(&path);
            let seen = definitions.entry(base.clone()).or_insert(0);
            let name = if *seen == 0 {
                base
            } else {
                format!("{base}#{seen:02}")
            };
            *seen = seen.saturating_add(1);
            cases.push(Case {
                name,
                path,
                module: module.clone(),
                rule: rule.clone(),
                kind,
            });
        }
    }
    Ok(cases)
}

/// The components of a rule head's or package's reference: `Some(key)` for a constant one,
/// `None` for one computed at evaluation (`test_x[name]`).
fn components(expr: &Expr, out: &mut Vec<Option<String>>) {
    match expr {
        Expr::Var { span, .. } => out.push(Some(span.text().to_owned())),
        Expr::RefDot { refr, field, .. } => {
            components(refr, out);
            out.push(Some(field.0.text().to_owned()));
        }
        Expr::RefBrack { refr, index, .. } => {
            components(refr, out);
            out.push(match index.as_ref() {
                Expr::String { value, .. } | Expr::RawString { value, .. } => {
                    value.as_string().ok().map(|s| s.to_string())
                }
                _ => None,
            });
        }
        _ => out.push(None),
    }
}

fn run(engine: &mut regorus::Engine, case: &Case) -> Outcome {
    let keyed = match case.kind {
        Kind::Todo => return Outcome::Skipped,
        Kind::Function => {
            return Outcome::Error("a test rule takes no arguments: it is a function".to_owned());
        }
        Kind::Test { keyed } => keyed,
    };
    let data = match engine.eval_rule_in_module(&case.module, &case.rule, false) {
        Ok(data) => data,
        Err(e) => return Outcome::Error(format!("{e:#}")),
    };
    let value = case.path.iter().fold(&data, |value, key| {
        &value[&regorus::Value::from(key.as_str())]
    });
    judge(value, keyed)
}

/// `true` passes; with `keyed`, an object passes when every leaf is `true`.
fn judge(value: &regorus::Value, keyed: bool) -> Outcome {
    match value {
        regorus::Value::Bool(true) => Outcome::Pass,
        regorus::Value::Object(cases) if keyed => {
            let mut failed = Vec::new();
            failed_keys(cases, "", &mut failed);
            if failed.is_empty() {
                Outcome::Pass
            } else {
                Outcome::Fail(failed)
            }
        }
        _ => Outcome::Fail(Vec::new()),
    }
}

/// The keys of `cases` (nested ones joined by `/`) whose value is not `true`.
fn failed_keys(cases: &regorus::value::Object, prefix: &str, out: &mut Vec<String>) {
    for (key, value) in cases.iter_sorted() {
        let key = match key {
            regorus::Value::String(s) => s.to_string(),
            other => other.to_string(),
        };
        let key = if prefix.is_empty() {
            key
        } else {
            format!("{prefix}/{key}")
        };
        match value {
            regorus::Value::Bool(true) => {}
            regorus::Value::Object(inner) => failed_keys(inner, &key, out),
            _ => out.push(key),
        }
    }
}
