//! pod-security's mutate mode through the webhook: the patch from `/mutate` applies cleanly to
//! the object, and the patched object passes `/validate` where the original failed.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use palisade_runtime::capabilities::Capabilities;
use palisade_runtime::{Engine, EngineConfig};
use palisade_webhook::{AppState, Config, PolicySet, router};
use serde_json::{Value, json};
use tower::ServiceExt;

fn state() -> Arc<AppState> {
    let module = crate::support::module("pod_security.wasm");
    let text = format!(
        "policies:\n  - {{id: restricted, module: {0}, settings: {{level: restricted}}}}\n  - {{id: restricted-defaults, module: {0}, settings: {{level: restricted, mutate: true}}}}\n",
        module.display()
    );
    let config = Config::parse(&text).expect("config");
    config.validate().expect("valid");
    let engine = Engine::new(EngineConfig::default()).expect("engine");
    let capabilities = Arc::new(Capabilities::default());
    Arc::new(AppState::new(
        PolicySet::load(&config, &engine, &capabilities),
        capabilities,
        config.limits.clone(),
        true,
    ))
}

fn review(object: &Value, kind: &str, group: &str, resource: &str) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "7f0e7c4e-0b2d-4d35-9d0c-6a3f1f9e2b11",
            "kind": {"group": group, "version": "v1", "kind": kind},
            "resource": {"group": group, "version": "v1", "resource": resource},
            "namespace": "shop", "operation": "CREATE",
            "userInfo": {"username": "alice"},
            "object": object
        }
    })
}

async fn post(state: &Arc<AppState>, path: &str, body: &Value) -> Value {
    let request = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("request");
    let response = router(Arc::clone(state))
        .oneshot(request)
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    serde_json::from_slice::<Value>(&bytes).expect("json")["response"].clone()
}

async fn mutate_then_validate(object: Value, kind: &str, group: &str, resource: &str) {
    let state = state();
    let before = post(
        &state,
        "/validate/restricted",
        &review(&object, kind, group, resource),
    )
    .await;
    assert_eq!(
        before["allowed"], false,
        "the original must fail restricted: {before}"
    );

    let mutated = post(
        &state,
        "/mutate/restricted-defaults",
        &review(&object, kind, group, resource),
    )
    .await;
    assert_eq!(mutated["allowed"], true, "{mutated}");
    assert_eq!(mutated["patchType"], "JSONPatch");
    let patch = base64::engine::general_purpose::STANDARD
        .decode(mutated["patch"].as_str().expect("patch"))
        .expect("base64");
    let patch: json_patch::Patch = serde_json::from_slice(&patch).expect("a JSONPatch");
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch).expect("the patch applies cleanly");

    let after = post(
        &state,
        "/validate/restricted",
        &review(&patched, kind, group, resource),
    )
    .await;
    assert_eq!(
        after["allowed"], true,
        "the patched object must pass restricted: {after}"
    );
}

#[tokio::test]
async fn patched_pod_passes_restricted() {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "securityContext": {"runAsUser": 1000},
            "initContainers": [{"name": "setup", "image": "registry.example.com/setup:1"}],
            "containers": [
                {"name": "web", "image": "registry.example.com/web:1", "securityContext": {"capabilities": {"drop": ["NET_RAW"]}}},
                {"name": "sidecar", "image": "registry.example.com/sidecar:1", "securityContext": {"readOnlyRootFilesystem": true}}
            ]
        }
    });
    mutate_then_validate(pod, "Pod", "", "pods").await;
}

#[tokio::test]
async fn patched_deployment_passes_restricted() {
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "registry.example.com/web:1"}]}
        }}
    });
    mutate_then_validate(deployment, "Deployment", "apps", "deployments").await;
}

#[tokio::test]
async fn what_the_defaults_cannot_fix_is_still_denied_without_a_patch() {
    let state = state();
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "debug", "namespace": "shop"},
        "spec": {"hostPID": true, "containers": [{"name": "shell", "image": "busybox:1.36"}]}
    });
    let answer = post(
        &state,
        "/mutate/restricted-defaults",
        &review(&pod, "Pod", "", "pods"),
    )
    .await;
    assert_eq!(answer["allowed"], false);
    assert_eq!(answer["status"]["reason"], "host-namespaces");
    assert!(answer.get("patch").is_none(), "{answer}");
}
