//! Kubewarden policy-server's `policies.yml`, read as a Palisade configuration, so migrating is
//! the same file, the same `/validate/<id>` paths and a new binary (policy-server
//! `config.rs`, `PolicyOrPolicyGroup`; evaluation `admission_response_handler.rs`).
//!
//! The file maps ids to policies (`module`, `settings`, `policyMode`, `allowedToMutate`,
//! `contextAwareResources`, `message`, `timeoutEvalSeconds`, `hostCapabilities`) or to groups
//! (`policies` of members, a Rhai `expression` calling each member as `name()`, `message`,
//! `policyMode`). Each becomes a [`PolicyConfig`] or [`GroupConfig`] with policy-server's
//! semantics: `/validate/<id>` keeps a mutation only when `allowedToMutate` (and rejects one
//! otherwise), failures reject (failurePolicy Fail, code 500), host capabilities are granted
//! only as listed (none when absent), a policy reads the clock (Kubewarden's WASI gives real
//! time). Group members are not served on their own. Unknown keys of a policy entry are
//! ignored, as policy-server ignores them (its controller adds some); a member's are errors.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use palisade_runtime::capabilities::{OperationGrants, ResourceKind};
use serde::Deserialize;

use crate::config::{
    CapabilitiesConfig, FailurePolicy, GroupConfig, Mode, PolicyConfig, default_memory_mib,
    default_policy_concurrency,
};

/// policy-server's `--policy-timeout` default.
const DEFAULT_POLICY_TIMEOUT: Duration = Duration::from_secs(2);

/// What policy-server's command line says that its `policies.yml` does not.
#[derive(Debug, Clone)]
pub struct ServerFlags {
    /// `--addr` and `--port` (policy-server's default: 0.0.0.0:3000).
    pub listen: Option<std::net::SocketAddr>,
    /// `--cert-file`, `--key-file`, `--client-ca-file`.
    pub tls: Option<crate::config::TlsConfig>,
    /// `--readiness-probe-port`: a plain-HTTP listener for the probes.
    pub readiness: Option<std::net::SocketAddr>,
    /// `--policy-timeout`: the evaluation deadline of policies without `timeoutEvalSeconds`
    /// (policy-server's default when unset: 2 s).
    pub policy_timeout: Option<Duration>,
    /// The manifests the kubernetes/* operations answer from (`--kubernetes-dir`; policy-server
    /// asks the API server instead).
    pub kubernetes_directory: Option<PathBuf>,
    /// Where images come from (`--docker-config-json-path`, `--sources-path`).
    pub registry: crate::registry::RegistryConfig,
}

impl ServerFlags {
    /// Whether any flag that only a policies.yml takes is set.
    #[must_use]
    pub fn any_set(&self) -> bool {
        self.listen.is_some()
            || self.policy_timeout.is_some()
            || self.tls.is_some()
            || self.readiness.is_some()
            || self.kubernetes_directory.is_some()
            || self.registry != crate::registry::RegistryConfig::default()
    }
}

impl Default for ServerFlags {
    /// policy-server's defaults: port 3000, no TLS, 2 s.
    fn default() -> Self {
        Self {
            listen: None,
            tls: None,
            readiness: None,
            policy_timeout: None,
            kubernetes_directory: None,
            registry: crate::registry::RegistryConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum PolicyMode {
    #[default]
    Protect,
    Monitor,
}

impl From<PolicyMode> for Mode {
    fn from(mode: PolicyMode) -> Self {
        match mode {
            PolicyMode::Protect => Mode::Protect,
            PolicyMode::Monitor => Mode::Monitor,
        }
    }
}

/// A policy entry; unknown keys are ignored, as policy-server ignores them.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PolicyEntry {
    module: String,
    #[serde(default)]
    policy_mode: PolicyMode,
    #[serde(default)]
    allowed_to_mutate: Option<bool>,
    #[serde(default)]
    settings: Option<serde_json::Value>,
    #[serde(default)]
    context_aware_resources: BTreeSet<ResourceKind>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    timeout_eval_seconds: Option<u64>,
    #[serde(default)]
    host_capabilities: Vec<String>,
}

/// A member of a group.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MemberEntry {
    module: String,
    #[serde(default)]
    settings: Option<serde_json::Value>,
    #[serde(default)]
    context_aware_resources: BTreeSet<ResourceKind>,
    #[serde(default)]
    timeout_eval_seconds: Option<u64>,
    #[serde(default)]
    host_capabilities: Vec<String>,
}

/// A group entry.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupEntry {
    #[serde(default)]
    policy_mode: PolicyMode,
    policies: BTreeMap<String, MemberEntry>,
    expression: String,
    message: String,
}

