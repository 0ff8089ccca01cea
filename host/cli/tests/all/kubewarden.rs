//! `palisade run` with a Kubewarden policy (the kubewarden-policy-sdk probe of tests/guests):
//! host capabilities granted on the command line, Kubernetes objects from a directory of
//! manifests, and a session recorded, then replayed without the directory (kwctl's format);
//! `palisade webhook-config` and `palisade serve` with a Kubewarden module.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize as _;
use serde_json::Value;

use crate::support::{built, palisade};

/// A Pod CREATE in `shop`, a Namespace `shop` as a manifest, and the probe's settings.
fn inputs(dir: &Path, settings: &str) {
    let pod = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "kw-1", "operation": "CREATE", "namespace": "shop",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "userInfo": {"username": "alice"},
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "shop"},
                       "spec": {"containers": [{"name": "app", "image": "registry.example/web:1"}]}},
        },
    });
    std::fs::write(dir.join("review.json"), pod.to_string()).expect("review");
    std::fs::create_dir_all(dir.join("cluster")).expect("dir");
    std::fs::write(
        dir.join("cluster/namespaces.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels: {team: payments}\n",
    )
    .expect("manifest");
    std::fs::write(dir.join("settings.json"), settings).expect("settings");
}

fn run(dir: &Path, cache: &tempfile::TempDir, extra: &[&str]) -> (i32, Value, String) {
    let probe = built("kubewarden", "kubewarden_probe.wasm");
    let output = palisade(cache)
        .current_dir(dir)
        .args([
            "run",
            "--request",
            "review.json",
            "--settings",
            "settings.json",
            "--policy",
        ])
        .arg(probe)
        .args(extra)
        .output()
        .expect("runs");
    (
        output.status.code().unwrap_or(-1),
        serde_json::from_slice(&output.stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

const GRANTS: [&str; 4] = [
    "--capability",
    "host:kubernetes/get_resource",
    "--capability",
    "kubernetes:v1/Namespace",
];

#[test]
fn a_kubewarden_policy_reads_the_cluster_directory_and_replays_the_session() {
    let dir = tempfile::tempdir().expect("dir");
    let cache = tempfile::tempdir().expect("cache");
    inputs(dir.path(), r#"{"call": "namespaceLabels"}"#);
    let mut args = GRANTS.to_vec();
    args.extend([
        "--kubernetes-dir",
        "cluster",
        "--record-host-capabilities-interactions",
        "session.yml",
    ]);
    let (code, review, stderr) = run(dir.path(), &cache, &args);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        review["response"]["status"]["message"],
        r#"{"team":"payments"}"#
    );
    let session = std::fs::read_to_string(dir.path().join("session.yml")).expect("recorded");
    assert!(session.contains("!KubernetesGetResource"), "{session}");
    // Replayed: the same answer with no cluster at all.
    let mut replay = GRANTS.to_vec();
    replay.extend(["--replay-host-capabilities-interactions", "session.yml"]);
    let (code, again, stderr) = run(dir.path(), &cache, &replay);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(again["response"], review["response"]);
    // Not granted the kind: Kubewarden's refusal reaches the policy, which rejects.
    let (code, refused, _) = run(
        dir.path(),
        &cache,
        &[
            "--capability",
            "host:kubernetes/*",
            "--kubernetes-dir",
            "cluster",
        ],
    );
    assert_eq!(code, 1);
    assert!(
        refused["response"]["status"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(
                "Policy has not been granted access to Kubernetes v1/Namespace resources"
            )),
        "{refused}"
    );
}

#[test]
fn capability_arguments_that_name_nothing_are_errors() {
    let dir = tempfile::tempdir().expect("dir");
    let cache = tempfile::tempdir().expect("cache");
    inputs(dir.path(), "{}");
    let (code, _, stderr) = run(dir.path(), &cache, &["--capability", "host:oci/v3/*"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("host capability pattern \"oci/v3/*\" matches no operation"),
        "{stderr}"
    );
    let (code, _, stderr) = run(dir.path(), &cache, &["--kubernetes-dir", "missing"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--kubernetes-dir missing"), "{stderr}");
    std::fs::write(dir.path().join("session.yml"), "not: a session").expect("file");
    let (code, _, stderr) = run(
        dir.path(),
        &cache,
        &["--replay-host-capabilities-interactions", "session.yml"],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("not a list of recorded host-capability exchanges"),
        "{stderr}"
    );
}

#[test]
fn package_kubewarden_writes_the_artefact_kubewarden_pulls_and_run_reads_it_offline() {
    let dir = tempfile::tempdir().expect("dir");
    let cache = tempfile::tempdir().expect("cache");
    let pod_security = built("kubewarden", "pod_security.wasm");
    let output = palisade(&cache)
        .current_dir(dir.path())
        .args(["package", "--kubewarden", "--output", "layout"])
        .arg(&pod_security)
        .output()
        .expect("runs");
    assert!(output.status.success(), "{output:?}");
    let report: Value = serde_json::from_slice(&output.stdout).expect("a report");
    let artefact = &report["kubewarden"];
    assert_eq!(artefact["ref_name"], "kubewarden");
    assert_eq!(
        artefact["config"]["media_type"],
        "application/vnd.wasm.config.v1+json"
    );
    assert_eq!(artefact["config"]["size"], 2);
    assert_eq!(
        artefact["layers"][0]["media_type"],
        "application/vnd.wasm.content.layer.v1+wasm"
    );
    // The metadata's annotations are the manifest's, as kwctl push writes them.
    let digest = artefact["digest"].as_str().expect("digest");
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(
            dir.path()
                .join("layout/blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .expect("the manifest blob"),
    )
    .expect("json");
    assert_eq!(
        manifest["annotations"]["io.kubewarden.policy.title"],
        "pod-security"
    );
    // The probe reads the artefact's manifest through oci/v1/oci_manifest, from the layout.
    inputs(
        dir.path(),
        r#"{"call": {"manifest": {"image": "kubewarden"}}}"#,
    );
    let (code, review, stderr) = run(
        dir.path(),
        &cache,
        &[
            "--capability",
            "host:oci/v1/oci_manifest",
            "--oci-dir",
            "layout",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        review["response"]["status"]["message"],
        "image manifest with 1 layers"
    );
    // A module without Kubewarden metadata is no Kubewarden policy: refused, saying so.
    let probe = built("kubewarden", "kubewarden_probe.wasm");
    let refused = palisade(&cache)
        .current_dir(dir.path())
        .args(["package", "--kubewarden", "--output", "other"])
        .arg(&probe)
        .output()
        .expect("runs");
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("has no Kubewarden metadata"), "{stderr}");
    assert!(!dir.path().join("other").exists(), "nothing written");
}

/// A palisade.yaml in `dir` serving Kubewarden's build of pod-security as `psa`.
fn pod_security_config(dir: &Path) -> std::path::PathBuf {
    let module = built("kubewarden", "pod_security.wasm");
    let config = dir.join("palisade.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\npolicies:\n  - id: psa\n    module: {}\n",
            module.display()
        ),
    )
    .expect("config");
    config
}

#[test]
fn webhook_config_routes_a_kubewarden_module_by_its_embedded_metadata() {
    let dir = tempfile::tempdir().expect("dir");
    let cache = tempfile::tempdir().expect("cache");
    let config = pod_security_config(dir.path());
    let output = palisade(&cache)
        .arg("webhook-config")
        .arg("--config")
        .arg(&config)
        .output()
        .expect("runs");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("utf-8");
    let objects: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("a YAML document"))
        .collect();
    let kinds: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "ValidatingWebhookConfiguration",
            "MutatingWebhookConfiguration"
        ]
    );
    let resources = |webhook: &Value| -> Vec<String> {
        webhook["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .flat_map(|r| r["resources"].as_array().cloned().unwrap_or_default())
            .filter_map(|r| r.as_str().map(str::to_owned))
            .collect()
    };
    for (object, endpoint) in objects.iter().zip(["validate", "mutate"]) {
        let webhooks = object["webhooks"].as_array().expect("webhooks");
        assert_eq!(webhooks.len(), 1, "{object}");
        let webhook = &webhooks[0];
        assert_eq!(webhook["name"], "psa.palisade.dev");
        assert_eq!(
            webhook["clientConfig"]["service"]["path"],
            format!("/{endpoint}/psa")
        );
        let resources = resources(webhook);
        for expected in ["pods", "deployments", "daemonsets", "cronjobs"] {
            assert!(
                resources.iter().any(|r| r == expected),
                "{endpoint}: {resources:?}"
            );
        }
    }
}

#[test]
fn serve_refuses_policy_server_flags_with_a_palisade_yaml_before_binding() {
    let dir = tempfile::tempdir().expect("dir");
    let cache = tempfile::tempdir().expect("cache");
    let config = pod_security_config(dir.path());
    let output = palisade(&cache)
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .args(["--insecure-http", "--kubernetes-dir", "x"])
        .timeout(Duration::from_secs(60))
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("apply to a policies.yml; a palisade.yaml sets listen, tls, probes and hostOperations itself"),
        "{stderr}"
    );
    assert!(stderr.contains("--kubernetes-dir"), "{stderr}");
    assert!(!stderr.contains("binding"), "{stderr}");
}

/// Runs `palisade test` on `suite` (written into `dir`): exit code and stdout.
fn test_suite(dir: &Path, cache: &tempfile::TempDir, suite: &str) -> (i32, String) {
    std::fs::write(dir.join("suite.yaml"), suite).expect("suite");
    let output = palisade(cache)
        .current_dir(dir)
        .args(["test", "suite.yaml"])
        .output()
        .expect("runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

#[test]
fn palisade_test_runs_suites_of_wapc_and_wasi_kubewarden_policies() {
    let dir = tempfile::tempdir().expect("dir");
    let cache = tempfile::tempdir().expect("cache");
    inputs(dir.path(), "{}");
    let mut privileged: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("review.json")).expect("review"),
    )
    .expect("json");
    privileged["request"]["object"]["spec"]["containers"][0]["securityContext"] =
        serde_json::json!({"privileged": true});
    std::fs::write(dir.path().join("privileged.json"), privileged.to_string()).expect("review");
    for (module, namespace_call) in [
        (
            built("kubewarden", "kubewarden_probe.wasm"),
            r#"{call: namespaceLabels}"#,
        ),
        (
            built("kubewarden", "kubewarden_wasi.wasm"),
            r#"{raw: {binding: kubewarden, namespace: kubernetes, operation: get_resource, payload: {api_version: v1, kind: Namespace, name: shop, disable_cache: false}}}"#,
        ),
    ] {
        let suite = format!(
            r#"
policy: {module}
settings: {{denyPrivileged: true}}
capabilities:
  host: ["kubernetes/get_resource"]
  kubernetes: [{{apiVersion: v1, kind: Namespace}}]
host: {{kubernetes: cluster}}
cases:
  - name: an unprivileged pod passes
    request: review.json
    expect: {{allowed: true}}
  - name: a privileged pod is denied with the policy's words
    request: privileged.json
    expect: {{allowed: false, message: "privileged containers are not allowed: app"}}
  - name: the namespace comes from the manifest directory
    request: review.json
    settings: {namespace_call}
    expect: {{allowed: true, message: payments}}
  - name: settings the policy refuses
    request: review.json
    settings: {{code: 7}}
    expect: {{error: "code 7 is not an HTTP error code"}}
"#,
            module = module.display()
        );
        let (code, output) = test_suite(dir.path(), &cache, &suite);
        assert_eq!(code, 0, "{}: {output}", module.display());
        assert_eq!(output.matches("PASS").count(), 4, "{output}");
        // A case that cannot hold fails the run: the suite is checked, not just run.
        let failing = suite.replace(
            "expect: {allowed: true}\n  - name: a privileged",
            "expect: {allowed: false}\n  - name: a privileged",
        );
        let (code, output) = test_suite(dir.path(), &cache, &failing);
        assert_eq!(code, 1, "{output}");
    }
}
