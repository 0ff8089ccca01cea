//! Host capabilities: what a policy may ask of its host beyond its request, the same for every
//! ABI. The embedder (the webhook's state, the CLI) builds one [`Capabilities`] value and hands
//! it to every policy it configures, so what lives in it (the shared state) outlasts policies
//! and configuration reloads; each policy gets only what its [`Grants`] allow, and everything
//! else answers it with a "denied" error, never a host failure.
//!
//! The capabilities: a clock, a shared state store of versioned values written with
//! compare-and-swap (the SDK builds counters on it), token buckets taken from in one atomic step
//! (in memory here; the webhook adds a Redis store shared by replicas), and read-only data
//! tables.

pub mod certificates;
pub mod cluster;
mod operations;
pub mod registry;
pub mod session;
pub mod supply_chain;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use operations::{OPERATIONS, OperationGrants};
use palisade_sdk::host::rate::{self, Level};
pub use palisade_sdk::host::rate::{Shape, Taken};

/// Everything the host can give policies. Build one per process (or per test) and share it.
pub struct Capabilities {
    clock: Arc<dyn Clock>,
    state: Arc<dyn StateStore>,
    buckets: Arc<dyn Buckets>,
    data: RwLock<Arc<DataTables>>,
    cluster: RwLock<Option<Arc<dyn cluster::Cluster>>>,
    registry: Option<Arc<dyn registry::Registry>>,
    supply_chain: Option<Arc<dyn supply_chain::SupplyChain>>,
    dns: bool,
    session: Option<Arc<session::Session>>,
}

impl std::fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capabilities")
            .field("clock", &self.clock)
            .field("data", &self.data().names())
            .finish_non_exhaustive()
    }
}

impl Default for Capabilities {
    /// The system clock, an in-memory state store with [`StateLimits::default`], no data.
    fn default() -> Self {
        Self::new(
            Arc::new(SystemClock),
            Arc::new(MemoryStore::new(StateLimits::default())),
            DataTables::default(),
        )
    }
}

impl Capabilities {
    /// Capabilities served by these implementations, with token buckets in memory
    /// ([`MemoryBuckets`] with [`StateLimits::default`]'s bound, on `clock`).
    #[must_use]
    pub fn new(clock: Arc<dyn Clock>, state: Arc<dyn StateStore>, data: DataTables) -> Self {
        let buckets = Arc::new(MemoryBuckets::new(
            Arc::clone(&clock),
            StateLimits::default().max_entries,
        ));
        Self {
            clock,
            state,
            buckets,
            data: RwLock::new(Arc::new(data)),
            cluster: RwLock::new(None),
            registry: None,
            supply_chain: None,
            dns: false,
            session: None,
        }
    }

    /// The same capabilities with Kubernetes objects read from `cluster`.
    #[must_use]
    pub fn with_cluster(self, cluster: Arc<dyn cluster::Cluster>) -> Self {
        self.replace_cluster(Some(cluster));
        self
    }

    /// Replaces where Kubernetes objects come from (a configuration reload); evaluations in
    /// progress keep the one they started with.
    pub fn replace_cluster(&self, cluster: Option<Arc<dyn cluster::Cluster>>) {
        match self.cluster.write() {
            Ok(mut current) => *current = cluster,
            Err(poisoned) => *poisoned.into_inner() = cluster,
        }
    }

