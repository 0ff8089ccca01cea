//! Envoy's encodings of the proxy-wasm property values the proxy filter adapter reads (strings
//! raw, integers 8 bytes little-endian, booleans one byte; Envoy's "Attributes" doc). Pure and
//! ABI-free, so it is tested natively; the adapter supplies the bytes.

use crate::wire::Connection;

/// Builds a [`Connection`] from Envoy's connection attributes; `read` returns a property's bytes
/// by path segments, or `None` when the host has none. A missing or malformed value gives
/// `None` (`false` for `mtls`): never an error, so a request is always evaluated.
pub(crate) fn connection_from_properties(
    mut read: impl FnMut(&[&str]) -> Option<Vec<u8>>,
) -> Connection {
    Connection {
        id: None,
        source_address: text(read(&["source", "address"])),
        destination_address: text(read(&["destination", "address"])),
        destination_port: port(read(&["destination", "port"])),
        requested_server_name: text(read(&["connection", "requested_server_name"])),
        mtls: flag(read(&["connection", "mtls"]).as_deref()),
        peer_principal: text(read(&["connection", "uri_san_peer_certificate"])),
    }
}

/// A string attribute: raw UTF-8; empty or invalid text counts as absent.
pub(crate) fn text(bytes: Option<Vec<u8>>) -> Option<String> {
    String::from_utf8(bytes?).ok().filter(|s| !s.is_empty())
}

/// A port: an int attribute (8 bytes, little-endian) that fits a `u16`.
fn port(bytes: Option<Vec<u8>>) -> Option<u16> {
    let bytes = <[u8; 8]>::try_from(bytes?.as_slice()).ok()?;
    u16::try_from(i64::from_le_bytes(bytes)).ok()
}

/// A bool attribute: one byte, non-zero for true.
fn flag(bytes: Option<&[u8]>) -> bool {
    matches!(bytes, Some([byte]) if *byte != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn connection(properties: &[(&str, &[u8])]) -> Connection {
        let properties: HashMap<String, Vec<u8>> = properties
            .iter()
            .map(|(path, value)| ((*path).to_owned(), value.to_vec()))
            .collect();
        connection_from_properties(|path| properties.get(&path.join(".")).cloned())
    }

    #[test]
    fn reads_envoy_encodings() {
        let got = connection(&[
            ("source.address", b"10.0.0.1:43210"),
            ("destination.address", b"10.0.0.9:8080"),
            ("destination.port", &8080i64.to_le_bytes()),
            ("connection.requested_server_name", b"shop.mesh.local"),
            ("connection.mtls", &[1]),
            (
                "connection.uri_san_peer_certificate",
                b"spiffe://cluster.local/ns/a/sa/b",
            ),
        ]);
        assert_eq!(
            got,
            Connection {
                id: None,
                source_address: Some("10.0.0.1:43210".into()),
                destination_address: Some("10.0.0.9:8080".into()),
                destination_port: Some(8080),
                requested_server_name: Some("shop.mesh.local".into()),
                mtls: true,
                peer_principal: Some("spiffe://cluster.local/ns/a/sa/b".into()),
            }
        );
    }

    #[test]
    fn absent_properties_are_none_and_false() {
        assert_eq!(connection(&[]), Connection::default());
    }

    #[test]
    fn malformed_values_are_absent() {
        let got = connection(&[
            ("source.address", &[0xff, 0xfe]),
            ("destination.port", &70_000i64.to_le_bytes()),
            ("connection.mtls", b"true"),
            ("connection.uri_san_peer_certificate", b""),
        ]);
        assert_eq!(got, Connection::default());
        let got = connection(&[("destination.port", &[0x50, 0]), ("connection.mtls", &[0])]);
        assert_eq!(got, Connection::default());
        let negative = connection(&[("destination.port", &(-1i64).to_le_bytes())]);
        assert_eq!(negative.destination_port, None);
    }
}
