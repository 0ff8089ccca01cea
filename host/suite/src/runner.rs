//! Running suites: each policy module loaded once per run (by path) through the API of its
//! ABI, each case run against it with the host the suite describes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use palisade_oci::{ImageStore, StoreOptions};
use palisade_proxy::{Filter, RunOptions, Scenario};
use palisade_runtime::admission::{Options, Prepared};
use palisade_runtime::capabilities::cluster::ManifestDirectory;
use palisade_runtime::capabilities::{
    Capabilities, Clock, DataTables, FixedClock, Grants, MemoryStore, StateLimits, SystemClock,
};
use palisade_runtime::{Abi, Engine, LoadError, chain};
use palisade_sdk::wire::Verdict;
use palisade_supply_chain::bundle::TrustRoot;
use palisade_supply_chain::capability::VerifierCapability;
use palisade_supply_chain::image::{DEFAULT_RESULT_TTL, ImageVerifier};

use crate::{Case, Suite, SuiteError, check, input};

/// A suite's policy, by ABI.
#[derive(Clone)]
enum Loaded {
    Admission(Arc<Prepared>),
    Proxy(Arc<Filter>),
}

/// Runs suites; modules named by several suites are loaded once.
pub struct Runner<'a> {
    engine: &'a Engine,
    modules: BTreeMap<PathBuf, Loaded>,
}

/// What one case gave.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The case's name.
    pub name: String,
    /// Why it failed; `None` when it passed (or was skipped).
    pub failure: Option<String>,
    /// Whether it was skipped (gator's `skip: true`): neither passed nor failed.
    pub skipped: bool,
    /// How long it took.
    pub time: Duration,
}

/// What one suite gave.
#[derive(Debug, Clone)]
pub struct SuiteReport {
    /// The suite file.
    pub path: PathBuf,
    /// Its cases, in order.
    pub cases: Vec<CaseResult>,
}

impl<'a> Runner<'a> {
    /// A runner evaluating on `engine` (its limits apply to every evaluation).
    #[must_use]
    pub fn new(engine: &'a Engine) -> Self {
        Self {
            engine,
            modules: BTreeMap::new(),
        }
    }

