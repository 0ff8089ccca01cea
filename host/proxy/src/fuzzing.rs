//! Entry points for the fuzz targets (`tests/fuzz`): the codecs a guest's bytes reach, exposed
//! without the VM around them. Not an API; nothing else may depend on it.

use super::header_map::{self, HeaderMap};
use super::properties::{Connection, Lookup, Node, PluginIdentity, StreamView};

/// `proxy_set_header_map_pairs`' decoder: the pairs, or `None` where the host refuses them.
#[must_use]
pub fn decode_pairs(bytes: &[u8]) -> Option<Vec<(String, String)>> {
    header_map::decode_pairs(bytes).ok()
}

/// The encoder the host answers `proxy_get_header_map_pairs` with.
#[must_use]
pub fn encode_pairs(pairs: &[(String, String)]) -> Vec<u8> {
    HeaderMap(pairs.to_vec()).encode()
}

/// `proxy_get_property(path)` on a stream with `request_headers` (and response headers with
/// `:status: 200`), over `connection` and `node`: the encoded value, or `None` for NOT_FOUND.
#[must_use]
pub fn property(
    connection: &Connection,
    node: &Node,
    request_headers: &[(String, String)],
    path: &[u8],
) -> Option<Vec<u8>> {
    let request = HeaderMap(request_headers.to_vec());
    let response = HeaderMap::from_pairs([(":status", "200")]);
    let plugin = PluginIdentity {
        name: "fuzz".into(),
        root_id: "fuzz".into(),
        vm_id: "fuzz".into(),
    };
    let lookup = Lookup {
        connection,
        node,
        plugin: &plugin,
        stream: Some(StreamView {
            request_headers: Some(&request),
            response_headers: Some(&response),
            protocol: "HTTP/1.1",
            start_nanos: 1,
            request_size: Some(0),
            response_size: Some(0),
            duration_nanos: Some(1),
            response_code_details: Some("via_upstream"),
            ..StreamView::default()
        }),
    };
    lookup.get(path).ok()
}
