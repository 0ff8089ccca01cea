//! The fixture runner: one `<case>.yaml` (settings, request, and what the host gives) and one
//! `<case>.expected.json` (the outcome) per test, discovered at run time in a directory and its
//! subdirectories, so adding a file adds a test. One runner for every kind of policy (admission
//! requests and verdicts, HTTP requests and verdicts), natively through a policy's `evaluate`
//! with a deterministic [`TestHost`], or through any host: the caller supplies the evaluation.
//!
//! `PALISADE_BLESS=1` rewrites the expected files instead of comparing.

use anyhow::{Context, bail};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::host::{Entry, Host, HostError, Level};
use crate::wire::{
    AdmissionRequest, Answer, BodyProgress, HttpRequest, HttpVerdict, MAX_CALLS, Verdict,
};
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

/// One fixture: a named case with settings, a complete request (an admission request unless
/// said otherwise), what the host gives, and how many times the request is evaluated.
#[derive(Debug, Clone)]
pub struct Fixture<R = AdmissionRequest> {
    /// The case name: the file's path under the fixture directory, without `.yaml`
    /// (`baseline/deny-privileged`).
    pub name: String,
    /// The `<case>.yaml` file.
    pub path: PathBuf,
    /// The policy settings as JSON text (`null` when the fixture has none).
    pub settings: String,
    /// The request, built by [`FixtureRequest::from_fixture`].
    pub request: R,
    /// The time, data tables and state the host gives.
    pub host: FixtureHost,
    /// How many times the request is evaluated, one after another, with the same host (its
    /// state carries over); the last outcome is the one checked.
    pub repeat: u32,
}

impl<R> Fixture<R> {
    /// Where this case's expected outcome lives: `<case>.expected.json` beside the case.
    #[must_use]
    pub fn expected_path(&self) -> PathBuf {
        let stem = self
            .path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        self.path.with_file_name(format!("{stem}.expected.json"))
    }

    /// The file name without `.yaml`: what the `allow-`/`deny-`/`error-` prefix is read from.
    #[must_use]
    pub fn file_stem(&self) -> &str {
        self.path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
    }
}

/// What the host gives a fixture's policy: the time and the data tables. Every fixture starts
/// with empty state.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct FixtureHost {
    /// The time the clock reads, RFC 3339 UTC (`2026-01-01T00:00:00Z`, the default).
    #[serde(deserialize_with = "rfc3339")]
    pub now: Duration,
    /// How many milliseconds the clock moves after each evaluation of a repeated request
    /// (`repeat`): time-based state such as a token bucket refills between them.
    pub advance_ms: u64,
    /// Data tables: name, then key to JSON value.
    pub data: BTreeMap<String, BTreeMap<String, Value>>,
    /// What upstream clusters answer the HTTP policy's background fetches, by cluster name:
    /// the body is handed to [`HttpPolicy::fetched`] for every fetch to that cluster after
    /// `prepare`, as the proxy adapter does when the upstream answers 200 (a body the policy
    /// refuses is logged, as there). Admission policies fetch nothing.
    pub fetched: BTreeMap<String, String>,
    /// What upstream clusters answer the HTTP policy's calls ([`HttpVerdict::Call`]), by
    /// cluster name: answers in order, the last repeating (as the proxy host's scenario
    /// clusters); a call to a cluster not named here is refused (status 0), as an unknown
    /// cluster is by the proxy.
    pub callouts: BTreeMap<String, Vec<FixtureAnswer>>,
}

/// A cluster's answer to one call, in a fixture.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct FixtureAnswer {
    /// The HTTP status (200 unless said).
    pub status: u16,
    /// Headers, lower-case names, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    /// The body.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub body: String,
    /// The connection resets instead of answering (the policy sees status 0).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reset: bool,
    /// A gRPC call's status (0: OK, the response message is the body).
    #[serde(skip_serializing_if = "is_zero")]
    pub grpc_status: u32,
    /// A failed gRPC call's status message.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub grpc_message: String,
    /// The body as base64, for binary answers (a gRPC response message); replaces `body`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Default for FixtureAnswer {
    fn default() -> Self {
        Self {
            status: 200,
            headers: Vec::new(),
            body: String::new(),
            reset: false,
            grpc_status: 0,
            grpc_message: String::new(),
            body_base64: None,
        }
    }
}