    /// Runs the suite in `path`; `each` sees every case's result as it is known.
    ///
    /// # Errors
    /// [`SuiteError`] when the suite, its module or a file a case names cannot be used; the
    /// cases run before it are reported through `each`.
    pub fn run(
        &mut self,
        path: &Path,
        mut each: impl FnMut(&CaseResult),
    ) -> Result<SuiteReport, SuiteError> {
        let mut suite: Suite = input::read_document(path)?;
        let invalid = |message: String| SuiteError::Invalid {
            path: path.to_owned(),
            message,
        };
        if !suite.settings_from.is_empty() {
            let mut settings = suite.settings.take().unwrap_or_default();
            palisade_runtime::documents::add_settings_from(
                &mut settings,
                &suite.settings_from,
                path.parent().unwrap_or(Path::new(".")),
            )
            .map_err(|e| invalid(palisade_runtime::chain(&e)))?;
            suite.settings = Some(settings);
        }
        if suite.cases.is_empty() {
            return Err(invalid("it has no cases".into()));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let loaded = self.load(&base.join(&suite.policy), path)?;
        let host = SuiteHost::new(&suite, path)?;
        let mut cases = Vec::new();
        for case in &suite.cases {
            let started = Instant::now();
            let failure = match (&loaded, &case.request, &case.scenario) {
                (Loaded::Admission(prepared), Some(request), None) => {
                    self.admission(prepared, &host, &suite, case, &base.join(request))?
                }
                (Loaded::Proxy(filter), None, Some(scenario)) => {
                    self.proxy(filter, &suite, case, &base.join(scenario))?
                }
                (Loaded::Admission(_), _, _) => {
                    return Err(invalid(format!(
                        "case {:?}: an admission policy's case needs `request` (and no `scenario`)",
                        case.name
                    )));
                }
                (Loaded::Proxy(_), _, _) => {
                    return Err(invalid(format!(
                        "case {:?}: a proxy filter's case needs `scenario` (and no `request`)",
                        case.name
                    )));
                }
            };
            let result = CaseResult {
                name: case.name.clone(),
                failure: failure.err(),
                skipped: false,
                time: started.elapsed(),
            };
            each(&result);
            cases.push(result);
        }
        Ok(SuiteReport {
            path: path.to_owned(),
            cases,
        })
    }

    fn load(&mut self, module: &Path, suite: &Path) -> Result<Loaded, SuiteError> {
        if let Some(loaded) = self.modules.get(module) {
            return Ok(loaded.clone());
        }
        let bytes = input::read_module(module)?;
        let load = |source: LoadError| SuiteError::Load {
            module: module.to_owned(),
            suite: suite.to_owned(),
            source,
        };
        let loaded = match Abi::detect(&bytes).map_err(load)? {
            Abi::ProxyWasm { .. } => {
                Loaded::Proxy(Arc::new(Filter::new(self.engine, &bytes).map_err(load)?))
            }
            _ => Loaded::Admission(Arc::new(Prepared::new(self.engine, &bytes).map_err(load)?)),
        };
        self.modules.insert(module.to_owned(), loaded.clone());
        Ok(loaded)
    }

    /// An admission case: configured with its settings and the suite's host, evaluated
    /// `repeat` times; the last outcome checked.
    fn admission(
        &self,
        prepared: &Arc<Prepared>,
        host: &SuiteHost,
        suite: &Suite,
        case: &Case,
        request: &Path,
    ) -> Result<Result<(), String>, SuiteError> {
        let review = input::read_request(request)?;
        let settings = case
            .settings
            .as_ref()
            .or(suite.settings.as_ref())
            .map(ToString::to_string)
            .unwrap_or_default();
        let options = Options {
            capabilities: Some(Arc::clone(&host.capabilities)),
            grants: host.grants.clone(),
            ..Options::default()
        };
        let outcome: Result<Verdict, String> = match prepared.configure(&settings, options) {
            Err(e) => Err(chain(&e)),
            Ok(policy) => {
                let mut outcome = Err("the case was not evaluated".to_owned());
                for _ in 0..case.repeat.max(1) {
                    outcome = policy
                        .evaluate_blocking(&review.request)
                        .result
                        .map_err(|e| chain(&e));
                }
                outcome
            }
        };
        Ok(check::admission(&case.expect, outcome))
    }

    /// A proxy case: its scenario (with the case's settings as the plugin configuration, when
    /// given) through the filter as Envoy would run it.
    fn proxy(
        &self,
        filter: &Filter,
        suite: &Suite,
        case: &Case,
        scenario: &Path,
    ) -> Result<Result<(), String>, SuiteError> {
        let mut scenario: Scenario = input::read_document(scenario)?;
        if let Some(settings) = case.settings.as_ref().or(suite.settings.as_ref()) {
            scenario.plugin.configuration = Some(settings.clone());
        }
        let options = RunOptions {
            limits: self.engine.default_limits(),
            trace: false,
        };
        let (report, _) = palisade_proxy::run(filter, &scenario, options);
        Ok(check::proxy(&case.expect, &report))
    }
}

/// What the host gives a suite's admission policy.
struct SuiteHost {
    capabilities: Arc<Capabilities>,
    grants: Grants,
}

impl SuiteHost {
    fn new(suite: &Suite, path: &Path) -> Result<Self, SuiteError> {
        let clock: Arc<dyn Clock> = match &suite.host.now {
            None => Arc::new(SystemClock),
            Some(now) => Arc::new(FixedClock(
                palisade_sdk::testing::parse_rfc3339(now).ok_or_else(|| SuiteError::Invalid {
                    path: path.to_owned(),
                    message: format!(
                        "host.now {now:?} is not an RFC 3339 UTC time such as 2026-01-01T00:00:00Z"
                    ),
                })?,
            )),
        };
        let mut capabilities = Capabilities::new(
            clock,
            Arc::new(MemoryStore::new(StateLimits::default())),
            DataTables::new(suite.host.data.clone()),
        );
        if let Some(dir) = &suite.host.kubernetes {
            let dir = path.parent().unwrap_or(Path::new(".")).join(dir);
            let cluster = ManifestDirectory::load(&dir).map_err(|e| SuiteError::Invalid {
                path: path.to_owned(),
                message: format!("host.kubernetes {}: {e}", dir.display()),
            })?;
            capabilities = capabilities.with_cluster(Arc::new(cluster));
        }
        if let Some(dir) = &suite.host.images {
            let base = path.parent().unwrap_or(Path::new("."));
            let verifier = images(
                &base.join(dir),
                suite.host.trusted_root.as_deref().map(|r| base.join(r)),
            )
            .map_err(|message| SuiteError::Invalid {
                path: path.to_owned(),
                message,
            })?;
            capabilities = capabilities.with_supply_chain(Arc::new(verifier));
        } else if suite.host.trusted_root.is_some() {
            return Err(SuiteError::Invalid {
                path: path.to_owned(),
                message: "host.trustedRoot is given without host.images".to_owned(),
            });
        }
        Ok(Self {
            capabilities: Arc::new(capabilities),
            grants: Grants {
                clock: suite.capabilities.clock,
                state: suite.capabilities.state,
                rate_limit: suite.capabilities.rate_limit,
                supply_chain: suite.capabilities.supply_chain,
                data: suite.capabilities.data.clone(),
                operations: suite.capabilities.host.clone(),
                kubernetes: suite.capabilities.kubernetes.clone(),
            },
        })
    }
}

/// Image signature verification from the OCI layout `dir`, against `trusted_root` (or
/// Sigstore's public-good root).
fn images(dir: &Path, trusted_root: Option<PathBuf>) -> Result<VerifierCapability, String> {
    let store = ImageStore::layout(dir, StoreOptions::default())
        .map_err(|e| format!("host.images {}: {}", dir.display(), chain(&e)))?;
    let root = match trusted_root {
        Some(path) => {
            let json = std::fs::read_to_string(&path)
                .map_err(|e| format!("host.trustedRoot {}: {e}", path.display()))?;
            TrustRoot::from_json(&json, &path.display().to_string())
        }
        None => TrustRoot::production(),
    }
    .map_err(|e| format!("host.trustedRoot: {e}"))?;
    Ok(VerifierCapability::new(ImageVerifier::new(
        Arc::new(store),
        Some(root),
        DEFAULT_RESULT_TTL,
    )))
}
