//! One webhook server over real TLS on 127.0.0.1, driven with reqwest as the API server drives
//! it: validate, mutate (the patch applied and the result validated), monitor mode, both
//! failurePolicies with a hostile policy (trap, timeout), 413 and 400, then `/metrics` counting
//! exactly the requests sent. Reload under load is in `server.rs`.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use palisade_runtime::{Engine, EngineConfig};
use palisade_webhook::{ServeOptions, Server};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::module;

/// What pod-security restricted says of a pod that sets no security context.
const BARE_POD_DENIAL: &str = r#"violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "app" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "app" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "app" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "app" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#;

/// Writes a CA and a serving certificate for 127.0.0.1 into `dir`; returns the CA (PEM).
fn write_pki(dir: &Path) -> String {
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().expect("key");
    let ca_pem = ca.self_signed(&ca_key).expect("ca").pem();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("server cert");
    std::fs::write(dir.join("tls.crt"), cert.pem()).expect("write");
    std::fs::write(dir.join("tls.key"), key.serialize_pem()).expect("write");
    ca_pem
}

/// The configuration, as JSON (a YAML subset), so module paths need no quoting.
fn write_config(dir: &Path) {
    let (pod_security, hostile) = (module("pod_security.wasm"), module("hostile.wasm"));
    let config = json!({
        "listen": "127.0.0.1:0",
        "tls": {"cert": "tls.crt", "key": "tls.key"},
        "limits": {"maxBodyBytes": 65536},
        "policies": [
            {"id": "restricted", "module": pod_security, "settings": {"level": "restricted"}, "mode": "protect"},
            {"id": "restricted-monitor", "module": pod_security, "settings": {"level": "restricted"}, "mode": "monitor"},
            {"id": "restricted-defaults", "module": pod_security, "settings": {"level": "restricted", "mutate": true}},
            {"id": "trap-fail", "module": hostile, "settings": {"behaviour": "trap"}, "failurePolicy": "Fail"},
            {"id": "trap-ignore", "module": hostile, "settings": {"behaviour": "trap"}, "failurePolicy": "Ignore"},
            {"id": "endless", "module": hostile, "settings": {"behaviour": "loop"}, "timeout": "200ms"}
        ]
    });
    std::fs::write(dir.join("palisade.yaml"), config.to_string()).expect("write");
}

fn bare_pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app", "namespace": "team-a"},
        "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1.0"}]}
    })
}

fn restricted_pod() -> Value {
    let mut pod = bare_pod();
    pod["spec"]["securityContext"] =
        json!({"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}});
    pod["spec"]["containers"][0]["securityContext"] =
        json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}});
    pod
}

fn review(uid: &str, object: &Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "app", "namespace": "team-a", "operation": "CREATE",
            "userInfo": {"username": "alice"}, "object": object
        }
    })
}

struct Webhook {
    client: reqwest::Client,
    url: String,
}

impl Webhook {
    /// POSTs `body`; returns the status and the body as JSON (`Null` when it is not JSON).
    async fn post(&self, path: &str, body: String) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e:?}"));
        let status = response.status();
        let bytes = response.bytes().await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Sends an AdmissionReview for `object`; checks the envelope and returns its `response`.
    async fn review(&self, path: &str, uid: &str, object: &Value) -> Value {
        let (status, body) = self.post(path, review(uid, object).to_string()).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body["apiVersion"], "admission.k8s.io/v1", "{body}");
        assert_eq!(body["kind"], "AdmissionReview", "{body}");
        body["response"].clone()
    }

    async fn get(&self, path: &str) -> reqwest::Result<(StatusCode, String)> {
        let response = self
            .client
            .get(format!("{}{path}", self.url))
            .send()
            .await?;
        Ok((response.status(), response.text().await?))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tls_server_answers_every_admission_path_and_counts_it() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = write_pki(dir.path());
    write_config(dir.path());
    let options = ServeOptions {
        config: dir.path().join("palisade.yaml"),
        insecure_http: false,
        strict_ready: true,
        watch_interval: Duration::from_secs(60),
        flags: Default::default(),
    };
    let engine = Engine::new(EngineConfig::default()).expect("engine");
    let server = Server::bind(options, engine).await.expect("binds");
    let url = format!(
        "https://127.0.0.1:{}",
        server.local_addr().expect("addr").port()
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run_until(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).expect("ca"))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let webhook = Webhook { client, url };

    ready(&webhook).await;
    validate(&webhook).await;
    mutate_then_validate(&webhook).await;
    monitor(&webhook).await;
    failure_policies(&webhook).await;
    limits(&webhook).await;
    metrics(&webhook).await;

    stop.send(()).expect("stop");
    task.await.expect("join").expect("clean shutdown");
}

