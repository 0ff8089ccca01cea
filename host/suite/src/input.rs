//! Reading the files suites and the command line name: JSON or YAML documents (chosen by
//! extension, YAML being a superset), AdmissionReviews, proxy scenarios and modules, with errors
//! that name the file and, for malformed content, the field, line and column.

use std::path::Path;

use palisade_runtime::admission::review::{self, Review};
use serde::de::DeserializeOwned;

use crate::SuiteError;

fn read_text(path: &Path) -> Result<String, SuiteError> {
    std::fs::read_to_string(path).map_err(|source| SuiteError::Read {
        path: path.to_owned(),
        source,
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
    let text = read_text(path)?;
    let parse = |message: String| SuiteError::Parse {
        path: path.to_owned(),
        message,
    };
    if is_json(path) {
        let mut deserializer = serde_json::Deserializer::from_str(&text);
        serde_path_to_error::deserialize(&mut deserializer)
            .map_err(|e| parse(located(&e.path().to_string(), e.inner().to_string())))
    } else {
        let deserializer = serde_yaml::Deserializer::from_str(&text);
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
        serde_json::from_str::<serde::de::IgnoredAny>(&text).map_err(|e| SuiteError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
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
/// [`SuiteError::Read`].
pub fn read_module(path: &Path) -> Result<Vec<u8>, SuiteError> {
    std::fs::read(path).map_err(|source| SuiteError::Read {
        path: path.to_owned(),
        source,
    })
}