/// Whether configuration text is a policy-server `policies.yml` rather than a `palisade.yaml`:
/// a mapping whose values are all mappings with a `module` or a `policies` entry.
#[must_use]
pub fn is_policies_yml(document: &serde_yaml::Value) -> bool {
    let Some(map) = document.as_mapping() else {
        return false;
    };
    !map.is_empty()
        && map.values().all(|v| {
            v.as_mapping()
                .is_some_and(|m| m.contains_key("module") || m.contains_key("policies"))
        })
}

/// The policies and groups of a `policies.yml` (parsed as `document`); module paths are made
/// relative to the file's directory when the configuration is resolved.
///
/// # Errors
/// A message naming the entry and what is wrong with it.
pub fn translate(
    document: serde_yaml::Value,
    flags: &ServerFlags,
) -> Result<(Vec<PolicyConfig>, Vec<GroupConfig>), String> {
    let entries: BTreeMap<String, serde_yaml::Value> =
        serde_yaml::from_value(document).map_err(|e| format!("policies.yml: {e}"))?;
    let mut policies = Vec::new();
    let mut groups = Vec::new();
    for (id, entry) in entries {
        let is_group = entry
            .as_mapping()
            .is_some_and(|m| m.contains_key("policies") && !m.contains_key("module"));
        if is_group {
            let group: GroupEntry =
                serde_yaml::from_value(entry).map_err(|e| format!("group {id}: {e}"))?;
            let mut members = BTreeMap::new();
            for (name, member) in group.policies {
                let member_id = format!("{id}.{name}");
                let config = policy(
                    &member_id,
                    Parts {
                        module: &member.module,
                        settings: member.settings,
                        mode: PolicyMode::Protect,
                        allowed_to_mutate: Some(false),
                        message: None,
                        timeout: member.timeout_eval_seconds,
                        host: member.host_capabilities,
                        kinds: member.context_aware_resources,
                    },
                    flags,
                )
                .map_err(|e| format!("group {id}, policy {name}: {e}"))?;
                members.insert(name, member_id);
                policies.push(PolicyConfig {
                    member_of: Some(id.clone()),
                    ..config
                });
            }
            groups.push(GroupConfig {
                expression: expression(&group.expression, &members)
                    .map_err(|e| format!("group {id}: expression {:?}: {e}", group.expression))?,
                id,
                message: Some(group.message),
                mode: group.policy_mode.into(),
                members_may_not_mutate: true,
            });
        } else {
            let entry: PolicyEntry =
                serde_yaml::from_value(entry).map_err(|e| format!("policy {id}: {e}"))?;
            let config = policy(
                &id,
                Parts {
                    module: &entry.module,
                    settings: entry.settings,
                    mode: entry.policy_mode,
                    allowed_to_mutate: Some(entry.allowed_to_mutate.unwrap_or(false)),
                    message: entry.message,
                    timeout: entry.timeout_eval_seconds,
                    host: entry.host_capabilities,
                    kinds: entry.context_aware_resources,
                },
                flags,
            )
            .map_err(|e| format!("policy {id}: {e}"))?;
            policies.push(config);
        }
    }
    Ok((policies, groups))
}

struct Parts<'a> {
    module: &'a str,
    settings: Option<serde_json::Value>,
    mode: PolicyMode,
    allowed_to_mutate: Option<bool>,
    message: Option<String>,
    timeout: Option<u64>,
    host: Vec<String>,
    kinds: BTreeSet<ResourceKind>,
}

