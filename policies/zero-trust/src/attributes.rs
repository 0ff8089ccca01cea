//! What a decision may look at. Every field is optional: Istio's rule for an attribute that is
//! absent (no mTLS peer, no verified token, header not sent) is that a positive matcher on it
//! never matches and its `not…` twin therefore does.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::rc::Rc;

use palisade_sdk::wire::Headers;
use serde_json::{Map, Value};

/// The attributes of one request, as Istio's AuthorizationPolicy names them; the headers are
/// borrowed from the request when there is one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attributes<'a> {
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
    pub sni: Option<Cow<'a, str>>,
    /// `:authority` as received (`hosts`).
    pub host: Option<Cow<'a, str>>,
    /// `:method` (`methods`); the API operation (`CREATE`, `UPDATE`...) at admission.
    pub method: Option<Cow<'a, str>>,
    /// `:path` as received (`paths`; matched after normalisation, query and fragment cut); the
    /// resource path at admission.
    pub path: Option<Cow<'a, str>>,
    /// Request headers, names lower-case, in order (repeated names stay separate entries).
    pub headers: Cow<'a, Headers>,
    /// The payload of the verified token (`request.auth.*`); `None` for an anonymous request.
    pub auth: Option<Rc<Map<String, Value>>>,
    /// `iss` and `sub` of `auth`, taken out once when the token was verified (a cached token
    /// is matched on every request); when `None`, [`Attributes::request_principal`] reads them
    /// from `auth`.
    pub token_principal: Option<Rc<(String, String)>>,
    /// The Kubernetes API resource asked for (`resource.*`, admission only).
    pub resource: Option<Resource>,
    /// The user's extra attributes (`request.userInfo.extra[..]`, admission only).
    pub extra: BTreeMap<String, Vec<String>>,
    /// The object's labels (`object.labels[..]`, admission only; the old object's on DELETE).
    pub labels: BTreeMap<String, String>,
    /// The payload of the verified device token (`device.claims[..]`, proxy only); `None`
    /// without one.
    pub device: Option<Rc<Map<String, Value>>>,
    /// When the request is decided, in the configured zone (`time.hour`, `time.weekday`);
    /// `None` when no condition reads the time.
    pub time: Option<LocalTime>,
}

/// The hour and weekday of a moment at a fixed offset from UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    /// 0-23.
    pub hour: u8,
    /// 0 = Monday ... 6 = Sunday.
    pub weekday: u8,
}

impl LocalTime {
    /// The local time `unix_seconds` after 1970-01-01T00:00:00Z at `offset_seconds` east of UTC.
    #[must_use]
    pub fn at(unix_seconds: u64, offset_seconds: i32) -> Self {
        let local = i64::try_from(unix_seconds)
            .unwrap_or(i64::MAX)
            .saturating_add(i64::from(offset_seconds));
        let days = local.div_euclid(86_400);
        let seconds = local.rem_euclid(86_400);
        // 1970-01-01 was a Thursday (3 when Monday is 0).
        Self {
            hour: u8::try_from(seconds / 3_600).unwrap_or(0),
            weekday: u8::try_from(days.saturating_add(3).rem_euclid(7)).unwrap_or(0),
        }
    }
}

/// A Kubernetes API request's target, as the API server names it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resource {
    /// API group (`""` for the core group).
    pub group: String,
    /// API version.
    pub version: String,
    /// Resource, plural (`pods`).
    pub resource: String,
    /// Subresource (`exec`, `attach`, `portforward`, `ephemeralcontainers`...), empty for none.
    pub subresource: String,
    /// Namespace, empty for cluster-scoped resources.
    pub namespace: String,
    /// Object name, empty when not known (a CREATE with `generateName`).
    pub name: String,
}

impl Resource {
    /// The request's API path as the API server builds it:
    /// `/api/v1/namespaces/prod/pods/web/exec`, `/apis/apps/v1/namespaces/prod/deployments/web`,
    /// `/api/v1/nodes/n1`.
    #[must_use]
    pub fn path(&self) -> String {
        let base = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        let mut parts: Vec<&str> = Vec::with_capacity(5);
        if !self.namespace.is_empty() {
            parts.extend(["namespaces", self.namespace.as_str()]);
        }
        parts.push(&self.resource);
        parts.extend(
            [self.name.as_str(), self.subresource.as_str()]
                .into_iter()
                .filter(|p| !p.is_empty()),
        );
        format!("{base}/{}", parts.join("/"))
    }
}

