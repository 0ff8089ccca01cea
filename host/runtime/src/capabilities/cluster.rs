//! Kubernetes resources for policies that read the cluster (Kubewarden's context-aware
//! policies: `kubernetes/list_resources_by_namespace`, `list_resources_all`, `get_resource`,
//! `can_i`). The host has no API server to ask: an embedder gives a [`Cluster`], which this
//! crate implements over a directory of manifests ([`ManifestDirectory`]): offline, in the CLI
//! and in the webhook alike. Without one, the operations are refused with a clear error.

mod directory;
mod fields;
mod labels;
mod masks;
mod rbac;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

pub use directory::{ManifestDirectory, ManifestError};
pub use masks::prune;

/// Where Kubernetes objects come from.
pub trait Cluster: Send + Sync + std::fmt::Debug {
    /// The objects of `query.api_version`/`query.kind` matching it, sorted by namespace then
    /// name.
    ///
    /// # Errors
    /// [`ClusterError::Invalid`] for a selector that does not parse.
    fn list(&self, query: &ListQuery<'_>) -> Result<Vec<serde_json::Value>, ClusterError>;

    /// The object `name` of `api_version`/`kind` in `namespace` (`None`: cluster-scoped), if
    /// there is one.
    ///
    /// # Errors
    /// [`ClusterError`] when the store cannot answer.
    fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<serde_json::Value>, ClusterError>;

    /// Whether `review`'s user may do what it asks, by the RBAC objects (Roles, ClusterRoles
    /// and their bindings) the cluster holds, as the API server's RBAC authorizer decides it.
    ///
    /// # Errors
    /// [`ClusterError`] when the store cannot answer.
    fn can_i(&self, review: &AccessReview) -> Result<AccessStatus, ClusterError>;
}

/// A list request.
#[derive(Debug, Clone, Copy)]
pub struct ListQuery<'a> {
    /// `v1`, `apps/v1`, ...
    pub api_version: &'a str,
    /// `Pod`, `Deployment`, ...
    pub kind: &'a str,
    /// Only objects of this namespace; every namespace (and cluster-scoped objects) if `None`.
    pub namespace: Option<&'a str>,
    /// A label selector (`app=web,tier in (a,b),!legacy`), as Kubernetes parses them.
    pub label_selector: Option<&'a str>,
    /// A field selector (`metadata.name=web,status.phase!=Failed`), as Kubernetes parses them.
    pub field_selector: Option<&'a str>,
}

/// A SubjectAccessReview's question: may `user` (in `groups`) do `verb` on the resource?
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessReview {
    /// The user name (`alice`, `system:serviceaccount:ns:name`).
    pub user: String,
    /// The user's groups.
    #[serde(default)]
    pub groups: BTreeSet<String>,
    /// The namespace of the resource; `None` or empty for cluster-scoped ones (and "all").
    #[serde(default)]
    pub namespace: Option<String>,
    /// `get`, `list`, `create`, ... or `*`.
    pub verb: String,
    /// The API group (`""` core); `None` is the core group.
    #[serde(default)]
    pub group: Option<String>,
    /// The resource (`pods`), or `*`.
    pub resource: String,
    /// The subresource (`log`), if any.
    #[serde(default)]
    pub subresource: Option<String>,
    /// The object's name, if the question is about one.
    #[serde(default)]
    pub name: Option<String>,
    /// The API version (ignored by RBAC).
    #[serde(default)]
    pub version: Option<String>,
}

/// A SubjectAccessReview's answer (`SubjectAccessReviewStatus`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessStatus {
    /// Whether the action is allowed.
    pub allowed: bool,
    /// Whether it is explicitly denied (RBAC never denies: always false here).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub denied: bool,
    /// Which binding and role allowed it, as the API server words it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Errors met while evaluating (objects that could not be read).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub evaluation_error: String,
}

/// Why a cluster gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// The question is malformed (a selector that does not parse).
    #[error("{0}")]
    Invalid(String),
    /// The store cannot answer.
    #[error("{0}")]
    Unavailable(String),
}
