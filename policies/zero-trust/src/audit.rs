//! The audit trail: one JSON record per decision, the same in every home (who, from where, what,
//! which rule, the outcome), written through the host's log. Records are serialised straight
//! from borrowed fields: no JSON tree is built on the request path.

use std::net::IpAddr;

use palisade_sdk::Host;
use palisade_sdk::host::Level;
use serde::Serialize;

use crate::Attributes;
use crate::authorization::{Decision, Effect};

fn result(effect: Effect) -> &'static str {
    match effect {
        Effect::Allow => "allow",
        Effect::Deny => "deny",
    }
}

/// What the dry-run policies alone would have decided.
#[derive(Serialize)]
struct DryRun<'a> {
    result: &'static str,
    policy: Option<&'a str>,
}

/// `<iss>/<sub>` without building the string first.
struct RequestPrincipal<'a>(&'a str, &'a str);

impl Serialize for RequestPrincipal<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("{}/{}", self.0, self.1))
    }
}

/// What the external authorizer of a CUSTOM rule answered.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ExtAuthz<'a> {
    /// The provider's name.
    pub provider: &'a str,
    /// The answer's status (0: none came).
    pub status: u16,
    /// Envoy's name for the outcome: `ok`, `denied`, `error`, `failure_mode_allowed`.
    pub result: &'static str,
}

/// One record; fields in the order people read them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Record<'a> {
    audit: &'static str,
    result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    authentication: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ext_authz: Option<&'a ExtAuthz<'a>>,
    policy: Option<&'a str>,
    audited: &'a [String],
    dry_run: Option<DryRun<'a>>,
    principal: Option<&'a str>,
    request_principal: Option<RequestPrincipal<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sensitivity: Option<&'a str>,
    groups: &'a [String],
    source_ip: Option<IpAddr>,
    remote_ip: Option<IpAddr>,
    host: Option<&'a str>,
    method: Option<&'a str>,
    path: Option<&'a str>,
}

impl<'a> Record<'a> {
    fn new(attributes: &'a Attributes, result: &'static str) -> Self {
        Self {
            audit: "zero-trust",
            result,
            authentication: None,
            status: None,
            ext_authz: None,
            policy: None,
            audited: &[],
            dry_run: None,
            principal: attributes.principals.first().map(String::as_str),
            request_principal: attributes
                .request_principal()
                .map(|(iss, sub)| RequestPrincipal(iss, sub)),
            device: attributes
                .device
                .as_deref()
                .and_then(|d| d.get("sub"))
                .and_then(serde_json::Value::as_str),
            sensitivity: None,
            groups: &attributes.groups,
            source_ip: attributes.source_ip,
            remote_ip: attributes.remote_ip,
            host: attributes.host.as_deref(),
            method: attributes.method.as_deref(),
            path: attributes.path.as_deref(),
        }
    }

