//! The metadata Kubewarden's tools embed in a policy module: one custom section named
//! `io.kubewarden.metadata` whose payload is JSON (kwctl `annotate`; policy-evaluator
//! `policy_metadata.rs`, whose field names, defaults and checks this mirrors). Readers take the
//! first section of that name, as policy-evaluator does.

use std::collections::{BTreeMap, BTreeSet};

use palisade_sdk::wire::{Operation, PolicyMetadata, Rule};
use serde::{Deserialize, Serialize};
use wasmparser::{Parser, Payload};

/// The custom section's name.
pub const SECTION: &str = "io.kubewarden.metadata";

/// Annotations whose values Palisade shows as the policy's name, version and description.
const TITLE: &str = "io.kubewarden.policy.title";
const VERSION: &str = "io.kubewarden.policy.version";
const DESCRIPTION: &str = "io.kubewarden.policy.description";

/// A Kubewarden policy's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// The waPC protocol version (`v1`), `Unknown` for the other execution modes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<ProtocolVersion>,
    /// The requests the policy wants to see (the webhook's rules).
    pub rules: Vec<MetadataRule>,
    /// Free-form annotations (`io.kubewarden.policy.title`, `...version`, `...description`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Whether the policy may answer with a mutated object.
    pub mutating: bool,
    /// Whether the audit scanner may evaluate existing resources with it.
    #[serde(default = "yes")]
    pub background_audit: bool,
    /// How the module is run.
    #[serde(default)]
    pub execution_mode: ExecutionMode,
    /// Whether requests are Kubernetes AdmissionRequests or raw JSON.
    #[serde(default)]
    pub policy_type: PolicyType,
    /// The Kubernetes kinds the policy reads through host capabilities.
    #[serde(default)]
    pub context_aware_resources: BTreeSet<ContextAwareResource>,
    /// The host capabilities the policy says it calls (informational; the server's
    /// configuration grants them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_capabilities: Option<BTreeSet<String>>,
    /// The oldest Kubewarden release the policy runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_kubewarden_version: Option<String>,
}

const fn yes() -> bool {
    true
}

/// The protocol a waPC policy speaks (`protocol_version`'s answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProtocolVersion {
    /// The only waPC protocol there is.
    #[serde(rename = "v1")]
    V1,
    /// Not a waPC policy.
    Unknown,
}

/// How Kubewarden runs a module.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExecutionMode {
    /// waPC (`__guest_call`), the default of Kubewarden's SDKs.
    #[default]
    #[serde(rename = "kubewarden-wapc")]
    Wapc,
    /// A WASI command: JSON on stdin, the operation in argv, JSON on stdout.
    #[serde(rename = "wasi")]
    Wasi,
    /// Rego compiled by `opa build -t wasm` (OPA's wasm ABI).
    #[serde(rename = "opa")]
    Opa,
    /// Gatekeeper Rego compiled to OPA's wasm ABI.
    #[serde(rename = "gatekeeper")]
    Gatekeeper,
}

impl ExecutionMode {
    /// The name as the metadata spells it.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Wapc => "kubewarden-wapc",
            Self::Wasi => "wasi",
            Self::Opa => "opa",
            Self::Gatekeeper => "gatekeeper",
        }
    }
}

/// What a policy's requests are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PolicyType {
    /// Kubernetes AdmissionRequests.
    #[default]
    #[serde(rename = "kubernetes")]
    Kubernetes,
    /// Any JSON (`/validate_raw`).
    #[serde(rename = "raw")]
    Raw,
}

/// One rule of the metadata, as a webhook's rule with operations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetadataRule {
    /// API groups (`""` is the core group, `*` all).
    pub api_groups: Vec<String>,
    /// API versions (`*` all).
    pub api_versions: Vec<String>,
    /// Resources, with `resource/subresource` and wildcards as Kubernetes allows them.
    pub resources: Vec<String>,
    /// `CREATE`, `UPDATE`, `DELETE`, `CONNECT` or `*`.
    pub operations: Vec<String>,
}

/// A Kubernetes kind the policy reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContextAwareResource {
    /// `v1`, `apps/v1`, ...
    pub api_version: String,
    /// `Namespace`, `Deployment`, ...
    pub kind: String,
}

/// Why a module's metadata cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// The module does not parse far enough to find its sections.
    #[error("the module is malformed: {0}")]
    Module(String),
    /// The section is not the JSON of a metadata object.
    #[error("the {SECTION} section is not valid metadata: {0}")]
    Json(String),
    /// The metadata parses but breaks one of Kubewarden's rules.
    #[error("the {SECTION} section is invalid: {0}")]
    Invalid(String),
}

