//! Runs the fixtures of both homes natively: `fixtures/http/` through the proxy filter's
//! logic (keys and tokens written in by `zero_trust::testing::expand`), `fixtures/admission/`
//! through the admission policy's.

use palisade_sdk::testing::{
    evaluate_http_natively, evaluate_natively, expanded_fixture_trials, fixture_trials, run_trials,
};
use std::path::Path;
use std::process::ExitCode;
use zero_trust::ZeroTrust;

fn main() -> ExitCode {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut trials = expanded_fixture_trials(
        "zero-trust::http",
        &dir.join("http"),
        zero_trust::testing::expand,
        evaluate_http_natively::<ZeroTrust>,
    );
    trials.extend(fixture_trials(
        "zero-trust::admission",
        &dir.join("admission"),
        evaluate_natively::<ZeroTrust>,
    ));
    run_trials(trials)
}
