#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use super::*;
use palisade_sdk::wire::Headers;
use serde_json::json;
use std::borrow::Cow;

fn authorizer(yaml: &str) -> Authorizer {
    try_authorizer(yaml).unwrap_or_else(|e| panic!("{e}"))
}

fn try_authorizer(yaml: &str) -> Result<Authorizer, ConfigError> {
    let value: Value = serde_yaml::from_str(yaml).unwrap();
    Authorizer::new(&value, Options::default())
}

/// A request from `web` in namespace `shop` over mTLS, to `GET /cart` on `shop.example:8080`.
fn request() -> Attributes<'static> {
    Attributes {
        principals: vec!["cluster.local/ns/shop/sa/web".into()],
        source_ip: Some("10.1.2.3".parse().unwrap()),
        remote_ip: Some("203.0.113.9".parse().unwrap()),
        destination_ip: Some("10.0.0.1".parse().unwrap()),
        destination_port: Some(8080),
        host: Some("shop.example".into()),
        method: Some("GET".into()),
        path: Some("/cart".into()),
        headers: Cow::Owned(Headers::from(vec![("x-env", "prod")])),
        ..Attributes::default()
    }
}

fn with_path(path: &str) -> Attributes<'_> {
    Attributes {
        path: Some(path.into()),
        ..request()
    }
}

fn anonymous() -> Attributes<'static> {
    Attributes {
        principals: Vec::new(),
        ..request()
    }
}

fn effect(a: &Authorizer, r: &Attributes) -> Effect {
    a.decide(r).effect
}

#[test]
fn without_policies_everything_passes_unless_default_deny() {
    let none = Authorizer::new(&Value::Null, Options::default()).unwrap();
    assert_eq!(effect(&none, &request()), Effect::Allow);
    let strict = Authorizer::new(&json!([]), Options { default_deny: true }).unwrap();
    let decision = strict.decide(&request());
    assert_eq!(decision.effect, Effect::Deny);
    assert_eq!(decision.policy, None);
}

#[test]
fn an_allow_policy_without_rules_denies_everything_and_an_empty_rule_allows_everything() {
    let deny_all = authorizer(
        "{apiVersion: security.istio.io/v1, kind: AuthorizationPolicy, metadata: {name: deny-all, namespace: shop}, spec: {}}",
    );
    assert_eq!(effect(&deny_all, &request()), Effect::Deny);
    let allow_all = authorizer("rules: [{}]");
    let decision = allow_all.decide(&request());
    assert_eq!(decision.effect, Effect::Allow);
    assert_eq!(
        decision.rule(),
        Some("ns[default]-policy[policy-0]-rule[0]")
    );
}

#[test]
fn deny_beats_allow_and_names_its_rule() {
    let a = authorizer(
        r#"
- metadata: {name: allow-shop, namespace: shop}
  spec:
    rules: [{from: [{source: {namespaces: [shop]}}]}]
- metadata: {name: no-admin, namespace: shop}
  spec:
    action: DENY
    rules:
      - to: [{operation: {paths: [/metrics]}}]
      - to: [{operation: {paths: ["/admin/*"]}}]
"#,
    );
    assert_eq!(effect(&a, &request()), Effect::Allow);
    let decision = a.decide(&with_path("/admin/users"));
    assert_eq!(decision.effect, Effect::Deny);
    assert_eq!(decision.rule(), Some("ns[shop]-policy[no-admin]-rule[1]"));
    // Another namespace matches no ALLOW rule: denied, by no rule.
    let other = Attributes {
        principals: vec!["cluster.local/ns/other/sa/web".into()],
        ..request()
    };
    assert_eq!(a.decide(&other).policy, None);
    assert_eq!(effect(&a, &other), Effect::Deny);
}

#[test]
fn paths_are_matched_normalised_and_without_the_query() {
    let a =
        authorizer("action: DENY\nrules: [{to: [{operation: {paths: [/admin, \"/admin/*\"]}}]}]");
    for path in [
        "/admin",
        "/admin?x=1",
        "/cart/../admin",
        "/%61dmin/x",
        "\\admin\\x",
        "//admin",
    ] {
        assert_eq!(effect(&a, &with_path(path)), Effect::Deny, "{path}");
    }
    assert_eq!(effect(&a, &with_path("/administrator")), Effect::Allow);
    assert_eq!(
        effect(&a, &with_path("/Admin")),
        Effect::Allow,
        "paths are case-sensitive"
    );
}

