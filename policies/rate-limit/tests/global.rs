//! The global filter end to end without a proxy: the bytes it sends to the rate limit service
//! decoded with the same messages (`rate_limit::global::rls`), its answers applied, its
//! statistics counted; and the helper that writes the answers of `fixtures/http/*-global-*`.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use base64::Engine;
use palisade_sdk::testing::{FixtureHost, TestHost};
use palisade_sdk::wire::{Answer, Callout, HeaderChange, HttpRequest, HttpVerdict};
use palisade_sdk::{HttpPolicy, parse_settings};
use prost::Message;
use rate_limit::RateLimit;
use rate_limit::global::{CALL_ID, rls};
use serde_json::{Value, json};

fn settings(extra: Value) -> String {
    let mut settings = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit",
        "domain": "shop",
        "rate_limit_service": {
            "grpc_service": {
                "envoy_grpc": {"cluster_name": "outbound|8081||ratelimit.infra.svc.cluster.local"},
                "initial_metadata": [{"key": "x-tenant", "value": "shop"}]
            },
            "transport_api_version": "V3"
        },
        "rate_limits": [
            {"actions": [{"generic_key": {"descriptor_value": "api"}},
                         {"request_headers": {"header_name": "x-user", "descriptor_key": "user"}}]},
            {"actions": [{"remote_address": {}}], "hits_addend": {"number": 5}},
            {"actions": [{"request_headers": {"header_name": "x-absent", "descriptor_key": "a"}}]},
            {"actions": [{"header_value_match": {"descriptor_value": "named",
                          "headers": [{"name": "x-user", "string_match": {"prefix": "ali"}}]}},
                         {"masked_remote_address": {"v4_prefix_mask_len": 16}},
                         {"query_parameters": {"query_parameter_name": "sku", "descriptor_key": "sku"}},
                         {"query_parameter_value_match": {"descriptor_value": "bulk",
                          "query_parameters": [{"name": "bulk", "present_match": true}]}}]}
        ]
    });
    if let (Value::Object(base), Value::Object(extra)) = (&mut settings, extra) {
        base.extend(extra);
    }
    settings.to_string()
}

fn request() -> HttpRequest {
    serde_json::from_value(json!({
        "method": "POST",
        "path": "/cart?sku=42&bulk=1",
        "authority": "shop.example.com",
        "headers": [["x-user", "alice"]],
        "connection": {"sourceAddress": "10.1.2.3:51000"}
    }))
    .unwrap()
}

/// Evaluates `request` once with `settings`; the host's counters too.
fn evaluate(settings: &str, request: &HttpRequest) -> (HttpVerdict, TestHost) {
    let config = parse_settings::<rate_limit::Config>(settings).expect("valid settings");
    let filter = RateLimit::prepare(config).expect("settings compile");
    let host = TestHost::new(&FixtureHost::default());
    let verdict = RateLimit::evaluate(request, &filter, &host).expect("a verdict");
    (verdict, host)
}

fn callout(verdict: HttpVerdict) -> Callout {
    match verdict {
        HttpVerdict::Call { callout } => callout,
        other => panic!("expected a call, got {other:?}"),
    }
}

fn entries(descriptor: &rls::RateLimitDescriptor) -> Vec<(&str, &str)> {
    descriptor
        .entries
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str()))
        .collect()
}

#[test]
fn the_call_carries_domain_descriptors_in_order_and_hits() {
    let (verdict, _) = evaluate(&settings(json!({"timeout": "0.25s"})), &request());
    let call = callout(verdict);
    assert_eq!(call.id, CALL_ID);
    assert_eq!(
        call.cluster,
        "outbound|8081||ratelimit.infra.svc.cluster.local"
    );
    assert_eq!(call.timeout_ms, 250);
    assert_eq!(call.headers, [("x-tenant".to_owned(), "shop".to_owned())]);
    let grpc = call.grpc.expect("a gRPC call");
    assert_eq!(grpc.service, "envoy.service.ratelimit.v3.RateLimitService");
    assert_eq!(grpc.method, "ShouldRateLimit");
    let sent = rls::RateLimitRequest::decode(grpc.message.as_slice()).unwrap();
    assert_eq!(sent.domain, "shop");
    assert_eq!(
        sent.hits_addend, 0,
        "no filter state sets it: the service counts 1"
    );
    // The third entry's header is absent: its descriptor is dropped, the others keep their order.
    assert_eq!(sent.descriptors.len(), 3);
    assert_eq!(
        entries(&sent.descriptors[0]),
        [("generic_key", "api"), ("user", "alice")]
    );
    assert_eq!(sent.descriptors[0].hits_addend, None);
    assert_eq!(
        entries(&sent.descriptors[1]),
        [("remote_address", "10.1.2.3")]
    );
    assert_eq!(
        sent.descriptors[1].hits_addend,
        Some(rls::UInt64Value { value: 5 })
    );
    assert_eq!(
        entries(&sent.descriptors[2]),
        [
            ("header_match", "named"),
            ("masked_remote_address", "10.1.0.0/16"),
            ("sku", "42"),
            ("query_match", "bulk")
        ]
    );
    assert!(sent.descriptors.iter().all(|d| d.limit.is_none()));
}

