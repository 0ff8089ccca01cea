//! The SDK's request path normalisation (what request-guard and zero-trust rules match
//! against): every form is an absolute path with no dot segments, empty segments or
//! backslashes, and one without escapes normalises to itself. (Decoding is one pass, as
//! Envoy's: `%%61` becomes `%a`, which a second pass would read as an escape; the upstream gets
//! the same single-pass path from Envoy.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_sdk::path::normalise;

fuzz_target!(|path: &str| {
    for form in normalise(path) {
        assert!(form.starts_with('/'), "{form:?} is not absolute");
        assert!(!form.contains("//"), "{form:?} has empty segments");
        assert!(
            !form.split('/').any(|s| s == "." || s == ".."),
            "{form:?} keeps dot segments"
        );
        assert!(!form.contains(['?', '#', '\\']), "{form:?}");
        if !form.contains('%') {
            assert_eq!(normalise(&form), vec![form.clone()], "not idempotent");
        }
    }
});
