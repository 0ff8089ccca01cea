//! The SDK's JSON tape (what the host sends a policy with every object) against serde_json:
//! the same text gives the same value or an error in both, and a tape that does not fit its
//! text gives an error, never a panic.
//!
//! Input: the text; or 0xFF, a little-endian u32 count N, N tape words, then the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_sdk::wire::json::{self, Tape};
use serde_json::Value;

fn split(data: &[u8]) -> (Option<Vec<u32>>, &[u8]) {
    let Some((0xFF, rest)) = data.split_first() else {
        return (None, data);
    };
    let Some((count, rest)) = rest.split_first_chunk::<4>() else {
        return (None, rest);
    };
    let count = (u32::from_le_bytes(*count) as usize).min(rest.len() / 4);
    let (words, text) = rest.split_at(count * 4);
    let words = words
        .chunks_exact(4)
        .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        .collect();
    (Some(words), text)
}

fuzz_target!(|data: &[u8]| {
    let (words, text) = split(data);
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    if let Some(words) = words {
        // Any tape at all: errors are fine, panics are not.
        let _ = json::from_tape::<Value>(text, &Tape::from_words(words));
        return;
    }
    let ours = json::from_str::<Value>(text);
    let theirs = serde_json::from_str::<Value>(text);
    match (&ours, &theirs) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "the tape reads a different value"),
        (Err(_), Err(_)) => {}
        // serde_json stops at 128 levels of nesting; deeper documents may read on the tape.
        (Ok(_), Err(e)) if e.to_string().contains("recursion limit") => {}
        _ => panic!("tape {ours:?} but serde_json {theirs:?}"),
    }
});
