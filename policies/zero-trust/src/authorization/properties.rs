//! Properties of the decision over generated policies and requests (proptest): with
//! `default_deny` nothing passes without an ALLOW match; a DENY match always wins; AUDIT and
//! dry-run policies never change the decision.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

use proptest::prelude::*;
use serde_json::{Value, json};

use super::{Authorizer, Effect, Options};
use crate::Attributes;

const PATHS: [&str; 6] = ["/a", "/a/*", "*.php", "*", "/b/{*}", "/{**}"];
const METHODS: [&str; 3] = ["GET", "POST", "*"];
const PRINCIPALS: [&str; 4] = ["cluster.local/ns/a/sa/x", "*/sa/x", "cluster.local/*", "*"];
const NAMESPACES: [&str; 3] = ["a", "b", "*"];
const BLOCKS: [&str; 3] = ["10.0.0.0/8", "10.1.0.0/16", "192.168.0.1"];

fn pick(list: &'static [&'static str]) -> impl Strategy<Value = Vec<&'static str>> {
    prop::collection::vec(prop::sample::select(list), 1..3)
}

/// A rule: each part present or not, with its `not…` twin sometimes.
fn rule() -> impl Strategy<Value = Value> {
    (
        prop::option::of((pick(&PRINCIPALS), any::<bool>())),
        prop::option::of(pick(&NAMESPACES)),
        prop::option::of((pick(&BLOCKS), any::<bool>())),
        prop::option::of((pick(&PATHS), any::<bool>())),
        prop::option::of(pick(&METHODS)),
        prop::option::of((pick(&["prod", "dev", "*"]), any::<bool>())),
    )
        .prop_map(|(principals, namespaces, blocks, paths, methods, env)| {
            let mut rule = serde_json::Map::new();
            let mut source = serde_json::Map::new();
            if let Some((p, not)) = principals {
                source.insert(
                    if not { "notPrincipals" } else { "principals" }.into(),
                    json!(p),
                );
            }
            if let Some(n) = namespaces {
                source.insert("namespaces".into(), json!(n));
            }
            if let Some((b, not)) = blocks {
                source.insert(
                    if not { "notIpBlocks" } else { "ipBlocks" }.into(),
                    json!(b),
                );
            }
            if !source.is_empty() {
                rule.insert("from".into(), json!([{"source": source}]));
            }
            let mut operation = serde_json::Map::new();
            if let Some((p, not)) = paths {
                operation.insert(if not { "notPaths" } else { "paths" }.into(), json!(p));
            }
            if let Some(m) = methods {
                operation.insert("methods".into(), json!(m));
            }
            if !operation.is_empty() {
                rule.insert("to".into(), json!([{"operation": operation}]));
            }
            if let Some((v, not)) = env {
                let values = if not { "notValues" } else { "values" };
                rule.insert(
                    "when".into(),
                    json!([{"key": "request.headers[x-env]", values: v}]),
                );
            }
            Value::Object(rule)
        })
}

fn policy(action: &'static str) -> impl Strategy<Value = Value> {
    (prop::collection::vec(rule(), 0..3), any::<bool>()).prop_map(move |(rules, dry_run)| {
        let annotations = if dry_run && action != "DENY" {
            json!({"istio.io/dry-run": "true"})
        } else {
            json!({})
        };
        let rules = if rules.is_empty() && action == "DENY" { vec![json!({})] } else { rules };
        json!({"metadata": {"annotations": annotations}, "spec": {"action": action, "rules": rules}})
    })
}