impl FixtureAnswer {
    /// The body's bytes: `bodyBase64` decoded when given (bad base64 reads as no bytes), else
    /// `body`.
    #[must_use]
    pub fn body_bytes(&self) -> Vec<u8> {
        use base64::Engine;
        match &self.body_base64 {
            Some(text) => base64::engine::general_purpose::STANDARD
                .decode(text.as_bytes())
                .unwrap_or_default(),
            None => self.body.clone().into_bytes(),
        }
    }
}

/// 2026-01-01T00:00:00Z, the time fixtures run at unless they say otherwise.
pub const FIXTURE_EPOCH: Duration = Duration::from_secs(1_767_225_600);

impl Default for FixtureHost {
    fn default() -> Self {
        Self {
            now: FIXTURE_EPOCH,
            advance_ms: 0,
            data: BTreeMap::new(),
            fetched: BTreeMap::new(),
            callouts: BTreeMap::new(),
        }
    }
}

fn rfc3339<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_rfc3339(&text).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "{text:?} is not an RFC 3339 UTC time such as 2026-01-01T00:00:00Z"
        ))
    })
}

pub use crate::time::parse_rfc3339;

/// The deterministic [`Host`] of native fixture runs: the fixture's time and data, state in a
/// map (empty at the start of each fixture), log lines kept.
#[derive(Debug, Default)]
pub struct TestHost {
    /// The time the clock reads.
    pub now: Duration,
    /// The data tables: name, then key to JSON value.
    pub data: BTreeMap<String, BTreeMap<String, Value>>,
    /// How far the clock has moved past `now` ([`TestHost::advance`]).
    advanced: std::cell::Cell<Duration>,
    state: RefCell<BTreeMap<String, Entry>>,
    next_cas: RefCell<u32>,
    logs: RefCell<Vec<(Level, String)>>,
    counters: RefCell<BTreeMap<String, u64>>,
}

impl TestHost {
    /// A host giving what the fixture says.
    #[must_use]
    pub fn new(host: &FixtureHost) -> Self {
        Self {
            now: host.now,
            data: host.data.clone(),
            ..Self::default()
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.advanced.set(self.advanced.get().saturating_add(by));
    }

    /// The log lines written so far.
    #[must_use]
    pub fn logs(&self) -> Vec<(Level, String)> {
        self.logs.borrow().clone()
    }

    /// The counters counted so far.
    #[must_use]
    pub fn counters(&self) -> BTreeMap<String, u64> {
        self.counters.borrow().clone()
    }
}

impl Host for TestHost {
    fn now(&self) -> Result<Duration, HostError> {
        Ok(self.now.saturating_add(self.advanced.get()))
    }

    fn get(&self, key: &str) -> Result<Option<Entry>, HostError> {
        Ok(self.state.borrow().get(key).cloned())
    }

    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<bool, HostError> {
        let mut state = self.state.borrow_mut();
        if cas != 0 && state.get(key).map(|e| e.cas) != Some(cas) {
            return Ok(false);
        }
        let mut next = self.next_cas.borrow_mut();
        *next = next.wrapping_add(1).max(1);
        state.insert(
            key.to_owned(),
            Entry {
                value: value.to_vec(),
                cas: *next,
            },
        );
        Ok(true)
    }

    fn data(&self, table: &str, key: &str) -> Result<Option<String>, HostError> {
        let table = self
            .data
            .get(table)
            .ok_or_else(|| HostError::Invalid(format!("no data table {table:?}")))?;
        Ok(table.get(key).map(Value::to_string))
    }

    fn data_keys(&self, table: &str, prefix: &str) -> Result<Vec<String>, HostError> {
        let table = self
            .data
            .get(table)
            .ok_or_else(|| HostError::Invalid(format!("no data table {table:?}")))?;
        Ok(table
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }

    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.to_owned()));
    }

    fn count(&self, name: &str, delta: u64) -> Result<(), HostError> {
        let mut counters = self.counters.borrow_mut();
        let counter = counters.entry(name.to_owned()).or_default();
        *counter = counter.saturating_add(delta);
        Ok(())
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
    #[serde(default)]
    host: FixtureHost,
    #[serde(default = "one")]
    repeat: u32,
    request: Value,
}

