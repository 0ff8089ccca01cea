//! Policy settings: parsed from JSON once, validated before any request is evaluated.

use serde::de::DeserializeOwned;

/// Settings of a policy. Implement with serde (`deny_unknown_fields`) plus [`validate`](Self::validate).
pub trait PolicySettings: DeserializeOwned + Default {
    /// Checks what serde cannot (ranges, formats, combinations).
    ///
    /// # Errors
    /// [`SettingsError`] naming the offending setting.
    fn validate(&self) -> Result<(), SettingsError>;
}

/// Settings that cannot be used, with the path of the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
pub struct SettingsError {
    /// Dotted path of the offending setting (`exemptions.usernames[0]`); empty for the whole document.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl SettingsError {
    /// An error about the setting at `path`.
    #[must_use]
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Parses and validates settings from JSON text; empty text or `null` means the defaults.
///
/// ```
/// use palisade_sdk::{parse_settings, PolicySettings, SettingsError};
/// #[derive(Default, serde::Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct S { limit: u32 }
/// impl PolicySettings for S {
///     fn validate(&self) -> Result<(), SettingsError> {
///         if self.limit == 0 { return Err(SettingsError::new("limit", "must be positive")) }
///         Ok(())
///     }
/// }
/// assert_eq!(parse_settings::<S>(r#"{"limit": 3}"#).unwrap().limit, 3);
/// assert_eq!(parse_settings::<S>(r#"{"limit": 0}"#).err().unwrap().to_string(), "limit: must be positive");
/// let err = parse_settings::<S>(r#"{"limit": "x"}"#).err().unwrap();
/// assert_eq!(err.path, "limit");
/// ```
///
/// # Errors
/// [`SettingsError`] with the JSON path when the text does not parse into `S`, or whatever
/// `S::validate` reports.
pub fn parse_settings<S: PolicySettings>(json: &str) -> Result<S, SettingsError> {
    let trimmed = json.trim();
    let settings = if trimmed.is_empty() || trimmed == "null" {
        S::default()
    } else {
        let mut deserializer = serde_json::Deserializer::from_str(trimmed);
        let parsed: S = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            SettingsError::new(path, e.into_inner().to_string())
        })?;
        deserializer
            .end()
            .map_err(|e| SettingsError::new("", e.to_string()))?;
        parsed
    };
    settings.validate()?;
    Ok(settings)
}
