//! The runtime's seams through compiled guests: host capabilities as granted (clock, shared
//! state, data tables, WASI's clocks), state that outlives a policy's configuration, deadlines
//! that cover time spent waiting on the host, token buckets, and components of the older worlds
//! 0.1.0 and 0.2.0 served unchanged beside those of 0.2.2.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use palisade_runtime::admission::{Instances, Options, Policy, Prepared};
use palisade_runtime::capabilities::{
    Capabilities, DataTables, FixedClock, Grants, MemoryStore, StateEntry, StateFuture,
    StateLimits, StateStore,
};
use palisade_runtime::{Abi, Engine, EngineConfig, EvalError, Limits, LoadError};
use palisade_sdk::testing::complete_request;
use palisade_sdk::wire::{AdmissionRequest, Verdict};

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::new(EngineConfig::default()).expect("engine"))
}

fn prepared(name: &str) -> Arc<Prepared> {
    let bytes = e2e::read_artefact(name).expect("guest artefact");
    Arc::new(Prepared::new(engine(), &bytes).expect("guest loads"))
}

fn hostile() -> Arc<Prepared> {
    static PREPARED: OnceLock<Arc<Prepared>> = OnceLock::new();
    Arc::clone(PREPARED.get_or_init(|| prepared("hostile")))
}

fn request(name: &str) -> AdmissionRequest {
    let object = serde_json::json!({"object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}}});
    complete_request(object, "capabilities").expect("request")
}

/// 1,000,000 seconds after the epoch, a table `table` with `key: "value"`, fresh state.
fn capabilities() -> Arc<Capabilities> {
    Arc::new(Capabilities::new(
        Arc::new(FixedClock(Duration::from_secs(1_000_000))),
        Arc::new(MemoryStore::new(StateLimits::default())),
        DataTables::new(BTreeMap::from([(
            "table".to_owned(),
            BTreeMap::from([("key".to_owned(), serde_json::json!("value"))]),
        )])),
    ))
}

fn policy(id: &str, capabilities: &Arc<Capabilities>, grants: Grants) -> Policy {
    hostile()
        .configure(
            r#"{"behaviour": "capabilities"}"#,
            Options {
                id: Some(id.to_owned()),
                capabilities: Some(Arc::clone(capabilities)),
                grants,
                ..Options::default()
            },
        )
        .expect("settings are valid")
}

/// What the guest reported of each capability: `clock`, `wasi clock`, `state`, `data`.
fn answers(verdict: &Verdict) -> BTreeMap<String, String> {
    verdict
        .warnings
        .iter()
        .filter_map(|w| w.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn evaluate(policy: &Policy) -> BTreeMap<String, String> {
    answers(
        &policy
            .evaluate_blocking(&request("p"))
            .result
            .expect("verdict"),
    )
}

#[test]
fn a_policy_is_granted_nothing_by_default() {
    let seen = evaluate(&policy("p", &capabilities(), Grants::default()));
    assert!(
        seen["clock"].starts_with("Err(Denied(\"policy p is not granted the clock capability"),
        "{seen:?}"
    );
    assert_eq!(seen["wasi clock"], "Ok(0)", "WASI's clock reads zero");
    assert!(
        seen["state"].starts_with("Err(Denied(\"policy p is not granted the state capability"),
        "{seen:?}"
    );
    assert!(
        seen["data"].starts_with(
            "Err(Denied(\"policy p is not granted the data table \\\"table\\\" capability"
        ),
        "{seen:?}"
    );
    assert!(
        seen["rate-limit"]
            .starts_with("Err(Denied(\"policy p is not granted the rate-limit capability"),
        "{seen:?}"
    );
}

#[test]
fn granted_capabilities_answer() {
    let policy = policy("p", &capabilities(), Grants::all());
    let first = evaluate(&policy);
    assert_eq!(first["clock"], "Ok(1000000)");
    assert_eq!(
        first["wasi clock"], "Ok(1000000)",
        "WASI's clock is the host's clock"
    );
    assert_eq!(first["state"], "Ok(1)");
    assert_eq!(first["data"], r#"Ok(Some("\"value\""))"#);
    // A bucket of 2, one token a minute: full, then one left, then refused for a minute.
    assert_eq!(first["rate-limit"], "Ok((true, 1, 0))");
    let second = evaluate(&policy);
    assert_eq!(second["state"], "Ok(2)", "the counter is shared state");
    assert_eq!(second["rate-limit"], "Ok((true, 0, 0))");
    assert_eq!(
        evaluate(&policy)["rate-limit"],
        "Ok((false, 0, 60000))",
        "the bucket is empty: a token comes back in a minute"
    );
}

#[test]
fn data_is_granted_table_by_table() {
    let grants = Grants {
        data: BTreeSet::from(["other".to_owned()]),
        ..Grants::default()
    };
    let seen = evaluate(&policy("p", &capabilities(), grants));
    assert!(seen["data"].starts_with("Err(Denied("), "{seen:?}");
    let grants = Grants {
        data: BTreeSet::from(["table".to_owned()]),
        ..Grants::default()
    };
    let seen = evaluate(&policy("p", &capabilities(), grants));
    assert_eq!(seen["data"], r#"Ok(Some("\"value\""))"#);
}

#[test]
fn state_outlives_the_policy_that_wrote_it() {
    let capabilities = capabilities();
    let before = policy("quota", &capabilities, Grants::all());
    assert_eq!(evaluate(&before)["state"], "Ok(1)");
    drop(before);
    // A reload configures the policy again, with the same capabilities: its state is there.
    let after = policy("quota", &capabilities, Grants::all());
    assert_eq!(evaluate(&after)["state"], "Ok(2)");
    // Another id is another namespace.
    assert_eq!(
        evaluate(&policy("other", &capabilities, Grants::all()))["state"],
        "Ok(1)"
    );
}

#[test]
fn token_buckets_outlive_the_policy_that_took_from_them() {
    let capabilities = capabilities();
    for expected in ["Ok((true, 1, 0))", "Ok((true, 0, 0))"] {
        // A fresh configuration (a reload, a recycled instance) each time.
        let policy = policy("limits", &capabilities, Grants::all());
        assert_eq!(evaluate(&policy)["rate-limit"], expected);
    }
    let policy = policy("limits", &capabilities, Grants::all());
    assert_eq!(evaluate(&policy)["rate-limit"], "Ok((false, 0, 60000))");
    assert_eq!(
        evaluate(&self::policy("other", &capabilities, Grants::all()))["rate-limit"],
        "Ok((true, 1, 0))",
        "another policy's buckets are its own"
    );
}

#[test]
fn components_of_world_0_2_0_are_served_with_their_capabilities() {
    let older = prepared("admission-v0-2");
    assert_eq!(
        older.abi(),
        &Abi::Admission {
            version: "0.2.0".into()
        }
    );
    let capabilities = capabilities();
    let policy = older
        .configure(
            r#"{"limit": 1}"#,
            Options {
                id: Some("older".to_owned()),
                capabilities: Some(Arc::clone(&capabilities)),
                grants: Grants::all(),
                ..Options::default()
            },
        )
        .expect("valid settings");
    let first = policy
        .evaluate_blocking(&request("a"))
        .result
        .expect("verdict");
    assert!(first.allowed, "{first:?}");
    let second = policy
        .evaluate_blocking(&request("b"))
        .result
        .expect("verdict");
    assert!(!second.allowed);
    assert_eq!(second.message, "request 2 is over the limit of 1");
    // Without the state grant its import answers `denied`, and the guest says so.
    let ungranted = older
        .configure("", Options::default())
        .expect("no settings");
    let error = ungranted
        .evaluate_blocking(&request("c"))
        .result
        .expect_err("the guest cannot count");
    assert!(format!("{error}").contains("Denied"), "{error}");
}

/// A state store that takes its time: every call waits `delay` before answering.
struct SlowStore {
    delay: Duration,
    inner: MemoryStore,
}

impl StateStore for SlowStore {
    fn get<'a>(&'a self, namespace: &'a str, key: &'a str) -> StateFuture<'a, Option<StateEntry>> {
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            self.inner.get(namespace, key).await
        })
    }

    fn set<'a>(
        &'a self,
        namespace: &'a str,
        key: &'a str,
        value: Vec<u8>,
        cas: u32,
    ) -> StateFuture<'a, bool> {
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            self.inner.set(namespace, key, value, cas).await
        })
    }
}

