//! One matcher per field family, compiled once from the policy's strings, each as Istio compiles
//! it (istio/istio `pilot/pkg/security/authz/matcher/{string,header}.go`, `model/generator.go`):
//! exact `v`, prefix `v*`, suffix `*v` and `*`; only one leading or trailing `*` is a wildcard
//! (`*v*` is the suffix `v*`).

use std::net::IpAddr;

use palisade_sdk::compare;
use serde_json::Value;

/// Istio's string forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pattern {
    /// The whole value.
    Exact(String),
    /// `v*`.
    Prefix(String),
    /// `*v`.
    Suffix(String),
    /// `*`: any value (non-empty, or present for headers).
    Any,
}

impl Pattern {
    /// Reads `value` as Istio's `matcher.StringMatcher` does: `*`, then a leading `*`, then a
    /// trailing `*`.
    pub(crate) fn parse(value: &str) -> Self {
        if value == "*" {
            Self::Any
        } else if let Some(suffix) = value.strip_prefix('*') {
            Self::Suffix(suffix.to_owned())
        } else if let Some(prefix) = value.strip_suffix('*') {
            Self::Prefix(prefix.to_owned())
        } else {
            Self::Exact(value.to_owned())
        }
    }

    /// The pattern with every literal part lower-cased (hosts match case-insensitively).
    pub(crate) fn lowercase(self) -> Self {
        match self {
            Self::Exact(v) => Self::Exact(v.to_ascii_lowercase()),
            Self::Prefix(v) => Self::Prefix(v.to_ascii_lowercase()),
            Self::Suffix(v) => Self::Suffix(v.to_ascii_lowercase()),
            Self::Any => Self::Any,
        }
    }

    /// Whether `value` matches; `Any` wants a non-empty value (regex `.+`).
    pub(crate) fn matches(&self, value: &str) -> bool {
        match self {
            Self::Exact(v) => compare::eq(value, v),
            Self::Prefix(v) => compare::starts_with(value, v),
            Self::Suffix(v) => compare::ends_with(value, v),
            Self::Any => !value.is_empty(),
        }
    }

    /// As a header matcher: `Any` is `present_match`, so an empty value matches too.
    pub(crate) fn matches_header(&self, value: &str) -> bool {
        match self {
            Self::Any => true,
            other => other.matches(value),
        }
    }

    /// A value that is a string, or a list with a string element that matches; other JSON
    /// values never match (Envoy's string matchers want a string `Value`).
    pub(crate) fn matches_claim(&self, value: &Value) -> bool {
        match value {
            Value::String(s) => self.matches(s),
            Value::Array(items) => items
                .iter()
                .any(|i| i.as_str().is_some_and(|s| self.matches(s))),
            _ => false,
        }
    }
}

/// A `device.claims[..]` value (ours): Istio's string forms, or a comparison with a version
/// (`>=14.2`, `>2026.10`, `<=3`, `<17`) for claims such as an OS patch level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DeviceValue {
    /// A string form.
    Pattern(Pattern),
    /// The claim, read as a version, compared with this one.
    Compare(Comparison, Version),
}

/// `>=`, `>`, `<=` or `<`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Comparison {
    AtLeast,
    Above,
    AtMost,
    Below,
}

/// Numbers separated by `.` or `-` (`14.2.1`, `2026-11`, `17`), compared number by number, a
/// missing number counting as 0 (`14.2` = `14.2.0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Version(Vec<u64>);

impl Version {
    fn parse(text: &str) -> Option<Self> {
        let parts: Option<Vec<u64>> = text
            .split(['.', '-'])
            .map(|part| {
                (!part.is_empty() && part.len() <= 19 && part.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| part.parse().ok())
                    .flatten()
            })
            .collect();
        parts.filter(|p| !p.is_empty() && p.len() <= 8).map(Self)
    }

    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let len = self.0.len().max(other.0.len());
        (0..len)
            .map(|i| {
                let a = self.0.get(i).copied().unwrap_or(0);
                let b = other.0.get(i).copied().unwrap_or(0);
                a.cmp(&b)
            })
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    }
}

impl DeviceValue {
    /// Reads a value of a `device.claims[..]` condition.
    pub(crate) fn parse(value: &str) -> Result<Self, String> {
        let (comparison, rest) = if let Some(rest) = value.strip_prefix(">=") {
            (Comparison::AtLeast, rest)
        } else if let Some(rest) = value.strip_prefix("<=") {
            (Comparison::AtMost, rest)
        } else if let Some(rest) = value.strip_prefix('>') {
            (Comparison::Above, rest)
        } else if let Some(rest) = value.strip_prefix('<') {
            (Comparison::Below, rest)
        } else {
            return Ok(Self::Pattern(Pattern::parse(value)));
        };
        let version = Version::parse(rest.trim()).ok_or_else(|| {
            "compares with a version: numbers separated by . or - (such as >=14.2 or >=2026-11)"
                .to_owned()
        })?;
        Ok(Self::Compare(comparison, version))
    }

