//! The proxy-wasm header-map pair codec (`proxy_set_header_map_pairs`, `proxy_http_call`,
//! `proxy_send_local_response` bytes from the guest): decoding never panics, and what decodes
//! encodes back to bytes that decode to the same pairs; any pairs encode and decode unchanged.
#![no_main]

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use palisade_proxy::fuzzing::{decode_pairs, encode_pairs};

fuzz_target!(|data: &[u8]| {
    if let Some(pairs) = decode_pairs(data) {
        let again = decode_pairs(&encode_pairs(&pairs)).expect("re-encoded pairs decode");
        assert_eq!(pairs, again);
    }
    if let Ok(pairs) = Unstructured::new(data).arbitrary::<Vec<(String, String)>>() {
        let bytes = encode_pairs(&pairs);
        assert_eq!(bytes.is_empty(), pairs.is_empty());
        assert_eq!(decode_pairs(&bytes), Some(pairs));
    }
});
