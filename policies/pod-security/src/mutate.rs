//! The `mutate` setting: the restricted defaults a pod template lacks, added to the object as a
//! JSONPatch (RFC 6902 `add` operations), so the checks run on what will be stored. Explicit
//! values are never changed: a container that asks for privilege escalation keeps asking, and
//! is still denied.

use palisade_sdk::wire::PatchOperation;
use serde_json::{Map, Value, json};

/// Adds the missing defaults to the pod spec at `spec_pointer` (a JSON Pointer into `object`),
/// changing `object` in place and returning the operations that do the same to the original.
/// Windows pods are left alone: the restricted checks these defaults satisfy do not apply to
/// them (PSA, v1.25+).
pub(crate) fn add_defaults(object: &mut Value, spec_pointer: &str) -> Vec<PatchOperation> {
    let mut patch = Vec::new();
    let Some(spec) = object
        .pointer_mut(spec_pointer)
        .and_then(Value::as_object_mut)
    else {
        return patch;
    };
    let windows = spec
        .get("os")
        .and_then(|os| os.get("name"))
        .and_then(Value::as_str)
        == Some("windows");
    if windows {
        return patch;
    }
    pod_defaults(spec, spec_pointer, &mut patch);
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        let Some(Value::Array(containers)) = spec.get_mut(list) else {
            continue;
        };
        for (index, container) in containers.iter_mut().enumerate() {
            if let Some(container) = container.as_object_mut() {
                container_defaults(
                    container,
                    &format!("{spec_pointer}/{list}/{index}"),
                    &mut patch,
                );
            }
        }
    }
    patch
}

/// `spec.securityContext`: `runAsNonRoot: true` and `seccompProfile.type: RuntimeDefault`.
fn pod_defaults(spec: &mut Map<String, Value>, base: &str, patch: &mut Vec<PatchOperation>) {
    let path = format!("{base}/securityContext");
    match spec.get_mut("securityContext") {
        Some(Value::Object(context)) => {
            if is_unset(context, "runAsNonRoot") {
                add(context, "runAsNonRoot", json!(true), &path, patch);
            }
            if is_unset(context, "seccompProfile") {
                add(
                    context,
                    "seccompProfile",
                    json!({"type": "RuntimeDefault"}),
                    &path,
                    patch,
                );
            }
        }
        _ => add(
            spec,
            "securityContext",
            json!({"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}}),
            base,
            patch,
        ),
    }
}

/// A container's `securityContext`: `allowPrivilegeEscalation: false` and `ALL` in
/// `capabilities.drop`.
fn container_defaults(
    container: &mut Map<String, Value>,
    base: &str,
    patch: &mut Vec<PatchOperation>,
) {
    let path = format!("{base}/securityContext");
    let Some(Value::Object(context)) = container.get_mut("securityContext") else {
        add(
            container,
            "securityContext",
            json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}),
            base,
            patch,
        );
        return;
    };
    // The API server rejects allowPrivilegeEscalation=false beside privileged=true; such a
    // container is denied anyway, so it is left as it is.
    let privileged = context.get("privileged").and_then(Value::as_bool) == Some(true);
    if is_unset(context, "allowPrivilegeEscalation") && !privileged {
        add(
            context,
            "allowPrivilegeEscalation",
            json!(false),
            &path,
            patch,
        );
    }
    let capabilities_path = format!("{path}/capabilities");
    match context.get_mut("capabilities") {
        Some(Value::Object(capabilities)) => match capabilities.get_mut("drop") {
            Some(Value::Array(drop)) => {
                if !drop.iter().any(|c| c.as_str() == Some("ALL")) {
                    drop.push(json!("ALL"));
                    patch.push(PatchOperation::Add {
                        path: format!("{capabilities_path}/drop/-"),
                        value: json!("ALL"),
                    });
                }
            }
            _ => add(
                capabilities,
                "drop",
                json!(["ALL"]),
                &capabilities_path,
                patch,
            ),
        },
        _ => add(
            context,
            "capabilities",
            json!({"drop": ["ALL"]}),
            &path,
            patch,
        ),
    }
}

fn is_unset(map: &Map<String, Value>, key: &str) -> bool {
    map.get(key).is_none_or(Value::is_null)
}

/// Sets `key` in `map` and records the same as an `add` at `<parent>/<key>` (RFC 6902 4.1:
/// `add` on an existing member replaces it, which covers explicit nulls).
fn add(
    map: &mut Map<String, Value>,
    key: &str,
    value: Value,
    parent: &str,
    patch: &mut Vec<PatchOperation>,
) {
    map.insert(key.to_owned(), value.clone());
    patch.push(PatchOperation::Add {
        path: format!("{parent}/{key}"),
        value,
    });
}

#[cfg(test)]
#[expect(
    clippy::indexing_slicing,
    reason = "tests index JSON they have just built"
)]
mod tests {
    use super::*;

    fn paths(patch: &[PatchOperation]) -> Vec<String> {
        patch
            .iter()
            .map(|op| match op {
                PatchOperation::Add { path, .. } => path.clone(),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn bare_pod_gets_every_default() {
        let mut pod =
            json!({"spec": {"containers": [{"name": "a"}], "initContainers": [{"name": "i"}]}});
        let patch = add_defaults(&mut pod, "/spec");
        assert_eq!(
            paths(&patch),
            [
                "/spec/securityContext",
                "/spec/initContainers/0/securityContext",
                "/spec/containers/0/securityContext"
            ]
        );
        assert_eq!(
            pod["spec"]["containers"][0]["securityContext"]["capabilities"]["drop"],
            json!(["ALL"])
        );
    }

    #[test]
    fn partial_settings_are_completed_not_replaced() {
        let mut pod = json!({"spec": {
            "securityContext": {"runAsUser": 1000, "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}},
            "containers": [{"name": "a", "securityContext": {"capabilities": {"drop": ["NET_RAW"], "add": ["NET_BIND_SERVICE"]}}}]
        }});
        let patch = add_defaults(&mut pod, "/spec");
        assert_eq!(
            paths(&patch),
            [
                "/spec/securityContext/runAsNonRoot",
                "/spec/containers/0/securityContext/allowPrivilegeEscalation",
                "/spec/containers/0/securityContext/capabilities/drop/-",
            ]
        );
        assert_eq!(
            pod["spec"]["securityContext"]["seccompProfile"]["type"],
            "Localhost"
        );
        assert_eq!(
            pod["spec"]["containers"][0]["securityContext"]["capabilities"]["drop"],
            json!(["NET_RAW", "ALL"])
        );
    }

    #[test]
    fn explicit_values_are_kept() {
        let mut pod = json!({"spec": {
            "securityContext": {"runAsNonRoot": false, "seccompProfile": {"type": "Unconfined"}},
            "containers": [{"name": "a", "securityContext": {"allowPrivilegeEscalation": true, "capabilities": {"drop": ["ALL"]}}}]
        }});
        assert!(add_defaults(&mut pod, "/spec").is_empty());
    }

    #[test]
    fn windows_pods_and_missing_specs_are_left_alone() {
        let mut windows =
            json!({"spec": {"os": {"name": "windows"}, "containers": [{"name": "a"}]}});
        assert!(add_defaults(&mut windows, "/spec").is_empty());
        let mut empty = json!({"kind": "ReplicationController", "spec": {}});
        assert!(add_defaults(&mut empty, "/spec/template/spec").is_empty());
    }
}