    /// The same capabilities with image manifests read from `registry`.
    #[must_use]
    pub fn with_registry(mut self, registry: Arc<dyn registry::Registry>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// The same capabilities with images' signatures verified by `supply_chain`.
    #[must_use]
    pub fn with_supply_chain(mut self, supply_chain: Arc<dyn supply_chain::SupplyChain>) -> Self {
        self.supply_chain = Some(supply_chain);
        self
    }

    /// The same capabilities with DNS lookups answered (off unless set: a lookup leaves the
    /// host, and its answer depends on the machine).
    #[must_use]
    pub fn with_dns(mut self, dns: bool) -> Self {
        self.dns = dns;
        self
    }

    /// The same capabilities with every host-operation exchange recorded in, or replayed
    /// from, `session`.
    #[must_use]
    pub fn with_session(mut self, session: Arc<session::Session>) -> Self {
        self.session = Some(session);
        self
    }

    /// Where Kubernetes objects come from, if anywhere.
    #[must_use]
    pub fn cluster(&self) -> Option<Arc<dyn cluster::Cluster>> {
        self.cluster
            .read()
            .map_or_else(|poisoned| poisoned.into_inner().clone(), |c| c.clone())
    }

    /// Where image manifests come from, if anywhere.
    #[must_use]
    pub fn registry(&self) -> Option<&Arc<dyn registry::Registry>> {
        self.registry.as_ref()
    }

    /// Where images' signatures are verified, if anywhere.
    #[must_use]
    pub fn supply_chain(&self) -> Option<&Arc<dyn supply_chain::SupplyChain>> {
        self.supply_chain.as_ref()
    }

    /// Whether DNS lookups are answered.
    #[must_use]
    pub fn dns(&self) -> bool {
        self.dns
    }

    /// The recording or replay session, if any.
    #[must_use]
    pub fn session(&self) -> Option<&Arc<session::Session>> {
        self.session.as_ref()
    }

    /// The same capabilities with token buckets kept in `buckets`.
    #[must_use]
    pub fn with_buckets(mut self, buckets: Arc<dyn Buckets>) -> Self {
        self.buckets = buckets;
        self
    }

    /// The token buckets.
    #[must_use]
    pub fn buckets(&self) -> &Arc<dyn Buckets> {
        &self.buckets
    }

    /// The clock.
    #[must_use]
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The shared state store.
    #[must_use]
    pub fn state(&self) -> &Arc<dyn StateStore> {
        &self.state
    }

    /// The data tables as they are now.
    #[must_use]
    pub fn data(&self) -> Arc<DataTables> {
        self.data.read().map_or_else(
            |poisoned| Arc::clone(&poisoned.into_inner()),
            |d| Arc::clone(&d),
        )
    }

    /// Replaces the data tables (a configuration reload); evaluations in progress keep the
    /// tables they started with.
    pub fn replace_data(&self, data: DataTables) {
        let data = Arc::new(data);
        match self.data.write() {
            Ok(mut current) => *current = data,
            Err(poisoned) => *poisoned.into_inner() = data,
        }
    }
}

/// What one policy may use. The default grants nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// The clock (and WASI's clocks, which read zero otherwise).
    pub clock: bool,
    /// The shared state, in the policy's own namespace (its id).
    pub state: bool,
    /// Token buckets, in the policy's own namespace (its id).
    pub rate_limit: bool,
    /// Images' signatures and attestations verified by the host (the `supply-chain`
    /// interface).
    pub supply_chain: bool,
    /// The data tables it may read, by name; `*` grants every table.
    pub data: BTreeSet<String>,
    /// The host operations it may call (registry, certificates, DNS, Kubernetes), as
    /// Kubewarden's `hostCapabilities` patterns name them.
    pub operations: OperationGrants,
    /// The Kubernetes kinds it may list and get (Kubewarden's `contextAwareResources`);
    /// `*`/`*` grants every kind.
    pub kubernetes: BTreeSet<ResourceKind>,
}

/// A Kubernetes kind: `apiVersion` and `kind`.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceKind {
    /// `v1`, `apps/v1`, ... or `*`.
    pub api_version: String,
    /// `Namespace`, `Deployment`, ... or `*`.
    pub kind: String,
}

impl ResourceKind {
    /// Every kind.
    #[must_use]
    pub fn any() -> Self {
        Self {
            api_version: "*".to_owned(),
            kind: "*".to_owned(),
        }
    }
}

impl Grants {
    /// Every capability and every data table (for tests and offline runs that trust the policy).
    #[must_use]
    pub fn all() -> Self {
        Self {
            clock: true,
            state: true,
            rate_limit: true,
            supply_chain: true,
            data: BTreeSet::from(["*".to_owned()]),
            operations: OperationGrants::all(),
            kubernetes: BTreeSet::from([ResourceKind::any()]),
        }
    }

    /// Whether objects of `api_version`/`kind` may be read.
    #[must_use]
    pub fn kubernetes_kind(&self, api_version: &str, kind: &str) -> bool {
        self.kubernetes.iter().any(|k| {
            (k.api_version == "*" || k.api_version == api_version)
                && (k.kind == "*" || k.kind == kind)
        })
    }

    /// Whether the table `name` may be read.
    #[must_use]
    pub fn data_table(&self, name: &str) -> bool {
        self.data.contains("*") || self.data.contains(name)
    }
}

/// What one configured policy may use: the embedder's capabilities, its grants, and the
/// namespace of its state (its id).
#[derive(Debug)]
pub(crate) struct Scope {
    pub(crate) capabilities: Arc<Capabilities>,
    pub(crate) grants: Grants,
    pub(crate) namespace: String,
}

/// A source of wall-clock time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The time since 1970-01-01T00:00:00Z.
    fn now(&self) -> Duration;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    }
}

