//! Zero-trust access decisions: a request passes only when who sends it, from where, and what it
//! asks for satisfy a rule. The core has no ABI in it: Istio's
//! AuthorizationPolicy semantics ([`authorization`]) over request [`Attributes`] that either
//! home fills in (the proxy filter from the connection, headers and verified token; the admission
//! policy from the API request's user and resource).
//!
//! Sources mirrored (see `README.md` for what differs): istio/api
//! `security/v1beta1/authorization_policy.proto`, istio/istio
//! `pilot/pkg/security/authz/model/{generator,model}.go` and `authz/matcher/*.go`, Envoy's RBAC
//! filter.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod attributes;
pub mod authorization;
pub mod http;
mod settings;

use palisade_sdk::wire::{HttpRequest, HttpVerdict};
use palisade_sdk::{Host, HttpPolicy, PolicyError, SettingsError};

pub use attributes::Attributes;
pub use authorization::{Authorizer, ConfigError, Decision, Effect};
pub use settings::{Audit, DefaultAction, Settings};

/// The zero-trust policy, as exported to every home.
pub struct ZeroTrust;

impl HttpPolicy for ZeroTrust {
    type Settings = Settings;
    type Prepared = http::Prepared;

    fn prepare(settings: Settings) -> Result<http::Prepared, SettingsError> {
        http::prepare(settings)
    }

    fn evaluate(
        request: &HttpRequest,
        prepared: &http::Prepared,
        host: &dyn Host,
    ) -> Result<HttpVerdict, PolicyError> {
        Ok(http::evaluate(request, prepared, host))
    }
}

#[cfg(all(target_arch = "wasm32", feature = "proxy-wasm"))]
palisade_sdk::export_proxy_wasm!(ZeroTrust);
