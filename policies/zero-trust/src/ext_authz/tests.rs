#![expect(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use super::*;
use crate::Settings;

fn providers(yaml: &str) -> Result<Providers, ConfigError> {
    let value: Value = serde_yaml::from_str(yaml).unwrap();
    Providers::new(&value)
}

fn provider(http: &str) -> Provider {
    let yaml = format!("[{{name: authz, envoyExtAuthzHttp: {http}}}]");
    providers(&yaml).unwrap().get("authz").unwrap().clone()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Answer {
    Answer {
        id: "ext-authz/authz".into(),
        status,
        headers: pairs(headers),
        body: body.into(),
        ..Answer::default()
    }
}

#[test]
fn the_check_request_carries_what_envoy_sends() {
    let p = provider(
        r#"{service: "foo/authz.foo.svc.cluster.local", port: 9000, pathPrefix: /check,
            includeRequestHeadersInCheck: [x-user, "x-ext-*", "*-tenant"],
            includeAdditionalHeadersInCheck: {x-from: sidecar, X-User: fixed}}"#,
    );
    let request = HttpRequest {
        method: "POST".into(),
        path: "/orders?id=1".into(),
        authority: "shop.example".into(),
        headers: pairs(&[
            ("authorization", "Bearer t"),
            ("x-ext-a", "1"),
            ("x-user", "client-says"),
            ("cookie", "secret"),
            ("content-length", "42"),
            ("x-ext-a", "2"),
            ("acme-tenant", "t1"),
        ])
        .into(),
        ..HttpRequest::default()
    };
    let call = p.check(&request);
    assert_eq!(call.id, "ext-authz/authz");
    assert_eq!(call.cluster, "outbound|9000||authz.foo.svc.cluster.local");
    assert_eq!(
        (
            call.method.as_str(),
            call.path.as_str(),
            call.authority.as_str()
        ),
        ("POST", "/check/orders?id=1", "shop.example")
    );
    // Authorization always; matched headers once each (repeats joined); the additional
    // headers override the client's (in the order of their names as written, as Istio sorts
    // them); the body's length is 0 whatever the client sent.
    assert_eq!(
        call.headers,
        pairs(&[
            ("authorization", "Bearer t"),
            ("x-ext-a", "1,2"),
            ("acme-tenant", "t1"),
            ("x-user", "fixed"),
            ("x-from", "sidecar"),
            ("content-length", "0"),
        ])
    );
    assert_eq!(call.body, "");
    // Istio's default timeout is 600 s; protobuf durations are read as Istio writes them.
    assert_eq!(call.timeout_ms, 600_000);
    let quick = provider("{service: authz, port: 80, timeout: 0.5s, cluster: ext-authz}");
    let call = quick.check(&HttpRequest::default());
    assert_eq!((call.timeout_ms, call.cluster.as_str()), (500, "ext-authz"));
    assert_eq!(call.headers, pairs(&[("content-length", "0")]));
}

#[test]
fn only_a_200_allows_and_passes_the_named_headers() {
    let p = provider(
        r#"{service: authz, port: 80, headersToUpstreamOnAllow: ["x-auth-*"],
            headersToDownstreamOnAllow: [x-trace]}"#,
    );
    let ok = p.outcome(&answer(
        200,
        &[
            ("x-auth-user", "alice"),
            ("x-other", "no"),
            ("x-trace", "t1"),
            ("x-envoy-auth-headers-to-remove", "cookie, X-Debug"),
        ],
        "ignored",
    ));
    assert_eq!(
        ok,
        Outcome::Ok {
            request_headers: vec![
                HeaderChange::set("x-auth-user", "alice"),
                HeaderChange::remove("cookie"),
                HeaderChange::remove("x-debug"),
            ],
            response_headers: vec![HeaderChange::add("x-trace", "t1")],
        }
    );
    // Without headersToUpstreamOnAllow nothing is added upstream.
    let bare = provider("{service: authz, port: 80}");
    assert_eq!(
        bare.outcome(&answer(200, &[("x-auth-user", "alice")], "")),
        Outcome::Ok {
            request_headers: vec![],
            response_headers: vec![],
        }
    );
    // Envoy treats every other status below 500 as a denial, 2xx and 3xx included.
    for status in [201, 204, 302, 401, 403, 429] {
        assert!(
            matches!(bare.outcome(&answer(status, &[], "")), Outcome::Denied { status: s, .. } if s == status),
            "{status}"
        );
    }
}

