//! The proxy home's logic, with no ABI in it: a request's attributes from what the proxy gives
//! (connection, pseudo-headers, headers), the decision answered as Envoy's RBAC filter answers
//! it (403 `RBAC: access denied`, response details
//! `rbac_access_denied_matched_policy[<rule or none>]`), and one audit record per decision.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use palisade_sdk::host::Level;
use palisade_sdk::wire::{HttpRequest, HttpVerdict};
use palisade_sdk::{Host, PolicyError, SettingsError};

use crate::authorization::{Decision, Effect};
use crate::ext_authz;
use crate::{Attributes, LocalTime, Rejection, Settings};

/// The reason of a denial (Envoy: `rbac_access_denied_matched_policy[...]` in the details).
pub const ACCESS_DENIED: &str = "rbac-access-denied";

/// Settings compiled for the proxy home.
pub type Prepared = crate::settings::Compiled;

/// Compiles the settings for the filter.
///
/// # Errors
/// [`SettingsError`] for a policy or provider that cannot be used.
pub fn prepare(settings: Settings) -> Result<Prepared, SettingsError> {
    settings.compile()
}

/// An `ip:port` (or `[v6]:port`, or a bare address) as an address.
fn ip_of(address: &str) -> Option<IpAddr> {
    if let Some(ip) = ipv4_of(address) {
        return Some(IpAddr::V4(ip));
    }
    address
        .parse::<SocketAddr>()
        .map(|s| s.ip())
        .or_else(|_| address.parse::<IpAddr>())
        .ok()
}

/// The usual address, `a.b.c.d:port` or `a.b.c.d` in canonical decimal (no leading zeros),
/// read without the standard parser, which costs a tenth of a request's time in wasm; `None`
/// for anything else, which [`ip_of`] hands to the standard parser. Accepts only what the
/// standard parser accepts.
fn ipv4_of(address: &str) -> Option<Ipv4Addr> {
    /// One decimal digit onto `value`: at most `digits` digits, no leading zero, up to `max`.
    fn digit(value: &mut u32, count: &mut u8, b: u8, digits: u8, max: u32) -> Option<()> {
        if *count > 0 && *value == 0 {
            return None;
        }
        *value = value
            .checked_mul(10)?
            .checked_add(u32::from(b.wrapping_sub(b'0')))?;
        *count = count.checked_add(1)?;
        (*count <= digits && *value <= max).then_some(())
    }
    // One pass over the bytes: `split` and `split_once` cost a searcher each in wasm.
    let mut octets = [0u8; 4];
    let (mut index, mut value, mut count) = (0usize, 0u32, 0u8);
    let mut bytes = address.bytes();
    let mut port = false;
    for b in bytes.by_ref() {
        match b {
            b'0'..=b'9' => digit(&mut value, &mut count, b, 3, 255)?,
            b'.' | b':' => {
                if count == 0 {
                    return None;
                }
                *octets.get_mut(index)? = u8::try_from(value).ok()?;
                index = index.saturating_add(1);
                (value, count) = (0, 0);
                if b == b':' {
                    port = true;
                    break;
                }
            }
            _ => return None,
        }
    }
    if !port {
        if count == 0 {
            return None;
        }
        *octets.get_mut(index)? = u8::try_from(value).ok()?;
        index = index.saturating_add(1);
        (value, count) = (0, 0);
    }
    if index != 4 {
        return None;
    }
    if port {
        for b in bytes {
            if !b.is_ascii_digit() {
                return None;
            }
            digit(&mut value, &mut count, b, 5, u32::from(u16::MAX))?;
        }
        if count == 0 {
            return None;
        }
    }
    Some(Ipv4Addr::from(octets))
}

/// What Istio's rules read of a proxied request. The peer's principal is its SPIFFE id without
/// `spiffe://`; `remote.ip` is the last `x-forwarded-for` entry when there is one (a sidecar's
/// HCM trusts no hop and does not append), else the peer.
#[must_use]
pub fn attributes(request: &HttpRequest) -> Attributes<'_> {
    let c = &request.connection;
    let source_ip = c.source_address.as_deref().and_then(ip_of);
    let forwarded = request
        .header("x-forwarded-for")
        .and_then(|xff| xff.rsplit(',').next())
        .and_then(|last| ip_of(last.trim()));
    Attributes {
        principals: c
            .peer_principal
            .iter()
            .map(|p| p.strip_prefix("spiffe://").unwrap_or(p).to_owned())
            .collect(),
        groups: Vec::new(),
        source_ip,
        remote_ip: forwarded.or(source_ip),
        destination_ip: c.destination_address.as_deref().and_then(ip_of),
        destination_port: c.destination_port,
        sni: c.requested_server_name.as_deref().map(Cow::Borrowed),
        host: Some(Cow::Borrowed(&request.authority)),
        method: Some(Cow::Borrowed(&request.method)),
        path: Some(Cow::Borrowed(&request.path)),
        headers: Cow::Borrowed(&request.headers),
        auth: None,
        ..Attributes::default()
    }
}

