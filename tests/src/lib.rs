//! Helpers of the end-to-end tests: where the workspace's policies and their built artefacts
//! are. Artefacts are built by `make policies` into `target/policies/<target>/wasm/`.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};

/// The workspace root.
#[must_use]
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// A policy crate of the workspace: a directory of `policies/` (or `tests/guests/`) with a
/// `Cargo.toml` that declares `[package.metadata.policy]`.
#[derive(Debug, Clone)]
pub struct PolicyCrate {
    /// The crate (and directory) name, e.g. `pod-security`.
    pub name: String,
    /// The crate's directory.
    pub dir: PathBuf,
}

impl PolicyCrate {
    /// The component built for wasm32-wasip2 with the `wasm` profile.
    #[must_use]
    pub fn component_path(&self) -> PathBuf {
        artefact(&self.name)
    }

    /// The crate's fixtures directory.
    #[must_use]
    pub fn fixtures(&self) -> PathBuf {
        self.dir.join("fixtures")
    }

    /// Reads the built component.
    ///
    /// # Errors
    /// When it has not been built, with the command that builds it.
    pub fn component(&self) -> anyhow::Result<Vec<u8>> {
        read_artefact(&self.name)
    }
}

/// Where `make policies` puts the component of the crate `name`.
#[must_use]
pub fn artefact(name: &str) -> PathBuf {
    workspace_root()
        .join("target/policies/wasm32-wasip2/wasm")
        .join(format!("{}.wasm", name.replace('-', "_")))
}

/// Reads the component of the crate `name`.
///
/// # Errors
/// When it has not been built, with the command that builds it.
pub fn read_artefact(name: &str) -> anyhow::Result<Vec<u8>> {
    let path = artefact(name);
    std::fs::read(&path)
        .with_context(|| format!("reading {} (build it with `make policies`)", path.display()))
}

/// Every policy crate under `policies/` (the SDK is not one).
///
/// # Errors
/// When `policies/` cannot be read or no policy is found.
pub fn policy_crates() -> anyhow::Result<Vec<PolicyCrate>> {
    let dir = workspace_root().join("policies");
    let mut crates = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let manifest = path.join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        if text.contains("[package.metadata.policy]") {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            crates.push(PolicyCrate { name, dir: path });
        }
    }
    crates.sort_by(|a, b| a.name.cmp(&b.name));
    if crates.is_empty() {
        bail!("no policy crates under {}", dir.display());
    }
    Ok(crates)
}