#[test]
fn a_denial_carries_the_services_status_body_and_headers() {
    let all = provider("{service: authz, port: 80}");
    let headers = [
        ("content-type", "text/plain"),
        ("content-length", "9"),
        ("location", "https://login.example/"),
        ("x-reason", "no-entry"),
        ("www-authenticate", "Bearer"),
    ];
    assert_eq!(
        all.outcome(&answer(302, &headers, "go login")),
        Outcome::Denied {
            status: 302,
            body: "go login".into(),
            headers: pairs(&[
                ("content-type", "text/plain"),
                ("location", "https://login.example/"),
                ("x-reason", "no-entry"),
                ("www-authenticate", "Bearer"),
            ]),
        }
    );
    // A list keeps the named headers, and always location and www-authenticate.
    let named = provider("{service: authz, port: 80, headersToDownstreamOnDeny: [X-Reason]}");
    let Outcome::Denied { headers: kept, .. } = named.outcome(&answer(403, &headers, "")) else {
        panic!("not a denial");
    };
    assert_eq!(
        kept,
        pairs(&[
            ("location", "https://login.example/"),
            ("x-reason", "no-entry"),
            ("www-authenticate", "Bearer"),
        ])
    );
}

#[test]
fn failures_deny_with_status_on_error_unless_failing_open() {
    let closed = provider("{service: authz, port: 80}");
    for status in [0, 500, 503, 504] {
        assert!(
            matches!(
                closed.outcome(&answer(status, &[], "oops")),
                Outcome::Error { status: 403, .. }
            ),
            "{status}"
        );
    }
    let custom = provider(r#"{service: authz, port: 80, statusOnError: "503"}"#);
    assert!(matches!(
        custom.outcome(&answer(0, &[], "")),
        Outcome::Error { status: 503, .. }
    ));
    let open = provider("{service: authz, port: 80, failOpen: true}");
    let outcome = open.outcome(&answer(502, &[], ""));
    assert_eq!(outcome.stat(), "failure_mode_allowed");
    // Fail open covers errors only: a refusal still denies.
    assert_eq!(open.outcome(&answer(403, &[], "")).stat(), "denied");
}

#[test]
fn bad_providers_are_refused_naming_the_field() {
    let cases = [
        ("{name: a}", "[0]", "exactly one provider kind"),
        (
            "{name: a, envoyExtAuthzHttp: {service: s, port: 1}, zipkin: {}}",
            "[0]",
            "exactly one provider kind",
        ),
        (
            "{name: a, envoyExtAuthzHttp: {service: s}}",
            "[0].envoyExtAuthzHttp.",
            "missing field `port`",
        ),
        (
            "{name: a, envoyExtAuthzHttp: {service: s, port: 1, tiemout: 1s}}",
            "[0].envoyExtAuthzHttp.tiemout",
            "unknown field",
        ),
        (
            "{name: a, envoyExtAuthzHttp: {service: s, port: 70000}}",
            "[0].envoyExtAuthzHttp.port",
            "not a port",
        ),
        (
            "{name: a, envoyExtAuthzHttp: {service: ns/, port: 1}}",
            "[0].envoyExtAuthzHttp.service",
            "names no host",
        ),
        (
            "{name: a, envoyExtAuthzHttp: {service: s, port: 1, timeout: soon}}",
            "[0].envoyExtAuthzHttp.timeout",
            "not a duration",
        ),
        (
            "{name: a, envoyExtAuthzHttp: {service: s, port: 1, statusOnError: teapot}}",
            "[0].envoyExtAuthzHttp.statusOnError",
            "not an HTTP status",
        ),
        (
            "{name: a, envoyExtAuthzHttp: {service: s, port: 1, includeRequestHeadersInCheck: [x, '*']}}",
            "[0].envoyExtAuthzHttp.includeRequestHeadersInCheck[1]",
            "not a header name",
        ),
        (
            "{name: a, envoyExtAuthzHttp: {service: s, port: 1, includeRequestBodyInCheck: {maxRequestBytes: 10}}}",
            "[0].envoyExtAuthzHttp.includeRequestBodyInCheck",
            "before any body",
        ),
    ];
    for (entry, path, message) in cases {
        let err = providers(&format!("[{entry}]")).unwrap_err();
        assert!(
            err.path.starts_with(path) && err.message.contains(message),
            "{entry}: {err:?}"
        );
    }
    let err = providers(
        "[{name: a, envoyExtAuthzHttp: {service: s, port: 1}}, {name: a, prometheus: {}}]",
    )
    .unwrap_err();
    assert_eq!(err.path, "[1].name");
}

#[test]
fn custom_policies_must_name_an_http_provider() {
    let compile = |providers: &str| {
        let settings: Settings = palisade_sdk::parse_settings(&format!(
            r#"{{"extensionProviders": {providers},
                "policies": [{{"rules": [{{}}]}},
                  {{"spec": {{"action": "CUSTOM", "provider": {{"name": "authz"}}, "rules": [{{}}]}}}}]}}"#
        ))
        .unwrap();
        settings.compile()
    };
    let err = compile("[]").unwrap_err();
    assert_eq!(err.path, "policies[1].spec.provider.name");
    assert!(
        err.message.contains("not among extensionProviders"),
        "{err}"
    );
    let err = compile(r#"[{"name": "authz", "envoyExtAuthzGrpc": {"service": "s", "port": 1}}]"#)
        .unwrap_err();
    assert!(err.message.contains("of kind envoyExtAuthzGrpc"), "{err}");
    let compiled = compile(
        r#"[{"name": "tracing", "zipkin": {}}, {"name": "authz", "envoyExtAuthzHttp": {"service": "s", "port": 1}}]"#,
    )
    .unwrap();
    assert_eq!(compiled.custom.unwrap().cluster, "outbound|1||s");
}