/// `/readyz` (strict: every policy loaded) answers 200 within 15 s, polled.
async fn ready(webhook: &Webhook) {
    let mut last = None;
    for _ in 0..300 {
        match webhook.get("/readyz").await {
            Ok((StatusCode::OK, body)) => {
                assert_eq!(body, "ready");
                return;
            }
            other => last = Some(other),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("/readyz never answered 200: {last:?}");
}

/// A protect-mode denial: 403, the check as reason, PSA's message naming every field; the
/// compliant pod is allowed. Both echo their uid.
async fn validate(webhook: &Webhook) {
    let denied = webhook
        .review("/validate/restricted", "validate-bare", &bare_pod())
        .await;
    assert_eq!(
        denied,
        json!({
            "uid": "validate-bare", "allowed": false,
            "status": {"code": 403, "reason": "allow-privilege-escalation", "message": BARE_POD_DENIAL},
            "auditAnnotations": {"enforce-policy": "restricted:latest"}
        })
    );
    let allowed = webhook
        .review(
            "/validate/restricted",
            "validate-restricted",
            &restricted_pod(),
        )
        .await;
    assert_eq!(
        allowed,
        json!({
            "uid": "validate-restricted", "allowed": true,
            "auditAnnotations": {"enforce-policy": "restricted:latest"}
        })
    );
}

/// `/mutate` answers a base64 JSONPatch that, applied with `json-patch`, turns the bare pod into
/// the restricted one, which `/validate` then allows.
async fn mutate_then_validate(webhook: &Webhook) {
    let mutated = webhook
        .review("/mutate/restricted-defaults", "mutate-bare", &bare_pod())
        .await;
    assert_eq!(mutated["uid"], "mutate-bare", "{mutated}");
    assert_eq!(mutated["allowed"], true, "{mutated}");
    assert_eq!(mutated["patchType"], "JSONPatch", "{mutated}");
    assert_eq!(
        mutated["warnings"],
        json!([
            "pod-security added the restricted defaults at /spec/securityContext, /spec/containers/0/securityContext"
        ])
    );
    assert!(mutated.get("status").is_none(), "{mutated}");
    let patch = base64::engine::general_purpose::STANDARD
        .decode(mutated["patch"].as_str().expect("patch is a string"))
        .expect("patch is base64");
    let patch: json_patch::Patch = serde_json::from_slice(&patch).expect("patch is a JSONPatch");
    let mut patched = bare_pod();
    json_patch::patch(&mut patched, &patch).expect("the patch applies");
    assert_eq!(patched, restricted_pod());

    let revalidated = webhook
        .review("/validate/restricted", "validate-patched", &patched)
        .await;
    assert_eq!(revalidated["uid"], "validate-patched");
    assert_eq!(revalidated["allowed"], true, "{revalidated}");
}

/// Monitor mode allows what protect mode denies and records the denial in an audit
/// annotation; it adds no status and no warning.
async fn monitor(webhook: &Webhook) {
    let monitored = webhook
        .review("/validate/restricted-monitor", "monitor-bare", &bare_pod())
        .await;
    assert_eq!(
        monitored,
        json!({
            "uid": "monitor-bare", "allowed": true,
            "auditAnnotations": {
                "enforce-policy": "restricted:latest",
                "restricted-monitor.monitor-denied": format!("allow-privilege-escalation: {BARE_POD_DENIAL}")
            }
        })
    );
}

/// A trapping policy denies with 500 under Fail (twice: the instance is replaced after a trap)
/// and allows with a warning under Ignore; an endless loop is cut at its timeout and denied,
/// twice too.
async fn failure_policies(webhook: &Webhook) {
    for uid in ["trap-fail-1", "trap-fail-2"] {
        let denied = webhook
            .review("/validate/trap-fail", uid, &bare_pod())
            .await;
        assert_eq!(denied["uid"], uid);
        assert_eq!(denied["allowed"], false, "{denied}");
        assert_eq!(denied["status"]["code"], 500, "{denied}");
        assert_eq!(denied["status"]["reason"], "policy-error", "{denied}");
        let message = denied["status"]["message"].as_str().expect("message");
        assert!(
            message.starts_with("policy trap-fail failed (trap): the policy trapped: ")
                && message.contains("hostile guest panics on purpose")
                && message.ends_with("; failurePolicy Fail denies the request"),
            "{message}"
        );
        assert!(denied.get("warnings").is_none(), "{denied}");
    }

    let ignored = webhook
        .review("/validate/trap-ignore", "trap-ignore", &bare_pod())
        .await;
    assert_eq!(ignored["uid"], "trap-ignore");
    assert_eq!(ignored["allowed"], true, "{ignored}");
    assert!(ignored.get("status").is_none(), "{ignored}");
    let warnings = ignored["warnings"].as_array().expect("warnings");
    let warning = warnings[0].as_str().expect("warning");
    assert!(
        warnings.len() == 1
            && warning.starts_with("policy trap-ignore failed (trap): the policy trapped: ")
            && warning.contains("hostile guest panics on purpose")
            && warning.ends_with("; failurePolicy Ignore allows the request"),
        "{warnings:?}"
    );

    for uid in ["endless-1", "endless-2"] {
        let timed_out = webhook.review("/validate/endless", uid, &bare_pod()).await;
        assert_eq!(
            timed_out,
            json!({
                "uid": uid, "allowed": false,
                "status": {
                    "code": 500, "reason": "policy-error",
                    "message": "policy endless failed (timeout): the policy ran past its deadline of 200ms; failurePolicy Fail denies the request"
                }
            })
        );
    }
}

/// A body over `maxBodyBytes` is 413; a malformed AdmissionReview is 400 with a JSON error
/// naming the problem and where it is.
async fn limits(webhook: &Webhook) {
    let mut pod = bare_pod();
    pod["metadata"]["annotations"] = json!({"filler": "x".repeat(70_000)});
    let (status, body) = webhook
        .post("/validate/restricted", review("too-big", &pod).to_string())
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        body,
        json!({"error": "the body is larger than the limit of 65536 bytes (limits.maxBodyBytes)"})
    );

    let wrong_type = r#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": 7}}"#;
    let (status, body) = webhook
        .post("/validate/restricted", wrong_type.to_owned())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body,
        json!({"error": "not a valid AdmissionReview: invalid type: integer `7`, expected a string at line 1 column 85"})
    );

    let mut missing = review("missing-operation", &bare_pod());
    missing["request"]
        .as_object_mut()
        .expect("request")
        .remove("operation");
    let (status, body) = webhook
        .post("/validate/restricted", missing.to_string())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let error = body["error"].as_str().expect("a JSON error");
    assert!(
        error.starts_with(
            "not a valid AdmissionReview: missing field `operation` at line 1 column "
        ),
        "{error}"
    );
}

