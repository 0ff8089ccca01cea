//! Where buckets live. By default every worker VM of the plugin shares them through the
//! proxy's shared data (one Envoy process, one set of buckets, as Envoy's local rate limit),
//! each change a compare-and-swap, so that however workers race no more requests pass than
//! the buckets hold. With `local_rate_limit_per_downstream_connection` each connection has its
//! own set, in the memory of the VM that serves it (Envoy keeps a connection on one worker).
//!
//! Shared-data layout, under a namespace made from the settings (a new configuration starts
//! with full buckets, as a new Envoy filter configuration does):
//! - `<ns>/static`: the default bucket and every exact descriptor's, 16 bytes each (scaled time
//!   zero, little-endian; missing or zero = full), read and written once per request;
//! - `<ns>/w<d>/<g>`: group `g` of wildcard descriptor `d`: up to 16 values with their buckets,
//!   most recently used first. A value maps to one group by hash, so the most recently used
//!   values are kept per group (an exact LRU when `max_dynamic_descriptors` <= 16); a value
//!   forgotten comes back with a full bucket, as in Envoy's LRU.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use palisade_sdk::compare;
use palisade_sdk::host::{Host, HostError, update};

use crate::bucket::{Shape, State, Take};

/// Values per wildcard group.
pub(crate) const GROUP_WAYS: usize = 16;

/// Connections whose buckets a VM keeps (per-connection mode); the least recently used go.
const CONNECTIONS_KEPT: usize = 4096;

/// How often the static key's write is retried when another worker wrote meanwhile.
const ATTEMPTS: usize = 32;

/// A bucket a request takes from.
#[derive(Debug, Clone)]
pub(crate) struct Item<'a> {
    pub(crate) slot: Slot<'a>,
    pub(crate) shape: Shape,
    pub(crate) shadow: bool,
    /// Its descriptor's place in the settings; `None` for the default bucket.
    pub(crate) origin: Option<usize>,
}

/// Which bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Slot<'a> {
    /// The default bucket (0) or an exact descriptor's.
    Static(usize),
    /// A wildcard descriptor's bucket for one set of values.
    Dynamic {
        descriptor: usize,
        groups: usize,
        ways: usize,
        value: Cow<'a, str>,
    },
}

/// What taking from the buckets in order gave: the first that lacked a token stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Consumed {
    /// Per item, what its take gave (`None` after the stop).
    pub(crate) takes: Vec<Option<Take>>,
    /// The item that lacked a token, with the time until it has one.
    pub(crate) denied: Option<(usize, Option<Duration>)>,
}

/// The shared-data keys of one configuration.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    /// The configuration's hash (per-connection buckets are kept under it).
    id: u64,
    namespace: String,
    static_key: String,
    /// How many static buckets.
    statics: usize,
}

impl Keys {
    pub(crate) fn new(id: u64, namespace: String, statics: usize) -> Self {
        Self {
            id,
            static_key: format!("{namespace}/static"),
            namespace,
            statics,
        }
    }

    /// `<ns>/w<descriptor>/<group>` into `key`, written without the formatting machinery
    /// (once per wildcard descriptor on every request).
    fn group_key(&self, key: &mut String, descriptor: usize, groups: usize, value: &[u8]) {
        let group = compare::hash(value)
            .checked_rem(u64::try_from(groups).unwrap_or(1))
            .unwrap_or(0);
        key.clear();
        key.push_str(&self.namespace);
        key.push_str("/w");
        push_decimal(key, u64::try_from(descriptor).unwrap_or(u64::MAX));
        key.push('/');
        push_decimal(key, group);
    }
}

/// Appends `n` in decimal.
fn push_decimal(text: &mut String, n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at = at.saturating_sub(1);
        if let Some(d) = digits.get_mut(at) {
            // n % 10 < 10: the digit fits.
            *d = b'0'.saturating_add(u8::try_from(n.checked_rem(10).unwrap_or(0)).unwrap_or(0));
        }
        n = n.checked_div(10).unwrap_or(0);
        if n == 0 || at == 0 {
            break;
        }
    }
    for d in digits.get(at..).unwrap_or_default() {
        text.push(char::from(*d));
    }
}

