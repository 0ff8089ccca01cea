//! What clients and identity providers send the zero-trust filter: a key set as a `jwksUri`
//! answer, then a token in a header, a query parameter and a cookie. Refused or accepted, never
//! a panic; a token that passes verified against a key of the set (so the set had one).
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_sdk::wire::HttpRequest;
use zero_trust::authentication::{Authenticator, Options};

fuzz_target!(|input: (&str, &str)| {
    let (jwks, token) = input;
    let rules = serde_json::json!({"jwtRules": [{
        "issuer": "https://auth.fuzz.example",
        "jwksUri": "https://auth.fuzz.example/jwks",
        "fromHeaders": [{"name": "authorization", "prefix": "Bearer "}],
        "fromParams": ["token"],
        "fromCookies": ["session"],
        "outputPayloadToHeader": "x-payload",
        "outputClaimToHeaders": [{"header": "x-sub", "claim": "sub"}, {"header": "x-deep", "claim": "a.b.c"}],
    }]});
    let Ok(authenticator) = Authenticator::new(&rules, Options::default()) else {
        panic!("the fixed rules compile");
    };
    let fetched = authenticator.fetched("jwks/0", jwks.as_bytes()).is_ok();
    for request in [
        HttpRequest {
            headers: vec![("authorization", format!("Bearer {token}"))].into(),
            ..HttpRequest::default()
        },
        HttpRequest {
            path: format!("/p?token={token}"),
            ..HttpRequest::default()
        },
        HttpRequest {
            headers: vec![("cookie", format!("session={token}"))].into(),
            ..HttpRequest::default()
        },
    ] {
        for now in [0, 1_767_225_600, u64::MAX] {
            if let Ok(outcome) = authenticator.authenticate(&request, now)
                && outcome.payload.is_some()
            {
                assert!(fetched, "a token verified without a key set");
            }
        }
    }
});
