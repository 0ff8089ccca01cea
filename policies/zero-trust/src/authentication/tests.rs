#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::needless_pass_by_value,
    reason = "tests"
)]

use super::*;
use crate::testing::keys;
use serde_json::json;

/// 2026-01-01T00:00:00Z, the fixtures' clock.
const NOW: u64 = 1_767_225_600;
const ISSUER: &str = "https://auth.shop.example";

fn authenticator(rules: Value) -> Authenticator {
    Authenticator::new(&rules, Options::default()).unwrap()
}

fn inline(extra: Value) -> Authenticator {
    let mut rule = json!({"issuer": ISSUER, "jwks": keys().jwks(&[])});
    if let (Value::Object(r), Value::Object(e)) = (&mut rule, extra) {
        r.extend(e);
    }
    authenticator(json!({"jwtRules": [rule]}))
}

fn sign(alg: &str, claims: Value) -> String {
    keys().sign(alg, None, &Map::new(), &claims).unwrap()
}

fn bearer(token: &str) -> HttpRequest {
    HttpRequest {
        headers: vec![("authorization", format!("Bearer {token}"))].into(),
        ..HttpRequest::default()
    }
}

fn claims() -> Value {
    json!({"iss": ISSUER, "sub": "alice", "exp": NOW + 3600, "scope": "orders.read  orders.write"})
}

#[test]
fn every_supported_algorithm_verifies_with_its_key() {
    let a = inline(json!({}));
    for alg in [
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA", "HS256",
        "HS384", "HS512",
    ] {
        let outcome = a
            .authenticate(&bearer(&sign(alg, claims())), NOW)
            .unwrap_or_else(|r| panic!("{alg}: {r:?}"));
        let payload = outcome.payload.unwrap();
        assert_eq!(payload["sub"], "alice", "{alg}");
        assert_eq!(
            payload["scope"],
            json!(["orders.read", "orders.write"]),
            "{alg}"
        );
    }
}

#[test]
fn a_token_signed_by_an_unknown_key_or_altered_fails() {
    let a = inline(json!({}));
    let other = keys()
        .sign("RS256", Some("other"), &Map::new(), &claims())
        .unwrap();
    // kid "other" is in no set: no key matches it.
    assert_eq!(
        a.authenticate(&bearer(&other), NOW).unwrap_err().message,
        "Jwks doesn't have key to match kid or alg from Jwt"
    );
    let mut no_kid = Map::new();
    no_kid.insert("kid".into(), json!("rsa"));
    let forged = keys()
        .sign("RS256", Some("other"), &no_kid, &claims())
        .unwrap();
    assert_eq!(
        a.authenticate(&bearer(&forged), NOW).unwrap_err(),
        Rejection {
            status: 401,
            message: "Jwt verification fails"
        }
    );
    let token = sign("ES256", claims());
    let (signed, _) = token.rsplit_once('.').unwrap();
    let swapped = format!(
        "{signed}.{}",
        token
            .rsplit_once('.')
            .unwrap()
            .1
            .chars()
            .rev()
            .collect::<String>()
    );
    assert_eq!(
        a.authenticate(&bearer(&swapped), NOW).unwrap_err().status,
        401
    );
}

#[test]
fn outcomes_as_envoy_answers_them() {
    let a = inline(json!({"audiences": ["shop-api"]}));
    let with = |c: Value| a.authenticate(&bearer(&sign("RS256", c)), NOW);
    let mut c = claims();
    c["aud"] = json!(["https://shop-api/"]);
    assert!(
        with(c).is_ok(),
        "audiences compare without scheme and trailing slash"
    );
    let mut c = claims();
    c["aud"] = json!("billing");
    assert_eq!(
        with(c).unwrap_err(),
        Rejection {
            status: 403,
            message: "Audiences in Jwt are not allowed"
        }
    );
    let mut c = claims();
    c["iss"] = json!("https://evil.example");
    assert_eq!(with(c).unwrap_err().message, "Jwt issuer is not configured");
    let mut c = claims();
    c["exp"] = json!(NOW - 61);
    assert_eq!(with(c).unwrap_err().message, "Jwt is expired");
    let mut c = claims();
    c["exp"] = json!(NOW - 60);
    c["aud"] = json!("shop-api");
    assert!(with(c).is_ok(), "expired within the 60 s skew");
    let mut c = claims();
    c["nbf"] = json!(NOW + 61);
    assert_eq!(with(c).unwrap_err().message, "Jwt not yet valid");
    let mut c = claims();
    c["exp"] = json!("tomorrow");
    assert_eq!(
        with(c).unwrap_err().message,
        "Jwt payload [exp] field is not an integer"
    );
    assert_eq!(
        a.authenticate(&bearer("abc.def"), NOW).unwrap_err().message,
        "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
    );
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
        URL_SAFE_NO_PAD.encode(claims().to_string())
    );
    assert_eq!(
        a.authenticate(&bearer(&none), NOW).unwrap_err().message,
        "Jwt header [alg] is not supported"
    );
}

