//! Golden tests of the proxy-wasm host: every scenario in `tests/proxy-scenarios/` runs through
//! the probe filter (`tests/guests/proxy-probe`, built with the official Rust SDK) and its report
//! must equal `<scenario>.expected.json`. `PALISADE_BLESS=1` rewrites the expected files.
//! Every scenario also checks that the SDK never met a status it does not expect (it panics
//! with "unexpected status" when a host answers what Envoy would not).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use libtest_mimic::{Failed, Trial};
use palisade_proxy::{Filter, RunOptions, Scenario, run};
use palisade_runtime::{Engine, EngineConfig, Limits};

fn scenarios_dir() -> PathBuf {
    e2e::workspace_root().join("tests/proxy-scenarios")
}

fn check(filter: &Filter, path: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let scenario: Scenario =
        serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let options = RunOptions {
        limits: Limits {
            timeout: Duration::from_millis(200),
            memory: 64 << 20,
        },
        trace: false,
    };
    let (report, _) = run(filter, &scenario, options);
    let actual = serde_json::to_value(&report)?;
    for line in &report.logs {
        if line.message.contains("unexpected status") {
            bail!(
                "the SDK met a status Envoy would not return: {}",
                line.message
            );
        }
    }
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let expects_failure = name.starts_with("trap-") || name == "limits";
    if !expects_failure && !report.failures.is_empty() {
        bail!("unexpected VM failure: {:?}", report.failures);
    }
    let expected_path = path.with_file_name(format!("{name}.expected.json"));
    let rendered = serde_json::to_string_pretty(&actual)? + "\n";
    if std::env::var_os("PALISADE_BLESS").is_some() {
        std::fs::write(&expected_path, rendered)?;
        return Ok(());
    }
    let expected = std::fs::read_to_string(&expected_path).with_context(|| {
        format!(
            "reading {} (create it with PALISADE_BLESS=1)",
            expected_path.display()
        )
    })?;
    let expected: serde_json::Value = serde_json::from_str(&expected)?;
    if expected != actual {
        let diff =
            similar::TextDiff::from_lines(&serde_json::to_string_pretty(&expected)?, &rendered)
                .unified_diff()
                .header("expected", "actual")
                .to_string();
        bail!(
            "{name}: the report differs from {}:\n{diff}",
            expected_path.display()
        );
    }
    Ok(())
}

/// One trial per scenario, named `proxy::<scenario>`.
pub(crate) fn trials() -> Vec<Trial> {
    let prepared = (|| -> anyhow::Result<Arc<Filter>> {
        let bytes = std::fs::read(e2e::artefact_for("proxy-probe", e2e::PROXY_WASM))
            .context("reading the probe filter (build it with `make policies`)")?;
        let engine = Engine::new(EngineConfig::default())?;
        Ok(Arc::new(Filter::new(&engine, &bytes)?))
    })();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(scenarios_dir())
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    paths.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_owned();
            let filter = prepared
                .as_ref()
                .map(Arc::clone)
                .map_err(|e| format!("{e:#}"));
            Trial::test(format!("proxy::{name}"), move || {
                let filter = filter.map_err(Failed::from)?;
                check(&filter, &path).map_err(|e| Failed::from(format!("{e:#}")))
            })
        })
        .collect()
}
