//! Every admission policy's fixtures through its compiled component in the host: the verdicts
//! must equal the expected files the native runs produce. Plus completeness, for every policy
//! whatever its ABI: allow and deny cases and a built artefact for its declared target.

use std::process::ExitCode;
use std::sync::Arc;

use e2e::{ADMISSION_COMPONENT, PolicyCrate, policy_crates};
use libtest_mimic::{Arguments, Failed, Trial};
use palisade_runtime::component::Prepared;
use palisade_runtime::{Engine, EngineConfig, EvalError, LoadError};
use palisade_sdk::testing::{Outcome, check, fixture_paths, load_fixtures};
use palisade_sdk::wire::AdmissionRequest;

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let trials = match trials() {
        Ok(trials) => trials,
        Err(e) => {
            let message = format!("{e:#}");
            vec![Trial::test("discover", move || Err(message.into()))]
        }
    };
    libtest_mimic::run(&args, trials).exit_code()
}

fn trials() -> anyhow::Result<Vec<Trial>> {
    let engine = Arc::new(Engine::new(EngineConfig::default())?);
    let mut trials = Vec::new();
    for policy in policy_crates()? {
        trials.push(completeness(&policy));
        // Only components run here: proxy filters need the proxy-wasm host.
        if !policy.exports(ADMISSION_COMPONENT) {
            continue;
        }
        let prepared = match policy.artefact() {
            Ok(bytes) => Prepared::new(&engine, &bytes)
                .map(Arc::new)
                .map_err(|e| format!("{:#}", anyhow::Error::from(e))),
            Err(e) => Err(format!("{e:#}")),
        };
        for fixture in load_fixtures::<AdmissionRequest>(&policy.fixtures())? {
            let prepared = prepared.clone();
            trials.push(Trial::test(
                format!("{}::wasm::{}", policy.name, fixture.name),
                move || {
                    let prepared = prepared.map_err(Failed::from)?;
                    let outcome = evaluate(&prepared, &fixture.settings, &fixture.request);
                    check(&fixture, &outcome).map_err(|e| format!("{e:#}").into())
                },
            ));
        }
    }
    Ok(trials)
}

/// The outcome as `palisade run` would see it: settings rejected at configure time, then a
/// verdict or the policy's own error.
fn evaluate(prepared: &Arc<Prepared>, settings: &str, request: &AdmissionRequest) -> Outcome {
    match prepared.configure(settings, None) {
        Err(LoadError::Settings(e)) => Outcome::SettingsError(e.to_string()),
        Err(e) => Outcome::Error(format!("host error: {e}")),
        Ok(policy) => match policy.evaluate(request) {
            Ok(verdict) => Outcome::Verdict(verdict),
            Err(EvalError::Policy(e)) => Outcome::Error(e.to_string()),
            Err(e) => Outcome::Error(format!("host error: {e}")),
        },
    }
}

fn completeness(policy: &PolicyCrate) -> Trial {
    let policy = policy.clone();
    Trial::test(format!("{}::complete", policy.name), move || {
        let names: Vec<String> = fixture_paths(&policy.fixtures())
            .map_err(|e| format!("{e:#}"))?
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect();
        for prefix in ["allow-", "deny-"] {
            if !names.iter().any(|name| name.starts_with(prefix)) {
                return Err(format!("{} has no {prefix} fixture", policy.name).into());
            }
        }
        let artefact = policy.artefact_path();
        if !artefact.is_file() {
            return Err(format!(
                "{} has no built artefact at {} (built for {})",
                policy.name,
                artefact.display(),
                policy.target
            )
            .into());
        }
        Ok(())
    })
}
