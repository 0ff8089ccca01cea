//! What the CLI's test modules share: the workspace, built policies, the command.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// The workspace's root.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A built policy (`make policies`): `target/policies/<home>/<file>`.
pub(crate) fn built(home: &str, file: &str) -> PathBuf {
    let path = root().join("target/policies").join(home).join(file);
    assert!(
        path.is_file(),
        "{} is missing: run `make policies`",
        path.display()
    );
    path
}

/// `palisade istio --config <config> <extra args> <module>` as an example's README shows it:
/// it must succeed; the WasmPlugin it prints.
pub(crate) fn istio_plugin(
    cache: &tempfile::TempDir,
    config: &Path,
    args: &[&str],
    module: &Path,
) -> serde_json::Value {
    let output = palisade(cache)
        .arg("istio")
        .arg("--config")
        .arg(config)
        .args(args)
        .arg(module)
        .output()
        .expect("runs");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}: {}",
        config.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_yaml::from_slice(&output.stdout).expect("WasmPlugin YAML")
}

/// The command with its own empty cache, so tests never share state.
pub(crate) fn palisade(cache: &tempfile::TempDir) -> Command {
    let mut cmd = Command::cargo_bin("palisade").expect("binary");
    cmd.env("PALISADE_CACHE_DIR", cache.path())
        .env_remove("PALISADE_LOG");
    cmd
}
