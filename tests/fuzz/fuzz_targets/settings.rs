//! Settings parsing of the shipped policies (what `validate-settings` runs on an operator's
//! YAML/JSON): pod-security's, request-guard's and rate-limit's (its filter configuration, local
//! or global, and its admission settings, parsed and compiled) on every input: an error or
//! settings, never a panic; accepted settings read the same twice and compile.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_sdk::{AdmissionPolicy, parse_settings};

fuzz_target!(|text: &str| {
    if let Ok(settings) = parse_settings::<pod_security::Settings>(text) {
        let again = parse_settings::<pod_security::Settings>(text).expect("reads twice");
        assert_eq!(format!("{settings:?}"), format!("{again:?}"));
    }
    let _ = parse_settings::<request_guard::Settings>(text);
    if let Ok(config) = parse_settings::<rate_limit::Config>(text) {
        rate_limit::Filter::new(&config).expect("validated settings compile");
    }
    if let Ok(settings) = parse_settings::<rate_limit::admission::Settings>(text) {
        rate_limit::admission::AdmissionRateLimit::prepare(settings)
            .expect("validated settings compile");
    }
});
