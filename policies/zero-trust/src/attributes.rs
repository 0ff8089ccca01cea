//! What a decision may look at. Every field is optional: Istio's rule for an attribute that is
//! absent (no mTLS peer, no verified token, header not sent) is that a positive matcher on it
//! never matches and its `not…` twin therefore does.

use std::net::IpAddr;

use serde_json::{Map, Value};

/// The attributes of one request, as Istio's AuthorizationPolicy names them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attributes {
    /// Peer identities (`source.principal`, `principals`) as Istio writes them, without
    /// `spiffe://`: `cluster.local/ns/shop/sa/web`. The proxy home gives the peer certificate's
    /// URI SAN; the admission home gives the user name and, for service accounts, also the
    /// SPIFFE-style form. Empty: no authenticated peer.
    pub principals: Vec<String>,
    /// Groups of the peer (`source.groups`, admission only: the user's groups).
    pub groups: Vec<String>,
    /// The direct peer address (`source.ip`, `ipBlocks`).
    pub source_ip: Option<IpAddr>,
    /// The client address Envoy computed from `x-forwarded-for` (`remote.ip`,
    /// `remoteIpBlocks`); the direct peer when nothing is forwarded.
    pub remote_ip: Option<IpAddr>,
    /// The local address the connection arrived on (`destination.ip`).
    pub destination_ip: Option<IpAddr>,
    /// The local port (`destination.port`, `ports`).
    pub destination_port: Option<u16>,
    /// TLS server name (`connection.sni`).
    pub sni: Option<String>,
    /// `:authority` as received (`hosts`).
    pub host: Option<String>,
    /// `:method` (`methods`); the API operation (`CREATE`, `UPDATE`...) at admission.
    pub method: Option<String>,
    /// `:path` as received (`paths`; matched after normalisation, query and fragment cut); the
    /// resource path at admission.
    pub path: Option<String>,
    /// Request headers, names lower-case, in order (repeated names stay separate entries).
    pub headers: Vec<(String, String)>,
    /// The payload of the verified token (`request.auth.*`); `None` for an anonymous request.
    pub auth: Option<Map<String, Value>>,
}

impl Attributes {
    /// All values of header `name` (any case) joined with `,`, as Envoy reads a header for
    /// matching; `None` when it was not sent.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<String> {
        let mut values = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str());
        let first = values.next()?;
        Some(values.fold(first.to_owned(), |mut all, v| {
            all.push(',');
            all.push_str(v);
            all
        }))
    }

    /// `request.auth.principal`: `<iss>/<sub>` of the verified token.
    #[must_use]
    pub fn request_principal(&self) -> Option<(&str, &str)> {
        let auth = self.auth.as_ref()?;
        let iss = auth.get("iss").and_then(Value::as_str).unwrap_or_default();
        let sub = auth.get("sub").and_then(Value::as_str).unwrap_or_default();
        Some((iss, sub))
    }
}