    /// Whether the claim matches: a string form as for token claims; a comparison holds for a
    /// string or number claim that reads as a version (or for one element of a list).
    pub(crate) fn matches_claim(&self, value: &Value) -> bool {
        let Self::Compare(comparison, bound) = self else {
            return matches!(self, Self::Pattern(p) if p.matches_claim(value));
        };
        let holds = |claim: &Version| {
            let order = claim.cmp(bound);
            match comparison {
                Comparison::AtLeast => order.is_ge(),
                Comparison::Above => order.is_gt(),
                Comparison::AtMost => order.is_le(),
                Comparison::Below => order.is_lt(),
            }
        };
        let one = |value: &Value| match value {
            Value::String(s) => Version::parse(s).is_some_and(|v| holds(&v)),
            Value::Number(n) => Version::parse(&n.to_string()).is_some_and(|v| holds(&v)),
            _ => false,
        };
        match value {
            Value::Array(items) => items.iter().any(one),
            other => one(other),
        }
    }
}

/// `request.auth.principal` / `requestPrincipals`: Istio splits the value at its last `/` (the
/// issuer may be a URL) and matches the token's `iss` and `sub` separately
/// (`requestPrincipalGenerator`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestPrincipal {
    iss: Pattern,
    sub: Pattern,
}

impl RequestPrincipal {
    pub(crate) fn parse(value: &str) -> Self {
        let split = value.rfind('/').map(|at| {
            let (iss, sub) = value.split_at(at);
            (iss, sub.get(1..).unwrap_or_default())
        });
        let exact = |s: &str| Pattern::Exact(s.to_owned());
        let (iss, sub) = if value == "*" {
            (Pattern::Any, Pattern::Any)
        } else if let Some(rest) = value.strip_prefix('*') {
            match split {
                Some(("*", sub)) => (Pattern::Any, exact(sub)),
                Some((iss, sub)) => (
                    Pattern::Suffix(iss.get(1..).unwrap_or_default().to_owned()),
                    exact(sub),
                ),
                None => (Pattern::Any, Pattern::Suffix(rest.to_owned())),
            }
        } else if let Some(rest) = value.strip_suffix('*') {
            match split {
                Some((iss, "*")) => (exact(iss), Pattern::Any),
                Some((iss, sub)) => (
                    exact(iss),
                    Pattern::Prefix(sub.strip_suffix('*').unwrap_or(sub).to_owned()),
                ),
                None => (Pattern::Prefix(rest.to_owned()), Pattern::Any),
            }
        } else {
            match split {
                Some((iss, sub)) => (exact(iss), exact(sub)),
                None => (exact(value), exact("")),
            }
        };
        Self { iss, sub }
    }

    pub(crate) fn matches(&self, iss: &str, sub: &str) -> bool {
        self.iss.matches(iss) && self.sub.matches(sub)
    }
}

/// `namespaces` / `source.namespace`: Istio's regex `.*/ns/<v>/.*` over the peer's SPIFFE URI,
/// every `*` of `v` standing for any run of characters (so infix wildcards work here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Namespace {
    /// `*/ns/<v>/*` split at its `*`s.
    parts: Vec<String>,
}

impl Namespace {
    pub(crate) fn parse(value: &str) -> Self {
        let glob = format!("*/ns/{value}/*");
        Self {
            parts: glob.split('*').map(str::to_owned).collect(),
        }
    }

    /// Whether the URI `spiffe://<principal>` matches.
    pub(crate) fn matches(&self, principal: &str) -> bool {
        if let [first, needle, last] = self.parts.as_slice()
            && first.is_empty()
            && last.is_empty()
        {
            // A literal namespace: the URI holds `/ns/<v>/`, which starts at one of its slashes
            // (the last of `spiffe://` included), found without building the URI.
            let after_scheme = needle.get(1..).unwrap_or_default();
            return compare::starts_with(principal, after_scheme)
                || principal.bytes().enumerate().any(|(at, b)| {
                    b == b'/'
                        && principal
                            .get(at..)
                            .is_some_and(|rest| compare::starts_with(rest, needle))
                });
        }
        glob_matches(&self.parts, &format!("spiffe://{principal}"))
    }
}

/// Whether `text` is `parts[0]` + anything + `parts[1]` + anything ... + `parts[last]`.
fn glob_matches(parts: &[String], text: &str) -> bool {
    let Some((first, rest)) = parts.split_first() else {
        return text.is_empty();
    };
    let Some(mut remaining) = text.strip_prefix(first.as_str()) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return remaining.is_empty();
    };
    for part in middle {
        match remaining.find(part.as_str()) {
            Some(at) => remaining = remaining.get(at.saturating_add(part.len())..).unwrap_or(""),
            None => return false,
        }
    }
    remaining.ends_with(last.as_str())
}

