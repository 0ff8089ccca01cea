//! Reading the files suites and the command line name: JSON or YAML documents (chosen by
//! extension, YAML being a superset), AdmissionReviews, proxy scenarios and modules, with errors
//! that name the file and, for malformed content, the field, line and column.

use std::io::Read as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use palisade_runtime::admission::review::{self, Review};
use palisade_runtime::documents::unique_keys;
use serde::Deserialize as _;
use serde::de::DeserializeOwned;

use crate::SuiteError;

/// The default of [`set_input_limit`]: 64 MiB, twenty times the API server's largest request.
pub const DEFAULT_INPUT_LIMIT: u64 = 64 << 20;

static INPUT_LIMIT: AtomicU64 = AtomicU64::new(DEFAULT_INPUT_LIMIT);

/// Sets the largest file (request, settings, suite, scenario, module) the readers here accept;
/// a larger one is [`SuiteError::TooLarge`] after reading at most `limit + 1` bytes, so
/// `--request /dev/zero` is an error, not a process that grows until it is killed.
pub fn set_input_limit(limit: u64) {
    INPUT_LIMIT.store(limit, Ordering::Relaxed);
}

/// Reads a whole file, up to the input limit.
///
/// # Errors
/// [`SuiteError::Read`] or [`SuiteError::TooLarge`].
pub fn read_bytes(path: &Path) -> Result<Vec<u8>, SuiteError> {
    let limit = INPUT_LIMIT.load(Ordering::Relaxed);
    let read_error = |source| SuiteError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > limit {
        return Err(SuiteError::TooLarge {
            path: path.to_owned(),
            limit,
        });
    }
    Ok(bytes)
}

/// Reads a whole UTF-8 text file, up to the input limit.
///
/// # Errors
/// [`SuiteError::Read`], [`SuiteError::TooLarge`] or [`SuiteError::Parse`] (not UTF-8).
pub fn read_text(path: &Path) -> Result<String, SuiteError> {
    String::from_utf8(read_bytes(path)?).map_err(|e| SuiteError::Parse {
        path: path.to_owned(),
        message: format!("not UTF-8 text: {e}"),
    })
}

fn is_json(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

/// Reads a JSON or YAML file into `T`, naming the field that does not fit.
///
/// # Errors
/// [`SuiteError::Read`] or [`SuiteError::Parse`].
pub fn read_document<T: DeserializeOwned>(path: &Path) -> Result<T, SuiteError> {
    parse_document(path, &read_text(path)?)
}

/// Reads every document of a YAML (or JSON) file, skipping empty ones (`---` at the end).
///
/// # Errors
/// [`SuiteError::Read`] or [`SuiteError::Parse`] naming the document (1-based) that does not
/// parse.
pub fn read_documents(path: &Path) -> Result<Vec<serde_json::Value>, SuiteError> {
    let text = read_text(path)?;
    if is_json(path) {
        return parse_document(path, &text).map(|v| vec![v]);
    }
    let mut documents = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(&text).enumerate() {
        let value = serde_json::Value::deserialize(document).map_err(|e| SuiteError::Parse {
            path: path.to_owned(),
            message: format!("document {}: {e}", index.saturating_add(1)),
        })?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

/// Reads `text`, the content of `path`, into `T` as [`read_document`] does: JSON when the path
/// ends in `.json`, YAML otherwise; duplicate keys refused; errors name the field.
///
/// # Errors
/// [`SuiteError::Parse`].
pub fn parse_document<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, SuiteError> {
    let parse = |message: String| SuiteError::Parse {
        path: path.to_owned(),
        message,
    };
    if is_json(path) {
        unique_keys(&mut serde_json::Deserializer::from_str(text))
            .map_err(|e| parse(e.to_string()))?;
        let mut deserializer = serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(&mut deserializer)
            .map_err(|e| parse(located(&e.path().to_string(), e.inner().to_string())))
    } else {
        unique_keys(serde_yaml::Deserializer::from_str(text)).map_err(|e| parse(e.to_string()))?;
        let deserializer = serde_yaml::Deserializer::from_str(text);
        serde_path_to_error::deserialize(deserializer)
            .map_err(|e| parse(located(&e.path().to_string(), e.inner().to_string())))
    }
}

/// `field: message`, or the message alone for the whole document.
fn located(path: &str, message: String) -> String {
    if path == "." || path.is_empty() {
        message
    } else {
        format!("{path}: {message}")
    }
}

/// Reads a JSON or YAML file as compact JSON text (how policies receive settings and objects).
///
/// # Errors
/// As [`read_document`].
pub fn read_as_json(path: &Path) -> Result<String, SuiteError> {
    if is_json(path) {
        let text = read_text(path)?;
        unique_keys(&mut serde_json::Deserializer::from_str(&text)).map_err(|e| {
            SuiteError::Parse {
                path: path.to_owned(),
                message: e.to_string(),
            }
        })?;
        return Ok(text);
    }
    let value: serde_json::Value = read_document(path)?;
    Ok(value.to_string())
}

/// Reads an AdmissionReview or AdmissionRequest: JSON as it is (the policy sees the bytes the
/// API server would send), YAML converted to JSON.
///
/// # Errors
/// As [`read_document`], and [`SuiteError::Parse`] when it is not a review.
pub fn read_request(path: &Path) -> Result<Review, SuiteError> {
    let json = read_as_json(path)?;
    review::parse(&json).map_err(|e| SuiteError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// Reads a policy module's bytes.
///
/// # Errors
/// [`SuiteError::Read`] or [`SuiteError::TooLarge`].
pub fn read_module(path: &Path) -> Result<Vec<u8>, SuiteError> {
    read_bytes(path)
}
