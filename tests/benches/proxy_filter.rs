//! The proxy filters through the proxy-wasm host: plugin start (base VM, canary, one worker)
//! and a scenario of 100 requests on one worker VM, so the per-request cost is
//! (scenario - start) / 100; plus the same decision natively, for the ratio. Prints each
//! filter's size and the hostcalls it makes per request.
//!
//! - request-guard: three deny paths, an allowed request that gets a request id;
//! - zero-trust: 20 rules (an ALLOW policy of 16 rules over principals, namespaces, methods,
//!   paths, templates and headers, a DENY policy of 4), an mTLS request allowed by the 16th;
//! - zero-trust-jwt: the same with a RequestAuthentication (inline key set of five keys) and the
//!   16th rule also requiring a request principal; every request carries the same RS256 token,
//!   so the first verifies it and the others find it in the token cache. Printed too: the
//!   callback time of the first request and of the cached ones, and of a first ES256 token;
//! - rate-limit: Envoy's local rate limit with three descriptors (a wildcard per client
//!   address, an exact user-agent and a generic key) and the default bucket, all shared by the
//!   workers through shared data; every bucket large enough that every request passes.
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

/// zero-trust-jwt's settings: the 20 rules, the 16th also requiring a token of the issuer.
fn zero_trust_jwt_settings() -> Value {
    let mut settings = zero_trust_settings();
    settings["policies"][0]["spec"]["rules"][15]["from"][0]["source"]["requestPrincipals"] =
        json!(["https://auth.shop.example/*"]);
    settings["authentication"] = json!([{"spec": {"jwtRules": [{
        "issuer": "https://auth.shop.example",
        "audiences": ["shop-api"],
        "jwks": zero_trust::testing::keys().jwks(&[]),
    }]}}]);
    settings
}

/// 2026-01-01T00:00:00Z, where the proxy host's clock starts, in seconds.
const EPOCH: u64 = 1_767_225_600;

/// A token of the shop's issuer signed with `alg`, valid for a year from the host's epoch.
fn token(alg: &str) -> String {
    let claims = json!({"iss": "https://auth.shop.example", "sub": "alice", "aud": "shop-api",
        "iat": EPOCH, "exp": EPOCH + 365 * 86_400, "scope": "cart.read cart.write"});
    zero_trust::testing::keys()
        .sign(alg, None, &serde_json::Map::new(), &claims)
        .expect("token")
}

fn headers(token: Option<&str>) -> Value {
    let mut headers: Value = serde_json::from_str(HEADERS).expect("headers");
    if let Some(token) = token {
        headers["authorization"] = format!("Bearer {token}").into();
    }
    headers
}