impl Metadata {
    /// The metadata embedded in `module`, if it has any (the first section of that name).
    ///
    /// # Errors
    /// [`MetadataError`] when the module or the section is malformed.
    pub fn read(module: &[u8]) -> Result<Option<Self>, MetadataError> {
        for payload in Parser::new(0).parse_all(module) {
            let payload = payload.map_err(|e| MetadataError::Module(e.to_string()))?;
            if let Payload::CustomSection(section) = payload
                && section.name() == SECTION
            {
                let metadata: Self = serde_json::from_slice(section.data())
                    .map_err(|e| MetadataError::Json(e.to_string()))?;
                metadata.check()?;
                return Ok(Some(metadata));
            }
        }
        Ok(None)
    }

    /// Checks Kubewarden's rules: a waPC policy declares protocol `v1`; every rule list is
    /// non-empty, `*` stands alone, operations are known, resources combine as Kubernetes
    /// allows; context-aware resources name a version and a kind; the minimum version is semver.
    ///
    /// # Errors
    /// [`MetadataError::Invalid`] naming the first broken rule.
    pub fn check(&self) -> Result<(), MetadataError> {
        let invalid = |m: String| Err(MetadataError::Invalid(m));
        match (self.execution_mode, self.protocol_version) {
            (ExecutionMode::Wapc, Some(ProtocolVersion::V1)) => {}
            (ExecutionMode::Wapc, _) => {
                return invalid(
                    "a kubewarden-wapc policy must declare protocolVersion v1".to_owned(),
                );
            }
            _ => {}
        }
        for (i, rule) in self.rules.iter().enumerate() {
            let lists = [
                ("apiGroups", &rule.api_groups),
                ("apiVersions", &rule.api_versions),
                ("resources", &rule.resources),
                ("operations", &rule.operations),
            ];
            for (name, list) in lists {
                if list.is_empty() {
                    return invalid(format!("rules[{i}].{name} is empty"));
                }
                if name != "resources" && list.len() > 1 && list.iter().any(|v| v == "*") {
                    return invalid(format!(
                        "rules[{i}].{name}: no other value may be given with \"*\""
                    ));
                }
            }
            if let Some(op) = rule
                .operations
                .iter()
                .find(|op| !["CREATE", "UPDATE", "DELETE", "CONNECT", "*"].contains(&op.as_str()))
            {
                return invalid(format!(
                    "rules[{i}].operations: unknown operation {op:?} (CREATE, UPDATE, DELETE, CONNECT or *)"
                ));
            }
            check_resources(&rule.resources)
                .or_else(|m| invalid(format!("rules[{i}].resources: {m}")))?;
        }
        for resource in &self.context_aware_resources {
            if resource.api_version.is_empty() || resource.kind.is_empty() {
                return invalid(
                    "contextAwareResources: every entry needs an apiVersion and a kind".to_owned(),
                );
            }
        }
        if let Some(version) = &self.minimum_kubewarden_version {
            let parts: Vec<&str> = version.split('.').collect();
            if parts.len() != 3 || parts.iter().any(|p| p.parse::<u64>().is_err()) {
                return invalid(format!(
                    "minimumKubewardenVersion {version:?} is not a version like 1.9.0"
                ));
            }
        }
        Ok(())
    }

    /// `module` with this metadata embedded, as `kwctl annotate` embeds it: every section of
    /// that name removed, then one appended with the metadata's JSON. The metadata is checked
    /// first.
    ///
    /// # Errors
    /// [`MetadataError::Invalid`] for metadata that breaks Kubewarden's rules;
    /// [`MetadataError::Module`] when `module` is not a core wasm module.
    pub fn embed(&self, module: &[u8]) -> Result<Vec<u8>, MetadataError> {
        self.check()?;
        let json = serde_json::to_vec(self).map_err(|e| MetadataError::Json(e.to_string()))?;
        let mut out =
            Vec::with_capacity(module.len().saturating_add(json.len()).saturating_add(64));
        let header = module
            .get(..8)
            .filter(|h| {
                h.get(..4) == Some(b"\0asm".as_slice())
                    && h.get(4..) == Some([1, 0, 0, 0].as_slice())
            })
            .ok_or_else(|| {
                MetadataError::Module(
                    "not a core wasm module (no \\0asm version 1 header)".to_owned(),
                )
            })?;
        out.extend_from_slice(header);
        let mut at = 8usize;
        while at < module.len() {
            let start = at;
            let id = *module.get(at).ok_or_else(|| truncated(at))?;
            at = at.saturating_add(1);
            let (size, after) = read_leb(module, at)?;
            let end = after
                .checked_add(size)
                .filter(|e| *e <= module.len())
                .ok_or_else(|| truncated(start))?;
            let keep = id != 0 || {
                let (name_len, name_at) = read_leb(module, after)?;
                let name = name_at
                    .checked_add(name_len)
                    .and_then(|e| module.get(name_at..e))
                    .ok_or_else(|| truncated(after))?;
                name != SECTION.as_bytes()
            };
            if keep {
                out.extend_from_slice(module.get(start..end).ok_or_else(|| truncated(start))?);
            }
            at = end;
        }
        let mut payload = Vec::with_capacity(json.len().saturating_add(32));
        write_leb(&mut payload, SECTION.len());
        payload.extend_from_slice(SECTION.as_bytes());
        payload.extend_from_slice(&json);
        out.push(0);
        write_leb(&mut out, payload.len());
        out.extend_from_slice(&payload);
        Ok(out)
    }

