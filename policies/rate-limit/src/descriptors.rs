//! Request descriptors, made from a request by the filter's `rate_limits` as Envoy's router
//! makes them (envoyproxy/envoy `source/common/router/router_ratelimit.cc`): each `RateLimit`
//! yields at most one descriptor, its actions adding one entry each in order. An action whose
//! input is missing drops the descriptor, unless it may skip (`skip_if_absent`).

use std::borrow::Cow;
use std::net::IpAddr;

use palisade_sdk::SettingsError;
use palisade_sdk::path::query_param;
use palisade_sdk::wire::HttpRequest;

use crate::settings::{Action, HeaderMatcher, RateLimit, StringMatcher, unsupported};

/// One action, checked.
#[derive(Debug, Clone)]
pub(crate) enum Compiled {
    Header {
        name: String,
        key: String,
        skip_if_absent: bool,
    },
    RemoteAddress,
    Generic {
        key: String,
        value: String,
    },
    HeaderValueMatch {
        key: String,
        value: String,
        expect_match: bool,
        headers: Vec<Matcher>,
    },
    Query {
        name: String,
        key: String,
        skip_if_absent: bool,
    },
    QueryValueMatch {
        key: String,
        value: String,
        expect_match: bool,
        /// Each parameter and the form of its value (`Present` for presence alone).
        params: Vec<(String, Form)>,
    },
    Masked {
        v4: u8,
        v6: u8,
    },
    /// The upstream cluster the proxy routed the request to.
    DestinationCluster,
}

/// Whether any of these actions needs the request's route (so the adapter must read it).
pub(crate) fn reads_route<'a>(actions: impl IntoIterator<Item = &'a Compiled>) -> bool {
    actions
        .into_iter()
        .any(|a| matches!(a, Compiled::DestinationCluster))
}

