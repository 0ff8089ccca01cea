//! Verified tokens, so a repeated token costs a hash lookup instead of a signature check:
//! bounded (the oldest entry goes first), keyed by the whole token (the map hashes it; a hit
//! compares every byte), and an entry is dropped once its token expires.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

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
    entries: HashMap<Box<str>, Rc<Cached>>,
    order: VecDeque<Box<str>>,
}

impl Cache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
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
        let cached = self.entries.get(token)?;
        if !providers.contains(&cached.provider) {
            return None;
        }
        match check_time(cached.nbf, cached.exp, now, skew) {
            Ok(()) => Some(Ok(Rc::clone(cached))),
            Err(Failure::Expired) => {
                self.entries.remove(token);
                self.order.retain(|t| &**t != token);
                Some(Err(Failure::Expired))
            }
            Err(failure) => Some(Err(failure)),
        }
    }

    pub(crate) fn insert(&mut self, token: &str, cached: Rc<Cached>) {
        if self.capacity == 0 {
            return;
        }
        if self.entries.insert(token.into(), cached).is_none() {
            self.order.push_back(token.into());
        }
        while self.entries.len() > self.capacity {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.entries.remove(&oldest);
        }
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
