//! Runs every fixture in `fixtures/http/` natively through `evaluate`.

use palisade_sdk::testing::{evaluate_http_natively, run_fixtures};
use rate_limit::RateLimit;
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/http");
    run_fixtures("rate-limit", &dir, evaluate_http_natively::<RateLimit>)
}