fn policy(id: &str, parts: Parts<'_>, flags: &ServerFlags) -> Result<PolicyConfig, String> {
    Ok(PolicyConfig {
        id: id.to_owned(),
        module: module_path(parts.module)?,
        settings: parts.settings.unwrap_or_else(|| serde_json::json!({})),
        settings_from: BTreeMap::new(),
        settings_files: Vec::new(),
        mode: parts.mode.into(),
        failure_policy: FailurePolicy::Fail,
        timeout: parts.timeout.map_or(
            flags.policy_timeout.unwrap_or(DEFAULT_POLICY_TIMEOUT),
            Duration::from_secs,
        ),
        memory_mib: default_memory_mib(),
        capabilities: CapabilitiesConfig {
            clock: true,
            host: OperationGrants::new(parts.host)?,
            kubernetes: parts.kinds,
            ..CapabilitiesConfig::default()
        },
        max_concurrency: default_policy_concurrency(),
        answer: palisade_runtime::admission::AnswerLimits::default(),
        allowed_to_mutate: parts.allowed_to_mutate,
        message: parts.message,
        member_of: None,
    })
}

/// policy-server's module URLs: `file:///path`, `registry://<reference>` and `https://...`
/// (pulled when the configuration loads), a bare reference (policy-server takes it as
/// `registry://`), or a path ending in `.wasm` without a scheme (relative to the file, a
/// Palisade extension).
fn module_path(module: &str) -> Result<PathBuf, String> {
    if let Some(path) = module.strip_prefix("file://") {
        return Ok(PathBuf::from(path));
    }
    if crate::registry::is_remote(module) {
        return Ok(PathBuf::from(module));
    }
    if let Some((scheme, _)) = module.split_once("://") {
        return Err(format!(
            "module {module:?}: {scheme}:// is not a module URL (file://, registry:// or https://)"
        ));
    }
    if module.ends_with(".wasm") {
        return Ok(PathBuf::from(module));
    }
    Ok(PathBuf::from(format!("registry://{module}")))
}

