//! The contract between a policy's logic and the ABI adapters that export it.

use crate::wire::{AdmissionRequest, BodyLimit, HttpRequest, HttpVerdict, PolicyMetadata, Verdict};
use crate::{Fetch, Host, PolicySettings, SettingsError};

/// An admission policy: a function from a request, its prepared settings and what the host
/// gives (time, shared state, data tables) to a [`Verdict`].
///
/// Implementations do no IO and read no clock, randomness or globals of their own: everything
/// comes in as arguments, so every fixture is deterministic. Export one with
/// `palisade_sdk::export_admission!(Type)`.
pub trait AdmissionPolicy {
    /// The policy's settings, as configured.
    type Settings: PolicySettings;
    /// What the settings compile to, once per instance (regexes, rule indexes, keys); the
    /// settings themselves when there is nothing to compile.
    type Prepared;

    /// The policy's self-description (name, version, rules).
    fn metadata() -> PolicyMetadata;

    /// Compiles validated settings, once per instance, before any request; also run when a
    /// host checks settings, so what cannot compile is a settings error at load.
    ///
    /// # Errors
    /// [`SettingsError`] naming the setting that cannot be compiled.
    fn prepare(settings: Self::Settings) -> Result<Self::Prepared, SettingsError>;

    /// Decides on one request. A denial is `Ok`; `Err` means the policy could not decide.
    ///
    /// # Errors
    /// [`PolicyError`] when the request cannot be evaluated (for example an object that does not
    /// parse as the kind it claims to be).
    fn evaluate(
        request: &AdmissionRequest,
        prepared: &Self::Prepared,
        host: &dyn Host,
    ) -> Result<Verdict, PolicyError>;
}

/// An HTTP policy (a proxy filter): a function from a request's headers and connection, its
/// prepared settings and what the host gives (time, shared state) to an [`HttpVerdict`].
///
/// Implementations do no IO and read no clock, randomness or globals of their own; the adapter
/// supplies what they need (for example [`HttpRequest::nonce`], or the [`Host`]), so every
/// fixture is deterministic. Export one with `palisade_sdk::export_proxy_wasm!(Type)`.
pub trait HttpPolicy {
    /// The policy's settings; parsed and validated once, when the proxy configures the filter.
    type Settings: PolicySettings;
    /// What the settings compile to, once per VM.
    type Prepared;

    /// Compiles validated settings when the proxy configures the filter.
    ///
    /// # Errors
    /// [`SettingsError`] naming the setting that cannot be compiled; the proxy then rejects
    /// the configuration.
    fn prepare(settings: Self::Settings) -> Result<Self::Prepared, SettingsError>;

    /// Decides on one request at the request-headers phase. A denial is `Ok`; `Err` means the
    /// policy could not decide, and the adapter fails closed (403, reason `policy-error`).
    ///
    /// # Errors
    /// [`PolicyError`] when the request cannot be evaluated.
    fn evaluate(
        request: &HttpRequest,
        prepared: &Self::Prepared,
        host: &dyn Host,
    ) -> Result<HttpVerdict, PolicyError>;

    /// Whether the policy reads [`HttpRequest::route`] (the route and upstream cluster the
    /// proxy chose); the adapter asks the proxy for them only then (each property read is a
    /// hostcall). Asked for every request; false by default.
    fn reads_route(_prepared: &Self::Prepared) -> bool {
        false
    }

    /// Whether the policy decides on this request's body too, and how much of it it reads
    /// (see [`BodyLimit`]); asked at the request headers, for requests that have a body. The
    /// adapter then lets the headers go on (a proxy-wasm filter that pauses its headers gets no
    /// body), holds the body, and decides when it is complete or at the limit, with
    /// [`HttpRequest::body`] set. Request header changes of a verdict made on the body cannot
    /// be applied any more: the adapter fails closed on them. `None` by default.
    fn reads_body(_prepared: &Self::Prepared, _request: &HttpRequest) -> Option<BodyLimit> {
        None
    }

    /// The documents the prepared settings need kept fresh in the background (see
    /// [`fetch`](crate::fetch)); none by default. Asked once, after [`prepare`](Self::prepare).
    fn fetches(_prepared: &Self::Prepared) -> Vec<Fetch> {
        Vec::new()
    }

    /// Takes the body of a successful (2xx) answer to the fetch `id`. The policy keeps what it
    /// needs in its prepared settings (interior mutability: a VM is single-threaded) and uses it
    /// from the next request on.
    ///
    /// # Errors
    /// A message saying why the body cannot be used; the adapter logs it, the policy keeps what
    /// it had, and the fetch is retried after [`Fetch::retry`].
    fn fetched(
        _prepared: &Self::Prepared,
        id: &str,
        _body: &[u8],
        _host: &dyn Host,
    ) -> Result<(), String> {
        Err(format!(
            "this policy fetches nothing, yet got an answer for {id:?}"
        ))
    }
}

/// Why a policy could not decide on a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The request or its object is malformed for this policy.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The policy failed for a reason of its own.
    #[error("internal policy error: {0}")]
    Internal(String),
}

impl From<crate::HostError> for PolicyError {
    fn from(error: crate::HostError) -> Self {
        Self::Internal(error.to_string())
    }
}