#[test]
fn no_token_is_anonymous_and_a_wrong_prefix_is_no_token() {
    let a = inline(json!({}));
    let anonymous = a.authenticate(&HttpRequest::default(), NOW).unwrap();
    assert_eq!(anonymous.payload, None);
    let token = sign("RS256", claims());
    let lower = HttpRequest {
        headers: vec![("authorization", format!("bearer {token}"))].into(),
        ..HttpRequest::default()
    };
    assert_eq!(a.authenticate(&lower, NOW).unwrap().payload, None);
    // The default locations: the header, then the access_token parameter.
    let param = HttpRequest {
        path: format!("/orders?access_token={token}"),
        ..HttpRequest::default()
    };
    let outcome = a.authenticate(&param, NOW).unwrap();
    assert!(outcome.payload.is_some());
    assert!(
        outcome.request_headers.is_empty(),
        "a parameter token is never stripped"
    );
}

#[test]
fn header_tokens_are_stripped_unless_forwarded_and_outputs_replace_what_the_client_sent() {
    let a = inline(json!({
        "outputPayloadToHeader": "x-jwt-payload",
        "outputClaimToHeaders": [{"header": "x-user", "claim": "sub"}, {"header": "x-tier", "claim": "plan.tier"}]
    }));
    let mut c = claims();
    c["plan"] = json!({"tier": "gold"});
    let mut request = bearer(&sign("RS256", c.clone()));
    request.headers.push("x-user", "mallory");
    let outcome = a.authenticate(&request, NOW).unwrap();
    assert_eq!(
        outcome.request_headers,
        vec![
            HeaderChange::remove("x-user"),
            HeaderChange::remove("authorization"),
            HeaderChange::set("x-jwt-payload", URL_SAFE_NO_PAD.encode(c.to_string())),
            HeaderChange::set("x-user", "alice"),
            HeaderChange::set("x-tier", "gold"),
        ]
    );
    // Without a token the spoofed header is still removed.
    let mut anonymous = HttpRequest::default();
    anonymous.headers.push("x-jwt-payload", "e30");
    assert_eq!(
        a.authenticate(&anonymous, NOW).unwrap().request_headers,
        vec![HeaderChange::remove("x-jwt-payload")]
    );
    let forward = inline(json!({"forwardOriginalToken": true}));
    assert!(
        forward
            .authenticate(&bearer(&sign("RS256", claims())), NOW)
            .unwrap()
            .request_headers
            .is_empty()
    );
}

#[test]
fn every_token_found_must_verify() {
    let a = inline(json!({}));
    let good = sign("RS256", claims());
    let mut request = bearer(&good);
    request.path = "/?access_token=abc.def.ghi".into();
    assert_eq!(a.authenticate(&request, NOW).unwrap_err().status, 401);
}

#[test]
fn tokens_are_read_only_from_their_rules_locations() {
    let a = authenticator(json!([
        {"jwtRules": [{"issuer": ISSUER, "jwks": keys().jwks(&["rsa"]), "fromHeaders": [{"name": "X-Jwt-Assertion"}]}]},
        {"jwtRules": [{"issuer": "https://partner.example", "jwks": keys().jwks(&["es256"]), "fromCookies": ["session"]}]},
    ]));
    let shop = sign("RS256", claims());
    let mut partner_claims = claims();
    partner_claims["iss"] = json!("https://partner.example");
    let partner = sign("ES256", partner_claims);
    let request = |name: &str, value: String| HttpRequest {
        headers: vec![(name, value)].into(),
        ..HttpRequest::default()
    };
    assert!(
        a.authenticate(&request("x-jwt-assertion", shop.clone()), NOW)
            .unwrap()
            .payload
            .is_some()
    );
    assert!(
        a.authenticate(&request("cookie", format!("a=1; session={partner}")), NOW)
            .unwrap()
            .payload
            .is_some()
    );
    // The partner's token where only the shop's issuer is read.
    assert_eq!(
        a.authenticate(&request("x-jwt-assertion", partner), NOW)
            .unwrap_err()
            .message,
        "Jwt issuer is not configured"
    );
    // Authorization is no location of either rule.
    assert_eq!(
        a.authenticate(&request("authorization", format!("Bearer {shop}")), NOW)
            .unwrap()
            .payload,
        None
    );
}

