//! Reading the user's files: JSON or YAML (chosen by extension, YAML being a superset), with
//! errors that name the file, line and column.

use anyhow::Context;
use serde::de::DeserializeOwned;
use std::path::Path;

/// Reads a JSON or YAML file into `T`.
pub(crate) fn read_document<T: DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_document(&text, path)
}

/// Parses JSON or YAML text; `path` names the source in errors and picks the parser.
pub(crate) fn parse_document<T: DeserializeOwned>(text: &str, path: &Path) -> anyhow::Result<T> {
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        serde_json::from_str(text).with_context(|| format!("parsing {} as JSON", path.display()))
    } else {
        serde_yaml::from_str(text).with_context(|| format!("parsing {} as YAML", path.display()))
    }
}

/// Reads a JSON or YAML file and returns it as compact JSON text (how policies receive
/// settings and objects).
pub(crate) fn read_as_json(path: &Path) -> anyhow::Result<String> {
    let value: serde_json::Value = read_document(path)?;
    Ok(value.to_string())
}

/// Reads a policy module.
pub(crate) fn read_module(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading policy {}", path.display()))
}
