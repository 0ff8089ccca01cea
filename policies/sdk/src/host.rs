//! What a policy may ask of the host it runs in, the same in every home: the time, state
//! shared by every instance of the policy (versioned values written with compare-and-swap), the
//! read-only data tables of the configuration, and logs. The admission component adapter
//! serves it with the world's imports, the proxy-wasm adapter with proxy-wasm's clock, shared
//! data and log calls, and [`testing`](crate::testing) with a deterministic host.
//!
//! Admission hosts also verify images' signatures and attestations ([`images`], the
//! `supply-chain` interface); elsewhere those calls are unsupported.
//!
//! Counters and token buckets ([`counter_add`], [`TokenBucket`]) are built here on the state
//! calls, so they behave the same wherever the policy runs. [`Host::take`] takes from a bucket
//! the host keeps itself where it can (the admission host: in memory or in Redis, one atomic
//! step), and from one built on the state calls elsewhere, with the same arithmetic ([`rate`]).

pub mod images;
pub mod rate;

use std::time::Duration;

/// A value of the shared state and its version (never 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The bytes stored.
    pub value: Vec<u8>,
    /// The version: pass it to [`Host::set`] to write only if nobody wrote since.
    pub cas: u32,
}

/// Why the host gave no answer. A policy decides what that means for the request: a rate
/// limit may let it through, a signature check must deny.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// The policy was not granted this capability.
    #[error("capability denied: {0}")]
    Denied(String),
    /// The arguments cannot be used (an unknown data table, a key or value over the limits).
    #[error("invalid capability call: {0}")]
    Invalid(String),
    /// The capability could not answer (its store failed or is full).
    #[error("capability unavailable: {0}")]
    Unavailable(String),
    /// This home has no such capability (data tables in a proxy filter).
    #[error("{0} is not available where this policy runs")]
    Unsupported(&'static str),
    /// A compare-and-swap update kept losing to other instances writing the same key
    /// ([`update`]): the store works, but is contended beyond the retries. A limiter counts it
    /// as over the limit rather than let the request through uncounted.
    #[error("state contended: {0}")]
    Contended(String),
}

/// How important a log line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Fine detail.
    Trace,
    /// Debugging.
    Debug,
    /// Normal events.
    Info,
    /// Something looks wrong.
    Warn,
    /// Something failed.
    Error,
}

/// What a policy may ask of its host. Every call may fail with a [`HostError`]; none panics.
pub trait Host {
    /// Wall-clock time since 1970-01-01T00:00:00Z.
    ///
    /// # Errors
    /// [`HostError::Denied`] without the `clock` capability.
    fn now(&self) -> Result<Duration, HostError>;

    /// The shared value of `key`, if it has one.
    ///
    /// # Errors
    /// [`HostError::Denied`] without the `state` capability; [`HostError::Unavailable`] when
    /// the store fails.
    fn get(&self, key: &str) -> Result<Option<Entry>, HostError>;

    /// Sets `key` to `value` if its version is still `cas` (0: whatever it is); `Ok(false)`
    /// when it changed meanwhile.
    ///
    /// # Errors
    /// As [`get`](Self::get), and [`HostError::Invalid`] for a key or value over the limits.
    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<bool, HostError>;

    /// The value of `key` in the data table `table`, as JSON text.
    ///
    /// # Errors
    /// [`HostError::Denied`] without the grant of that table; [`HostError::Invalid`] for a
    /// table the configuration does not have; [`HostError::Unsupported`] in a proxy filter.
    fn data(&self, table: &str, key: &str) -> Result<Option<String>, HostError>;

    /// The keys of `table` starting with `prefix`, sorted.
    ///
    /// # Errors
    /// As [`data`](Self::data).
    fn data_keys(&self, table: &str, prefix: &str) -> Result<Vec<String>, HostError>;

    /// Writes a log line, attributed by the host to the policy (and request).
    fn log(&self, level: Level, message: &str);

