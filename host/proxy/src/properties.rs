//! Properties (`proxy_get_property`): Envoy's attribute catalogue, resolved from the scenario's
//! connection and node and from the stream as it stands, encoded as Envoy encodes them: strings
//! raw, integers 8 bytes little-endian, booleans 1 byte, timestamps and durations as int64
//! nanoseconds, maps in the header-pair format, protobuf messages (`node`, metadata) serialised.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::header_map::{HeaderMap, encode_pairs};
use super::types::Status;

/// What the proxy knows of the downstream connection (Envoy's `source.*`, `destination.*`,
/// `connection.*` attributes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Connection {
    /// Downstream peer, `ip:port` (`source.address`; `source.port` is derived).
    #[serde(default = "default_source")]
    pub source_address: String,
    /// Local address the connection arrived on, `ip:port` (`destination.address`/`.port`).
    #[serde(default = "default_destination")]
    pub destination_address: String,
    /// Connection id (`connection.id`).
    #[serde(default = "default_connection_id")]
    pub id: u64,
    /// TLS with a verified peer certificate (`connection.mtls`).
    #[serde(default)]
    pub mtls: bool,
    /// TLS version (`connection.tls_version`), e.g. `TLSv1.3`; absent for plain text.
    #[serde(default)]
    pub tls_version: Option<String>,
    /// SNI (`connection.requested_server_name`).
    #[serde(default)]
    pub requested_server_name: Option<String>,
    /// The peer certificate's URI SANs; the first is `connection.uri_san_peer_certificate`
    /// (in Istio the SPIFFE id `spiffe://<td>/ns/<ns>/sa/<sa>`).
    #[serde(default)]
    pub peer_uri_sans: Vec<String>,
    /// The peer certificate's DNS SANs (`connection.dns_san_peer_certificate`, first one).
    #[serde(default)]
    pub peer_dns_sans: Vec<String>,
    /// The peer certificate's subject (`connection.subject_peer_certificate`).
    #[serde(default)]
    pub peer_subject: Option<String>,
    /// Our own certificate's URI SANs (`connection.uri_san_local_certificate`, first one).
    #[serde(default)]
    pub local_uri_sans: Vec<String>,
}

fn default_source() -> String {
    "10.0.0.2:51234".into()
}

fn default_destination() -> String {
    "10.0.0.1:8080".into()
}

fn default_connection_id() -> u64 {
    1
}

impl Default for Connection {
    /// A plain-text connection from 10.0.0.2:51234 to 10.0.0.1:8080.
    fn default() -> Self {
        Self {
            source_address: default_source(),
            destination_address: default_destination(),
            id: default_connection_id(),
            mtls: false,
            tls_version: None,
            requested_server_name: None,
            peer_uri_sans: Vec::new(),
            peer_dns_sans: Vec::new(),
            peer_subject: None,
            local_uri_sans: Vec::new(),
        }
    }
}

/// The proxy's node (`node` / `xds.node`): Istio puts the workload's namespace, name, labels and
/// mesh settings in `metadata`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Node {
    /// `node.id`, e.g. `sidecar~10.0.0.1~app-1.default~default.svc.cluster.local`.
    #[serde(default)]
    pub id: String,
    /// `node.cluster`.
    #[serde(default)]
    pub cluster: String,
    /// `node.metadata` (a protobuf Struct).
    #[serde(default)]
    pub metadata: serde_json::Map<String, Json>,
}

/// The plugin's identity (`plugin_name`, `plugin_root_id`, `plugin_vm_id`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PluginIdentity {
    pub(crate) name: String,
    pub(crate) root_id: String,
    pub(crate) vm_id: String,
}

/// The stream-dependent inputs of a lookup.
#[derive(Debug, Default)]
pub(crate) struct StreamView<'a> {
    pub(crate) request_headers: Option<&'a HeaderMap>,
    pub(crate) response_headers: Option<&'a HeaderMap>,
    pub(crate) response_trailers: Option<&'a HeaderMap>,
    pub(crate) protocol: &'a str,
    pub(crate) start_nanos: i64,
    pub(crate) request_size: Option<u64>,
    pub(crate) response_size: Option<u64>,
    pub(crate) duration_nanos: Option<i64>,
    pub(crate) response_code_details: Option<&'a str>,
    pub(crate) filter_state: &'a [(Vec<u8>, Vec<u8>)],
    pub(crate) route: Option<&'a crate::scenario::Route>,
}

