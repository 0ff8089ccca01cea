//! `palisade istio` as a user runs it: the WasmPlugin and EnvoyFilter it prints, parsed from YAML
//! and checked against the CRD subsets in `fixtures/istio/` (which are themselves checked to
//! reject bad values, so they are not vacuous). Modules are built here from WAT; no network.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::{Value, json};

const WASM_TYPE_URL: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/istio")
        .join(name)
}

fn validator(schema: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(fixture(schema)).expect("schema file");
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::validator_for(&schema).expect("schema compiles")
}

fn assert_valid(schema: &str, instance: &Value) {
    let validator = validator(schema);
    let errors = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect::<Vec<_>>();
    assert!(
        errors.is_empty(),
        "{schema} rejects the output:\n{}\n{instance:#}",
        errors.join("\n")
    );
}

fn assert_invalid(schema: &str, instance: &Value, why: &str) {
    assert!(
        !validator(schema).is_valid(instance),
        "{schema} accepts {why}: the schema is too loose"
    );
}

/// A temp dir holding a proxy-wasm module built from WAT and a plugin configuration.
struct Workspace {
    dir: tempfile::TempDir,
    module: Vec<u8>,
}

impl Workspace {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let module = wat::parse_str(
            r#"(module
                 (memory (export "memory") 1)
                 (func (export "proxy_abi_version_0_2_1"))
                 (func (export "proxy_on_vm_start") (param i32 i32) (result i32) i32.const 1))"#,
        )
        .expect("wat");
        std::fs::write(dir.path().join("request_guard.wasm"), &module).expect("write module");
        std::fs::write(
            dir.path().join("config.yaml"),
            "deny:\n  paths: [\"/admin\"]\nmode: enforce\nlimit: 3\n",
        )
        .expect("write config");
        Self { dir, module }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    fn sha256(&self) -> String {
        palisade_oci::sha256_hex(&self.module)
    }

    /// Runs `palisade istio ARGS`; returns the exit code, stdout parsed as YAML, and stderr.
    fn istio(&self, args: &[&str]) -> (i32, Value, String) {
        let output = Command::cargo_bin("palisade")
            .expect("binary")
            .current_dir(self.dir.path())
            .env_remove("PALISADE_LOG")
            .env_remove("PALISADE_REGISTRY_USERNAME")
            .env_remove("PALISADE_REGISTRY_PASSWORD")
            .arg("istio")
            .args(args)
            .output()
            .expect("runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let parsed = if stdout.trim().is_empty() {
            Value::Null
        } else {
            serde_yaml::from_str(&stdout).expect("stdout is YAML")
        };
        (
            output.status.code().unwrap_or(-1),
            parsed,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    fn render(&self, args: &[&str]) -> Value {
        let (code, out, err) = self.istio(args);
        assert_eq!(code, 0, "palisade istio {args:?} failed: {err}");
        out
    }

    fn served(&self, extra: &[&str]) -> Value {
        let module = self.path("request_guard.wasm");
        let config = self.path("config.yaml");
        let mut args = vec![
            module.as_str(),
            "--config",
            config.as_str(),
            "--url",
            "https://filters.example/request_guard.wasm",
        ];
        args.extend_from_slice(extra);
        self.render(&args)
    }
}

#[test]
fn wasm_plugin_for_a_served_module_matches_the_crd_schema() {
    let ws = Workspace::new();
    let plugin = ws.served(&[
        "--namespace",
        "shop",
        "--selector",
        "app=checkout",
        "--selector",
        "tier=web",
        "--priority",
        "-5",
        "--plugin-name",
        "request_guard",
        "--phase",
        "AUTHN",
        "--fail-strategy",
        "FAIL_RELOAD",
    ]);
    assert_valid("wasmplugin.schema.json", &plugin);
    assert_eq!(
        plugin,
        json!({
            "apiVersion": "extensions.istio.io/v1alpha1",
            "kind": "WasmPlugin",
            "metadata": {"name": "request-guard", "namespace": "shop"},
            "spec": {
                "selector": {"matchLabels": {"app": "checkout", "tier": "web"}},
                "url": "https://filters.example/request_guard.wasm",
                "sha256": ws.sha256(),
                "imagePullPolicy": "IfNotPresent",
                "phase": "AUTHN",
                "priority": -5,
                "failStrategy": "FAIL_RELOAD",
                "pluginName": "request_guard",
                "pluginConfig": {"deny": {"paths": ["/admin"]}, "mode": "enforce", "limit": 3},
            },
        })
    );
}

#[test]
fn wasm_plugin_defaults_fail_closed_in_the_authz_phase() {
    let ws = Workspace::new();
    let plugin = ws.served(&[]);
    assert_valid("wasmplugin.schema.json", &plugin);
    let spec = &plugin["spec"];
    assert_eq!(spec["phase"], "AUTHZ");
    assert_eq!(spec["failStrategy"], "FAIL_CLOSE");
    assert_eq!(plugin["metadata"]["namespace"], "default");
    assert!(spec.get("selector").is_none() && spec.get("priority").is_none());
}

#[test]
fn every_phase_renders_a_valid_wasm_plugin_and_envoy_filter() {
    let ws = Workspace::new();
    for phase in ["AUTHN", "AUTHZ", "STATS", "UNSPECIFIED_PHASE"] {
        let plugin = ws.served(&["--phase", phase]);
        assert_valid("wasmplugin.schema.json", &plugin);
        assert_eq!(plugin["spec"]["phase"], phase);
        let filter = ws.served(&["--phase", phase, "--envoyfilter"]);
        assert_valid("envoyfilter.schema.json", &filter);
        let patch = &filter["spec"]["configPatches"][1]["patch"];
        if phase == "UNSPECIFIED_PHASE" {
            // Just before the router: WasmPlugin's meaning of the unspecified phase.
            assert_eq!(patch["operation"], "INSERT_BEFORE");
            assert_eq!(
                filter["spec"]["configPatches"][1]["match"]["listener"]["filterChain"]["filter"]["subFilter"]
                    ["name"],
                "envoy.filters.http.router"
            );
        } else {
            assert_eq!(patch["operation"], "ADD");
            assert_eq!(patch["filterClass"], phase);
        }
    }
}

#[test]
fn envoy_filter_pairs_an_extension_config_with_an_ecds_http_filter() {
    let ws = Workspace::new();
    let filter = ws.served(&[
        "--envoyfilter",
        "--namespace",
        "shop",
        "--name",
        "guard",
        "--selector",
        "app=checkout",
        "--plugin-name",
        "request_guard",
        "--fail-strategy",
        "FAIL_OPEN",
        "--image-pull-policy",
        "Always",
    ]);
    assert_valid("envoyfilter.schema.json", &filter);
    assert_eq!(
        filter["metadata"],
        json!({"name": "guard", "namespace": "shop"})
    );
    assert_eq!(
        filter["spec"]["workloadSelector"],
        json!({"labels": {"app": "checkout"}})
    );

    let patches = filter["spec"]["configPatches"].as_array().expect("patches");
    let extension = &patches[0];
    assert_eq!(extension["applyTo"], "EXTENSION_CONFIG");
    let value = &extension["patch"]["value"];
    assert_eq!(value["typed_config"]["@type"], WASM_TYPE_URL);
    let config = &value["typed_config"]["config"];
    assert_eq!(config["name"], "shop.guard");
    assert_eq!(config["root_id"], "request_guard");
    assert_eq!(config["failure_policy"], "FAIL_OPEN");
    assert_eq!(config["fail_open"], true);
    let vm = &config["vm_config"];
    assert_eq!(vm["runtime"], "envoy.wasm.runtime.v8");
    assert_eq!(
        vm["code"]["remote"]["http_uri"]["uri"],
        "https://filters.example/request_guard.wasm"
    );
    assert_eq!(vm["code"]["remote"]["sha256"], ws.sha256().as_str());
    assert_eq!(
        vm["environment_variables"]["key_values"]["ISTIO_META_WASM_IMAGE_PULL_POLICY"],
        "Always"
    );
    // The plugin configuration travels as JSON text in a StringValue, as istiod sends it.
    assert_eq!(
        config["configuration"]["@type"],
        "type.googleapis.com/google.protobuf.StringValue"
    );
    let text = config["configuration"]["value"].as_str().expect("string");
    let passed: Value = serde_json::from_str(text).expect("configuration is JSON");
    assert_eq!(
        passed,
        json!({"deny": {"paths": ["/admin"]}, "mode": "enforce", "limit": 3})
    );

    // The HTTP filter names the extension config and discovers it over ADS.
    let http = &patches[1];
    assert_eq!(http["applyTo"], "HTTP_FILTER");
    assert_eq!(http["match"]["context"], "SIDECAR_INBOUND");
    assert_eq!(http["patch"]["value"]["name"], value["name"]);
    let discovery = &http["patch"]["value"]["config_discovery"];
    assert_eq!(discovery["type_urls"], json!([WASM_TYPE_URL]));
    assert_eq!(discovery["config_source"]["ads"], json!({}));
}

#[test]
fn a_file_url_becomes_a_local_filename_in_the_envoy_filter() {
    let ws = Workspace::new();
    let module = ws.path("request_guard.wasm");
    let config = ws.path("config.yaml");
    let args = [
        module.as_str(),
        "--config",
        config.as_str(),
        "--url",
        "file:///var/lib/filters/guard.wasm",
    ];
    let filter = ws.render(&[&args[..], &["--envoyfilter"]].concat());
    assert_valid("envoyfilter.schema.json", &filter);
    let code = &filter["spec"]["configPatches"][0]["patch"]["value"]["typed_config"]["config"]["vm_config"]
        ["code"];
    assert_eq!(
        code,
        &json!({"local": {"filename": "/var/lib/filters/guard.wasm"}})
    );
    let plugin = ws.render(&args);
    assert_valid("wasmplugin.schema.json", &plugin);
    assert_eq!(plugin["spec"]["url"], "file:///var/lib/filters/guard.wasm");
}

#[test]
fn an_oci_reference_uses_the_manifest_digest_it_pins() {
    let ws = Workspace::new();
    let digest = "ab".repeat(32);
    let reference = format!("oci://registry.example:5000/filters/request-guard:v1@sha256:{digest}");
    let config = ws.path("config.yaml");
    // No registry is contacted: the digest is in the reference.
    let plugin = ws.render(&[reference.as_str(), "--config", config.as_str()]);
    assert_valid("wasmplugin.schema.json", &plugin);
    assert_eq!(plugin["metadata"]["name"], "request-guard");
    assert_eq!(plugin["spec"]["url"], reference.as_str());
    assert_eq!(plugin["spec"]["sha256"], digest.as_str());
    let filter = ws.render(&[
        reference.as_str(),
        "--config",
        config.as_str(),
        "--envoyfilter",
    ]);
    assert_valid("envoyfilter.schema.json", &filter);
    let remote = &filter["spec"]["configPatches"][0]["patch"]["value"]["typed_config"]["config"]["vm_config"]
        ["code"]["remote"];
    assert_eq!(remote["http_uri"]["uri"], reference.as_str());
    assert_eq!(remote["sha256"], digest.as_str());
}

#[test]
fn an_oci_reference_takes_the_digest_flag_and_refuses_a_disagreeing_one() {
    let ws = Workspace::new();
    let config = ws.path("config.yaml");
    let digest = "cd".repeat(32);
    let plugin = ws.render(&[
        "oci://registry.example/filters/guard:v1",
        "--config",
        config.as_str(),
        "--digest",
        &format!("sha256:{digest}"),
    ]);
    assert_eq!(plugin["spec"]["sha256"], digest.as_str());

    let pinned = format!(
        "oci://registry.example/filters/guard:v1@sha256:{}",
        "ab".repeat(32)
    );
    let (code, out, err) = ws.istio(&[
        pinned.as_str(),
        "--config",
        config.as_str(),
        "--digest",
        &digest,
    ]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(out, Value::Null);
    assert!(err.contains("disagrees"), "{err}");
}

#[test]
fn refuses_a_file_that_is_not_a_proxy_wasm_module() {
    let ws = Workspace::new();
    let plain = wat::parse_str("(module (func (export \"_start\")))").expect("wat");
    std::fs::write(ws.dir.path().join("plain.wasm"), plain).expect("write");
    std::fs::write(ws.dir.path().join("script.wasm"), "#!/bin/sh\n").expect("write");
    let config = ws.path("config.yaml");
    for (file, reason) in [
        ("plain.wasm", "no proxy-wasm ABI version export"),
        ("script.wasm", "not a wasm module"),
    ] {
        let path = ws.path(file);
        let (code, out, err) = ws.istio(&[
            path.as_str(),
            "--config",
            config.as_str(),
            "--url",
            "https://filters.example/x.wasm",
        ]);
        assert_eq!(code, 2, "{file}: {err}");
        assert_eq!(out, Value::Null, "{file}: nothing on stdout");
        assert!(err.contains(reason), "{file}: {err}");
    }
}

#[test]
fn a_module_file_needs_a_url_and_a_config_object() {
    let ws = Workspace::new();
    let module = ws.path("request_guard.wasm");
    let config = ws.path("config.yaml");
    let (code, _, err) = ws.istio(&[module.as_str(), "--config", config.as_str()]);
    assert_eq!(code, 2);
    assert!(err.contains("--url is required"), "{err}");

    let (code, _, err) = ws.istio(&[
        module.as_str(),
        "--config",
        config.as_str(),
        "--url",
        "oci://registry.example/x:v1",
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("must be http://, https:// or file://"),
        "{err}"
    );

    std::fs::write(ws.dir.path().join("list.json"), "[1, 2]").expect("write");
    let list = ws.path("list.json");
    let (code, _, err) = ws.istio(&[
        module.as_str(),
        "--config",
        list.as_str(),
        "--url",
        "https://filters.example/x.wasm",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("must be an object"), "{err}");
}

#[test]
fn the_wasm_plugin_schema_rejects_what_istio_would() {
    let ws = Workspace::new();
    let good = ws.served(&["--selector", "app=checkout"]);
    assert_valid("wasmplugin.schema.json", &good);
    let bad = |path: &[&str], value: Value| {
        let mut copy = good.clone();
        let mut target = &mut copy;
        for key in &path[..path.len() - 1] {
            target = &mut target[*key];
        }
        target[path[path.len() - 1]] = value;
        copy
    };
    let schema = "wasmplugin.schema.json";
    assert_invalid(
        schema,
        &bad(&["spec", "phase"], json!("BEFORE_ROUTER")),
        "an unknown phase",
    );
    assert_invalid(
        schema,
        &bad(&["spec", "sha256"], json!("ABC")),
        "a short upper-case sha",
    );
    assert_invalid(
        schema,
        &bad(&["spec", "sha256"], json!("g".repeat(64))),
        "a non-hex sha",
    );
    assert_invalid(
        schema,
        &bad(&["spec", "failStrategy"], json!("FAIL_CLOSED")),
        "Envoy's spelling",
    );
    assert_invalid(
        schema,
        &bad(&["spec", "imagePullPolicy"], json!("Never")),
        "a pull policy Istio lacks",
    );
    assert_invalid(
        schema,
        &bad(&["spec", "priority"], json!(1_u64 << 40)),
        "a priority over int32",
    );
    assert_invalid(schema, &bad(&["spec", "url"], json!("")), "an empty url");
    assert_invalid(
        schema,
        &bad(&["spec", "pluginConfig"], json!("text")),
        "a non-object config",
    );
    assert_invalid(
        schema,
        &bad(&["spec", "selector", "matchLabels", "app"], json!("*")),
        "a wildcard label",
    );
    assert_invalid(
        schema,
        &bad(
            &["spec", "targetRefs"],
            json!([{"kind": "Service", "name": "x"}]),
        ),
        "selector and targetRefs",
    );
    assert_invalid(
        schema,
        &bad(&["spec", "rootId"], json!("x")),
        "an unknown field",
    );
    let mut no_url = good.clone();
    no_url["spec"].as_object_mut().expect("spec").remove("url");
    assert_invalid(schema, &no_url, "a plugin without url");
}

#[test]
fn the_envoy_filter_schema_rejects_what_envoy_would() {
    let ws = Workspace::new();
    let good = ws.served(&["--envoyfilter"]);
    assert_valid("envoyfilter.schema.json", &good);
    let schema = "envoyfilter.schema.json";
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut copy = good.clone();
        edit(&mut copy);
        copy
    };
    let plugin = |v: &mut Value, key: &str, value: Value| {
        v["spec"]["configPatches"][0]["patch"]["value"]["typed_config"]["config"][key] = value;
    };
    assert_invalid(
        schema,
        &with(&|v| v["spec"]["configPatches"][0]["applyTo"] = json!("EXTENSIONS")),
        "an unknown applyTo",
    );
    assert_invalid(
        schema,
        &with(&|v| v["spec"]["configPatches"][1]["match"]["context"] = json!("INBOUND")),
        "an unknown context",
    );
    assert_invalid(
        schema,
        &with(&|v| v["spec"]["configPatches"][1]["patch"]["filterClass"] = json!("BEFORE")),
        "an unknown filter class",
    );
    assert_invalid(
        schema,
        &with(&|v| plugin(v, "failure_policy", json!("FAIL_CLOSE"))),
        "WasmPlugin's spelling in Envoy",
    );
    assert_invalid(
        schema,
        &with(&|v| plugin(v, "rootId", json!("x"))),
        "a camelCase Envoy field",
    );
    assert_invalid(
        schema,
        &with(&|v| {
            v["spec"]["configPatches"][0]["patch"]["value"]["typed_config"]["config"]["vm_config"]
                ["code"]["remote"]["sha256"] = json!("XYZ");
        }),
        "a bad sha256",
    );
    assert_invalid(
        schema,
        &with(&|v| {
            v["spec"]["configPatches"][0]["patch"]["value"]["typed_config"]["config"]["vm_config"]
                ["runtime"] = json!("envoy.wasm.runtime.wamr");
        }),
        "a runtime official builds lack",
    );
    assert_invalid(
        schema,
        &with(&|v| {
            v["spec"]["configPatches"][1]["patch"]["value"]["config_discovery"]["type_urls"] =
                json!(["envoy.extensions.filters.http.rbac.v3.RBAC"]);
        }),
        "an ECDS filter that cannot receive Wasm",
    );
    assert_invalid(
        schema,
        &with(&|v| {
            v["spec"]["configPatches"][1]["patch"]
                .as_object_mut()
                .expect("patch")
                .remove("filterClass");
        }),
        "an ADD without filter class (would land after the router)",
    );
}
