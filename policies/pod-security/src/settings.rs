//! The policy's settings: the enforced level and version, and PSA's exemptions. Everything is
//! parsed and validated here, once; a request never sees an invalid setting.

use palisade_sdk::{PolicySettings, SettingsError};
use serde::Deserialize;
use std::collections::BTreeSet;

use crate::level::Level;
use crate::version::Version;

/// Settings of the `pod-security` policy (PSA's `PodSecurityConfiguration`, enforce mode only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// The level to enforce (`pod-security.kubernetes.io/enforce`); `restricted` by default.
    #[serde(default)]
    pub level: Level,
    /// The version of the rules to enforce (`pod-security.kubernetes.io/enforce-version`):
    /// `latest` (the default) or `v1.N`.
    #[serde(default)]
    pub version: Version,
    /// Requests that are allowed without evaluation.
    #[serde(default)]
    pub exemptions: Exemptions,
    /// Add the restricted defaults a pod template lacks (containers: `allowPrivilegeEscalation:
    /// false`, `capabilities.drop: [ALL]`; pod: `runAsNonRoot: true`, `seccompProfile:
    /// RuntimeDefault`) as a JSONPatch, then enforce the level on the patched object. Only with
    /// `level: restricted`; served at `/mutate/<id>`.
    #[serde(default)]
    pub mutate: bool,
}

/// PSA's exemptions (`PodSecurityExemptions`): exact matches, no patterns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Exemptions {
    /// Requesting users (`userInfo.username`) whose requests are exempt.
    #[serde(default)]
    pub usernames: Vec<String>,
    /// Namespaces whose requests are exempt.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Runtime classes (`spec.runtimeClassName`) whose pods are exempt.
    #[serde(default)]
    pub runtime_classes: Vec<String>,
}

impl PolicySettings for Settings {
    /// Checks the exemption lists as PSA's `ValidatePodSecurityConfiguration` does: no empty
    /// usernames, namespaces that are DNS-1123 labels, runtime classes that are DNS-1123
    /// subdomains, and no duplicates. (The level and version are checked while parsing.)
    fn validate(&self) -> Result<(), SettingsError> {
        if self.mutate && self.level != Level::Restricted {
            return Err(SettingsError::new(
                "mutate",
                format!(
                    "adds the restricted defaults, so it needs level restricted, not {}",
                    self.level
                ),
            ));
        }
        check_list("exemptions.usernames", &self.exemptions.usernames, |_| None)?;
        check_list("exemptions.namespaces", &self.exemptions.namespaces, |ns| {
            (!is_dns1123_label(ns)).then_some(
                "is not a valid namespace name: must be a lowercase RFC 1123 label (at most 63 characters)",
            )
        })?;
        check_list(
            "exemptions.runtimeClasses",
            &self.exemptions.runtime_classes,
            |rc| {
                (!is_dns1123_subdomain(rc)).then_some(
                "is not a valid runtime class name: must be a lowercase RFC 1123 subdomain (at most 253 characters)",
            )
            },
        )
    }
}