/// A clock that always reads the same time (tests, reproducible offline runs).
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub Duration);

impl Clock for FixedClock {
    fn now(&self) -> Duration {
        self.0
    }
}

/// A value of the shared state and its version (never 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateEntry {
    /// The bytes stored.
    pub value: Vec<u8>,
    /// The version, changed by every write.
    pub cas: u32,
}

/// Why the state store gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The key or value is over the limits.
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error("{0}")]
    Unavailable(String),
}

/// A future of the state store.
pub type StateFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StateError>> + Send + 'a>>;

/// Where the shared state lives: in this process ([`MemoryStore`]) or in a store shared by
/// several replicas. Calls are futures, so a store on the network holds no thread while it
/// answers; the host bounds them by the policy's deadline.
pub trait StateStore: Send + Sync {
    /// The value of `key` in `namespace`, if any.
    fn get<'a>(&'a self, namespace: &'a str, key: &'a str) -> StateFuture<'a, Option<StateEntry>>;

    /// Sets `key` in `namespace` to `value` if its version is still `cas` (0: whatever it
    /// is); `false` when it changed meanwhile.
    fn set<'a>(
        &'a self,
        namespace: &'a str,
        key: &'a str,
        value: Vec<u8>,
        cas: u32,
    ) -> StateFuture<'a, bool>;
}

/// Bounds of a state store, per namespace (policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateLimits {
    /// Keys kept; writing a new key past it forgets the least recently used one.
    pub max_entries: usize,
    /// Longest key, in bytes.
    pub max_key_bytes: usize,
    /// Largest value, in bytes.
    pub max_value_bytes: usize,
}

impl Default for StateLimits {
    /// 100,000 keys of at most 1 KiB with values of at most 64 KiB.
    fn default() -> Self {
        Self {
            max_entries: 100_000,
            max_key_bytes: 1 << 10,
            max_value_bytes: 64 << 10,
        }
    }
}

impl StateLimits {
    fn check(&self, key: &str, value: Option<&[u8]>) -> Result<(), StateError> {
        if key.len() > self.max_key_bytes {
            return Err(StateError::Invalid(format!(
                "the key is {} bytes long, over the limit of {}",
                key.len(),
                self.max_key_bytes
            )));
        }
        if let Some(value) = value
            && value.len() > self.max_value_bytes
        {
            return Err(StateError::Invalid(format!(
                "the value is {} bytes long, over the limit of {}",
                value.len(),
                self.max_value_bytes
            )));
        }
        Ok(())
    }
}

/// Shared state in this process's memory: one least-recently-used map per namespace, bounded
/// by [`StateLimits`]. Versions come from one counter for the whole store, as proxy-wasm's
/// shared data numbers them.
pub struct MemoryStore {
    limits: StateLimits,
    namespaces: Namespaced<StateEntry>,
    next_cas: AtomicU32,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new(limits: StateLimits) -> Self {
        Self {
            limits,
            namespaces: Namespaced::new(limits.max_entries),
            next_cas: AtomicU32::new(1),
        }
    }

    /// How many keys `namespace` holds.
    #[must_use]
    pub fn len(&self, namespace: &str) -> usize {
        self.namespaces
            .with(namespace, |map| map.len())
            .unwrap_or(0)
    }

    fn next_cas(&self) -> u32 {
        loop {
            let cas = self.next_cas.fetch_add(1, Ordering::Relaxed);
            if cas != 0 {
                return cas;
            }
        }
    }
}

/// One least-recently-used map per namespace (a policy's id), each bounded: what the memory
/// stores of the state and of the token buckets keep.
struct Namespaced<V> {
    capacity: NonZeroUsize,
    maps: Mutex<HashMap<String, lru::LruCache<String, V>>>,
}

impl<V> Namespaced<V> {
    fn new(capacity: usize) -> Self {
        Self {
            capacity: NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN),
            maps: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `f` on the map of `namespace`, made empty on first use.
    fn with<T>(
        &self,
        namespace: &str,
        f: impl FnOnce(&mut lru::LruCache<String, V>) -> T,
    ) -> Result<T, StateError> {
        let mut maps = self
            .maps
            .lock()
            .map_err(|_| StateError::Unavailable("the store's lock is poisoned".into()))?;
        if let Some(map) = maps.get_mut(namespace) {
            return Ok(f(map));
        }
        let mut map = lru::LruCache::new(self.capacity);
        let out = f(&mut map);
        maps.insert(namespace.to_owned(), map);
        Ok(out)
    }
}

impl StateStore for MemoryStore {
    fn get<'a>(&'a self, namespace: &'a str, key: &'a str) -> StateFuture<'a, Option<StateEntry>> {
        Box::pin(async move {
            self.limits.check(key, None)?;
            self.namespaces.with(namespace, |map| map.get(key).cloned())
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
            self.limits.check(key, Some(&value))?;
            let next = self.next_cas();
            self.namespaces.with(namespace, |map| {
                if cas != 0 && map.peek(key).map(|e| e.cas) != Some(cas) {
                    return false;
                }
                map.put(key.to_owned(), StateEntry { value, cas: next });
                true
            })
        })
    }
}

