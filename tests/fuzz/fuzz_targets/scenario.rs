//! Scenario files as `palisade run --http` and `palisade test` read them (YAML or JSON by the
//! file's extension, duplicate keys refused), both ways on every input: a scenario or an error
//! naming the file, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use palisade_proxy::Scenario;
use palisade_suite::input::parse_document;

fuzz_target!(|text: &str| {
    for name in ["scenario.yaml", "scenario.json"] {
        if let Err(error) = parse_document::<Scenario>(Path::new(name), text) {
            assert!(error.to_string().contains(name), "{error}");
        }
    }
});