/// A Rhai group expression over member calls (`a() && (b() || !c())`) as a Palisade
/// expression over the members' ids. Only member calls, `&&`, `||`, `!` and parentheses:
/// anything else of Rhai is an error naming it.
fn expression(rhai: &str, members: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(rhai.len().saturating_mul(2));
    let mut chars = rhai.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '&' | '|' | '!' | '(' | ')' | ' ' | '\t' | '\n' | '\r' => out.push(c),
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut name = String::from(c);
                while let Some((_, next)) = chars.peek().copied() {
                    if next.is_ascii_alphanumeric() || next == '_' {
                        name.push(next);
                        chars.next();
                    } else {
                        break;
                    }
                }
                while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
                    chars.next();
                }
                let called = chars.next_if(|(_, c)| *c == '(').is_some() && {
                    while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
                        chars.next();
                    }
                    chars.next_if(|(_, c)| *c == ')').is_some()
                };
                if !called {
                    return Err(format!(
                        "{name:?} at position {at} is not a call of a member policy (write {name}())"
                    ));
                }
                let id = members.get(&name).ok_or_else(|| {
                    format!(
                        "{name}() at position {at} names no member policy (members: {})",
                        members.keys().cloned().collect::<Vec<_>>().join(", ")
                    )
                })?;
                out.push(' ');
                out.push_str(id);
                out.push(' ');
            }
            other => {
                return Err(format!(
                    "{other:?} at position {at}: only member calls, &&, || and ! are supported"
                ));
            }
        }
    }
    Ok(out.split_whitespace().collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    const POLICIES: &str = r#"
privileged:
  module: file:///policies/probe.wasm
  policyMode: monitor
  allowedToMutate: true
  settings: {denyPrivileged: true}
  contextAwareResources: [{apiVersion: v1, kind: Namespace}]
  hostCapabilities: ["kubernetes/*"]
  timeoutEvalSeconds: 5
  message: not allowed here
  namespacedName: {name: x}
signed:
  policyMode: protect
  expression: "alice() || (bob() && !legacy())"
  message: the image must be signed
  policies:
    alice: {module: a.wasm}
    bob: {module: file:///b.wasm, settings: {x: 1}}
    legacy: {module: c.wasm}
"#;

    fn parsed(text: &str) -> Result<(Vec<PolicyConfig>, Vec<GroupConfig>), String> {
        let document: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
        assert!(is_policies_yml(&document));
        translate(document, &ServerFlags::default())
    }

    #[test]
    fn policies_and_groups_become_palisade_configuration() {
        let (policies, groups) = parsed(POLICIES).unwrap();
        let privileged = policies.iter().find(|p| p.id == "privileged").unwrap();
        assert_eq!(privileged.module, PathBuf::from("/policies/probe.wasm"));
        assert_eq!(privileged.mode, Mode::Monitor);
        assert_eq!(privileged.allowed_to_mutate, Some(true));
        assert_eq!(privileged.message.as_deref(), Some("not allowed here"));
        assert_eq!(privileged.timeout, Duration::from_secs(5));
        assert!(
            privileged
                .capabilities
                .host
                .allows("kubernetes", "get_resource")
        );
        assert!(
            !privileged
                .capabilities
                .host
                .allows("oci", "v1/manifest_digest")
        );
        assert_eq!(privileged.capabilities.kubernetes.len(), 1);
        let alice = policies.iter().find(|p| p.id == "signed.alice").unwrap();
        assert_eq!(alice.module, PathBuf::from("a.wasm"));
        assert_eq!(alice.member_of.as_deref(), Some("signed"));
        assert_eq!(alice.timeout, Duration::from_secs(2));
        assert!(alice.capabilities.host.is_empty());
        assert_eq!(alice.settings, serde_json::json!({}));
        let group = &groups[0];
        assert_eq!(
            group.expression,
            "signed.alice || ( signed.bob && ! signed.legacy )"
        );
        assert_eq!(group.message.as_deref(), Some("the image must be signed"));
    }

    #[test]
    fn module_urls_are_kept_for_the_load_and_a_bare_reference_is_a_registry_one() {
        let (policies, _) = parsed(
            "a: {module: registry://ghcr.io/kubewarden/policies/x:v1}\nb: {module: ghcr.io/kubewarden/policies/x:v1}\nc: {module: https://example.com/x.wasm}\n",
        )
        .unwrap();
        let module = |id: &str| {
            policies
                .iter()
                .find(|p| p.id == id)
                .map(|p| p.module.to_string_lossy().into_owned())
                .unwrap()
        };
        assert_eq!(module("a"), "registry://ghcr.io/kubewarden/policies/x:v1");
        assert_eq!(module("b"), "registry://ghcr.io/kubewarden/policies/x:v1");
        assert_eq!(module("c"), "https://example.com/x.wasm");
    }

    #[test]
    fn what_cannot_be_served_is_named() {
        for (text, expected) in [
            (
                "p: {module: ftp://example.com/x.wasm}",
                "policy p: module \"ftp://example.com/x.wasm\": ftp:// is not a module URL (file://, registry:// or https://)",
            ),
            (
                "p: {module: a.wasm, hostCapabilities: [\"oci/v9/*\"]}",
                "policy p: host capability pattern \"oci/v9/*\"",
            ),
            (
                "g: {expression: \"a() && b\", message: m, policies: {a: {module: a.wasm}, b: {module: b.wasm}}}",
                "\"b\" at position 7 is not a call",
            ),
            (
                "g: {expression: \"a() && c()\", message: m, policies: {a: {module: a.wasm}}}",
                "c() at position 7 names no member",
            ),
            (
                "g: {expression: \"a() == true\", message: m, policies: {a: {module: a.wasm}}}",
                "only member calls",
            ),
            (
                "g: {expression: \"a()\", message: m, policies: {a: {module: a.wasm, mode: x}}}",
                "unknown field `mode`",
            ),
            (
                "g: {expression: \"a()\", policies: {a: {module: a.wasm}}}",
                "missing field `message`",
            ),
        ] {
            let error = parsed(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn a_palisade_configuration_is_not_taken_for_policies_yml() {
        let palisade: serde_yaml::Value =
            serde_yaml::from_str("listen: 127.0.0.1:8443\npolicies: [{id: a, module: a.wasm}]")
                .unwrap();
        assert!(!is_policies_yml(&palisade));
    }
}