/// A header matcher, checked.
#[derive(Debug, Clone)]
pub(crate) struct Matcher {
    name: String,
    form: Form,
    invert: bool,
    missing_as_empty: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum Form {
    Present(bool),
    Exact(String, bool),
    Prefix(String, bool),
    Suffix(String, bool),
    Contains(String, bool),
}

/// The filter's `rate_limits` of its stage, checked; `at` is their place.
pub(crate) fn compile(
    rate_limits: &[RateLimit],
    stage: u32,
) -> Result<Vec<Vec<Compiled>>, SettingsError> {
    let mut compiled = Vec::new();
    for (i, limit) in rate_limits.iter().enumerate() {
        let at = format!("rate_limits[{i}]");
        if limit.limit.is_some() {
            return Err(unsupported(
                &format!("{at}.limit"),
                "limit overrides come from dynamic metadata, for the global filter",
            ));
        }
        if limit.hits_addend.is_some() {
            return Err(unsupported(
                &format!("{at}.hits_addend"),
                "Envoy reads it only from typed_per_filter_config",
            ));
        }
        if limit.apply_on_stream_done.is_some() {
            return Err(unsupported(
                &format!("{at}.apply_on_stream_done"),
                "it belongs to the global filter",
            ));
        }
        if let Some(option) = &limit.x_ratelimit_option
            && option != "UNSPECIFIED"
        {
            return Err(unsupported(
                &format!("{at}.x_ratelimit_option"),
                "set enable_x_ratelimit_headers on the filter instead",
            ));
        }
        let actions = actions(limit, &at)?;
        // Envoy's local filter skips entries with a disable_key, and those of other stages.
        if limit.stage == stage && limit.disable_key.is_empty() {
            compiled.push(actions);
        }
    }
    Ok(compiled)
}

/// One `RateLimit`'s actions, checked; `at` is its place.
pub(crate) fn actions(limit: &RateLimit, at: &str) -> Result<Vec<Compiled>, SettingsError> {
    if limit.actions.is_empty() {
        return Err(SettingsError::new(
            format!("{at}.actions"),
            "needs at least one action",
        ));
    }
    limit
        .actions
        .iter()
        .enumerate()
        .map(|(j, a)| action(a, &format!("{at}.actions[{j}]")))
        .collect()
}

fn action(action: &Action, at: &str) -> Result<Compiled, SettingsError> {
    let key_or = |key: &str, default: &str| {
        if key.is_empty() {
            default.to_owned()
        } else {
            key.to_owned()
        }
    };
    Ok(match action {
        Action::RequestHeaders(h) => {
            if h.descriptor_key.is_empty() {
                return Err(SettingsError::new(
                    format!("{at}.request_headers.descriptor_key"),
                    "must not be empty",
                ));
            }
            Compiled::Header {
                name: h.header_name.to_ascii_lowercase(),
                key: h.descriptor_key.clone(),
                skip_if_absent: h.skip_if_absent,
            }
        }
        Action::RemoteAddress(_) => Compiled::RemoteAddress,
        Action::GenericKey(g) => Compiled::Generic {
            key: key_or(&g.descriptor_key, "generic_key"),
            value: g.descriptor_value.clone(),
        },
        Action::HeaderValueMatch(m) => Compiled::HeaderValueMatch {
            key: key_or(&m.descriptor_key, "header_match"),
            value: m.descriptor_value.clone(),
            expect_match: m.expect_match.unwrap_or(true),
            headers: m
                .headers
                .iter()
                .enumerate()
                .map(|(i, h)| matcher(h, &format!("{at}.header_value_match.headers[{i}]")))
                .collect::<Result<_, _>>()?,
        },
        Action::QueryParameters(q) => {
            if q.descriptor_key.is_empty() {
                return Err(SettingsError::new(
                    format!("{at}.query_parameters.descriptor_key"),
                    "must not be empty",
                ));
            }
            Compiled::Query {
                name: q.query_parameter_name.clone(),
                key: q.descriptor_key.clone(),
                skip_if_absent: q.skip_if_absent,
            }
        }
        Action::MaskedRemoteAddress(m) => {
            let v4 = m.v4_prefix_mask_len.unwrap_or(32);
            let v6 = m.v6_prefix_mask_len.unwrap_or(128);
            if v4 > 32 {
                return Err(SettingsError::new(
                    format!("{at}.masked_remote_address.v4_prefix_mask_len"),
                    "must be at most 32",
                ));
            }
            if v6 > 128 {
                return Err(SettingsError::new(
                    format!("{at}.masked_remote_address.v6_prefix_mask_len"),
                    "must be at most 128",
                ));
            }
            Compiled::Masked { v4, v6 }
        }
        Action::SourceCluster(_) => {
            return Err(unsupported(
                &format!("{at}.source_cluster"),
                "use generic_key with the service's name",
            ));
        }
        // An empty message in Envoy (`RateLimit.Action.DestinationCluster`).
        Action::DestinationCluster(value) => {
            if !value.as_object().is_some_and(serde_json::Map::is_empty) {
                return Err(SettingsError::new(
                    format!("{at}.destination_cluster"),
                    "takes no fields: {}",
                ));
            }
            Compiled::DestinationCluster
        }
        Action::Metadata(_) | Action::DynamicMetadata(_) => {
            return Err(unsupported(
                &format!("{at}.metadata"),
                "a filter does not see route or dynamic metadata",
            ));
        }
        Action::Extension(_) => {
            return Err(unsupported(&format!("{at}.extension"), "no extensions"));
        }
        Action::QueryParameterValueMatch(m) => {
            let at = format!("{at}.query_parameter_value_match");
            let mut params = Vec::with_capacity(m.query_parameters.len());
            for (i, q) in m.query_parameters.iter().enumerate() {
                let at = format!("{at}.query_parameters[{i}]");
                if q.name.is_empty() {
                    return Err(SettingsError::new(
                        format!("{at}.name"),
                        "must not be empty",
                    ));
                }
                let form = match (&q.string_match, q.present_match) {
                    (Some(_), Some(_)) => {
                        return Err(SettingsError::new(
                            at,
                            "names both string_match and present_match",
                        ));
                    }
                    (Some(m), None) => string_form(m, &format!("{at}.string_match"))?,
                    (None, _) => Form::Present(true),
                };
                params.push((q.name.clone(), form));
            }
            Compiled::QueryValueMatch {
                key: key_or(&m.descriptor_key, "query_match"),
                value: m.descriptor_value.clone(),
                expect_match: m.expect_match.unwrap_or(true),
                params,
            }
        }
    })
}

fn matcher(h: &HeaderMatcher, at: &str) -> Result<Matcher, SettingsError> {
    if h.safe_regex_match.is_some() {
        return Err(unsupported(&format!("{at}.safe_regex_match"), "not yet"));
    }
    if h.range_match.is_some() {
        return Err(unsupported(&format!("{at}.range_match"), "not yet"));
    }
    let mut forms = Vec::new();
    if let Some(v) = &h.exact_match {
        forms.push(Form::Exact(v.clone(), false));
    }
    if let Some(v) = &h.prefix_match {
        forms.push(Form::Prefix(v.clone(), false));
    }
    if let Some(v) = &h.suffix_match {
        forms.push(Form::Suffix(v.clone(), false));
    }
    if let Some(v) = &h.contains_match {
        forms.push(Form::Contains(v.clone(), false));
    }
    if let Some(v) = h.present_match {
        forms.push(Form::Present(v));
    }
    if let Some(m) = &h.string_match {
        forms.push(string_form(m, &format!("{at}.string_match"))?);
    }
    if forms.len() > 1 {
        return Err(SettingsError::new(at, "names more than one way to match"));
    }
    Ok(Matcher {
        name: h.name.to_ascii_lowercase(),
        // No form: the header must be present (Envoy's default).
        form: forms.pop().unwrap_or(Form::Present(true)),
        invert: h.invert_match,
        missing_as_empty: h.treat_missing_header_as_empty,
    })
}

fn string_form(m: &StringMatcher, at: &str) -> Result<Form, SettingsError> {
    if m.safe_regex.is_some() {
        return Err(unsupported(&format!("{at}.safe_regex"), "not yet"));
    }
    let case = m.ignore_case;
    let lower = |v: &String| {
        if case {
            v.to_ascii_lowercase()
        } else {
            v.clone()
        }
    };
    match (&m.exact, &m.prefix, &m.suffix, &m.contains) {
        (Some(v), None, None, None) => Ok(Form::Exact(lower(v), case)),
        (None, Some(v), None, None) => Ok(Form::Prefix(lower(v), case)),
        (None, None, Some(v), None) => Ok(Form::Suffix(lower(v), case)),
        (None, None, None, Some(v)) => Ok(Form::Contains(lower(v), case)),
        _ => Err(SettingsError::new(
            at,
            "needs exactly one of exact, prefix, suffix, contains",
        )),
    }
}

impl Matcher {
    /// Envoy's `HeaderUtility::matchHeaders`: repeated values are joined with `,`; a missing
    /// header matches only `present_match: false` (inverted: only `present_match: true`),
    /// unless it is treated as empty.
    fn matches(&self, request: &HttpRequest) -> bool {
        let values: Vec<&str> = match pseudo(request, &self.name) {
            Some(value) => Some(value).filter(|v| !v.is_empty()).into_iter().collect(),
            None => request.headers.get_all(&self.name).collect(),
        };
        let value = if values.is_empty() {
            if !self.missing_as_empty {
                let present = matches!(self.form, Form::Present(p) if p != self.invert);
                return matches!(self.form, Form::Present(_)) && !present;
            }
            String::new()
        } else {
            values.join(",")
        };
        self.form.matches(&value) != self.invert
    }
}

/// The pseudo-header `name` of the request: Envoy's header map holds them beside the others
/// (so its matchers and `request_headers` see them); the SDK keeps them in their own fields.
/// `None` for any other name.
fn pseudo<'a>(request: &'a HttpRequest, name: &str) -> Option<&'a str> {
    match name {
        ":authority" => Some(&request.authority),
        ":path" => Some(&request.path),
        ":method" => Some(&request.method),
        ":scheme" => Some(&request.scheme),
        _ => None,
    }
}

