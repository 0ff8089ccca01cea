//! A test guest for the SDK's gRPC callouts (`Callout::grpc`) through the proxy-wasm adapter:
//! every request asks the cluster `cluster` `test.Probe/Ask` with the message `asked <path>`
//! and the metadata `x-probe: 1`, then:
//! - gRPC OK: the request goes upstream with `x-grpc-reply` (the response message, as text)
//!   and `x-grpc-reply-bytes` (its length);
//! - any other gRPC status: 503 with body `grpc <code>: <message>`;
//! - no answer at all (the proxy refused the call): 502 `refused`.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use palisade_sdk::wire::{Callout, HeaderChange, HttpRequest, HttpVerdict};
use palisade_sdk::{Host, HttpPolicy, PolicyError, PolicySettings, SettingsError};

/// Where to call, and how long to wait.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Settings {
    /// The upstream cluster.
    pub cluster: String,
    /// The call's timeout.
    pub timeout_ms: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            cluster: "probe".into(),
            timeout_ms: 100,
        }
    }
}

impl PolicySettings for Settings {
    fn validate(&self) -> Result<(), SettingsError> {
        Ok(())
    }
}

/// The probe.
pub struct GrpcProbe;

impl HttpPolicy for GrpcProbe {
    type Settings = Settings;
    type Prepared = Settings;

    fn prepare(settings: Settings) -> Result<Settings, SettingsError> {
        Ok(settings)
    }

    fn evaluate(
        request: &HttpRequest,
        settings: &Settings,
        _host: &dyn Host,
    ) -> Result<HttpVerdict, PolicyError> {
        let Some(answer) = request.answer("probe") else {
            let mut callout = Callout::grpc(
                "probe",
                settings.cluster.clone(),
                ("test.Probe", "Ask"),
                format!("asked {}", request.path).into_bytes(),
                settings.timeout_ms,
            );
            callout.headers.push(("x-probe".into(), "1".into()));
            return Ok(HttpVerdict::Call { callout });
        };
        let deny = |status: u16, body: String| HttpVerdict::Deny {
            status,
            reason: "grpc-probe".into(),
            message: body.clone(),
            body,
            headers: Vec::new(),
        };
        Ok(match answer.grpc_status {
            Some(0) => HttpVerdict::Continue {
                request_headers: vec![
                    HeaderChange::set(
                        "x-grpc-reply",
                        String::from_utf8_lossy(&answer.message).into_owned(),
                    ),
                    HeaderChange::set("x-grpc-reply-bytes", answer.message.len().to_string()),
                ],
                response_headers: Vec::new(),
            },
            Some(code) => deny(503, format!("grpc {code}: {}", answer.grpc_message)),
            None => deny(502, "refused".into()),
        })
    }
}

#[cfg(all(target_arch = "wasm32", feature = "proxy-wasm"))]
palisade_sdk::export_proxy_wasm!(GrpcProbe);