#[test]
fn a_repeated_token_is_served_from_the_cache_until_it_expires() {
    let a = inline(json!({}));
    let mut c = claims();
    c["exp"] = json!(NOW + 10);
    let token = sign("RS256", c);
    a.authenticate(&bearer(&token), NOW).unwrap();
    assert_eq!(a.cache.borrow().len(), 1);
    a.authenticate(&bearer(&token), NOW + 5).unwrap();
    assert_eq!(
        a.authenticate(&bearer(&token), NOW + 71)
            .unwrap_err()
            .message,
        "Jwt is expired"
    );
    assert_eq!(
        a.cache.borrow().len(),
        0,
        "the expired token left the cache"
    );
    let small = Authenticator::new(
        &json!({"jwtRules": [{"issuer": ISSUER, "jwks": keys().jwks(&[])}]}),
        Options {
            cache_size: 2,
            ..Options::default()
        },
    )
    .unwrap();
    for sub in ["a", "b", "c", "d"] {
        let mut c = claims();
        c["sub"] = json!(sub);
        small.authenticate(&bearer(&sign("ES256", c)), NOW).unwrap();
    }
    assert_eq!(small.cache.borrow().len(), 2, "bounded");
}

#[test]
fn remote_key_sets_fail_closed_until_fetched_and_keep_the_last_good_set() {
    let a = authenticator(
        json!({"jwtRules": [{"issuer": ISSUER, "jwksUri": "https://auth.shop.example:8443/keys?v=1"}]}),
    );
    let fetches = a.fetches();
    assert_eq!(fetches.len(), 1);
    assert_eq!(fetches[0].cluster, "outbound|8443||auth.shop.example");
    assert_eq!(fetches[0].authority, "auth.shop.example:8443");
    assert_eq!(fetches[0].path, "/keys?v=1");
    let token = sign("RS256", claims());
    assert_eq!(
        a.authenticate(&bearer(&token), NOW).unwrap_err().message,
        "Jwks remote fetch is failed"
    );
    assert!(
        a.authenticate(&HttpRequest::default(), NOW)
            .unwrap()
            .payload
            .is_none(),
        "no token still passes"
    );
    assert!(
        a.fetched("jwks/0", br#"{"keys": []}"#)
            .unwrap_err()
            .contains("any valid public key")
    );
    // Bad keys beside a good one are skipped in a fetched set.
    let set = json!({"keys": [{"kty": "RSA", "n": "%%"}, keys().jwk("rsa")]}).to_string();
    a.fetched("jwks/0", set.as_bytes()).unwrap();
    assert!(a.authenticate(&bearer(&token), NOW).is_ok());
    assert!(a.fetched("jwks/0", b"not json").is_err());
    assert!(
        a.authenticate(&bearer(&token), NOW).is_ok(),
        "the last good set stays"
    );
    // A rotation that drops the key takes effect at once, cached tokens included.
    a.fetched("jwks/0", keys().jwks(&["es256"]).as_bytes())
        .unwrap();
    assert_eq!(
        a.authenticate(&bearer(&token), NOW).unwrap_err().message,
        "Jwks doesn't have key to match kid or alg from Jwt"
    );
}

#[test]
fn configuration_errors_name_the_field() {
    let err = |rules: Value| Authenticator::new(&rules, Options::default()).unwrap_err();
    assert_eq!(
        err(json!({"jwtRules": [{"jwks": "{}"}]})).path,
        ".jwtRules[0].issuer"
    );
    let e = err(
        json!([{"kind": "RequestAuthentication", "spec": {"jwtRules": [{"issuer": "i", "jwks": {"keys": [{"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}]}}]}}]),
    );
    assert_eq!(e.path, "[0].spec.jwtRules[0].jwks.keys[0].crv");
    let e = err(
        json!({"jwtRules": [{"issuer": "i", "jwks": "{\"keys\": [{\"kty\": \"RSA\", \"alg\": \"ES256\", \"n\": \"AQAB\", \"e\": \"AQAB\"}]}"}]}),
    );
    assert_eq!(e.path, ".jwtRules[0].jwks.keys[0].alg");
    assert_eq!(
        err(json!({"jwtRules": [{"issuer": "i", "jwksUri": "ftp://x/keys"}]})).path,
        ".jwtRules[0].jwksUri"
    );
    assert_eq!(
        err(json!({"jwtRules": [{"issuer": "i", "jwks": "{}", "jwksUri": "https://x/"}]})).path,
        ".jwtRules[0].jwks"
    );
    assert_eq!(err(json!({"jwtRules": [{"issuer": "i", "jwks": keys().jwks(&[]), "outputClaimToHeaders": [{"header": "x y", "claim": "sub"}]}]})).path,
        ".jwtRules[0].outputClaimToHeaders[0].header");
    assert_eq!(
        err(json!({"jwtRules": [{"issuer": "i", "jwks": keys().jwks(&[]), "frmHeaders": []}]}))
            .path,
        ".jwtRules[0].frmHeaders"
    );
    assert_eq!(
        err(json!({"jwtRules": [{"issuer": "i", "jwks": keys().jwks(&[]), "timeout": "5s"}]})).path,
        ".jwtRules[0].timeout"
    );
}

#[test]
fn cors_preflights_pass_untouched() {
    let a = inline(json!({}));
    let request = HttpRequest {
        method: "OPTIONS".into(),
        headers: vec![
            ("origin", "https://shop.example"),
            ("access-control-request-method", "POST"),
            ("authorization", "Bearer garbage"),
        ]
        .into(),
        ..HttpRequest::default()
    };
    assert_eq!(
        a.authenticate(&request, NOW).unwrap(),
        Authenticated::default()
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// A token whose signature fails never yields a principal, whatever the bit flipped,
        /// the algorithm, or the claims.
        #[test]
        fn a_failed_signature_never_yields_a_principal(
            alg in prop::sample::select(vec!["RS256", "PS256", "ES256", "ES384", "EdDSA", "HS256"]),
            sub in "[a-z]{1,12}",
            byte in 0usize..64,
            bit in 0u8..8,
        ) {
            let a = inline(json!({}));
            let mut c = claims();
            c["sub"] = json!(sub);
            let token = sign(alg, c);
            let (signed, signature) = token.rsplit_once('.').unwrap();
            let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
            let at = byte % bytes.len();
            bytes[at] ^= 1 << bit;
            let forged = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(&bytes));
            let outcome = a.authenticate(&bearer(&forged), NOW);
            prop_assert!(outcome.is_err(), "{alg}: a forged token passed: {outcome:?}");
            // And the genuine token still verifies afterwards (nothing was cached for it).
            prop_assert!(a.authenticate(&bearer(&token), NOW).unwrap().payload.is_some());
        }
    }
}

#[test]
fn decisions_are_counted_per_result_and_rule() {
    use palisade_sdk::testing::{FixtureHost, TestHost};
    let settings: crate::Settings = palisade_sdk::parse_settings(
        &json!({
            "authentication": [{"jwtRules": [{"issuer": ISSUER, "jwks": keys().jwks(&["rsa"])}]}],
            "policies": [{"metadata": {"name": "signed-in", "namespace": "shop"},
                          "spec": {"rules": [{"from": [{"source": {"requestPrincipals": ["*"]}}]}]}}],
        })
        .to_string(),
    )
    .unwrap();
    let prepared = crate::http::prepare(settings).unwrap();
    let host = TestHost::new(&FixtureHost::default());
    let token = sign("RS256", claims());
    for request in [
        bearer(&token),
        HttpRequest::default(),
        bearer("a.b.c"),
        bearer(&token),
    ] {
        crate::http::evaluate(&request, &prepared, &host).unwrap();
    }
    let counters = host.counters();
    assert_eq!(counters["zero_trust.allowed"], 2);
    assert_eq!(counters["zero_trust.denied"], 2);
    assert_eq!(
        counters["zero_trust.rule.ns[shop]-policy[signed-in]-rule[0].allowed"],
        2
    );
    assert_eq!(counters["zero_trust.rule.none.denied"], 1);
    assert_eq!(counters["zero_trust.rule.token.denied"], 1);
}

#[test]
fn a_cached_token_is_found_whatever_follows_it_in_the_header() {
    let a = inline(json!({}));
    let token = sign("RS256", claims());
    let principal = |value: String| {
        let request = HttpRequest {
            headers: vec![("authorization", value)].into(),
            ..HttpRequest::default()
        };
        a.authenticate(&request, NOW)
            .map(|outcome| outcome.payload.map(|p| p["sub"].clone()))
            .map_err(|rejection| rejection.message)
    };
    assert_eq!(
        principal(format!("Bearer {token}")),
        Ok(Some(json!("alice")))
    );
    assert_eq!(a.cache.borrow().len(), 1);
    // The token is cached: the same token with bytes after it is still that token (the cache is
    // asked about the whole rest of the value first, which is not a token it holds).
    for after in [" ", ",x", ";a=b", "\"", " Bearer other"] {
        assert_eq!(
            principal(format!("Bearer {token}{after}")),
            Ok(Some(json!("alice"))),
            "{after:?}"
        );
    }
    // A cached token with one more token byte is another token, and does not verify.
    assert_eq!(
        principal(format!("Bearer {token}A")),
        Err("Jwt verification fails")
    );
    assert_eq!(a.cache.borrow().len(), 1);
}

#[test]
fn a_token_ends_at_the_first_byte_no_token_has() {
    let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl-_";
    for end in 0..token.len() {
        for stop in [" ", ",", ";", "\"", "+", "/", "="] {
            let text = format!("{}{stop}{}", &token[..end], &token[end..]);
            assert_eq!(token_length(text.as_bytes()), end, "{text:?}");
        }
    }
    assert_eq!(token_length(token.as_bytes()), token.len());
    assert_eq!(token_length(b""), 0);
}
