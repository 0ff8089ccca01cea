//! Path templates in `paths` / `notPaths` (Istio >= 1.22): `{*}` is one path segment, `{**}` any
//! run of segments. Checked as istio/istio `pkg/config/security/security.go`
//! `CheckValidPathTemplate` checks them, matched as Envoy's `uri_template` matcher does:
//! `{*}` = one or more pchar, `{**}` = zero or more pchar or `/`, the whole path must match.

/// A compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// `{*}`
    Segment,
    /// `{**}`
    Segments,
}

/// RFC 3986 pchar, as Envoy's template regex spells it (`%` stands for itself: escapes are
/// already in the path).
fn is_pchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~%!$&'()+,;:@=".contains(c)
}

/// Whether `value` is a template (has `{*}` or `{**}`), as `ContainsPathTemplate` decides.
pub(crate) fn is_template(value: &str) -> bool {
    value.contains("{*}") || value.contains("{**}")
}

impl Template {
    /// Checks and compiles a template, with Istio's rules: every segment is exactly `{*}`,
    /// exactly `{**}`, or literal pchar; no operator after `{**}`.
    pub(crate) fn parse(value: &str) -> Result<Self, String> {
        let mut seen_multi = false;
        for segment in value.trim_matches('/').split('/') {
            match segment {
                "{*}" | "{**}" if seen_multi => {
                    return Err(format!(
                        "is not a valid path template: {segment} after {{**}}"
                    ));
                }
                "{**}" => seen_multi = true,
                "{*}" => {}
                literal if literal.chars().all(is_pchar) => {}
                other => {
                    return Err(format!(
                        "is not a valid path template: segment {other:?} must be {{*}}, {{**}} \
                         or only path characters"
                    ));
                }
            }
        }
        let mut parts = Vec::new();
        let mut rest = value;
        while let Some(at) = rest.find('{') {
            let (literal, tail) = rest.split_at(at);
            if !literal.is_empty() {
                parts.push(Part::Literal(literal.to_owned()));
            }
            if let Some(after) = tail.strip_prefix("{**}") {
                parts.push(Part::Segments);
                rest = after;
            } else if let Some(after) = tail.strip_prefix("{*}") {
                parts.push(Part::Segment);
                rest = after;
            } else {
                return Err("is not a valid path template".into());
            }
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(Self { parts })
    }

    /// Whether the whole `path` matches.
    pub(crate) fn matches(&self, path: &str) -> bool {
        // The path must open with a leading literal: most paths a rule sees fail here, before
        // the search below allocates anything.
        if let Some(Part::Literal(first)) = self.parts.first()
            && !palisade_sdk::compare::starts_with(path, first)
        {
            return false;
        }
        let chars: Vec<char> = path.chars().collect();
        // reachable[i]: the parts so far can consume exactly chars[..i].
        let mut reachable = vec![false; chars.len().saturating_add(1)];
        if let Some(first) = reachable.first_mut() {
            *first = true;
        }
        for part in &self.parts {
            let mut next = vec![false; reachable.len()];
            for (start, _) in reachable.iter().enumerate().filter(|(_, r)| **r) {
                let rest = chars.get(start..).unwrap_or_default();
                match part {
                    Part::Literal(literal) => {
                        let len = literal.chars().count();
                        if rest.len() >= len
                            && rest.iter().take(len).copied().eq(literal.chars())
                            && let Some(n) = next.get_mut(start.saturating_add(len))
                        {
                            *n = true;
                        }
                    }
                    Part::Segment | Part::Segments => {
                        let allowed = |c: &char| {
                            is_pchar(*c) || (matches!(part, Part::Segments) && *c == '/')
                        };
                        let run = rest.iter().take_while(|c| allowed(c)).count();
                        let min = usize::from(matches!(part, Part::Segment));
                        for len in min..=run {
                            if let Some(n) = next.get_mut(start.saturating_add(len)) {
                                *n = true;
                            }
                        }
                    }
                }
            }
            reachable = next;
        }
        reachable.last().copied().unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(value: &str) -> Template {
        Template::parse(value).unwrap_or_else(|e| unreachable!("{value}: {e}"))
    }

    #[test]
    fn one_segment_and_many() {
        assert!(t("/foo/{*}").matches("/foo/bar"));
        assert!(!t("/foo/{*}").matches("/foo/bar/baz"));
        assert!(!t("/foo/{*}").matches("/foo/"));
        assert!(t("/foo/{**}").matches("/foo/bar/baz"));
        assert!(t("/foo/{**}").matches("/foo/"));
        assert!(t("/foo/{**}/").matches("/foo/bar/"));
        assert!(t("/foo/{**}/").matches("/foo//"));
        // The proto's example says this matches; Envoy's regex does not, and we follow Envoy.
        assert!(!t("/foo/{**}/").matches("/foo/bar/baz.txt"));
        assert!(!t("/foo/{**}/").matches("/foo/bar"));
        assert!(t("/{*}/items/{*}").matches("/shop/items/42"));
        assert!(t("/api/{**}/status").matches("/api/v1/a/b/status"));
        assert!(!t("/api/{*}").matches("/api/a?b"));
    }

    #[test]
    fn invalid_templates_as_istio_refuses_them() {
        assert!(Template::parse("/foo/{*}.txt").is_err());
        assert!(Template::parse("/foo/{**}/{*}").is_err());
        assert!(Template::parse("/foo/{**}/bar").is_ok());
        assert!(Template::parse("/foo/*/{*}").is_err());
        assert!(Template::parse("/foo/{bar}").is_err());
    }
}
