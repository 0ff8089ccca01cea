//! Hostile guests are contained: each misbehaviour ends in its own `EvalError` (or `LoadError`),
//! the host keeps working, and the fail-closed verdict is a denial with reason `policy-error`.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use palisade_runtime::component::Prepared;
use palisade_runtime::{Abi, Engine, EngineConfig, EvalError, Limits, LoadError, review};
use palisade_sdk::testing::complete_request;
use palisade_sdk::wire::AdmissionRequest;

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::new(EngineConfig::default()).expect("engine"))
}

fn hostile() -> Arc<Prepared> {
    static PREPARED: OnceLock<Arc<Prepared>> = OnceLock::new();
    Arc::clone(PREPARED.get_or_init(|| {
        let bytes = e2e::read_artefact("hostile").expect("hostile guest artefact");
        Arc::new(Prepared::new(engine(), &bytes).expect("hostile guest loads"))
    }))
}

fn request() -> AdmissionRequest {
    named_request("p")
}

fn named_request(name: &str) -> AdmissionRequest {
    let object = serde_json::json!({"name": name, "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}}});
    complete_request(object, "hostile").expect("request")
}

fn configured(behaviour: &str) -> palisade_runtime::component::Policy {
    hostile()
        .configure(
            &format!(r#"{{"behaviour": "{behaviour}"}}"#),
            Some(limits()),
        )
        .expect("settings are valid")
}

fn evaluate(behaviour: &str, limits: Limits) -> Result<palisade_sdk::wire::Verdict, EvalError> {
    let policy = hostile()
        .configure(&format!(r#"{{"behaviour": "{behaviour}"}}"#), Some(limits))
        .expect("settings are valid");
    policy.evaluate(&request())
}

fn limits() -> Limits {
    Limits {
        timeout: Duration::from_millis(200),
        memory: 32 << 20,
    }
}

fn wat(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("guests")
        .join(name);
    wat::parse_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn well_behaved_guest_is_allowed() {
    let verdict = evaluate("allow", limits()).expect("verdict");
    assert!(verdict.allowed);
}

#[test]
fn endless_loop_is_interrupted_at_the_deadline() {
    let started = Instant::now();
    let err = evaluate("loop", limits()).expect_err("must not finish");
    assert!(
        matches!(err, EvalError::Timeout(t) if t == Duration::from_millis(200)),
        "{err:?}"
    );
    // Interrupted, not left running: well before ten times its budget.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn memory_growth_stops_at_the_cap() {
    let err = evaluate("grow-memory", limits()).expect_err("must not finish");
    match err {
        EvalError::MemoryLimit { limit, requested } => {
            assert_eq!(limit, 32 << 20);
            assert!(requested > limit);
        }
        other => panic!("expected a memory-limit error, got {other:?}"),
    }
}

#[test]
fn panic_is_a_trap_with_the_panic_message() {
    let err = evaluate("trap", limits()).expect_err("must trap");
    match &err {
        EvalError::Trap { message, backtrace } => {
            assert!(message.contains("unreachable"), "{message}");
            assert!(
                message.contains("hostile guest panics on purpose"),
                "{message}"
            );
            assert!(backtrace.contains("evaluate"), "{backtrace}");
        }
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[test]
fn stack_overflow_is_a_trap() {
    let err = evaluate("stack-overflow", limits()).expect_err("must trap");
    assert!(matches!(err, EvalError::Trap { .. }), "{err:?}");
}

#[test]
fn invalid_answer_is_bad_output() {
    let err = evaluate("empty-reason", limits()).expect_err("must be rejected");
    assert!(matches!(err, EvalError::BadOutput(_)), "{err:?}");
}

#[test]
fn policy_error_is_reported_as_such() {
    let err = evaluate("error", limits()).expect_err("policy cannot decide");
    assert!(matches!(err, EvalError::Policy(_)), "{err:?}");
}

#[test]
fn host_keeps_serving_after_every_failure() {
    for behaviour in [
        "loop",
        "grow-memory",
        "trap",
        "stack-overflow",
        "empty-reason",
        "error",
    ] {
        let _ = evaluate(behaviour, limits());
        assert!(
            evaluate("allow", limits()).expect("verdict").allowed,
            "after {behaviour}"
        );
    }
}

#[test]
fn failure_becomes_a_fail_closed_denial() {
    let err = evaluate("trap", limits()).expect_err("must trap");
    let verdict = review::policy_error_verdict("hostile", &err);
    assert!(!verdict.allowed);
    assert_eq!(verdict.reason, "policy-error");
    assert!(verdict.message.contains("trapped"), "{}", verdict.message);
}

#[test]
fn unknown_settings_are_rejected_before_any_request() {
    let err = hostile()
        .configure(r#"{"behavior": "loop"}"#, None)
        .expect_err("typo must be caught");
    match err {
        LoadError::Settings(e) => assert!(e.message.contains("behavior"), "{e}"),
        other => panic!("expected a settings error, got {other:?}"),
    }
}

#[test]
fn core_module_is_the_wrong_abi() {
    let err = Prepared::new(engine(), &wat("core-module.wat")).expect_err("not a component");
    assert!(
        matches!(
            err,
            LoadError::WrongAbi {
                found: Abi::Module,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn proxy_wasm_filter_is_named_as_such() {
    let err =
        Prepared::new(engine(), &wat("proxy-filter.wat")).expect_err("not an admission policy");
    assert!(
        err.to_string().contains("proxy-wasm filter (ABI 0.2.1)"),
        "{err}"
    );
}

#[test]
fn newer_abi_version_is_refused_with_both_versions() {
    let err = Prepared::new(engine(), &wat("future-abi.wat")).expect_err("unsupported version");
    let text = err.to_string();
    assert!(matches!(err, LoadError::AbiVersion { .. }), "{err:?}");
    assert!(text.contains("@9.0.0") && text.contains("@0.1.0"), "{text}");
}

#[test]
fn missing_export_is_reported() {
    let err = Prepared::new(engine(), &wat("missing-export.wat")).expect_err("incomplete policy");
    assert!(matches!(err, LoadError::MissingExport(_)), "{err:?}");
}

#[test]
fn non_wasm_is_rejected() {
    let err = Prepared::new(engine(), b"apiVersion: v1\n").expect_err("not wasm");
    assert!(matches!(err, LoadError::NotWasm(_)), "{err:?}");
}

#[test]
fn fresh_instances_share_nothing_between_requests() {
    let policy = configured("count");
    for _ in 0..3 {
        let verdict = policy.evaluate(&request()).expect("verdict");
        assert_eq!(verdict.warnings, ["call 1"]);
    }
}

#[test]
fn warm_instance_keeps_guest_memory_between_requests() {
    let mut warm = configured("count").warm();
    let seen: Vec<String> = (0..3)
        .map(|_| {
            warm.evaluate(&request())
                .expect("verdict")
                .warnings
                .concat()
        })
        .collect();
    assert_eq!(seen, ["call 1", "call 2", "call 3"]);
}

#[test]
fn warm_instance_is_replaced_after_a_trap() {
    let mut warm = configured("trap-on-name").warm();
    assert!(
        warm.evaluate(&named_request("ok"))
            .expect("verdict")
            .allowed
    );
    let err = warm.evaluate(&named_request("trap")).expect_err("traps");
    assert!(matches!(err, EvalError::Trap { .. }), "{err:?}");
    assert!(
        warm.evaluate(&named_request("ok"))
            .expect("a new instance answers")
            .allowed
    );
}

#[test]
fn warm_instance_enforces_the_deadline_on_every_call() {
    let mut warm = configured("loop").warm();
    for _ in 0..2 {
        let err = warm.evaluate(&request()).expect_err("must not finish");
        assert!(matches!(err, EvalError::Timeout(_)), "{err:?}");
    }
}