/// Everything a lookup may read.
pub(crate) struct Lookup<'a> {
    pub(crate) connection: &'a Connection,
    pub(crate) node: &'a Node,
    pub(crate) plugin: &'a PluginIdentity,
    pub(crate) stream: Option<StreamView<'a>>,
}

/// An attribute value before encoding.
enum Value {
    Str(String),
    Int(i64),
    UInt(u64),
    Bool(bool),
    Pairs(Vec<(String, String)>),
    Json(Json),
}

impl Value {
    fn encode(self) -> Vec<u8> {
        match self {
            Self::Str(s) => s.into_bytes(),
            Self::Int(i) => i.to_le_bytes().to_vec(),
            Self::UInt(u) => u.to_le_bytes().to_vec(),
            Self::Bool(b) => vec![u8::from(b)],
            Self::Pairs(p) => encode_pairs(p.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes()))),
            Self::Json(j) => encode_json(&j),
        }
    }
}

/// A CEL value from a Struct field, encoded as Envoy serialises it.
fn encode_json(value: &Json) -> Vec<u8> {
    match value {
        Json::Null => Vec::new(),
        Json::Bool(b) => vec![u8::from(*b)],
        Json::Number(n) => n.as_f64().unwrap_or_default().to_le_bytes().to_vec(),
        Json::String(s) => s.clone().into_bytes(),
        Json::Array(items) => encode_pairs(
            items
                .iter()
                .map(|i| (json_text(i), &[][..]))
                .collect::<Vec<_>>()
                .iter()
                .map(|(k, v)| (k.as_slice(), *v)),
        ),
        Json::Object(map) => proto::structure(map),
    }
}

fn json_text(value: &Json) -> Vec<u8> {
    match value {
        Json::String(s) => s.clone().into_bytes(),
        other => other.to_string().into_bytes(),
    }
}

