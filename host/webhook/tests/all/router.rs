//! The webhook's HTTP behaviour through `router()` without a socket: AdmissionReview in and
//! out, failure policies, monitor mode, groups, mutation, limits, status and metrics.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use palisade_runtime::capabilities::Capabilities;
use palisade_runtime::{Engine, EngineConfig};
use palisade_webhook::{AppState, Config, PolicySet, router};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::support::hostile;

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::new(EngineConfig::default()).expect("engine"))
}

const CONFIG: &str = r#"
policies:
  - {id: allow, module: HOSTILE}
  - {id: deny, module: HOSTILE, settings: {behaviour: deny}}
  - {id: deny-monitored, module: HOSTILE, settings: {behaviour: deny}, mode: monitor}
  - {id: trap-closed, module: HOSTILE, settings: {behaviour: trap}, failurePolicy: Fail}
  - {id: trap-open, module: HOSTILE, settings: {behaviour: trap}, failurePolicy: Ignore}
  - {id: slow, module: HOSTILE, settings: {behaviour: loop}, timeout: 50ms}
  - {id: patch, module: HOSTILE, settings: {behaviour: patch}}
  - {id: absent, module: does-not-exist.wasm}
groups:
  - {id: any-of, expression: "deny || allow"}
  - {id: all-of, expression: "allow && deny", message: "both must allow"}
limits: {maxBodyBytes: 65536}
"#;

fn state(strict: bool) -> Arc<AppState> {
    let text = CONFIG.replace("HOSTILE", hostile().to_str().expect("utf-8"));
    let config = Config::parse(&text).expect("config parses");
    config.validate().expect("config is valid");
    let capabilities = Arc::new(Capabilities::default());
    Arc::new(AppState::new(
        PolicySet::load(&config, engine(), &capabilities),
        capabilities,
        config.limits.clone(),
        strict,
    ))
}

fn review(api_version: &str) -> Value {
    json!({
        "apiVersion": api_version, "kind": "AdmissionReview",
        "request": {
            "uid": "e911857d-c318-11e8-bbad-025000000001",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "default", "operation": "CREATE",
            "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"}},
            "dryRun": false
        }
    })
}

