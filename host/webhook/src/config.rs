//! The webhook's configuration file (`palisade.yaml`): where to listen, TLS, input limits, the
//! policies and the policy groups. Validated as a whole before anything is bound or loaded.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::expression::Expression;
pub use palisade_runtime::admission::{FailurePolicy, Mode};
use palisade_runtime::capabilities::{
    DataTables, Grants, OperationGrants, ResourceKind, StateLimits,
};

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Serving certificate and key (PEM files, re-read when they change); required unless the
    /// server runs with plain HTTP for local use.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Input limits and timeouts.
    #[serde(default)]
    pub limits: ServerLimits,
    /// The policies, each served at `/validate/<id>` and `/mutate/<id>`.
    pub policies: Vec<PolicyConfig>,
    /// Groups of policies combined by a boolean expression, served like policies.
    #[serde(default)]
    pub groups: Vec<GroupConfig>,
    /// Read-only data tables for policies with the `data` capability: name to file (YAML or
    /// JSON, a mapping of keys to values), relative to the configuration file; re-read with it.
    #[serde(default)]
    pub data: BTreeMap<String, PathBuf>,
    /// Bounds of the shared state of policies with the `state` capability (per policy).
    #[serde(default)]
    pub state: StateConfig,
    /// Where the token buckets of policies with the `rateLimit` capability live: this
    /// server's memory (the default) or a Redis server shared by every replica.
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// A second, plain-HTTP listener for `/healthz`, `/readyz` and `/metrics` only, so that
    /// kubelet probes and scrapers need no client certificate when `tls.clientCa` is set.
    #[serde(default)]
    pub probes: Option<ProbesConfig>,
    /// What the host operations policies are granted (`capabilities.host`) answer from.
    #[serde(default)]
    pub host_operations: HostOperationsConfig,
}

/// Where host operations are answered from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostOperationsConfig {
    /// A directory of Kubernetes manifests (YAML or JSON, multi-document, Lists), relative to
    /// the configuration file, that the kubernetes/* operations answer from as if it were the
    /// cluster; re-read on reload. Without it they are refused.
    #[serde(default)]
    pub kubernetes_directory: Option<PathBuf>,
    /// Whether net/v1/dns_lookup_host is answered with this machine's resolver (restart to
    /// change).
    #[serde(default)]
    pub dns: bool,
    /// Where images come from: the oci/v1/* operations (restart to change) and modules given
    /// as `registry://` or `https://` URLs (pulled at every load).
    #[serde(default)]
    pub registry: crate::registry::RegistryConfig,
}

/// The probes listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProbesConfig {
    /// Address to listen on (plain HTTP).
    pub listen: SocketAddr,
}

/// Bounds of the in-memory shared state, per policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct StateConfig {
    /// Keys kept per policy; a new key past it forgets the least recently used one.
    pub max_entries: usize,
    /// Longest key, in bytes.
    pub max_key_bytes: usize,
    /// Largest value, in bytes.
    pub max_value_bytes: usize,
}

impl Default for StateConfig {
    fn default() -> Self {
        let limits = StateLimits::default();
        Self {
            max_entries: limits.max_entries,
            max_key_bytes: limits.max_key_bytes,
            max_value_bytes: limits.max_value_bytes,
        }
    }
}

impl From<StateConfig> for StateLimits {
    fn from(c: StateConfig) -> Self {
        Self {
            max_entries: c.max_entries,
            max_key_bytes: c.max_key_bytes,
            max_value_bytes: c.max_value_bytes,
        }
    }
}

/// The token buckets' store.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Buckets kept in memory per policy; a new bucket past it forgets the least recently used
    /// one, which comes back full (as an evicted bucket of EventRateLimit's cache does).
    pub max_buckets: usize,
    /// A Redis server that keeps the buckets instead, so that every replica configured with
    /// it shares them.
    pub redis: Option<RedisConfig>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            max_buckets: StateLimits::default().max_entries,
            redis: None,
        }
    }
}

