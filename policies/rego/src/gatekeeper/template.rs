//! ConstraintTemplates (`templates.gatekeeper.sh` v1, v1beta1, v1alpha1): read as Gatekeeper
//! reads them and compiled once into a regorus engine. Mirrors open-policy-agent/frameworks
//! `constraint/pkg/client/client.go` (name and kind checks), `apis/templates/v1/conversion.go`
//! (legacy `rego`/`libs` become a `code` entry, always Rego v0) and `drivers/rego` (a main module
//! defining `violation`, libraries under `package lib.*`, no `import input`).

use serde::Deserialize;

use palisade_sdk::SettingsError;

use super::refs;
use crate::rego;

/// The only target Gatekeeper registers.
pub const TARGET: &str = "admission.k8s.gatekeeper.sh";
/// The group of ConstraintTemplates.
pub const GROUP: &str = "templates.gatekeeper.sh";

/// A ConstraintTemplate as written (a Kubernetes object: unknown fields are ignored).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    spec: Spec,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Metadata {
    #[serde(default)]
    name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Spec {
    #[serde(default)]
    crd: Crd,
    #[serde(default)]
    targets: Vec<Target>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Crd {
    #[serde(default)]
    spec: CrdSpec,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct CrdSpec {
    #[serde(default)]
    names: Names,
    #[serde(default)]
    validation: Option<Validation>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Names {
    #[serde(default)]
    kind: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Validation {
    #[serde(default, rename = "openAPIV3Schema")]
    open_api_v3_schema: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Target {
    #[serde(default)]
    target: String,
    #[serde(default)]
    rego: Option<String>,
    #[serde(default)]
    libs: Vec<String>,
    #[serde(default)]
    code: Vec<Code>,
    #[serde(default)]
    operations: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Code {
    #[serde(default)]
    engine: String,
    #[serde(default)]
    source: serde_json::Value,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct RegoSource {
    #[serde(default)]
    rego: String,
    #[serde(default)]
    libs: Vec<String>,
    #[serde(default)]
    version: String,
}

/// A ConstraintTemplate compiled: its Constraint kind and an engine holding its Rego, ready to
/// evaluate (cloned per review, which is shallow).
#[derive(Clone)]
pub struct Template {
    name: String,
    kind: String,
    engine: regorus::Engine,
    rule: String,
    rego_v1: bool,
    schema: Option<serde_json::Value>,
    operations: Vec<String>,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Template")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("rule", &self.rule)
            .finish_non_exhaustive()
    }
}

impl Template {
    /// Reads and compiles a ConstraintTemplate; `at` is where it sits in the settings (the
    /// prefix of every error's path).
    ///
    /// # Errors
    /// [`SettingsError`] naming the field: not a ConstraintTemplate, a name that is not the
    /// lowercase kind, not exactly one target of `admission.k8s.gatekeeper.sh`, no Rego code (a
    /// template with only CEL), or Rego that does not parse or compile (regorus's message, with
    /// the module's line and column).
    pub fn from_value(value: &serde_json::Value, at: &str) -> Result<Self, SettingsError> {
        let document: Document = serde_path_to_error::deserialize(value).map_err(|e| {
            SettingsError::new(join(at, &e.path().to_string()), e.inner().to_string())
        })?;
        let (group, version) = document.api_version.split_once('/').unwrap_or(("", ""));
        if group != GROUP || !matches!(version, "v1" | "v1beta1" | "v1alpha1") {
            return Err(SettingsError::new(
                join(at, "apiVersion"),
                format!(
                    "expected {GROUP}/v1 (or v1beta1, v1alpha1), found {:?}",
                    document.api_version
                ),
            ));
        }
        if document.kind != "ConstraintTemplate" {
            return Err(SettingsError::new(
                join(at, "kind"),
                format!("expected ConstraintTemplate, found {:?}", document.kind),
            ));
        }
        let kind = document.spec.crd.spec.names.kind;
        if kind.is_empty() {
            return Err(SettingsError::new(
                join(at, "spec.crd.spec.names.kind"),
                "the Constraint kind is required",
            ));
        }
        let name = document.metadata.name;
        if name != kind.to_lowercase() {
            return Err(SettingsError::new(
                join(at, "metadata.name"),
                format!(
                    "the ConstraintTemplate's name {name:?} is not equal to the lowercase of CRD's Kind: {:?}",
                    kind.to_lowercase()
                ),
            ));
        }
        let [target] = document.spec.targets.as_slice() else {
            return Err(SettingsError::new(
                join(at, "spec.targets"),
                format!(
                    "expected exactly 1 item in targets, got {}",
                    document.spec.targets.len()
                ),
            ));
        };
        if target.target != TARGET {
            return Err(SettingsError::new(
                join(at, "spec.targets[0].target"),
                format!(
                    "target {:?} is not recognized; expected {TARGET:?}",
                    target.target
                ),
            ));
        }
        let (source, source_at) = rego_source(target, at)?;
        refs::check(&source.rego).map_err(|m| SettingsError::new(join(at, &source_at), m))?;
        for (index, lib) in source.libs.iter().enumerate() {
            let lib_at = format!("{}.libs[{index}]", source_at.trim_end_matches(".rego"));
            refs::check(lib).map_err(|m| SettingsError::new(join(at, &lib_at), m))?;
        }
        let rego_v1 = source.version == "v1";
        let mut engine = rego::engine(rego_v1);
        let module = format!("{name}/template.rego");
        let package = engine
            .add_policy(module.clone(), source.rego.clone())
            .map_err(|e| SettingsError::new(join(at, &source_at), rego::error(&e)))?;
        if package.starts_with("data.lib.") || package == "data.lib" {
            return Err(SettingsError::new(
                join(at, &source_at),
                format!("the template's package {package} is reserved for libraries"),
            ));
        }
        let declares_violation = engine
            .has_declared_rule_rooted_at(&module, "violation")
            .unwrap_or(false);
        if !declares_violation {
            return Err(SettingsError::new(
                join(at, &source_at),
                "invalid rego: the template must define the rule `violation`",
            ));
        }
        for (index, lib) in source.libs.iter().enumerate() {
            let lib_at = format!("{}.libs[{index}]", source_at.trim_end_matches(".rego"));
            let lib_package = engine
                .add_policy(format!("{name}/lib-{index}.rego"), lib.clone())
                .map_err(|e| SettingsError::new(join(at, &lib_at), rego::error(&e)))?;
            if !lib_package.starts_with("data.lib.") {
                return Err(SettingsError::new(
                    join(at, &lib_at),
                    format!(
                        "a library's package must be under lib (package lib.<name>), found {}",
                        lib_package.trim_start_matches("data.")
                    ),
                ));
            }
        }
        // Prepares the engine once (analysis, scheduling, rule gathering), so each review's
        // clone starts ready; an error here is a template that does not compile.
        let rule = format!("{package}.violation");
        engine
            .compile_with_entrypoint(&rule.as_str().into())
            .map_err(|e| SettingsError::new(join(at, &source_at), rego::error(&e)))?;
        Ok(Self {
            name,
            kind,
            engine,
            rule,
            rego_v1,
            schema: document
                .spec
                .crd
                .spec
                .validation
                .and_then(|v| v.open_api_v3_schema),
            operations: target.operations.clone(),
        })
    }

    /// The template's name (the lowercase kind).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The kind of its Constraints.
    #[must_use]
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// Whether its Rego is v1 (`version: v1`); v0 otherwise, as Gatekeeper.
    #[must_use]
    pub fn is_rego_v1(&self) -> bool {
        self.rego_v1
    }

    /// The schema of its Constraints' `spec.parameters`, when it declares one.
    #[must_use]
    pub fn schema(&self) -> Option<&serde_json::Value> {
        self.schema.as_ref()
    }

    /// The operations it applies to at the webhook (`targets[].operations`); empty means
    /// Gatekeeper's default (every operation the webhook is registered for).
    #[must_use]
    pub fn operations(&self) -> &[String] {
        &self.operations
    }

    /// The rule evaluated per Constraint: `data.<package>.violation`.
    #[must_use]
    pub fn rule(&self) -> &str {
        &self.rule
    }

    /// The prepared engine (clone it to evaluate).
    #[must_use]
    pub fn engine(&self) -> &regorus::Engine {
        &self.engine
    }
}

/// The template's Rego and where it sits: the legacy `rego`/`libs` fields win over a `code`
/// entry of engine `Rego` (conversion.go overwrites it) and are always v0.
fn rego_source(target: &Target, at: &str) -> Result<(RegoSource, String), SettingsError> {
    if let Some(rego) = &target.rego {
        return Ok((
            RegoSource {
                rego: rego.clone(),
                libs: target.libs.clone(),
                version: String::new(),
            },
            "spec.targets[0].rego".to_owned(),
        ));
    }
    for (index, code) in target.code.iter().enumerate() {
        if code.engine == "Rego" {
            let source_at = format!("spec.targets[0].code[{index}].source");
            let source: RegoSource =
                serde_path_to_error::deserialize(&code.source).map_err(|e| {
                    SettingsError::new(
                        join(at, &format!("{source_at}.{}", e.path())),
                        e.inner().to_string(),
                    )
                })?;
            return Ok((source, format!("{source_at}.rego")));
        }
    }
    let engines: Vec<&str> = target.code.iter().map(|c| c.engine.as_str()).collect();
    Err(SettingsError::new(
        join(at, "spec.targets[0]"),
        if engines.is_empty() {
            "the target has no Rego code (`rego` or a `code` entry of engine Rego)".to_owned()
        } else {
            format!(
                "the target has no Rego code, only {}: Palisade runs Rego, not CEL (K8sNativeValidation)",
                engines.join(", ")
            )
        },
    ))
}

fn join(at: &str, field: &str) -> String {
    match (at.is_empty(), field.is_empty()) {
        (true, _) => field.to_owned(),
        (false, true) => at.to_owned(),
        (false, false) => format!("{at}.{field}"),
    }
}
