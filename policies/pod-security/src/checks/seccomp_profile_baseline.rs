//! Baseline `seccompProfile_baseline` (PSA `policy/check_seccompProfile_baseline.go`): a seccomp
//! profile, when set, must be the runtime default or a profile on the node. Before v1.19 it is
//! read from the alpha annotations, from v1.19 from the `seccompProfile` fields.

use std::collections::BTreeSet;

use super::Violation;
use super::phrase::{containers, go_quote, join_quote, pluralize};
use crate::model::{Pod, Profile};

/// The pod-level seccomp annotation (`SeccompPodAnnotationKey`).
const POD_ANNOTATION: &str = "seccomp.security.alpha.kubernetes.io/pod";
/// Prefix of the per-container seccomp annotation (`SeccompContainerAnnotationKeyPrefix`).
const CONTAINER_ANNOTATION_PREFIX: &str = "container.seccomp.security.alpha.kubernetes.io/";

/// An annotation value is allowed when `runtime/default`, `docker/default` or `localhost/*`.
fn allowed_annotation(value: &str) -> bool {
    value == "runtime/default" || value == "docker/default" || value.starts_with("localhost/")
}

/// A `seccompProfile.type` is allowed when `RuntimeDefault` or `Localhost` (PSA `validSeccomp`).
pub(super) fn allowed_type(kind: &str) -> bool {
    matches!(kind, "RuntimeDefault" | "Localhost")
}

/// v1.0 to v1.18: `metadata.annotations['seccomp.security.alpha.kubernetes.io/pod']` and
/// `['container.seccomp.security.alpha.kubernetes.io/<container>']`, when present, must be
/// allowed values.
pub(super) fn annotations_v1_0(pod: &Pod) -> Option<Violation> {
    let annotations = &pod.metadata.annotations;
    let mut forbidden = BTreeSet::new();
    let mut record = |key: &str| {
        if let Some(value) = annotations.get(key)
            && !allowed_annotation(value)
        {
            forbidden.insert(format!("{key}={}", go_quote(value)));
        }
    };
    record(POD_ANNOTATION);
    for container in pod.spec.all_containers() {
        record(&format!("{CONTAINER_ANNOTATION_PREFIX}{}", container.name));
    }
    (!forbidden.is_empty()).then(|| {
        let forbidden: Vec<String> = forbidden.into_iter().collect();
        Violation::new(
            "seccompProfile",
            format!(
                "forbidden {} {}",
                pluralize("annotation", "annotations", forbidden.len()),
                forbidden.join(", ")
            ),
        )
    })
}

/// The `seccompProfile.type` of a profile that is set to a forbidden value.
fn bad_type<'p>(profile: Option<&'p Profile<'_>>) -> Option<&'p str> {
    profile
        .map(|p| p.kind.as_str())
        .filter(|kind| !allowed_type(kind))
}

/// v1.19+: `securityContext.seccompProfile.type` of the pod and of every container must be
/// `RuntimeDefault`, `Localhost` or unset.
pub(super) fn fields_v1_19(pod: &Pod) -> Option<Violation> {
    let mut setters = Vec::new();
    let mut values = BTreeSet::new();
    let pod_profile = pod
        .spec
        .security_context
        .as_ref()
        .and_then(|s| s.seccomp_profile.as_ref());
    if let Some(kind) = bad_type(pod_profile) {
        setters.push("pod".to_owned());
        values.insert(kind);
    }
    let mut bad = Vec::new();
    for container in pod.spec.all_containers() {
        let profile = container
            .security_context
            .as_ref()
            .and_then(|s| s.seccomp_profile.as_ref());
        if let Some(kind) = bad_type(profile) {
            bad.push(container.name.as_str());
            values.insert(kind);
        }
    }
    if !bad.is_empty() {
        setters.push(containers(&bad));
    }
    (!setters.is_empty()).then(|| {
        Violation::new(
            "seccompProfile",
            format!(
                "{} must not set securityContext.seccompProfile.type to {}",
                setters.join(" and "),
                join_quote(&values)
            ),
        )
    })
}