/// A Redis server for token buckets.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user[:password]@]host[:port][/db]` (or `redis+unix:///path`).
    pub url: String,
    /// Prefix of every key, before `<policy id>:<bucket>`; replicas that share limits use the
    /// same prefix and policy ids.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// How long connecting, and each take, may take; a policy's own timeout also bounds it.
    #[serde(default = "default_redis_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_key_prefix() -> String {
    "palisade:rate-limit:".to_owned()
}

fn default_redis_timeout() -> Duration {
    Duration::from_millis(250)
}

/// What a policy may ask of the host; nothing unless listed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CapabilitiesConfig {
    /// The clock (and WASI's clocks, which read zero otherwise).
    pub clock: bool,
    /// Shared state, kept across requests and reloads under the policy's id.
    pub state: bool,
    /// Token buckets (`rateLimit` at the top level), under the policy's id.
    pub rate_limit: bool,
    /// Images' signatures and attestations verified by the host (`hostOperations.registry`
    /// and its `trustedRoot`).
    pub supply_chain: bool,
    /// The data tables it may read (names of `data`), or `["*"]` for all.
    pub data: BTreeSet<String>,
    /// The host operations it may call, as Kubewarden's `hostCapabilities` patterns: `*`,
    /// `oci/*`, `kubernetes/get_resource`, ...
    pub host: OperationGrants,
    /// The Kubernetes kinds it may list and get (`{apiVersion, kind}`; `*` for either).
    pub kubernetes: BTreeSet<ResourceKind>,
}

impl From<&CapabilitiesConfig> for Grants {
    fn from(c: &CapabilitiesConfig) -> Self {
        Self {
            clock: c.clock,
            state: c.state,
            rate_limit: c.rate_limit,
            supply_chain: c.supply_chain,
            data: c.data.clone(),
            operations: c.host.clone(),
            kubernetes: c.kubernetes.clone(),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8443))
}

/// TLS settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// PEM CA bundle: when set, clients (the API server) must present a certificate it signed.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

/// Input limits and timeouts of the server; applied again on every reload.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ServerLimits {
    /// Largest request body accepted; larger ones get 413 (the API server's own limit is 3 MiB).
    pub max_body_bytes: usize,
    /// Deadline of a request once its headers are in: reading the body, waiting for an
    /// evaluation slot and evaluating. Past it the answer is the policy's failurePolicy.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Deadline for the TLS handshake and, on HTTP/1, for the request headers.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// A connection on which nothing arrives for this long is closed (HTTP/1 and HTTP/2 alike,
    /// an unfinished HTTP/2 preface included).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Evaluations at once; more wait their turn (bodies are read before a turn is taken).
    pub max_concurrency: usize,
    /// Open connections at once; more are closed as they arrive.
    pub max_connections: usize,
    /// Open connections from one client address at once.
    pub max_connections_per_client: usize,
    /// Concurrent streams on one HTTP/2 connection (`SETTINGS_MAX_CONCURRENT_STREAMS`).
    pub max_streams_per_connection: u32,
    /// A policy instance idle for this long is dropped (its memory returned), so the
    /// instances of a burst do not stay.
    #[serde(with = "humantime_serde")]
    pub instance_idle_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 3 << 20,
            request_timeout: Duration::from_secs(8),
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            max_concurrency: 1024,
            max_connections: 1024,
            max_connections_per_client: 256,
            max_streams_per_connection: 128,
            instance_idle_timeout: Duration::from_secs(60),
        }
    }
}

