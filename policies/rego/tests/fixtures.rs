//! Runs the admission fixtures natively: `fixtures/admission/` through the Gatekeeper policy,
//! with the deterministic test host.

use palisade_sdk::testing::{evaluate_natively, fixture_trials, run_trials};
use rego::Gatekeeper;
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let trials = fixture_trials(
        "rego::gatekeeper",
        &dir.join("admission"),
        evaluate_natively::<Gatekeeper>,
    );
    run_trials(trials)
}
