//! The audit trail: one JSON record per decision, the same in every home (who, from where, what,
//! which rule, the outcome), written through the host's log. Records are written straight from
//! borrowed fields: no JSON tree is built on the request path.

use std::cell::RefCell;
use std::net::IpAddr;

use palisade_sdk::Host;
use palisade_sdk::host::Level;

use crate::Attributes;
use crate::authorization::{Decision, Effect};

/// `,"<key>":`, made at compile time (one write per key instead of three).
macro_rules! key {
    ($key:literal) => {
        concat!(",\"", $key, "\":")
    };
}

fn result(effect: Effect) -> &'static str {
    match effect {
        Effect::Allow => "allow",
        Effect::Deny => "deny",
    }
}

/// What the external authorizer of a CUSTOM rule answered.
#[derive(Debug, Clone, Copy)]
pub struct ExtAuthz<'a> {
    /// The provider's name.
    pub provider: &'a str,
    /// The answer's status (0: none came).
    pub status: u16,
    /// Envoy's name for the outcome: `ok`, `denied`, `error`, `failure_mode_allowed`.
    pub result: &'static str,
}

/// One record; fields in the order people read them.
struct Record<'a> {
    result: &'static str,
    authentication: Option<&'a str>,
    status: Option<u16>,
    ext_authz: Option<&'a ExtAuthz<'a>>,
    policy: Option<&'a str>,
    audited: &'a [String],
    /// What the dry-run policies alone would have decided, and their rule.
    dry_run: Option<(&'static str, Option<&'a str>)>,
    principal: Option<&'a str>,
    /// `<iss>/<sub>` of the verified token.
    request_principal: Option<(&'a str, &'a str)>,
    device: Option<&'a str>,
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
            result,
            authentication: None,
            status: None,
            ext_authz: None,
            policy: None,
            audited: &[],
            dry_run: None,
            principal: attributes.principals.first().map(String::as_str),
            request_principal: attributes.request_principal(),
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

    /// The JSON line. Written field by field rather than through serde's serializer: every
    /// allowed request is logged by default, and serde escapes each constant key and goes
    /// through a call per field, twice the time of the rest of the audit step in wasm.
    fn text(&self) -> String {
        // Sized for a typical record at once (growing from empty reallocates six times).
        let mut text = String::with_capacity(512);
        self.write_to(&mut text);
        text
    }

    /// Writes the record at `info` through a line kept per VM (one record per request: no
    /// allocation once the line has grown to a record's size).
    fn log(&self, host: &dyn Host) {
        thread_local! {
            static LINE: RefCell<String> = const { RefCell::new(String::new()) };
        }
        LINE.with_borrow_mut(|line| {
            line.clear();
            self.write_to(line);
            host.log(Level::Info, line);
        });
    }

    /// Appends the JSON line to `text`.
    fn write_to(&self, text: &mut String) {
        let mut out = Json(text);
        out.0.push_str(r#"{"audit":"zero-trust","result":"#);
        out.string(self.result);
        out.present(key!("authentication"), self.authentication);
        if let Some(status) = self.status {
            out.key(key!("status"));
            out.number(status);
        }
        if let Some(ext) = self.ext_authz {
            out.key(key!("extAuthz"));
            out.0.push_str(r#"{"provider":"#);
            out.string(ext.provider);
            out.key(key!("status"));
            out.number(ext.status);
            out.key(key!("result"));
            out.string(ext.result);
            out.0.push('}');
        }
        out.field(key!("policy"), self.policy);
        out.key(key!("audited"));
        out.strings(self.audited);
        out.key(key!("dryRun"));
        match self.dry_run {
            Some((result, policy)) => {
                out.0.push_str(r#"{"result":"#);
                out.string(result);
                out.field(key!("policy"), policy);
                out.0.push('}');
            }
            None => out.0.push_str("null"),
        }
        out.field(key!("principal"), self.principal);
        out.key(key!("requestPrincipal"));
        match self.request_principal {
            Some((iss, sub)) => {
                out.0.push('"');
                out.fragment(iss);
                out.0.push('/');
                out.fragment(sub);
                out.0.push('"');
            }
            None => out.0.push_str("null"),
        }
        out.present(key!("device"), self.device);
        out.present(key!("sensitivity"), self.sensitivity);
        out.key(key!("groups"));
        out.strings(self.groups);
        out.key(key!("sourceIp"));
        out.ip(self.source_ip);
        out.key(key!("remoteIp"));
        out.ip(self.remote_ip);
        out.field(key!("host"), self.host);
        out.field(key!("method"), self.method);
        out.field(key!("path"), self.path);
        out.0.push('}');
    }
}

/// A JSON text being written, escaped as serde_json escapes (`"`, `\` and control
/// characters; everything else as it is).
struct Json<'a>(&'a mut String);

impl Json<'_> {
    /// A key as [`key!`] writes it (keys are constants that need no escaping).
    fn key(&mut self, key: &'static str) {
        self.0.push_str(key);
    }

    fn string(&mut self, value: &str) {
        self.0.push('"');
        self.fragment(value);
        self.0.push('"');
    }

    /// `,"<key>":"<value>"`, or `null` for the value.
    fn field(&mut self, key: &'static str, value: Option<&str>) {
        self.key(key);
        self.optional(value);
    }

    /// `,"<key>":"<value>"`, or nothing without a value.
    fn present(&mut self, key: &'static str, value: Option<&str>) {
        if let Some(value) = value {
            self.key(key);
            self.string(value);
        }
    }

    fn optional(&mut self, value: Option<&str>) {
        match value {
            Some(value) => self.string(value),
            None => self.0.push_str("null"),
        }
    }

    fn strings(&mut self, values: &[String]) {
        self.0.push('[');
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                self.0.push(',');
            }
            self.string(value);
        }
        self.0.push(']');
    }

    fn number(&mut self, value: u16) {
        use std::fmt::Write;
        let _ = write!(self.0, "{value}");
    }

    fn ip(&mut self, value: Option<IpAddr>) {
        use std::fmt::Write;
        match value {
            // IPv4 digit by digit: the formatter's padding machinery per octet was a third of
            // the record's cost in wasm.
            Some(IpAddr::V4(ip)) => {
                self.0.push('"');
                for (i, octet) in ip.octets().into_iter().enumerate() {
                    if i > 0 {
                        self.0.push('.');
                    }
                    let (hundreds, tens, ones) = (octet / 100, octet / 10 % 10, octet % 10);
                    if hundreds > 0 {
                        self.0.push(char::from(b'0'.saturating_add(hundreds)));
                    }
                    if hundreds > 0 || tens > 0 {
                        self.0.push(char::from(b'0'.saturating_add(tens)));
                    }
                    self.0.push(char::from(b'0'.saturating_add(ones)));
                }
                self.0.push('"');
            }
            Some(ip) => {
                let _ = write!(self.0, "\"{ip}\"");
            }
            None => self.0.push_str("null"),
        }
    }

    /// A string's contents: as they are when nothing needs escaping (nearly always), else
    /// escaped by serde_json.
    fn fragment(&mut self, value: &str) {
        if plain(value.as_bytes()) {
            self.0.push_str(value);
            return;
        }
        let quoted = serde_json::to_string(value).unwrap_or_default();
        self.0.push_str(
            quoted
                .strip_prefix('"')
                .and_then(|q| q.strip_suffix('"'))
                .unwrap_or_default(),
        );
    }
}