#[test]
fn the_deadline_covers_time_spent_waiting_on_the_host() {
    let slow = Arc::new(Capabilities::new(
        Arc::new(FixedClock(Duration::ZERO)),
        Arc::new(SlowStore {
            delay: Duration::from_secs(5),
            inner: MemoryStore::new(StateLimits::default()),
        }),
        DataTables::default(),
    ));
    let timeout = Duration::from_millis(200);
    let policy = hostile()
        .configure(
            r#"{"behaviour": "capabilities"}"#,
            Options {
                capabilities: Some(slow),
                grants: Grants::all(),
                limits: Some(Limits {
                    timeout,
                    memory: 32 << 20,
                }),
                instances: Instances::Fresh,
                ..Options::default()
            },
        )
        .expect("settings are valid");
    let started = Instant::now();
    let error = policy
        .evaluate_blocking(&request("p"))
        .result
        .expect_err("the store answers after the deadline");
    assert!(
        matches!(error, EvalError::Timeout(t) if t == timeout),
        "{error:?}"
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(2),
        "the host stopped waiting at the deadline, not when the store answered: {elapsed:?}"
    );
}

#[test]
fn components_of_world_0_1_are_served_unchanged() {
    let legacy = prepared("admission-v0-1");
    assert_eq!(
        legacy.abi(),
        &Abi::Admission {
            version: "0.1.0".into()
        }
    );
    assert_eq!(legacy.metadata().name, "admission-v0-1");
    let policy = legacy
        .configure("", Options::default())
        .expect("no settings");
    let denied = policy
        .evaluate_blocking(&request("deny-me"))
        .result
        .expect("verdict");
    assert!(!denied.allowed);
    assert_eq!(denied.reason, "denied-name");
    assert_eq!(denied.message, r#"objects may not be named "deny-me""#);
    let allowed = policy
        .evaluate_blocking(&request("web"))
        .result
        .expect("verdict");
    assert!(allowed.allowed);
    // Its settings are checked by its own validate-settings, as at 0.2.0.
    let renamed = legacy
        .configure(r#"{"name": "web"}"#, Options::default())
        .expect("valid settings");
    assert!(
        !renamed
            .evaluate_blocking(&request("web"))
            .result
            .expect("verdict")
            .allowed
    );
    let error = legacy
        .configure(r#"{"name": 3}"#, Options::default())
        .expect_err("a number is not a name");
    assert!(
        matches!(&error, LoadError::Settings(e) if e.path == "name"),
        "{error:?}"
    );
    // And a component of the newest world beside it.
    assert_eq!(
        hostile().abi(),
        &Abi::Admission {
            version: "0.2.2".into()
        }
    );
}
