//! Runs every fixture in `fixtures/admission/` natively through `evaluate`.

use palisade_sdk::testing::{evaluate_natively, run_fixtures};
use pod_security::PodSecurity;
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/admission");
    run_fixtures("pod-security", &dir, evaluate_natively::<PodSecurity>)
}