/// One policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyConfig {
    /// The id in URLs, metrics and logs.
    pub id: String,
    /// The policy module (.wasm), relative to the configuration file.
    pub module: PathBuf,
    /// The policy's settings.
    #[serde(default)]
    pub settings: serde_json::Value,
    /// Settings read from files, relative to the configuration file and re-read with it: each
    /// key becomes a setting, from one file (its single YAML or JSON document) or from a list
    /// of files and directories (every document of every file, directories walked in name
    /// order, `.yaml`, `.yml` and `.json` files). For example a Gatekeeper template and its
    /// Constraints, kept as the files a Gatekeeper user already has.
    #[serde(default)]
    pub settings_from: BTreeMap<String, palisade_runtime::documents::SettingsSource>,
    /// The files and directories `settings_from` read (filled by [`Config::load`]); a server
    /// reloads when one changes.
    #[serde(skip)]
    pub settings_files: Vec<PathBuf>,
    /// protect or monitor.
    #[serde(default)]
    pub mode: Mode,
    /// Fail or Ignore.
    #[serde(default)]
    pub failure_policy: FailurePolicy,
    /// Deadline of one evaluation.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Memory cap of one instance, in MiB.
    #[serde(default = "default_memory_mib")]
    pub memory_mib: usize,
    /// What the policy may ask of the host.
    #[serde(default)]
    pub capabilities: CapabilitiesConfig,
    /// Evaluations of this policy at once; more wait their turn without holding a worker, so
    /// one slow or hostile policy cannot starve the others. Also bounds its live instances.
    #[serde(default = "default_policy_concurrency")]
    pub max_concurrency: usize,
    /// Bounds on the policy's answers (message, warnings, annotations, patch).
    #[serde(default, rename = "answerLimits")]
    pub answer: palisade_runtime::admission::AnswerLimits,
    /// policy-server's `allowedToMutate`: when set, `/validate/<id>` answers as policy-server
    /// does, with the policy's patch when true, and rejecting a patch when false (Palisade's
    /// own `/validate` drops patches and `/mutate` keeps them).
    #[serde(default)]
    pub allowed_to_mutate: Option<bool>,
    /// A message that replaces the policy's own in its rejections (policy-server's `message`).
    #[serde(default)]
    pub message: Option<String>,
    /// The group this policy is a member of, when it came from a policies.yml group: then it
    /// is not served on its own.
    #[serde(skip)]
    pub member_of: Option<String>,
}

pub(crate) fn default_policy_concurrency() -> usize {
    4
}

fn default_timeout() -> Duration {
    Duration::from_secs(1)
}

pub(crate) fn default_memory_mib() -> usize {
    64
}

/// A group of policies answered as one.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupConfig {
    /// The id in URLs, metrics and logs.
    pub id: String,
    /// Boolean expression over member policy ids: `pod-security && (signed || trusted)`;
    /// a member is `true` when it allows the request.
    pub expression: String,
    /// Message of a denial; every member's message follows it.
    #[serde(default)]
    pub message: Option<String>,
    /// protect or monitor.
    #[serde(default)]
    pub mode: Mode,
    /// Whether a member that mutates counts as rejecting (policy-server's groups).
    #[serde(skip)]
    pub members_may_not_mutate: bool,
}

/// A configuration that cannot be used, naming the item.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("reading {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid YAML of the configuration's shape.
    #[error("parsing {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What and where (line, column).
        message: String,
    },
    /// The content is inconsistent.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and where.
        message: String,
    },
}

