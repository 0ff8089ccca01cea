//! gator's suites (`test.gatekeeper.sh/v1alpha1` `Suite`), run as `gator verify` runs them
//! (gatekeeper `pkg/gator/verify`): per test, its template and constraint are added once to
//! check them (`invalid: true` passes only when the constraint is refused); per case, a fresh
//! engine with the template, the constraint and the case's inventory reviews the object (a plain
//! object, or an AdmissionReview's request), and each assertion counts the violations whose
//! message matches its `message` regexp (every violation when absent) against `violations`
//! (`yes` = at least one, the default; `no` = none; or an exact number). Evaluated natively with
//! the `rego` crate, the code the admission component runs.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rego::gatekeeper::{Constraint, Inventory, Prepared, Review, Template, constraint};
use serde::Deserialize;

use crate::{CaseResult, SuiteError, SuiteReport, input};

/// The group of gator's suites.
pub const GROUP: &str = "test.gatekeeper.sh";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Suite {
    #[serde(default)]
    tests: Vec<Test>,
    #[serde(default)]
    skip: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Test {
    #[serde(default)]
    name: String,
    #[serde(default)]
    template: Option<PathBuf>,
    #[serde(default)]
    constraint: Option<PathBuf>,
    #[serde(default)]
    expansion: Option<PathBuf>,
    #[serde(default)]
    cases: Vec<Case>,
    #[serde(default)]
    invalid: bool,
    #[serde(default)]
    skip: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Case {
    #[serde(default)]
    name: String,
    #[serde(default)]
    object: Option<PathBuf>,
    #[serde(default)]
    inventory: Vec<PathBuf>,
    #[serde(default)]
    assertions: Vec<Assertion>,
    #[serde(default)]
    skip: bool,
}

#[derive(Debug, Deserialize)]
struct Assertion {
    #[serde(default)]
    violations: Option<Count>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Count {
    Number(u64),
    Word(String),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Head {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
}

/// Whether the file is a gator suite (its apiVersion's group is `test.gatekeeper.sh` and its
/// kind `Suite`); false for anything unreadable.
#[must_use]
pub fn is_suite(path: &Path) -> bool {
    let yaml = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "yaml" | "yml" | "json"));
    yaml && input::read_document::<Head>(path).is_ok_and(|head| {
        head.kind == "Suite"
            && head
                .api_version
                .split_once('/')
                .is_some_and(|(g, _)| g == GROUP)
    })
}

/// The gator suites under `dir`, recursively, in path order (as `gator verify dir/...`).
///
/// # Errors
/// [`SuiteError::Read`] when a directory cannot be listed.
pub fn find_suites(dir: &Path) -> Result<Vec<PathBuf>, SuiteError> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|source| SuiteError::Read {
            path: dir.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if is_suite(&path) {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Runs one gator suite; `each` sees every case's result as it is known. A test whose template
/// or constraint cannot be used is one failed result named after the test; a missing or
/// malformed file is a failure of the test or case that names it, as gator reports it.
///
/// # Errors
/// [`SuiteError`] when the suite file itself cannot be read or is not a suite.
pub fn run(path: &Path, mut each: impl FnMut(&CaseResult)) -> Result<SuiteReport, SuiteError> {
    let suite: Suite = input::read_document(path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut cases = Vec::new();
    let mut push = |result: CaseResult| {
        each(&result);
        cases.push(result);
    };
    for test in &suite.tests {
        let started = Instant::now();
        if suite.skip || test.skip {
            push(skipped(test.name.clone()));
            continue;
        }
        let loaded = load(test, base);
        let (template, constraint) = match loaded {
            Err(failure) => {
                push(result(test.name.clone(), Err(failure), started));
                continue;
            }
            Ok(Loaded::Invalid(outcome)) => {
                push(result(test.name.clone(), outcome, started));
                continue;
            }
            Ok(Loaded::Ready(template, constraint)) => (template, constraint),
        };
        for case in &test.cases {
            let name = format!("{}/{}", test.name, case.name);
            if case.skip {
                push(skipped(name));
                continue;
            }
            let started = Instant::now();
            let outcome = run_case(case, base, &template, &constraint);
            push(result(name, outcome, started));
        }
    }
    Ok(SuiteReport {
        path: path.to_owned(),
        cases,
    })
}

enum Loaded {
    Ready(Box<Template>, Box<Constraint>),
    /// An `invalid: true` test's outcome.
    Invalid(Result<(), String>),
}

fn load(test: &Test, base: &Path) -> Result<Loaded, String> {
    if test.expansion.is_some() {
        return Err("expansion templates (ExpansionTemplate) are not supported".to_owned());
    }
    let template_path = test.template.as_ref().ok_or("the test names no template")?;
    let template = one_document(&base.join(template_path))?;
    let template = Template::from_value(&template, "")
        .map_err(|e| format!("adding template {}: {e}", template_path.display()))?;
    let constraint_path = test
        .constraint
        .as_ref()
        .ok_or("the test names no constraint")?;
    let constraint = one_document(&base.join(constraint_path))?;
    let constraint = Constraint::from_value(&constraint, &template, "");
    if test.invalid {
        return Ok(Loaded::Invalid(match constraint {
            Err(_) => Ok(()),
            Ok(_) => Err(format!(
                "the constraint {} was accepted; the test expects it to be invalid",
                constraint_path.display()
            )),
        }));
    }
    let constraint =
        constraint.map_err(|e| format!("adding constraint {}: {e}", constraint_path.display()))?;
    Ok(Loaded::Ready(Box::new(template), Box::new(constraint)))
}

fn run_case(
    case: &Case,
    base: &Path,
    template: &Template,
    constraint: &Constraint,
) -> Result<(), String> {
    if case.assertions.is_empty() {
        return Err("the case has no assertions".to_owned());
    }
    let object_path = case.object.as_ref().ok_or("the case names no object")?;
    let object = one_document(&base.join(object_path))?;
    let mut inventory = Inventory::default();
    for path in &case.inventory {
        let full = base.join(path);
        let documents = input::read_documents(&full).map_err(|e| palisade_runtime::chain(&e))?;
        for (index, document) in documents.iter().enumerate() {
            inventory.add(document).map_err(|m| {
                format!(
                    "inventory {} document {}: {m}",
                    path.display(),
                    index.saturating_add(1)
                )
            })?;
        }
    }
    let review = review(&object, &inventory)
        .map_err(|m| format!("object {}: {m}", object_path.display()))?;
    let prepared = Prepared::new(template.clone(), vec![constraint.clone()], inventory)
        .map_err(|m| format!("adding the inventory: {m}"))?;
    let violations = prepared.review(&review, constraint::GATOR);
    for (index, assertion) in case.assertions.iter().enumerate() {
        let pattern = assertion.message.as_deref().unwrap_or("");
        let regex = regex::Regex::new(pattern)
            .map_err(|e| format!("assertion {index}: message {pattern:?} is not a regexp: {e}"))?;
        let got = violations.iter().filter(|v| regex.is_match(&v.msg)).count();
        let want = assertion
            .violations
            .clone()
            .unwrap_or(Count::Word("yes".to_owned()));
        let holds = match &want {
            Count::Number(n) => u64::try_from(got).is_ok_and(|g| g == *n),
            Count::Word(w) if w == "yes" => got > 0,
            Count::Word(w) if w == "no" => got == 0,
            Count::Word(w) => {
                return Err(format!(
                    "assertion {index}: violations {w:?} must be yes, no or a number"
                ));
            }
        };
        if !holds {
            let want = match want {
                Count::Number(n) => n.to_string(),
                Count::Word(w) => w,
            };
            let messages: Vec<&str> = violations.iter().map(|v| v.msg.as_str()).collect();
            let matching = assertion
                .message
                .as_deref()
                .map(|m| format!(" matching {m:?}"))
                .unwrap_or_default();
            return Err(format!(
                "assertion {index}: got {got} violations{matching}, want {want}; violations: {messages:?}"
            ));
        }
    }
    Ok(())
}

/// The review of a case's object: an AdmissionReview's request as it is, anything else as a
/// plain object.
fn review(object: &serde_json::Value, inventory: &Inventory) -> Result<Review, String> {
    let head = Head::deserialize(object).map_err(|e| e.to_string())?;
    let admission = head.kind == "AdmissionReview"
        && head
            .api_version
            .split_once('/')
            .is_some_and(|(g, _)| g == "admission.k8s.io");
    if !admission {
        return Review::from_object(object, inventory);
    }
    let request = object
        .get("request")
        .ok_or("an AdmissionReview case needs request")?;
    let request: palisade_sdk::wire::AdmissionRequest =
        serde_json::from_value(request.clone()).map_err(|e| format!("request: {e}"))?;
    if request.object.is_none() && request.old_object.is_none() {
        return Err("an AdmissionReview case needs request.object or request.oldObject".to_owned());
    }
    Review::from_request(&request, inventory).map_err(|e| e.to_string())
}

fn one_document(path: &Path) -> Result<serde_json::Value, String> {
    let mut documents = input::read_documents(path).map_err(|e| palisade_runtime::chain(&e))?;
    match documents.len() {
        1 => Ok(documents.remove(0)),
        n => Err(format!(
            "{}: expected exactly one object, found {n}",
            path.display()
        )),
    }
}

fn result(name: String, outcome: Result<(), String>, started: Instant) -> CaseResult {
    CaseResult {
        name,
        failure: outcome.err(),
        skipped: false,
        time: started.elapsed(),
    }
}

fn skipped(name: String) -> CaseResult {
    CaseResult {
        name,
        failure: None,
        skipped: true,
        time: std::time::Duration::ZERO,
    }
}
