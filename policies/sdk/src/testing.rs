//! The fixture runner: one `<case>.yaml` (settings + request) and one `<case>.expected.json`
//! (the outcome) per test, discovered at run time, so adding a file adds a test. One runner for
//! every kind of policy (admission requests and verdicts, HTTP requests and verdicts), natively
//! through a policy's `evaluate` or through any host: the caller supplies the evaluation.
//!
//! `PALISADE_BLESS=1` rewrites the expected files instead of comparing.

use anyhow::{Context, bail};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use crate::wire::{AdmissionRequest, HttpRequest, HttpVerdict, Verdict};
use crate::{AdmissionPolicy, HttpPolicy, PolicyError, PolicySettings, parse_settings};

/// A request type fixtures carry, built from the `request` mapping of a `<case>.yaml`.
pub trait FixtureRequest: Sized {
    /// Builds the request of the case `name` from its mapping.
    ///
    /// # Errors
    /// When the mapping is not a valid request of this type.
    fn from_fixture(request: Value, name: &str) -> anyhow::Result<Self>;
}

/// Admission requests are completed with defaults first (see [`complete_request`]).
impl FixtureRequest for AdmissionRequest {
    fn from_fixture(request: Value, name: &str) -> anyhow::Result<Self> {
        complete_request(request, name)
    }
}

/// HTTP requests take the wire type's defaults; header names must be as Envoy gives them:
/// lower-case, with the pseudo-headers in their own fields.
impl FixtureRequest for HttpRequest {
    fn from_fixture(request: Value, _name: &str) -> anyhow::Result<Self> {
        let request: Self = serde_path_to_error::deserialize(request)?;
        if let Some((name, _)) = request
            .headers
            .iter()
            .find(|(n, _)| n.starts_with(':') || n.bytes().any(|b| b.is_ascii_uppercase()))
        {
            bail!(
                "header {name:?}: names are lower-case, and pseudo-headers are the fields \
                 method, path, authority and scheme"
            );
        }
        Ok(request)
    }
}

/// A verdict type fixtures expect: what `allow-` and `deny-` cases are checked against.
pub trait FixtureVerdict: Serialize + DeserializeOwned + PartialEq + Debug {
    /// Whether the verdict lets the request through.
    fn is_allowed(&self) -> bool;
}

impl FixtureVerdict for Verdict {
    fn is_allowed(&self) -> bool {
        self.allowed
    }
}

impl FixtureVerdict for HttpVerdict {
    fn is_allowed(&self) -> bool {
        HttpVerdict::is_allowed(self)
    }
}

/// One fixture: a named case with settings and a complete request (an admission request
/// unless said otherwise).
#[derive(Debug, Clone)]
pub struct Fixture<R = AdmissionRequest> {
    /// The case name: the file name without `.yaml`.
    pub name: String,
    /// The `<case>.yaml` file.
    pub path: PathBuf,
    /// The policy settings as JSON text (`null` when the fixture has none).
    pub settings: String,
    /// The request, built by [`FixtureRequest::from_fixture`].
    pub request: R,
}

impl<R> Fixture<R> {
    /// Where this case's expected outcome lives.
    #[must_use]
    pub fn expected_path(&self) -> PathBuf {
        self.path
            .with_file_name(format!("{}.expected.json", self.name))
    }
}

