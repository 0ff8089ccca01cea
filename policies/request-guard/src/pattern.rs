//! Path patterns in Istio's string-match forms (AuthorizationPolicy `paths`): exact, prefix
//! (`/admin/*`), suffix (`*.php`) and presence (`*`). No regex, no infix wildcard.

use serde::Deserialize;
use std::fmt;

use palisade_sdk::path::normalise;

/// One `denyPaths` entry, checked and parsed once, when the settings are read.
///
/// ```
/// use request_guard::PathPattern;
/// let prefix = PathPattern::try_from("/admin/*".to_owned()).unwrap();
/// assert!(prefix.matches("/admin/users"));
/// assert!(!prefix.matches("/admin"));
/// assert_eq!(prefix.to_string(), "/admin/*");
/// assert!(PathPattern::try_from("/a*b".to_owned()).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum PathPattern {
    /// The whole normalised path equals this (`/admin`).
    Exact(String),
    /// The normalised path starts with this (written `/admin/*`, stored `/admin/`).
    Prefix(String),
    /// The normalised path ends with this (written `*.php`, stored `.php`).
    Suffix(String),
    /// Any non-empty path (written `*`).
    Any,
}

impl PathPattern {
    /// Whether a normalised path matches (case-sensitively, as Istio matches paths).
    #[must_use]
    pub fn matches(&self, path: &str) -> bool {
        match self {
            Self::Exact(exact) => path == exact,
            Self::Prefix(prefix) => path.starts_with(prefix.as_str()),
            Self::Suffix(suffix) => path.ends_with(suffix.as_str()),
            Self::Any => !path.is_empty(),
        }
    }
}

/// Writes the pattern as it is configured.
impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(exact) => f.write_str(exact),
            Self::Prefix(prefix) => write!(f, "{prefix}*"),
            Self::Suffix(suffix) => write!(f, "*{suffix}"),
            Self::Any => f.write_str("*"),
        }
    }
}

/// A `denyPaths` entry that cannot match as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pattern:?} {problem}")]
pub struct PatternError {
    /// The entry as written.
    pub pattern: String,
    /// What is wrong with it.
    pub problem: String,
}

impl TryFrom<String> for PathPattern {
    type Error = PatternError;

    /// Accepts Istio's forms, and only patterns that a normalised path can match: no empty
    /// pattern, `*` only at one end, no query or fragment, exact and prefix patterns starting
    /// with `/`, and literal parts already in the normal form [`normalise`] gives.
    fn try_from(pattern: String) -> Result<Self, PatternError> {
        let fail = |problem: &str| PatternError {
            pattern: pattern.clone(),
            problem: problem.to_owned(),
        };
        if pattern.is_empty() {
            return Err(fail("is empty; write `*` to match every path"));
        }
        if pattern == "*" {
            return Ok(Self::Any);
        }
        if pattern.contains(['?', '#']) {
            return Err(fail(
                "contains `?` or `#`, but rules match the path without query and fragment",
            ));
        }
        let parsed = if let Some(suffix) = pattern.strip_prefix('*') {
            Self::Suffix(suffix.to_owned())
        } else if let Some(prefix) = pattern.strip_suffix('*') {
            Self::Prefix(prefix.to_owned())
        } else {
            Self::Exact(pattern.clone())
        };
        let literal = match &parsed {
            Self::Exact(literal) | Self::Prefix(literal) | Self::Suffix(literal) => literal,
            Self::Any => return Ok(parsed),
        };
        if literal.contains('*') {
            return Err(fail(
                "may have one `*`, at the start (suffix match) or the end (prefix match), \
                 not in the middle",
            ));
        }
        // A suffix is checked as the end of a path: `/x` followed by it.
        let (as_path, lead) = match &parsed {
            Self::Suffix(suffix) => (format!("/x{suffix}"), "/x"),
            _ if !literal.starts_with('/') => {
                return Err(fail("must start with `/` (or `*` for a suffix match)"));
            }
            _ => (literal.clone(), ""),
        };
        let normal = normalise(&as_path).into_iter().next().unwrap_or_default();
        if normal != as_path {
            let problem = match normal.strip_prefix(lead) {
                Some(normal) if !normal.is_empty() => format!(
                    "is not a normalised path and would never match; write {:?}",
                    parsed_like(&parsed, normal)
                ),
                _ => "is not a normalised path and would never match".to_owned(),
            };
            return Err(fail(&problem));
        }
        Ok(parsed)
    }
}

/// `parsed`'s form with another literal, for the suggestion in an error.
fn parsed_like(parsed: &PathPattern, literal: &str) -> String {
    match parsed {
        PathPattern::Exact(_) => literal.to_owned(),
        PathPattern::Prefix(_) => format!("{literal}*"),
        PathPattern::Suffix(_) => format!("*{literal}"),
        PathPattern::Any => "*".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests fail by panicking")]

    use super::*;

    fn parse(pattern: &str) -> Result<PathPattern, String> {
        PathPattern::try_from(pattern.to_owned()).map_err(|e| e.to_string())
    }

    #[test]
    fn parses_istio_forms() {
        assert_eq!(parse("/admin"), Ok(PathPattern::Exact("/admin".into())));
        assert_eq!(parse("/admin/*"), Ok(PathPattern::Prefix("/admin/".into())));
        assert_eq!(parse("*.php"), Ok(PathPattern::Suffix(".php".into())));
        assert_eq!(parse("*"), Ok(PathPattern::Any));
        assert_eq!(parse("/*"), Ok(PathPattern::Prefix("/".into())));
    }

    #[test]
    fn displays_as_written() {
        for written in ["/admin", "/admin/*", "*.php", "*"] {
            assert_eq!(parse(written).unwrap().to_string(), written);
        }
    }

    #[test]
    fn rejects_patterns_that_cannot_match() {
        for (pattern, problem) in [
            ("", "is empty"),
            ("/a*b", "not in the middle"),
            ("*a*", "not in the middle"),
            ("**", "not in the middle"),
            ("admin", "must start with `/`"),
            ("/admin?x=1", "without query"),
            ("/a/../admin", "write \"/admin\""),
            ("/admin//*", "write \"/admin/*\""),
            ("/%61dmin", "write \"/admin\""),
            ("*/../x", "never match"),
            ("*%2e", "write \"*.\""),
        ] {
            let err = parse(pattern).unwrap_err();
            assert!(err.contains(problem), "{pattern:?}: {err}");
        }
    }

    #[test]
    fn matches_normalised_paths() {
        let any = parse("*").unwrap();
        assert!(any.matches("/"));
        assert!(!any.matches(""));
        let suffix = parse("*.php").unwrap();
        assert!(suffix.matches("/index.php"));
        assert!(!suffix.matches("/index.PHP"));
    }
}