/// A CIDR block: an address and a prefix length, host bits kept as written (Envoy's
/// `CidrRange` masks them when matching). Written here rather than taken from `ipnet`: it is a
/// mask and a compare, and `ipnet`'s own address parser cost the filter 7 KB of its size budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Block {
    address: IpAddr,
    prefix: u8,
}

/// An address or CIDR block; a bare address is a /32 or /128 (`AddrStrToCidrRange`).
pub(crate) fn parse_block(value: &str) -> Result<Block, String> {
    let bad = || "is not an IP address or CIDR block".to_owned();
    let (address, prefix) = match value.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (value, None),
    };
    let address: IpAddr = address.parse().map_err(|_| bad())?;
    let bits = if address.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => bits,
        Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => p
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= bits)
            .ok_or_else(bad)?,
        Some(_) => return Err(bad()),
    };
    Ok(Block { address, prefix })
}

/// Whether `ip` is in `block` (an IPv4 address never matches an IPv6 block, as in Envoy).
pub(crate) fn in_block(block: &Block, ip: IpAddr) -> bool {
    match (block.address, ip) {
        (IpAddr::V4(net), IpAddr::V4(ip)) => {
            let mask = u32::MAX.checked_shl(32u32.saturating_sub(u32::from(block.prefix)));
            (u32::from(net) ^ u32::from(ip)) & mask.unwrap_or(0) == 0
        }
        (IpAddr::V6(net), IpAddr::V6(ip)) => {
            let mask = u128::MAX.checked_shl(128u32.saturating_sub(u32::from(block.prefix)));
            (u128::from(net) ^ u128::from(ip)) & mask.unwrap_or(0) == 0
        }
        _ => false,
    }
}