/// Where token buckets live: in this process ([`MemoryBuckets`]) or in a store shared by
/// several replicas. A take is one atomic step with the SDK's arithmetic
/// (`palisade_sdk::host::rate`), so concurrent takes never grant more than the bucket holds.
pub trait Buckets: Send + Sync {
    /// Takes `tokens` from the bucket `name` of `namespace` if it holds them; the shape has
    /// passed [`Shape::check`].
    fn take<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        shape: Shape,
        tokens: u64,
    ) -> StateFuture<'a, Taken>;
}

/// Token buckets in this process's memory, on the host's clock: one least-recently-used map
/// per namespace (policy), bounded; a bucket forgotten to make room comes back full, as an
/// evicted bucket of Kubernetes' EventRateLimit does.
pub struct MemoryBuckets {
    clock: Arc<dyn Clock>,
    max_buckets: usize,
    namespaces: Namespaced<Level>,
}

impl std::fmt::Debug for MemoryBuckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBuckets")
            .field("max_buckets", &self.max_buckets)
            .finish_non_exhaustive()
    }
}

impl MemoryBuckets {
    /// No buckets yet; at most `max_buckets` kept per namespace.
    #[must_use]
    pub fn new(clock: Arc<dyn Clock>, max_buckets: usize) -> Self {
        Self {
            clock,
            max_buckets,
            namespaces: Namespaced::new(max_buckets),
        }
    }

    /// One take at `now` (the clock's time unless a test gives it).
    fn take_now(
        &self,
        namespace: &str,
        name: &str,
        shape: Shape,
        tokens: u64,
        now: Duration,
    ) -> Result<Taken, StateError> {
        let now_us = u64::try_from(now.as_micros()).unwrap_or(u64::MAX);
        self.namespaces.with(namespace, |buckets| {
            let (level, taken) = rate::take_at(shape, buckets.get(name).copied(), now_us, tokens);
            buckets.put(name.to_owned(), level);
            taken
        })
    }
}

impl Buckets for MemoryBuckets {
    fn take<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        shape: Shape,
        tokens: u64,
    ) -> StateFuture<'a, Taken> {
        Box::pin(async move { self.take_now(namespace, name, shape, tokens, self.clock.now()) })
    }
}

/// Read-only data tables: by name, each a mapping from keys to JSON values (kept as text).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataTables {
    tables: BTreeMap<String, BTreeMap<String, String>>,
}

impl DataTables {
    /// Tables of these values.
    #[must_use]
    pub fn new(tables: BTreeMap<String, BTreeMap<String, serde_json::Value>>) -> Self {
        Self {
            tables: tables
                .into_iter()
                .map(|(name, table)| {
                    let table = table
                        .into_iter()
                        .map(|(key, value)| (key, value.to_string()))
                        .collect();
                    (name, table)
                })
                .collect(),
        }
    }

    /// The names of the tables.
    #[must_use]
    pub fn names(&self) -> Vec<&str> {
        self.tables.keys().map(String::as_str).collect()
    }

    /// The value of `key` in `table` as JSON text; `None` for a table that does not exist.
    #[must_use]
    pub fn get(&self, table: &str, key: &str) -> Option<Option<&str>> {
        self.tables
            .get(table)
            .map(|t| t.get(key).map(String::as_str))
    }

