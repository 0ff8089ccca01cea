//! Which pod UPDATEs PSA re-evaluates (`isSignificantPodUpdate` in `admission/admission.go`):
//! only a change of container image or of the number of containers, or a new or changed
//! ephemeral container. Other pod fields the checks read cannot change after creation.

use crate::model::{Container, PodSpec};

/// Whether updating `old` to `new` must be evaluated.
pub(crate) fn is_significant(new: &PodSpec, old: &PodSpec) -> bool {
    if new.containers.len() != old.containers.len()
        || new.init_containers.len() != old.init_containers.len()
    {
        return true;
    }
    let image_changed = |pairs: (&Container, &Container)| pairs.0.image != pairs.1.image;
    if new
        .containers
        .iter()
        .zip(&old.containers)
        .any(image_changed)
        || new
            .init_containers
            .iter()
            .zip(&old.init_containers)
            .any(image_changed)
    {
        return true;
    }
    // Ephemeral containers are matched by name: a new one, or a new image, is significant.
    new.ephemeral_containers.iter().any(|c| {
        old.ephemeral_containers
            .iter()
            .find(|o| o.name == c.name)
            .is_none_or(|o| o.image != c.image)
    })
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn spec(json: &str) -> PodSpec<'_> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn label_or_security_changes_alone_are_not_significant() {
        let old = spec(r#"{"containers": [{"name": "a", "image": "x"}]}"#);
        let new = spec(
            r#"{"containers": [{"name": "a", "image": "x", "securityContext": {"privileged": true}}]}"#,
        );
        assert!(!is_significant(&new, &old));
    }

    #[test]
    fn image_and_container_count_changes_are_significant() {
        let old = spec(
            r#"{"initContainers": [{"name": "i", "image": "x"}], "containers": [{"name": "a", "image": "x"}]}"#,
        );
        let new = spec(
            r#"{"initContainers": [{"name": "i", "image": "y"}], "containers": [{"name": "a", "image": "x"}]}"#,
        );
        assert!(is_significant(&new, &old));
        let new = spec(r#"{"initContainers": [{"name": "i", "image": "x"}], "containers": []}"#);
        assert!(is_significant(&new, &old));
    }

    #[test]
    fn new_or_changed_ephemeral_containers_are_significant() {
        let old = spec(r#"{"ephemeralContainers": [{"name": "d", "image": "x"}]}"#);
        let same = spec(r#"{"ephemeralContainers": [{"name": "d", "image": "x"}]}"#);
        assert!(!is_significant(&same, &old));
        let added = spec(
            r#"{"ephemeralContainers": [{"name": "d", "image": "x"}, {"name": "e", "image": "x"}]}"#,
        );
        assert!(is_significant(&added, &old));
        let changed = spec(r#"{"ephemeralContainers": [{"name": "d", "image": "y"}]}"#);
        assert!(is_significant(&changed, &old));
    }
}
