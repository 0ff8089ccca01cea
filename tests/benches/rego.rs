//! Gatekeeper templates of the rego policy's library (required labels, allowed repos,
//! privileged containers) on a 3-container Pod in `prod-shop`: regorus natively (the rego
//! crate's `evaluate`, what `palisade test` runs for gator suites) vs the same policy in wasm
//! (warm instance), per template; and compiling a template (settings to prepared engine).
#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use palisade_runtime::admission::{Options, Prepared};
use palisade_runtime::{Engine, EngineConfig, review};

const TEMPLATES: [(&str, &str); 3] = [
    ("required-labels", "owner-label"),
    ("allowed-repos", "repo-must-be-internal"),
    ("privileged-containers", "no-privileged"),
];

/// The settings of a library template with its sample constraint (as `settingsFrom` reads them).
fn settings(template: &str, sample: &str) -> serde_json::Value {
    let dir = e2e::workspace_root()
        .join("policies/rego/library")
        .join(template);
    let read = |path: std::path::PathBuf| -> serde_json::Value {
        let text = std::fs::read_to_string(&path).expect("library file");
        serde_yaml::from_str(&text).expect("yaml")
    };
    let mut constraint = read(dir.join("samples").join(sample).join("constraint.yaml"));
    // Every sample constraint reviews this Pod, whatever its own match says.
    constraint["spec"]["match"] =
        serde_json::json!({"kinds": [{"apiGroups": [""], "kinds": ["Pod"]}]});
    serde_json::json!({
        "template": read(dir.join("template.yaml")),
        "constraints": [constraint],
    })
}

fn request() -> palisade_sdk::wire::AdmissionRequest {
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "prod-shop", "labels": {"owner": "alice.example.com", "app": "web"}},
        "spec": {
            "initContainers": [{"name": "init", "image": "registry.example.com/shop/init:1.0"}],
            "containers": [
                {"name": "app", "image": "registry.example.com/shop/web:1.4",
                 "securityContext": {"privileged": false, "runAsNonRoot": true},
                 "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}}},
                {"name": "proxy", "image": "registry.example.com/mesh/proxy:2.1",
                 "securityContext": {"privileged": false}}
            ]
        }
    });
    let review = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "web", "namespace": "prod-shop", "operation": "CREATE",
            "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
            "object": pod, "oldObject": null, "dryRun": false
        }
    });
    review::parse(&review.to_string()).expect("review").request
}

fn evaluation(c: &mut Criterion) {
    let request = request();
    let engine = Engine::new(EngineConfig::default()).expect("engine");
    let bytes = e2e::read_artefact("rego").expect("artefact");
    let prepared = Arc::new(Prepared::new(&engine, &bytes).expect("load"));
    let mut group = c.benchmark_group("rego/evaluate");
    for (template, sample) in TEMPLATES {
        let settings = settings(template, sample);
        let native =
            rego::gatekeeper::compile(&serde_json::from_value(settings.clone()).expect("settings"))
                .expect("compile");
        let warm = prepared
            .configure(&settings.to_string(), Options::default())
            .expect("configure");
        let expected = rego::gatekeeper::evaluate(&request, &native).expect("native verdict");
        assert!(
            expected.allowed,
            "{template}: the Pod must comply: {}",
            expected.message
        );
        assert_eq!(
            warm.evaluate_blocking(&request)
                .result
                .expect("wasm verdict"),
            expected,
            "{template}: wasm and native disagree"
        );
        group.bench_function(format!("{template}/native"), |b| {
            b.iter(|| rego::gatekeeper::evaluate(&request, &native))
        });
        group.bench_function(format!("{template}/wasm-warm-instance"), |b| {
            b.iter(|| warm.evaluate_blocking(&request))
        });
    }
    group.finish();

    let settings: rego::gatekeeper::Settings =
        serde_json::from_value(settings("privileged-containers", "no-privileged"))
            .expect("settings");
    let mut group = c.benchmark_group("rego/compile");
    group.bench_function("privileged-containers/native", |b| {
        b.iter(|| rego::gatekeeper::compile(&settings).expect("compile"))
    });
    group.finish();
}

criterion_group!(benches, evaluation);
criterion_main!(benches);