    /// Takes `tokens` from the token bucket `name`, shaped `shape` (created full on first
    /// use), if it holds them: one atomic step, exact under concurrent requests. The default
    /// keeps the bucket in the shared state under `name` (compare-and-swap, at the host's
    /// time); the admission host keeps it in its own store (the `rate-limit` capability).
    ///
    /// # Errors
    /// [`HostError::Invalid`] for a shape or take over [`rate`]'s bounds; the host's errors
    /// (the `rate-limit` capability's at admission; the clock's and the state's by default).
    fn take(&self, name: &str, shape: rate::Shape, tokens: u64) -> Result<rate::Taken, HostError> {
        shape.check(tokens).map_err(HostError::Invalid)?;
        let now_us = u64::try_from(self.now()?.as_micros()).unwrap_or(u64::MAX);
        update(self, name, |current| {
            let (level, taken) =
                rate::take_at(shape, current.and_then(rate::Level::decode), now_us, tokens);
            (level.encode().to_vec(), taken)
        })
    }

    /// Adds `delta` to the counter `name` in the host's own statistics (a proxy's stats,
    /// which Istio scrapes: `/stats/prometheus`), defining it on first use.
    ///
    /// # Errors
    /// [`HostError::Unsupported`] where the host keeps no statistics for policies (the
    /// default: the admission webhook counts decisions per policy itself);
    /// [`HostError::Unavailable`] when the host refuses the metric.
    fn count(&self, name: &str, delta: u64) -> Result<(), HostError> {
        let _ = (name, delta);
        Err(HostError::Unsupported("statistics"))
    }

    /// The digest (`sha256:<hex>`) `image` names now; check the image by this digest
    /// afterwards, so every answer is about the same content.
    ///
    /// # Errors
    /// [`HostError::Denied`] without the `supply-chain` capability;
    /// [`HostError::Unavailable`] when the registry cannot answer;
    /// [`HostError::Unsupported`] where the host verifies no images (the default).
    fn resolve_image(&self, image: &str) -> Result<String, HostError> {
        let _ = image;
        Err(HostError::Unsupported("image signature verification"))
    }

    /// The signatures on `image` by `signer` that carry every one of `annotations`, as cosign
    /// verifies them; or why there are none.
    ///
    /// # Errors
    /// As [`resolve_image`](Self::resolve_image), and [`HostError::Invalid`] for a key or
    /// pattern the host cannot use.
    fn image_signatures(
        &self,
        image: &str,
        signer: &images::Signer,
        annotations: &[(String, String)],
    ) -> Result<images::Verified<images::Signature>, HostError> {
        let _ = (image, signer, annotations);
        Err(HostError::Unsupported("image signature verification"))
    }

    /// The attestations on `image` of `predicate_type` signed by `signer`; or why there are
    /// none.
    ///
    /// # Errors
    /// As [`image_signatures`](Self::image_signatures).
    fn image_attestations(
        &self,
        image: &str,
        signer: &images::Signer,
        predicate_type: &str,
    ) -> Result<images::Verified<images::Attestation>, HostError> {
        let _ = (image, signer, predicate_type);
        Err(HostError::Unsupported("image signature verification"))
    }
}

/// How often a compare-and-swap update is retried before the state is reported unavailable:
/// enough for every worker of a proxy to win once.
const CAS_RETRIES: usize = 32;

/// Reads `key`, computes its next value with `update` (given the current bytes, if any) and
/// writes it back with compare-and-swap, retrying when another instance wrote meanwhile.
/// Returns what `update` returned with the value that was written.
///
/// # Errors
/// The host's errors, or [`HostError::Unavailable`] after repeated conflicts.
pub fn update<T>(
    host: &(impl Host + ?Sized),
    key: &str,
    mut update: impl FnMut(Option<&[u8]>) -> (Vec<u8>, T),
) -> Result<T, HostError> {
    for _ in 0..CAS_RETRIES {
        let current = host.get(key)?;
        let (value, out) = update(current.as_ref().map(|e| e.value.as_slice()));
        let cas = current.map_or(0, |e| e.cas);
        if host.set(key, &value, cas)? {
            return Ok(out);
        }
    }
    Err(HostError::Contended(format!(
        "state key {key:?} kept changing: {CAS_RETRIES} compare-and-swap attempts failed"
    )))
}

