//! Runs every fixture in `fixtures/http/` natively through `evaluate`.

use palisade_sdk::testing::{evaluate_http_natively, run_fixtures};
use request_guard::RequestGuard;
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/http");
    run_fixtures(
        "request-guard",
        &dir,
        evaluate_http_natively::<RequestGuard>,
    )
}
