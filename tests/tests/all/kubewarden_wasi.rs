//! Kubewarden's WASI mode in Palisade's runtime: a WASI command whose metadata says
//! `executionMode: wasi` (`tests/guests/kubewarden-wasi`) gets its operation in argv and its
//! input on stdin, answers on stdout, calls host capabilities through `host.call` (0 for
//! success, the answer appended to stdin), and is contained as every policy is.

use std::sync::{Arc, OnceLock};

use palisade_runtime::admission::{Instances, Options, Policy, Prepared};
use palisade_runtime::capabilities::{Capabilities, Grants};
use palisade_runtime::kubewarden::{ExecutionMode, Metadata};
use palisade_runtime::{Abi, EvalError, LoadError};
use palisade_sdk::wire::Verdict;
use serde_json::json;

use crate::kubewarden::{cluster_capabilities, engine, granted, limits, pod};

fn wasi_bytes() -> Vec<u8> {
    std::fs::read(e2e::artefact_for("kubewarden-wasi", e2e::KUBEWARDEN))
        .expect("the WASI probe (make policies)")
}

fn wasi() -> Arc<Prepared> {
    static PREPARED: OnceLock<Arc<Prepared>> = OnceLock::new();
    Arc::clone(PREPARED.get_or_init(|| {
        Arc::new(Prepared::new(engine(), &wasi_bytes()).expect("the WASI probe loads"))
    }))
}

fn configured_with(
    settings: &serde_json::Value,
    grants: Grants,
    capabilities: Option<Capabilities>,
) -> Policy {
    wasi()
        .configure(
            &settings.to_string(),
            Options {
                limits: Some(limits()),
                grants,
                capabilities: capabilities.map(Arc::new),
                instances: Instances::Warm { max_idle: 1 },
                ..Options::default()
            },
        )
        .expect("valid settings")
}

fn decide(settings: &serde_json::Value, privileged: bool) -> Result<Verdict, EvalError> {
    configured_with(settings, Grants::default(), None)
        .evaluate_blocking(&pod(privileged, &json!({"app": "web"})))
        .result
}

#[test]
fn the_metadata_chooses_wasi_mode_and_names_the_policy() {
    let prepared = wasi();
    assert_eq!(prepared.abi(), &Abi::WasiCommand);
    assert_eq!(prepared.metadata().name, "wasi-probe");
    assert!(prepared.metadata().mutating);
    let kubewarden = prepared.kubewarden().expect("embedded metadata");
    assert_eq!(kubewarden.execution_mode, ExecutionMode::Wasi);
    // The same command annotated as a waPC policy is not one: it exports no __guest_call.
    let wapc: Metadata = serde_json::from_value(json!({
        "protocolVersion": "v1", "rules": [], "mutating": false, "executionMode": "kubewarden-wapc",
    }))
    .expect("metadata");
    let refused = Prepared::new(engine(), &wapc.embed(&wasi_bytes()).expect("embedded"))
        .expect_err("not a waPC module");
    assert!(
        refused
            .to_string()
            .contains("executionMode kubewarden-wapc"),
        "{refused}"
    );
    // A WASI command without metadata is any program: refused, saying what is missing.
    let bare = wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "_start")))"#)
        .expect("wat");
    let refused = Prepared::new(engine(), &bare).expect_err("no metadata");
    assert!(
        refused.to_string().contains("no Kubewarden metadata"),
        "{refused}"
    );
}

#[test]
fn validate_reads_stdin_and_answers_on_stdout() {
    let denied = decide(&json!({"denyPrivileged": true, "code": 418}), true).expect("decides");
    assert!(!denied.allowed);
    assert_eq!(
        denied.message,
        "privileged containers are not allowed: tools"
    );
    assert_eq!(denied.code, Some(418));
    assert!(
        decide(&json!({"denyPrivileged": true}), false)
            .expect("decides")
            .allowed
    );
    // A mutated object on stdout becomes policy-server's patch, as for waPC.
    let mutated = decide(&json!({"addLabel": ["team", "payments"]}), false).expect("decides");
    assert_eq!(
        serde_json::to_value(&mutated.patch).expect("json"),
        json!([{"op": "add", "path": "/metadata/labels/team", "value": "payments"}])
    );
}

#[test]
fn settings_go_to_validate_settings_in_argv() {
    let invalid = wasi()
        .configure(r#"{"code": 7}"#, Options::default())
        .expect_err("not an HTTP error code");
    assert!(
        matches!(&invalid, LoadError::Settings(s) if s.message == "code 7 is not an HTTP error code (400-599)"),
        "{invalid}"
    );
    let unreadable = wasi()
        .configure(r#"{"denyPrivileged": "yes"}"#, Options::default())
        .expect_err("not a boolean");
    assert!(
        matches!(&unreadable, LoadError::Settings(s) if s.message.contains("cannot parse the settings")),
        "{unreadable}"
    );
    wasi()
        .validate_settings("")
        .expect("no settings are the defaults");
}

#[test]
fn misbehaviour_is_contained_and_an_exit_code_is_the_policys_failure() {
    let failed = |how: &str| decide(&json!({"hostile": how}), false).expect_err("misbehaves");
    assert!(matches!(failed("loop"), EvalError::Timeout(_)));
    assert!(matches!(failed("memory"), EvalError::MemoryLimit { .. }));
    assert!(matches!(failed("trap"), EvalError::Trap { .. }));
    let garbage = failed("garbage");
    assert!(
        matches!(&garbage, EvalError::BadOutput(m) if m.contains("not a ValidationResponse")),
        "{garbage}"
    );
    // A non-zero exit fails the policy with what it wrote to stderr (policy-server: 500).
    let exited =
        decide(&json!({"hostile": "exit", "stderr": "bad day"}), false).expect_err("exits with 1");
    assert!(
        matches!(&exited, EvalError::Policy(e) if e.to_string().contains("the policy exited with code 1: bad day the probe was told to exit with 1")),
        "{exited}"
    );
    // Written to stderr on a good run: logged, and the answer stands.
    assert!(
        decide(&json!({"stderr": "just saying"}), false)
            .expect("decides")
            .allowed
    );
}

#[test]
fn host_call_appends_the_answer_or_the_error_to_stdin() {
    let namespace = json!({"raw": {
        "binding": "kubewarden", "namespace": "kubernetes", "operation": "get_resource",
        "payload": {"api_version": "v1", "kind": "Namespace", "name": "shop", "disable_cache": false},
    }});
    // Not granted: host.call returns 1 and the refusal is on stdin, in Kubewarden's words.
    let refused = configured_with(&namespace, Grants::default(), None)
        .evaluate_blocking(&pod(false, &json!({})))
        .result
        .expect("decides");
    assert!(!refused.allowed);
    assert_eq!(
        refused.message,
        "host error: Policy has not been granted access to the 'kubernetes/get_resource' host capability. The violation has been reported."
    );
    // Granted, with a cluster: host.call returns 0 and the object follows the input on stdin.
    let answered = configured_with(
        &namespace,
        granted(&["v1/Namespace"]),
        Some(cluster_capabilities()),
    )
    .evaluate_blocking(&pod(false, &json!({})))
    .result
    .expect("decides");
    assert!(answered.allowed, "{}", answered.message);
    let object: serde_json::Value = serde_json::from_str(
        answered
            .message
            .strip_prefix("ok: ")
            .expect("the probe's success prefix"),
    )
    .expect("the Namespace as JSON");
    assert_eq!(object["metadata"]["name"], "shop");
    assert_eq!(object["metadata"]["labels"]["team"], "payments");
}