/// Adds `delta` to the counter `key` (a missing counter is 0) and returns its new value,
/// saturating at the bounds of `i64`.
///
/// # Errors
/// As [`update`].
pub fn counter_add(host: &dyn Host, key: &str, delta: i64) -> Result<i64, HostError> {
    update(host, key, |current| {
        let value = current
            .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
            .map_or(0, i64::from_le_bytes)
            .saturating_add(delta);
        (value.to_le_bytes().to_vec(), value)
    })
}

/// A token bucket as Envoy's local rate limit has it: it holds at most `max_tokens`, starts
/// full, and gains `tokens_per_fill` every `fill_interval` (computed from the time at each
/// take, so no timer is needed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    /// The most tokens the bucket holds.
    pub max_tokens: u64,
    /// Tokens added at every fill.
    pub tokens_per_fill: u64,
    /// Time between fills; zero means the bucket never refills.
    pub fill_interval: Duration,
}

/// What taking from a bucket gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Take {
    /// Whether the tokens were there (and are now taken).
    pub allowed: bool,
    /// Tokens left after this take.
    pub remaining: u64,
    /// Time until the next fill.
    pub reset: Duration,
}

/// A bucket's stored state: tokens and the time of the last fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BucketState {
    tokens: u64,
    filled_at: u128,
}

impl BucketState {
    const SIZE: usize = 24;

    fn decode(bytes: &[u8]) -> Option<Self> {
        let tokens = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
        let filled_at = u128::from_le_bytes(bytes.get(8..Self::SIZE)?.try_into().ok()?);
        Some(Self { tokens, filled_at })
    }

    fn encode(self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(Self::SIZE);
        bytes.extend_from_slice(&self.tokens.to_le_bytes());
        bytes.extend_from_slice(&self.filled_at.to_le_bytes());
        bytes
    }
}

impl TokenBucket {
    /// Takes `tokens` from the bucket `key` at the host's current time, if it has them.
    ///
    /// # Errors
    /// The host's errors (the clock's and the state's), or repeated conflicts (see [`update`]).
    pub fn take(&self, host: &dyn Host, key: &str, tokens: u64) -> Result<Take, HostError> {
        let now = host.now()?.as_nanos();
        update(host, key, |current| {
            let state = current
                .and_then(BucketState::decode)
                .unwrap_or(BucketState {
                    tokens: self.max_tokens,
                    filled_at: now,
                });
            let (state, take) = self.take_at(state, now, tokens);
            (state.encode(), take)
        })
    }

