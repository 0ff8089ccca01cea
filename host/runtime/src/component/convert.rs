//! Conversions between the SDK's wire types and the generated types of the newest world
//! (host side); older worlds convert to and from these.

use palisade_sdk::wire::{
    AdmissionRequest, GroupVersionKind, GroupVersionResource, Operation, PatchOperation,
    PolicyMetadata, RawJson, Rule, Verdict,
};
use palisade_sdk::{PolicyError, SettingsError};

use super::bindings::exports::palisade::admission::policy as abi;
use super::bindings::palisade::admission::types as t;
use crate::EvalError;

/// The string lists of a request, borrowed as the generated types want them (`&[&str]`).
pub(super) struct Lists<'a> {
    groups: Vec<&'a str>,
    extra: Vec<(&'a str, Vec<&'a str>)>,
}

impl<'a> Lists<'a> {
    pub(super) fn new(r: &'a AdmissionRequest) -> Self {
        Self {
            groups: r.user_info.groups.iter().map(String::as_str).collect(),
            extra: r
                .user_info
                .extra
                .iter()
                .map(|(k, v)| (k.as_str(), v.iter().map(String::as_str).collect()))
                .collect(),
        }
    }

    pub(super) fn extra(&self) -> Vec<(&'a str, &[&'a str])> {
        self.extra.iter().map(|(k, v)| (*k, v.as_slice())).collect()
    }
}

/// The request as the guest receives it, borrowing every string from the host's parse.
pub(super) fn request_to_abi<'a>(
    r: &'a AdmissionRequest,
    lists: &'a Lists<'a>,
    extra: &'a [(&'a str, &'a [&'a str])],
) -> abi::AdmissionRequest<'a> {
    abi::AdmissionRequest {
        uid: &r.uid,
        kind: gvk(&r.kind),
        resource: gvr(&r.resource),
        sub_resource: r.sub_resource.as_deref(),
        request_kind: r.request_kind.as_ref().map(gvk),
        request_resource: r.request_resource.as_ref().map(gvr),
        request_sub_resource: r.request_sub_resource.as_deref(),
        name: r.name.as_deref(),
        namespace: r.namespace.as_deref(),
        operation: operation_to_abi(r.operation),
        user_info: t::UserInfo {
            username: &r.user_info.username,
            uid: &r.user_info.uid,
            groups: &lists.groups,
            extra,
        },
        object: r.object.as_ref().map(json),
        old_object: r.old_object.as_ref().map(json),
        dry_run: r.dry_run,
        options: r.options.as_ref().map(json),
    }
}

/// JSON text with the tape the host built while reading the review.
fn json(raw: &RawJson) -> t::Json<'_> {
    t::Json {
        text: raw.get(),
        tape: raw.tape().words(),
    }
}

fn gvk(k: &GroupVersionKind) -> t::GroupVersionKind<'_> {
    t::GroupVersionKind {
        group: &k.group,
        version: &k.version,
        kind: &k.kind,
    }
}

fn gvr(r: &GroupVersionResource) -> t::GroupVersionResource<'_> {
    t::GroupVersionResource {
        group: &r.group,
        version: &r.version,
        resource: &r.resource,
    }
}

fn operation_to_abi(op: Operation) -> t::Operation {
    match op {
        Operation::Create => t::Operation::Create,
        Operation::Update => t::Operation::Update,
        Operation::Delete => t::Operation::Delete,
        Operation::Connect => t::Operation::Connect,
    }
}

fn operation_from_abi(op: t::Operation) -> Operation {
    match op {
        t::Operation::Create => Operation::Create,
        t::Operation::Update => Operation::Update,
        t::Operation::Delete => Operation::Delete,
        t::Operation::Connect => Operation::Connect,
    }
}

pub(super) fn verdict_from_abi(v: abi::Verdict) -> Result<Verdict, EvalError> {
    let patch = v
        .patch
        .map(|text| serde_json::from_str::<Vec<PatchOperation>>(&text))
        .transpose()
        .map_err(|e| EvalError::BadOutput(format!("the patch is not a JSONPatch: {e}")))?;
    if v.reason.is_empty() {
        return Err(EvalError::BadOutput(
            "the verdict has an empty reason".into(),
        ));
    }
    if let Some((key, _)) = v
        .audit_annotations
        .iter()
        .find(|(k, _)| !is_annotation_key(k))
    {
        return Err(EvalError::BadOutput(format!(
            "audit annotation key {key:?} is not a name of at most 63 characters \
             (letters, digits, '-', '_', '.'; no prefix: the API server adds the webhook's name)"
        )));
    }
    let mut verdict = if v.allowed {
        Verdict::allow()
    } else {
        Verdict::deny("", "")
    };
    verdict.reason = v.reason;
    verdict.message = v.message;
    verdict.code = v.code;
    verdict.warnings = v.warnings;
    verdict.audit_annotations = v.audit_annotations.into_iter().collect();
    verdict.patch = patch;
    Ok(verdict)
}

pub(super) fn metadata_from_abi(m: abi::PolicyMetadata) -> PolicyMetadata {
    PolicyMetadata {
        name: m.name,
        version: m.version,
        description: m.description,
        rules: m
            .rules
            .into_iter()
            .map(|r| Rule {
                api_groups: r.api_groups,
                api_versions: r.api_versions,
                resources: r.resources,
                operations: r.operations.into_iter().map(operation_from_abi).collect(),
            })
            .collect(),
        mutating: m.mutating,
    }
}

pub(super) fn settings_error(e: abi::SettingsError) -> SettingsError {
    SettingsError::new(e.path, e.message)
}

pub(super) fn policy_error(e: abi::PolicyError) -> PolicyError {
    match e {
        abi::PolicyError::InvalidRequest(m) => PolicyError::InvalidRequest(m),
        abi::PolicyError::Internal(m) => PolicyError::Internal(m),
    }
}

/// A Kubernetes qualified name without prefix: what the API server accepts after prefixing an
/// audit annotation key with `<webhook name>/` (apimachinery `IsQualifiedName`).
fn is_annotation_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    let edge = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
    !bytes.is_empty()
        && bytes.len() <= 63
        && edge(bytes.first())
        && edge(bytes.last())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::is_annotation_key;

    #[test]
    fn annotation_keys_are_unprefixed_qualified_names() {
        for good in [
            "exempt",
            "enforce-policy",
            "pod-security.monitor-denied",
            "a",
            "A_1",
        ] {
            assert!(is_annotation_key(good), "{good}");
        }
        for bad in [
            "",
            "pod-security.kubernetes.io/exempt",
            "-x",
            "x.",
            "a b",
            &"x".repeat(64),
        ] {
            assert!(!is_annotation_key(bad), "{bad}");
        }
    }
}
