//! The filter's settings (the plugin configuration): parsed and validated once, when the proxy
//! configures the filter; a request never sees an invalid setting.

use palisade_sdk::{PolicySettings, SettingsError};
use serde::Deserialize;

use crate::PathPattern;

/// Settings of the `request-guard` filter.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Settings {
    /// The header that carries the request id (lower-case); `x-request-id` by default.
    pub request_id_header: String,
    /// Paths to deny, in Istio's string-match forms: exact `/admin`, prefix `/admin/*`,
    /// suffix `*.php`, any path `*`; matched against the normalised path. None by default.
    pub deny_paths: Vec<PathPattern>,
    /// The status of a denial (400..=599); 403 by default.
    pub deny_status: u16,
    /// The body of a denial; `access denied` and a newline by default.
    pub deny_body: String,
    /// Whether responses (denials included) carry the request id header; true by default.
    pub echo_request_id: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            request_id_header: "x-request-id".to_owned(),
            deny_paths: Vec::new(),
            deny_status: 403,
            deny_body: "access denied\n".to_owned(),
            echo_request_id: true,
        }
    }
}

impl PolicySettings for Settings {
    /// Checks what serde does not: the header name and the status range. (`denyPaths` entries
    /// are checked as they are parsed, see [`PathPattern`].)
    fn validate(&self) -> Result<(), SettingsError> {
        if !is_lower_case_token(&self.request_id_header) {
            return Err(SettingsError::new(
                "requestIdHeader",
                format!(
                    "{:?} is not a lower-case header name (an RFC 9110 token)",
                    self.request_id_header
                ),
            ));
        }
        if !(400..=599).contains(&self.deny_status) {
            return Err(SettingsError::new(
                "denyStatus",
                format!(
                    "{} is not an error status: must be 400..=599",
                    self.deny_status
                ),
            ));
        }
        Ok(())
    }
}

/// A header name as Envoy stores it: a non-empty RFC 9110 token (section 5.6.2) without
/// upper-case letters.
fn is_lower_case_token(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
        })
}
