//! `palisade run --http` and `palisade test` with a proxy-wasm filter (request-guard and its
//! example scenario and suite), as a user runs them.

use serde_json::{Value, json};

use crate::support::{built, istio_plugin, palisade, root};

fn filter() -> String {
    built("proxy-wasm", "request_guard.wasm")
        .to_string_lossy()
        .into_owned()
}

fn example(name: &str) -> String {
    root()
        .join("policies/request-guard/examples")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// `palisade test <suite>`, which must pass with the closing line `<count> passed, 0 failed`.
fn suite_passes(cache: &tempfile::TempDir, suite: &std::path::Path, count: usize) {
    let output = palisade(cache)
        .arg("test")
        .arg(suite)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(&format!("{count} passed, 0 failed")),
        "{stdout}"
    );
}

/// `palisade run --policy <module> --http <scenario>`: its JSON report.
fn run_http(
    cache: &tempfile::TempDir,
    module: &std::path::Path,
    scenario: &std::path::Path,
) -> Value {
    let output = palisade(cache)
        .args(["run", "--policy"])
        .arg(module)
        .arg("--http")
        .arg(scenario)
        .output()
        .expect("runs");
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)))
}

#[test]
fn run_http_reports_each_request_as_envoy_would_handle_it() {
    let cache = tempfile::tempdir().expect("dir");
    let output = palisade(&cache)
        .args([
            "run",
            "--policy",
            &filter(),
            "--http",
            &example("scenario.yaml"),
        ])
        .output()
        .expect("runs");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert_eq!(report["accepted"], true);
    let requests = report["requests"].as_array().expect("requests");
    let outcomes: Vec<&str> = requests
        .iter()
        .filter_map(|r| r["outcome"].as_str())
        .collect();
    assert_eq!(
        outcomes,
        ["upstream", "local-reply", "local-reply", "upstream"]
    );
    // A request id was added on the way upstream, and echoed to the client.
    let added = &requests[0]["upstream"]["headersAdded"][0];
    assert_eq!(added[0], "x-request-id");
    assert_eq!(requests[0]["response"]["headers"][0], *added);
    // The denial never reached upstream; Envoy's local reply carries the configured body.
    assert!(requests[1].get("upstream").is_none());
    assert_eq!(requests[1]["response"]["status"], 403);
    assert_eq!(requests[1]["response"]["body"], "access denied\n");
    // Existing ids are kept.
    assert_eq!(
        requests[3]["upstream"]["headersAdded"],
        serde_json::json!([])
    );
    // Callback order on a stream ends on_log, on_done, on_delete.
    let callbacks: Vec<&str> = requests[0]["callbacks"]
        .as_array()
        .expect("callbacks")
        .iter()
        .filter_map(|c| c.as_str())
        .map(|c| c.split('(').next().unwrap_or_default())
        .collect();
    assert_eq!(
        callbacks,
        [
            "proxy_on_context_create",
            "proxy_on_request_headers",
            "proxy_on_response_headers",
            "proxy_on_response_body",
            "proxy_on_log",
            "proxy_on_done",
            "proxy_on_delete"
        ]
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("admin is denied: local-reply 403"),
        "{stderr}"
    );
}

