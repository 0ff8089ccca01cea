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

pub mod admission;
mod attributes;
pub mod audit;
pub mod authentication;
pub mod authorization;
pub mod ext_authz;
pub mod http;
pub mod sensitivity;
mod settings;
#[cfg(feature = "testing")]
pub mod testing;

use palisade_sdk::wire::{
    AdmissionRequest, HttpRequest, HttpVerdict, Operation, PolicyMetadata, Rule, Verdict,
};
use palisade_sdk::{AdmissionPolicy, Host, HttpPolicy, PolicyError, SettingsError};

pub use attributes::{Attributes, LocalTime, Resource};
pub use authentication::{Authenticated, Authenticator, Rejection};
pub use authorization::{Authorizer, ConfigError, Decision, Effect};
pub use settings::{Audit, Compiled, DefaultAction, Jwt, Settings};

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
        http::evaluate(request, prepared, host)
    }

    fn fetches(prepared: &http::Prepared) -> Vec<palisade_sdk::Fetch> {
        let mut fetches = prepared.authenticator.fetches();
        fetches.extend(prepared.device.fetches());
        fetches
    }

    fn fetched(
        prepared: &http::Prepared,
        id: &str,
        body: &[u8],
        _host: &dyn Host,
    ) -> Result<(), String> {
        if prepared.device.fetches_as(id) {
            prepared.device.fetched(id, body)
        } else {
            prepared.authenticator.fetched(id, body)
        }
    }
}

impl AdmissionPolicy for ZeroTrust {
    type Settings = Settings;
    type Prepared = admission::Prepared;

    /// Every resource and subresource, every operation: which requests reach the policy is
    /// the webhook configuration's choice (`palisade webhook-config` narrows it).
    fn metadata() -> PolicyMetadata {
        PolicyMetadata {
            name: env!("CARGO_PKG_NAME").to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description: env!("CARGO_PKG_DESCRIPTION").to_owned(),
            rules: vec![Rule::new(
                &["*"],
                &["*"],
                &["*", "*/*"],
                &[
                    Operation::Create,
                    Operation::Update,
                    Operation::Delete,
                    Operation::Connect,
                ],
            )],
            mutating: false,
        }
    }

    fn prepare(settings: Settings) -> Result<admission::Prepared, SettingsError> {
        admission::prepare(settings)
    }

    fn evaluate(
        request: &AdmissionRequest,
        prepared: &admission::Prepared,
        host: &dyn Host,
    ) -> Result<Verdict, PolicyError> {
        admission::evaluate(request, prepared, host)
    }
}

#[cfg(all(target_arch = "wasm32", feature = "proxy-wasm"))]
palisade_sdk::export_proxy_wasm!(ZeroTrust);
#[cfg(all(target_arch = "wasm32", feature = "admission-component"))]
palisade_sdk::export_admission!(ZeroTrust);
