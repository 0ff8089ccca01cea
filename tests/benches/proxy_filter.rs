//! request-guard through the proxy-wasm host: plugin start (base VM, canary, one worker) and
//! a scenario of 100 allowed requests on one worker VM, so the per-request cost is
//! (scenario - start) / 100; plus the same decision natively, for the ratio. Prints the
//! hostcalls the filter makes per request.
#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use palisade_proxy::{Filter, Outcome, RunOptions, Scenario, run};
use palisade_runtime::{Engine, EngineConfig};
use palisade_sdk::parse_settings;
use palisade_sdk::wire::HttpRequest;

const SETTINGS: &str = r#"{"denyPaths": ["/admin", "/admin/*", "*.php"]}"#;
const HEADERS: &str = r#"{"user-agent": "curl/8.5.0", "accept": "*/*", "x-forwarded-proto": "https",
    "x-b3-traceid": "80f198ee56343ba864fe8b2a57d3eff7", "cookie": "session=5a1b2c3d4e"}"#;

fn scenario(requests: usize) -> Scenario {
    let step = format!(
        r#"{{"request": {{"path": "/cart/items?id=7", "authority": "shop.example.com", "headers": {HEADERS}}}}}"#
    );
    let steps = vec![step; requests].join(",");
    let text = format!(
        r#"{{"plugin": {{"workers": 1, "configuration": {SETTINGS}}}, "steps": [{steps}]}}"#
    );
    serde_json::from_str(&text).expect("scenario")
}

fn proxy(c: &mut Criterion) {
    let engine = Engine::new(EngineConfig::default()).expect("engine");
    let bytes = std::fs::read(e2e::artefact_for("request-guard", e2e::PROXY_WASM))
        .expect("build it with make policies");
    let filter = Filter::new(&engine, &bytes).expect("load");
    let options = RunOptions {
        limits: engine.default_limits(),
        trace: false,
    };
    let (report, _) = run(&filter, &scenario(100), options);
    assert!(report.accepted, "{:?}", report.rejected);
    assert!(
        report
            .requests
            .iter()
            .all(|r| r.outcome == Outcome::Upstream)
    );
    let hostcalls: u64 = report.requests.iter().map(|r| r.hostcalls).sum();
    eprintln!(
        "request-guard: {} bytes, {:.1} hostcalls per request (100 requests)",
        bytes.len(),
        hostcalls as f64 / 100.0
    );

    let settings: request_guard::Settings = parse_settings(SETTINGS).expect("settings");
    let request: HttpRequest = serde_json::from_str(&format!(
        r#"{{"method": "GET", "path": "/cart/items?id=7", "authority": "shop.example.com", "headers": {}}}"#,
        serde_json::to_string(&serde_json::from_str::<std::collections::BTreeMap<String, String>>(HEADERS).expect("headers").into_iter().collect::<Vec<_>>()).expect("json")
    ))
    .expect("request");

    let mut group = c.benchmark_group("request-guard");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("native-evaluate", |b| {
        b.iter(|| request_guard::evaluate(&request, &settings))
    });
    group.bench_function("plugin-start", |b| {
        b.iter(|| run(&filter, &scenario(0), options))
    });
    let hundred = scenario(100);
    group.bench_function("plugin-start+100-requests", |b| {
        b.iter(|| run(&filter, &hundred, options))
    });
    group.finish();
}

criterion_group!(benches, proxy);
criterion_main!(benches);
