//! pod-security on a realistic Deployment (3 containers, restricted, compliant):
//! native `evaluate` vs the same policy in wasm (warm instance, and fresh instance per call),
//! policy load cold (compile) vs cached, and `palisade run` as a whole process.
#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use palisade_runtime::admission::{Instances, Options, Prepared};
use palisade_runtime::{Engine, EngineConfig, review};
use palisade_sdk::parse_settings;

const SETTINGS: &str = r#"{"level": "restricted", "version": "latest"}"#;

fn example() -> std::path::PathBuf {
    e2e::workspace_root().join("policies/pod-security/examples/restricted-deployment.yaml")
}

fn request() -> palisade_sdk::wire::AdmissionRequest {
    let text = std::fs::read_to_string(example()).expect("example request");
    let value: serde_json::Value = serde_yaml::from_str(&text).expect("yaml");
    review::parse(&value.to_string()).expect("review").request
}

fn evaluation(c: &mut Criterion) {
    let request = request();
    let settings: pod_security::Settings = parse_settings(SETTINGS).expect("settings");
    let engine = Engine::new(EngineConfig {
        // `PALISADE_WASM_PROFILER=perfmap` names guest functions for `perf record`.
        profiler: match std::env::var("PALISADE_WASM_PROFILER").as_deref() {
            Ok("perfmap") => palisade_runtime::Profiler::PerfMap,
            _ => palisade_runtime::Profiler::None,
        },
        ..EngineConfig::default()
    })
    .expect("engine");
    let bytes = e2e::read_artefact("pod-security").expect("artefact");
    let prepared = Arc::new(Prepared::new(&engine, &bytes).expect("load"));
    let warm = prepared
        .configure(SETTINGS, Options::default())
        .expect("configure");
    let fresh = prepared
        .configure(
            SETTINGS,
            Options {
                instances: Instances::Fresh,
                ..Options::default()
            },
        )
        .expect("configure");
    let native = pod_security::evaluate(&request, &settings).expect("native verdict");
    assert!(
        native.allowed,
        "the example must be compliant: {}",
        native.message
    );
    assert_eq!(
        warm.evaluate_blocking(&request)
            .result
            .expect("wasm verdict"),
        native,
        "wasm and native disagree"
    );

    // The same policy built for Kubewarden: a waPC module, settings sent with every request.
    let kubewarden_bytes = std::fs::read(e2e::artefact_for("pod-security", e2e::KUBEWARDEN))
        .expect("the Kubewarden build (make policies)");
    let kubewarden = Arc::new(Prepared::new(&engine, &kubewarden_bytes).expect("load"))
        .configure(SETTINGS, Options::default())
        .expect("configure");
    assert_eq!(
        kubewarden
            .evaluate_blocking(&request)
            .result
            .expect("waPC verdict"),
        native,
        "the Kubewarden build and native disagree"
    );

    let mut group = c.benchmark_group("pod-security/evaluate");
    group.bench_function("native", |b| {
        b.iter(|| pod_security::evaluate(&request, &settings))
    });
    group.bench_function("wasm-warm-instance", |b| {
        b.iter(|| warm.evaluate_blocking(&request))
    });
    group.bench_function("wasm-fresh-instance", |b| {
        b.iter(|| fresh.evaluate_blocking(&request))
    });
    group.bench_function("kubewarden-wapc-warm-instance", |b| {
        b.iter(|| kubewarden.evaluate_blocking(&request))
    });
    group.finish();

    // The fixed cost of a call: a DELETE, which pod-security answers at once (not applicable).
    let mut delete = request.clone();
    delete.operation = palisade_sdk::wire::Operation::Delete;
    delete.object = None;
    let mut group = c.benchmark_group("pod-security/call-overhead");
    group.bench_function("native", |b| {
        b.iter(|| pod_security::evaluate(&delete, &settings))
    });
    group.bench_function("wasm-warm-instance", |b| {
        b.iter(|| warm.evaluate_blocking(&delete))
    });
    group.finish();
}

/// The AdmissionReview codec on the webhook's bench review (3.9 KB): read the review, write
/// the answer, as `palisade serve` does for every request.
fn codec(c: &mut Criterion) {
    let body =
        std::fs::read_to_string(e2e::workspace_root().join("tests/benches/pod-create-review.json"))
            .expect("bench review");
    let verdict = palisade_sdk::wire::Verdict::allow()
        .with_audit_annotation("enforce-policy", "restricted:latest");
    let mut group = c.benchmark_group("admission-review");
    group.bench_function("parse", |b| {
        b.iter(|| review::parse(&body).expect("review"))
    });
    group.bench_function("tape", |b| {
        b.iter(|| palisade_sdk::wire::json::Tape::build(&body).expect("json"))
    });
    group.bench_function("serde-json-skip", |b| {
        b.iter(|| serde_json::from_str::<serde::de::IgnoredAny>(&body).expect("json"))
    });
    group.bench_function("serde-json-typed", |b| {
        b.iter(|| serde_json::from_str::<palisade_sdk::wire::AdmissionReview>(&body).expect("json"))
    });
    group.bench_function("encode", |b| {
        b.iter(|| {
            review::encode(
                "admission.k8s.io/v1",
                "705ab4f5-6393-11e8-b7cc-42010a800002",
                &verdict,
            )
        })
    });
    group.finish();
}

fn loading(c: &mut Criterion) {
    let bytes = e2e::read_artefact("pod-security").expect("artefact");
    let cache = tempfile::tempdir().expect("cache dir");
    let uncached = Engine::new(EngineConfig::default()).expect("engine");
    let cached = Engine::new(EngineConfig {
        cache_dir: Some(cache.path().to_owned()),
        ..EngineConfig::default()
    })
    .expect("engine");
    Prepared::new(&cached, &bytes).expect("fill the cache");
    let mut group = c.benchmark_group("pod-security/load");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("compile", |b| {
        b.iter(|| Prepared::new(&uncached, &bytes).expect("load"))
    });
    group.bench_function("cached", |b| {
        b.iter(|| Prepared::new(&cached, &bytes).expect("load"))
    });
    group.finish();
}

fn process(c: &mut Criterion) {
    let binary = e2e::workspace_root().join("target/release/palisade");
    let policy = e2e::artefact("pod-security");
    let cache = tempfile::tempdir().expect("cache dir");
    let run = |extra: &[&str]| {
        let status = Command::new(&binary)
            .args(["run", "--policy"])
            .arg(&policy)
            .arg("--request")
            .arg(example())
            .env("PALISADE_CACHE_DIR", cache.path())
            .args(extra)
            .output()
            .expect("palisade runs");
        assert_eq!(
            status.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );
    };
    run(&[]);
    let mut group = c.benchmark_group("palisade-run/process");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("cached", |b| b.iter(|| run(&[])));
    group.bench_function("no-cache", |b| b.iter(|| run(&["--no-cache"])));
    group.finish();
}

criterion_group!(benches, evaluation, codec, loading, process);
criterion_main!(benches);