fn one() -> u32 {
    1
}

/// Every `*.yaml` fixture file under `dir` and its subdirectories, sorted by path.
///
/// # Errors
/// When a directory cannot be read.
pub fn fixture_paths(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)
            .with_context(|| format!("reading fixture directory {}", dir.display()))?
        {
            let path = entry
                .with_context(|| format!("reading fixture directory {}", dir.display()))?
                .path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                paths.push(path);
            }
        }
    }
    paths.sort();
    Ok(paths)
}

/// Loads every `*.yaml` fixture of `dir`, sorted by name, with requests of type `R`.
///
/// # Errors
/// When the directory cannot be read or a fixture does not parse.
pub fn load_fixtures<R: FixtureRequest>(dir: &Path) -> anyhow::Result<Vec<Fixture<R>>> {
    load_expanded_fixtures(dir, Ok)
}

/// What a policy's fixture runner may do to each fixture document before it is read: write
/// in what is made at test time (keys, signed tokens, signatures), so fixtures never hold
/// secrets. It gets and returns the whole document as JSON.
pub type Expand = fn(Value) -> anyhow::Result<Value>;

/// [`load_fixtures`], each document passed through `expand` first.
///
/// # Errors
/// When the directory cannot be read, a fixture does not parse or `expand` fails on it.
pub fn load_expanded_fixtures<R: FixtureRequest>(
    dir: &Path,
    expand: Expand,
) -> anyhow::Result<Vec<Fixture<R>>> {
    fixture_paths(dir)?
        .iter()
        .map(|p| load_fixture(dir, p, expand))
        .collect()
}

