//! Settings kept in files: a server configuration or a suite names files and directories, and
//! their YAML or JSON documents become settings (`settingsFrom`), so a Gatekeeper user's
//! templates and Constraints stay the files they already have.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where one setting is read from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum SettingsSource {
    /// One file holding one document: the setting is that document.
    File(PathBuf),
    /// Files and directories: the setting is the list of every document in them, directories
    /// walked in name order (`.yaml`, `.yml` and `.json` files).
    Files(Vec<PathBuf>),
}

/// Why settings could not be read from their files.
#[derive(Debug, thiserror::Error)]
pub enum SettingsFileError {
    /// A file or directory cannot be read.
    #[error("reading {path}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file's content is not what the setting needs.
    #[error("parsing {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What and where.
        message: String,
    },
    /// The settings and the files disagree.
    #[error("{0}")]
    Invalid(String),
}

/// Adds each setting of `sources` (paths relative to `base`) to `settings`, which must be a
/// mapping or null. Returns every file and directory read, for a server to watch.
///
/// # Errors
/// [`SettingsFileError`] naming the file, or the setting given both inline and from files.
pub fn add_settings_from(
    settings: &mut serde_json::Value,
    sources: &BTreeMap<String, SettingsSource>,
    base: &Path,
) -> Result<Vec<PathBuf>, SettingsFileError> {
    let mut read = Vec::new();
    if sources.is_empty() {
        return Ok(read);
    }
    if settings.is_null() {
        *settings = serde_json::Value::Object(serde_json::Map::new());
    }
    let Some(settings) = settings.as_object_mut() else {
        return Err(SettingsFileError::Invalid(
            "settingsFrom needs settings to be a mapping (or absent)".to_owned(),
        ));
    };
    for (key, source) in sources {
        if settings.contains_key(key) {
            return Err(SettingsFileError::Invalid(format!(
                "the setting {key:?} is given both in settings and in settingsFrom"
            )));
        }
        let value = match source {
            SettingsSource::File(file) => {
                let path = base.join(file);
                read.push(path.clone());
                let mut documents = read_documents(&path)?;
                if documents.len() != 1 {
                    return Err(SettingsFileError::Parse {
                        message: format!(
                            "settingsFrom.{key}: expected one document, found {}",
                            documents.len()
                        ),
                        path,
                    });
                }
                documents.remove(0)
            }
            SettingsSource::Files(paths) => {
                let mut all = Vec::new();
                for path in paths {
                    let path = base.join(path);
                    let files = yaml_files(&path)?;
                    if path.is_dir() {
                        read.push(path);
                    }
                    for file in files {
                        all.extend(read_documents(&file)?);
                        read.push(file);
                    }
                }
                serde_json::Value::Array(all)
            }
        };
        settings.insert(key.clone(), value);
    }
    Ok(read)
}

/// The file itself, or the YAML and JSON files under a directory, in name order.
///
/// # Errors
/// [`SettingsFileError::Read`] when a directory cannot be listed.
pub fn yaml_files(path: &Path) -> Result<Vec<PathBuf>, SettingsFileError> {
    // Subdirectories count too: a server watching the directories sees files added anywhere.
    if !path.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let read = |dir: &Path| {
        let dir = dir.to_owned();
        move |source| SettingsFileError::Read { path: dir, source }
    };
    let mut files = Vec::new();
    let mut pending = vec![path.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(read(&dir))? {
            let path = entry.map_err(read(&dir))?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
            {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Every non-empty document of a YAML (or JSON) file; a key given twice in a mapping is refused.
///
/// # Errors
/// [`SettingsFileError`] naming the file and, for malformed content, the line and column.
pub fn read_documents(path: &Path) -> Result<Vec<serde_json::Value>, SettingsFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| SettingsFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let parse = |message: String| SettingsFileError::Parse {
        path: path.to_owned(),
        message,
    };
    for document in serde_yaml::Deserializer::from_str(&text) {
        super::unique_keys(document).map_err(|e| parse(e.to_string()))?;
    }
    let mut documents = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_json::Value::deserialize(document).map_err(|e| parse(e.to_string()))?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}