impl Lookup<'_> {
    /// Resolves a NUL-separated path. Unknown → NOT_FOUND, as Envoy answers.
    pub(crate) fn get(&self, path: &[u8]) -> Result<Vec<u8>, Status> {
        if let Some(stream) = &self.stream
            && let Some((_, value)) = stream.filter_state.iter().find(|(k, _)| k == path)
        {
            return Ok(value.clone());
        }
        let text = String::from_utf8_lossy(path);
        let parts: Vec<&str> = text.split('\0').collect();
        let (head, rest) = parts.split_first().ok_or(Status::NotFound)?;
        let value = match (*head, rest) {
            ("node", rest) | ("xds", ["node", rest @ ..]) => return self.node(rest),
            // The route and its cluster (Envoy's `xds.*` attributes and their older top-level
            // names), known once the connection manager routed the request.
            ("xds", ["route_name"]) | ("route_name", []) => Value::Str(
                self.route()
                    .map(|r| r.name.clone())
                    .filter(|n| !n.is_empty())
                    .ok_or(Status::NotFound)?,
            ),
            ("xds", ["cluster_name"]) | ("cluster_name", []) => Value::Str(
                self.route()
                    .and_then(|r| r.cluster.clone())
                    .ok_or(Status::NotFound)?,
            ),
            ("plugin_name", []) => Value::Str(self.plugin.name.clone()),
            ("plugin_root_id", []) => Value::Str(self.plugin.root_id.clone()),
            ("plugin_vm_id", []) => Value::Str(self.plugin.vm_id.clone()),
            ("source", [field]) => self.address(&self.connection.source_address, field)?,
            ("destination", [field]) => {
                self.address(&self.connection.destination_address, field)?
            }
            ("connection", [field]) => self.connection_field(field)?,
            ("request", rest) => self.request(rest)?,
            ("response", rest) => self.response(rest)?,
            _ => return Err(Status::NotFound),
        };
        Ok(value.encode())
    }

    fn route(&self) -> Option<&crate::scenario::Route> {
        self.stream.as_ref().and_then(|s| s.route)
    }

    fn address(&self, address: &str, field: &str) -> Result<Value, Status> {
        match field {
            "address" => Ok(Value::Str(address.to_owned())),
            "port" => address
                .rsplit_once(':')
                .and_then(|(_, port)| port.parse::<i64>().ok())
                .map(Value::Int)
                .ok_or(Status::NotFound),
            _ => Err(Status::NotFound),
        }
    }

    fn connection_field(&self, field: &str) -> Result<Value, Status> {
        let c = self.connection;
        let first = |v: &[String]| v.first().cloned().map(Value::Str).ok_or(Status::NotFound);
        match field {
            "id" => Ok(Value::UInt(c.id)),
            "mtls" => Ok(Value::Bool(c.mtls)),
            "tls_version" => c
                .tls_version
                .clone()
                .map(Value::Str)
                .ok_or(Status::NotFound),
            "requested_server_name" => Ok(Value::Str(
                c.requested_server_name.clone().unwrap_or_default(),
            )),
            "uri_san_peer_certificate" => first(&c.peer_uri_sans),
            "dns_san_peer_certificate" => first(&c.peer_dns_sans),
            "uri_san_local_certificate" => first(&c.local_uri_sans),
            "subject_peer_certificate" => c
                .peer_subject
                .clone()
                .map(Value::Str)
                .ok_or(Status::NotFound),
            _ => Err(Status::NotFound),
        }
    }

    fn request(&self, rest: &[&str]) -> Result<Value, Status> {
        let stream = self.stream.as_ref().ok_or(Status::NotFound)?;
        let headers = stream.request_headers.ok_or(Status::NotFound)?;
        let header = |name: &str| headers.get(name).map(str::to_owned);
        let path = header(":path").unwrap_or_default();
        let value = match rest {
            ["path"] => Value::Str(path),
            ["url_path"] => {
                Value::Str(path.split(['?', '#']).next().unwrap_or_default().to_owned())
            }
            ["query"] => Value::Str(
                path.split_once('?')
                    .map(|(_, q)| q.split('#').next().unwrap_or_default().to_owned())
                    .unwrap_or_default(),
            ),
            ["host"] => Value::Str(header(":authority").ok_or(Status::NotFound)?),
            ["scheme"] => Value::Str(header(":scheme").ok_or(Status::NotFound)?),
            ["method"] => Value::Str(header(":method").ok_or(Status::NotFound)?),
            ["referer"] => Value::Str(header("referer").ok_or(Status::NotFound)?),
            ["useragent"] => Value::Str(header("user-agent").ok_or(Status::NotFound)?),
            ["id"] => Value::Str(header("x-request-id").ok_or(Status::NotFound)?),
            ["protocol"] => Value::Str(stream.protocol.to_owned()),
            ["time"] => Value::Int(stream.start_nanos),
            ["duration"] => Value::Int(stream.duration_nanos.ok_or(Status::NotFound)?),
            ["size"] | ["total_size"] => Value::UInt(stream.request_size.ok_or(Status::NotFound)?),
            ["headers"] => Value::Pairs(joined(headers)),
            ["headers", name] => Value::Str(headers.joined(name).ok_or(Status::NotFound)?),
            _ => return Err(Status::NotFound),
        };
        Ok(value)
    }

    fn response(&self, rest: &[&str]) -> Result<Value, Status> {
        let stream = self.stream.as_ref().ok_or(Status::NotFound)?;
        let headers = stream.response_headers;
        let value = match rest {
            ["code"] => Value::Int(
                headers
                    .and_then(|h| h.get(":status"))
                    .and_then(|s| s.parse().ok())
                    .ok_or(Status::NotFound)?,
            ),
            ["code_details"] => Value::Str(
                stream
                    .response_code_details
                    .ok_or(Status::NotFound)?
                    .to_owned(),
            ),
            ["grpc_status"] => Value::Int(
                stream
                    .response_trailers
                    .and_then(|t| t.get("grpc-status"))
                    .or_else(|| headers.and_then(|h| h.get("grpc-status")))
                    .and_then(|s| s.parse().ok())
                    .ok_or(Status::NotFound)?,
            ),
            ["size"] | ["total_size"] => Value::UInt(stream.response_size.ok_or(Status::NotFound)?),
            ["headers"] => Value::Pairs(joined(headers.ok_or(Status::NotFound)?)),
            ["headers", name] => Value::Str(
                headers
                    .and_then(|h| h.joined(name))
                    .ok_or(Status::NotFound)?,
            ),
            ["trailers"] => Value::Pairs(joined(stream.response_trailers.ok_or(Status::NotFound)?)),
            _ => return Err(Status::NotFound),
        };
        Ok(value)
    }

    fn node(&self, rest: &[&str]) -> Result<Vec<u8>, Status> {
        let node = self.node;
        match rest {
            [] => Ok(proto::node(node)),
            ["id"] => Ok(node.id.clone().into_bytes()),
            ["cluster"] => Ok(node.cluster.clone().into_bytes()),
            ["metadata"] => Ok(proto::structure(&node.metadata)),
            ["metadata", key, deeper @ ..] => {
                let mut value = node.metadata.get(*key).ok_or(Status::NotFound)?;
                for part in deeper {
                    value = match value {
                        Json::Object(map) => map.get(*part).ok_or(Status::NotFound)?,
                        Json::Array(items) => part
                            .parse::<usize>()
                            .ok()
                            .and_then(|i| items.get(i))
                            .ok_or(Status::NotFound)?,
                        _ => return Err(Status::NotFound),
                    };
                }
                Ok(Value::Json(value.clone()).encode())
            }
            _ => Err(Status::NotFound),
        }
    }
}