/// A port: decimal, 0 to 65535.
pub(crate) fn parse_port(value: &str) -> Result<u16, String> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err("is not a port number".into());
    }
    value
        .parse::<u16>()
        .map_err(|_| "is not a port number (0-65535)".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn string_forms_as_istio_reads_them() {
        assert_eq!(Pattern::parse("*"), Pattern::Any);
        assert_eq!(Pattern::parse("*.php"), Pattern::Suffix(".php".into()));
        assert_eq!(
            Pattern::parse("/admin/*"),
            Pattern::Prefix("/admin/".into())
        );
        // Only one end is a wildcard: `*v*` is the suffix `v*`, with a literal `*`.
        assert_eq!(Pattern::parse("*a*"), Pattern::Suffix("a*".into()));
        assert!(!Pattern::Any.matches(""));
        assert!(Pattern::Any.matches_header(""));
        assert!(Pattern::parse("x*").matches("x"));
    }

    #[test]
    fn literal_namespaces_match_as_the_glob_does() {
        let principals = [
            "cluster.local/ns/shop/sa/web",
            "cluster.local/ns/shop",
            "cluster.local/ns/shopping/sa/web",
            "ns/shop/sa/web",
            "/ns/shop/",
            "x/ns/shop/ns/other/",
            "cluster.local/ns/Shop/sa/web",
            "",
        ];
        for namespace in ["shop", "ns", "shop/sa", ""] {
            let matcher = Namespace::parse(namespace);
            for principal in principals {
                assert_eq!(
                    matcher.matches(principal),
                    glob_matches(&matcher.parts, &format!("spiffe://{principal}")),
                    "{namespace:?} against {principal:?}"
                );
            }
        }
        assert!(Namespace::parse("shop").matches("ns/shop/sa/web"));
        assert!(!Namespace::parse("shop").matches("cluster.local/ns/shopping/sa/web"));
    }

    #[test]
    fn claims_match_strings_and_list_elements_only() {
        let p = Pattern::parse("admin");
        assert!(p.matches_claim(&json!("admin")));
        assert!(p.matches_claim(&json!(["user", "admin"])));
        assert!(!p.matches_claim(&json!(true)));
        assert!(!Pattern::parse("123").matches_claim(&json!(123)));
        assert!(!p.matches_claim(&json!({"admin": 1})));
    }

    #[test]
    fn request_principals_split_at_the_last_slash() {
        let rp = |v: &str, iss: &str, sub: &str| RequestPrincipal::parse(v).matches(iss, sub);
        assert!(rp(
            "https://idp.example/realms/a/alice",
            "https://idp.example/realms/a",
            "alice"
        ));
        assert!(!rp(
            "https://idp.example/alice",
            "https://idp.example",
            "bob"
        ));
        assert!(rp("*", "i", "s"));
        assert!(!rp("*", "i", ""), "a token without sub never matches *");
        assert!(rp("*@example.com", "any", "bob@example.com"));
        assert!(rp("idp.example*", "idp.example.com", "x"));
        // A URL issuer has slashes, so `https://idp*` is issuer `https:/` and subject `idp*`,
        // as in Istio: it cannot prefix-match a URL issuer.
        assert!(!rp("https://idp*", "https://idp.example", "x"));
        assert!(rp("https://idp*", "https:/", "idp-1"));
        assert!(rp("https://idp.example/*", "https://idp.example", "x"));
        assert!(!rp("https://idp.example/*", "https://idp.example", ""));
        assert!(rp(
            "https://idp.example/svc-*",
            "https://idp.example",
            "svc-a"
        ));
        assert!(rp("*.example/alice", "https://idp.example", "alice"));
        assert!(rp("*/alice", "anything", "alice"));
        // No slash and no star: the issuer exactly, with an empty subject.
        assert!(!rp("alice", "alice", "x"));
    }

    #[test]
    fn namespaces_are_globs_over_the_spiffe_uri() {
        let ns = |v: &str, p: &str| Namespace::parse(v).matches(p);
        assert!(ns("shop", "cluster.local/ns/shop/sa/web"));
        assert!(!ns("shop", "cluster.local/ns/shop-2/sa/web"));
        assert!(ns("shop-*", "cluster.local/ns/shop-2/sa/web"));
        assert!(ns("*-prod", "cluster.local/ns/eu-prod/sa/web"));
        assert!(ns("s*p", "cluster.local/ns/shop/sa/web"));
        assert!(ns("*", "cluster.local/ns/x/sa/web"));
        assert!(!ns("shop", "alice"));
    }

    #[test]
    fn device_values_compare_versions() {
        let value = |v: &str| DeviceValue::parse(v).unwrap_or_else(|e| unreachable!("{e}"));
        let at_least = value(">=14.2");
        for (claim, holds) in [
            (json!("14.2"), true),
            (json!("14.2.0"), true),
            (json!("14.10"), true),
            (json!("15"), true),
            (json!(15), true),
            (json!(14.3), true),
            (json!("14.1.9"), false),
            (json!("14"), false),
            (json!("fourteen"), false),
            (json!(true), false),
            (json!(["13.0", "14.5"]), true),
        ] {
            assert_eq!(at_least.matches_claim(&claim), holds, "{claim}");
        }
        assert!(value(">2026-10").matches_claim(&json!("2026-11")));
        assert!(!value(">2026-11").matches_claim(&json!("2026-11")));
        assert!(value("<=3").matches_claim(&json!(3)));
        assert!(value("< 17").matches_claim(&json!("16.9")));
        // Without an operator a value is a string form, as for token claims.
        assert!(value("ios-*").matches_claim(&json!("ios-17")));
        for bad in [">=", ">=v14", ">=1..2", ">=-1", ">=1.2.3.4.5.6.7.8.9"] {
            assert!(DeviceValue::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn blocks_and_ports() {
        let block = parse_block("10.1.0.0/16").unwrap_or_else(|e| unreachable!("{e}"));
        assert!(in_block(
            &block,
            "10.1.200.3".parse().unwrap_or_else(|_| unreachable!())
        ));
        assert!(!in_block(
            &block,
            "10.2.0.1".parse().unwrap_or_else(|_| unreachable!())
        ));
        let host = parse_block("192.168.1.7").unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(host.prefix, 32);
        assert!(parse_block("10.0.0.0/33").is_err());
        assert!(parse_block("shop").is_err());
        for bad in [
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/8/8",
            "::1/129",
            "10.0.0/8",
            "/8",
        ] {
            assert!(parse_block(bad).is_err(), "{bad}");
        }
        let ip = |text: &str| text.parse::<IpAddr>().unwrap_or_else(|_| unreachable!());
        // Host bits are masked when matching; /0 holds every address of its family only.
        let block = parse_block("10.1.2.3/8").unwrap_or_else(|e| unreachable!("{e}"));
        assert!(in_block(&block, ip("10.200.0.1")));
        let all = parse_block("0.0.0.0/0").unwrap_or_else(|e| unreachable!("{e}"));
        assert!(in_block(&all, ip("203.0.113.9")));
        assert!(!in_block(&all, ip("::1")));
        let v6 = parse_block("2001:db8::/32").unwrap_or_else(|e| unreachable!("{e}"));
        assert!(in_block(&v6, ip("2001:db8:ffff::1")));
        assert!(!in_block(&v6, ip("2001:db9::1")));
        assert!(!in_block(&v6, ip("10.0.0.1")));
        let one = parse_block("::1").unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(one.prefix, 128);
        assert!(in_block(&one, ip("::1")) && !in_block(&one, ip("::2")));
        assert_eq!(parse_port("8080"), Ok(8080));
        assert!(parse_port("65536").is_err());
        assert!(parse_port("-1").is_err());
        assert!(parse_port("").is_err());
    }
}
