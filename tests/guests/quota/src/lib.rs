//! An example of the runtime's seams, kept small: one policy crate built for two homes (an
//! admission component and a proxy-wasm filter) from one source, whose logic asks the host for
//! the time and for state shared by every instance (the SDK's token bucket on compare-and-swap
//! state: the component's world imports at admission, proxy-wasm shared data in the proxy).
//!
//! Each caller (the requesting user at admission; the `x-user` header, or else the client's
//! address, in the proxy) may make `requests` requests per `windowSeconds`; past that the
//! request is denied (a 429 in the proxy, with `retry-after`) until the window refills.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::time::Duration;

use palisade_sdk::host::{Take, TokenBucket};
use palisade_sdk::wire::{
    AdmissionRequest, HttpRequest, HttpVerdict, Operation, PolicyMetadata, Rule, Verdict,
};
use palisade_sdk::{AdmissionPolicy, Host, HttpPolicy, PolicyError, PolicySettings, SettingsError};

/// Settings: how many requests per window.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Settings {
    /// Requests allowed per window and caller.
    pub requests: u64,
    /// The window, in seconds: the whole allowance comes back at each window's end.
    pub window_seconds: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            requests: 10,
            window_seconds: 60,
        }
    }
}

impl PolicySettings for Settings {
    fn validate(&self) -> Result<(), SettingsError> {
        if self.requests == 0 {
            return Err(SettingsError::new("requests", "must be at least 1"));
        }
        if self.window_seconds == 0 {
            return Err(SettingsError::new("windowSeconds", "must be at least 1"));
        }
        Ok(())
    }
}

/// The quota policy, in both homes.
pub struct Quota;

/// The prepared settings: the bucket every caller gets.
#[derive(Debug, Clone, Copy)]
pub struct Prepared {
    bucket: TokenBucket,
    window: Duration,
}

fn prepare(settings: Settings) -> Result<Prepared, SettingsError> {
    let window = Duration::from_secs(settings.window_seconds);
    Ok(Prepared {
        bucket: TokenBucket {
            max_tokens: settings.requests,
            tokens_per_fill: settings.requests,
            fill_interval: window,
        },
        window,
    })
}

/// Takes one request from `caller`'s bucket.
fn take(prepared: &Prepared, host: &dyn Host, caller: &str) -> Result<Take, PolicyError> {
    Ok(prepared.bucket.take(host, &format!("quota/{caller}"), 1)?)
}

impl AdmissionPolicy for Quota {
    type Settings = Settings;
    type Prepared = Prepared;

    fn metadata() -> PolicyMetadata {
        PolicyMetadata {
            name: env!("CARGO_PKG_NAME").to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description: env!("CARGO_PKG_DESCRIPTION").to_owned(),
            rules: vec![Rule::new(&["*"], &["*"], &["*"], &[Operation::Create])],
            mutating: false,
        }
    }

    fn prepare(settings: Settings) -> Result<Prepared, SettingsError> {
        prepare(settings)
    }

    fn evaluate(
        request: &AdmissionRequest,
        prepared: &Prepared,
        host: &dyn Host,
    ) -> Result<Verdict, PolicyError> {
        let user = &request.user_info.username;
        let taken = take(prepared, host, user)?;
        let remaining = taken.remaining.to_string();
        if taken.allowed {
            return Ok(Verdict::allow().with_audit_annotation("quota-remaining", remaining));
        }
        host.log(
            palisade_sdk::host::Level::Info,
            &format!("quota exceeded by {user}"),
        );
        Ok(Verdict::deny(
            "quota-exceeded",
            format!(
                "user {user:?} made more than {} requests in {}s; the quota refills in {}s",
                prepared.bucket.max_tokens,
                prepared.window.as_secs(),
                taken.reset.as_secs_f64().ceil()
            ),
        )
        .with_code(429)
        .with_audit_annotation("quota-remaining", remaining))
    }
}

impl HttpPolicy for Quota {
    type Settings = Settings;
    type Prepared = Prepared;

    fn prepare(settings: Settings) -> Result<Prepared, SettingsError> {
        prepare(settings)
    }

    fn evaluate(
        request: &HttpRequest,
        prepared: &Prepared,
        host: &dyn Host,
    ) -> Result<HttpVerdict, PolicyError> {
        let caller = request
            .header("x-user")
            .map(str::to_owned)
            .or_else(|| request.connection.source_address.clone())
            .unwrap_or_default();
        let taken = take(prepared, host, &caller)?;
        if taken.allowed {
            return Ok(HttpVerdict::allow());
        }
        let retry = taken.reset.as_secs_f64().ceil();
        Ok(HttpVerdict::Deny {
            status: 429,
            reason: "quota-exceeded".to_owned(),
            message: format!(
                "{caller:?} made more than {} requests in {}s",
                prepared.bucket.max_tokens,
                prepared.window.as_secs()
            ),
            body: "quota exceeded\n".to_owned(),
            headers: vec![
                ("retry-after".to_owned(), retry.to_string()),
                (
                    "x-ratelimit-remaining".to_owned(),
                    taken.remaining.to_string(),
                ),
            ],
        })
    }
}

#[cfg(all(target_arch = "wasm32", feature = "admission-component"))]
palisade_sdk::export_admission!(Quota);

#[cfg(all(target_arch = "wasm32", feature = "proxy-wasm"))]
palisade_sdk::export_proxy_wasm!(Quota);
