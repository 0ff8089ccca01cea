//! PSA's exemptions (`exemptNamespace`, `exemptUser`, `exemptRuntimeClass` in
//! `admission/admission.go`): exact matches that allow a request without evaluating it.

use palisade_sdk::wire::{AdmissionRequest, Verdict};

use crate::model::PodSpec;
use crate::settings::Exemptions;

/// Audit annotation naming why a request was exempt: `namespace`, `user` or `runtimeClass`
/// (PSA's `pod-security.kubernetes.io/exempt`; unprefixed, as the API server adds the webhook's name).
pub const EXEMPT_ANNOTATION: &str = "exempt";

/// The exemption of the request's namespace or, failing that, of its user (PSA checks both
/// before reading the object). An empty namespace or username never matches.
pub(crate) fn by_request(request: &AdmissionRequest, exemptions: &Exemptions) -> Option<Verdict> {
    let namespace = request.namespace.as_deref().unwrap_or_default();
    if !namespace.is_empty() && exemptions.namespaces.iter().any(|n| n == namespace) {
        return Some(exempt("namespace", &format!("namespace {namespace:?}")));
    }
    let username = request.user_info.username.as_str();
    if !username.is_empty() && exemptions.usernames.iter().any(|u| u == username) {
        return Some(exempt("user", &format!("user {username:?}")));
    }
    None
}

/// The exemption of the pod's `spec.runtimeClassName` (PSA checks it after reading the object).
pub(crate) fn by_runtime_class(spec: &PodSpec, exemptions: &Exemptions) -> Option<Verdict> {
    let class = spec.runtime_class_name.as_deref().unwrap_or_default();
    (!class.is_empty() && exemptions.runtime_classes.iter().any(|c| c == class))
        .then(|| exempt("runtimeClass", &format!("runtime class {class:?}")))
}

fn exempt(kind: &str, subject: &str) -> Verdict {
    Verdict {
        reason: "exempt".to_owned(),
        message: format!("{subject} is exempt from pod security"),
        ..Verdict::allow()
    }
    .with_audit_annotation(EXEMPT_ANNOTATION, kind)
}
