//! Runs the fixtures of both homes natively: `fixtures/admission/` through the admission
//! policy, `fixtures/http/` through the HTTP policy, each with the deterministic test host.

use palisade_sdk::testing::{
    evaluate_http_natively, evaluate_natively, fixture_trials, run_trials,
};
use quota::Quota;
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut trials = fixture_trials(
        "quota::admission",
        &dir.join("admission"),
        evaluate_natively::<Quota>,
    );
    trials.extend(fixture_trials(
        "quota::http",
        &dir.join("http"),
        evaluate_http_natively::<Quota>,
    ));
    run_trials(trials)
}