    fn text(&self) -> String {
        // Sized for a typical record at once (growing from empty reallocates six times).
        let mut out = Vec::with_capacity(512);
        // Serialising borrowed strings, numbers and addresses into memory cannot fail, and
        // serde_json writes UTF-8.
        let _ = serde_json::to_writer(&mut out, self);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The record of one decision, as the JSON line written; `sensitivity` is the route's label.
#[must_use]
pub fn record(attributes: &Attributes, decision: &Decision, sensitivity: Option<&str>) -> String {
    record_with(attributes, decision, sensitivity, None)
}

/// [`record`], with what a CUSTOM rule's external authorizer answered before the decision.
#[must_use]
pub fn record_with(
    attributes: &Attributes,
    decision: &Decision,
    sensitivity: Option<&str>,
    ext_authz: Option<&ExtAuthz>,
) -> String {
    Record {
        sensitivity,
        ext_authz,
        policy: decision.policy.as_deref(),
        audited: &decision.audited,
        dry_run: decision.dry_run.as_ref().map(|(effect, policy)| DryRun {
            result: result(*effect),
            policy: policy.as_deref(),
        }),
        ..Record::new(attributes, result(decision.effect))
    }
    .text()
}

/// Writes the record at `info`.
pub(crate) fn write(
    host: &dyn Host,
    attributes: &Attributes,
    decision: &Decision,
    sensitivity: Option<&str>,
    ext_authz: Option<&ExtAuthz>,
) {
    host.log(
        Level::Info,
        &record_with(attributes, decision, sensitivity, ext_authz),
    );
}

/// The record of a request a CUSTOM rule's external authorizer refused or failed on.
#[must_use]
pub fn custom_record(attributes: &Attributes, rule: &str, ext_authz: &ExtAuthz) -> String {
    Record {
        policy: Some(rule),
        ext_authz: Some(ext_authz),
        ..Record::new(attributes, "deny")
    }
    .text()
}

/// Writes the record of a CUSTOM denial at `info`.
pub(crate) fn write_custom(
    host: &dyn Host,
    attributes: &Attributes,
    rule: &str,
    ext_authz: &ExtAuthz,
) {
    host.log(Level::Info, &custom_record(attributes, rule, ext_authz));
}

/// The record of a request refused by authentication (its token did not verify).
#[must_use]
pub fn rejected_record(attributes: &Attributes, rejection: &crate::Rejection) -> String {
    rejected_record_with(attributes, rejection, None)
}

/// [`rejected_record`], with what a CUSTOM rule's external authorizer answered first.
#[must_use]
pub fn rejected_record_with(
    attributes: &Attributes,
    rejection: &crate::Rejection,
    ext_authz: Option<&ExtAuthz>,
) -> String {
    Record {
        authentication: Some(rejection.message),
        status: Some(rejection.status),
        ext_authz,
        ..Record::new(attributes, "deny")
    }
    .text()
}

/// Writes the record of a refused token at `info`.
pub(crate) fn write_rejected(
    host: &dyn Host,
    attributes: &Attributes,
    rejection: &crate::Rejection,
    ext_authz: Option<&ExtAuthz>,
) {
    host.log(
        Level::Info,
        &rejected_record_with(attributes, rejection, ext_authz),
    );
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use super::*;

    #[test]
    fn records_name_who_what_and_the_outcome() {
        let mut payload = serde_json::Map::new();
        payload.insert("iss".into(), "https://auth.example".into());
        payload.insert("sub".into(), "alice".into());
        let attributes = Attributes {
            principals: vec!["cluster.local/ns/shop/sa/web".into()],
            source_ip: Some("10.1.2.3".parse().unwrap()),
            method: Some("GET".into()),
            path: Some("/api".into()),
            auth: Some(std::rc::Rc::new(payload)),
            ..Attributes::default()
        };
        let decision = Decision {
            effect: Effect::Deny,
            policy: Some("ns[shop]-policy[p]-rule[0]".into()),
            audited: vec![],
            dry_run: Some((Effect::Allow, None)),
        };
        let record: serde_json::Value =
            serde_json::from_str(&record(&attributes, &decision, None)).unwrap();
        assert_eq!(
            record,
            serde_json::json!({"audit": "zero-trust", "result": "deny", "policy": "ns[shop]-policy[p]-rule[0]",
                "audited": [], "dryRun": {"result": "allow", "policy": null},
                "principal": "cluster.local/ns/shop/sa/web", "requestPrincipal": "https://auth.example/alice",
                "groups": [], "sourceIp": "10.1.2.3", "remoteIp": null, "host": null, "method": "GET", "path": "/api"})
        );
        let rejected: serde_json::Value = serde_json::from_str(&rejected_record(
            &attributes,
            &crate::Rejection {
                status: 401,
                message: "Jwt is expired",
            },
        ))
        .unwrap();
        assert_eq!(rejected["authentication"], "Jwt is expired");
        assert_eq!(rejected["status"], 401);
    }
}
