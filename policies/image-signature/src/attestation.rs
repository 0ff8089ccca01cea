//! What verified attestations must say: SLSA provenance (v0.2 and v1) from allowed builders and
//! source repositories, vulnerability reports (cosign's vuln predicate, with Trivy's or Grype's
//! result) under thresholds, SBOMs (SPDX, CycloneDX) without denied packages or licenses.
//!
//! An attestation requirement holds when one verified statement satisfies it: ignoring an
//! attestation can never turn a denial into an admission (in-toto's monotonicity). Stale
//! reports are kept from counting with `maxAge`.

use std::collections::BTreeMap;
use std::time::Duration;

use palisade_sdk::time::parse_rfc3339;
use serde_json::Value;

use crate::reference::Glob;
use crate::settings::{Sbom, Severity, Vulnerabilities};

/// A source repository URI as patterns match it: no `git+`, no `@ref`, no `.git`, no trailing
/// `/`.
#[must_use]
pub fn source_name(uri: &str) -> String {
    let uri = uri.strip_prefix("git+").unwrap_or(uri);
    // A ref follows the last `@` of the path (not one in `user@host`).
    let path_start = uri.find("://").map_or(0, |i| i.saturating_add(3));
    let uri = match uri.get(path_start..).and_then(|rest| rest.find('/')) {
        Some(slash) => {
            let path_at = path_start.saturating_add(slash);
            match uri.get(path_at..).and_then(|path| path.rfind('@')) {
                Some(at) => uri.get(..path_at.saturating_add(at)).unwrap_or(uri),
                None => uri,
            }
        }
        None => uri,
    };
    let uri = uri.trim_end_matches('/');
    uri.strip_suffix(".git").unwrap_or(uri).to_owned()
}

fn text<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// Why a provenance statement does not satisfy the builders and sources, or `None` when it
/// does.
#[must_use]
pub fn provenance(statement: &Value, builders: &[Glob], sources: &[Glob]) -> Option<String> {
    let predicate = statement.get("predicate").unwrap_or(&Value::Null);
    let v1 = text(statement, "/predicateType") == Some("https://slsa.dev/provenance/v1");
    let builder = if v1 {
        text(predicate, "/runDetails/builder/id")
    } else {
        text(predicate, "/builder/id")
    }
    .unwrap_or_default();
    let mut found: Vec<String> = Vec::new();
    if v1 {
        found.extend(
            text(
                predicate,
                "/buildDefinition/externalParameters/workflow/repository",
            )
            .map(source_name),
        );
        found.extend(
            text(predicate, "/buildDefinition/externalParameters/source/uri").map(source_name),
        );
        if let Some(deps) = predicate
            .pointer("/buildDefinition/resolvedDependencies")
            .and_then(Value::as_array)
        {
            found.extend(deps.iter().filter_map(|d| text(d, "/uri")).map(source_name));
        }
    } else {
        found.extend(text(predicate, "/invocation/configSource/uri").map(source_name));
        if let Some(materials) = predicate.get("materials").and_then(Value::as_array) {
            found.extend(
                materials
                    .iter()
                    .filter_map(|m| text(m, "/uri"))
                    .map(source_name),
            );
        }
    }
    let mut why = Vec::new();
    if !builders.is_empty() && !builders.iter().any(|g| g.matches(builder)) {
        why.push(format!(
            "builder {builder:?} is not one of {}",
            list(builders.iter().map(Glob::as_str))
        ));
    }
    if !sources.is_empty() && !found.iter().any(|s| sources.iter().any(|g| g.matches(s))) {
        why.push(if found.is_empty() {
            "it names no source repository".to_owned()
        } else {
            format!(
                "source {} is not one of {}",
                list(found.iter().map(String::as_str)),
                list(sources.iter().map(Glob::as_str))
            )
        });
    }
    (!why.is_empty()).then(|| why.join(", "))
}

fn list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items
        .map(|i| format!("{i:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One finding of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Finding {
    id: String,
    severity: Severity,
}

/// The findings of a cosign vuln predicate's `scanner.result`: Trivy's JSON
/// (`Results[].Vulnerabilities[]`), Grype's (`matches[].vulnerability`), or a plain list
/// of `{id, severity}`.
fn findings(predicate: &Value) -> Result<Vec<Finding>, String> {
    let result = predicate
        .pointer("/scanner/result")
        .ok_or("the report has no scanner.result")?;
    let mut out = Vec::new();
    let mut push = |id: Option<&str>, severity: Option<&str>| -> Result<(), String> {
        let id = id.ok_or("a finding has no id")?;
        let severity = severity.unwrap_or("UNKNOWN");
        let severity = Severity::parse(severity)
            .ok_or_else(|| format!("{id} has the unknown severity {severity:?}"))?;
        out.push(Finding {
            id: id.to_owned(),
            severity,
        });
        Ok(())
    };
    if let Some(results) = result.get("Results").and_then(Value::as_array) {
        for r in results {
            for v in r
                .get("Vulnerabilities")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                push(text(v, "/VulnerabilityID"), text(v, "/Severity"))?;
            }
        }
    } else if let Some(matches) = result.get("matches").and_then(Value::as_array) {
        for m in matches {
            push(
                text(m, "/vulnerability/id"),
                text(m, "/vulnerability/severity"),
            )?;
        }
    } else if let Some(list) = result.as_array() {
        for v in list {
            push(text(v, "/id"), text(v, "/severity"))?;
        }
    } else if result.get("SchemaVersion").is_none() {
        return Err("scanner.result is neither Trivy's nor Grype's report".to_owned());
    }
    Ok(out)
}

