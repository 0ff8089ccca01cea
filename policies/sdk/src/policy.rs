//! The contract between a policy's logic and the ABI adapters that export it.

use crate::PolicySettings;
use crate::wire::{AdmissionRequest, HttpRequest, HttpVerdict, PolicyMetadata, Verdict};

/// An admission policy: a pure function from a request and parsed settings to a [`Verdict`].
///
/// Implementations do no IO and read no clock, randomness or globals, so every fixture is
/// deterministic. Export one with `palisade_sdk::export_admission!(Type)`.
pub trait AdmissionPolicy {
    /// The policy's settings; parsed and validated once, before any request.
    type Settings: PolicySettings;

    /// The policy's self-description (name, version, rules).
    fn metadata() -> PolicyMetadata;

    /// Decides on one request. A denial is `Ok`; `Err` means the policy could not decide.
    ///
    /// # Errors
    /// [`PolicyError`] when the request cannot be evaluated (for example an object that does not
    /// parse as the kind it claims to be).
    fn evaluate(
        request: &AdmissionRequest,
        settings: &Self::Settings,
    ) -> Result<Verdict, PolicyError>;
}

/// An HTTP policy (a proxy filter): a pure function from a request's headers and connection,
/// and parsed settings, to an [`HttpVerdict`].
///
/// Implementations do no IO and read no clock, randomness or globals; the adapter supplies what
/// they would need (for example [`HttpRequest::nonce`]), so every fixture is deterministic.
/// Export one with `palisade_sdk::export_proxy_wasm!(Type)`.
///
/// Stateful capabilities (token buckets and counters shared across requests and workers) are
/// not part of this trait yet: they will come as a host-provided context argument to
/// `evaluate`, in a later issue.
pub trait HttpPolicy {
    /// The policy's settings; parsed and validated once, when the proxy configures the filter.
    type Settings: PolicySettings;

    /// Decides on one request at the request-headers phase. A denial is `Ok`; `Err` means the
    /// policy could not decide, and the adapter fails closed (403, reason `policy-error`).
    ///
    /// # Errors
    /// [`PolicyError`] when the request cannot be evaluated.
    fn evaluate(
        request: &HttpRequest,
        settings: &Self::Settings,
    ) -> Result<HttpVerdict, PolicyError>;
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
