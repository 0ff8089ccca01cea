//! Worker VMs racing on one bucket: each thread is a worker with its own compiled settings, all
//! sharing one store with compare-and-swap, as proxy-wasm shared data is shared. However the
//! threads interleave, no more requests pass than the bucket holds.
#![expect(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use palisade_sdk::host::{Entry, Level};
use palisade_sdk::wire::{HttpRequest, HttpVerdict};
use palisade_sdk::{Host, HostError, parse_settings};
use rate_limit::{Prepared, Settings, evaluate};
use serde_json::json;

/// Shared data: versioned values behind one lock, as the proxy keeps them; the clock stands
/// still, so no token comes back during the race.
#[derive(Default)]
struct Shared {
    values: Mutex<BTreeMap<String, Entry>>,
    conflicts: Mutex<u64>,
}

struct Worker(Arc<Shared>);

impl Host for Worker {
    fn now(&self) -> Result<Duration, HostError> {
        Ok(Duration::from_secs(1_767_225_600))
    }
    fn get(&self, key: &str) -> Result<Option<Entry>, HostError> {
        // Yield between the read and the write, so that workers interleave there.
        let value = self.0.values.lock().unwrap().get(key).cloned();
        std::thread::yield_now();
        Ok(value)
    }
    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<bool, HostError> {
        let mut values = self.0.values.lock().unwrap();
        let current = values.get(key).map_or(0, |e| e.cas);
        if cas != 0 && cas != current {
            *self.0.conflicts.lock().unwrap() += 1;
            return Ok(false);
        }
        values.insert(
            key.to_owned(),
            Entry {
                value: value.to_vec(),
                cas: current.wrapping_add(1).max(1),
            },
        );
        Ok(true)
    }
    fn data(&self, _: &str, _: &str) -> Result<Option<String>, HostError> {
        Err(HostError::Unsupported("data tables"))
    }
    fn data_keys(&self, _: &str, _: &str) -> Result<Vec<String>, HostError> {
        Err(HostError::Unsupported("data tables"))
    }
    fn log(&self, _: Level, _: &str) {}
}

fn race(
    settings: &serde_json::Value,
    request: &HttpRequest,
    workers: usize,
    each: usize,
) -> (usize, u64) {
    let shared = Arc::new(Shared::default());
    // The first request creates the keys (proxy-wasm has no create-if-absent), as a proxy's
    // first request would before traffic builds up.
    let prepared: Prepared =
        Prepared::new(&parse_settings::<Settings>(&settings.to_string()).unwrap()).unwrap();
    let first = evaluate(request, &prepared, &Worker(Arc::clone(&shared))).unwrap();
    let mut allowed = usize::from(matches!(first, HttpVerdict::Continue { .. }));
    let threads: Vec<_> = (0..workers)
        .map(|_| {
            let shared = Arc::clone(&shared);
            let prepared = prepared.clone();
            let request = request.clone();
            std::thread::spawn(move || {
                let host = Worker(shared);
                (0..each)
                    .filter(|_| {
                        matches!(
                            evaluate(&request, &prepared, &host).expect("decides"),
                            HttpVerdict::Continue { .. }
                        )
                    })
                    .count()
            })
        })
        .collect();
    allowed += threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .sum::<usize>();
    let conflicts = *shared.conflicts.lock().unwrap();
    (allowed, conflicts)
}

fn on() -> serde_json::Value {
    json!({"default_value": {"numerator": 100}})
}

fn request() -> HttpRequest {
    serde_json::from_value(json!({
        "method": "GET", "path": "/cart", "authority": "shop.example.com",
        "headers": [["x-api-key", "key-1"]],
        "connection": {"sourceAddress": "10.1.2.3:51000"},
    }))
    .unwrap()
}

#[test]
fn racing_workers_never_pass_more_than_the_default_bucket_holds() {
    let settings = json!({"stat_prefix": "race", "filter_enabled": on(), "filter_enforced": on(),
        "token_bucket": {"max_tokens": 150, "tokens_per_fill": 1, "fill_interval": "3600s"}});
    let (one, _) = race(&settings, &request(), 1, 400);
    assert_eq!(one, 150, "one worker takes every token, and no more");
    let (allowed, conflicts) = race(&settings, &request(), 4, 100);
    // Never more; a request that loses every compare-and-swap round is limited, so the last
    // few tokens may stay in the bucket.
    assert!(
        (120..=150).contains(&allowed),
        "{allowed} allowed, {conflicts} conflicts"
    );
    println!("CONFLICTS {conflicts}");
}

#[test]
fn racing_workers_never_pass_more_than_a_wildcard_and_an_exact_descriptor_hold() {
    let settings = json!({"stat_prefix": "race", "filter_enabled": on(), "filter_enforced": on(),
    "rate_limits": [
        {"actions": [{"remote_address": {}}]},
        {"actions": [{"request_headers": {"header_name": "x-api-key", "descriptor_key": "client"}}]},
    ],
    "descriptors": [
        {"entries": [{"key": "remote_address"}],
         "token_bucket": {"max_tokens": 120, "tokens_per_fill": 1, "fill_interval": "3600s"}},
        {"entries": [{"key": "client", "value": "key-1"}],
         "token_bucket": {"max_tokens": 90, "tokens_per_fill": 1, "fill_interval": "3600s"}},
    ]});
    // Both buckets fill at the same rate: the exact one (90) matched second, but no refund is
    // made, so the wildcard one runs dry at 120 and the exact one stops at 90 first.
    let (allowed, conflicts) = race(&settings, &request(), 4, 100);
    assert!(
        (70..=90).contains(&allowed),
        "{allowed} allowed, {conflicts} conflicts"
    );
}
