//! The rego policy's template library, natively and in wasm: for every template, every sample
//! Constraint and every sample object (plain objects reviewed as CREATE of their namespace,
//! AdmissionReviews as they are), with the sample's inventory, the compiled component answers
//! exactly what the crate answers natively (the code `palisade test` runs for gator suites).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use palisade_runtime::admission::{Options, Prepared};
use palisade_runtime::{Engine, EngineConfig};
use palisade_sdk::testing::complete_request;
use palisade_sdk::wire::AdmissionRequest;

fn documents(path: &Path) -> Vec<serde_json::Value> {
    palisade_runtime::documents::read_documents(path).expect("sample file")
}

fn request(document: &serde_json::Value) -> AdmissionRequest {
    if document["kind"] == "AdmissionReview" {
        return serde_json::from_value(document["request"].clone()).expect("review request");
    }
    let mut request = serde_json::json!({"object": document});
    if let Some(ns) = document["metadata"]["namespace"].as_str() {
        request["namespace"] = ns.into();
    }
    complete_request(request, "rego-library").expect("request")
}

fn files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("sample dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn library_templates_answer_the_same_natively_and_in_wasm() {
    let engine = Engine::new(EngineConfig::default()).expect("engine");
    let bytes = e2e::read_artefact("rego").expect("rego artefact");
    let prepared = Arc::new(Prepared::new(&engine, &bytes).expect("rego loads"));
    let library = e2e::workspace_root().join("policies/rego/library");
    let mut compared = 0;
    let mut denied = 0;
    let mut templates: Vec<PathBuf> = std::fs::read_dir(&library)
        .expect("library")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("template.yaml").is_file())
        .collect();
    templates.sort();
    assert!(
        templates.len() >= 10,
        "the library has {} templates",
        templates.len()
    );
    for template_dir in &templates {
        let template = documents(&template_dir.join("template.yaml")).remove(0);
        let mut samples: Vec<PathBuf> = std::fs::read_dir(template_dir.join("samples"))
            .expect("samples")
            .map(|e| e.expect("entry").path())
            .collect();
        samples.sort();
        for sample in samples {
            let constraint = documents(&sample.join("constraint.yaml")).remove(0);
            let inventory: Vec<serde_json::Value> = files(&sample, "example_inventory")
                .iter()
                .flat_map(|p| documents(p))
                .collect();
            let settings = serde_json::json!({
                "template": template, "constraints": [constraint], "inventory": inventory,
            });
            let native = rego::gatekeeper::compile(
                &serde_json::from_value(settings.clone()).expect("settings"),
            );
            let wasm = prepared.configure(&settings.to_string(), Options::default());
            let (native, wasm) = match (native, wasm) {
                (Ok(native), Ok(wasm)) => (native, wasm),
                // A sample the runner refuses (an `invalid: true` test's): both must refuse.
                (Err(_), Err(_)) => continue,
                (native, wasm) => panic!(
                    "{}: native {:?} vs wasm {:?}",
                    sample.display(),
                    native.err(),
                    wasm.err().map(|e| e.to_string())
                ),
            };
            for example in files(&sample, "example_")
                .into_iter()
                .filter(|p| !p.to_string_lossy().contains("example_inventory"))
            {
                let request = request(&documents(&example).remove(0));
                let expected = rego::gatekeeper::evaluate(&request, &native)
                    .unwrap_or_else(|e| panic!("{}: {e}", example.display()));
                let got = wasm
                    .evaluate_blocking(&request)
                    .result
                    .expect("wasm verdict");
                assert_eq!(got, expected, "{}", example.display());
                compared += 1;
                denied += usize::from(!expected.allowed);
            }
        }
    }
    assert!(compared >= 50, "only {compared} objects compared");
    assert!(denied >= 20, "only {denied} of {compared} objects denied");
}
