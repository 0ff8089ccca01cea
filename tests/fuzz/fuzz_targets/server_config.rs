//! `palisade serve`'s configuration text: parsed and validated into errors, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_webhook::Config;

fuzz_target!(|text: &str| {
    if let Ok(config) = Config::parse(text) {
        if let Err(message) = config.validate() {
            assert!(!message.is_empty());
        }
    }
});