/// Whether JSON has nothing to escape in `bytes` (no control character, `"` or `\`): eight
/// bytes at a time, since every value of every record is checked.
fn plain(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // Whether a byte of `w` is zero (exact, for any bytes).
    let zero_byte = |w: u64| w.wrapping_sub(ONES) & !w & HIGHS != 0;
    let byte_is = |b: u8| {
        let b = u64::from_ne_bytes([b; 8]);
        move |w: u64| zero_byte(w ^ b)
    };
    let (quote, backslash) = (byte_is(b'"'), byte_is(b'\\'));
    // Whether a byte of `w` is below 0x20 (exact for a bound up to 0x80).
    let control = |w: u64| w.wrapping_sub(ONES * 0x20) & !w & HIGHS != 0;
    let words = bytes.chunks_exact(8);
    let tail = words.remainder();
    words
        .map(|w| u64::from_ne_bytes(w.try_into().unwrap_or_default()))
        .all(|w| !control(w) && !quote(w) && !backslash(w))
        && tail.iter().all(|b| *b >= 0x20 && *b != b'"' && *b != b'\\')
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
    decision_record(attributes, decision, sensitivity, ext_authz).text()
}

fn decision_record<'a>(
    attributes: &'a Attributes,
    decision: &'a Decision,
    sensitivity: Option<&'a str>,
    ext_authz: Option<&'a ExtAuthz>,
) -> Record<'a> {
    Record {
        sensitivity,
        ext_authz,
        policy: decision.rule(),
        audited: &decision.audited,
        dry_run: decision
            .dry_run
            .as_ref()
            .map(|(effect, policy)| (result(*effect), policy.as_deref())),
        ..Record::new(attributes, result(decision.effect))
    }
}

/// Writes the record at `info`.
pub(crate) fn write(
    host: &dyn Host,
    attributes: &Attributes,
    decision: &Decision,
    sensitivity: Option<&str>,
    ext_authz: Option<&ExtAuthz>,
) {
    decision_record(attributes, decision, sensitivity, ext_authz).log(host);
}

