//! Documents a filter keeps fresh in the background: a JSON Web Key Set from an identity
//! provider, a list of revoked tokens, a feed of blocked addresses. The policy names what it
//! needs ([`HttpPolicy::fetches`](crate::HttpPolicy::fetches)); the adapter fetches each from
//! an upstream cluster when the filter starts, again every [`Fetch::refresh`], and after
//! [`Fetch::retry`] when a fetch fails, and hands every successful answer to
//! [`HttpPolicy::fetched`](crate::HttpPolicy::fetched). No ABI here: the proxy-wasm adapter
//! makes the calls with `proxy_http_call` from the root context, and native fixture runs give
//! the answers from the fixture.

use std::time::Duration;

/// The largest body a fetch accepts unless it says otherwise (1 MiB).
pub const DEFAULT_MAX_BYTES: usize = 1 << 20;

/// One document to keep fresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    /// The policy's name for it, handed back with every answer (`jwks/0`).
    pub id: String,
    /// The upstream cluster the call goes to (Envoy's cluster name, e.g. Istio's
    /// `outbound|443||auth.example.com`).
    pub cluster: String,
    /// `:authority` of the call.
    pub authority: String,
    /// `:path` of the call, with its query.
    pub path: String,
    /// Further request headers (`accept`, ...).
    pub headers: Vec<(String, String)>,
    /// How long one call may take before it counts as failed.
    pub timeout: Duration,
    /// How long an answer is used before it is fetched again.
    pub refresh: Duration,
    /// How long after a failed fetch the next attempt is made.
    pub retry: Duration,
    /// Bodies longer than this count as failures.
    pub max_bytes: usize,
}

impl Fetch {
    /// A GET of `path` at `authority` through `cluster`, with the defaults of Envoy's remote
    /// JWKS: 5 s timeout, refreshed every 5 minutes, retried after 1 s, at most 1 MiB.
    #[must_use]
    pub fn get(
        id: impl Into<String>,
        cluster: impl Into<String>,
        authority: impl Into<String>,
        path: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            cluster: cluster.into(),
            authority: authority.into(),
            path: path.into(),
            headers: Vec::new(),
            timeout: Duration::from_secs(5),
            refresh: Duration::from_secs(300),
            retry: Duration::from_secs(1),
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}