async fn post(state: &Arc<AppState>, path: &str, body: String) -> (StatusCode, Value) {
    let request = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("request");
    let response = router(Arc::clone(state))
        .oneshot(request)
        .await
        .expect("infallible");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn get(state: &Arc<AppState>, path: &str) -> (StatusCode, String) {
    let response = router(Arc::clone(state))
        .oneshot(Request::get(path).body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn decide(state: &Arc<AppState>, id: &str) -> Value {
    let (status, body) = post(
        state,
        &format!("/validate/{id}"),
        review("admission.k8s.io/v1").to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["response"].clone()
}

#[tokio::test]
async fn allowed_review_echoes_uid_and_version() {
    let state = state(false);
    for version in ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"] {
        let (status, body) = post(&state, "/validate/allow", review(version).to_string()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["apiVersion"], version);
        assert_eq!(body["kind"], "AdmissionReview");
        assert_eq!(
            body["response"]["uid"],
            "e911857d-c318-11e8-bbad-025000000001"
        );
        assert_eq!(body["response"]["allowed"], true);
    }
}

#[tokio::test]
async fn denial_has_code_message_and_reason() {
    let response = decide(&state(false), "deny").await;
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 403);
    assert_eq!(response["status"]["message"], "denied on purpose");
    assert_eq!(response["status"]["reason"], "hostile-deny");
}

#[tokio::test]
async fn monitor_mode_allows_and_records_the_denial() {
    let state = state(false);
    let response = decide(&state, "deny-monitored").await;
    assert_eq!(response["allowed"], true);
    assert_eq!(
        response["auditAnnotations"]["deny-monitored.monitor-denied"],
        "hostile-deny: denied on purpose"
    );
    let (_, metrics) = get(&state, "/metrics").await;
    assert!(metrics.contains(r#"palisade_admission_requests_total{policy="deny-monitored",decision="monitored",mode="monitor",endpoint="validate"} 1"#), "{metrics}");
}

#[tokio::test]
async fn failure_policy_fail_denies_and_says_why() {
    let response = decide(&state(false), "trap-closed").await;
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["reason"], "policy-error");
    let message = response["status"]["message"].as_str().expect("message");
    assert!(
        message.contains("(trap)") && message.contains("failurePolicy Fail"),
        "{message}"
    );
}

#[tokio::test]
async fn failure_policy_ignore_allows_with_a_warning() {
    let response = decide(&state(false), "trap-open").await;
    assert_eq!(response["allowed"], true);
    let warning = response["warnings"][0].as_str().expect("warning");
    assert!(warning.contains("failurePolicy Ignore"), "{warning}");
}

#[tokio::test]
async fn timeout_is_a_policy_error_and_is_counted() {
    let state = state(false);
    let response = decide(&state, "slow").await;
    assert_eq!(response["allowed"], false);
    assert!(
        response["status"]["message"]
            .as_str()
            .expect("message")
            .contains("(timeout)")
    );
    let (_, metrics) = get(&state, "/metrics").await;
    assert!(
        metrics.contains(r#"palisade_policy_errors_total{policy="slow",kind="timeout"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_policy_that_did_not_load_answers_by_its_failure_policy() {
    let state = state(false);
    let response = decide(&state, "absent").await;
    assert_eq!(response["allowed"], false);
    assert!(
        response["status"]["message"]
            .as_str()
            .expect("message")
            .contains("not loaded")
    );
    let (_, policies) = get(&state, "/policies").await;
    let policies: Value = serde_json::from_str(&policies).expect("json");
    let absent = policies
        .as_array()
        .expect("list")
        .iter()
        .find(|p| p["id"] == "absent")
        .expect("listed");
    assert_eq!(absent["status"], "error");
    assert!(
        absent["error"]
            .as_str()
            .expect("error")
            .contains("does-not-exist.wasm")
    );
    let allow = policies
        .as_array()
        .expect("list")
        .iter()
        .find(|p| p["id"] == "allow")
        .expect("listed");
    assert_eq!(allow["status"], "loaded");
    assert_eq!(allow["digest"].as_str().expect("digest").len(), 64);
}

#[tokio::test]
async fn readiness_is_strict_only_when_asked() {
    assert_eq!(get(&state(false), "/readyz").await.0, StatusCode::OK);
    assert_eq!(
        get(&state(true), "/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(get(&state(true), "/healthz").await.0, StatusCode::OK);
}

#[tokio::test]
async fn groups_combine_members_by_their_expression() {
    let state = state(false);
    assert_eq!(decide(&state, "any-of").await["allowed"], true);
    let response = decide(&state, "all-of").await;
    assert_eq!(response["allowed"], false);
    assert_eq!(
        response["status"]["message"],
        "both must allow; deny: denied on purpose"
    );
}

#[tokio::test]
async fn patches_only_on_the_mutate_endpoint() {
    let state = state(false);
    let validated = decide(&state, "patch").await;
    assert!(validated.get("patch").is_none(), "{validated}");
    let (status, body) = post(
        &state,
        "/mutate/patch",
        review("admission.k8s.io/v1").to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["response"]["patchType"], "JSONPatch");
    let patch = base64::engine::general_purpose::STANDARD
        .decode(body["response"]["patch"].as_str().expect("patch"))
        .expect("base64");
    let patch: Value = serde_json::from_slice(&patch).expect("json");
    assert_eq!(
        patch,
        json!([{"op": "add", "path": "/metadata/labels", "value": {"hostile": "true"}}])
    );
}

#[tokio::test]
async fn malformed_review_is_400_naming_the_problem() {
    let state = state(false);
    let (status, body) = post(
        &state,
        "/validate/allow",
        r#"{"apiVersion": "admission.k8s.io/v1", "request": {"uid": 7}}"#.into(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error = body["error"].as_str().expect("error");
    assert!(
        error.contains("invalid type") && error.contains("column"),
        "{error}"
    );
    let (status, body) = post(
        &state,
        "/validate/allow",
        r#"{"apiVersion": "v9", "request": {}}"#.into(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn oversized_body_is_413() {
    let state = state(false);
    let mut review = review("admission.k8s.io/v1");
    review["request"]["object"]["metadata"]["annotations"] = json!({"filler": "x".repeat(70_000)});
    let (status, body) = post(&state, "/validate/allow", review.to_string()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains("larger than the limit"), "{body}");
    assert!(error.contains("limits.maxBodyBytes"), "{body}");
}

#[tokio::test]
async fn unknown_policy_is_404() {
    let (status, body) = post(
        &state(false),
        "/validate/nope",
        review("admission.k8s.io/v1").to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().expect("error").contains("nope"));
}

#[test]
fn bundled_example_configuration_is_valid() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/palisade.yaml");
    let config = Config::load(&path).expect("the example `make run` serves is valid");
    assert_eq!(config.listen.to_string(), "127.0.0.1:8443");
    assert!(config.tls.is_some());
    assert!(config.policies.iter().any(|p| p.id == "pod-security"));
}
