//! Conversions between the generated WIT types and the SDK's wire types (guest side).

use super::bindings::exports::palisade::admission::policy as abi;
use super::bindings::palisade::admission::supply_chain as sc;
use super::bindings::palisade::admission::types as t;
use crate::host::images;
use crate::wire::{
    AdmissionRequest, GroupVersionKind, GroupVersionResource, Operation, PolicyMetadata, RawJson,
    Rule, UserInfo, Verdict,
};
use crate::{HostError, PolicyError, SettingsError};

pub(super) fn request_from_abi(r: abi::AdmissionRequest) -> AdmissionRequest {
    AdmissionRequest {
        uid: r.uid,
        kind: gvk(r.kind),
        resource: gvr(r.resource),
        sub_resource: r.sub_resource,
        request_kind: r.request_kind.map(gvk),
        request_resource: r.request_resource.map(gvr),
        request_sub_resource: r.request_sub_resource,
        name: r.name,
        namespace: r.namespace,
        operation: operation_from_abi(r.operation),
        user_info: UserInfo {
            username: r.user_info.username,
            uid: r.user_info.uid,
            groups: r.user_info.groups,
            extra: r.user_info.extra.into_iter().collect(),
        },
        object: raw(r.object),
        old_object: raw(r.old_object),
        dry_run: r.dry_run,
        options: raw(r.options),
    }
}

/// The host checked this JSON and built its tape when it read the review.
fn raw(json: Option<t::Json>) -> Option<RawJson> {
    json.map(|json| RawJson::trusted(json.text, json.tape))
}

fn gvk(k: t::GroupVersionKind) -> GroupVersionKind {
    GroupVersionKind {
        group: k.group,
        version: k.version,
        kind: k.kind,
    }
}

fn gvr(r: t::GroupVersionResource) -> GroupVersionResource {
    GroupVersionResource {
        group: r.group,
        version: r.version,
        resource: r.resource,
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

fn operation_to_abi(op: Operation) -> t::Operation {
    match op {
        Operation::Create => t::Operation::Create,
        Operation::Update => t::Operation::Update,
        Operation::Delete => t::Operation::Delete,
        Operation::Connect => t::Operation::Connect,
    }
}

pub(super) fn verdict_to_abi(v: Verdict) -> Result<abi::Verdict, abi::PolicyError> {
    let patch = v
        .patch
        .map(|p| serde_json::to_string(&p))
        .transpose()
        .map_err(|e| abi::PolicyError::Internal(format!("serializing the patch: {e}")))?;
    Ok(abi::Verdict {
        allowed: v.allowed,
        reason: v.reason,
        message: v.message,
        code: v.code,
        warnings: v.warnings,
        audit_annotations: v.audit_annotations.into_iter().collect(),
        patch,
    })
}

impl From<PolicyMetadata> for abi::PolicyMetadata {
    fn from(m: PolicyMetadata) -> Self {
        Self {
            name: m.name,
            version: m.version,
            description: m.description,
            rules: m.rules.into_iter().map(rule_to_abi).collect(),
            mutating: m.mutating,
        }
    }
}

fn rule_to_abi(r: Rule) -> t::Rule {
    t::Rule {
        api_groups: r.api_groups,
        api_versions: r.api_versions,
        resources: r.resources,
        operations: r.operations.into_iter().map(operation_to_abi).collect(),
    }
}

impl From<SettingsError> for abi::SettingsError {
    fn from(e: SettingsError) -> Self {
        Self {
            path: e.path,
            message: e.message,
        }
    }
}

pub(super) fn host_error(e: t::CapabilityError) -> HostError {
    match e {
        t::CapabilityError::Denied(m) => HostError::Denied(m),
        t::CapabilityError::Invalid(m) => HostError::Invalid(m),
        t::CapabilityError::Unavailable(m) => HostError::Unavailable(m),
    }
}

impl From<PolicyError> for abi::PolicyError {
    fn from(e: PolicyError) -> Self {
        match e {
            PolicyError::InvalidRequest(m) => Self::InvalidRequest(m),
            PolicyError::Internal(m) => Self::Internal(m),
        }
    }
}

fn pattern(pattern: &images::Pattern) -> sc::Pattern {
    match pattern {
        images::Pattern::Exact(value) => sc::Pattern::Exact(value.clone()),
        images::Pattern::Prefix(prefix) => sc::Pattern::Prefix(prefix.clone()),
        images::Pattern::Regexp(regexp) => sc::Pattern::Regexp(regexp.clone()),
    }
}

/// A signer for the `supply-chain` interface.
pub(super) fn signer(signer: &images::Signer) -> sc::Signer {
    match signer {
        images::Signer::Key(pem) => sc::Signer::Key(pem.clone()),
        images::Signer::Keyless(identity) => sc::Signer::Keyless(sc::Identity {
            subject: pattern(&identity.subject),
            issuer: pattern(&identity.issuer),
            claims: identity
                .claims
                .iter()
                .map(|(name, p)| (name.clone(), pattern(p)))
                .collect(),
        }),
    }
}

pub(super) fn signed_by(by: sc::SignedBy) -> images::SignedBy {
    images::SignedBy {
        source: by.source,
        subject: by.subject,
        issuer: by.issuer,
    }
}

/// The interface's answer as the SDK's.
pub(super) fn verified<T, U>(
    answer: Result<Vec<T>, sc::Rejection>,
    convert: impl FnMut(T) -> U,
) -> images::Verified<U> {
    match answer {
        Ok(found) => Ok(found.into_iter().map(convert).collect()),
        Err(sc::Rejection::Missing(why)) => Err(images::Rejection::Missing(why)),
        Err(sc::Rejection::Unverified(why)) => Err(images::Rejection::Unverified(why)),
    }
}