    /// The keys of `table` starting with `prefix`, sorted; `None` for a table that does not
    /// exist.
    #[must_use]
    pub fn keys(&self, table: &str, prefix: &str) -> Option<Vec<String>> {
        self.tables.get(table).map(|t| {
            t.range(prefix.to_owned()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(k, _)| k.clone())
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn block<T: Send>(future: StateFuture<'_, T>) -> Result<T, StateError> {
        crate::admission::block_on(future)
    }

    #[test]
    fn compare_and_swap_refuses_a_stale_version() {
        let store = MemoryStore::new(StateLimits::default());
        assert!(block(store.set("p", "k", b"1".to_vec(), 0)).unwrap());
        let entry = block(store.get("p", "k")).unwrap().unwrap();
        assert_eq!(entry.value, b"1");
        assert!(block(store.set("p", "k", b"2".to_vec(), entry.cas)).unwrap());
        assert!(!block(store.set("p", "k", b"3".to_vec(), entry.cas)).unwrap());
        assert_eq!(block(store.get("p", "k")).unwrap().unwrap().value, b"2");
        assert!(
            block(store.get("other", "k")).unwrap().is_none(),
            "namespaces are apart"
        );
    }

    #[test]
    fn the_least_recently_used_key_is_forgotten_past_the_bound() {
        let store = MemoryStore::new(StateLimits {
            max_entries: 2,
            ..StateLimits::default()
        });
        for key in ["a", "b"] {
            block(store.set("p", key, Vec::new(), 0)).unwrap();
        }
        block(store.get("p", "a")).unwrap();
        block(store.set("p", "c", Vec::new(), 0)).unwrap();
        assert_eq!(store.len("p"), 2);
        assert!(block(store.get("p", "b")).unwrap().is_none());
        assert!(block(store.get("p", "a")).unwrap().is_some());
    }

    #[test]
    fn keys_and_values_over_the_limits_are_refused() {
        let store = MemoryStore::new(StateLimits {
            max_entries: 10,
            max_key_bytes: 3,
            max_value_bytes: 2,
        });
        assert!(matches!(
            block(store.set("p", "long", Vec::new(), 0)),
            Err(StateError::Invalid(_))
        ));
        assert!(matches!(
            block(store.set("p", "k", vec![0; 3], 0)),
            Err(StateError::Invalid(_))
        ));
    }

    #[test]
    fn data_keys_are_listed_by_prefix() {
        let tables = DataTables::new(BTreeMap::from([(
            "t".to_owned(),
            BTreeMap::from([
                ("a/1".to_owned(), serde_json::json!(1)),
                ("a/2".to_owned(), serde_json::json!({"x": true})),
                ("b".to_owned(), serde_json::json!("s")),
            ]),
        )]));
        assert_eq!(tables.keys("t", "a/").unwrap(), ["a/1", "a/2"]);
        assert_eq!(tables.get("t", "a/2"), Some(Some(r#"{"x":true}"#)));
        assert_eq!(tables.get("t", "z"), Some(None));
        assert_eq!(tables.get("missing", "a"), None);
    }

    const FIVE_A_SECOND: Shape = Shape {
        capacity: 5,
        refill_tokens: 5,
        refill_period_ms: 1000,
    };

    #[test]
    fn concurrent_takes_never_grant_more_than_the_bucket_holds() {
        let buckets = Arc::new(MemoryBuckets::new(
            Arc::new(FixedClock(Duration::from_secs(1_000))),
            100,
        ));
        let shape = Shape {
            capacity: 50,
            refill_tokens: 0,
            refill_period_ms: 1000,
        };
        let granted: usize = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..8)
                .map(|_| {
                    let buckets = Arc::clone(&buckets);
                    scope.spawn(move || {
                        (0..100)
                            .filter(|_| block(buckets.take("p", "b", shape, 1)).unwrap().allowed)
                            .count()
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        assert_eq!(granted, 50);
    }

    #[test]
    fn buckets_refill_with_time_and_are_kept_per_namespace() {
        let buckets = MemoryBuckets::new(Arc::new(SystemClock), 100);
        let at = |s: f64| Duration::from_secs_f64(1_000.0 + s);
        let take = |ns: &str, now| {
            buckets
                .take_now(ns, "b", FIVE_A_SECOND, 5, now)
                .unwrap()
                .allowed
        };
        assert!(take("p", at(0.0)));
        assert!(!take("p", at(0.5)), "half the tokens came back");
        assert!(
            take("other", at(0.5)),
            "another policy's bucket of that name"
        );
        assert!(take("p", at(1.0)));
    }

    #[test]
    fn a_bucket_forgotten_for_room_comes_back_full() {
        let buckets = MemoryBuckets::new(Arc::new(FixedClock(Duration::from_secs(1))), 2);
        let now = Duration::from_secs(1);
        let drain = |name: &str| buckets.take_now("p", name, FIVE_A_SECOND, 5, now).unwrap();
        assert!(drain("a").allowed);
        assert!(!drain("a").allowed);
        assert!(drain("b").allowed);
        assert!(drain("c").allowed, "a third bucket: a is forgotten");
        assert!(drain("a").allowed, "a starts full again");
    }
}
