//! What a policy declares about itself: identity and the admission rules it applies to.

use serde::{Deserialize, Serialize};

use super::Operation;

/// A policy's self-description, read by hosts (webhook configuration, `palisade run`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyMetadata {
    /// The policy crate's name (`pod-security`).
    pub name: String,
    /// The policy crate's version.
    pub version: String,
    /// One-line description.
    pub description: String,
    /// The resources and operations the policy wants to see.
    pub rules: Vec<Rule>,
    /// Whether the policy may return a patch.
    pub mutating: bool,
}

/// One admission rule, as in a `ValidatingWebhookConfiguration`'s `rules`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// API groups (`""` is the core group, `*` any).
    pub api_groups: Vec<String>,
    /// API versions (`*` any).
    pub api_versions: Vec<String>,
    /// Resources, optionally with a subresource (`pods`, `pods/ephemeralcontainers`).
    pub resources: Vec<String>,
    /// Operations the rule matches.
    pub operations: Vec<Operation>,
}

impl Rule {
    /// A rule from string slices, for policies' static metadata.
    #[must_use]
    pub fn new(
        api_groups: &[&str],
        api_versions: &[&str],
        resources: &[&str],
        operations: &[Operation],
    ) -> Self {
        let owned = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect();
        Self {
            api_groups: owned(api_groups),
            api_versions: owned(api_versions),
            resources: owned(resources),
            operations: operations.to_vec(),
        }
    }
}
