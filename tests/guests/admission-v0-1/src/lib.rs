//! A policy of the world `palisade:admission@0.1.0` (the first release of the admission ABI),
//! on wit-bindgen without the SDK: what a component built before 0.2.0 looks like. It denies
//! objects named `deny-me`, allows the rest, logs each decision through the world's `log`
//! import, and takes one setting, `{"name": "..."}`, to deny another name instead.

#[cfg(target_arch = "wasm32")]
#[expect(
    unsafe_code,
    reason = "wit-bindgen's generated bindings and export functions are unsafe code"
)]
mod component {
    wit_bindgen::generate!({
        world: "admission-policy",
        path: "../../../wit/v0.1.0",
    });

    use exports::palisade::admission::policy::{
        AdmissionRequest, Guest, GuestEvaluator, PolicyError, PolicyMetadata, SettingsError,
        Verdict,
    };
    use palisade::admission::log::{Level, log};

    struct Legacy;

    /// The evaluator: the name it denies.
    struct Denier {
        name: String,
    }

    fn denied_name(settings: &str) -> Result<String, SettingsError> {
        if settings.trim().is_empty() {
            return Ok("deny-me".to_owned());
        }
        let value: serde_json::Value =
            serde_json::from_str(settings).map_err(|e| SettingsError {
                path: String::new(),
                message: e.to_string(),
            })?;
        value
            .get("name")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| SettingsError {
                path: "name".to_owned(),
                message: "must be a string".to_owned(),
            })
    }

    impl Guest for Legacy {
        type Evaluator = Denier;

        fn metadata() -> PolicyMetadata {
            PolicyMetadata {
                name: "admission-v0-1".to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                description: "denies objects by name (world 0.1.0)".to_owned(),
                rules: Vec::new(),
                mutating: false,
            }
        }

        fn validate_settings(settings: String) -> Result<(), SettingsError> {
            denied_name(&settings).map(drop)
        }
    }

    impl GuestEvaluator for Denier {
        fn create(
            settings: String,
        ) -> Result<exports::palisade::admission::policy::Evaluator, SettingsError> {
            Ok(exports::palisade::admission::policy::Evaluator::new(Self {
                name: denied_name(&settings)?,
            }))
        }

        fn validate(&self, request: AdmissionRequest) -> Result<Verdict, PolicyError> {
            let object: serde_json::Value = match &request.object {
                Some(text) => serde_json::from_str(text)
                    .map_err(|e| PolicyError::InvalidRequest(e.to_string()))?,
                None => serde_json::Value::Null,
            };
            let name = object
                .pointer("/metadata/name")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default();
            let allowed = name != self.name;
            log(Level::Info, &format!("{name}: allowed={allowed}"));
            Ok(Verdict {
                allowed,
                reason: if allowed { "allowed" } else { "denied-name" }.to_owned(),
                message: if allowed {
                    String::new()
                } else {
                    format!("objects may not be named {name:?}")
                },
                code: None,
                warnings: Vec::new(),
                audit_annotations: Vec::new(),
                patch: None,
            })
        }
    }

    export!(Legacy);
}