impl Form {
    /// Whether a present value matches (`Present(p)` is `p`).
    fn matches(&self, value: &str) -> bool {
        let text = |case: bool| {
            if case {
                Cow::Owned(value.to_ascii_lowercase())
            } else {
                Cow::Borrowed(value)
            }
        };
        match self {
            Self::Present(p) => *p,
            Self::Exact(v, case) => *text(*case) == **v,
            Self::Prefix(v, case) => text(*case).starts_with(v.as_str()),
            Self::Suffix(v, case) => text(*case).ends_with(v.as_str()),
            Self::Contains(v, case) => text(*case).contains(v.as_str()),
        }
    }
}

/// The client's address without its port (`source.address` is `ip:port`, `[v6]:port`).
pub(crate) fn client_ip(request: &HttpRequest) -> Option<IpAddr> {
    client_address(request)?.parse().ok()
}

fn masked(ip: IpAddr, v4: u8, v6: u8) -> String {
    match ip {
        IpAddr::V4(ip) => {
            let bits = u32::from(ip);
            let mask = u32::MAX
                .checked_shl(32u32.saturating_sub(u32::from(v4)))
                .unwrap_or(0);
            format!("{}/{v4}", std::net::Ipv4Addr::from(bits & mask))
        }
        IpAddr::V6(ip) => {
            let bits = u128::from(ip);
            let mask = u128::MAX
                .checked_shl(128u32.saturating_sub(u32::from(v6)))
                .unwrap_or(0);
            format!("{}/{v6}", std::net::Ipv6Addr::from(bits & mask))
        }
    }
}

