//! Runs every fixture in `fixtures/admission/` natively through `evaluate`: the checks that
//! need no registry (allowed registries, `latest`, digests, rules no image matches, settings).
//! Verification against signed images is `examples/suite.yaml`'s, through the host.

use image_signature::ImageSignature;
use palisade_sdk::testing::{evaluate_natively, run_fixtures};
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/admission");
    run_fixtures("image-signature", &dir, evaluate_natively::<ImageSignature>)
}