#[test]
fn the_timeout_defaults_to_20ms_and_zero_is_capped() {
    let timeout = |extra: Value| callout(evaluate(&settings(extra), &request()).0).timeout_ms;
    assert_eq!(timeout(json!({})), 20);
    assert_eq!(timeout(json!({"timeout": "0s"})), 10_000);
    assert_eq!(
        timeout(json!({"timeout": "0.0001s"})),
        1,
        "rounded up to a millisecond"
    );
}

#[test]
fn no_descriptor_no_call() {
    let mut request = request();
    request.headers = Vec::<(&str, &str)>::new().into();
    request.method = "GET".into();
    request.connection.source_address = None;
    let (verdict, host) = evaluate(&settings(json!({})), &request);
    assert_eq!(verdict, HttpVerdict::allow());
    assert!(host.counters().is_empty(), "{:?}", host.counters());
}

#[test]
fn request_type_chooses_by_x_envoy_internal() {
    let mut internal = request();
    internal.headers.push("x-envoy-internal", "true");
    let external = request();
    let calls = |kind: &str, request: &HttpRequest| {
        matches!(
            evaluate(&settings(json!({"request_type": kind})), request).0,
            HttpVerdict::Call { .. }
        )
    };
    assert!(calls("internal", &internal));
    assert!(!calls("internal", &external));
    assert!(calls("external", &external));
    assert!(!calls("external", &internal));
    assert!(calls("both", &internal) && calls("both", &external));
}

/// The request again, with the service's answer.
fn answered(settings: &str, answer: Answer) -> (HttpVerdict, TestHost) {
    let mut request = request();
    request.answers.push(Answer {
        id: CALL_ID.into(),
        ..answer
    });
    evaluate(settings, &request)
}

fn ok_answer(response: &rls::RateLimitResponse) -> Answer {
    Answer {
        grpc_status: Some(0),
        message: response.encode_to_vec(),
        ..Answer::default()
    }
}

#[test]
fn an_answer_is_applied_and_counted() {
    let settings = settings(json!({"stat_prefix": "edge"}));
    let response = rls::RateLimitResponse {
        overall_code: rls::Code::Ok as i32,
        request_headers_to_add: vec![rls::HeaderValue {
            key: "X-Quota".into(),
            value: "gold".into(),
        }],
        ..rls::RateLimitResponse::default()
    };
    let (verdict, host) = answered(&settings, ok_answer(&response));
    assert_eq!(
        verdict,
        HttpVerdict::Continue {
            request_headers: vec![HeaderChange::add("x-quota", "gold")],
            response_headers: vec![],
        }
    );
    assert_eq!(host.counters().get("ratelimit.edge.ok"), Some(&1));

    let over = rls::RateLimitResponse {
        overall_code: rls::Code::OverLimit as i32,
        ..rls::RateLimitResponse::default()
    };
    let (verdict, host) = answered(&settings, ok_answer(&over));
    assert!(matches!(verdict, HttpVerdict::Deny { status: 429, .. }));
    assert_eq!(host.counters().get("ratelimit.edge.over_limit"), Some(&1));

    for failure in [
        Answer {
            grpc_status: Some(14),
            grpc_message: "unavailable".into(),
            ..Answer::default()
        },
        // Not a RateLimitResponse: a field 1 of the wrong wire type.
        Answer {
            grpc_status: Some(0),
            message: vec![0x0a, 0x05],
            ..Answer::default()
        },
        Answer::default(),
    ] {
        let (verdict, host) = answered(&settings, failure);
        assert_eq!(verdict, HttpVerdict::allow());
        assert_eq!(host.counters().get("ratelimit.edge.error"), Some(&1));
        assert_eq!(
            host.counters().get("ratelimit.edge.failure_mode_allowed"),
            Some(&1)
        );
    }
}