/// One entry of a request descriptor: the key is the configuration's, the value borrowed from
/// the request where it can be.
pub(crate) type Entry<'a> = (&'a str, Cow<'a, str>);

/// The request's descriptors, one per `RateLimit` whose actions all produce (or skip), as
/// one list of entries and where each descriptor ends in it (two allocations per request).
#[derive(Debug, Default)]
pub(crate) struct Described<'a> {
    entries: Vec<Entry<'a>>,
    ends: Vec<usize>,
}

impl<'a> Described<'a> {
    /// Each descriptor's entries, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &[Entry<'a>]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .filter_map(|(start, end)| self.entries.get(start..end))
    }
}

/// The request's descriptors (see [`Described`]).
pub(crate) fn describe<'a>(
    rate_limits: &'a [Vec<Compiled>],
    request: &'a HttpRequest,
) -> Described<'a> {
    let mut described = Described {
        entries: Vec::with_capacity(rate_limits.iter().map(Vec::len).sum()),
        ends: Vec::with_capacity(rate_limits.len()),
    };
    'limits: for actions in rate_limits {
        let start = described.entries.len();
        for action in actions {
            match produce(action, request) {
                Produced::Entry(key, value) => described.entries.push((key, value)),
                Produced::Skip => {}
                Produced::Fail => {
                    described.entries.truncate(start);
                    continue 'limits;
                }
            }
        }
        described.ends.push(described.entries.len());
    }
    described
}

enum Produced<'a> {
    Entry(&'a str, Cow<'a, str>),
    Skip,
    Fail,
}

fn produce<'a>(action: &'a Compiled, request: &'a HttpRequest) -> Produced<'a> {
    let absent = |skip: bool| if skip { Produced::Skip } else { Produced::Fail };
    match action {
        Compiled::Header {
            name,
            key,
            skip_if_absent,
        } => {
            let value = match name.as_str() {
                // HTTP/1's Host is HTTP/2's :authority in Envoy's header map.
                "host" => Some(request.authority.as_str()),
                other => pseudo(request, other).or_else(|| request.header(other)),
            };
            match value {
                Some(v) if !(v.is_empty() && name.starts_with(':')) => {
                    Produced::Entry(key, Cow::Borrowed(v))
                }
                _ => absent(*skip_if_absent),
            }
        }
        Compiled::RemoteAddress => match client_address(request) {
            Some(text) => Produced::Entry("remote_address", Cow::Borrowed(text)),
            None => Produced::Fail,
        },
        Compiled::Generic { key, value } => Produced::Entry(key, Cow::Borrowed(value)),
        Compiled::HeaderValueMatch {
            key,
            value,
            expect_match,
            headers,
        } => {
            if headers.iter().all(|m| m.matches(request)) == *expect_match {
                Produced::Entry(key, Cow::Borrowed(value))
            } else {
                Produced::Fail
            }
        }
        Compiled::Query {
            name,
            key,
            skip_if_absent,
        } => match query_param(&request.path, name) {
            Some(v) => Produced::Entry(key, v),
            None => absent(*skip_if_absent),
        },
        // Envoy's `QueryParameterMatcher::matches`: an absent parameter never matches; a
        // present one matches its form, or by presence alone.
        Compiled::QueryValueMatch {
            key,
            value,
            expect_match,
            params,
        } => {
            let matched = params.iter().all(|(name, form)| {
                query_param(&request.path, name).is_some_and(|v| form.matches(&v))
            });
            if matched == *expect_match {
                Produced::Entry(key, Cow::Borrowed(value))
            } else {
                Produced::Fail
            }
        }
        Compiled::Masked { v4, v6 } => match client_ip(request) {
            Some(ip) => Produced::Entry("masked_remote_address", Cow::Owned(masked(ip, *v4, *v6))),
            None => Produced::Fail,
        },
        // Envoy's DestinationClusterAction: the route entry's cluster; no route, no descriptor.
        Compiled::DestinationCluster => match &request.route.cluster {
            Some(cluster) => Produced::Entry("destination_cluster", Cow::Borrowed(cluster)),
            None => Produced::Fail,
        },
    }
}

