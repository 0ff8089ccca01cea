//! Field masks, as Kubewarden's policy-evaluator applies them to the objects it lists and gets
//! for context-aware policies (`callback_handler/kubernetes/field_mask.rs`): keep only the
//! fields named by dot paths, drop everything else.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

/// The fields Kubewarden never prunes: it applies masks to kube-rs' `DynamicObject::data`,
/// which holds everything of an object except its type (`apiVersion`, `kind`) and `metadata`.
const KEPT: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// The masks as a tree of keys: a node without children keeps its whole subtree.
#[derive(Debug, Default)]
struct Node {
    children: BTreeMap<String, Node>,
}

impl Node {
    fn new(masks: &BTreeSet<String>) -> Self {
        let mut root = Self::default();
        for mask in masks {
            let mut node = &mut root;
            for key in mask.split('.') {
                node = node.children.entry(key.to_owned()).or_default();
            }
        }
        root
    }
}

/// `object` with only the fields `masks` names, as Kubewarden prunes the objects it gives
/// context-aware policies:
/// - a mask is a dot path (`spec.containers.image`); a path naming an object keeps its whole
///   subtree (`spec.containers` keeps every field of every container), a path through a
///   scalar or into a missing field keeps the scalar or adds nothing;
/// - arrays are traversed implicitly: the rest of the path applies to every element, and an
///   array of scalars is kept whole;
/// - a path and a longer path below it keep only the longer one (`spec` with `spec.replicas`
///   keeps `spec.replicas` alone), as Kubewarden's mask tree merges them;
/// - `apiVersion`, `kind` and `metadata` are always kept whole, whatever the masks: Kubewarden
///   prunes only the rest of a typed object (so `metadata.name` as a mask keeps all of
///   `metadata` and drops every other field);
/// - no masks at all keeps the whole object.
#[must_use]
pub fn prune(object: &Value, masks: &BTreeSet<String>) -> Value {
    if masks.is_empty() {
        return object.clone();
    }
    let root = Node::new(masks);
    match object {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .filter_map(|(key, value)| {
                    if KEPT.contains(&key.as_str()) {
                        return Some((key.clone(), value.clone()));
                    }
                    let node = root.children.get(key)?;
                    Some((key.clone(), prune_below(value, node)))
                })
                .collect::<Map<String, Value>>(),
        ),
        other => prune_below(other, &root),
    }
}

fn prune_below(value: &Value, node: &Node) -> Value {
    if node.children.is_empty() {
        return value.clone();
    }
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .filter_map(|(key, value)| {
                    let child = node.children.get(key)?;
                    Some((key.clone(), prune_below(value, child)))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|i| prune_below(i, node)).collect()),
        scalar => scalar.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn masks(paths: &[&str]) -> BTreeSet<String> {
        paths.iter().map(|p| (*p).to_owned()).collect()
    }

    fn pod() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
            "spec": {
                "nodeName": "node-1",
                "containers": [
                    {"name": "app", "image": "shop:1", "ports": [{"containerPort": 80, "protocol": "TCP"}]},
                    {"name": "sidecar", "image": "proxy:2", "args": ["-v", "--x"]},
                ],
            },
            "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.1"}]},
        })
    }

    #[test]
    fn no_masks_keep_everything() {
        assert_eq!(prune(&pod(), &BTreeSet::new()), pod());
    }

    #[test]
    fn paths_through_arrays_apply_to_every_element() {
        let pruned = prune(
            &pod(),
            &masks(&["spec.containers.image", "status.podIPs.ip"]),
        );
        assert_eq!(
            pruned,
            json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
                "spec": {"containers": [{"image": "shop:1"}, {"image": "proxy:2"}]},
                "status": {"podIPs": [{"ip": "10.0.0.1"}]},
            })
        );
    }

    #[test]
    fn a_path_naming_an_object_keeps_its_subtree() {
        let pruned = prune(&pod(), &masks(&["spec.containers", "status"]));
        assert_eq!(
            pruned["spec"],
            json!({"containers": pod()["spec"]["containers"]})
        );
        assert_eq!(pruned["status"], pod()["status"]);
        let deeper = prune(&pod(), &masks(&["spec.containers.ports"]));
        assert_eq!(
            deeper["spec"]["containers"],
            json!([{"ports": [{"containerPort": 80, "protocol": "TCP"}]}, {}])
        );
    }

    #[test]
    fn type_and_metadata_are_always_kept() {
        let pruned = prune(&pod(), &masks(&["metadata.name"]));
        assert_eq!(
            pruned,
            json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
            })
        );
    }

    #[test]
    fn scalars_and_arrays_of_scalars_are_kept_whole() {
        // A path going on below a scalar keeps the scalar.
        let pruned = prune(
            &pod(),
            &masks(&["spec.nodeName.first", "spec.containers.args.x"]),
        );
        assert_eq!(
            pruned["spec"],
            json!({"nodeName": "node-1", "containers": [{}, {"args": ["-v", "--x"]}]})
        );
    }

    #[test]
    fn missing_fields_add_nothing() {
        let pruned = prune(&pod(), &masks(&["spec.volumes.name", "nothing.here"]));
        assert_eq!(pruned.get("spec"), Some(&json!({})));
        assert_eq!(pruned.get("nothing"), None);
    }

    #[test]
    fn a_longer_path_narrows_a_shorter_one() {
        let pruned = prune(&pod(), &masks(&["spec", "spec.nodeName"]));
        assert_eq!(pruned["spec"], json!({"nodeName": "node-1"}));
    }

    #[test]
    fn values_that_are_not_objects_are_pruned_from_the_top() {
        let list = json!([{"a": 1, "b": 2}, {"a": 3}]);
        assert_eq!(prune(&list, &masks(&["a"])), json!([{"a": 1}, {"a": 3}]));
        assert_eq!(prune(&json!(5), &masks(&["a"])), json!(5));
    }
}