    /// The pure arithmetic of a take at time `now` (nanoseconds).
    fn take_at(&self, mut state: BucketState, now: u128, tokens: u64) -> (BucketState, Take) {
        let interval = self.fill_interval.as_nanos();
        let mut reset = Duration::ZERO;
        if interval > 0 {
            // A clock that went back does not refill; it starts counting from there.
            let elapsed = now.saturating_sub(state.filled_at);
            let fills = elapsed.checked_div(interval).unwrap_or(0);
            let added = u64::try_from(fills)
                .unwrap_or(u64::MAX)
                .saturating_mul(self.tokens_per_fill);
            state.tokens = state.tokens.saturating_add(added).min(self.max_tokens);
            state.filled_at = if now < state.filled_at {
                now
            } else {
                state
                    .filled_at
                    .saturating_add(fills.saturating_mul(interval))
            };
            let next = state.filled_at.saturating_add(interval).saturating_sub(now);
            reset = Duration::from_nanos(u64::try_from(next).unwrap_or(u64::MAX));
        }
        let allowed = state.tokens >= tokens;
        if allowed {
            state.tokens = state.tokens.saturating_sub(tokens);
        }
        let take = Take {
            allowed,
            remaining: state.tokens,
            reset,
        };
        (state, take)
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    /// State in a map, with a clock the test sets; every set can be made to conflict once.
    #[derive(Default)]
    struct Memory {
        now: RefCell<Duration>,
        state: RefCell<BTreeMap<String, Entry>>,
        next_cas: RefCell<u32>,
        conflict_once: RefCell<bool>,
    }

    impl Host for Memory {
        fn now(&self) -> Result<Duration, HostError> {
            Ok(*self.now.borrow())
        }
        fn get(&self, key: &str) -> Result<Option<Entry>, HostError> {
            Ok(self.state.borrow().get(key).cloned())
        }
        fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<bool, HostError> {
            if self.conflict_once.replace(false) {
                return Ok(false);
            }
            let mut state = self.state.borrow_mut();
            if cas != 0 && state.get(key).map(|e| e.cas) != Some(cas) {
                return Ok(false);
            }
            let next = self.next_cas.replace_with(|n| n.wrapping_add(1).max(1));
            state.insert(
                key.to_owned(),
                Entry {
                    value: value.to_vec(),
                    cas: next.max(1),
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

    #[test]
    fn counters_add_and_survive_a_conflict() {
        let host = Memory::default();
        assert_eq!(counter_add(&host, "c", 2).unwrap(), 2);
        *host.conflict_once.borrow_mut() = true;
        assert_eq!(counter_add(&host, "c", -5).unwrap(), -3);
        assert_eq!(counter_add(&host, "other", 1).unwrap(), 1);
    }

    #[test]
    fn a_bucket_starts_full_empties_and_refills_by_whole_intervals() {
        let host = Memory::default();
        let bucket = TokenBucket {
            max_tokens: 2,
            tokens_per_fill: 1,
            fill_interval: Duration::from_secs(10),
        };
        *host.now.borrow_mut() = Duration::from_secs(1000);
        let takes: Vec<bool> = (0..3)
            .map(|_| bucket.take(&host, "b", 1).unwrap().allowed)
            .collect();
        assert_eq!(takes, [true, true, false]);
        let denied = bucket.take(&host, "b", 1).unwrap();
        assert_eq!(denied.remaining, 0);
        assert_eq!(denied.reset, Duration::from_secs(10));
        *host.now.borrow_mut() = Duration::from_secs(1009);
        let almost = bucket.take(&host, "b", 1).unwrap();
        assert!(!almost.allowed);
        assert_eq!(almost.reset, Duration::from_secs(1));
        *host.now.borrow_mut() = Duration::from_secs(1035);
        // Three intervals passed: three tokens, capped at two.
        let refilled = bucket.take(&host, "b", 1).unwrap();
        assert!(refilled.allowed);
        assert_eq!(refilled.remaining, 1);
        assert_eq!(refilled.reset, Duration::from_secs(5));
        assert!(
            !bucket.take(&host, "b", 5).unwrap().allowed,
            "more than it holds"
        );
    }

    #[test]
    fn a_clock_going_back_does_not_refill() {
        let bucket = TokenBucket {
            max_tokens: 1,
            tokens_per_fill: 1,
            fill_interval: Duration::from_secs(1),
        };
        let empty = BucketState {
            tokens: 0,
            filled_at: 5_000_000_000,
        };
        let (state, take) = bucket.take_at(empty, 1_000_000_000, 1);
        assert!(!take.allowed);
        assert_eq!(state.filled_at, 1_000_000_000);
    }

    #[test]
    fn conflicts_that_never_end_are_reported() {
        struct Busy;
        impl Host for Busy {
            fn now(&self) -> Result<Duration, HostError> {
                Ok(Duration::ZERO)
            }
            fn get(&self, _: &str) -> Result<Option<Entry>, HostError> {
                Ok(None)
            }
            fn set(&self, _: &str, _: &[u8], _: u32) -> Result<bool, HostError> {
                Ok(false)
            }
            fn data(&self, _: &str, _: &str) -> Result<Option<String>, HostError> {
                Ok(None)
            }
            fn data_keys(&self, _: &str, _: &str) -> Result<Vec<String>, HostError> {
                Ok(Vec::new())
            }
            fn log(&self, _: Level, _: &str) {}
        }
        assert!(matches!(
            counter_add(&Busy, "k", 1),
            Err(HostError::Contended(_))
        ));
    }
}