fn request() -> impl Strategy<Value = Attributes<'static>> {
    (
        prop::option::of(prop::sample::select(
            &[
                "cluster.local/ns/a/sa/x",
                "cluster.local/ns/b/sa/y",
                "other/ns/a/sa/x",
            ][..],
        )),
        prop::sample::select(&["10.1.2.3", "10.9.9.9", "192.168.0.1", "172.16.0.1"][..]),
        prop::sample::select(&["/a", "/a/b", "/x.php", "/b/c", "/b/c/d", "/a//../b", ""][..]),
        prop::sample::select(&["GET", "POST", "DELETE"][..]),
        prop::option::of(prop::sample::select(&["prod", "dev", ""][..])),
    )
        .prop_map(|(principal, ip, path, method, env)| Attributes {
            principals: principal.map(str::to_owned).into_iter().collect(),
            source_ip: Some(ip.parse().unwrap()),
            remote_ip: Some(ip.parse().unwrap()),
            path: (!path.is_empty()).then(|| path.to_owned().into()),
            method: Some(method.to_owned().into()),
            headers: std::borrow::Cow::Owned(env.map(|e| ("x-env", e)).into_iter().collect()),
            ..Attributes::default()
        })
}

/// Names the policies `<prefix>-<i>`, so that a policy keeps its id in any list.
fn named(policies: &[Value], prefix: &str) -> Vec<Value> {
    policies
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut p = p.clone();
            p["metadata"]["name"] = json!(format!("{prefix}-{i}"));
            p
        })
        .collect()
}

fn build(policies: &[Value], default_deny: bool) -> Authorizer {
    Authorizer::new(&Value::Array(policies.to_vec()), Options { default_deny }).unwrap()
}

proptest! {
    #[test]
    fn with_default_deny_only_an_allow_match_lets_a_request_through(
        allows in prop::collection::vec(policy("ALLOW"), 0..3),
        denies in prop::collection::vec(policy("DENY"), 0..2),
        request in request(),
    ) {
        let (allows, denies) = (named(&allows, "allow"), named(&denies, "deny"));
        let all: Vec<Value> = allows.iter().chain(&denies).cloned().collect();
        let decision = build(&all, true).decide(&request);
        if decision.effect == Effect::Allow {
            let rule = decision.policy.expect("an allow names its rule");
            let only_allows = build(&allows, true).decide(&request);
            prop_assert_eq!(only_allows.effect, Effect::Allow);
            prop_assert_eq!(only_allows.policy, Some(rule));
        }
    }

    #[test]
    fn a_deny_match_always_wins(
        allows in prop::collection::vec(policy("ALLOW"), 0..3),
        deny in policy("DENY"),
        audit in policy("AUDIT"),
        request in request(),
        default_deny in any::<bool>(),
    ) {
        let allows = named(&allows, "allow");
        let deny = named(&[deny], "deny").remove(0);
        let audit = named(&[audit], "audit").remove(0);
        let deny_alone = build(std::slice::from_ref(&deny), default_deny).decide(&request);
        let mut all = allows.clone();
        all.push(deny);
        all.push(audit);
        let decision = build(&all, default_deny).decide(&request);
        if deny_alone.effect == Effect::Deny && deny_alone.policy.is_some() {
            prop_assert_eq!(decision.effect, Effect::Deny);
            prop_assert_eq!(decision.policy, deny_alone.policy);
        }
    }

    #[test]
    fn audit_and_dry_run_policies_never_change_the_decision(
        allows in prop::collection::vec(policy("ALLOW"), 0..3),
        audits in prop::collection::vec(policy("AUDIT"), 0..2),
        request in request(),
    ) {
        let (allows, audits) = (named(&allows, "allow"), named(&audits, "audit"));
        let enforced: Vec<Value> = allows
            .iter()
            .filter(|p| p["metadata"]["annotations"].as_object().is_none_or(serde_json::Map::is_empty))
            .cloned()
            .collect();
        let all: Vec<Value> = allows.iter().chain(&audits).cloned().collect();
        let with = build(&all, false).decide(&request);
        let without = build(&enforced, false).decide(&request);
        prop_assert_eq!(with.effect, without.effect);
        prop_assert_eq!(with.policy, without.policy);
    }
}