#[test]
fn trace_prints_every_hostcall_with_its_status() {
    let cache = tempfile::tempdir().expect("dir");
    let output = palisade(&cache)
        .args([
            "run",
            "--trace",
            "--policy",
            &filter(),
            "--http",
            &example("scenario.yaml"),
        ])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The first stream on worker 0 is context 2 with the four pseudo-headers.
    assert!(
        stderr.contains("worker-0 => proxy_on_request_headers(2, 4, 1)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("worker-0 ctx=2 proxy_get_header_map_pairs(0, "),
        "{stderr}"
    );
    assert!(stderr.contains("proxy_get_property("), "{stderr}");
    assert!(
        stderr.contains("worker-1 ctx=2 proxy_send_local_response(403, "),
        "{stderr}"
    );
    assert!(stderr.contains(") -> OK"), "{stderr}");
}

#[test]
fn proxy_suite_passes_and_a_broken_expectation_fails() {
    let cache = tempfile::tempdir().expect("dir");
    suite_passes(&cache, example("suite.yaml").as_ref(), 3);

    let dir = tempfile::tempdir().expect("dir");
    let suite = dir.path().join("suite.yaml");
    std::fs::write(
        &suite,
        format!(
            "policy: {}\ncases:\n  - name: wrong status\n    scenario: {}\n    expect:\n      requests:\n        - {{outcome: local-reply, status: 451}}\n",
            filter(),
            example("scenario.yaml")
        ),
    )
    .expect("write");
    let output = palisade(&cache)
        .arg("test")
        .arg(&suite)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("expected outcome local-reply, got upstream"),
        "{stdout}"
    );
    assert!(stdout.contains("expected status 451, got 200"), "{stdout}");
}

#[test]
fn a_scenario_with_a_typo_is_an_error_naming_the_field() {
    let cache = tempfile::tempdir().expect("dir");
    let dir = tempfile::tempdir().expect("dir");
    let scenario = dir.path().join("scenario.yaml");
    std::fs::write(&scenario, "plugin:\n  workers: 1\n  rootID: x\n").expect("write");
    let output = palisade(&cache)
        .args(["run", "--policy", &filter(), "--http"])
        .arg(&scenario)
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("plugin"), "{stderr}");
    assert!(stderr.contains("rootID"), "{stderr}");
}

/// rate-limit's examples as its README shows them: the suite passes (two workers sharing the
/// buckets), the scenario's statistics are Envoy's, `palisade istio` wraps the pasted
/// typed_configs (local and global) in a WasmPlugin, and the admission home's suite and settings
/// work.
#[test]
fn rate_limit_examples_pass_and_package() {
    let cache = tempfile::tempdir().expect("dir");
    let examples = root().join("policies/rate-limit/examples");
    suite_passes(&cache, &examples.join("suite.yaml"), 4);

    let module = built("proxy-wasm", "rate_limit.wasm");
    let report = run_http(&cache, &module, &examples.join("scenario.yaml"));
    let metric = |name: &str| {
        report["metrics"][format!("http_local_rate_limiter.http_local_rate_limit.{name}")]["value"]
            .as_u64()
    };
    assert_eq!(metric("enabled"), Some(7));
    assert_eq!(metric("ok"), Some(5));
    assert_eq!(metric("rate_limited"), Some(2));
    assert_eq!(metric("enforced"), Some(2));

    // Each filter's typed_config, pasted into a WasmPlugin.
    let url = ["--url", "https://artefacts.shop.example/rate_limit.wasm"];
    let plugin = |config: &str| istio_plugin(&cache, &examples.join(config), &url, &module);
    let local = plugin("envoy-local-ratelimit.yaml");
    assert_eq!(local["kind"], "WasmPlugin");
    assert_eq!(
        local["spec"]["pluginConfig"]["descriptors"][0]["token_bucket"]["max_tokens"],
        3
    );
    let global = plugin("envoy-global-ratelimit.yaml");
    assert_eq!(global["spec"]["pluginConfig"]["domain"], "shop");
    assert_eq!(
        global["spec"]["pluginConfig"]["rate_limit_service"]["grpc_service"]["envoy_grpc"]["cluster_name"],
        "outbound|8081||ratelimit.infra.svc.cluster.local"
    );

    // The admission home: its suite passes, and each example settings file configures the
    // component (a request `palisade run` answers, with the rate-limit capability granted).
    let admission = examples.join("admission");
    suite_passes(&cache, &admission.join("suite.yaml"), 5);
    for (settings, request) in [
        ("event-rate-limit.yaml", "event.yaml"),
        ("pod-creations.yaml", "pod-by-deployer.yaml"),
        ("pod-creations.yaml", "event.yaml"),
    ] {
        let output = palisade(&cache)
            .args(["run", "--policy"])
            .arg(built("admission-component", "rate_limit.wasm"))
            .arg("--settings")
            .arg(admission.join(settings))
            .arg("--request")
            .arg(admission.join(request))
            .args(["--capability", "rate-limit"])
            .output()
            .expect("runs");
        let review: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "{settings}: {e}: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
        assert_eq!(
            review["response"]["allowed"], true,
            "{settings} on {request}: {review}"
        );
    }
}

