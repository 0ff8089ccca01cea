//! The host operations a policy may call beyond time, state, buckets and data: registry
//! lookups, certificate checks, DNS, Kubernetes reads. They are named as Kubewarden names its
//! host capabilities (`<namespace>/<operation>`, policy-evaluator `host_capabilities.rs`), and
//! granted with the same patterns: `*` for all, `oci/*` or `oci/v1/*` for a prefix, an exact
//! name for one; an empty list grants none. Patterns are checked against the tree of known
//! operations, so a typo is a configuration error, not a silent refusal.

use std::collections::BTreeSet;

/// Every operation, by namespace: `(namespace, [operation])`.
pub const OPERATIONS: [(&str, &[&str]); 4] = [
    (
        "oci",
        &[
            "v1/verify",
            "v2/verify",
            "v1/manifest_digest",
            "v1/oci_manifest",
            "v1/oci_manifest_config",
        ],
    ),
    ("net", &["v1/dns_lookup_host"]),
    ("crypto", &["v1/is_certificate_trusted"]),
    (
        "kubernetes",
        &[
            "list_resources_by_namespace",
            "list_resources_all",
            "get_resource",
            "can_i",
        ],
    ),
];

/// A checked set of grant patterns; deserializes from a list of patterns, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "Vec<String>")]
pub struct OperationGrants {
    patterns: BTreeSet<String>,
}

impl OperationGrants {
    /// Every operation (`*`).
    #[must_use]
    pub fn all() -> Self {
        Self {
            patterns: BTreeSet::from(["*".to_owned()]),
        }
    }

    /// Checks `patterns` against the tree of operations.
    ///
    /// # Errors
    /// A message naming the first pattern that names nothing: an unknown segment, a wildcard
    /// that is not a whole last segment, or a pattern that stops inside the tree
    /// (`oci/v1` instead of `oci/v1/*`).
    pub fn new<I, S>(patterns: I) -> Result<Self, String>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let patterns: BTreeSet<String> = patterns.into_iter().map(Into::into).collect();
        for pattern in &patterns {
            check(pattern)?;
        }
        Ok(Self { patterns })
    }

    /// Whether `namespace/operation` is granted.
    #[must_use]
    pub fn allows(&self, namespace: &str, operation: &str) -> bool {
        let name = format!("{namespace}/{operation}");
        self.patterns.iter().any(|p| {
            p == "*"
                || *p == name
                || p.strip_suffix('*')
                    .is_some_and(|prefix| prefix.ends_with('/') && name.starts_with(prefix))
        })
    }

    /// The patterns, sorted.
    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.patterns.iter().map(String::as_str)
    }

    /// Whether nothing is granted.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

impl TryFrom<Vec<String>> for OperationGrants {
    type Error = String;

    fn try_from(patterns: Vec<String>) -> Result<Self, String> {
        Self::new(patterns)
    }
}

fn check(pattern: &str) -> Result<(), String> {
    if pattern == "*" {
        return Ok(());
    }
    let names = || {
        OPERATIONS
            .iter()
            .flat_map(|(ns, ops)| ops.iter().map(move |op| format!("{ns}/{op}")))
    };
    if let Some(prefix) = pattern.strip_suffix('*') {
        if !prefix.ends_with('/') || prefix.contains('*') {
            return Err(format!(
                "host capability pattern {pattern:?}: a wildcard must be a whole last segment (\"oci/*\")"
            ));
        }
        if names().any(|n| n.starts_with(prefix)) {
            return Ok(());
        }
        return Err(format!(
            "host capability pattern {pattern:?} matches no operation (known: {})",
            names().collect::<Vec<_>>().join(", ")
        ));
    }
    if names().any(|n| n == pattern) {
        return Ok(());
    }
    if names().any(|n| n.starts_with(&format!("{pattern}/"))) {
        return Err(format!(
            "host capability pattern {pattern:?} names a group of operations: write {pattern:?}/* for all of them"
        ));
    }
    Err(format!(
        "host capability pattern {pattern:?} names no operation (known: {})",
        names().collect::<Vec<_>>().join(", ")
    ))
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn patterns_grant_exact_names_prefixes_and_everything() {
        let grants = OperationGrants::new(["oci/v1/*", "kubernetes/get_resource"]).unwrap();
        assert!(grants.allows("oci", "v1/manifest_digest"));
        assert!(!grants.allows("oci", "v2/verify"));
        assert!(grants.allows("kubernetes", "get_resource"));
        assert!(!grants.allows("kubernetes", "can_i"));
        assert!(OperationGrants::all().allows("net", "v1/dns_lookup_host"));
        assert!(!OperationGrants::default().allows("net", "v1/dns_lookup_host"));
    }

    #[test]
    fn patterns_that_name_nothing_are_refused() {
        for (pattern, expected) in [
            ("oci/v3/*", "matches no operation"),
            ("oci/v1", "names a group"),
            ("oci*", "whole last segment"),
            ("kubernetes/list", "names no operation"),
            ("*/verify", "names no operation"),
        ] {
            let error = OperationGrants::new([pattern]).unwrap_err();
            assert!(error.contains(expected), "{pattern}: {error}");
        }
    }
}
