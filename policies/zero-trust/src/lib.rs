//! Zero-trust access decisions: a request passes only when who sends it, from where, and what it
//! asks for satisfy a rule. This crate is the core, with no ABI in it: Istio's
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

pub use attributes::Attributes;
pub use authorization::{Authorizer, ConfigError, Decision, Effect};