/// Rejects empty, malformed (`invalid` says why) and duplicate entries, naming the first bad one.
fn check_list(
    field: &str,
    items: &[String],
    invalid: impl Fn(&str) -> Option<&'static str>,
) -> Result<(), SettingsError> {
    let mut seen = BTreeSet::new();
    for (index, item) in items.iter().enumerate() {
        let path = || format!("{field}[{index}]");
        if item.is_empty() {
            return Err(SettingsError::new(path(), "must not be empty"));
        }
        if let Some(why) = invalid(item) {
            return Err(SettingsError::new(path(), format!("{item:?} {why}")));
        }
        if !seen.insert(item.as_str()) {
            return Err(SettingsError::new(
                path(),
                format!("duplicate value {item:?}"),
            ));
        }
    }
    Ok(())
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters (apimachinery `IsDNS1123Label`).
fn is_dns1123_label(text: &str) -> bool {
    let bytes = text.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    text.len() <= 63
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
        && bytes.iter().all(|b| alnum(b) || *b == b'-')
}

/// Dot-separated DNS-1123 labels, at most 253 characters (apimachinery `IsDNS1123Subdomain`).
fn is_dns1123_subdomain(text: &str) -> bool {
    // Each label keeps the label syntax; only the whole name's length is limited.
    text.len() <= 253
        && text.split('.').all(|label| {
            let bytes = label.as_bytes();
            let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
            bytes.first().is_some_and(alnum)
                && bytes.last().is_some_and(alnum)
                && bytes.iter().all(|b| alnum(b) || *b == b'-')
        })
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use palisade_sdk::parse_settings;

    fn error(json: &str) -> SettingsError {
        parse_settings::<Settings>(json).unwrap_err()
    }

    #[test]
    fn defaults_to_restricted_latest_without_exemptions() {
        let settings = parse_settings::<Settings>("").unwrap();
        assert_eq!(settings, Settings::default());
        assert_eq!(settings.level, Level::Restricted);
        assert_eq!(settings.version, Version::Latest);
    }

    #[test]
    fn parses_every_field() {
        let settings = parse_settings::<Settings>(
            r#"{"level": "baseline", "version": "v1.24", "exemptions": {
                "usernames": ["system:serviceaccount:ci:deployer"], "namespaces": ["kube-system"],
                "runtimeClasses": ["gvisor.example.com"]}}"#,
        )
        .unwrap();
        assert_eq!(settings.level, Level::Baseline);
        assert_eq!(settings.version, Version::Minor(24));
        assert_eq!(settings.exemptions.runtime_classes, ["gvisor.example.com"]);
    }

    #[test]
    fn rejects_a_bad_version_naming_field_and_value() {
        let err = error(r#"{"version": "1.25"}"#);
        assert_eq!(err.path, "version");
        assert!(err.message.contains(r#""1.25""#), "{err}");
    }

    #[test]
    fn rejects_an_unknown_level() {
        let err = error(r#"{"level": "restricetd"}"#);
        assert_eq!(err.path, "level");
    }

    #[test]
    fn rejects_unknown_fields() {
        assert_eq!(
            error(r#"{"exemptions": {"users": []}}"#).path,
            "exemptions.users"
        );
        assert_eq!(error(r#"{"enforce": "baseline"}"#).path, "enforce");
    }

    #[test]
    fn rejects_empty_exemptions() {
        let err = error(r#"{"exemptions": {"usernames": ["alice", ""]}}"#);
        assert_eq!(err.path, "exemptions.usernames[1]");
        assert_eq!(err.message, "must not be empty");
        let err = error(r#"{"exemptions": {"runtimeClasses": [""]}}"#);
        assert_eq!(err.path, "exemptions.runtimeClasses[0]");
    }

    #[test]
    fn rejects_duplicate_exemptions() {
        let err = error(r#"{"exemptions": {"namespaces": ["a", "b", "a"]}}"#);
        assert_eq!(err.path, "exemptions.namespaces[2]");
        assert_eq!(err.message, r#"duplicate value "a""#);
    }

    #[test]
    fn rejects_malformed_namespace_and_runtime_class_names() {
        assert_eq!(
            error(r#"{"exemptions": {"namespaces": ["Kube_System"]}}"#).path,
            "exemptions.namespaces[0]"
        );
        assert_eq!(
            error(r#"{"exemptions": {"namespaces": ["a.b"]}}"#).path,
            "exemptions.namespaces[0]"
        );
        assert_eq!(
            error(r#"{"exemptions": {"runtimeClasses": ["-kata"]}}"#).path,
            "exemptions.runtimeClasses[0]"
        );
    }

    #[test]
    fn dns_names_follow_rfc_1123() {
        assert!(is_dns1123_label("kube-system"));
        assert!(is_dns1123_label("0"));
        assert!(!is_dns1123_label("a-"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(is_dns1123_subdomain("runsc.gvisor.dev"));
        assert!(!is_dns1123_subdomain("a..b"));
        assert!(!is_dns1123_subdomain("a."));
        assert!(!is_dns1123_subdomain(&format!("{}.b", "a".repeat(252))));
    }
}