    /// The annotation `key`, if set.
    #[must_use]
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .map(String::as_str)
    }

    /// The policy's self-description as every ABI gives it: name, version and description from
    /// the `io.kubewarden.policy.*` annotations, the rules (`*` operations spelled out), and
    /// whether it mutates.
    #[must_use]
    pub fn describe(&self, fallback_name: &str) -> PolicyMetadata {
        let operations = |ops: &[String]| -> Vec<Operation> {
            let all = [
                Operation::Create,
                Operation::Update,
                Operation::Delete,
                Operation::Connect,
            ];
            all.into_iter()
                .filter(|op| ops.iter().any(|o| o == "*" || o == op.as_str()))
                .collect()
        };
        PolicyMetadata {
            name: self.annotation(TITLE).unwrap_or(fallback_name).to_owned(),
            version: self.annotation(VERSION).unwrap_or_default().to_owned(),
            description: self.annotation(DESCRIPTION).unwrap_or_default().to_owned(),
            rules: self
                .rules
                .iter()
                .map(|r| Rule {
                    api_groups: r.api_groups.clone(),
                    api_versions: r.api_versions.clone(),
                    resources: r.resources.clone(),
                    operations: operations(&r.operations),
                })
                .collect(),
            mutating: self.mutating,
        }
    }
}

fn truncated(at: usize) -> MetadataError {
    MetadataError::Module(format!(
        "the section at byte {at} runs past the end of the module"
    ))
}

/// An unsigned LEB128 number at `at`: its value and where it ends.
fn read_leb(bytes: &[u8], mut at: usize) -> Result<(usize, usize), MetadataError> {
    let mut value = 0usize;
    for shift in (0..35).step_by(7) {
        let byte = *bytes.get(at).ok_or_else(|| truncated(at))?;
        at = at.saturating_add(1);
        value |= usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok((value, at));
        }
    }
    Err(MetadataError::Module(format!(
        "a section size at byte {at} is longer than 5 bytes"
    )))
}