/// zero-trust's examples as its README shows them: the suite (with the JWT scenario: key set
/// fetched through the cluster after one failure, Envoy's outcomes) passes, and `palisade
/// istio` wraps the shop's configuration in a WasmPlugin.
#[test]
fn zero_trust_examples_pass_and_package() {
    let cache = tempfile::tempdir().expect("dir");
    let examples = root().join("policies/zero-trust/examples");
    suite_passes(&cache, &examples.join("suite.yaml"), 9);

    let module = built("proxy-wasm", "zero_trust.wasm");
    let plugin = istio_plugin(
        &cache,
        &examples.join("istio-plugin-config.yaml"),
        &[
            "--url",
            "https://artefacts.shop.example/zero_trust.wasm",
            "--namespace",
            "shop",
        ],
        &module,
    );
    assert_eq!(plugin["kind"], "WasmPlugin");
    assert_eq!(plugin["spec"]["phase"], "AUTHZ");
    let config = &plugin["spec"]["pluginConfig"];
    assert_eq!(
        config["authentication"][0]["spec"]["jwtRules"][0]["jwksUri"],
        "https://auth.shop.example/.well-known/jwks.json"
    );
    assert_eq!(config["policies"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        config["extensionProviders"][0]["envoyExtAuthzHttp"]["service"],
        "shop/orders-authz.shop.svc.cluster.local"
    );

    // The JWT scenario's Envoy counters: per result and per deciding rule.
    let report = run_http(&cache, &module, &examples.join("jwt/shop.yaml"));
    let metric = |name: &str| report["metrics"][name]["value"].as_u64();
    assert_eq!(metric("zero_trust.allowed"), Some(4));
    assert_eq!(metric("zero_trust.denied"), Some(7));
    assert_eq!(metric("zero_trust.rule.token.denied"), Some(4));
    assert_eq!(
        metric("zero_trust.rule.ns[shop]-policy[admin-only]-rule[0].denied"),
        Some(1)
    );
}

/// The SDK's gRPC callouts through the proxy-wasm adapter and host: the call goes out with its
/// service, method, metadata and message; an OK answer's binary message (bodyBase64) reaches
/// the policy whole; a failed call's status and message do; a timeout is DEADLINE_EXCEEDED;
/// a call the proxy refuses (an unknown cluster) is no answer at all.
#[test]
fn grpc_callouts_reach_the_policy_with_their_status_and_message() {
    let cache = tempfile::tempdir().expect("dir");
    let dir = tempfile::tempdir().expect("dir");
    let scenario = dir.path().join("grpc.yaml");
    // "\u{1}\u{2}ok" in base64: bytes that are not text survive the trip.
    std::fs::write(
        &scenario,
        r#"
plugin: {workers: 1, configuration: {cluster: rls, timeoutMs: 200}}
clusters:
  rls:
    - {bodyBase64: AQJvaw==}
    - {grpcStatus: 14, grpcMessage: no healthy upstream}
    - {delay: 500ms, bodyBase64: AQJvaw==}
steps:
  - name: ok
    request: {path: /one}
  - name: unavailable
    request: {path: /two}
  - name: too slow
    request: {path: /three}
  - advance: 1s
"#,
    )
    .expect("write");
    let module = built("proxy-wasm", "grpc_probe.wasm");
    let run = |scenario: &std::path::Path| run_http(&cache, &module, scenario);
    let report = run(&scenario);
    let requests = report["requests"].as_array().expect("requests");
    let added = &requests[0]["upstream"]["headersAdded"];
    assert_eq!(
        added,
        &serde_json::json!([
            ["x-grpc-reply", "\u{1}\u{2}ok"],
            ["x-grpc-reply-bytes", "4"]
        ]),
        "{report:#}"
    );
    assert_eq!(requests[1]["response"]["status"], 503, "{report:#}");
    assert_eq!(
        requests[1]["response"]["body"],
        "grpc 14: no healthy upstream"
    );
    assert_eq!(requests[2]["response"]["status"], 503, "{report:#}");
    assert!(
        requests[2]["response"]["body"]
            .as_str()
            .is_some_and(|b| b.starts_with("grpc 4: ")),
        "{report:#}"
    );
    let callout = &report["callouts"][0];
    assert_eq!(callout["kind"], "grpc test.Probe/Ask");
    assert_eq!(callout["cluster"], "rls");
    assert_eq!(callout["body"], "asked /one");
    assert_eq!(callout["timeoutMs"], 200);
    assert!(
        callout["headers"].to_string().contains("x-probe"),
        "{callout}"
    );

    let refused = dir.path().join("refused.yaml");
    std::fs::write(
        &refused,
        "plugin: {workers: 1, configuration: {cluster: nowhere}}\nsteps:\n  - request: {path: /}\n",
    )
    .expect("write");
    let report = run(&refused);
    assert_eq!(
        report["requests"][0]["response"]["status"], 502,
        "{report:#}"
    );
}

/// rego's OPA-Envoy examples as its README shows them: the suite passes, including the
/// decisions on request bodies (held across chunks and until the trailers, 413 over the limit,
/// partial bodies), and `palisade run --http` shows the upstream getting the held body whole.
#[test]
fn rego_envoy_examples_pass_with_request_bodies() {
    let cache = tempfile::tempdir().expect("dir");
    let examples = root().join("policies/rego/examples");
    suite_passes(&cache, &examples.join("suite.yaml"), 5);

    let report = run_http(
        &cache,
        &built("proxy-wasm", "rego.wasm"),
        &examples.join("body.yaml"),
    );
    let stdout = report.to_string();
    let requests = report["requests"].as_array().expect("requests");
    let outcomes: Vec<(&str, u64)> = requests
        .iter()
        .map(|r| {
            (
                r["outcome"].as_str().unwrap_or_default(),
                r["response"]["status"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("upstream", 200),
            ("local-reply", 403),
            ("upstream", 200),
            ("local-reply", 413),
            ("upstream", 200)
        ],
        "{stdout}"
    );
    // The trailers reach the upstream after the held body.
    assert_eq!(
        requests[2]["upstream"]["body"],
        r#"{"amount": 10, "currency": "EUR"}"#
    );
    assert_eq!(
        requests[2]["upstream"]["trailers"],
        serde_json::json!([["x-checksum", "abc"]])
    );

    // The shop's configuration: the filter takes it and decides as its comments say (a read, an
    // order within the buyer's limit, one over it with the policy's 402, a DELETE).
    let config: Value = serde_yaml::from_str(
        &std::fs::read_to_string(examples.join("istio-plugin-config.yaml")).expect("read"),
    )
    .expect("yaml");
    let order = |price: u32| {
        json!({"request": {"method": "POST", "path": "/orders",
            "headers": {"content-type": "application/json"},
            "body": json!({"lines": [{"price": price, "quantity": 3}]}).to_string()}})
    };
    let scenario = json!({
        "plugin": {"workers": 1, "configuration": config},
        "connection": {"sourceAddress": "10.1.2.9:40123", "mtls": true,
            "peerUriSans": ["spiffe://cluster.local/ns/shop/sa/frontend"]},
        "steps": [{"request": {"method": "GET", "path": "/catalogue/items"}}, order(20), order(200),
            {"request": {"method": "DELETE", "path": "/orders/1"}}],
    });
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("shop.json");
    std::fs::write(&path, scenario.to_string()).expect("write");
    let report = run_http(&cache, &built("proxy-wasm", "rego.wasm"), &path);
    let outcomes: Vec<(String, u64)> = report["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .map(|r| {
            (
                r["outcome"].as_str().unwrap_or_default().to_owned(),
                r["response"]["status"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("upstream".to_owned(), 200),
            ("upstream".to_owned(), 200),
            ("local-reply".to_owned(), 402),
            ("local-reply".to_owned(), 403)
        ],
        "{report}"
    );

    // The same configuration wrapped in a WasmPlugin.
    let plugin = istio_plugin(
        &cache,
        &examples.join("istio-plugin-config.yaml"),
        &[
            "--url",
            "https://artefacts.shop.example/rego.wasm",
            "--namespace",
            "shop",
        ],
        &built("proxy-wasm", "rego.wasm"),
    );
    assert_eq!(plugin["kind"], "WasmPlugin");
    let config = &plugin["spec"]["pluginConfig"];
    assert_eq!(config["withRequestBody"]["maxRequestBytes"], 8192);
    assert!(
        config["modules"]["orders.rego"]
            .as_str()
            .is_some_and(|m| m.contains("package envoy.authz")),
        "{config}"
    );
}
