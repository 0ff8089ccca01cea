//! Which admission requests Pod Security evaluates, by resource and subresource (PSA `Validate`,
//! `ValidatePod`, `ValidatePodController` and `ignoredPodSubresources` in `admission/admission.go`).

use palisade_sdk::wire::AdmissionRequest;

use crate::workload::Workload;

/// Pod subresources that cannot change the pod spec; every other pod subresource (for example
/// `ephemeralcontainers`) carries a Pod and is evaluated, so an unknown one fails safe.
const IGNORED_POD_SUBRESOURCES: [&str; 8] = [
    "exec",
    "attach",
    "binding",
    "eviction",
    "log",
    "portforward",
    "proxy",
    "status",
];

/// What a request is, as far as Pod Security is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A `core/v1` Pod (or one of its evaluated subresources).
    Pod,
    /// A workload whose pod template is evaluated.
    Workload(Workload),
    /// Not evaluated; the text says why.
    NotApplicable(String),
}

/// Classifies the request by its (possibly converted) `resource` and `subResource`.
pub(crate) fn classify(request: &AdmissionRequest) -> Target {
    let group = request.resource.group.as_str();
    let resource = request.resource.resource.as_str();
    let subresource = request.sub_resource.as_deref().unwrap_or_default();
    let qualified = if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{group}/{resource}")
    };
    if group.is_empty() && resource == "pods" {
        return if IGNORED_POD_SUBRESOURCES.contains(&subresource) {
            Target::NotApplicable(format!(
                "subresource {qualified}/{subresource} cannot change the pod spec and is not checked"
            ))
        } else {
            Target::Pod
        };
    }
    match Workload::from_resource(group, resource) {
        Some(_) if !subresource.is_empty() => Target::NotApplicable(format!(
            "subresource {qualified}/{subresource} of a workload is not checked"
        )),
        Some(workload) => Target::Workload(workload),
        None => Target::NotApplicable(format!(
            "resource {qualified} is neither a pod nor a workload with a pod template"
        )),
    }
}
