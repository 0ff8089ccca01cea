#![doc = include_str!("../README.md")]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use palisade_sdk::wire::{HeaderChange, HttpRequest, HttpVerdict};
use palisade_sdk::{Host, HttpPolicy, PolicyError, SettingsError};

mod pattern;
mod settings;

pub use palisade_sdk::path::normalise;
pub use pattern::{PathPattern, PatternError};
pub use settings::Settings;

/// The reason of a denial by `denyPaths`.
pub const DENIED_PATH: &str = "denied-path";

/// The request guard, as exported to every ABI.
pub struct RequestGuard;

impl HttpPolicy for RequestGuard {
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
        evaluate(request, settings)
    }
}

/// Decides on one request: a denial when its normalised path matches a `denyPaths` entry,
/// otherwise continue, adding a request id (a UUID v4 made of the request's nonce) when the
/// request has none. With `echoRequestId`, the response (or the denial) carries the id too.
///
/// # Errors
/// None: every request gets a verdict. The `Result` is the shape every policy's `evaluate` has.
pub fn evaluate(request: &HttpRequest, settings: &Settings) -> Result<HttpVerdict, PolicyError> {
    let header = settings.request_id_header.as_str();
    // An empty id is no id: it is replaced, like a missing one.
    let existing = request.header(header).filter(|id| !id.is_empty());
    let request_id = existing.map_or_else(|| request.nonce.uuid_v4(), str::to_owned);
    let echo = settings
        .echo_request_id
        .then(|| (header.to_owned(), request_id.clone()));

    if let Some(message) = denied_path(&request.path, settings) {
        return Ok(HttpVerdict::Deny {
            status: settings.deny_status,
            reason: DENIED_PATH.to_owned(),
            message,
            body: settings.deny_body.clone(),
            headers: echo.into_iter().collect(),
        });
    }
    let request_headers = match existing {
        Some(_) => Vec::new(),
        None => vec![HeaderChange::set(header, request_id)],
    };
    Ok(HttpVerdict::Continue {
        request_headers,
        response_headers: echo
            .map(|(name, id)| HeaderChange::set(name, id))
            .into_iter()
            .collect(),
    })
}

/// The message of a denial when a normalised form of `path` matches a `denyPaths` entry: the
/// first entry, in order, that matches either form.
fn denied_path(path: &str, settings: &Settings) -> Option<String> {
    let forms = normalise(path);
    let (index, rule, form) =
        settings
            .deny_paths
            .iter()
            .enumerate()
            .find_map(|(index, rule)| {
                let form = forms.iter().find(|form| rule.matches(form))?;
                Some((index, rule, form))
            })?;
    let as_sent = path.split(['?', '#']).next().unwrap_or(path);
    let rule = format!("denyPaths[{index}] {:?}", rule.to_string());
    Some(if as_sent == form {
        format!("path {form:?} matches {rule}")
    } else {
        format!("path {as_sent:?} normalises to {form:?}, which matches {rule}")
    })
}

#[cfg(all(target_arch = "wasm32", feature = "proxy-wasm"))]
palisade_sdk::export_proxy_wasm!(RequestGuard);
