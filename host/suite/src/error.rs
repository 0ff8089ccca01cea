//! Why a suite could not be run: its inputs, never its expectations.

use std::path::PathBuf;

/// An input of a suite run that cannot be used, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// A file cannot be read.
    #[error("reading {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file is larger than the input limit (`palisade --max-input-bytes`).
    #[error("reading {path}: larger than the input limit of {limit} bytes (--max-input-bytes)")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit it passed.
        limit: u64,
    },
    /// A file is not valid JSON or YAML of the expected shape.
    #[error("parsing {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What and where (field path, line and column).
        message: String,
    },
    /// A suite is inconsistent (no cases, a case with neither request nor scenario, ...).
    #[error("suite {path}: {message}")]
    Invalid {
        /// The suite file.
        path: PathBuf,
        /// What is wrong and where.
        message: String,
    },
    /// The suite's policy module cannot be loaded.
    #[error("loading policy {module} of suite {suite}")]
    Load {
        /// The module.
        module: PathBuf,
        /// The suite naming it.
        suite: PathBuf,
        /// Why.
        #[source]
        source: palisade_runtime::LoadError,
    },
}