impl Attributes<'_> {
    /// All values of header `name` (any case) joined with `,`, as Envoy reads a header for
    /// matching; `None` when it was not sent.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<Cow<'_, str>> {
        let mut values = self.headers.get_all(name);
        let first = values.next()?;
        let Some(second) = values.next() else {
            return Some(Cow::Borrowed(first));
        };
        let mut all = format!("{first},{second}");
        for v in values {
            all.push(',');
            all.push_str(v);
        }
        Some(Cow::Owned(all))
    }

    /// `request.auth.principal`: `<iss>/<sub>` of the verified token.
    #[must_use]
    pub fn request_principal(&self) -> Option<(&str, &str)> {
        if let Some(principal) = &self.token_principal {
            return Some((&principal.0, &principal.1));
        }
        let auth = self.auth.as_ref()?;
        let iss = auth.get("iss").and_then(Value::as_str).unwrap_or_default();
        let sub = auth.get("sub").and_then(Value::as_str).unwrap_or_default();
        Some((iss, sub))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_time_at_an_offset() {
        // 2026-01-01T00:00:00Z was a Thursday.
        assert_eq!(
            LocalTime::at(1_767_225_600, 0),
            LocalTime {
                hour: 0,
                weekday: 3
            }
        );
        // 23:30 on Wednesday at UTC-1.
        assert_eq!(
            LocalTime::at(1_767_225_600, -1_800),
            LocalTime {
                hour: 23,
                weekday: 2
            }
        );
        assert_eq!(
            LocalTime::at(1_767_225_600 + 5 * 3_600, 3_600 * 2),
            LocalTime {
                hour: 7,
                weekday: 3
            }
        );
        assert_eq!(
            LocalTime::at(0, 0),
            LocalTime {
                hour: 0,
                weekday: 3
            }
        );
    }

    #[test]
    fn api_paths_as_the_api_server_builds_them() {
        let r = |group: &str, resource: &str, namespace: &str, name: &str, sub: &str| {
            Resource {
                group: group.into(),
                version: "v1".into(),
                resource: resource.into(),
                subresource: sub.into(),
                namespace: namespace.into(),
                name: name.into(),
            }
            .path()
        };
        assert_eq!(
            r("", "pods", "prod", "web-0", "exec"),
            "/api/v1/namespaces/prod/pods/web-0/exec"
        );
        assert_eq!(
            r("apps", "deployments", "shop", "web", ""),
            "/apis/apps/v1/namespaces/shop/deployments/web"
        );
        assert_eq!(r("", "nodes", "", "n1", ""), "/api/v1/nodes/n1");
        assert_eq!(
            r("", "pods", "prod", "", ""),
            "/api/v1/namespaces/prod/pods"
        );
    }

    #[test]
    fn the_request_principal_is_the_same_taken_out_or_read() {
        let mut payload = Map::new();
        payload.insert("iss".into(), "https://auth.example".into());
        payload.insert("sub".into(), "alice".into());
        let read = Attributes {
            auth: Some(Rc::new(payload)),
            ..Attributes::default()
        };
        let taken_out = Attributes {
            token_principal: Some(Rc::new(("https://auth.example".into(), "alice".into()))),
            ..read.clone()
        };
        assert_eq!(
            read.request_principal(),
            Some(("https://auth.example", "alice"))
        );
        assert_eq!(taken_out.request_principal(), read.request_principal());
        assert_eq!(Attributes::default().request_principal(), None);
    }

    #[test]
    fn repeated_headers_join_with_commas() {
        let a = Attributes {
            headers: Cow::Owned(Headers::from(vec![("a", "1"), ("A", "2")])),
            ..Attributes::default()
        };
        assert_eq!(a.header("a").as_deref(), Some("1,2"));
        assert_eq!(a.header("b"), None);
    }
}
