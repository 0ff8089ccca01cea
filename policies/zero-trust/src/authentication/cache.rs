//! Verified tokens, so a repeated token costs a hash lookup instead of a signature check:
//! bounded (the oldest entry goes first), keyed by a hash of the token's length and last 64
//! bytes (its signature: as random as the whole, and a tenth of it), with the whole token kept
//! and compared on a hit, and an entry is dropped once its token expires. The hash is not keyed:
//! only tokens whose signature verified are stored, so a client cannot fill the table with keys
//! it chose, and a token made to collide with a stored one fails the comparison and is verified.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;

use palisade_sdk::compare;
use palisade_sdk::wire::HeaderChange;
use serde_json::{Map, Value};

use super::token::{Failure, check_time};

/// What a verified token yields.
#[derive(Debug)]
pub(crate) struct Cached {
    /// The rule (provider) that verified it.
    pub provider: usize,
    pub payload: Rc<Map<String, Value>>,
    /// The payload's `iss` and `sub`.
    pub principal: Rc<(String, String)>,
    /// Its output headers.
    pub outputs: Vec<HeaderChange>,
    pub nbf: Option<u64>,
    pub exp: Option<u64>,
}

#[derive(Debug)]
pub(crate) struct Cache {
    capacity: usize,
    /// Token hash to the token and what it yields.
    entries: HashMap<u64, (Box<str>, Rc<Cached>), BuildHasherDefault<Prehashed>>,
    order: VecDeque<u64>,
}

/// The table's hasher: its keys are hashes already.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0 = compare::hash(bytes);
    }

    fn write_u64(&mut self, key: u64) {
        self.0 = key;
    }
}

impl Cache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: HashMap::default(),
            order: VecDeque::new(),
        }
    }

    /// The stored verification of `token`, whatever its time: one hash of its last bytes, and
    /// a comparison only when a stored token has the same hash.
    pub(crate) fn find(&self, token: &str) -> Option<Rc<Cached>> {
        self.entries
            .get(&self.key(token))
            .filter(|(kept, _)| compare::eq(kept, token))
            .map(|(_, cached)| Rc::clone(cached))
    }

    /// The verification of `token` that [`Cache::find`] gave, when one of `providers` made it:
    /// its time checked again at `now` (an expired token is dropped and refused). `None`: not
    /// usable from the cache.
    pub(crate) fn check(
        &mut self,
        token: &str,
        found: Rc<Cached>,
        now: u64,
        skew: u64,
        providers: &[usize],
    ) -> Option<Result<Rc<Cached>, Failure>> {
        if !providers.contains(&found.provider) {
            return None;
        }
        match check_time(found.nbf, found.exp, now, skew) {
            Ok(()) => Some(Ok(found)),
            Err(Failure::Expired) => {
                let key = self.key(token);
                self.entries.remove(&key);
                self.order.retain(|k| *k != key);
                Some(Err(Failure::Expired))
            }
            Err(failure) => Some(Err(failure)),
        }
    }

    pub(crate) fn insert(&mut self, token: &str, cached: Rc<Cached>) {
        if self.capacity == 0 {
            return;
        }
        let key = self.key(token);
        if self.entries.insert(key, (token.into(), cached)).is_none() {
            self.order.push_back(key);
        }
        while self.entries.len() > self.capacity {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.entries.remove(&oldest);
        }
    }

    fn key(&self, token: &str) -> u64 {
        let bytes = token.as_bytes();
        let tail = bytes.get(bytes.len().saturating_sub(64)..).unwrap_or(bytes);
        compare::hash(tail) ^ (bytes.len() as u64).rotate_left(32)
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}
