//! The kustomize base in `deploy/kustomize` renders, and what it deploys is right: a webhook
//! pod that itself passes the restricted Pod Security Standard, probes on the HTTPS port, a
//! valid server configuration, and webhook rules equal to each policy's own metadata.

use std::process::Command;

use palisade_sdk::AdmissionPolicy;
use palisade_sdk::testing::complete_request;
use pod_security::PodSecurity;
use serde::Deserialize;
use serde_json::{Value, json};

/// The rendered objects, or `None` (with a note) where kubectl is not installed.
fn render() -> Option<Vec<Value>> {
    let dir = e2e::workspace_root().join("deploy/kustomize");
    let output = match Command::new("kubectl").arg("kustomize").arg(&dir).output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("skipped: kubectl not found, so the kustomize base is not rendered");
            return None;
        }
        Err(e) => panic!("running kubectl: {e}"),
    };
    assert!(
        output.status.success(),
        "kubectl kustomize failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("utf-8");
    Some(
        serde_yaml::Deserializer::from_str(&text)
            .map(|doc| Value::deserialize(doc).expect("YAML document"))
            .collect(),
    )
}

fn find<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} rendered"))
}

#[test]
fn renders_every_object_in_one_namespace() {
    let Some(objects) = render() else { return };
    for kind in [
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
        "ValidatingWebhookConfiguration",
    ] {
        find(&objects, kind);
    }
    for object in objects
        .iter()
        .filter(|o| o["kind"] != "Namespace" && o["kind"] != "ValidatingWebhookConfiguration")
    {
        assert_eq!(
            object["metadata"]["namespace"], "palisade",
            "{}",
            object["kind"]
        );
    }
}

#[test]
fn webhook_deployment_passes_the_restricted_standard() {
    let Some(objects) = render() else { return };
    let deployment = find(&objects, "Deployment").clone();
    let request = complete_request(json!({"object": deployment}), "deploy").expect("request");
    let settings =
        palisade_sdk::parse_settings::<pod_security::Settings>(r#"{"level": "restricted"}"#)
            .expect("settings");
    let verdict = pod_security::evaluate(&request, &settings).expect("verdict");
    assert!(verdict.allowed, "{}", verdict.message);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["scheme"], "HTTPS");
    assert_eq!(container["ports"][0]["containerPort"], 8443);
}

#[test]
fn configuration_is_valid_and_every_webhook_names_a_policy() {
    let Some(objects) = render() else { return };
    let text = find(&objects, "ConfigMap")["data"]["palisade.yaml"]
        .as_str()
        .expect("palisade.yaml")
        .to_owned();
    let config = palisade_webhook::Config::parse(&text).expect("the server configuration parses");
    config
        .validate()
        .expect("the server configuration is valid");
    assert_eq!(config.listen.port(), 8443);
    let webhooks = find(&objects, "ValidatingWebhookConfiguration")["webhooks"]
        .as_array()
        .expect("webhooks")
        .clone();
    assert!(!webhooks.is_empty());
    for webhook in &webhooks {
        let path = webhook["clientConfig"]["service"]["path"]
            .as_str()
            .expect("path");
        let id = path.strip_prefix("/validate/").expect("a validate path");
        assert!(
            config.policies.iter().any(|p| p.id == id),
            "{path} names no configured policy"
        );
        assert_eq!(
            webhook["clientConfig"]["service"]["name"],
            find(&objects, "Service")["metadata"]["name"]
        );
        assert_eq!(webhook["sideEffects"], "None");
    }
}

#[test]
fn pod_security_webhook_rules_match_the_policy_metadata() {
    let Some(objects) = render() else { return };
    let webhooks = &find(&objects, "ValidatingWebhookConfiguration")["webhooks"];
    let webhook = webhooks
        .as_array()
        .expect("webhooks")
        .iter()
        .find(|w| w["name"] == "pod-security.palisade.dev")
        .expect("pod-security webhook");
    let rendered: Vec<(Value, Value, Value, Value)> = webhook["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| {
            (
                r["apiGroups"].clone(),
                r["apiVersions"].clone(),
                r["resources"].clone(),
                r["operations"].clone(),
            )
        })
        .collect();
    let declared: Vec<(Value, Value, Value, Value)> = PodSecurity::metadata()
        .rules
        .iter()
        .map(|r| {
            (
                json!(r.api_groups),
                json!(r.api_versions),
                json!(r.resources),
                json!(r.operations),
            )
        })
        .collect();
    assert_eq!(
        rendered, declared,
        "deploy/kustomize/validatingwebhookconfiguration.yaml drifted from pod-security's metadata"
    );
}
