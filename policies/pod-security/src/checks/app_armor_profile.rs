//! Baseline `appArmorProfile` (PSA `policy/check_appArmorProfile.go`): AppArmor may not be
//! disabled or overridden with anything but the runtime default or a profile on the node.

use std::collections::BTreeSet;

use super::Violation;
use super::phrase::{containers, go_quote, join_quote, pluralize};
use crate::model::{Pod, Profile};

/// Annotation key prefix of the deprecated per-container AppArmor annotation
/// (`DeprecatedAppArmorBetaContainerAnnotationKeyPrefix`).
const ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

/// An annotation value is allowed when empty, `runtime/default` or `localhost/<profile>`.
fn allowed_annotation(value: &str) -> bool {
    value.is_empty() || value == "runtime/default" || value.starts_with("localhost/")
}

/// A bad `appArmorProfile.type`: anything but `RuntimeDefault` and `Localhost`.
fn bad_type<'p>(profile: Option<&'p Profile<'_>>) -> Option<&'p str> {
    profile
        .map(|p| p.kind.as_str())
        .filter(|kind| !matches!(*kind, "RuntimeDefault" | "Localhost"))
}

/// v1.0+ (the fields, added to Kubernetes in v1.30, are checked by this same revision):
/// `metadata.annotations['container.apparmor.security.beta.kubernetes.io/*']` must be empty,
/// `runtime/default` or `localhost/*`; `securityContext.appArmorProfile.type` of the pod and of
/// every container must be `RuntimeDefault`, `Localhost` or unset.
pub(super) fn v1_0(pod: &Pod) -> Option<Violation> {
    let mut setters = Vec::new();
    let mut values = BTreeSet::new();
    if let Some(kind) = bad_type(
        pod.spec
            .security_context
            .as_ref()
            .and_then(|s| s.app_armor_profile.as_ref()),
    ) {
        setters.push("pod".to_owned());
        values.insert(kind.to_owned());
    }
    let mut bad_containers = Vec::new();
    for container in pod.spec.all_containers() {
        let profile = container
            .security_context
            .as_ref()
            .and_then(|s| s.app_armor_profile.as_ref());
        if let Some(kind) = bad_type(profile) {
            bad_containers.push(container.name.as_str());
            values.insert(kind.to_owned());
        }
    }
    if !bad_containers.is_empty() {
        setters.push(containers(&bad_containers));
    }
    // PSA sorts the formatted `key="value"` strings, not the keys.
    let mut annotations: Vec<String> = pod
        .metadata
        .annotations
        .iter()
        .filter(|(key, value)| key.starts_with(ANNOTATION_PREFIX) && !allowed_annotation(value))
        .map(|(key, value)| format!("{key}={}", go_quote(value)))
        .collect();
    annotations.sort_unstable();
    let mut listed: Vec<String> = values.into_iter().collect();
    if !annotations.is_empty() {
        setters.push(pluralize("annotation", "annotations", annotations.len()).to_owned());
        listed.extend(annotations);
    }
    (!setters.is_empty()).then(|| {
        Violation::new(
            pluralize(
                "forbidden AppArmor profile",
                "forbidden AppArmor profiles",
                listed.len(),
            ),
            format!(
                "{} must not set AppArmor profile type to {}",
                setters.join(" and "),
                join_quote(&listed)
            ),
        )
    })
}