fn scenario(settings: &Value, requests: usize, token: Option<&str>) -> Scenario {
    let headers = headers(token);
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

fn request(token: Option<&str>) -> HttpRequest {
    let headers: std::collections::BTreeMap<String, String> =
        serde_json::from_value(headers(token)).expect("headers");
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
        Ok(Duration::from_secs(EPOCH))
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

/// rate-limit's settings: three descriptors and the default bucket.
fn rate_limit_settings() -> Value {
    let bucket = json!({"max_tokens": 1_000_000_000u32, "tokens_per_fill": 1_000_000, "fill_interval": "1s"});
    let on = json!({"default_value": {"numerator": 100}});
    json!({
        "stat_prefix": "bench", "filter_enabled": on, "filter_enforced": on,
        "token_bucket": bucket,
        "rate_limits": [
            {"actions": [{"remote_address": {}}]},
            {"actions": [{"request_headers": {"header_name": "user-agent", "descriptor_key": "agent"}}]},
            {"actions": [{"generic_key": {"descriptor_value": "shop"}}]},
        ],
        "descriptors": [
            {"entries": [{"key": "remote_address"}], "token_bucket": bucket},
            {"entries": [{"key": "agent", "value": "curl/8.5.0"}], "token_bucket": bucket},
            {"entries": [{"key": "generic_key", "value": "shop"}], "token_bucket": bucket},
        ],
    })
}

/// Plugin start and 100 requests of `name` through the host, after checking that every
/// request goes upstream; `native` is the same decision without wasm.
fn bench_filter(
    c: &mut Criterion,
    engine: &Engine,
    (name, policy): (&str, &str),
    settings: &Value,
    token: Option<&str>,
    native: &dyn Fn(),
) {
    let bytes = std::fs::read(e2e::artefact_for(policy, e2e::PROXY_WASM))
        .expect("build it with make policies");
    let filter = Filter::new(engine, &bytes).expect("load");
    let options = RunOptions {
        limits: engine.default_limits(),
        trace: false,
    };
    let (report, _) = run(&filter, &scenario(settings, 100, token), options);
    assert!(report.accepted, "{name}: {:?}", report.rejected);
    assert!(
        report
            .requests
            .iter()
            .all(|r| r.outcome == Outcome::Upstream),
        "{name}: every request must go upstream"
    );
    let hostcalls: u64 = report.requests.iter().map(|r| r.hostcalls).sum();
    let guest = |r: &palisade_proxy::RequestReport| r.callback_time.saturating_sub(r.hostcall_time);
    // One run of 100 requests is noisy on a shared machine: 15 runs of 1000 requests, and the
    // median and the lowest of the runs' means (noise only adds).
    let mut later = Vec::new();
    let mut later_guest = Vec::new();
    let mut first = Vec::new();
    let many = scenario(settings, 1000, token);
    for _ in 0..15 {
        let (report, _) = run(&filter, &many, options);
        first.push(report.requests[0].callback_time);
        later.push(
            report
                .requests
                .iter()
                .skip(1)
                .map(|r| r.callback_time)
                .sum::<Duration>()
                / 999,
        );
        later_guest.push(report.requests.iter().skip(1).map(guest).sum::<Duration>() / 999);
    }
    let us = |mut v: Vec<Duration>| {
        v.sort();
        format!(
            "{:.2} us (lowest {:.2})",
            v[v.len() / 2].as_secs_f64() * 1e6,
            v[0].as_secs_f64() * 1e6
        )
    };
    eprintln!(
        "{name}: {} bytes, {:.1} hostcalls per request; callback time, median of 15 runs of 1000 \
         requests: first request {}, later ones {} each, of which guest CPU {} (the rest in \
         hostcalls)",
        bytes.len(),
        hostcalls as f64 / 100.0,
        us(first),
        us(later),
        us(later_guest),
    );
    let mut group = c.benchmark_group(name);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("native-evaluate", |b| b.iter(native));
    let start = scenario(settings, 0, token);
    group.bench_function("plugin-start", |b| b.iter(|| run(&filter, &start, options)));
    let one = scenario(settings, 1, token);
    group.bench_function("plugin-start+1-request", |b| {
        b.iter(|| run(&filter, &one, options))
    });
    let hundred = scenario(settings, 100, token);
    group.bench_function("plugin-start+100-requests", |b| {
        b.iter(|| run(&filter, &hundred, options))
    });
    group.finish();
}

fn proxy(c: &mut Criterion) {
    let engine = Engine::new(EngineConfig::default()).expect("engine");
    let request = request(None);

    let guard = json!({"denyPaths": ["/admin", "/admin/*", "*.php"]});
    let guard_settings: request_guard::Settings =
        parse_settings(&guard.to_string()).expect("settings");
    bench_filter(
        c,
        &engine,
        ("request-guard", "request-guard"),
        &guard,
        None,
        &|| {
            let _ = request_guard::evaluate(&request, &guard_settings);
        },
    );

    let trust = zero_trust_settings();
    let prepared = zero_trust::http::prepare(
        parse_settings::<zero_trust::Settings>(&trust.to_string()).expect("settings"),
    )
    .expect("prepared");
    let host = Quiet;
    let allowed = |r: &HttpRequest, p: &zero_trust::http::Prepared| {
        zero_trust::http::evaluate(r, p, &host).is_ok_and(|v| v.is_allowed())
    };
    assert!(allowed(&request, &prepared));
    bench_filter(
        c,
        &engine,
        ("zero-trust", "zero-trust"),
        &trust,
        None,
        &|| {
            let _ = zero_trust::http::evaluate(&request, &prepared, &host);
        },
    );

    let jwt = zero_trust_jwt_settings();
    let prepared = zero_trust::http::prepare(
        parse_settings::<zero_trust::Settings>(&jwt.to_string()).expect("settings"),
    )
    .expect("prepared");
    let rs256 = token("RS256");
    let with_token = self::request(Some(&rs256));
    assert!(allowed(&with_token, &prepared), "the token verifies");
    assert!(!allowed(&request, &prepared), "no token, no access");
    let jwt_case = ("zero-trust-jwt", "zero-trust");
    bench_filter(c, &engine, jwt_case, &jwt, Some(&rs256), &|| {
        let _ = zero_trust::http::evaluate(&with_token, &prepared, &host);
    });
    first_verification(
        &engine,
        &jwt,
        &[("RS256", &rs256), ("ES256", &token("ES256"))],
    );

    // An OPA-Envoy policy as its users write them: readers by SPIFFE id GET under /cart, with a
    // header check against data.
    let opa = json!({
        "data": {"readers": ["spiffe://cluster.local/ns/shop/sa/frontend"], "agents": ["curl", "bench"]},
        "modules": {"policy.rego": "package envoy.authz\n\ndefault allow := false\n\nhttp := input.attributes.request.http\n\nallow if {\n  http.method == \"GET\"\n  input.parsed_path[0] == \"cart\"\n  input.attributes.source.principal in data.readers\n  not startswith(object.get(http.headers, \"user-agent\", \"\"), \"evil\")\n}\n"},
    });
    let prepared = rego::envoy::compile(
        &parse_settings::<rego::envoy::Settings>(&opa.to_string()).expect("settings"),
    )
    .expect("prepared");
    assert!(
        rego::envoy::evaluate(&request, &prepared).is_ok_and(|v| v.is_allowed()),
        "the OPA-Envoy policy lets the request through"
    );
    bench_filter(c, &engine, ("rego-opa-envoy", "rego"), &opa, None, &|| {
        let _ = rego::envoy::evaluate(&request, &prepared);
    });

    let limits = rate_limit_settings();
    let prepared = rate_limit::Prepared::new(
        &parse_settings::<rate_limit::Settings>(&limits.to_string()).expect("settings"),
    )
    .expect("prepared");
    // The SDK's test host: state in memory, its clock at the host's epoch.
    let memory =
        palisade_sdk::testing::TestHost::new(&palisade_sdk::testing::FixtureHost::default());
    assert!(
        rate_limit::evaluate(&request, &prepared, &memory).is_ok_and(|v| v.is_allowed()),
        "the buckets let it through"
    );
    bench_filter(
        c,
        &engine,
        ("rate-limit", "rate-limit"),
        &limits,
        None,
        &|| {
            let _ = rate_limit::evaluate(&request, &prepared, &memory);
        },
    );
}

/// The callback time of a token's first verification in the filter (a fresh plugin, one
/// request), best of 20 runs, printed.
fn first_verification(engine: &Engine, settings: &Value, tokens: &[(&str, &str)]) {
    let bytes = std::fs::read(e2e::artefact_for("zero-trust", e2e::PROXY_WASM)).expect("built");
    let filter = Filter::new(engine, &bytes).expect("load");
    let options = RunOptions {
        limits: engine.default_limits(),
        trace: false,
    };
    for (alg, token) in tokens {
        let one = scenario(settings, 1, Some(token));
        let best = (0..20)
            .map(|_| {
                let (report, _) = run(&filter, &one, options);
                assert_eq!(report.requests[0].outcome, Outcome::Upstream, "{alg}");
                report.requests[0].callback_time
            })
            .min()
            .unwrap_or_default();
        eprintln!(
            "zero-trust-jwt: first verification of an {alg} token: {:.1} us (callback time, best of 20)",
            best.as_secs_f64() * 1e6
        );
    }
}

criterion_group!(benches, proxy);
criterion_main!(benches);