/// Why a vulnerability report breaks the thresholds, or `None` when it keeps them. `now` is
/// the host's time, needed with `maxAge`.
///
/// # Errors
/// When the report cannot be read.
pub fn vulnerabilities(
    statement: &Value,
    limits: &Vulnerabilities,
    max_age: Option<u64>,
    now: Option<Duration>,
) -> Result<Option<String>, String> {
    let predicate = statement.get("predicate").unwrap_or(&Value::Null);
    let finished = text(predicate, "/metadata/scanFinishedOn").unwrap_or_default();
    let mut why = Vec::new();
    if let Some(max_age) = max_age {
        let at = parse_rfc3339(finished).ok_or_else(|| {
            format!("the report's scanFinishedOn {finished:?} is not an RFC 3339 time")
        })?;
        let now = now.ok_or("maxAge needs the host's clock")?;
        let age = now.saturating_sub(at).as_secs();
        if age > max_age {
            why.push(format!(
                "the scan finished {} ago, more than the {} allowed",
                human(age),
                human(max_age)
            ));
        }
    }
    let findings: Vec<Finding> = findings(predicate)?
        .into_iter()
        .filter(|f| !limits.allow.contains(&f.id))
        .collect();
    if let Some(max) = limits.max_severity {
        let above: Vec<String> = findings
            .iter()
            .filter(|f| f.severity > max)
            .map(|f| format!("{} ({})", f.id, f.severity))
            .collect();
        if !above.is_empty() {
            why.push(format!("{} above {max}: {}", above.len(), above.join(", ")));
        }
    }
    let mut counts: BTreeMap<Severity, u32> = BTreeMap::new();
    for finding in &findings {
        let count = counts.entry(finding.severity).or_default();
        *count = count.saturating_add(1);
    }
    for (severity, max) in &limits.max_count {
        let count = counts.get(severity).copied().unwrap_or_default();
        if count > *max {
            why.push(format!("{count} {severity}, more than {max}"));
        }
    }
    Ok((!why.is_empty()).then(|| {
        let when = if finished.is_empty() {
            String::new()
        } else {
            format!(" of {finished}")
        };
        format!("the vulnerability report{when}: {}", why.join("; "))
    }))
}