/// Envoy's `request.headers` map: one entry per name, repeated values comma-joined.
fn joined(headers: &HeaderMap) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in &headers.0 {
        match out.iter_mut().find(|(ok, _)| ok == k) {
            Some((_, existing)) => {
                existing.push(',');
                existing.push_str(v);
            }
            None => out.push((k.clone(), v.clone())),
        }
    }
    out
}

/// Just enough protobuf encoding for `envoy.config.core.v3.Node` and `google.protobuf.Struct`.
mod proto {
    use super::{Json, Node};

    fn varint(out: &mut Vec<u8>, mut value: u64) {
        loop {
            let byte = u8::try_from(value & 0x7f).unwrap_or_default();
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    fn field(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
        varint(out, number << 3 | 2);
        varint(out, u64::try_from(bytes.len()).unwrap_or(u64::MAX));
        out.extend_from_slice(bytes);
    }

    /// `google.protobuf.Value`.
    fn value(json: &Json) -> Vec<u8> {
        let mut out = Vec::new();
        match json {
            Json::Null => {
                varint(&mut out, 1 << 3);
                varint(&mut out, 0);
            }
            Json::Number(n) => {
                varint(&mut out, 2 << 3 | 1);
                out.extend_from_slice(&n.as_f64().unwrap_or_default().to_le_bytes());
            }
            Json::String(s) => field(&mut out, 3, s.as_bytes()),
            Json::Bool(b) => {
                varint(&mut out, 4 << 3);
                varint(&mut out, u64::from(*b));
            }
            Json::Object(map) => field(&mut out, 5, &structure(map)),
            Json::Array(items) => {
                let mut list = Vec::new();
                for item in items {
                    field(&mut list, 1, &value(item));
                }
                field(&mut out, 6, &list);
            }
        }
        out
    }

    /// `google.protobuf.Struct` (map entries in key order, as protobuf's deterministic mode).
    pub(super) fn structure(map: &serde_json::Map<String, Json>) -> Vec<u8> {
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort();
        let mut out = Vec::new();
        for key in keys {
            let mut entry = Vec::new();
            field(&mut entry, 1, key.as_bytes());
            if let Some(v) = map.get(key) {
                field(&mut entry, 2, &value(v));
            }
            field(&mut out, 1, &entry);
        }
        out
    }

    /// `envoy.config.core.v3.Node`: id = 1, cluster = 2, metadata = 3.
    pub(super) fn node(node: &Node) -> Vec<u8> {
        let mut out = Vec::new();
        if !node.id.is_empty() {
            field(&mut out, 1, node.id.as_bytes());
        }
        if !node.cluster.is_empty() {
            field(&mut out, 2, node.cluster.as_bytes());
        }
        if !node.metadata.is_empty() {
            field(&mut out, 3, &structure(&node.metadata));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn lookup<'a>(
        connection: &'a Connection,
        node: &'a Node,
        plugin: &'a PluginIdentity,
        headers: Option<&'a HeaderMap>,
    ) -> Lookup<'a> {
        Lookup {
            connection,
            node,
            plugin,
            stream: headers.map(|h| StreamView {
                request_headers: Some(h),
                protocol: "HTTP/1.1",
                ..StreamView::default()
            }),
        }
    }

    #[test]
    fn encodes_attributes_as_envoy_does() {
        let connection = Connection {
            mtls: true,
            peer_uri_sans: vec!["spiffe://cluster.local/ns/a/sa/b".into()],
            ..Connection::default()
        };
        let node = Node {
            metadata: serde_json::json!({"NAMESPACE": "shop", "LABELS": {"app": "cart"}})
                .as_object()
                .cloned()
                .unwrap(),
            ..Node::default()
        };
        let plugin = PluginIdentity {
            name: "ns.guard".into(),
            root_id: "guard".into(),
            vm_id: String::new(),
        };
        let headers = HeaderMap::from_pairs([
            (":path", "/a?b=1"),
            (":method", "GET"),
            ("x-k", "1"),
            ("x-k", "2"),
        ]);
        let l = lookup(&connection, &node, &plugin, Some(&headers));
        assert_eq!(l.get(b"source\0address").unwrap(), b"10.0.0.2:51234");
        assert_eq!(l.get(b"source\0port").unwrap(), 51234i64.to_le_bytes());
        assert_eq!(l.get(b"destination\0port").unwrap(), 8080i64.to_le_bytes());
        assert_eq!(l.get(b"connection\0mtls").unwrap(), [1]);
        assert_eq!(
            l.get(b"connection\0uri_san_peer_certificate").unwrap(),
            b"spiffe://cluster.local/ns/a/sa/b"
        );
        assert_eq!(l.get(b"request\0url_path").unwrap(), b"/a");
        assert_eq!(l.get(b"request\0query").unwrap(), b"b=1");
        assert_eq!(l.get(b"request\0headers\0x-k").unwrap(), b"1,2");
        assert_eq!(l.get(b"plugin_root_id").unwrap(), b"guard");
        assert_eq!(l.get(b"node\0metadata\0NAMESPACE").unwrap(), b"shop");
        assert_eq!(l.get(b"node\0metadata\0LABELS\0app").unwrap(), b"cart");
        assert_eq!(l.get(b"response\0code"), Err(Status::NotFound));
        assert_eq!(l.get(b"connection\0tls_version"), Err(Status::NotFound));
        assert_eq!(l.get(b"nonsense"), Err(Status::NotFound));
    }

    #[test]
    fn request_attributes_are_absent_outside_a_stream() {
        let (c, n, p) = (
            Connection::default(),
            Node::default(),
            PluginIdentity::default(),
        );
        let l = lookup(&c, &n, &p, None);
        assert_eq!(l.get(b"request\0path"), Err(Status::NotFound));
        assert_eq!(l.get(b"source\0address").unwrap(), b"10.0.0.2:51234");
    }

    #[test]
    fn node_serialises_as_protobuf() {
        let node = Node {
            id: "n".into(),
            cluster: String::new(),
            metadata: serde_json::json!({"k": "v"}).as_object().cloned().unwrap(),
        };
        // id: tag 0x0a len 1 'n'; metadata: tag 0x1a, Struct{ fields entry{ key "k", value{string "v"} } }
        assert_eq!(
            proto::node(&node),
            vec![
                0x0a, 1, b'n', 0x1a, 10, 0x0a, 8, 0x0a, 1, b'k', 0x12, 3, 0x1a, 1, b'v'
            ]
        );
    }
}