#[test]
fn a_path_with_two_normal_forms_must_pass_allow_in_both_and_is_denied_in_either() {
    // `/public//../admin` is `/public/admin` to Envoy and `/admin` to a backend that merges
    // slashes first.
    let allow = authorizer("rules: [{to: [{operation: {paths: [\"/public/*\"]}}]}]");
    assert_eq!(effect(&allow, &with_path("/public/x")), Effect::Allow);
    assert_eq!(
        effect(&allow, &with_path("/public//../admin")),
        Effect::Deny
    );
    let deny = authorizer("action: DENY\nrules: [{to: [{operation: {paths: [/admin]}}]}]");
    assert_eq!(effect(&deny, &with_path("/public//../admin")), Effect::Deny);
}

#[test]
fn not_paths_with_templates() {
    let a = authorizer(
        r#"rules: [{to: [{operation: {methods: [GET], notPaths: ["/items/{*}/secret", "/private/{**}"]}}]}]"#,
    );
    assert_eq!(effect(&a, &with_path("/items/42")), Effect::Allow);
    assert_eq!(effect(&a, &with_path("/items/42/secret")), Effect::Deny);
    assert_eq!(effect(&a, &with_path("/items/42/x/secret")), Effect::Allow);
    assert_eq!(effect(&a, &with_path("/private/a/b")), Effect::Deny);
    let err =
        try_authorizer(r#"rules: [{to: [{operation: {paths: ["/foo/{*}.txt"]}}]}]"#).unwrap_err();
    assert_eq!(err.path, "rules[0].to[0].operation.paths[0]");
}

#[test]
fn hosts_ignore_case_methods_and_header_values_do_not() {
    let a = authorizer(
        r#"rules: [{to: [{operation: {hosts: ["SHOP.example", "*.internal"], methods: [GET, "HEAD"]}}]}]"#,
    );
    assert_eq!(effect(&a, &request()), Effect::Allow);
    let post = Attributes {
        method: Some("POST".into()),
        ..request()
    };
    assert_eq!(effect(&a, &post), Effect::Deny);
    let lower = Attributes {
        method: Some("get".into()),
        ..request()
    };
    assert_eq!(effect(&a, &lower), Effect::Deny);
    let h = authorizer(r#"rules: [{when: [{key: "request.headers[X-Env]", values: [prod]}]}]"#);
    assert_eq!(
        effect(&h, &request()),
        Effect::Allow,
        "header names ignore case"
    );
    let upper = Attributes {
        headers: Cow::Owned(Headers::from(vec![("x-env", "PROD")])),
        ..request()
    };
    assert_eq!(effect(&h, &upper), Effect::Deny, "header values do not");
}

#[test]
fn repeated_headers_are_joined_and_star_means_present() {
    let a = authorizer(r#"rules: [{when: [{key: "request.headers[x-tag]", values: ["a,b"]}]}]"#);
    let two = Attributes {
        headers: Cow::Owned(Headers::from(vec![("x-tag", "a"), ("X-Tag", "b")])),
        ..request()
    };
    assert_eq!(effect(&a, &two), Effect::Allow);
    let present =
        authorizer(r#"rules: [{when: [{key: "request.headers[x-empty]", values: ["*"]}]}]"#);
    let empty = Attributes {
        headers: Cow::Owned(Headers::from(vec![("x-empty", "")])),
        ..request()
    };
    assert_eq!(effect(&present, &empty), Effect::Allow);
    assert_eq!(effect(&present, &request()), Effect::Deny);
}

#[test]
fn an_absent_attribute_fails_positive_matchers_and_passes_negative_ones() {
    let principals = authorizer("rules: [{from: [{source: {principals: [\"*\"]}}]}]");
    assert_eq!(effect(&principals, &request()), Effect::Allow);
    assert_eq!(effect(&principals, &anonymous()), Effect::Deny);
    let not_principals = authorizer(
        "action: DENY\nrules: [{from: [{source: {notPrincipals: [\"cluster.local/ns/shop/sa/web\"]}}]}]",
    );
    assert_eq!(effect(&not_principals, &anonymous()), Effect::Deny);
    assert_eq!(effect(&not_principals, &request()), Effect::Allow);
    let claims = authorizer(
        r#"action: DENY
rules: [{when: [{key: "request.auth.claims[group]", notValues: [admin]}]}]"#,
    );
    assert_eq!(
        effect(&claims, &anonymous()),
        Effect::Deny,
        "anonymous matches notValues"
    );
}

fn with_token(payload: &Value) -> Attributes<'static> {
    Attributes {
        auth: Some(std::rc::Rc::new(payload.as_object().unwrap().clone())),
        ..request()
    }
}

#[test]
fn request_principals_audiences_presenter_and_nested_claims() {
    let a = authorizer(
        r#"
rules:
  - from: [{source: {requestPrincipals: ["https://idp.example/realms/shop/*"]}}]
    when:
      - {key: request.auth.audiences, values: [shop-api]}
      - {key: request.auth.presenter, values: ["web-*"]}
      - {key: "request.auth.claims[realm_access][roles]", values: [buyer]}
      - {key: "request.auth.claims[scope]", values: [orders.read]}
"#,
    );
    let good = json!({
        "iss": "https://idp.example/realms/shop", "sub": "u-1", "aud": ["other", "shop-api"],
        "azp": "web-frontend", "realm_access": {"roles": ["buyer", "viewer"]},
        "scope": "openid orders.read"
    });
    assert_eq!(effect(&a, &with_token(&good)), Effect::Allow);
    for (claim, value) in [
        ("iss", json!("https://idp.example/realms/other")),
        ("sub", json!("")),
        ("aud", json!("other")),
        ("azp", json!("cli")),
        ("realm_access", json!({"roles": ["viewer"]})),
        ("scope", json!("openid")),
    ] {
        let mut bad = good.clone();
        bad[claim] = value;
        assert_eq!(effect(&a, &with_token(&bad)), Effect::Deny, "{claim}");
    }
    assert_eq!(effect(&a, &request()), Effect::Deny, "no token");
    // Non-string claims never match, even written as strings.
    let flag =
        authorizer(r#"rules: [{when: [{key: "request.auth.claims[admin]", values: ["true"]}]}]"#);
    assert_eq!(
        effect(&flag, &with_token(&json!({"admin": true}))),
        Effect::Deny
    );
    // A dotted name between brackets is one claim, not a path.
    let dotted = authorizer(
        r#"rules: [{when: [{key: "request.auth.claims[example.com/team]", values: [a]}]}]"#,
    );
    assert_eq!(
        effect(&dotted, &with_token(&json!({"example.com/team": "a"}))),
        Effect::Allow
    );
}

#[test]
fn addresses_ports_and_sni() {
    let a = authorizer(
        r#"
rules:
  - from: [{source: {ipBlocks: [10.1.0.0/16], notRemoteIpBlocks: [203.0.113.0/24]}}]
  - to: [{operation: {ports: ["9090"]}}]
    when: [{key: connection.sni, values: ["*.mesh.local"]}, {key: destination.ip, values: [10.0.0.0/8]}]
"#,
    );
    assert_eq!(
        effect(&a, &request()),
        Effect::Deny,
        "remote address in notRemoteIpBlocks"
    );
    let direct = Attributes {
        remote_ip: Some("10.1.2.3".parse().unwrap()),
        ..request()
    };
    assert_eq!(effect(&a, &direct), Effect::Allow);
    let by_port = Attributes {
        destination_port: Some(9090),
        sni: Some("api.mesh.local".into()),
        ..request()
    };
    assert_eq!(effect(&a, &by_port), Effect::Allow);
    let v6 = Attributes {
        source_ip: Some("::1".parse().unwrap()),
        remote_ip: None,
        ..request()
    };
    assert_eq!(effect(&a, &v6), Effect::Deny);
}

#[test]
fn audit_never_changes_the_decision_and_dry_run_is_only_reported() {
    let a = authorizer(
        r#"
- metadata: {name: audit-writes}
  spec: {action: AUDIT, rules: [{to: [{operation: {methods: [GET]}}]}]}
- metadata: {name: try-deny, annotations: {istio.io/dry-run: "true"}}
  spec: {action: DENY, rules: [{}]}
"#,
    );
    let decision = a.decide(&request());
    assert_eq!(decision.effect, Effect::Allow);
    assert_eq!(
        decision.audited,
        ["ns[default]-policy[audit-writes]-rule[0]"]
    );
    assert_eq!(
        decision.dry_run,
        Some((
            Effect::Deny,
            Some("ns[default]-policy[try-deny]-rule[0]".into())
        ))
    );
}

#[test]
fn custom_policies_name_their_provider() {
    let a = authorizer(
        r#"
action: CUSTOM
provider: {name: ext-authz}
rules: [{to: [{operation: {paths: ["/orders/*"]}}]}]
"#,
    );
    assert_eq!(a.custom(&request()), None);
    assert_eq!(
        a.custom(&with_path("/orders/1"))
            .as_deref()
            .map(RuleName::as_str),
        Some("ns[default]-policy[policy-0]-rule[0]")
    );
    let custom = a.custom_policy().unwrap();
    assert_eq!(
        (
            custom.at.as_str(),
            custom.provider_at.as_str(),
            custom.provider.as_str()
        ),
        ("", "provider.name", "ext-authz")
    );
    // CUSTOM takes no part in the ALLOW/DENY decision.
    assert_eq!(effect(&a, &with_path("/orders/1")), Effect::Allow);
}

#[test]
fn configuration_errors_name_the_field() {
    let cases = [
        (
            "action: DENY",
            "spec: rules",
            "a DENY policy without rules matches nothing",
        ),
        (
            "action: CUSTOM\nrules: [{}]",
            "provider.name",
            "a CUSTOM policy needs a provider",
        ),
        (
            "provider: {name: x}\nrules: [{}]",
            "provider",
            "only a CUSTOM policy has a provider",
        ),
        ("rules: [{from: []}]", "rules[0].from", "must not be empty"),
        (
            "rules: [{from: [{source: {}}]}]",
            "rules[0].from[0].source",
            "is empty",
        ),
        (
            "rules: [{to: [{operation: {paths: [\"\"]}}]}]",
            "rules[0].to[0].operation.paths[0]",
            "must not be empty",
        ),
        (
            "rules: [{to: [{operation: {ports: [http]}}]}]",
            "rules[0].to[0].operation.ports[0]",
            "\"http\" is not a port number",
        ),
        (
            "rules: [{from: [{source: {ipBlocks: [10.0.0.0/40]}}]}]",
            "rules[0].from[0].source.ipBlocks[0]",
            "is not an IP address",
        ),
        (
            "rules: [{when: [{key: request.host, values: [a]}]}]",
            "rules[0].when[0].key",
            "unknown attribute \"request.host\"",
        ),
        (
            "rules: [{when: [{key: source.ip}]}]",
            "rules[0].when[0]",
            "needs values or notValues",
        ),
        (
            "rules: [{when: [{key: \"request.headers\", values: [a]}]}]",
            "rules[0].when[0].key",
            "brackets",
        ),
        (
            "rules: [{from: [{source: {serviceAccounts: [a]}}]}]",
            "rules[0].from[0].source.serviceAccounts",
            "unknown field `serviceAccounts`",
        ),
        (
            "action: CUSTOM\nprovider: {name: x}\nrules: [{when: [{key: request.auth.principal, values: [a]}]}]",
            "rules[0].when[0].key",
            "cannot be used in a CUSTOM policy",
        ),
        ("action: allow", "action", "unknown variant `allow`"),
    ];
    for (yaml, path, message) in cases {
        let err = try_authorizer(yaml).expect_err(yaml);
        let path = path.strip_prefix("spec: ").unwrap_or(path);
        assert_eq!(err.path, path, "{yaml}: {err}");
        assert!(err.message.contains(message), "{yaml}: {err}");
    }
    let err = try_authorizer("- {kind: PeerAuthentication, spec: {}}").unwrap_err();
    assert_eq!(
        err.to_string(),
        "[0].kind: is \"PeerAuthentication\", not AuthorizationPolicy"
    );
    let err = try_authorizer(
        "- {metadata: {name: a}, spec: {rules: [{to: [{operation: {ports: [\"x\"]}}]}]}}",
    )
    .unwrap_err();
    assert_eq!(err.path, "[0].spec.rules[0].to[0].operation.ports[0]");
    let err = try_authorizer(
        "- {action: CUSTOM, provider: {name: a}, rules: [{}]}\n- {action: CUSTOM, provider: {name: b}, rules: [{}]}",
    )
    .unwrap_err();
    assert!(err.message.contains("one provider per workload"), "{err}");
}

/// The peer part of the sources is remembered per set of identities: a decision never takes
/// another peer's, whatever the order they come in and however many there are (more than the
/// memory keeps, so some are forgotten and worked out again).
#[test]
fn each_set_of_peer_identities_is_decided_on_its_own() {
    let yaml = r#"
- spec:
    rules:
    - from: [{source: {principals: ["cluster.local/ns/team-1/sa/*"]}}]
    - from: [{source: {namespaces: ["team-2"], notPrincipals: ["*/sa/blocked"]}}]
    - from: [{source: {principals: ["*/sa/reader"], ipBlocks: ["10.1.0.0/16"]}}]
    - from:
      - source: {principals: ["*/sa/never"]}
      - source: {remoteIpBlocks: ["198.51.100.0/24"]}
- spec:
    action: DENY
    rules:
    - from: [{source: {notNamespaces: ["team-1", "team-2", "team-3"]}}]
"#;
    let a = authorizer(yaml);
    let mut cases: Vec<(Vec<String>, Effect)> = Vec::new();
    for i in 0..12 {
        for (ns, expected) in [
            (1, Effect::Allow),
            (2, Effect::Allow),
            (3, Effect::Deny),
            (4, Effect::Deny),
        ] {
            cases.push((
                vec![format!("cluster.local/ns/team-{ns}/sa/web-{i}")],
                expected,
            ));
        }
    }
    cases.push((
        vec!["cluster.local/ns/team-2/sa/blocked".into()],
        Effect::Deny,
    ));
    cases.push((
        vec!["cluster.local/ns/team-3/sa/reader".into()],
        Effect::Allow,
    ));
    cases.push((
        vec![
            "cluster.local/ns/team-9/sa/x".into(),
            "cluster.local/ns/team-1/sa/y".into(),
        ],
        Effect::Allow,
    ));
    cases.push((Vec::new(), Effect::Deny));
    // Forwards, backwards, and each twice in a row, with one authorizer throughout.
    let order = cases
        .iter()
        .chain(cases.iter().rev())
        .flat_map(|case| [case, case]);
    for (principals, expected) in order {
        let asked = Attributes {
            principals: principals.clone(),
            ..request()
        };
        assert_eq!(effect(&a, &asked), *expected, "{principals:?}");
        assert_eq!(
            effect(&authorizer(yaml), &asked),
            *expected,
            "{principals:?}"
        );
    }
    // The reader's source also needs its address, matched on every request.
    let elsewhere = Attributes {
        principals: vec!["cluster.local/ns/team-3/sa/reader".into()],
        source_ip: Some("10.2.0.1".parse().unwrap()),
        ..request()
    };
    assert_eq!(effect(&a, &elsewhere), Effect::Deny);
    // A rule with a source that has no peer part stays a candidate for every peer.
    for (remote, expected) in [
        ("198.51.100.7", Effect::Allow),
        ("203.0.113.9", Effect::Deny),
    ] {
        let forwarded = Attributes {
            principals: vec!["cluster.local/ns/team-3/sa/web".into()],
            remote_ip: Some(remote.parse().unwrap()),
            ..request()
        };
        assert_eq!(effect(&a, &forwarded), expected, "{remote}");
    }
}