/// `/metrics` counts exactly the requests above: by policy, decision, mode and endpoint; policy
/// errors by kind; rejected inputs by status.
async fn metrics(webhook: &Webhook) {
    let (status, text) = webhook.get("/metrics").await.expect("metrics");
    assert_eq!(status, StatusCode::OK);
    let samples = |prefix: &str| -> Vec<&str> {
        let mut lines: Vec<&str> = text.lines().filter(|l| l.starts_with(prefix)).collect();
        lines.sort_unstable();
        lines
    };
    assert_eq!(
        samples("palisade_admission_requests_total{"),
        [
            r#"palisade_admission_requests_total{policy="endless",decision="failed-closed",mode="protect",endpoint="validate"} 2"#,
            r#"palisade_admission_requests_total{policy="restricted",decision="allowed",mode="protect",endpoint="validate"} 2"#,
            r#"palisade_admission_requests_total{policy="restricted",decision="denied",mode="protect",endpoint="validate"} 1"#,
            r#"palisade_admission_requests_total{policy="restricted-defaults",decision="allowed",mode="protect",endpoint="mutate"} 1"#,
            r#"palisade_admission_requests_total{policy="restricted-monitor",decision="monitored",mode="monitor",endpoint="validate"} 1"#,
            r#"palisade_admission_requests_total{policy="trap-fail",decision="failed-closed",mode="protect",endpoint="validate"} 2"#,
            r#"palisade_admission_requests_total{policy="trap-ignore",decision="failed-open",mode="protect",endpoint="validate"} 1"#,
        ],
        "{text}"
    );
    assert_eq!(
        samples("palisade_policy_errors_total{"),
        [
            r#"palisade_policy_errors_total{policy="endless",kind="timeout"} 2"#,
            r#"palisade_policy_errors_total{policy="trap-fail",kind="trap"} 2"#,
            r#"palisade_policy_errors_total{policy="trap-ignore",kind="trap"} 1"#,
        ],
        "{text}"
    );
    assert_eq!(
        samples("palisade_rejected_requests_total{"),
        [
            r#"palisade_rejected_requests_total{status="400"} 2"#,
            r#"palisade_rejected_requests_total{status="413"} 1"#,
        ],
        "{text}"
    );
    assert_eq!(
        samples("palisade_evaluation_seconds_count{"),
        [
            r#"palisade_evaluation_seconds_count{policy="endless"} 2"#,
            r#"palisade_evaluation_seconds_count{policy="restricted"} 3"#,
            r#"palisade_evaluation_seconds_count{policy="restricted-defaults"} 1"#,
            r#"palisade_evaluation_seconds_count{policy="restricted-monitor"} 1"#,
            r#"palisade_evaluation_seconds_count{policy="trap-fail"} 2"#,
            r#"palisade_evaluation_seconds_count{policy="trap-ignore"} 1"#,
        ],
        "{text}"
    );
    // Requests came one at a time: one instance per policy, replaced after every trap and
    // timeout (so those policies keep none), reused otherwise.
    assert_eq!(
        samples("palisade_policy_instance_starts_total{"),
        [
            r#"palisade_policy_instance_starts_total{policy="endless"} 2"#,
            r#"palisade_policy_instance_starts_total{policy="restricted"} 1"#,
            r#"palisade_policy_instance_starts_total{policy="restricted-defaults"} 1"#,
            r#"palisade_policy_instance_starts_total{policy="restricted-monitor"} 1"#,
            r#"palisade_policy_instance_starts_total{policy="trap-fail"} 2"#,
            r#"palisade_policy_instance_starts_total{policy="trap-ignore"} 1"#,
        ],
        "{text}"
    );
    let instances: Vec<&str> = samples("palisade_policy_instances{")
        .into_iter()
        .filter(|l| !l.ends_with(" 0"))
        .collect();
    assert_eq!(
        instances,
        [
            r#"palisade_policy_instances{policy="restricted",state="idle"} 1"#,
            r#"palisade_policy_instances{policy="restricted-defaults",state="idle"} 1"#,
            r#"palisade_policy_instances{policy="restricted-monitor",state="idle"} 1"#,
        ],
        "{text}"
    );
    assert_eq!(
        samples("palisade_policy_instances{").len(),
        12,
        "idle and busy for each of the 6 policies: {text}"
    );
    for line in [
        "palisade_config_reloads_total 0",
        "palisade_config_reload_failures_total 0",
        "palisade_policies_failed 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }
}