/// The reason of a denial by the external authorizer (Envoy's details `ext_authz_denied`).
pub const EXT_AUTHZ_DENIED: &str = "ext-authz-denied";
/// The reason of a denial because the external authorizer failed (Envoy: `ext_authz_error`).
pub const EXT_AUTHZ_ERROR: &str = "ext-authz-error";

/// The reason of a token refused (Envoy: `jwt_authn_access_denied{...}` in the details).
pub const JWT_DENIED: &str = "jwt-authn-access-denied";

/// Decides on one request and writes its audit record: authentication first (a token that
/// does not verify is refused with 401/403 before any policy is looked at), then authorization
/// over the request and the verified token's claims.
///
/// # Errors
/// [`PolicyError`] when JWT rules are configured and the proxy's clock cannot be read.
pub fn evaluate(
    request: &HttpRequest,
    prepared: &Prepared,
    host: &dyn Host,
) -> Result<HttpVerdict, PolicyError> {
    let uses_time = prepared.authorizer.uses_time();
    let now = if prepared.authenticator.is_empty() && prepared.device.is_empty() && !uses_time {
        0
    } else {
        host.now()?.as_secs()
    };
    let mut attributes = attributes(request);
    if uses_time {
        attributes.time = Some(LocalTime::at(now, prepared.utc_offset));
    }
    let mut request_headers = Vec::new();
    let mut response_headers = Vec::new();
    // What a CUSTOM rule's provider answered, for the decision's audit record.
    let mut asked = None;
    if let Some(provider) = &prepared.custom
        && let Some(rule) = prepared.authorizer.custom(&attributes)
    {
        let Some(answer) = request.answer(&provider.id) else {
            return Ok(HttpVerdict::Call {
                callout: provider.check(request),
            });
        };
        let outcome = provider.outcome(answer);
        let _ = host.count(&format!("zero_trust.ext_authz.{}", outcome.stat()), 1);
        let ext = crate::audit::ExtAuthz {
            provider: &provider.name,
            status: answer.status,
            result: outcome.stat(),
        };
        let denial = match outcome {
            ext_authz::Outcome::Ok {
                request_headers: upstream,
                response_headers: downstream,
            } => {
                request_headers.extend(upstream);
                response_headers.extend(downstream);
                asked = Some(ext);
                None
            }
            ext_authz::Outcome::FailureModeAllowed { why } => {
                asked = Some(ext);
                host.log(
                    Level::Warn,
                    &format!(
                        "ext_authz provider {:?}: {why}; failing open",
                        provider.name
                    ),
                );
                None
            }
            ext_authz::Outcome::Denied {
                status,
                body,
                headers,
            } => Some((
                status,
                EXT_AUTHZ_DENIED,
                format!(
                    "ext_authz_denied: provider {:?} answered {status}",
                    provider.name
                ),
                body,
                headers,
            )),
            ext_authz::Outcome::Error { status, why } => Some((
                status,
                EXT_AUTHZ_ERROR,
                format!("ext_authz_error: provider {:?}: {why}", provider.name),
                String::new(),
                Vec::new(),
            )),
        };
        if let Some((status, reason, message, body, headers)) = denial {
            if prepared.settings.audit.enabled {
                crate::audit::write_custom(host, &attributes, rule.as_str(), &ext);
            }
            count(host, false, rule.counter(false));
            return Ok(HttpVerdict::Deny {
                status,
                reason: reason.to_owned(),
                message: format!("{message} (rule {rule})"),
                body,
                headers,
            });
        }
    }
    for (authenticator, device) in [(&prepared.authenticator, false), (&prepared.device, true)] {
        match authenticator.authenticate(request, now) {
            Ok(authenticated) => {
                if request_headers.is_empty() {
                    // Taken whole (no second list made and copied into).
                    request_headers = authenticated.request_headers;
                } else {
                    request_headers.extend(authenticated.request_headers);
                }
                if device {
                    attributes.device = authenticated.payload;
                } else {
                    attributes.auth = authenticated.payload;
                    attributes.token_principal = authenticated.principal;
                }
            }
            Err(rejection) => {
                if prepared.settings.audit.enabled {
                    crate::audit::write_rejected(host, &attributes, &rejection, asked.as_ref());
                }
                count(
                    host,
                    false,
                    if device {
                        "zero_trust.rule.device-token.denied"
                    } else {
                        "zero_trust.rule.token.denied"
                    },
                );
                return Ok(refuse(request, &rejection));
            }
        }
    }
    let assessment = prepared.sensitivity.assess(&attributes);
    let decision = assessment
        .denial()
        .unwrap_or_else(|| prepared.authorizer.decide(&attributes));
    audit(
        request,
        &attributes,
        &decision,
        assessment.label,
        asked.as_ref(),
        prepared,
        host,
    );
    let allowed = decision.effect == Effect::Allow;
    let rule_counter = match (&decision.policy, allowed) {
        (Some(rule), _) => rule.counter(allowed),
        (None, true) => "zero_trust.rule.none.allowed",
        (None, false) => "zero_trust.rule.none.denied",
    };
    count(host, allowed, rule_counter);
    Ok(match decision.effect {
        Effect::Allow => HttpVerdict::Continue {
            request_headers,
            response_headers,
        },
        Effect::Deny => HttpVerdict::Deny {
            status: prepared.settings.deny_status,
            reason: ACCESS_DENIED.to_owned(),
            message: format!(
                "rbac_access_denied_matched_policy[{}]",
                decision.rule().unwrap_or("none")
            ),
            body: prepared.settings.deny_body.clone(),
            headers: Vec::new(),
        },
    })
}

