//! The proxy-wasm header-map pair codec (`proxy_set_header_map_pairs`, `proxy_http_call`,
//! `proxy_send_local_response` bytes from the guest): decoding never panics, and what decodes
//! encodes back to bytes that decode to the same pairs; any pairs encode and decode unchanged.
//! And the SDK's side, which reads what the host answers `proxy_get_header_map_pairs` with
//! (`HttpRequest::from_header_map`): any bytes give headers or an error, never a panic, and
//! any encoded pairs read back as the request's pseudo-header fields and its other headers,
//! names lower-cased, in order.
#![no_main]

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use palisade_proxy::fuzzing::{decode_pairs, encode_pairs};
use palisade_sdk::wire::HttpRequest;

fuzz_target!(|data: &[u8]| {
    if let Some(pairs) = decode_pairs(data) {
        let again = decode_pairs(&encode_pairs(&pairs)).expect("re-encoded pairs decode");
        assert_eq!(pairs, again);
    }
    let _ = HttpRequest::from_header_map(data.to_vec());
    if let Ok(pairs) = Unstructured::new(data).arbitrary::<Vec<(String, String)>>() {
        let bytes = encode_pairs(&pairs);
        assert_eq!(bytes.is_empty(), pairs.is_empty());
        let read = HttpRequest::from_header_map(bytes.clone()).expect("encoded pairs read");
        let last = |name: &str| {
            pairs
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .unwrap_or_default()
        };
        assert_eq!(read.method, last(":method"));
        assert_eq!(read.path, last(":path"));
        assert_eq!(read.authority, last(":authority"));
        assert_eq!(read.scheme, last(":scheme"));
        let others: Vec<(String, &str)> = pairs
            .iter()
            .filter(|(n, _)| !n.starts_with(':'))
            .map(|(n, v)| (n.to_ascii_lowercase(), v.as_str()))
            .collect();
        assert!(
            read.headers
                .iter()
                .eq(others.iter().map(|(n, v)| (n.as_str(), *v))),
            "{pairs:?} read as {:?}",
            read.headers
        );
        assert_eq!(decode_pairs(&bytes), Some(pairs));
    }
});