/// What evaluating a fixture produced: the content of a `<case>.expected.json` (an admission
/// verdict unless said otherwise).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Outcome<V = Verdict> {
    /// The policy decided.
    Verdict(V),
    /// The settings were rejected (by `validate-settings`).
    SettingsError(String),
    /// The policy could not decide.
    Error(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureFile {
    #[serde(default)]
    #[expect(dead_code, reason = "documentation inside the fixture, read by people")]
    description: Option<String>,
    #[serde(default)]
    settings: Value,
    request: Value,
}

/// Every `*.yaml` fixture file of `dir`, sorted by name.
///
/// # Errors
/// When the directory cannot be read.
pub fn fixture_paths(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading fixture directory {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    Ok(paths)
}

/// Loads every `*.yaml` fixture of `dir`, sorted by name, with requests of type `R`.
///
/// # Errors
/// When the directory cannot be read or a fixture does not parse.
pub fn load_fixtures<R: FixtureRequest>(dir: &Path) -> anyhow::Result<Vec<Fixture<R>>> {
    fixture_paths(dir)?
        .iter()
        .map(|p| load_fixture(p))
        .collect()
}

fn load_fixture<R: FixtureRequest>(path: &Path) -> anyhow::Result<Fixture<R>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading fixture {}", path.display()))?;
    let file: FixtureFile = serde_yaml::from_str(&text)
        .with_context(|| format!("parsing fixture {}", path.display()))?;
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .with_context(|| format!("fixture name of {}", path.display()))?
        .to_owned();
    let request = R::from_fixture(file.request, &name)
        .with_context(|| format!("building the request of fixture {}", path.display()))?;
    Ok(Fixture {
        name,
        path: path.to_owned(),
        settings: file.settings.to_string(),
        request,
    })
}

/// Fills in what a fixture may leave out of a request: `uid` (`fixture-<name>`), `operation`
/// (CREATE, or UPDATE when `oldObject` is set), `kind` (from the object's `apiVersion`/`kind`),
/// `resource` (lower-case plural of the kind), `namespace` (from the object's metadata) and
/// `userInfo` (`username: fixture`).
///
/// # Errors
/// When the value is not a mapping or the completed request is not a valid `AdmissionRequest`.
pub fn complete_request(request: Value, name: &str) -> anyhow::Result<AdmissionRequest> {
    let Value::Object(mut request) = request else {
        bail!("request must be a mapping")
    };
    let object = request.get("object").cloned().unwrap_or(Value::Null);
    let (group, version, kind) = type_of(&object);
    let has_old = request.get("oldObject").is_some_and(|v| !v.is_null());
    put_default(
        &mut request,
        "uid",
        Value::String(format!("fixture-{name}")),
    );
    put_default(
        &mut request,
        "operation",
        Value::String(if has_old { "UPDATE" } else { "CREATE" }.into()),
    );
    put_default(
        &mut request,
        "kind",
        serde_json::json!({"group": group, "version": version, "kind": kind}),
    );
    let resource = format!("{}s", kind.to_lowercase());
    put_default(
        &mut request,
        "resource",
        serde_json::json!({"group": group, "version": version, "resource": resource}),
    );
    if let Some(ns) = object.pointer("/metadata/namespace").cloned() {
        put_default(&mut request, "namespace", ns);
    }
    put_default(
        &mut request,
        "userInfo",
        serde_json::json!({"username": "fixture"}),
    );
    Ok(serde_json::from_value(Value::Object(request))?)
}

fn put_default(map: &mut Map<String, Value>, key: &str, value: Value) {
    map.entry(key).or_insert(value);
}

fn type_of(object: &Value) -> (String, String, String) {
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("v1");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    (group.to_owned(), version.to_owned(), kind.to_owned())
}

/// Evaluates a fixture natively through the admission policy `P`: settings parsed and
/// validated first, as hosts do.
#[must_use]
pub fn evaluate_natively<P: AdmissionPolicy>(fixture: &Fixture) -> Outcome {
    decide(&fixture.settings, |settings| {
        P::evaluate(&fixture.request, settings)
    })
}

/// Evaluates a fixture natively through the HTTP policy `P`: settings parsed and validated
/// first, as the proxy-wasm adapter does in `on_configure`.
#[must_use]
pub fn evaluate_http_natively<P: HttpPolicy>(
    fixture: &Fixture<HttpRequest>,
) -> Outcome<HttpVerdict> {
    decide(&fixture.settings, |settings| {
        P::evaluate(&fixture.request, settings)
    })
}

fn decide<S: PolicySettings, V>(
    settings: &str,
    evaluate: impl FnOnce(&S) -> Result<V, PolicyError>,
) -> Outcome<V> {
    match parse_settings::<S>(settings) {
        Err(e) => Outcome::SettingsError(e.to_string()),
        Ok(settings) => match evaluate(&settings) {
            Ok(verdict) => Outcome::Verdict(verdict),
            Err(e) => Outcome::Error(e.to_string()),
        },
    }
}

/// Checks one fixture's outcome against its expected file (or writes it when blessing), and that
/// the case's name prefix (`allow-`, `deny-`, `error-`) agrees with the outcome.
///
/// # Errors
/// A message naming the fixture, with a line diff of expected and actual outcomes.
pub fn check<R, V: FixtureVerdict>(
    fixture: &Fixture<R>,
    outcome: &Outcome<V>,
) -> anyhow::Result<()> {
    let actual = format!("{}\n", serde_json::to_string_pretty(outcome)?);
    let expected_path = fixture.expected_path();
    if std::env::var_os("PALISADE_BLESS").is_some() {
        std::fs::write(&expected_path, &actual)
            .with_context(|| format!("writing {}", expected_path.display()))?;
    } else {
        let expected = std::fs::read_to_string(&expected_path).with_context(|| {
            format!(
                "reading {} (run `make bless` to create it)",
                expected_path.display()
            )
        })?;
        let expected_outcome: Outcome<V> = serde_json::from_str(&expected)
            .with_context(|| format!("parsing {}", expected_path.display()))?;
        if &expected_outcome != outcome {
            let diff = similar::TextDiff::from_lines(&expected, &actual)
                .unified_diff()
                .header(&expected_path.display().to_string(), "actual")
                .to_string();
            bail!(
                "fixture {} differs from its expected outcome:\n{diff}",
                fixture.path.display()
            );
        }
    }
    let prefix_ok = match outcome {
        Outcome::Verdict(v) if v.is_allowed() => fixture.name.starts_with("allow-"),
        Outcome::Verdict(_) => fixture.name.starts_with("deny-"),
        Outcome::SettingsError(_) | Outcome::Error(_) => fixture.name.starts_with("error-"),
    };
    if !prefix_ok {
        bail!(
            "fixture {}: the name's prefix does not agree with the outcome {outcome:?}",
            fixture.path.display()
        );
    }
    Ok(())
}

/// Runs every fixture of `dir` as a libtest-mimic test named `<label>::<case>`, evaluated by
/// `evaluate` (for example [`evaluate_natively`] or [`evaluate_http_natively`]), and returns
/// the process exit code.
pub fn run_fixtures<R, V, F>(label: &str, dir: &Path, evaluate: F) -> ExitCode
where
    R: FixtureRequest + Send + 'static,
    V: FixtureVerdict,
    F: Fn(&Fixture<R>) -> Outcome<V> + Send + Sync + 'static,
{
    let args = libtest_mimic::Arguments::from_args();
    let evaluate = Arc::new(evaluate);
    let trials = match load_fixtures(dir) {
        Ok(fixtures) => fixtures
            .into_iter()
            .map(|fixture| {
                let evaluate = Arc::clone(&evaluate);
                libtest_mimic::Trial::test(format!("{label}::{}", fixture.name), move || {
                    check(&fixture, &evaluate(&fixture)).map_err(|e| format!("{e:#}").into())
                })
            })
            .collect(),
        Err(e) => {
            let message = format!("{e:#}");
            vec![libtest_mimic::Trial::test(
                format!("{label}::load"),
                move || Err(message.into()),
            )]
        }
    };
    libtest_mimic::run(&args, trials).exit_code()
}
