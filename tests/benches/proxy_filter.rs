//! The proxy filters through the proxy-wasm host: plugin start (base VM, canary, one worker)
//! and a scenario of 100 requests on one worker VM, so the per-request cost is
//! (scenario - start) / 100; plus the same decision natively, for the ratio. Prints each
//! filter's size and the hostcalls it makes per request.
//!
//! - request-guard: three deny paths, an allowed request that gets a request id;
//! - zero-trust: 20 rules (an ALLOW policy of 16 rules over principals, namespaces, methods,
//!   paths, templates and headers, a DENY policy of 4), an mTLS request allowed by the 16th.
#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use palisade_proxy::{Filter, Outcome, RunOptions, Scenario, run};
use palisade_runtime::{Engine, EngineConfig};
use palisade_sdk::host::{Entry, Level};
use palisade_sdk::wire::HttpRequest;
use palisade_sdk::{Host, HostError, parse_settings};
use serde_json::{Value, json};

const HEADERS: &str = r#"{"user-agent": "curl/8.5.0", "accept": "*/*", "x-forwarded-proto": "https",
    "x-b3-traceid": "80f198ee56343ba864fe8b2a57d3eff7", "cookie": "session=5a1b2c3d4e"}"#;
const PATH: &str = "/cart/items?id=7";

/// zero-trust's 20 rules: 16 ALLOW rules, the last one matching the benchmark's request, and
/// 4 DENY rules that do not.
fn zero_trust_settings() -> Value {
    let mut allow: Vec<Value> = (0..15)
        .map(|i| {
            json!({
                "from": [{"source": {"principals": [format!("cluster.local/ns/team-{i}/sa/*")]}}],
                "to": [{"operation": {"methods": ["GET", "POST"], "paths": [format!("/team-{i}/{{**}}")]}}],
                "when": [{"key": "request.headers[x-team]", "values": [format!("team-{i}")]}],
            })
        })
        .collect();
    allow.push(json!({
        "from": [{"source": {"namespaces": ["shop"], "ipBlocks": ["10.0.0.0/8"]}}],
        "to": [{"operation": {"hosts": ["shop.example.com"], "methods": ["GET"], "paths": ["/cart/*"]}}],
        "when": [{"key": "request.headers[x-forwarded-proto]", "values": ["https"]}],
    }));
    let deny: Vec<Value> = ["/admin", "/admin/*", "*.php", "/internal/{**}"]
        .iter()
        .map(|p| json!({"to": [{"operation": {"paths": [p]}}]}))
        .collect();
    json!({"policies": [
        {"metadata": {"name": "shop-access", "namespace": "shop"}, "spec": {"rules": allow}},
        {"metadata": {"name": "no-admin", "namespace": "shop"}, "spec": {"action": "DENY", "rules": deny}},
    ]})
}

fn scenario(settings: &Value, requests: usize) -> Scenario {
    let headers: Value = serde_json::from_str(HEADERS).expect("headers");
    let step =
        json!({"request": {"path": PATH, "authority": "shop.example.com", "headers": headers}});
    serde_json::from_value(json!({
        "plugin": {"workers": 1, "configuration": settings},
        "connection": {
            "sourceAddress": "10.1.2.9:40123", "mtls": true,
            "peerUriSans": ["spiffe://cluster.local/ns/shop/sa/frontend"],
        },
        "steps": vec![step; requests],
    }))
    .expect("scenario")
}

fn request() -> HttpRequest {
    let headers: std::collections::BTreeMap<String, String> =
        serde_json::from_str(HEADERS).expect("headers");
    serde_json::from_value(json!({
        "method": "GET", "path": PATH, "authority": "shop.example.com",
        "headers": headers.into_iter().collect::<Vec<_>>(),
        "connection": {
            "sourceAddress": "10.1.2.9:40123", "mtls": true,
            "peerPrincipal": "spiffe://cluster.local/ns/shop/sa/frontend",
        },
    }))
    .expect("request")
}

/// The native runs' host: a clock, nothing else, and log lines dropped (as the proxy host
/// keeps its own, the native side must not pile them up over millions of iterations).
struct Quiet;

impl Host for Quiet {
    fn now(&self) -> Result<Duration, HostError> {
        Ok(Duration::ZERO)
    }
    fn get(&self, _: &str) -> Result<Option<Entry>, HostError> {
        Err(HostError::Unsupported("state"))
    }
    fn set(&self, _: &str, _: &[u8], _: u32) -> Result<bool, HostError> {
        Err(HostError::Unsupported("state"))
    }
    fn data(&self, _: &str, _: &str) -> Result<Option<String>, HostError> {
        Err(HostError::Unsupported("data tables"))
    }
    fn data_keys(&self, _: &str, _: &str) -> Result<Vec<String>, HostError> {
        Err(HostError::Unsupported("data tables"))
    }
    fn log(&self, _: Level, message: &str) {
        std::hint::black_box(message);
    }
}

/// Plugin start and 100 requests of `name` through the host, after checking that every
/// request goes upstream; `native` is the same decision without wasm.
fn bench_filter(
    c: &mut Criterion,
    engine: &Engine,
    name: &str,
    settings: &Value,
    native: &dyn Fn(),
) {
    let bytes = std::fs::read(e2e::artefact_for(name, e2e::PROXY_WASM))
        .expect("build it with make policies");
    let filter = Filter::new(engine, &bytes).expect("load");
    let options = RunOptions {
        limits: engine.default_limits(),
        trace: false,
    };
    let (report, _) = run(&filter, &scenario(settings, 100), options);
    assert!(report.accepted, "{name}: {:?}", report.rejected);
    assert!(
        report
            .requests
            .iter()
            .all(|r| r.outcome == Outcome::Upstream),
        "{name}: every request must go upstream"
    );
    let hostcalls: u64 = report.requests.iter().map(|r| r.hostcalls).sum();
    eprintln!(
        "{name}: {} bytes, {:.1} hostcalls per request (100 requests)",
        bytes.len(),
        hostcalls as f64 / 100.0
    );
    let mut group = c.benchmark_group(name);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("native-evaluate", |b| b.iter(native));
    group.bench_function("plugin-start", |b| {
        b.iter(|| run(&filter, &scenario(settings, 0), options))
    });
    let hundred = scenario(settings, 100);
    group.bench_function("plugin-start+100-requests", |b| {
        b.iter(|| run(&filter, &hundred, options))
    });
    group.finish();
}

fn proxy(c: &mut Criterion) {
    let engine = Engine::new(EngineConfig::default()).expect("engine");
    let request = request();

    let guard = json!({"denyPaths": ["/admin", "/admin/*", "*.php"]});
    let guard_settings: request_guard::Settings =
        parse_settings(&guard.to_string()).expect("settings");
    bench_filter(c, &engine, "request-guard", &guard, &|| {
        let _ = request_guard::evaluate(&request, &guard_settings);
    });

    let trust = zero_trust_settings();
    let prepared = zero_trust::http::prepare(
        parse_settings::<zero_trust::Settings>(&trust.to_string()).expect("settings"),
    )
    .expect("prepared");
    let host = Quiet;
    assert!(zero_trust::http::evaluate(&request, &prepared, &host).is_allowed());
    bench_filter(c, &engine, "zero-trust", &trust, &|| {
        let _ = zero_trust::http::evaluate(&request, &prepared, &host);
    });
}

criterion_group!(benches, proxy);
criterion_main!(benches);
