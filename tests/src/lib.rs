//! Helpers of the end-to-end tests: where the workspace's policies and their built artefacts
//! are. Artefacts are built by `make policies` into `target/policies/<home>/`.

pub mod registry;

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

/// The file `make test` reads, after the tests, to say which were skipped and why.
#[must_use]
pub fn skip_log() -> PathBuf {
    workspace_root().join("target/test-skips.log")
}

/// Records that the calling test did not run because of `reason` (a missing outside program):
/// a line in [`skip_log`], named after the test (the test harness names each test's thread
/// after it), which `make test` prints in its closing summary, so a skip never reads as a pass.
/// Also said on stderr.
pub fn skip(reason: &str) {
    use std::io::Write;
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    eprintln!("skipped {test}: {reason}");
    let line = format!("{test}: {reason}\n");
    let written = std::fs::create_dir_all(workspace_root().join("target")).and_then(|()| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(skip_log())?
            .write_all(line.as_bytes())
    });
    if let Err(e) = written {
        eprintln!("could not record the skip in {}: {e}", skip_log().display());
    }
}

/// The home of a policy exported as a `palisade:admission` component.
pub const ADMISSION_COMPONENT: &str = "admission-component";
/// The home of a policy exported as a proxy-wasm filter.
pub const PROXY_WASM: &str = "proxy-wasm";
/// The home of a policy exported as a Kubewarden waPC module.
pub const KUBEWARDEN: &str = "kubewarden";

/// A crate of the workspace that declares `[package.metadata.policy]`: the homes it is built
/// for, each with its target. Policies live under `policies/`; test guests under `tests/guests/`.
#[derive(Debug, Clone)]
pub struct PolicyCrate {
    /// The crate (and directory) name, e.g. `pod-security`.
    pub name: String,
    /// The crate's directory.
    pub dir: PathBuf,
    /// Its homes and the target each is built for, e.g. `admission-component` on `wasm32-wasip2`.
    pub homes: Vec<(String, String)>,
}

impl PolicyCrate {
    /// Whether the crate is built for the home `home`.
    #[must_use]
    pub fn exports(&self, home: &str) -> bool {
        self.homes.iter().any(|(h, _)| h == home)
    }

    /// Whether it is a policy of the product (under `policies/`), not a test guest.
    #[must_use]
    pub fn is_policy(&self) -> bool {
        self.dir.parent() == Some(workspace_root().join("policies").as_path())
    }

    /// Where `make policies` puts the crate's artefact for `home`.
    #[must_use]
    pub fn artefact_path(&self, home: &str) -> PathBuf {
        artefact_for(&self.name, home)
    }

    /// The crate's fixtures of a home's kind: `fixtures/admission` for admission homes,
    /// `fixtures/http` for proxy filters.
    #[must_use]
    pub fn fixtures(&self, home: &str) -> PathBuf {
        let kind = if home == PROXY_WASM {
            "http"
        } else {
            "admission"
        };
        self.dir.join("fixtures").join(kind)
    }

    /// Reads the artefact built for `home`.
    ///
    /// # Errors
    /// When it has not been built, with the command that builds it.
    pub fn artefact(&self, home: &str) -> anyhow::Result<Vec<u8>> {
        read_path(&self.artefact_path(home))
    }
}

/// Where `make policies` puts the artefact of the crate `name` built for `home`:
/// `target/policies/<home>/<name_with_underscores>.wasm`.
#[must_use]
pub fn artefact_for(name: &str, home: &str) -> PathBuf {
    workspace_root()
        .join("target/policies")
        .join(home)
        .join(format!("{}.wasm", name.replace('-', "_")))
}

/// Where `make policies` puts the admission component of the crate `name`.
#[must_use]
pub fn artefact(name: &str) -> PathBuf {
    artefact_for(name, ADMISSION_COMPONENT)
}

/// Reads the admission component of the crate `name`.
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

/// Every crate of the workspace that declares `[package.metadata.policy]`, with its homes, as
/// `cargo metadata` reports them (the Makefile reads the same table).
///
/// # Errors
/// When `cargo metadata` fails, a policy table has no `homes`, or no policy is found.
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
    let mut crates = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let Some(policy) = package["metadata"].get("policy") else {
            continue;
        };
        let manifest = PathBuf::from(package["manifest_path"].as_str().unwrap_or_default());
        let name = package["name"].as_str().unwrap_or_default().to_owned();
        let homes = policy["homes"]
            .as_object()
            .with_context(|| format!("{name}: [package.metadata.policy] has no `homes` table"))?
            .iter()
            .map(|(home, target)| {
                let target = target
                    .as_str()
                    .with_context(|| format!("{name}: home {home} has no target"))?;
                Ok((home.clone(), target.to_owned()))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        crates.push(PolicyCrate {
            name,
            dir: manifest.parent().map(Path::to_path_buf).unwrap_or_default(),
            homes,
        });
    }
    crates.sort_by(|a, b| a.name.cmp(&b.name));
    if !crates.iter().any(PolicyCrate::is_policy) {
        bail!("no policy crates under {}", root.join("policies").display());
    }
    Ok(crates)
}