#[test]
fn every_decision_after_a_call_records_and_counts_the_answer() {
    use palisade_sdk::testing::{FixtureHost, TestHost};
    let settings: Settings = palisade_sdk::parse_settings(
        r#"{"extensionProviders": [{"name": "authz", "envoyExtAuthzHttp": {"service": "authz", "port": 80, "failOpen": true}}],
            "policies": [{"metadata": {"name": "ask", "namespace": "shop"},
                          "spec": {"action": "CUSTOM", "provider": {"name": "authz"}, "rules": [{}]}}]}"#,
    )
    .unwrap();
    let prepared = crate::http::prepare(settings).unwrap();
    let host = TestHost::new(&FixtureHost::default());
    for status in [200, 403, 503] {
        let mut request = HttpRequest::default();
        let first = crate::http::evaluate(&request, &prepared, &host).unwrap();
        let palisade_sdk::wire::HttpVerdict::Call { callout } = first else {
            panic!("no call: {first:?}");
        };
        assert_eq!(callout.cluster, "outbound|80||authz");
        request.answers.push(answer(status, &[], ""));
        crate::http::evaluate(&request, &prepared, &host).unwrap();
    }
    let records: Vec<serde_json::Value> = host
        .logs()
        .iter()
        .filter_map(|(_, line)| serde_json::from_str(line).ok())
        .collect();
    let asked: Vec<(&str, &serde_json::Value)> = records
        .iter()
        .map(|r| (r["result"].as_str().unwrap(), &r["extAuthz"]))
        .collect();
    assert_eq!(
        asked,
        [
            (
                "allow",
                &serde_json::json!({"provider": "authz", "status": 200, "result": "ok"})
            ),
            (
                "deny",
                &serde_json::json!({"provider": "authz", "status": 403, "result": "denied"})
            ),
            (
                "allow",
                &serde_json::json!({"provider": "authz", "status": 503, "result": "failure_mode_allowed"})
            ),
        ]
    );
    // A token refused after the provider allowed: the refusal's record says so too.
    let with_jwt: Settings = palisade_sdk::parse_settings(
        &serde_json::json!({
            "extensionProviders": [{"name": "authz", "envoyExtAuthzHttp": {"service": "authz", "port": 80}}],
            "authentication": [{"jwtRules": [{"issuer": "https://auth.example",
                                              "jwks": crate::testing::keys().jwks(&["rsa"])}]}],
            "policies": [{"spec": {"action": "CUSTOM", "provider": {"name": "authz"}, "rules": [{}]}}],
        })
        .to_string(),
    )
    .unwrap();
    let prepared = crate::http::prepare(with_jwt).unwrap();
    let refused_host = TestHost::new(&FixtureHost::default());
    let mut request = HttpRequest {
        headers: vec![("authorization", "Bearer not.a.token")].into(),
        ..HttpRequest::default()
    };
    request.answers.push(answer(200, &[], ""));
    let verdict = crate::http::evaluate(&request, &prepared, &refused_host).unwrap();
    assert!(!verdict.is_allowed());
    let record: serde_json::Value =
        serde_json::from_str(&refused_host.logs().last().unwrap().1).unwrap();
    assert_eq!(record["status"], 401, "{record}");
    assert_eq!(record["extAuthz"]["result"], "ok");
    let counters = host.counters();
    for stat in ["ok", "denied", "failure_mode_allowed"] {
        assert_eq!(
            counters[&format!("zero_trust.ext_authz.{stat}")],
            1,
            "{stat}"
        );
    }
}
