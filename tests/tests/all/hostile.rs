//! Hostile guests are contained: each misbehaviour ends in its own `EvalError` (or `LoadError`),
//! the host keeps working, and the fail-closed verdict is a denial with reason `policy-error`.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use palisade_runtime::admission::{Instances, Options, Outcome, Policy, Prepared};
use palisade_runtime::{Abi, Engine, EngineConfig, EvalError, Limits, LoadError};
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

fn configured(behaviour: &str, instances: Instances) -> Policy {
    hostile()
        .configure(
            &format!(r#"{{"behaviour": "{behaviour}"}}"#),
            Options {
                limits: Some(limits()),
                instances,
                ..Options::default()
            },
        )
        .expect("settings are valid")
}

fn warm(behaviour: &str) -> Policy {
    configured(behaviour, Instances::default())
}

fn evaluate(behaviour: &str, limits: Limits) -> Result<palisade_sdk::wire::Verdict, EvalError> {
    let policy = hostile()
        .configure(
            &format!(r#"{{"behaviour": "{behaviour}"}}"#),
            Options {
                limits: Some(limits),
                instances: Instances::Fresh,
                ..Options::default()
            },
        )
        .expect("settings are valid");
    policy.evaluate_blocking(&request()).result
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
    let decision = warm("trap").decide_blocking(&request());
    let verdict = &decision.verdict;
    assert_eq!(decision.outcome, Outcome::FailedClosed);
    assert_eq!(decision.errors, ["trap"]);
    assert!(!verdict.allowed);
    assert_eq!(verdict.reason, "policy-error");
    assert_eq!(verdict.code, Some(500));
    assert!(
        verdict
            .message
            .starts_with("policy hostile failed (trap): the policy trapped")
            && verdict
                .message
                .ends_with("; failurePolicy Fail denies the request"),
        "{}",
        verdict.message
    );
}

#[test]
fn unknown_settings_are_rejected_before_any_request() {
    let err = hostile()
        .configure(r#"{"behavior": "loop"}"#, Options::default())
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
    let policy = configured("count", Instances::Fresh);
    for _ in 0..3 {
        let evaluation = policy.evaluate_blocking(&request());
        assert!(evaluation.started);
        assert_eq!(evaluation.result.expect("verdict").warnings, ["call 1"]);
    }
    assert_eq!(policy.instances().idle, 0);
}

#[test]
fn warm_instance_keeps_guest_memory_between_requests() {
    let policy = warm("count");
    let seen: Vec<(String, bool)> = (0..3)
        .map(|_| {
            let evaluation = policy.evaluate_blocking(&request());
            let warnings = evaluation.result.expect("verdict").warnings.concat();
            (warnings, evaluation.started)
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("call 1".to_owned(), true),
            ("call 2".to_owned(), false),
            ("call 3".to_owned(), false)
        ]
    );
    assert_eq!(policy.instances().idle, 1);
}

#[test]
fn warm_instance_is_replaced_after_a_trap() {
    let policy = warm("trap-on-name");
    let ok = policy.evaluate_blocking(&named_request("ok"));
    assert!(ok.started && ok.result.expect("verdict").allowed);
    let trapped = policy.evaluate_blocking(&named_request("trap"));
    assert!(
        matches!(trapped.result, Err(EvalError::Trap { .. })),
        "{:?}",
        trapped.result
    );
    assert!(!trapped.started, "the trap happened on the kept instance");
    assert_eq!(
        policy.instances().idle,
        0,
        "the trapped instance is dropped"
    );
    let again = policy.evaluate_blocking(&named_request("ok"));
    assert!(again.started, "a new instance answers");
    assert!(again.result.expect("verdict").allowed);
}

#[test]
fn warm_instance_enforces_the_deadline_on_every_call() {
    let policy = warm("loop");
    for _ in 0..2 {
        let err = policy
            .evaluate_blocking(&request())
            .result
            .expect_err("must not finish");
        assert!(matches!(err, EvalError::Timeout(_)), "{err:?}");
    }
}

#[test]
fn idle_instances_are_bounded() {
    let policy = configured("allow", Instances::Warm { max_idle: 0 });
    for _ in 0..2 {
        assert!(policy.evaluate_blocking(&request()).started);
    }
    assert_eq!(policy.instances().idle, 0);
}

#[test]
fn idle_instances_are_dropped_once_idle_long_enough() {
    let policy = Arc::new(configured("allow", Instances::Warm { max_idle: 8 }));
    // A burst: four evaluations at once (overlapping or not) leave idle instances.
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let policy = Arc::clone(&policy);
            scope.spawn(move || {
                let _ = policy.evaluate_blocking(&request());
            });
        }
    });
    let burst = policy.instances().idle;
    assert!(burst >= 1, "the burst left {burst} idle instances");
    assert_eq!(policy.drop_idle(Duration::from_secs(60)), 0);
    assert_eq!(policy.instances().idle, burst);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(policy.drop_idle(Duration::from_millis(10)), burst);
    assert_eq!(policy.instances().idle, 0);
    // The policy goes on, with a new instance.
    assert!(policy.evaluate_blocking(&request()).started);
}

#[test]
fn a_flood_of_an_answer_is_cut_to_the_answer_limits() {
    let verdict = warm("flood")
        .evaluate_blocking(&request())
        .result
        .expect("a verdict, cut");
    assert!(
        verdict.message.len() < 33 << 10,
        "{}",
        verdict.message.len()
    );
    assert!(verdict.message.ends_with("... [cut: 4194304 bytes]"));
    assert_eq!(verdict.warnings.len(), 64);
    assert!(verdict.warnings[63].starts_with("99937 more warnings"));
    assert!(verdict.audit_annotations["flood"].len() < 9 << 10);
}

#[test]
fn a_denial_with_a_success_code_is_a_policy_error() {
    let policy = warm("success-code-denial");
    let err = policy
        .evaluate_blocking(&request())
        .result
        .expect_err("invalid answer");
    assert!(matches!(err, EvalError::BadOutput(_)), "{err:?}");
    assert!(err.to_string().contains("HTTP code 200"), "{err}");
    let decision = policy.decide_blocking(&request());
    assert_eq!(decision.outcome, Outcome::FailedClosed);
    assert_eq!(decision.verdict.code, Some(500));
}

#[test]
fn a_policy_bounded_to_one_evaluation_at_once_makes_the_others_wait() {
    let policy = Arc::new(
        hostile()
            .configure(
                r#"{"behaviour": "loop"}"#,
                Options {
                    limits: Some(limits()),
                    max_concurrency: Some(1),
                    ..Options::default()
                },
            )
            .expect("settings"),
    );
    let evaluations: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let policy = Arc::clone(&policy);
                scope.spawn(move || policy.evaluate_blocking(&request()))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let mut waits: Vec<Duration> = evaluations.iter().map(|e| e.waited).collect();
    waits.sort();
    // One at a time, each running to its 200 ms deadline: the others waited their turns.
    assert!(waits[0] < Duration::from_millis(100), "{waits:?}");
    assert!(waits[1] >= Duration::from_millis(150), "{waits:?}");
    assert!(waits[2] >= Duration::from_millis(350), "{waits:?}");
    for evaluation in &evaluations {
        assert!(
            evaluation.ran >= Duration::from_millis(150),
            "{:?}",
            evaluation.ran
        );
    }
}
