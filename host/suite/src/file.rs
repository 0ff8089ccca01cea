//! The suite file: a policy, default settings, what the host gives, and cases with what to
//! expect. Paths are relative to the suite file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Deserialize;

/// A suite file (YAML or JSON).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Suite {
    /// The policy module, relative to the suite file: an admission policy or a proxy-wasm filter.
    pub policy: PathBuf,
    /// Settings for every case that does not set its own.
    #[serde(default)]
    pub settings: Option<serde_json::Value>,
    /// Settings read from files, relative to the suite, added to `settings` (as a server
    /// configuration's `settingsFrom`): a key maps to one file (its document) or to a list of
    /// files and directories (every document in them).
    #[serde(default)]
    pub settings_from: BTreeMap<String, palisade_runtime::documents::SettingsSource>,
    /// What the policy may ask of the host, as a server configuration grants it (admission).
    #[serde(default)]
    pub capabilities: Capabilities,
    /// What the host gives: the time and data tables (admission). The shared state starts
    /// empty and is kept across the suite's cases, in order.
    #[serde(default)]
    pub host: HostConfig,
    /// Not read: a place for YAML anchors that the cases refer to (keys, shared settings).
    #[serde(default)]
    pub definitions: serde_json::Value,
    /// The cases, run in order.
    pub cases: Vec<Case>,
}

/// The grants of the suite's policy.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Capabilities {
    /// The clock.
    pub clock: bool,
    /// Shared state.
    pub state: bool,
    /// Token buckets kept by the host.
    pub rate_limit: bool,
    /// Images' signatures and attestations verified by the host (`host.images`).
    pub supply_chain: bool,
    /// Data tables it may read; `["*"]` for all.
    pub data: BTreeSet<String>,
    /// Host operations it may call, as Kubewarden's `hostCapabilities` patterns.
    pub host: palisade_runtime::capabilities::OperationGrants,
    /// Kubernetes kinds it may list and get.
    pub kubernetes: BTreeSet<palisade_runtime::capabilities::ResourceKind>,
}

/// The time and data the host gives.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HostConfig {
    /// The time the clock reads, RFC 3339 UTC; the system clock when absent.
    pub now: Option<String>,
    /// Data tables: name, then key to value.
    pub data: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    /// A directory of Kubernetes manifests, relative to the suite, that the kubernetes/* host
    /// operations answer from.
    pub kubernetes: Option<PathBuf>,
    /// An OCI image layout directory, relative to the suite, that the `supply-chain`
    /// capability reads images, signatures and attestations from (offline).
    pub images: Option<PathBuf>,
    /// A Sigstore `trusted_root.json`, relative to the suite, that keyless signatures are
    /// checked against; Sigstore's public-good root when absent.
    pub trusted_root: Option<PathBuf>,
}

/// One case.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Case {
    /// Its name in the report.
    pub name: String,
    /// AdmissionReview or AdmissionRequest file, relative to the suite (admission policies).
    #[serde(default)]
    pub request: Option<PathBuf>,
    /// Proxy scenario file, relative to the suite (proxy-wasm filters); the settings, when
    /// given, replace its plugin configuration.
    #[serde(default)]
    pub scenario: Option<PathBuf>,
    /// Settings replacing the suite's.
    #[serde(default)]
    pub settings: Option<serde_json::Value>,
    /// How many times the request is evaluated (admission); the last verdict is checked.
    #[serde(default = "one")]
    pub repeat: u32,
    /// What must hold.
    pub expect: Expect,
}

fn one() -> u32 {
    1
}

/// What a case must show; every field is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Expect {
    /// Whether the request must be allowed.
    #[serde(default)]
    pub allowed: Option<bool>,
    /// The exact reason.
    #[serde(default)]
    pub reason: Option<String>,
    /// A substring of the message.
    #[serde(default)]
    pub message: Option<String>,
    /// A substring of the error: the case expects the policy to fail (settings or evaluation),
    /// or, for a proxy filter, the plugin to be rejected.
    #[serde(default)]
    pub error: Option<String>,
    /// Proxy: whether the plugin must be accepted.
    #[serde(default)]
    pub accepted: Option<bool>,
    /// Proxy: what must hold of each request of the scenario, in order.
    #[serde(default)]
    pub requests: Option<Vec<ExpectRequest>>,
}

/// What a proxy scenario's request must show.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExpectRequest {
    /// `upstream`, `local-reply`, `reset`, `fail-closed`, `fail-open` or `pending`.
    #[serde(default)]
    pub outcome: Option<String>,
    /// The status the client got.
    #[serde(default)]
    pub status: Option<u16>,
    /// Headers the filter must have added to the request sent upstream.
    #[serde(default)]
    pub headers_added: Option<BTreeMap<String, String>>,
    /// Headers the filter must have removed from the request.
    #[serde(default)]
    pub headers_removed: Option<Vec<String>>,
    /// Headers the client's response must carry.
    #[serde(default)]
    pub response_headers: Option<BTreeMap<String, String>>,
    /// A substring of the body the client got.
    #[serde(default)]
    pub body: Option<String>,
    /// The whole body the upstream got (the request's, as the filter let it through).
    #[serde(default)]
    pub upstream_body: Option<String>,
}