/// The record of a request a CUSTOM rule's external authorizer refused or failed on.
#[must_use]
pub fn custom_record(attributes: &Attributes, rule: &str, ext_authz: &ExtAuthz) -> String {
    custom(attributes, rule, ext_authz).text()
}

fn custom<'a>(attributes: &'a Attributes, rule: &'a str, ext_authz: &'a ExtAuthz) -> Record<'a> {
    Record {
        policy: Some(rule),
        ext_authz: Some(ext_authz),
        ..Record::new(attributes, "deny")
    }
}

/// Writes the record of a CUSTOM denial at `info`.
pub(crate) fn write_custom(
    host: &dyn Host,
    attributes: &Attributes,
    rule: &str,
    ext_authz: &ExtAuthz,
) {
    custom(attributes, rule, ext_authz).log(host);
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
    rejected(attributes, rejection, ext_authz).text()
}

fn rejected<'a>(
    attributes: &'a Attributes,
    rejection: &crate::Rejection,
    ext_authz: Option<&'a ExtAuthz>,
) -> Record<'a> {
    Record {
        authentication: Some(rejection.message),
        status: Some(rejection.status),
        ext_authz,
        ..Record::new(attributes, "deny")
    }
}

/// Writes the record of a refused token at `info`.
pub(crate) fn write_rejected(
    host: &dyn Host,
    attributes: &Attributes,
    rejection: &crate::Rejection,
    ext_authz: Option<&ExtAuthz>,
) {
    rejected(attributes, rejection, ext_authz).log(host);
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use super::*;

    #[test]
    fn plain_values_are_told_apart_at_every_position() {
        let base = "cluster.local/ns/shop/sa/web-\u{e9}\u{1F600}";
        assert!(plain(base.as_bytes()));
        for at in 0..=base.len() {
            let Some((head, rest)) = base.split_at_checked(at) else {
                continue;
            };
            for special in ["\"", "\\", "\n", "\u{0}", "\u{1f}"] {
                let text = format!("{head}{special}{rest}");
                assert!(!plain(text.as_bytes()), "{text:?}");
            }
            for ordinary in [" ", "~", "\u{7f}", "\u{80}", "\u{ff}", "\u{2028}"] {
                let text = format!("{head}{ordinary}{rest}");
                assert!(plain(text.as_bytes()), "{text:?}");
            }
        }
    }

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
            policy: Some(crate::authorization::RuleName::new(
                "ns[shop]-policy[p]-rule[0]".into(),
            )),
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

    #[test]
    fn addresses_are_written_as_rust_displays_them() {
        for octet in 0..=255u8 {
            let ip = IpAddr::from([octet, 1, octet, 10]);
            let mut text = String::new();
            Json(&mut text).ip(Some(ip));
            assert_eq!(text, format!("\"{ip}\""));
        }
        let mut text = String::new();
        Json(&mut text).ip(None);
        assert_eq!(text, "null");
    }

    #[test]
    fn records_escape_what_json_needs_and_keep_the_rest() {
        let path = "/a\"b\\c\u{1}d\te/ünï/\u{7f}";
        let mut payload = serde_json::Map::new();
        payload.insert("iss".into(), "https://auth.example/\"x".into());
        payload.insert("sub".into(), "al\nice".into());
        let attributes = Attributes {
            principals: vec!["cluster.local/ns/\\/sa/x".into()],
            groups: vec!["a\"".into(), "b".into()],
            path: Some(path.into()),
            remote_ip: Some("2001:db8::1".parse().unwrap()),
            auth: Some(std::rc::Rc::new(payload)),
            ..Attributes::default()
        };
        let decision = Decision {
            effect: Effect::Allow,
            policy: None,
            audited: vec!["r[\"]".into()],
            dry_run: None,
        };
        let ext = ExtAuthz {
            provider: "p\"q",
            status: 503,
            result: "error",
        };
        let text = record_with(&attributes, &decision, Some("re\"stricted"), Some(&ext));
        let record: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(record["path"], path);
        assert_eq!(
            record["requestPrincipal"],
            "https://auth.example/\"x/al\nice"
        );
        assert_eq!(record["principal"], "cluster.local/ns/\\/sa/x");
        assert_eq!(record["groups"], serde_json::json!(["a\"", "b"]));
        assert_eq!(record["audited"], serde_json::json!(["r[\"]"]));
        assert_eq!(record["sensitivity"], "re\"stricted");
        assert_eq!(record["remoteIp"], "2001:db8::1");
        assert_eq!(
            record["extAuthz"],
            serde_json::json!({"provider": "p\"q", "status": 503, "result": "error"})
        );
        // serde_json's escaping exactly (non-ASCII and DEL as they are, `\u0001`, `\t`).
        let escaped = serde_json::to_string(path).unwrap();
        assert!(text.contains(&format!(r#""path":{escaped}}}"#)), "{text}");
    }
}
