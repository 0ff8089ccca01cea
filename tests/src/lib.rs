//! Helpers of the end-to-end tests: where the workspace's policies and their built artefacts
//! are. Artefacts are built by `make policies` into `target/policies/<target>/wasm/`.

use anyhow::{Context, bail};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root.
#[must_use]
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The ABI of a policy exported as a `palisade:admission` component.
pub const ADMISSION_COMPONENT: &str = "admission-component";
/// The ABI of a policy exported as a proxy-wasm filter.
pub const PROXY_WASM: &str = "proxy-wasm";

/// A policy crate of the workspace: a directory of `policies/` whose package declares
/// `[package.metadata.policy]` (the ABIs it exports and the target it is built for).
#[derive(Debug, Clone)]
pub struct PolicyCrate {
    /// The crate (and directory) name, e.g. `pod-security`.
    pub name: String,
    /// The crate's directory.
    pub dir: PathBuf,
    /// The ABIs it exports (`abi`), e.g. [`ADMISSION_COMPONENT`] or [`PROXY_WASM`].
    pub abi: Vec<String>,
    /// The target it is built for (`target`), e.g. `wasm32-wasip2`.
    pub target: String,
}

impl PolicyCrate {
    /// Whether the crate exports the ABI `abi`.
    #[must_use]
    pub fn exports(&self, abi: &str) -> bool {
        self.abi.iter().any(|a| a == abi)
    }

    /// Where `make policies` puts the crate's artefact, for its declared target.
    #[must_use]
    pub fn artefact_path(&self) -> PathBuf {
        artefact_for(&self.name, &self.target)
    }

    /// The crate's fixtures directory.
    #[must_use]
    pub fn fixtures(&self) -> PathBuf {
        self.dir.join("fixtures")
    }

    /// Reads the built artefact.
    ///
    /// # Errors
    /// When it has not been built, with the command that builds it.
    pub fn artefact(&self) -> anyhow::Result<Vec<u8>> {
        read_path(&self.artefact_path())
    }
}

/// Where `make policies` puts the artefact of the crate `name` built for `target`:
/// `target/policies/<target>/wasm/<name_with_underscores>.wasm`.
#[must_use]
pub fn artefact_for(name: &str, target: &str) -> PathBuf {
    workspace_root()
        .join("target/policies")
        .join(target)
        .join("wasm")
        .join(format!("{}.wasm", name.replace('-', "_")))
}

/// Where `make policies` puts the component (wasm32-wasip2) of the crate `name`.
#[must_use]
pub fn artefact(name: &str) -> PathBuf {
    artefact_for(name, "wasm32-wasip2")
}

/// Reads the component (wasm32-wasip2) of the crate `name`.
///
/// # Errors
/// When it has not been built, with the command that builds it.
pub fn read_artefact(name: &str) -> anyhow::Result<Vec<u8>> {
    read_path(&artefact(name))
}

fn read_path(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path)
        .with_context(|| format!("reading {} (build it with `make policies`)", path.display()))
}

/// Every policy crate under `policies/` (the SDK is not one), with its declared ABIs and
/// target, as `cargo metadata` reports them (the Makefile reads the same table).
///
/// # Errors
/// When `cargo metadata` fails, a policy table lacks `abi` or `target`, or no policy is found.
pub fn policy_crates() -> anyhow::Result<Vec<PolicyCrate>> {
    let root = workspace_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(&root)
        .output()
        .context("running cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let metadata: Value =
        serde_json::from_slice(&output.stdout).context("parsing cargo metadata's output")?;
    let dir = root.join("policies");
    let mut crates = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let Some(policy) = package["metadata"].get("policy") else {
            continue;
        };
        let manifest = PathBuf::from(package["manifest_path"].as_str().unwrap_or_default());
        let Some(crate_dir) = manifest
            .parent()
            .filter(|d| d.parent() == Some(dir.as_path()))
        else {
            continue;
        };
        let name = package["name"].as_str().unwrap_or_default().to_owned();
        let abi = policy["abi"]
            .as_array()
            .with_context(|| format!("{name}: [package.metadata.policy] has no `abi` list"))?
            .iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect();
        let target = policy["target"]
            .as_str()
            .with_context(|| format!("{name}: [package.metadata.policy] has no `target`"))?
            .to_owned();
        crates.push(PolicyCrate {
            name,
            dir: crate_dir.to_path_buf(),
            abi,
            target,
        });
    }
    crates.sort_by(|a, b| a.name.cmp(&b.name));
    if crates.is_empty() {
        bail!("no policy crates under {}", dir.display());
    }
    Ok(crates)
}