/// The client's address as Envoy writes it (`addressAsString`: `10.0.0.1`, `::1`), cut out of
/// `source.address` without formatting it again: `ip:port` and `[v6]:port`, or an address
/// alone; `None` when it is not an IP address (a Unix socket).
fn client_address(request: &HttpRequest) -> Option<&str> {
    let address = request.connection.source_address.as_deref()?;
    let host = if let Some(rest) = address.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(host, _)| host)
    } else {
        match address.split_once(':') {
            // One colon: IPv4 and its port; more: an IPv6 address alone.
            Some((host, port)) if !port.contains(':') => host,
            _ => address,
        }
    };
    let valid = if host.contains(':') {
        host.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        dotted_quad(host)
    };
    valid.then_some(host)
}

/// Whether `text` is an IPv4 address in dotted-decimal form (four numbers up to 255, as
/// Envoy writes them), checked byte by byte: every request with a remote_address action asks.
fn dotted_quad(text: &str) -> bool {
    let (mut parts, mut digits, mut value) = (0u8, 0u8, 0u16);
    for b in text.bytes() {
        match b {
            b'0'..=b'9' if digits < 3 => {
                value = value
                    .saturating_mul(10)
                    .saturating_add(u16::from(b.saturating_sub(b'0')));
                digits = digits.saturating_add(1);
            }
            b'.' if digits > 0 && value <= 255 && parts < 3 => {
                parts = parts.saturating_add(1);
                (digits, value) = (0, 0);
            }
            _ => return false,
        }
    }
    parts == 3 && digits > 0 && value <= 255
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn dotted_quads_are_what_the_standard_parser_reads() {
        let mut samples: Vec<String> = [
            "0.0.0.0",
            "255.255.255.255",
            "256.0.0.1",
            "1.2.3",
            "1.2.3.4.5",
            "1..2.3",
            ".1.2.3",
            "1.2.3.",
            "1.2.3.4a",
            "1234.1.1.1",
            "",
            "1.2.3.-4",
            "a.b.c.d",
            "1.2.3.4 ",
        ]
        .map(str::to_owned)
        .to_vec();
        for a in [0, 9, 10, 99, 100, 199, 200, 249, 250, 255, 256, 999] {
            samples.push(format!("{a}.1.{a}.7"));
        }
        for text in &samples {
            assert_eq!(
                dotted_quad(text),
                text.parse::<std::net::Ipv4Addr>().is_ok(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn masks_as_cidr() {
        let v4: IpAddr = "192.168.1.77".parse().unwrap();
        assert_eq!(masked(v4, 24, 128), "192.168.1.0/24");
        assert_eq!(masked(v4, 32, 128), "192.168.1.77/32");
        assert_eq!(masked(v4, 0, 128), "0.0.0.0/0");
        let v6: IpAddr = "2001:db8::1:2".parse().unwrap();
        assert_eq!(masked(v6, 32, 64), "2001:db8::/64");
    }

    #[test]
    fn client_addresses_lose_their_port() {
        let mut request = HttpRequest::default();
        for (address, ip) in [
            ("10.0.0.1:443", "10.0.0.1"),
            ("[::1]:8080", "::1"),
            ("10.0.0.2", "10.0.0.2"),
            ("::2", "::2"),
        ] {
            request.connection.source_address = Some(address.into());
            assert_eq!(client_ip(&request).unwrap().to_string(), ip);
        }
        request.connection.source_address = Some("/run/sock".into());
        assert_eq!(client_ip(&request), None);
        assert_eq!(client_address(&request), None);
        for bad in [
            "10.0.0",
            "10.0.0.1.2",
            "10.0.0.256",
            "10..0.1",
            "a.b.c.d",
            "1.2.3.4:5:6",
        ] {
            request.connection.source_address = Some(bad.into());
            assert_eq!(client_address(&request), None, "{bad}");
        }
        for (address, text) in [
            ("10.0.0.1:443", "10.0.0.1"),
            ("[2001:db8::1]:8080", "2001:db8::1"),
            ("::1", "::1"),
            ("10.0.0.2", "10.0.0.2"),
        ] {
            request.connection.source_address = Some(address.into());
            assert_eq!(client_address(&request), Some(text));
        }
    }
}