impl Config {
    /// Reads, parses and validates a configuration file; module paths are made relative to
    /// the file's directory.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, the item and the problem.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_with(path, &crate::kubewarden::ServerFlags::default())
    }

    /// [`load`](Self::load) for a file that may also be Kubewarden policy-server's
    /// `policies.yml` (told apart by its shape), whose listener, TLS and default timeout come
    /// from `flags`, as policy-server's come from its command line.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn load_with(
        path: &Path,
        flags: &crate::kubewarden::ServerFlags,
    ) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let parse_error = |message: String| ConfigError::Parse {
            path: path.to_owned(),
            message,
        };
        palisade_runtime::documents::unique_keys(serde_yaml::Deserializer::from_str(&text))
            .map_err(|e| parse_error(e.to_string()))?;
        let document: serde_yaml::Value =
            serde_yaml::from_str(&text).map_err(|e| parse_error(e.to_string()))?;
        let mut config = if crate::kubewarden::is_policies_yml(&document) {
            let (policies, groups) =
                crate::kubewarden::translate(document, flags).map_err(|message| {
                    ConfigError::Invalid {
                        path: path.to_owned(),
                        message,
                    }
                })?;
            Self::policy_server(policies, groups, flags)
        } else {
            if flags.any_set() {
                return Err(ConfigError::Invalid {
                    path: path.to_owned(),
                    message: "the policy-server flags (--addr, --port, --cert-file, --key-file, --client-ca-file, --readiness-probe-port, --policy-timeout, --kubernetes-dir, --docker-config-json-path, --sources-path) apply to a policies.yml; a palisade.yaml sets listen, tls, probes and hostOperations itself".to_owned(),
                });
            }
            Self::parse(&text).map_err(parse_error)?
        };
        config.resolve(path)?;
        Ok(config)
    }

    /// A configuration serving a policies.yml's policies and groups with policy-server's
    /// listener and TLS flags; every limit Palisade's own, the request deadline long enough for
    /// the slowest policy.
    fn policy_server(
        policies: Vec<PolicyConfig>,
        groups: Vec<GroupConfig>,
        flags: &crate::kubewarden::ServerFlags,
    ) -> Self {
        let mut limits = ServerLimits::default();
        let slowest = policies.iter().map(|p| p.timeout).max().unwrap_or_default();
        limits.request_timeout = limits
            .request_timeout
            .max(slowest.saturating_add(Duration::from_secs(2)));
        limits.idle_timeout = limits.idle_timeout.max(
            limits
                .request_timeout
                .saturating_add(Duration::from_secs(30)),
        );
        Self {
            listen: flags
                .listen
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 3000))),
            tls: flags.tls.clone(),
            limits,
            policies,
            groups,
            data: BTreeMap::new(),
            state: StateConfig::default(),
            rate_limit: RateLimitConfig::default(),
            probes: flags.readiness.map(|listen| ProbesConfig { listen }),
            host_operations: HostOperationsConfig {
                kubernetes_directory: flags.kubernetes_directory.clone(),
                dns: false,
                registry: flags.registry.clone(),
            },
        }
    }

    /// Makes paths relative to the file's directory, reads `settingsFrom`, validates.
    fn resolve(&mut self, path: &Path) -> Result<(), ConfigError> {
        let config = self;
        let base = path.parent().unwrap_or(Path::new("."));
        for policy in &mut config.policies {
            if !crate::registry::is_remote(&policy.module.to_string_lossy()) {
                policy.module = base.join(&policy.module);
            }
            policy.settings_files = palisade_runtime::documents::add_settings_from(
                &mut policy.settings,
                &policy.settings_from,
                base,
            )
            .map_err(|e| ConfigError::Invalid {
                path: path.to_owned(),
                message: format!("policy {}: {}", policy.id, palisade_runtime::chain(&e)),
            })?;
        }
        for file in config.data.values_mut() {
            *file = base.join(&*file);
        }
        let operations = &mut config.host_operations;
        for path in [
            &mut operations.kubernetes_directory,
            &mut operations.registry.oci_directory,
            &mut operations.registry.docker_config,
            &mut operations.registry.trusted_root,
        ]
        .into_iter()
        .flatten()
        {
            *path = base.join(&*path);
        }
        if let Some(tls) = &mut config.tls {
            tls.cert = base.join(&tls.cert);
            tls.key = base.join(&tls.key);
            if let Some(ca) = &mut tls.client_ca {
                *ca = base.join(&*ca);
            }
        }
        config.validate().map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses configuration text (YAML or JSON) without touching the file system.
    ///
    /// # Errors
    /// The parser's message, with line and column.
    pub fn parse(text: &str) -> Result<Self, String> {
        palisade_runtime::documents::unique_keys(serde_yaml::Deserializer::from_str(text))
            .map_err(|e| e.to_string())?;
        serde_yaml::from_str(text).map_err(|e| e.to_string())
    }

    /// Reads the Kubernetes manifests of `hostOperations.kubernetesDirectory`, if set.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the file and object that cannot be used.
    pub fn load_cluster(
        &self,
    ) -> Result<
        Option<std::sync::Arc<dyn palisade_runtime::capabilities::cluster::Cluster>>,
        ConfigError,
    > {
        let Some(dir) = &self.host_operations.kubernetes_directory else {
            return Ok(None);
        };
        let cluster = palisade_runtime::capabilities::cluster::ManifestDirectory::load(dir)
            .map_err(|e| ConfigError::Invalid {
                path: dir.clone(),
                message: format!(
                    "hostOperations.kubernetesDirectory: {}",
                    palisade_runtime::chain(&e)
                ),
            })?;
        Ok(Some(std::sync::Arc::new(cluster)))
    }

    /// Reads the data tables: each file a mapping of keys to values, YAML or JSON.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file that cannot be read or is not such a mapping.
    pub fn load_data(&self) -> Result<DataTables, ConfigError> {
        let mut tables = BTreeMap::new();
        for (name, path) in &self.data {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            let parse = |message: String| ConfigError::Parse {
                path: path.clone(),
                message: format!("data table {name:?}: {message}"),
            };
            palisade_runtime::documents::unique_keys(serde_yaml::Deserializer::from_str(&text))
                .map_err(|e| parse(e.to_string()))?;
            let table: BTreeMap<String, serde_json::Value> = serde_yaml::from_str(&text)
                .map_err(|e| parse(format!("must map keys to values: {e}")))?;
            tables.insert(name.clone(), table);
        }
        Ok(DataTables::new(tables))
    }

    /// The part of the configuration the policy or group `id` needs (the policy, or the
    /// group and its members); `None` when no policy or group has that id.
    #[must_use]
    pub fn only(&self, id: &str) -> Option<Self> {
        let mut config = self.clone();
        let members: BTreeSet<String> = match self.groups.iter().find(|g| g.id == id) {
            Some(group) => {
                config.groups.retain(|g| g.id == id);
                Expression::parse(&group.expression).ok()?.members()
            }
            None if self.policies.iter().any(|p| p.id == id) => {
                config.groups.clear();
                BTreeSet::from([id.to_owned()])
            }
            None => return None,
        };
        config.policies.retain(|p| members.contains(&p.id));
        Some(config)
    }

    /// Checks what the parser cannot: unique, URL-safe ids; groups naming known policies;
    /// timeouts within what the API server allows.
    ///
    /// # Errors
    /// A message naming the offending item.
    pub fn validate(&self) -> Result<(), String> {
        self.limits.validate()?;
        // Port 0 (any free port) is the only address two listeners may both name.
        if let Some(probes) = &self.probes
            && probes.listen == self.listen
            && probes.listen.port() != 0
        {
            return Err(format!(
                "probes.listen: {} is the admission listener's address too",
                probes.listen
            ));
        }
        let mut ids = BTreeSet::new();
        if self.policies.is_empty() {
            return Err("policies: at least one policy is required".into());
        }
        for (i, policy) in self.policies.iter().enumerate() {
            check_id(&policy.id).map_err(|e| format!("policies[{i}].id: {e}"))?;
            if !ids.insert(policy.id.as_str()) {
                return Err(format!("policies[{i}].id: {:?} is used twice", policy.id));
            }
            if policy.max_concurrency == 0 {
                return Err(format!("policies[{i}].maxConcurrency: must be positive"));
            }
            if policy.timeout >= self.limits.request_timeout {
                return Err(format!(
                    "policies[{i}].timeout: {} does not fit limits.requestTimeout ({}): the \
                     server's deadline would pass before the policy's, and the request would \
                     not be answered by its failurePolicy",
                    humantime::format_duration(policy.timeout),
                    humantime::format_duration(self.limits.request_timeout)
                ));
            }
            // The API server waits at most 30 s for a webhook.
            if policy.timeout.is_zero() || policy.timeout > Duration::from_secs(30) {
                return Err(format!(
                    "policies[{i}].timeout: must be between 1ms and 30s, not {:?}",
                    policy.timeout
                ));
            }
            if policy.memory_mib == 0 || policy.memory_mib > 4096 {
                return Err(format!(
                    "policies[{i}].memoryMib: must be between 1 and 4096, not {}",
                    policy.memory_mib
                ));
            }
            if let Some(table) = policy
                .capabilities
                .data
                .iter()
                .find(|t| *t != "*" && !self.data.contains_key(*t))
            {
                return Err(format!(
                    "policies[{i}].capabilities.data: no data table is named {table:?} (data: {})",
                    self.data.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        let policy_ids: BTreeSet<&str> = self.policies.iter().map(|p| p.id.as_str()).collect();
        for (i, group) in self.groups.iter().enumerate() {
            check_id(&group.id).map_err(|e| format!("groups[{i}].id: {e}"))?;
            if !ids.insert(group.id.as_str()) {
                return Err(format!(
                    "groups[{i}].id: {:?} is already a policy or group id",
                    group.id
                ));
            }
            let expression = Expression::parse(&group.expression)
                .map_err(|e| format!("groups[{i}].expression: {e}"))?;
            for member in expression.members() {
                if !policy_ids.contains(member.as_str()) {
                    return Err(format!(
                        "groups[{i}].expression: no policy has the id {member:?}"
                    ));
                }
            }
        }
        if self.state.max_entries == 0 {
            return Err("state.maxEntries: must be positive".into());
        }
        if self.rate_limit.max_buckets == 0 {
            return Err("rateLimit.maxBuckets: must be positive".into());
        }
        if let Some(redis) = &self.rate_limit.redis {
            crate::buckets::check_url(&redis.url)
                .map_err(|e| format!("rateLimit.redis.url: {e}"))?;
            if redis.timeout.is_zero() {
                return Err("rateLimit.redis.timeout: must be positive".into());
            }
        }
        Ok(())
    }
}

impl ServerLimits {
    /// Checks the limits on their own: every count and deadline positive, connections closed
    /// for idleness only after a request could have been answered.
    ///
    /// # Errors
    /// A message naming the field.
    pub fn validate(&self) -> Result<(), String> {
        for (field, value) in [
            ("maxBodyBytes", self.max_body_bytes),
            ("maxConcurrency", self.max_concurrency),
            ("maxConnections", self.max_connections),
            ("maxConnectionsPerClient", self.max_connections_per_client),
            (
                "maxStreamsPerConnection",
                self.max_streams_per_connection as usize,
            ),
        ] {
            if value == 0 {
                return Err(format!("limits.{field}: must be positive"));
            }
        }
        for (field, value) in [
            ("requestTimeout", self.request_timeout),
            ("headerTimeout", self.header_timeout),
            ("idleTimeout", self.idle_timeout),
            ("instanceIdleTimeout", self.instance_idle_timeout),
        ] {
            if value.is_zero() {
                return Err(format!(
                    "limits.{field}: must be longer than 0s (every connection or request would fail)"
                ));
            }
        }
        if self.idle_timeout <= self.request_timeout {
            return Err(format!(
                "limits.idleTimeout: {} must be longer than limits.requestTimeout ({}), or \
                 connections waiting for an answer would be closed as idle",
                humantime::format_duration(self.idle_timeout),
                humantime::format_duration(self.request_timeout)
            ));
        }
        Ok(())
    }
}

fn check_id(id: &str) -> Result<(), String> {
    let alphanumeric =
        |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let ok = !id.is_empty()
        && id.len() <= 63
        && id.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
        })
        // Ids are path segments (`/validate/<id>`): `.`, `..` and their kin would be resolved
        // away by clients and proxies on the way.
        && alphanumeric(id.as_bytes().first())
        && alphanumeric(id.as_bytes().last());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{id:?} must be 1-63 characters of a-z, 0-9, '-', '_' or '.', starting and ending \
             with a letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(text: &str) -> String {
        let config = Config::parse(text).unwrap_or_else(|e| panic!("parses: {e}"));
        config.validate().expect_err("must be refused")
    }

    const POLICY: &str = "policies: [{id: p, module: p.wasm}]\n";

    #[test]
    fn settings_are_read_from_files_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("gk/template.yaml", "kind: ConstraintTemplate\n");
        write("gk/constraints/b.yaml", "kind: B1\n---\nkind: B2\n---\n");
        write("gk/constraints/a.yml", "kind: A\n");
        write("gk/constraints/notes.txt", "not read\n");
        write("inventory.json", "{\"kind\": \"Namespace\"}");
        write(
            "palisade.yaml",
            "policies:\n  - id: p\n    module: p.wasm\n    settings: {level: 1}\n    settingsFrom:\n      template: gk/template.yaml\n      constraints: [gk/constraints]\n      inventory: [inventory.json]\n",
        );
        let config = Config::load(&dir.path().join("palisade.yaml")).unwrap();
        let settings = &config.policies[0].settings;
        assert_eq!(
            settings,
            &serde_json::json!({
                "level": 1,
                "template": {"kind": "ConstraintTemplate"},
                "constraints": [{"kind": "A"}, {"kind": "B1"}, {"kind": "B2"}],
                "inventory": [{"kind": "Namespace"}]
            })
        );
    }

    #[test]
    fn a_setting_given_twice_or_a_file_of_many_documents_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.yaml"), "a: 1\n---\nb: 2\n").unwrap();
        let load = |policy: &str| {
            std::fs::write(
                dir.path().join("c.yaml"),
                format!("policies:\n  - {policy}\n"),
            )
            .unwrap();
            Config::load(&dir.path().join("c.yaml"))
                .unwrap_err()
                .to_string()
        };
        let twice = load(
            "{id: p, module: p.wasm, settings: {template: 1}, settingsFrom: {template: t.yaml}}",
        );
        assert!(
            twice.contains("given both in settings and in settingsFrom"),
            "{twice}"
        );
        let many = load("{id: p, module: p.wasm, settingsFrom: {template: t.yaml}}");
        assert!(many.contains("expected one document, found 2"), "{many}");
        let missing = load("{id: p, module: p.wasm, settingsFrom: {template: [absent.yaml]}}");
        assert!(missing.contains("absent.yaml"), "{missing}");
    }

    #[test]
    fn a_policy_must_answer_before_the_servers_deadline() {
        let error = invalid(
            "limits: {requestTimeout: 2s}\npolicies: [{id: p, module: p.wasm, timeout: 2s}]\n",
        );
        assert!(
            error.starts_with("policies[0].timeout: 2s does not fit limits.requestTimeout (2s)"),
            "{error}"
        );
    }

    #[test]
    fn ids_that_paths_would_resolve_away_are_refused() {
        for id in [".", "..", ".hidden", "trailing-", "_x"] {
            let error = invalid(&format!("policies: [{{id: {id:?}, module: p.wasm}}]\n"));
            assert!(error.starts_with("policies[0].id:"), "{id}: {error}");
        }
        let error =
            invalid("policies: [{id: p, module: p.wasm}]\ngroups: [{id: \"..\", expression: p}]\n");
        assert!(error.starts_with("groups[0].id:"), "{error}");
    }

    #[test]
    fn a_key_given_twice_is_refused_with_its_place() {
        let error = Config::parse(
            "policies:\n  - id: p\n    module: p.wasm\n    settings:\n      level: restricted\n      level: baseline\n",
        )
        .expect_err("refused");
        assert!(
            error.contains("policies[0].settings: the key \"level\" is given twice"),
            "{error}"
        );
        let error = Config::parse("policies: []\npolicies: []\n").expect_err("refused");
        assert!(
            error.contains("the key \"policies\" is given twice"),
            "{error}"
        );
    }

    #[test]
    fn zero_timeouts_and_counts_are_refused_by_name() {
        for (limits, field) in [
            ("headerTimeout: 0s", "limits.headerTimeout"),
            ("requestTimeout: 0s", "limits.requestTimeout"),
            ("idleTimeout: 0s", "limits.idleTimeout"),
            ("maxConcurrency: 0", "limits.maxConcurrency"),
            (
                "maxConnectionsPerClient: 0",
                "limits.maxConnectionsPerClient",
            ),
            (
                "maxStreamsPerConnection: 0",
                "limits.maxStreamsPerConnection",
            ),
        ] {
            let error = invalid(&format!("limits: {{{limits}}}\n{POLICY}"));
            assert!(error.starts_with(field), "{limits}: {error}");
        }
    }

    #[test]
    fn policy_server_flags_are_refused_with_a_palisade_yaml() {
        use crate::kubewarden::ServerFlags;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("palisade.yaml");
        std::fs::write(&path, POLICY).unwrap();
        let refused =
            |flags: ServerFlags| Config::load_with(&path, &flags).unwrap_err().to_string();
        for flags in [
            ServerFlags {
                kubernetes_directory: Some(dir.path().join("cluster")),
                ..ServerFlags::default()
            },
            ServerFlags {
                registry: crate::registry::RegistryConfig {
                    insecure_registries: vec!["127.0.0.1:5000".to_owned()],
                    ..crate::registry::RegistryConfig::default()
                },
                ..ServerFlags::default()
            },
            ServerFlags {
                listen: Some(SocketAddr::from(([127, 0, 0, 1], 3000))),
                ..ServerFlags::default()
            },
            ServerFlags {
                policy_timeout: Some(Duration::from_secs(5)),
                ..ServerFlags::default()
            },
        ] {
            let error = refused(flags);
            assert!(
                error.starts_with(&format!("{}: ", path.display())),
                "{error}"
            );
            assert!(
                error.contains(
                    "the policy-server flags (--addr, --port, --cert-file, --key-file, \
                     --client-ca-file, --readiness-probe-port, --policy-timeout, \
                     --kubernetes-dir, --docker-config-json-path, --sources-path) apply to a \
                     policies.yml"
                ),
                "{error}"
            );
        }
        // Without them the same file loads.
        Config::load_with(&path, &ServerFlags::default()).unwrap();
    }

    #[test]
    fn a_policies_yml_takes_its_listener_timeout_and_host_operations_from_the_flags() {
        use crate::kubewarden::ServerFlags;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policies.yml");
        std::fs::write(
            &path,
            "quick:\n  module: quick.wasm\nslow:\n  module: slow.wasm\n  timeoutEvalSeconds: 5\n",
        )
        .unwrap();
        let registry = crate::registry::RegistryConfig {
            insecure_registries: vec!["127.0.0.1:5000".to_owned()],
            ..crate::registry::RegistryConfig::default()
        };
        let flags = ServerFlags {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 3100))),
            policy_timeout: Some(Duration::from_secs(3)),
            kubernetes_directory: Some(dir.path().join("cluster")),
            registry: registry.clone(),
            ..ServerFlags::default()
        };
        let config = Config::load_with(&path, &flags).unwrap();
        assert_eq!(config.listen, SocketAddr::from(([127, 0, 0, 1], 3100)));
        let policy = |id: &str| config.policies.iter().find(|p| p.id == id).unwrap();
        assert_eq!(policy("quick").timeout, Duration::from_secs(3));
        assert_eq!(policy("slow").timeout, Duration::from_secs(5));
        assert_eq!(policy("quick").module, dir.path().join("quick.wasm"));
        assert_eq!(
            config.host_operations.kubernetes_directory,
            Some(dir.path().join("cluster"))
        );
        assert_eq!(config.host_operations.registry, registry);
        // policy-server's defaults without the flags: 0.0.0.0:3000 and 2 s.
        let defaults = Config::load_with(&path, &ServerFlags::default()).unwrap();
        assert_eq!(defaults.listen, SocketAddr::from(([0, 0, 0, 0], 3000)));
        let quick = defaults.policies.iter().find(|p| p.id == "quick").unwrap();
        assert_eq!(quick.timeout, Duration::from_secs(2));
    }

    #[test]
    fn connections_are_not_closed_as_idle_while_a_request_may_still_be_answered() {
        let error = invalid(&format!(
            "limits: {{requestTimeout: 5s, idleTimeout: 5s}}\n{POLICY}"
        ));
        assert!(
            error.starts_with("limits.idleTimeout: 5s must be longer"),
            "{error}"
        );
    }
}
