//! Runs the fixtures of both homes natively: `fixtures/http/` through the proxy filter's
//! logic, `fixtures/admission/` through the admission policy's.

use palisade_sdk::testing::{
    evaluate_http_natively, evaluate_natively, fixture_trials, run_trials,
};
use std::path::Path;
use std::process::ExitCode;
use zero_trust::ZeroTrust;

fn main() -> ExitCode {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut trials = fixture_trials(
        "zero-trust::http",
        &dir.join("http"),
        evaluate_http_natively::<ZeroTrust>,
    );
    trials.extend(fixture_trials(
        "zero-trust::admission",
        &dir.join("admission"),
        evaluate_natively::<ZeroTrust>,
    ));
    run_trials(trials)
}
