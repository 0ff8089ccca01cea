//! The `palisade` binary as a user runs it: exit codes, JSON on stdout, summaries and errors on
//! stderr. Uses the pod-security policy and its bundled example requests.

use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

use crate::support::{built, palisade, root};

fn artefact(name: &str) -> PathBuf {
    built("admission-component", &format!("{name}.wasm"))
}

fn example(name: &str) -> PathBuf {
    root().join("policies/pod-security/examples").join(name)
}

fn run(cache: &tempfile::TempDir, args: &[&str]) -> (i32, Value, String) {
    let output = palisade(cache)
        .arg("run")
        .args(args)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (
        output.status.code().unwrap_or(-1),
        json,
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn allowed_request_exits_0_with_the_review_response() {
    let cache = tempfile::tempdir().expect("dir");
    let policy = artefact("pod_security");
    let request = example("restricted-deployment.yaml");
    let (code, json, stderr) = run(
        &cache,
        &["--policy", path(&policy), "--request", path(&request)],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(json["kind"], "AdmissionReview");
    assert_eq!(
        json["response"]["uid"],
        "3b4f8a52-6f7e-4d6a-9c1e-7d2b1a0c5e11"
    );
    assert_eq!(json["response"]["allowed"], true);
    assert!(stderr.starts_with("allowed by pod-security"), "{stderr}");
}

#[test]
fn denied_request_exits_1_with_status_and_summary() {
    let cache = tempfile::tempdir().expect("dir");
    let policy = artefact("pod_security");
    let request = example("privileged-pod.yaml");
    let settings = example("baseline.yaml");
    let (code, json, stderr) = run(
        &cache,
        &[
            "--policy",
            path(&policy),
            "--request",
            path(&request),
            "--settings",
            path(&settings),
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(json["response"]["allowed"], false);
    assert_eq!(json["response"]["status"]["code"], 403);
    let message = json["response"]["status"]["message"]
        .as_str()
        .expect("message");
    assert!(
        message.contains(r#"container "shell" must not set securityContext.privileged=true"#),
        "{message}"
    );
    assert!(stderr.starts_with("denied by pod-security"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one summary line: {stderr}");
}

#[test]
fn yaml_output_is_the_same_response() {
    let cache = tempfile::tempdir().expect("dir");
    let policy = artefact("pod_security");
    let request = example("baseline-pod.yaml");
    let output = palisade(&cache)
        .args([
            "run",
            "--policy",
            path(&policy),
            "--request",
            path(&request),
            "--output",
            "yaml",
        ])
        .output()
        .expect("runs");
    let yaml: Value = serde_yaml::from_slice(&output.stdout).expect("yaml output");
    assert_eq!(
        yaml["response"]["uid"],
        "1f2e3d4c-5b6a-4789-9abc-def012345678"
    );
    assert_eq!(yaml["response"]["allowed"], false);
}

#[test]
fn missing_request_file_is_named() {
    let cache = tempfile::tempdir().expect("dir");
    let policy = artefact("pod_security");
    let (code, _, stderr) = run(
        &cache,
        &[
            "--policy",
            path(&policy),
            "--request",
            "no-such-request.yaml",
        ],
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("no-such-request.yaml"), "{stderr}");
}

#[test]
fn invalid_yaml_reports_line_and_column() {
    let cache = tempfile::tempdir().expect("dir");
    let policy = artefact("pod_security");
    let bad = cache.path().join("bad.yaml");
    std::fs::write(&bad, "request:\n  uid: a\n  kind: [unclosed\n").expect("write");
    let (code, _, stderr) = run(
        &cache,
        &["--policy", path(&policy), "--request", path(&bad)],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("bad.yaml") && stderr.contains("line"),
        "{stderr}"
    );
}

#[test]
fn invalid_json_reports_line_and_column() {
    let cache = tempfile::tempdir().expect("dir");
    let policy = artefact("pod_security");
    let bad = cache.path().join("bad.json");
    std::fs::write(&bad, "{\n  \"request\": {\"uid\": }\n}\n").expect("write");
    let (code, _, stderr) = run(
        &cache,
        &["--policy", path(&policy), "--request", path(&bad)],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("bad.json") && stderr.contains("line 2 column"),
        "{stderr}"
    );
}

#[test]
fn a_file_that_is_not_wasm_is_refused() {
    let cache = tempfile::tempdir().expect("dir");
    let request = example("baseline-pod.yaml");
    let (code, _, stderr) = run(
        &cache,
        &["--policy", path(&request), "--request", path(&request)],
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("not a WebAssembly file"), "{stderr}");
}

#[test]
fn a_policy_of_another_abi_is_named() {
    let cache = tempfile::tempdir().expect("dir");
    let filter = cache.path().join("filter.wasm");
    let wasm = wat::parse_file(root().join("tests/guests/proxy-filter.wat")).expect("wat");
    std::fs::write(&filter, wasm).expect("write");
    let request = example("baseline-pod.yaml");
    let (code, _, stderr) = run(
        &cache,
        &["--policy", path(&filter), "--request", path(&request)],
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("proxy-wasm filter"), "{stderr}");
}

#[test]
fn invalid_settings_are_an_error_naming_the_setting() {
    let cache = tempfile::tempdir().expect("dir");
    let policy = artefact("pod_security");
    let request = example("baseline-pod.yaml");
    let settings = cache.path().join("settings.yaml");
    std::fs::write(&settings, "level: strict\n").expect("write");
    let (code, _, stderr) = run(
        &cache,
        &[
            "--policy",
            path(&policy),
            "--request",
            path(&request),
            "--settings",
            path(&settings),
        ],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("invalid settings") && stderr.contains("level"),
        "{stderr}"
    );
}

#[test]
fn inputs_larger_than_the_limit_are_refused_naming_the_file() {
    let cache = tempfile::tempdir().expect("dir");
    let policy = artefact("pod_security");
    // An endless input: read up to the default limit (64 MiB), then refused.
    let (code, json, stderr) = run(
        &cache,
        &["--policy", path(&policy), "--request", "/dev/zero"],
    );
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(json, Value::Null);
    assert!(
        stderr.contains("reading /dev/zero: larger than the input limit of 67108864 bytes"),
        "{stderr}"
    );
    let request = example("baseline-pod.yaml");
    let (code, _, stderr) = run(
        &cache,
        &[
            "--max-input-bytes",
            "100",
            "--policy",
            path(&policy),
            "--request",
            path(&request),
        ],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("baseline-pod.yaml: larger than the input limit of 100 bytes"),
        "{stderr}"
    );
}

#[test]
fn a_settings_key_given_twice_is_refused() {
    let cache = tempfile::tempdir().expect("dir");
    let policy = artefact("pod_security");
    let request = example("baseline-pod.yaml");
    let settings = cache.path().join("settings.yaml");
    std::fs::write(&settings, "level: restricted\nlevel: baseline\n").expect("write");
    let (code, _, stderr) = run(
        &cache,
        &[
            "--policy",
            path(&policy),
            "--request",
            path(&request),
            "--settings",
            path(&settings),
        ],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("settings.yaml") && stderr.contains(r#"the key "level" is given twice"#),
        "{stderr}"
    );
}

#[test]
fn trapping_policy_fails_closed_with_exit_2() {
    let cache = tempfile::tempdir().expect("dir");
    let policy = artefact("hostile");
    let request = example("baseline-pod.yaml");
    let settings = cache.path().join("settings.json");
    std::fs::write(&settings, r#"{"behaviour": "trap"}"#).expect("write");
    let (code, json, stderr) = run(
        &cache,
        &[
            "--policy",
            path(&policy),
            "--request",
            path(&request),
            "--settings",
            path(&settings),
        ],
    );
    assert_eq!(code, 2);
    assert_eq!(json["response"]["allowed"], false);
    assert_eq!(json["response"]["status"]["reason"], "policy-error");
    // The failure is logged, as plain text: stderr here is a pipe, not a terminal, so no colours.
    assert!(
        stderr
            .contains("ERROR palisade_runtime::admission::decision: policy failed policy=hostile"),
        "{stderr}"
    );
    assert!(!stderr.contains('\u{1b}'), "escape codes in {stderr:?}");
}

#[test]
fn suite_reports_each_case_counts_and_junit() {
    let cache = tempfile::tempdir().expect("dir");
    // A copy of the example suite plus one case that must fail.
    let dir = cache.path().join("suite");
    std::fs::create_dir(&dir).expect("dir");
    let policy = artefact("pod_security");
    let suite = format!(
        "policy: {}\nsettings: {{level: restricted}}\ncases:\n  - name: compliant\n    request: {}\n    expect: {{allowed: true}}\n  - name: wrong expectation\n    request: {}\n    expect: {{allowed: true}}\n",
        path(&policy),
        path(&example("restricted-deployment.yaml")),
        path(&example("privileged-pod.yaml")),
    );
    let suite_path = dir.join("suite.yaml");
    std::fs::write(&suite_path, suite).expect("write");
    let junit = dir.join("junit.xml");
    let output = palisade(&cache)
        .args(["test", path(&suite_path), "--junit", path(&junit)])
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("PASS") && l.ends_with("compliant")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("FAIL") && l.contains("wrong expectation")),
        "{stdout}"
    );
    assert_eq!(stdout.lines().last(), Some("1 passed, 1 failed"));
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    assert!(
        xml.contains(r#"tests="2""#) && xml.contains(r#"failures="1""#),
        "{xml}"
    );
}

#[test]
fn a_case_naming_a_missing_file_is_an_input_error_not_a_failure() {
    let cache = tempfile::tempdir().expect("dir");
    let dir = cache.path();
    let suite = format!(
        "policy: {}\ncases:\n  - name: compliant\n    request: {}\n    expect: {{allowed: true}}\n  - name: typo\n    request: no-such-review.yaml\n    expect: {{allowed: true}}\n",
        path(&artefact("pod_security")),
        path(&example("restricted-deployment.yaml")),
    );
    let suite_path = dir.join("suite.yaml");
    std::fs::write(&suite_path, suite).expect("write");
    let output = palisade(&cache)
        .args(["test", path(&suite_path)])
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Exit 2 (the inputs), as for any unusable input; exit 1 means a policy did not do what
    // its suite expects.
    assert_eq!(output.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stdout.contains("PASS"), "the case before it ran: {stdout}");
    assert!(
        stderr.contains("no-such-review.yaml") && stderr.contains("No such file"),
        "{stderr}"
    );
}

#[test]
fn suites_give_policies_the_host_they_describe() {
    let cache = tempfile::tempdir().expect("dir");
    let dir = cache.path();
    std::fs::write(
        dir.join("review.yaml"),
        "uid: u\nkind: {group: \"\", version: v1, kind: ConfigMap}\nresource: {group: \"\", version: v1, resource: configmaps}\noperation: CREATE\nuserInfo: {username: alice}\nobject: {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n",
    )
    .expect("write");
    let suite = format!(
        "policy: {}\nsettings: {{requests: 2, windowSeconds: 60}}\ncapabilities: {{clock: true, state: true}}\nhost: {{now: \"2026-05-01T00:00:00Z\"}}\ncases:\n  - {{name: first, request: review.yaml, expect: {{allowed: true}}}}\n  - {{name: second, request: review.yaml, expect: {{allowed: true}}}}\n  - {{name: third, request: review.yaml, expect: {{allowed: false, reason: quota-exceeded, message: refills in 60s}}}}\n  - {{name: state is per suite and cases run in order, request: review.yaml, repeat: 2, expect: {{allowed: false}}}}\n",
        path(&artefact("quota")),
    );
    let suite_path = dir.join("suite.yaml");
    std::fs::write(&suite_path, suite).expect("write");
    let output = palisade(&cache)
        .args(["test", path(&suite_path)])
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.ends_with("4 passed, 0 failed\n"), "{stdout}");
    // Without the grants, the policy is told no, and it says so.
    let denied = std::fs::read_to_string(&suite_path)
        .expect("read")
        .replace("capabilities: {clock: true, state: true}\n", "");
    std::fs::write(&suite_path, denied).expect("write");
    let output = palisade(&cache)
        .args(["test", path(&suite_path)])
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("not granted the clock capability"),
        "{stdout}"
    );
}

#[test]
fn bundled_example_suite_passes() {
    let cache = tempfile::tempdir().expect("dir");
    artefact("pod_security");
    let output = palisade(&cache)
        .args(["test", path(&example("suite.yaml"))])
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.ends_with("6 passed, 0 failed\n"), "{stdout}");
}

#[test]
fn readme_cli_reference_is_current() {
    let cache = tempfile::tempdir().expect("dir");
    let output = palisade(&cache).arg("reference").output().expect("runs");
    let reference = String::from_utf8(output.stdout).expect("utf-8");
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let start = "<!-- cli-reference:start -->\n";
    let section = readme
        .split(start)
        .nth(1)
        .and_then(|rest| rest.split("<!-- cli-reference:end -->").next());
    assert_eq!(
        section,
        Some(reference.as_str()),
        "the README's CLI reference is stale: run `make docs`"
    );
}

#[test]
fn webhook_config_routes_each_policy_with_its_rules() {
    let cache = tempfile::tempdir().expect("dir");
    let policy = artefact("pod_security");
    let config = cache.path().join("palisade.yaml");
    std::fs::write(
        &config,
        format!(
            "policies:\n  - {{id: pod-security, module: {}, failurePolicy: Ignore}}\n",
            path(&policy)
        ),
    )
    .expect("write");
    let ca = cache.path().join("ca.crt");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    let output = palisade(&cache)
        .args([
            "webhook-config",
            "--config",
            path(&config),
            "--ca-bundle",
            path(&ca),
            "--namespace",
            "security",
        ])
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
        .map(|doc| Value::deserialize(doc).expect("yaml document"))
        .collect();
    let kinds: Vec<&str> = objects
        .iter()
        .map(|o| o["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(
        kinds,
        [
            "ValidatingWebhookConfiguration",
            "MutatingWebhookConfiguration"
        ]
    );
    let webhook = &objects[0]["webhooks"][0];
    assert_eq!(webhook["name"], "pod-security.palisade.dev");
    assert_eq!(
        webhook["clientConfig"]["service"]["path"],
        "/validate/pod-security"
    );
    assert_eq!(webhook["clientConfig"]["service"]["namespace"], "security");
    assert_eq!(webhook["failurePolicy"], "Ignore");
    assert_eq!(webhook["sideEffects"], "None");
    assert_eq!(
        webhook["admissionReviewVersions"],
        serde_json::json!(["v1", "v1beta1"])
    );
    let ca_bundle = webhook["clientConfig"]["caBundle"]
        .as_str()
        .expect("caBundle");
    assert!(
        ca_bundle.starts_with("LS0tLS1CRUdJTi"),
        "base64 of the PEM: {ca_bundle}"
    );
    let resources: Vec<&str> = webhook["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .flat_map(|r| {
            r["resources"]
                .as_array()
                .expect("resources")
                .iter()
                .map(|v| v.as_str().expect("resource"))
        })
        .collect();
    for expected in ["pods", "deployments", "cronjobs"] {
        assert!(resources.contains(&expected), "{resources:?}");
    }
    assert_eq!(
        objects[1]["webhooks"][0]["clientConfig"]["service"]["path"],
        "/mutate/pod-security"
    );
    let excluded = &webhook["namespaceSelector"]["matchExpressions"][0]["values"];
    assert_eq!(*excluded, serde_json::json!(["security", "kube-system"]));
}

#[test]
fn webhook_config_refuses_an_api_server_wait_shorter_than_the_server_deadline() {
    let cache = tempfile::tempdir().expect("dir");
    let policy = artefact("pod_security");
    let config = cache.path().join("palisade.yaml");
    std::fs::write(
        &config,
        format!(
            "limits: {{requestTimeout: 8s}}\npolicies:\n  - {{id: pod-security, module: {}}}\n",
            path(&policy)
        ),
    )
    .expect("write");
    let run = |seconds: &str| {
        palisade(&cache)
            .args([
                "webhook-config",
                "--config",
                path(&config),
                "--timeout-seconds",
                seconds,
            ])
            .output()
            .expect("runs")
    };
    let refused = run("8");
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(
            "limits.requestTimeout (8s) must be shorter than the webhook's timeoutSeconds (8s)"
        ),
        "{stderr}"
    );
    assert!(refused.stdout.is_empty());
    let accepted = run("9");
    assert_eq!(
        accepted.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&accepted.stderr)
    );
}

#[test]
fn cert_writes_a_ca_and_a_serving_pair_and_keeps_existing_files() {
    let cache = tempfile::tempdir().expect("dir");
    let out = cache.path().join("tls");
    let run = |extra: &[&str]| {
        palisade(&cache)
            .args(["cert", "--out", path(&out), "--client"])
            .args(extra)
            .output()
            .expect("runs")
    };
    assert_eq!(run(&[]).status.code(), Some(0));
    for file in ["ca.crt", "tls.crt", "tls.key", "client.crt", "client.key"] {
        let text = std::fs::read_to_string(out.join(file)).expect(file);
        assert!(text.starts_with("-----BEGIN "), "{file} is PEM");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join("tls.key"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "private keys are readable by their owner only"
        );
    }
    let again = run(&[]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert_eq!(run(&["--force"]).status.code(), Some(0));
}

/// `palisade serve --insecure-http` on a free 127.0.0.1 port; killed on drop.
struct Server {
    child: std::process::Child,
    port: u16,
}

impl Server {
    fn start(config: &Path, cache: &tempfile::TempDir) -> Self {
        Self::start_with(config, cache, None, std::process::Stdio::null())
    }

    /// The server with at most `max_files` open descriptors (`ulimit -n`), its log in `stderr`.
    fn start_with(
        config: &Path,
        cache: &tempfile::TempDir,
        max_files: Option<u32>,
        stderr: std::process::Stdio,
    ) -> Self {
        let binary = assert_cmd::cargo::cargo_bin("palisade");
        let mut command = match max_files {
            None => std::process::Command::new(binary),
            Some(n) => {
                let mut sh = std::process::Command::new("sh");
                sh.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\"")])
                    .arg(binary);
                sh
            }
        };
        let child = command
            .args(["serve", "--insecure-http", "--config", path(config)])
            .env("PALISADE_CACHE_DIR", cache.path())
            .env("PALISADE_LOG", "warn")
            .env("PALISADE_LOG_FORMAT", "text")
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("palisade serve starts");
        let text = std::fs::read_to_string(config).expect("config");
        let port = text
            .lines()
            .find_map(|l| l.strip_prefix("listen: 127.0.0.1:"))
            .and_then(|p| p.trim().parse().ok())
            .expect("the config listens on 127.0.0.1:<port>");
        let server = Self { child, port };
        for _ in 0..200 {
            if server.get("/readyz").0 == 200 {
                return server;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("palisade serve did not become ready");
    }

    /// One HTTP/1.1 exchange: the status and the body's bytes.
    fn exchange(&self, head: &str, body: &[u8]) -> (u16, Vec<u8>) {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return (0, Vec::new());
        };
        let request = format!(
            "{head} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(request.as_bytes()).expect("write");
        stream.write_all(body).expect("write");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).expect("read");
        let split = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a complete HTTP answer");
        let status = String::from_utf8_lossy(&answer[9..12]).parse().unwrap_or(0);
        (status, answer[split + 4..].to_vec())
    }

    fn get(&self, path: &str) -> (u16, Vec<u8>) {
        self.exchange(&format!("GET {path}"), b"")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[test]
fn run_answers_byte_for_byte_what_serve_answers() {
    let dir = tempfile::tempdir().expect("dir");
    let cache = tempfile::tempdir().expect("dir");
    let port = free_port();
    let config = dir.path().join("palisade.yaml");
    let pod_security = artefact("pod_security");
    let hostile = artefact("hostile");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}
policies:
  - {{id: pod-security, module: {ps}, settings: {{level: restricted, version: latest}}}}
  - {{id: baseline, module: {ps}, settings: {{level: baseline, version: latest}}}}
  - {{id: watched, module: {ps}, settings: {{level: restricted, version: latest}}, mode: monitor}}
  - {{id: mutating, module: {ps}, settings: {{level: restricted, version: latest, mutate: true}}}}
  - {{id: trap-closed, module: {hostile}, settings: {{behaviour: trap}}}}
  - {{id: trap-open, module: {hostile}, settings: {{behaviour: trap}}, failurePolicy: Ignore}}
groups:
  - {{id: both, expression: baseline && pod-security, message: both levels}}
",
            ps = path(&pod_security),
            hostile = path(&hostile),
        ),
    )
    .expect("write config");
    // The requests as the API server sends them: JSON, the same file for both.
    let requests: Vec<PathBuf> = ["baseline-pod.yaml", "privileged-pod.yaml"]
        .iter()
        .map(|name| {
            let value: Value =
                serde_yaml::from_str(&std::fs::read_to_string(example(name)).expect("read"))
                    .expect("yaml");
            let json = dir.path().join(name.replace(".yaml", ".json"));
            std::fs::write(&json, value.to_string()).expect("write");
            json
        })
        .collect();
    let server = Server::start(&config, &cache);
    let mut compared = 0;
    for id in [
        "pod-security",
        "baseline",
        "watched",
        "mutating",
        "trap-closed",
        "trap-open",
        "both",
    ] {
        for request in &requests {
            for endpoint in ["validate", "mutate"] {
                let body = std::fs::read(request).expect("read");
                let (status, served) = server.exchange(&format!("POST /{endpoint}/{id}"), &body);
                assert_eq!(status, 200, "{id} {endpoint}");
                let output = palisade(&cache)
                    .args(["run", "--config", path(&config), "--id", id])
                    .args(["--request", path(request), "--output", "compact"])
                    .args(["--endpoint", endpoint])
                    .output()
                    .expect("runs");
                let stdout = output.stdout.strip_suffix(b"\n").unwrap_or(&output.stdout);
                assert_eq!(
                    String::from_utf8_lossy(stdout),
                    String::from_utf8_lossy(&served),
                    "{id} {endpoint} {}",
                    request.display()
                );
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 28);
    // A module with settings on the command line answers as the configured policy does.
    let settings = dir.path().join("settings.json");
    std::fs::write(&settings, r#"{"level": "baseline", "version": "latest"}"#).expect("write");
    let body = std::fs::read(&requests[1]).expect("read");
    let (_, served) = server.exchange("POST /validate/baseline", &body);
    let output = palisade(&cache)
        .args([
            "run",
            "--policy",
            path(&pod_security),
            "--settings",
            path(&settings),
        ])
        .args(["--id", "baseline", "--request", path(&requests[1])])
        .args(["--output", "compact", "--endpoint", "validate"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(output.stdout.strip_suffix(b"\n").unwrap_or(&output.stdout)),
        String::from_utf8_lossy(&served)
    );
}

/// CPU seconds a process has used (user + system), from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/<pid>/stat");
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("stat")
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    ticks / 100.0
}

#[test]
fn out_of_descriptors_the_server_pauses_between_accepts_logs_once_and_counts() {
    let dir = tempfile::tempdir().expect("dir");
    let cache = tempfile::tempdir().expect("dir");
    let port = free_port();
    let config = dir.path().join("palisade.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}\npolicies:\n  - {{id: pod-security, module: {}}}\n",
            path(&artefact("pod_security"))
        ),
    )
    .expect("write config");
    let log = dir.path().join("server.log");
    let server = Server::start_with(
        &config,
        &cache,
        Some(64),
        std::process::Stdio::from(std::fs::File::create(&log).expect("log file")),
    );
    // Hold more connections than the server has descriptors: accept then fails with EMFILE.
    let held: Vec<_> = (0..96)
        .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let pid = server.child.id();
    let before = cpu_seconds(pid);
    std::thread::sleep(std::time::Duration::from_secs(2));
    let used = cpu_seconds(pid) - before;
    assert!(
        used < 0.3,
        "out of descriptors, the server used {used:.2} s of CPU in 2 s: it spins on accept"
    );
    drop(held);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let (status, metrics) = server.get("/metrics");
    assert_eq!(
        status, 200,
        "the server accepts again once descriptors are free"
    );
    let metrics = String::from_utf8_lossy(&metrics).into_owned();
    let errors: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("palisade_accept_errors_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("palisade_accept_errors_total in /metrics");
    assert!(errors >= 1.0, "{metrics}");
    let lines = std::fs::read_to_string(&log)
        .expect("log")
        .lines()
        .filter(|l| l.contains("accepting connections fails"))
        .count();
    assert!(
        (1..=2).contains(&lines),
        "{lines} log lines about failing accepts, for {errors} failures"
    );
}

/// The command as a plain process, for control over its standard streams.
fn process(cache: &tempfile::TempDir) -> std::process::Command {
    let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("palisade"));
    command
        .env("PALISADE_CACHE_DIR", cache.path())
        .env_remove("PALISADE_LOG");
    command
}

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let cache = tempfile::tempdir().expect("dir");
    let mut child = process(&cache)
        .args(["run", "--policy", path(&artefact("pod_security"))])
        .args(["--request", path(&example("privileged-pod.yaml"))])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    // `palisade run ... | head -c0`: the reader is gone before anything is written.
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("error:"), "{stderr}");
}

#[test]
fn a_full_disk_is_an_error_naming_stdout() {
    let cache = tempfile::tempdir().expect("dir");
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let output = process(&cache)
        .args(["test", path(&example("suite.yaml"))])
        .stdout(full)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("error: writing to stdout: No space left on device"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
