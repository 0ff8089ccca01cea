//! AuthorizationPolicy as users write it (istio/api `security/v1beta1/authorization_policy.proto`,
//! field names as in YAML). Unknown fields are refused so that a typo, or a field this engine
//! does not implement (`serviceAccounts`, `trustDomains`), is an error and never silently
//! ignored.

use serde::Deserialize;
use serde_json::Value;

/// A whole object (`apiVersion`, `kind`, `metadata`, `spec`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Object {
    #[serde(default)]
    pub(crate) api_version: Option<String>,
    #[serde(default)]
    pub(crate) kind: Option<String>,
    #[serde(default)]
    pub(crate) metadata: Metadata,
    #[serde(default)]
    pub(crate) spec: Spec,
}

/// The parts of `metadata` that matter: the names in the rule ids, the dry-run annotation.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Metadata {
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) namespace: Option<String>,
    #[serde(default)]
    pub(crate) annotations: std::collections::BTreeMap<String, String>,
}

/// `spec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Spec {
    /// Workload selection (`selector`, `targetRef`, `targetRefs`): decided before the policy
    /// reaches a workload, so accepted and not used here.
    #[serde(default, rename = "selector")]
    _selector: Option<Value>,
    #[serde(default, rename = "targetRef")]
    _target_ref: Option<Value>,
    #[serde(default, rename = "targetRefs")]
    _target_refs: Option<Value>,
    #[serde(default)]
    pub(crate) action: Action,
    #[serde(default)]
    pub(crate) provider: Option<Provider>,
    #[serde(default)]
    pub(crate) rules: Option<Vec<Rule>>,
}

/// `action`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Action {
    /// Let the request through when a rule matches.
    #[default]
    Allow,
    /// Refuse the request when a rule matches.
    Deny,
    /// Record the match; never changes the decision.
    Audit,
    /// Ask an external authorizer (`provider`) when a rule matches.
    Custom,
}

/// `provider` (CUSTOM only).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Provider {
    pub(crate) name: String,
}

/// `rules[]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Rule {
    #[serde(default)]
    pub(crate) from: Option<Vec<From>>,
    #[serde(default)]
    pub(crate) to: Option<Vec<To>>,
    #[serde(default)]
    pub(crate) when: Option<Vec<Condition>>,
}

/// `from[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct From {
    pub(crate) source: Option<Source>,
}

/// `to[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct To {
    pub(crate) operation: Option<Operation>,
}

/// `from[].source`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Source {
    pub(crate) principals: Option<Vec<String>>,
    pub(crate) not_principals: Option<Vec<String>>,
    pub(crate) request_principals: Option<Vec<String>>,
    pub(crate) not_request_principals: Option<Vec<String>>,
    pub(crate) namespaces: Option<Vec<String>>,
    pub(crate) not_namespaces: Option<Vec<String>>,
    pub(crate) ip_blocks: Option<Vec<String>>,
    pub(crate) not_ip_blocks: Option<Vec<String>>,
    pub(crate) remote_ip_blocks: Option<Vec<String>>,
    pub(crate) not_remote_ip_blocks: Option<Vec<String>>,
}

/// `to[].operation`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Operation {
    pub(crate) hosts: Option<Vec<String>>,
    pub(crate) not_hosts: Option<Vec<String>>,
    pub(crate) ports: Option<Vec<String>>,
    pub(crate) not_ports: Option<Vec<String>>,
    pub(crate) methods: Option<Vec<String>>,
    pub(crate) not_methods: Option<Vec<String>>,
    pub(crate) paths: Option<Vec<String>>,
    pub(crate) not_paths: Option<Vec<String>>,
}

/// `when[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Condition {
    pub(crate) key: String,
    pub(crate) values: Option<Vec<String>>,
    pub(crate) not_values: Option<Vec<String>>,
}