fn human(seconds: u64) -> String {
    match seconds {
        s if s % 86_400 == 0 && s > 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 && s > 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 && s > 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Why an SBOM holds denied packages or licenses, or `None` when it does not.
#[must_use]
pub fn sbom(statement: &Value, limits: &Sbom) -> Option<String> {
    let predicate = statement.get("predicate").unwrap_or(&Value::Null);
    // (name, version, license expressions)
    let mut packages: Vec<(&str, &str, Vec<&str>)> = Vec::new();
    if let Some(list) = predicate.get("packages").and_then(Value::as_array) {
        for p in list {
            let licenses = ["/licenseConcluded", "/licenseDeclared"]
                .iter()
                .filter_map(|ptr| text(p, ptr))
                .collect();
            packages.push((
                text(p, "/name").unwrap_or_default(),
                text(p, "/versionInfo").unwrap_or_default(),
                licenses,
            ));
        }
    }
    if let Some(list) = predicate.get("components").and_then(Value::as_array) {
        for c in list {
            let licenses = c
                .get("licenses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|l| {
                    text(l, "/license/id")
                        .or_else(|| text(l, "/license/name"))
                        .or_else(|| text(l, "/expression"))
                })
                .collect();
            packages.push((
                text(c, "/name").unwrap_or_default(),
                text(c, "/version").unwrap_or_default(),
                licenses,
            ));
        }
    }
    let mut why = Vec::new();
    for (name, version, licenses) in &packages {
        for denied in &limits.denied_packages {
            let hit = match denied.split_once('@') {
                Some((n, v)) => n == *name && v == *version,
                None => denied == name,
            };
            if hit {
                why.push(format!("package {name}@{version} is denied"));
            }
        }
        for license in licenses {
            for denied in &limits.denied_licenses {
                let tokens = license.split(|c: char| c.is_whitespace() || c == '(' || c == ')');
                if tokens.clone().any(|t| t == denied) {
                    why.push(format!(
                        "package {name}@{version} has the denied license {denied} ({license})"
                    ));
                }
            }
        }
    }
    (!why.is_empty()).then(|| format!("the SBOM: {}", why.join("; ")))
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]

    use serde_json::json;

    use super::*;

    #[test]
    fn sources_lose_scheme_decorations_and_refs() {
        assert_eq!(
            source_name("git+https://github.com/example/app@refs/heads/main"),
            "https://github.com/example/app"
        );
        assert_eq!(
            source_name("https://github.com/example/app.git"),
            "https://github.com/example/app"
        );
        assert_eq!(
            source_name("git+ssh://git@github.com/example/app.git@v1"),
            "ssh://git@github.com/example/app"
        );
        assert_eq!(
            source_name("https://github.com/example/app/"),
            "https://github.com/example/app"
        );
    }

    #[test]
    fn provenance_v1_and_v02_name_their_builder_and_sources() {
        let builder = [Glob::any("https://github.com/actions/runner/*").unwrap()];
        let source = [Glob::any("https://github.com/example/*").unwrap()];
        let v1 = json!({"predicateType": "https://slsa.dev/provenance/v1", "predicate": {
            "buildDefinition": {"externalParameters": {"workflow": {"repository": "https://github.com/example/app"}}},
            "runDetails": {"builder": {"id": "https://github.com/actions/runner/github-hosted"}}}});
        assert_eq!(provenance(&v1, &builder, &source), None);
        let v02 = json!({"predicateType": "https://slsa.dev/provenance/v0.2", "predicate": {
            "builder": {"id": "https://evil.example/builder"},
            "invocation": {"configSource": {"uri": "git+https://github.com/evil/app@refs/heads/main"}}}});
        let why = provenance(&v02, &builder, &source).unwrap();
        assert!(
            why.contains("builder \"https://evil.example/builder\""),
            "{why}"
        );
        assert!(
            why.contains("source \"https://github.com/evil/app\""),
            "{why}"
        );
        let empty = json!({"predicateType": "https://slsa.dev/provenance/v1", "predicate": {}});
        assert!(
            provenance(&empty, &[], &source)
                .unwrap()
                .contains("names no source")
        );
    }

    #[test]
    fn vulnerability_thresholds_count_severities_allow_ids_and_age() {
        let trivy = json!({"predicate": {"metadata": {"scanFinishedOn": "2026-11-01T00:00:00Z"},
            "scanner": {"result": {"SchemaVersion": 2, "Results": [{"Vulnerabilities": [
                {"VulnerabilityID": "CVE-1", "Severity": "CRITICAL"},
                {"VulnerabilityID": "CVE-2", "Severity": "HIGH"},
                {"VulnerabilityID": "CVE-3", "Severity": "HIGH"}]}]}}}});
        let limits = Vulnerabilities {
            max_severity: Some(Severity::High),
            max_count: BTreeMap::from([(Severity::High, 1)]),
            allow: vec![],
            max_age: None,
        };
        let why = vulnerabilities(&trivy, &limits, None, None)
            .unwrap()
            .unwrap();
        assert!(why.contains("1 above HIGH: CVE-1 (CRITICAL)"), "{why}");
        assert!(why.contains("2 HIGH, more than 1"), "{why}");
        let allowed = Vulnerabilities {
            allow: vec!["CVE-1".into(), "CVE-3".into()],
            ..limits.clone()
        };
        assert_eq!(vulnerabilities(&trivy, &allowed, None, None).unwrap(), None);
        let now = parse_rfc3339("2026-11-08T00:00:00Z");
        let stale = vulnerabilities(&trivy, &allowed, Some(3 * 86_400), now)
            .unwrap()
            .unwrap();
        assert!(
            stale.contains("finished 7d ago, more than the 3d allowed"),
            "{stale}"
        );
        assert!(
            vulnerabilities(&trivy, &allowed, Some(60), None)
                .unwrap_err()
                .contains("clock")
        );
        let grype = json!({"predicate": {"scanner": {"result": {"matches": [
            {"vulnerability": {"id": "GHSA-x", "severity": "Medium"}}]}}}});
        let medium = Vulnerabilities {
            max_severity: Some(Severity::Low),
            ..Vulnerabilities::default()
        };
        assert!(
            vulnerabilities(&grype, &medium, None, None)
                .unwrap()
                .unwrap()
                .contains("GHSA-x (MEDIUM)")
        );
        let odd = json!({"predicate": {"scanner": {"result": {"something": 1}}}});
        assert!(
            vulnerabilities(&odd, &medium, None, None)
                .unwrap_err()
                .contains("neither")
        );
    }

    #[test]
    fn sboms_are_searched_for_denied_packages_and_licenses() {
        let spdx = json!({"predicate": {"packages": [
            {"name": "openssl", "versionInfo": "1.1.1", "licenseConcluded": "Apache-2.0 OR GPL-3.0-only"}]}});
        let limits = Sbom {
            denied_packages: vec!["openssl@1.1.1".into()],
            denied_licenses: vec!["GPL-3.0-only".into()],
        };
        let why = sbom(&spdx, &limits).unwrap();
        assert!(why.contains("package openssl@1.1.1 is denied"), "{why}");
        assert!(why.contains("denied license GPL-3.0-only"), "{why}");
        let cyclonedx = json!({"predicate": {"components": [
            {"name": "zlib", "version": "1.3", "licenses": [{"license": {"id": "Zlib"}}]}]}});
        assert_eq!(sbom(&cyclonedx, &limits), None);
    }
}
