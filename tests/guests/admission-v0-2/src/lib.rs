//! A policy of the world `palisade:admission@0.2.0` (the release before the `rate-limit`
//! import), on wit-bindgen without the SDK: what a component built before 0.2.1 looks like. It
//! counts the requests it has seen in the host's shared state (the `state` import, under the key
//! `seen`) and denies every request after the first `limit` (setting `{"limit": N}`, default 2),
//! so a test sees that its capabilities still reach the host.

#[cfg(target_arch = "wasm32")]
#[expect(
    unsafe_code,
    reason = "wit-bindgen's generated bindings and export functions are unsafe code"
)]
mod component {
    wit_bindgen::generate!({
        world: "admission-policy",
        path: "../../../wit/v0.2.0",
    });

    use exports::palisade::admission::policy::{
        AdmissionRequest, Guest, GuestEvaluator, PolicyError, PolicyMetadata, SettingsError,
        Verdict,
    };
    use palisade::admission::state;

    struct Counter;

    /// The evaluator: how many requests pass.
    struct Limit {
        limit: u64,
    }

    fn limit(settings: &str) -> Result<u64, SettingsError> {
        if settings.trim().is_empty() {
            return Ok(2);
        }
        let value: serde_json::Value =
            serde_json::from_str(settings).map_err(|e| SettingsError {
                path: String::new(),
                message: e.to_string(),
            })?;
        value
            .get("limit")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| SettingsError {
                path: "limit".to_owned(),
                message: "must be a whole number".to_owned(),
            })
    }

    /// Adds one to the counter `seen` with compare-and-swap; its new value.
    fn count() -> Result<u64, PolicyError> {
        let internal = |e: palisade::admission::types::CapabilityError| {
            PolicyError::Internal(format!("state: {e:?}"))
        };
        loop {
            let current = state::get("seen").map_err(internal)?;
            let seen = current
                .as_ref()
                .and_then(|e| <[u8; 8]>::try_from(e.value.as_slice()).ok())
                .map_or(0, u64::from_le_bytes)
                .saturating_add(1);
            let cas = current.map_or(0, |e| e.cas);
            if state::set("seen", &seen.to_le_bytes(), cas).map_err(internal)? {
                return Ok(seen);
            }
        }
    }

    impl Guest for Counter {
        type Evaluator = Limit;

        fn metadata() -> PolicyMetadata {
            PolicyMetadata {
                name: "admission-v0-2".to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                description: "counts requests in the host's state (world 0.2.0)".to_owned(),
                rules: Vec::new(),
                mutating: false,
            }
        }

        fn validate_settings(settings: String) -> Result<(), SettingsError> {
            limit(&settings).map(drop)
        }
    }

    impl GuestEvaluator for Limit {
        fn create(
            settings: String,
        ) -> Result<exports::palisade::admission::policy::Evaluator, SettingsError> {
            Ok(exports::palisade::admission::policy::Evaluator::new(Self {
                limit: limit(&settings)?,
            }))
        }

        fn validate(&self, _request: AdmissionRequest) -> Result<Verdict, PolicyError> {
            let seen = count()?;
            let allowed = seen <= self.limit;
            Ok(Verdict {
                allowed,
                reason: if allowed { "allowed" } else { "over-limit" }.to_owned(),
                message: if allowed {
                    String::new()
                } else {
                    format!("request {seen} is over the limit of {}", self.limit)
                },
                code: None,
                warnings: Vec::new(),
                audit_annotations: Vec::new(),
                patch: None,
            })
        }
    }

    export!(Counter);
}