fn load_fixture<R: FixtureRequest>(
    dir: &Path,
    path: &Path,
    expand: Expand,
) -> anyhow::Result<Fixture<R>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading fixture {}", path.display()))?;
    let document: Value = serde_yaml::from_str(&text)
        .with_context(|| format!("parsing fixture {}", path.display()))?;
    let document =
        expand(document).with_context(|| format!("expanding fixture {}", path.display()))?;
    let file: FixtureFile = serde_path_to_error::deserialize(document)
        .with_context(|| format!("parsing fixture {}", path.display()))?;
    let relative = path.strip_prefix(dir).unwrap_or(path).with_extension("");
    let name = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/");
    if file.repeat == 0 {
        bail!("fixture {}: repeat must be at least 1", path.display());
    }
    let stem = relative
        .file_name()
        .and_then(|s| s.to_str())
        .with_context(|| format!("fixture name of {}", path.display()))?;
    let request = R::from_fixture(file.request, stem)
        .with_context(|| format!("building the request of fixture {}", path.display()))?;
    Ok(Fixture {
        name,
        path: path.to_owned(),
        settings: file.settings.to_string(),
        request,
        host: file.host,
        repeat: file.repeat,
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

/// Evaluates a fixture natively through the admission policy `P`, as hosts do: settings
/// parsed, validated and prepared first, then the request `repeat` times with a [`TestHost`].
#[must_use]
pub fn evaluate_natively<P: AdmissionPolicy>(fixture: &Fixture) -> Outcome {
    if !fixture.host.fetched.is_empty() || !fixture.host.callouts.is_empty() {
        return Outcome::Error(
            "host.fetched, host.callouts: admission policies fetch and call nothing".to_owned(),
        );
    }
    decide(
        &fixture.settings,
        P::prepare,
        fixture,
        |_: &P::Prepared, _: &dyn Host| Ok(()),
        |prepared: &P::Prepared, host| P::evaluate(&fixture.request, prepared, host),
    )
}

/// Evaluates a fixture natively through the HTTP policy `P`, as the proxy-wasm adapter does:
/// settings parsed, validated and prepared in `on_configure`, then the request `repeat` times,
/// each time with its calls answered from `host.callouts` until the policy decides (at most
/// [`MAX_CALLS`] calls, as in the adapter).
#[must_use]
pub fn evaluate_http_natively<P: HttpPolicy>(
    fixture: &Fixture<HttpRequest>,
) -> Outcome<HttpVerdict> {
    let answered: RefCell<BTreeMap<&str, usize>> = RefCell::new(BTreeMap::new());
    let evaluate = |prepared: &P::Prepared, host: &dyn Host| {
        let mut request = fixture.request.clone();
        // The body as the adapter holds it for a policy that reads bodies: none at the headers,
        // then cut to the limit (or refused with 413).
        let body = std::mem::take(&mut request.body);
        let limit = if body.is_empty() {
            None
        } else {
            P::reads_body(prepared, &request)
        };
        if let Some(limit) = limit {
            if limit.progress(body.len(), true) == BodyProgress::TooLarge {
                return Ok(HttpVerdict::payload_too_large(limit));
            }
            request.set_body(limit, &body);
        }
        loop {
            let mut verdict = P::evaluate(&request, prepared, host)?;
            if limit.is_some() {
                verdict = verdict.after_body().map_err(PolicyError::Internal)?;
            }
            let HttpVerdict::Call { callout } = verdict else {
                return Ok(verdict);
            };
            if request.answers.len() >= MAX_CALLS {
                return Err(PolicyError::Internal(format!(
                    "the policy asked for more than {MAX_CALLS} calls on one request"
                )));
            }
            let answer = fixture
                .host
                .callouts
                .get_key_value(callout.cluster.as_str())
                .and_then(|(cluster, answers)| {
                    let mut answered = answered.borrow_mut();
                    let at = answered.entry(cluster.as_str()).or_default();
                    let answer = answers.get(*at).or(answers.last());
                    *at = at.saturating_add(1);
                    answer
                })
                .filter(|a| !a.reset);
            request.answers.push(match answer {
                // A gRPC call: its status, and on OK the response message.
                Some(a) if callout.grpc.is_some() => Answer {
                    id: callout.id,
                    grpc_status: Some(a.grpc_status),
                    grpc_message: a.grpc_message.clone(),
                    message: if a.grpc_status == 0 {
                        a.body_bytes()
                    } else {
                        Vec::new()
                    },
                    ..Answer::default()
                },
                Some(a) => Answer {
                    id: callout.id,
                    status: a.status,
                    headers: a.headers.clone(),
                    body: a.body.clone(),
                    ..Answer::default()
                },
                None => Answer {
                    id: callout.id,
                    ..Answer::default()
                },
            });
        }
    };
    decide(
        &fixture.settings,
        P::prepare,
        fixture,
        |prepared: &P::Prepared, host: &dyn Host| {
            let fetches = P::fetches(prepared);
            for cluster in fixture.host.fetched.keys() {
                if !fetches.iter().any(|f| f.cluster == *cluster) {
                    let clusters: Vec<&str> = fetches.iter().map(|f| f.cluster.as_str()).collect();
                    return Err(format!(
                        "host.fetched: the policy fetches nothing from {cluster:?} (it fetches from {clusters:?})"
                    ));
                }
            }
            for fetch in &fetches {
                if let Some(body) = fixture.host.fetched.get(&fetch.cluster)
                    && let Err(e) = P::fetched(prepared, &fetch.id, body.as_bytes(), host)
                {
                    host.log(Level::Warn, &format!("fetch {:?} failed: {e}", fetch.id));
                }
            }
            Ok(())
        },
        evaluate,
    )
}

fn decide<S: PolicySettings, Pr, R, V>(
    settings: &str,
    prepare: impl FnOnce(S) -> Result<Pr, crate::SettingsError>,
    fixture: &Fixture<R>,
    prepared_hook: impl FnOnce(&Pr, &dyn Host) -> Result<(), String>,
    evaluate: impl Fn(&Pr, &dyn Host) -> Result<V, PolicyError>,
) -> Outcome<V> {
    let prepared = match parse_settings::<S>(settings).and_then(prepare) {
        Ok(prepared) => prepared,
        Err(e) => return Outcome::SettingsError(e.to_string()),
    };
    let host = TestHost::new(&fixture.host);
    if let Err(e) = prepared_hook(&prepared, &host) {
        return Outcome::Error(e);
    }
    let mut outcome = Outcome::Error("the fixture was not evaluated".to_owned());
    for i in 0..fixture.repeat {
        if i > 0 {
            host.advance(Duration::from_millis(fixture.host.advance_ms));
        }
        outcome = match evaluate(&prepared, &host) {
            Ok(verdict) => Outcome::Verdict(verdict),
            Err(e) => Outcome::Error(e.to_string()),
        };
    }
    outcome
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
    let stem = fixture.file_stem();
    let prefix_ok = match outcome {
        Outcome::Verdict(v) if v.is_allowed() => stem.starts_with("allow-"),
        Outcome::Verdict(_) => stem.starts_with("deny-"),
        Outcome::SettingsError(_) | Outcome::Error(_) => stem.starts_with("error-"),
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
    run_trials(fixture_trials(label, dir, evaluate))
}

/// The fixtures of `dir` as libtest-mimic tests named `<label>::<case>` (a crate with two
/// homes runs both sets with [`run_trials`]).
pub fn fixture_trials<R, V, F>(label: &str, dir: &Path, evaluate: F) -> Vec<libtest_mimic::Trial>
where
    R: FixtureRequest + Send + 'static,
    V: FixtureVerdict,
    F: Fn(&Fixture<R>) -> Outcome<V> + Send + Sync + 'static,
{
    expanded_fixture_trials(label, dir, Ok, evaluate)
}

/// [`fixture_trials`], each document passed through `expand` first (see [`Expand`]).
pub fn expanded_fixture_trials<R, V, F>(
    label: &str,
    dir: &Path,
    expand: Expand,
    evaluate: F,
) -> Vec<libtest_mimic::Trial>
where
    R: FixtureRequest + Send + 'static,
    V: FixtureVerdict,
    F: Fn(&Fixture<R>) -> Outcome<V> + Send + Sync + 'static,
{
    let evaluate = Arc::new(evaluate);
    match load_expanded_fixtures(dir, expand) {
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
    }
}

/// Runs tests with the process's arguments (filters, `--list`, ...) and returns its exit code.
#[must_use]
pub fn run_trials(trials: Vec<libtest_mimic::Trial>) -> ExitCode {
    libtest_mimic::run(&libtest_mimic::Arguments::from_args(), trials).exit_code()
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

    use super::*;
    use crate::wire::Callout;

    /// Asks `cluster` (the settings) until an answer is 200, then allows; denies with the last
    /// status after three failures.
    struct Asker;

    impl HttpPolicy for Asker {
        type Settings = Option<String>;
        type Prepared = Option<String>;

        fn prepare(settings: Option<String>) -> Result<Option<String>, crate::SettingsError> {
            Ok(settings)
        }

        fn evaluate(
            request: &HttpRequest,
            cluster: &Option<String>,
            _host: &dyn Host,
        ) -> Result<HttpVerdict, PolicyError> {
            let statuses: Vec<u16> = request.answers.iter().map(|a| a.status).collect();
            Ok(match statuses.last() {
                Some(200) => HttpVerdict::allow(),
                Some(&status) if statuses.len() == 3 => {
                    HttpVerdict::deny(403, "refused", format!("{statuses:?} {status}"))
                }
                _ => HttpVerdict::Call {
                    callout: Callout {
                        id: format!("ask/{}", statuses.len()),
                        cluster: cluster.clone().unwrap_or_default(),
                        method: "GET".into(),
                        path: "/".into(),
                        authority: "authz".into(),
                        headers: Vec::new(),
                        body: String::new(),
                        timeout_ms: 100,
                        grpc: None,
                    },
                },
            })
        }
    }

    impl PolicySettings for Option<String> {
        fn validate(&self) -> Result<(), crate::SettingsError> {
            Ok(())
        }
    }

    fn fixture(settings: &str, callouts: &str) -> Fixture<HttpRequest> {
        Fixture {
            name: "case".into(),
            path: "case.yaml".into(),
            settings: settings.into(),
            request: HttpRequest::default(),
            host: serde_json::from_str(&format!(r#"{{"callouts": {callouts}}}"#)).unwrap(),
            repeat: 1,
        }
    }

    /// Makes one gRPC call and reports what came back in its denial's message.
    struct GrpcAsker;

    impl HttpPolicy for GrpcAsker {
        type Settings = Option<String>;
        type Prepared = Option<String>;

        fn prepare(settings: Option<String>) -> Result<Option<String>, crate::SettingsError> {
            Ok(settings)
        }

        fn evaluate(
            request: &HttpRequest,
            _: &Option<String>,
            _host: &dyn Host,
        ) -> Result<HttpVerdict, PolicyError> {
            Ok(match request.answer("rls") {
                None => HttpVerdict::Call {
                    callout: Callout::grpc("rls", "rls", ("s.S", "M"), vec![1, 2], 20),
                },
                Some(a) => HttpVerdict::deny(
                    429,
                    "answered",
                    format!(
                        "{:?} {:?} {:?} {}",
                        a.grpc_status, a.message, a.grpc_message, a.status
                    ),
                ),
            })
        }
    }

    #[test]
    fn grpc_calls_get_their_status_and_message_bytes() {
        let message = |callouts: &str| match evaluate_http_natively::<GrpcAsker>(&fixture(
            "null", callouts,
        )) {
            Outcome::Verdict(HttpVerdict::Deny { message, .. }) => message,
            other => unreachable!("{other:?}"),
        };
        assert_eq!(
            message(r#"{"rls": [{"bodyBase64": "AQJvaw=="}]}"#),
            r#"Some(0) [1, 2, 111, 107] "" 0"#
        );
        assert_eq!(
            message(r#"{"rls": [{"grpcStatus": 14, "grpcMessage": "down", "body": "ignored"}]}"#),
            r#"Some(14) [] "down" 0"#
        );
        // Refused (no such cluster): no gRPC status at all.
        assert_eq!(message("{}"), r#"None [] "" 0"#);
        // The JSON form: the message as base64, both ways; bad base64 is refused.
        let call = Callout::grpc("rls", "rls", ("s.S", "M"), vec![0x0a, 0x03], 20);
        let json = serde_json::to_value(&call).unwrap();
        assert_eq!(json["grpc"]["message"], "CgM=");
        assert_eq!(serde_json::from_value::<Callout>(json).unwrap(), call);
        assert!(serde_json::from_str::<Answer>(r#"{"message": "not base64!"}"#).is_err());
    }

    #[test]
    fn calls_are_answered_in_order_until_the_policy_decides() {
        let outcome = evaluate_http_natively::<Asker>(&fixture(
            r#""authz""#,
            r#"{"authz": [{"status": 503}, {"reset": true}, {"status": 200}]}"#,
        ));
        assert_eq!(outcome, Outcome::Verdict(HttpVerdict::allow()));
        // The last answer repeats; a reset reads as status 0.
        let outcome = evaluate_http_natively::<Asker>(&fixture(
            r#""authz""#,
            r#"{"authz": [{"status": 500}, {"reset": true}]}"#,
        ));
        let Outcome::Verdict(HttpVerdict::Deny { message, .. }) = outcome else {
            unreachable!("{outcome:?}");
        };
        assert_eq!(message, "[500, 0, 0] 0");
    }

    #[test]
    fn an_unknown_cluster_refuses_and_endless_calls_fail_closed() {
        // No such cluster: every call is refused (status 0), as the proxy refuses it.
        let outcome = evaluate_http_natively::<Asker>(&fixture(r#""nowhere""#, "{}"));
        assert!(
            matches!(outcome, Outcome::Verdict(HttpVerdict::Deny { .. })),
            "{outcome:?}"
        );
        // A policy that never decides is stopped after MAX_CALLS calls.
        struct Endless;
        impl HttpPolicy for Endless {
            type Settings = Option<String>;
            type Prepared = Option<String>;
            fn prepare(s: Option<String>) -> Result<Option<String>, crate::SettingsError> {
                Ok(s)
            }
            fn evaluate(
                request: &HttpRequest,
                prepared: &Option<String>,
                host: &dyn Host,
            ) -> Result<HttpVerdict, PolicyError> {
                let mut verdict = Asker::evaluate(&HttpRequest::default(), prepared, host)?;
                if let HttpVerdict::Call { callout } = &mut verdict {
                    callout.id = format!("endless/{}", request.answers.len());
                }
                Ok(verdict)
            }
        }
        let outcome =
            evaluate_http_natively::<Endless>(&fixture(r#""authz""#, r#"{"authz": [{}]}"#));
        assert_eq!(
            outcome,
            Outcome::Error(format!(
                "internal policy error: the policy asked for more than {MAX_CALLS} calls on one request"
            ))
        );
    }
}