/// The longest path `www-authenticate`'s realm carries (Envoy truncates there).
const REALM_PATH_BYTES: usize = 256;

/// Envoy's reply to a token refused by `jwt_authn`: its status string as the body and
/// `www-authenticate: Bearer realm="<scheme>://<host><path>", error="invalid_token"`.
fn refuse(request: &HttpRequest, rejection: &Rejection) -> HttpVerdict {
    let mut end = request.path.len().min(REALM_PATH_BYTES);
    while !request.path.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    let path = request.path.get(..end).unwrap_or_default();
    let realm = format!("{}://{}{path}", request.scheme, request.authority);
    HttpVerdict::Deny {
        status: rejection.status,
        reason: JWT_DENIED.to_owned(),
        message: format!(
            "jwt_authn_access_denied{{{}}}",
            rejection.message.replace(' ', "_")
        ),
        body: rejection.message.to_owned(),
        headers: vec![(
            "www-authenticate".to_owned(),
            format!("Bearer realm=\"{realm}\", error=\"invalid_token\""),
        )],
    }
}

/// Envoy counters per decision: `zero_trust.allowed` / `zero_trust.denied`, and the deciding
/// rule's (see [`crate::authorization::counter`]). Best effort: a host without statistics
/// counts nothing.
fn count(host: &dyn Host, allowed: bool, rule_counter: &str) {
    let total = if allowed {
        "zero_trust.allowed"
    } else {
        "zero_trust.denied"
    };
    let _ = host.count(total, 1);
    let _ = host.count(rule_counter, 1);
}

/// Whether an allowed request is in the audit sample: the nonce's first four bytes as a
/// fraction of 2^32, below the sampling rate.
fn sampled(request: &HttpRequest, rate: f64) -> bool {
    let [a, b, c, d, ..] = request.nonce.0;
    f64::from(u32::from_le_bytes([a, b, c, d])) < rate * 4_294_967_296.0
}

/// One JSON line per decision: denials always, allows as sampled.
fn audit(
    request: &HttpRequest,
    attributes: &Attributes,
    decision: &Decision,
    sensitivity: Option<&str>,
    ext_authz: Option<&crate::audit::ExtAuthz>,
    prepared: &Prepared,
    host: &dyn Host,
) {
    let audit = &prepared.settings.audit;
    let allowed = decision.effect == Effect::Allow;
    if audit.enabled && (!allowed || sampled(request, audit.allow_sampling)) {
        crate::audit::write(host, attributes, decision, sensitivity, ext_authz);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_fast_path_agrees_with_the_standard_parser() {
        let standard = |a: &str| {
            a.parse::<SocketAddr>()
                .map(|s| s.ip())
                .or_else(|_| a.parse::<IpAddr>())
                .ok()
        };
        let mut samples: Vec<String> = [
            "10.1.2.9:40123",
            "10.1.2.9",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "256.1.1.1",
            "1.2.3.4:65536",
            "01.2.3.4",
            "1.2.3.04:80",
            "1.2.3.4:080",
            "1.2.3",
            "1.2.3.4.5",
            "1.2.3.4:",
            ":80",
            "",
            "1..3.4",
            "1.2.3.4:8:0",
            "[::1]:80",
            "::1",
            "1.2.3.4 ",
            " 1.2.3.4",
            "+1.2.3.4",
            "1.2.3.4:+80",
            "1.2.3.4:00",
            "1.2.3.4:0",
            "1.2.3.4:99999",
            "1000.1.1.1",
            "1.2.3.a",
            "2001:db8::1",
        ]
        .map(str::to_owned)
        .to_vec();
        for a in [0u32, 1, 9, 10, 99, 100, 199, 200, 249, 250, 255, 256, 999] {
            for port in ["", ":0", ":1", ":65535", ":65536", ":007"] {
                samples.push(format!("{a}.0.{a}.1{port}"));
                samples.push(format!("0{a}.1.1.1{port}"));
            }
        }
        for sample in &samples {
            let fast = ipv4_of(sample).map(IpAddr::V4);
            if fast.is_some() {
                assert_eq!(fast, standard(sample), "{sample:?}");
            }
            assert_eq!(ip_of(sample), standard(sample), "{sample:?}");
        }
        assert!(ipv4_of("10.1.2.9:40123").is_some());
        assert!(ipv4_of("10.1.2.9").is_some());
    }
}