/// The answers of the `*-global-*` fixtures, as base64 (`bodyBase64`). Run with
/// `cargo test -p rate-limit --test global -- --ignored --nocapture` to print them.
fn fixture_answers() -> Vec<(&'static str, rls::RateLimitResponse)> {
    let header = |key: &str, value: &str| rls::HeaderValue {
        key: key.into(),
        value: value.into(),
    };
    let status =
        |code: rls::Code, rpu: u32, unit: rls::Unit, name: &str, remaining: u32, reset: i64| {
            rls::DescriptorStatus {
                code: code as i32,
                current_limit: Some(rls::RateLimit {
                    name: name.into(),
                    requests_per_unit: rpu,
                    unit: unit as i32,
                }),
                limit_remaining: remaining,
                duration_until_reset: Some(rls::Duration {
                    seconds: reset,
                    nanos: 0,
                }),
            }
        };
    vec![
        (
            "OK",
            rls::RateLimitResponse {
                overall_code: rls::Code::Ok as i32,
                ..Default::default()
            },
        ),
        (
            "OK with headers to add",
            rls::RateLimitResponse {
                overall_code: rls::Code::Ok as i32,
                request_headers_to_add: vec![header("x-ratelimit-tier", "gold")],
                response_headers_to_add: vec![header("x-quota-left", "41")],
                ..Default::default()
            },
        ),
        (
            "OVER_LIMIT with headers, body and content-type",
            rls::RateLimitResponse {
                overall_code: rls::Code::OverLimit as i32,
                response_headers_to_add: vec![
                    header("content-type", "application/json"),
                    header("retry-after", "60"),
                ],
                raw_body: br#"{"error":"too many requests"}"#.to_vec(),
                ..Default::default()
            },
        ),
        (
            "OVER_LIMIT",
            rls::RateLimitResponse {
                overall_code: rls::Code::OverLimit as i32,
                ..Default::default()
            },
        ),
        (
            "OK with statuses",
            rls::RateLimitResponse {
                overall_code: rls::Code::Ok as i32,
                statuses: vec![
                    status(rls::Code::Ok, 10, rls::Unit::Second, "per-ip", 7, 1),
                    status(rls::Code::Ok, 1000, rls::Unit::Hour, "", 3, 1800),
                ],
                ..Default::default()
            },
        ),
        (
            "OVER_LIMIT with statuses and invalid UTF-8 in the body",
            rls::RateLimitResponse {
                overall_code: rls::Code::OverLimit as i32,
                statuses: vec![status(
                    rls::Code::OverLimit,
                    5,
                    rls::Unit::Minute,
                    "per-user",
                    0,
                    42,
                )],
                raw_body: b"slow down \xff".to_vec(),
                ..Default::default()
            },
        ),
    ]
}

#[test]
#[ignore = "prints the fixtures' answers"]
fn print_fixture_answers() {
    for (name, response) in fixture_answers() {
        let text = base64::engine::general_purpose::STANDARD.encode(response.encode_to_vec());
        println!("{name}: {text}");
    }
}

#[test]
fn the_fixtures_answers_are_the_helpers() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/http");
    let known: Vec<String> = fixture_answers()
        .iter()
        .map(|(_, r)| base64::engine::general_purpose::STANDARD.encode(r.encode_to_vec()))
        .collect();
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().ends_with(".yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines() {
            if let Some(value) = line
                .trim()
                .trim_start_matches("- ")
                .strip_prefix("bodyBase64:")
            {
                let value = value.trim().trim_matches('\'').trim_matches('"');
                assert!(
                    known.iter().any(|k| k == value),
                    "{}: {value} is not one of fixture_answers()",
                    path.display()
                );
                seen += 1;
            }
        }
    }
    assert!(seen > 0, "no fixture carries an answer");
}
