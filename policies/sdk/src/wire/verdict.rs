//! A policy's decision on one request: allowed or not, why, and what to change.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A policy's decision. A denial is a verdict too; errors ("could not decide") are not.
///
/// ```
/// use palisade_sdk::wire::Verdict;
/// let v = Verdict::deny("privileged", r#"container "app" must not set securityContext.privileged=true"#)
///     .with_warning("image uses the latest tag");
/// assert!(!v.allowed);
/// assert_eq!(v.reason, "privileged");
/// assert_eq!(v.warnings.len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Verdict {
    /// Whether the request is admitted.
    pub allowed: bool,
    /// Short, stable, kebab-case reason (`privileged`, `not-applicable`, `allowed`).
    pub reason: String,
    /// Human-readable message naming the offending field and item.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// HTTP status code for a denial; hosts use 403 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    /// Warnings for the requesting client, also on allowed requests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Audit annotations (key without the webhook prefix).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub audit_annotations: BTreeMap<String, String>,
    /// JSONPatch (RFC 6902) to apply to the object, for mutating policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<Vec<PatchOperation>>,
}

impl Verdict {
    /// An allowed request with reason `allowed`.
    #[must_use]
    pub fn allow() -> Self {
        Self::new(true, "allowed", String::new())
    }

    /// An explicit allow for a request the policy does not apply to (reason `not-applicable`).
    #[must_use]
    pub fn not_applicable(message: impl Into<String>) -> Self {
        Self::new(true, "not-applicable", message.into())
    }

    /// A denial with a stable reason and a message naming the field and item.
    #[must_use]
    pub fn deny(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(false, reason, message.into())
    }

    fn new(allowed: bool, reason: impl Into<String>, message: String) -> Self {
        Self {
            allowed,
            reason: reason.into(),
            message,
            code: None,
            warnings: Vec::new(),
            audit_annotations: BTreeMap::new(),
            patch: None,
        }
    }

    /// Adds a warning for the client.
    #[must_use]
    pub fn with_warning(mut self, warning: impl Into<String>) -> Self {
        self.warnings.push(warning.into());
        self
    }

    /// Adds an audit annotation.
    #[must_use]
    pub fn with_audit_annotation(
        mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        self.audit_annotations.insert(key.into(), value.into());
        self
    }

    /// Sets the HTTP status code of a denial.
    #[must_use]
    pub fn with_code(mut self, code: u16) -> Self {
        self.code = Some(code);
        self
    }

    /// Attaches a JSONPatch; an empty patch is dropped.
    #[must_use]
    pub fn with_patch(mut self, patch: Vec<PatchOperation>) -> Self {
        self.patch = (!patch.is_empty()).then_some(patch);
        self
    }
}

/// One JSONPatch operation (RFC 6902, section 4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum PatchOperation {
    /// Adds `value` at `path` (RFC 6902 4.1).
    Add {
        /// JSON Pointer (RFC 6901) of the target location.
        path: String,
        /// The value to add.
        value: serde_json::Value,
    },
    /// Removes the value at `path` (RFC 6902 4.2).
    Remove {
        /// JSON Pointer of the value to remove.
        path: String,
    },
    /// Replaces the value at `path` (RFC 6902 4.3).
    Replace {
        /// JSON Pointer of the value to replace.
        path: String,
        /// The new value.
        value: serde_json::Value,
    },
    /// Moves the value at `from` to `path` (RFC 6902 4.4).
    Move {
        /// JSON Pointer of the source.
        from: String,
        /// JSON Pointer of the target.
        path: String,
    },
    /// Copies the value at `from` to `path` (RFC 6902 4.5).
    Copy {
        /// JSON Pointer of the source.
        from: String,
        /// JSON Pointer of the target.
        path: String,
    },
    /// Fails the patch unless the value at `path` equals `value` (RFC 6902 4.6).
    Test {
        /// JSON Pointer of the value to compare.
        path: String,
        /// The expected value.
        value: serde_json::Value,
    },
}
