//! Verified tokens, so a repeated token costs a hash lookup instead of a signature check:
//! bounded (the oldest entry goes first), keyed by a SipHash (keyed per VM) of the token's
//! length and last 64 bytes (its signature: as random as the whole, and a tenth of it), with the
//! whole token kept and compared on a hit, and an entry is dropped once its token expires.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
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
    /// Its output headers.
    pub outputs: Vec<HeaderChange>,
    pub nbf: Option<u64>,
    pub exp: Option<u64>,
}

#[derive(Debug)]
pub(crate) struct Cache {
    capacity: usize,
    hasher: std::collections::hash_map::RandomState,
    /// Token hash to the token and what it yields.
    entries: HashMap<u64, (Box<str>, Rc<Cached>)>,
    order: VecDeque<u64>,
}

impl Cache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            hasher: std::collections::hash_map::RandomState::new(),
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// The cached verification of `token`, when one of `providers` made it: its time checked
    /// again at `now` (an expired token is dropped and refused). `None`: not cached.
    pub(crate) fn get(
        &mut self,
        token: &str,
        now: u64,
        skew: u64,
        providers: &[usize],
    ) -> Option<Result<Rc<Cached>, Failure>> {
        let key = self.key(token);
        let (kept, cached) = self.entries.get(&key)?;
        if !compare::eq(kept, token) || !providers.contains(&cached.provider) {
            return None;
        }
        match check_time(cached.nbf, cached.exp, now, skew) {
            Ok(()) => Some(Ok(Rc::clone(cached))),
            Err(Failure::Expired) => {
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
        self.hasher.hash_one((bytes.len(), tail))
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