fn write_leb(out: &mut Vec<u8>, mut value: usize) {
    loop {
        let low = u8::try_from(value & 0x7f).unwrap_or(0);
        value >>= 7;
        if value == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

/// Kubernetes' checks of a rule's resources (`validation.go`'s `validateResources`, which
/// policy-evaluator transposes): `*/*` alone, no `x/*` with `x/y`, no `*/y` with `x/y`, no `*`
/// with plain resources.
fn check_resources(resources: &[String]) -> Result<(), String> {
    let mut wildcard_sub = BTreeSet::new();
    let mut wildcard_res = BTreeSet::new();
    let mut single_wildcard = false;
    let mut plain = false;
    for resource in resources {
        if resource.is_empty() {
            return Err("an empty resource is not allowed".to_owned());
        }
        if resource == "*/*" && resources.len() > 1 {
            return Err("with \"*/*\" no other resource may be given".to_owned());
        }
        let Some((res, sub)) = resource.split_once('/') else {
            if resource == "*" {
                single_wildcard = true;
            } else {
                plain = true;
            }
            continue;
        };
        if wildcard_sub.contains(res) {
            return Err(format!("with \"{res}/*\" {resource:?} may not be given"));
        }
        if wildcard_res.contains(sub) {
            return Err(format!("with \"*/{sub}\" {resource:?} may not be given"));
        }
        if sub == "*" {
            wildcard_sub.insert(res.to_owned());
        }
        if res == "*" {
            wildcard_res.insert(sub.to_owned());
        }
    }
    if single_wildcard && plain {
        return Err("with \"*\" no other resource without a subresource may be given".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    /// A module with a custom section of `name` holding `data`.
    pub(crate) fn with_section(name: &str, data: &[u8]) -> Vec<u8> {
        let mut module = wat::parse_str("(module)").unwrap();
        let mut payload = Vec::new();
        write_leb(&mut payload, name.len());
        payload.extend_from_slice(name.as_bytes());
        payload.extend_from_slice(data);
        module.push(0);
        write_leb(&mut module, payload.len());
        module.extend(payload);
        module
    }

    const POD_PRIVILEGED: &str = r#"{"protocolVersion":"v1","rules":[{"apiGroups":[""],"apiVersions":["v1"],"resources":["pods"],"operations":["CREATE","UPDATE"]}],"annotations":{"io.kubewarden.policy.title":"pod-privileged","io.kubewarden.policy.version":"1.0.4"},"mutating":false,"contextAwareResources":[{"apiVersion":"v1","kind":"Namespace"}]}"#;

    #[test]
    fn reads_the_section_with_kubewardens_defaults() {
        let metadata = Metadata::read(&with_section(SECTION, POD_PRIVILEGED.as_bytes()))
            .unwrap()
            .unwrap();
        assert_eq!(metadata.protocol_version, Some(ProtocolVersion::V1));
        assert!(metadata.background_audit);
        assert_eq!(metadata.execution_mode, ExecutionMode::Wapc);
        assert_eq!(metadata.policy_type, PolicyType::Kubernetes);
        assert_eq!(metadata.context_aware_resources.len(), 1);
        let described = metadata.describe("policy");
        assert_eq!(described.name, "pod-privileged");
        assert_eq!(described.version, "1.0.4");
        assert_eq!(
            described.rules[0].operations,
            [Operation::Create, Operation::Update]
        );
    }

    #[test]
    fn a_module_without_the_section_has_no_metadata() {
        let module = with_section("name", b"\0");
        assert_eq!(Metadata::read(&module).unwrap(), None);
    }

    #[test]
    fn star_operations_are_spelled_out() {
        let json = POD_PRIVILEGED.replace(r#"["CREATE","UPDATE"]"#, r#"["*"]"#);
        let metadata = Metadata::read(&with_section(SECTION, json.as_bytes()))
            .unwrap()
            .unwrap();
        assert_eq!(metadata.describe("p").rules[0].operations.len(), 4);
    }

    #[test]
    fn broken_metadata_is_named() {
        let cases = [
            (
                POD_PRIVILEGED.replace(r#""protocolVersion":"v1","#, ""),
                "must declare protocolVersion v1",
            ),
            (
                POD_PRIVILEGED.replace(r#"["CREATE","UPDATE"]"#, r#"["CREATE","*"]"#),
                "rules[0].operations: no other value",
            ),
            (
                POD_PRIVILEGED.replace(r#"["CREATE","UPDATE"]"#, r#"["PATCH"]"#),
                "unknown operation \"PATCH\"",
            ),
            (
                POD_PRIVILEGED.replace(r#"["pods"]"#, r#"["pods/*","pods/log"]"#),
                "with \"pods/*\" \"pods/log\" may not be given",
            ),
            (
                POD_PRIVILEGED.replace(r#"["pods"]"#, r#"["*","pods"]"#),
                "with \"*\" no other resource",
            ),
            (
                POD_PRIVILEGED.replace(r#"["v1"]"#, "[]"),
                "rules[0].apiVersions is empty",
            ),
            (
                POD_PRIVILEGED.replace(r#""mutating":false,"#, ""),
                "missing field `mutating`",
            ),
        ];
        for (json, expected) in cases {
            let error = Metadata::read(&with_section(SECTION, json.as_bytes())).unwrap_err();
            assert!(
                error.to_string().contains(expected),
                "{json}: {error} lacks {expected:?}"
            );
        }
    }

    #[test]
    fn wasi_policies_need_no_protocol_version() {
        let json = POD_PRIVILEGED.replace(
            r#""protocolVersion":"v1","#,
            r#""protocolVersion":"Unknown","executionMode":"wasi","#,
        );
        let metadata = Metadata::read(&with_section(SECTION, json.as_bytes()))
            .unwrap()
            .unwrap();
        assert_eq!(metadata.execution_mode, ExecutionMode::Wasi);
    }

    #[test]
    fn embedding_replaces_earlier_metadata_and_keeps_every_other_section() {
        let module =
            wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "f")))"#).unwrap();
        let first: Metadata = serde_json::from_str(POD_PRIVILEGED).unwrap();
        let once = first.embed(&module).unwrap();
        let mut second = first.clone();
        second.mutating = true;
        let twice = second.embed(&with_section("name", b"\0")).unwrap();
        assert_eq!(Metadata::read(&twice).unwrap(), Some(second.clone()));
        let again = second.embed(&once).unwrap();
        assert_eq!(Metadata::read(&again).unwrap(), Some(second));
        let sections = Parser::new(0)
            .parse_all(&again)
            .filter(|p| matches!(p, Ok(Payload::CustomSection(c)) if c.name() == SECTION))
            .count();
        assert_eq!(sections, 1);
        assert!(matches!(
            Parser::new(0)
                .parse_all(&again)
                .find(|p| matches!(p, Ok(Payload::ExportSection(_)))),
            Some(Ok(_))
        ));
        assert!(first.embed(b"not wasm").is_err());
        assert!(first.embed(&module[..module.len() - 1]).is_err());
    }
}
