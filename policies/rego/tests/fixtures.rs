//! Runs the fixtures of both homes natively: `fixtures/admission/` through the Gatekeeper
//! policy, `fixtures/http/` through the OPA-Envoy filter, with the deterministic test host.

use palisade_sdk::testing::{
    evaluate_http_natively, evaluate_natively, fixture_trials, run_trials,
};
use rego::{Gatekeeper, OpaEnvoy};
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut trials = fixture_trials(
        "rego::gatekeeper",
        &dir.join("admission"),
        evaluate_natively::<Gatekeeper>,
    );
    trials.extend(fixture_trials(
        "rego::envoy",
        &dir.join("http"),
        evaluate_http_natively::<OpaEnvoy>,
    ));
    run_trials(trials)
}
