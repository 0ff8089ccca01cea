//! `proxy_get_property` on any path, over any node metadata, connection and request headers:
//! NOT_FOUND or a value, never a panic; map-valued attributes are well-formed pair bytes.
//!
//! Input, one item per line: the path (its parts NUL-separated, as a guest sends it), the node
//! metadata as JSON, the source and destination addresses, the peer's URI SANs (space
//! separated), then request headers as `name: value`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_proxy::fuzzing::{decode_pairs, property};
use palisade_proxy::{Connection, Node};

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|b| *b == b'\n');
    let path = lines.next().unwrap_or_default();
    let mut text = |default: &str| {
        lines
            .next()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .unwrap_or_else(|| default.to_owned())
    };
    let metadata = serde_json::from_str(&text("{}")).unwrap_or_default();
    let source_address = text("10.0.0.2:51234");
    let destination_address = text("10.0.0.1:8080");
    let peer_uri_sans = text("").split(' ').map(str::to_owned).collect();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let l = String::from_utf8_lossy(l);
            let (k, v) = l.split_once(": ").unwrap_or((&l, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let node = Node {
        id: "sidecar~10.0.0.1~app.default~default.svc.cluster.local".into(),
        cluster: "app.default".into(),
        metadata,
    };
    let connection = Connection {
        source_address,
        destination_address,
        peer_uri_sans,
        ..Connection::default()
    };
    let Some(value) = property(&connection, &node, &headers, path) else {
        return;
    };
    let maps: [&[u8]; 3] = [
        b"request\0headers",
        b"response\0headers",
        b"response\0trailers",
    ];
    if maps.contains(&path) && headers.len() <= 1024 {
        assert!(
            value.is_empty() || decode_pairs(&value).is_some(),
            "malformed pairs"
        );
    }
});
