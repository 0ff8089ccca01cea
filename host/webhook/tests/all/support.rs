//! What the webhook's test modules share: the built guests they serve.

use std::path::PathBuf;

/// A built admission component (`make policies`), by file name: `pod_security.wasm`,
/// `hostile.wasm` (the guest that behaves as its request says: traps, loops, eats memory).
pub(crate) fn module(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/policies/admission-component")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `make policies`",
        path.display()
    );
    path
}

/// The hostile guest.
pub(crate) fn hostile() -> PathBuf {
    module("hostile.wasm")
}