/// The static buckets as stored, `count` states of 16 bytes (little-endian), taken over from
/// the bytes read (missing states are zero: full buckets); read and written in place.
fn static_states(bytes: Option<Vec<u8>>, count: usize) -> Vec<u8> {
    let mut bytes = bytes.unwrap_or_default();
    bytes.resize(count.saturating_mul(16), 0);
    bytes
}

fn state_at(states: &[u8], index: usize) -> Option<State> {
    let at = index.checked_mul(16)?;
    let bytes = states.get(at..at.checked_add(16)?)?;
    Some(u128::from_le_bytes(bytes.try_into().ok()?))
}

fn set_state(states: &mut [u8], index: usize, state: State) {
    let place = index
        .checked_mul(16)
        .and_then(|at| states.get_mut(at..at.checked_add(16)?));
    if let Some(place) = place {
        place.copy_from_slice(&state.to_le_bytes());
    }
}

/// Walks the items in order against `statics`, taking dynamic buckets with `dynamic` (each at
/// most once, its answer kept in `taken` for a retry).
fn walk(
    items: &[Item<'_>],
    statics: &mut [u8],
    now: u128,
    taken: &mut [Option<(Take, Option<Duration>)>],
    mut dynamic: impl FnMut(&Item<'_>) -> Result<(Take, Option<Duration>), HostError>,
) -> Result<Consumed, HostError> {
    let mut consumed = Consumed {
        takes: vec![None; items.len()],
        denied: None,
    };
    for (i, item) in items.iter().enumerate() {
        let (take, wait) = match &item.slot {
            Slot::Static(s) => {
                let Some(state) = state_at(statics, *s) else {
                    continue;
                };
                let (next, take) = item.shape.take(state, now, 1);
                let wait = (!take.allowed)
                    .then(|| item.shape.wait_for(state, now, 1))
                    .flatten();
                set_state(statics, *s, next);
                (take, wait)
            }
            Slot::Dynamic { .. } => match taken.get(i).copied().flatten() {
                Some(answer) => answer,
                None => {
                    let answer = dynamic(item)?;
                    if let Some(slot) = taken.get_mut(i) {
                        *slot = Some(answer);
                    }
                    answer
                }
            },
        };
        if let Some(slot) = consumed.takes.get_mut(i) {
            *slot = Some(take);
        }
        if !take.allowed {
            consumed.denied = Some((i, wait));
            break;
        }
    }
    Ok(consumed)
}

/// Takes from the buckets in shared data (see the module).
pub(crate) fn consume_shared(
    host: &dyn Host,
    keys: &Keys,
    items: &[Item<'_>],
    now: u128,
) -> Result<Consumed, HostError> {
    // Room for the dynamic buckets' answers only when there are some.
    let mut taken = Vec::new();
    if items.iter().any(|i| matches!(i.slot, Slot::Dynamic { .. })) {
        taken.resize(items.len(), None);
    }
    let any_static = items.iter().any(|i| matches!(i.slot, Slot::Static(_)));
    for _ in 0..ATTEMPTS {
        let (mut statics, cas) = if any_static {
            let (value, cas) = host
                .get(&keys.static_key)?
                .map_or((None, 0), |e| (Some(e.value), e.cas));
            (static_states(value, keys.statics), cas)
        } else {
            (Vec::new(), 0)
        };
        let consumed = walk(items, &mut statics, now, &mut taken, |item| {
            take_dynamic(host, keys, item, now)
        })?;
        let taken_statics = items.iter().zip(&consumed.takes).any(|(item, take)| {
            matches!(item.slot, Slot::Static(_)) && take.is_some_and(|t| t.allowed)
        });
        if !taken_statics || host.set(&keys.static_key, &statics, cas)? {
            return Ok(consumed);
        }
    }
    Err(HostError::Contended(format!(
        "shared data {:?} kept changing: {ATTEMPTS} compare-and-swap attempts failed",
        keys.static_key
    )))
}

/// Takes one token from a wildcard descriptor's bucket for one value, in its group.
fn take_dynamic(
    host: &dyn Host,
    keys: &Keys,
    item: &Item<'_>,
    now: u128,
) -> Result<(Take, Option<Duration>), HostError> {
    let Slot::Dynamic {
        descriptor,
        groups,
        ways,
        value,
    } = &item.slot
    else {
        return Err(HostError::Invalid("not a wildcard bucket".into()));
    };
    // Values are cut at 64 KiB (a descriptor value that long is a header's whole size).
    let value = value
        .as_bytes()
        .get(..usize::from(u16::MAX))
        .unwrap_or(value.as_bytes());
    thread_local! {
        /// The group key being written (its room kept from request to request).
        static KEY: RefCell<String> = const { RefCell::new(String::new()) };
    }
    let mut key = KEY.take();
    keys.group_key(&mut key, *descriptor, *groups, value);
    let result = update(host, &key, |current| {
        let current = current.unwrap_or_default();
        let found = group_entries(current)
            .enumerate()
            .find(|(_, (v, _))| compare::bytes_eq(v, value));
        let state = found.map_or(0, |(_, (_, state))| state);
        let (next, take) = item.shape.take(state, now, 1);
        let wait = (!take.allowed)
            .then(|| item.shape.wait_for(state, now, 1))
            .flatten();
        // The value first (most recently used), then the others as they were, to `ways`.
        let mut bytes =
            Vec::with_capacity(current.len().saturating_add(value.len()).saturating_add(19));
        bytes.push(0);
        push_entry(&mut bytes, value, next);
        let mut count = 1usize;
        for (at, (other, state)) in group_entries(current).enumerate() {
            if count >= *ways {
                break;
            }
            if found.is_some_and(|(index, _)| index == at) {
                continue;
            }
            push_entry(&mut bytes, other, state);
            count = count.saturating_add(1);
        }
        if let Some(first) = bytes.first_mut() {
            *first = u8::try_from(count).unwrap_or(u8::MAX);
        }
        (bytes, (take, wait))
    });
    KEY.set(key);
    result
}

/// The entries of a group as stored: its count, then per value a u16 length, the value and
/// its state. A truncated entry ends the list.
fn group_entries(bytes: &[u8]) -> impl Iterator<Item = (&[u8], State)> {
    let mut rest = bytes.get(1..).unwrap_or_default();
    std::iter::from_fn(move || {
        let len = rest.get(..2)?;
        let len = usize::from(u16::from_le_bytes(len.try_into().ok()?));
        let value_end = len.checked_add(2)?;
        let value = rest.get(2..value_end)?;
        let state = rest.get(value_end..value_end.checked_add(16)?)?;
        let state = u128::from_le_bytes(state.try_into().ok()?);
        rest = rest.get(value_end.checked_add(16)?..).unwrap_or_default();
        Some((value, state))
    })
}

fn push_entry(bytes: &mut Vec<u8>, value: &[u8], state: State) {
    bytes.extend_from_slice(&u16::try_from(value.len()).unwrap_or(u16::MAX).to_le_bytes());
    bytes.extend_from_slice(value);
    bytes.extend_from_slice(&state.to_le_bytes());
}

/// A connection's buckets (as [`static_states`]), and when they were last used.
type Kept = (Vec<u8>, u64);

thread_local! {
    /// Per-connection buckets of this VM, by configuration and connection id, with when each
    /// was last used.
    static CONNECTIONS: RefCell<HashMap<(u64, u64), Kept>> = RefCell::new(HashMap::new());
    static USES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Takes from the static buckets of one connection, kept in this VM.
pub(crate) fn consume_per_connection(
    keys: &Keys,
    connection: u64,
    items: &[Item<'_>],
    now: u128,
) -> Result<Consumed, HostError> {
    let use_count = USES.with(|u| {
        let next = u.get().wrapping_add(1);
        u.set(next);
        next
    });
    let statics = keys.statics;
    let connection = (keys.id, connection);
    CONNECTIONS.with_borrow_mut(|kept| {
        if !kept.contains_key(&connection) && kept.len() >= CONNECTIONS_KEPT {
            let oldest = kept
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(id, _)| *id);
            if let Some(oldest) = oldest {
                kept.remove(&oldest);
            }
        }
        let (states, used) = kept
            .entry(connection)
            .or_insert_with(|| (static_states(None, statics), 0));
        *used = use_count;
        let mut taken = vec![None; items.len()];
        walk(items, states, now, &mut taken, |_| {
            Err(HostError::Invalid(
                "wildcard descriptors are not kept per connection".into(),
            ))
        })
    })
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use super::*;

    #[test]
    fn groups_read_back_and_survive_truncation() {
        let mut bytes = vec![2];
        push_entry(&mut bytes, b"10.0.0.1", 7);
        push_entry(&mut bytes, b"", u128::MAX);
        let read: Vec<(Vec<u8>, State)> = group_entries(&bytes)
            .map(|(v, s)| (v.to_vec(), s))
            .collect();
        assert_eq!(
            read,
            vec![(b"10.0.0.1".to_vec(), 7), (Vec::new(), u128::MAX)]
        );
        for cut in 0..bytes.len() {
            assert!(group_entries(&bytes[..cut]).count() < 2, "cut at {cut}");
        }
        assert_eq!(group_entries(&[]).count(), 0);
        let mut states = static_states(Some(vec![1; 16]), 3);
        assert_eq!(states.len(), 48);
        assert_eq!(state_at(&states, 0), Some(u128::from_le_bytes([1; 16])));
        set_state(&mut states, 2, 7);
        assert_eq!(state_at(&states, 2), Some(7));
        assert_eq!(state_at(&states, 1), Some(0));
        assert_eq!(state_at(&states, 3), None);
    }

    #[test]
    fn decimals_without_the_formatter() {
        for n in [0, 7, 10, 99, 12_345, u64::MAX] {
            let mut text = String::from("g");
            push_decimal(&mut text, n);
            assert_eq!(text, format!("g{n}"));
        }
    }

    #[test]
    fn a_group_keeps_its_most_recent_values_and_a_forgotten_one_starts_full() {
        use palisade_sdk::testing::{FixtureHost, TestHost};
        let host = TestHost::new(&FixtureHost::default());
        let keys = Keys::new(1, "ns".into(), 1);
        let item = |value: &'static str| Item {
            slot: Slot::Dynamic {
                descriptor: 0,
                groups: 1,
                ways: 2,
                value: Cow::Borrowed(value),
            },
            shape: Shape {
                max_tokens: 1,
                tokens_per_fill: 1,
                fill_interval_ns: 3_600_000_000_000,
            },
            shadow: false,
            origin: Some(0),
        };
        let now = 1_767_225_600_000_000_000;
        let take = |value| {
            take_dynamic(&host, &keys, &item(value), now)
                .unwrap()
                .0
                .allowed
        };
        assert!(take("a"));
        assert!(!take("a"), "a's one token is gone");
        assert!(take("b"));
        assert!(!take("a"), "a is still remembered (b, a)");
        assert!(take("c"), "c pushes b out (c, a)");
        assert!(!take("a"), "a was used more recently than b (a, c)");
        assert!(take("b"), "b was forgotten: a full bucket again");
        let group = host.get("ns/w0/0").unwrap().unwrap().value;
        let values: Vec<&[u8]> = group_entries(&group).map(|(v, _)| v).collect();
        assert_eq!(values, [b"b".as_slice(), b"a"]);
    }
}
