//! Runs the fixtures of both homes natively: `fixtures/http/` through the proxy filter,
//! `fixtures/admission/` through the admission policy, each with the deterministic test host.

use palisade_sdk::testing::{
    evaluate_http_natively, evaluate_natively, fixture_trials, run_trials,
};
use rate_limit::RateLimit;
use rate_limit::admission::AdmissionRateLimit;
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut trials = fixture_trials(
        "rate-limit",
        &dir.join("http"),
        evaluate_http_natively::<RateLimit>,
    );
    trials.extend(fixture_trials(
        "rate-limit::admission",
        &dir.join("admission"),
        evaluate_natively::<AdmissionRateLimit>,
    ));
    run_trials(trials)
}
