//! Gatekeeper's admission side on regorus: a ConstraintTemplate and Constraints of its kind,
//! unchanged, evaluated as Gatekeeper evaluates them. Per Constraint that matches, the template's
//! `violation` rule runs with `input = {"review": ..., "parameters": ...}` (frameworks
//! `drivers/rego/rego.go`, the hook); members with a string `msg` are violations, `details`
//! defaults to `{}`; an evaluation or match error is itself a violation whose message is the
//! error. At the webhook, `deny` violations deny with `[name] msg` lines (gatekeeper
//! `pkg/webhook/policy.go`), `warn` ones become warnings, `dryrun` ones are only recorded.

pub mod constraint;
pub mod inventory;
mod refs;
pub mod review;
pub mod schema;
pub mod selector;
pub mod template;

use palisade_sdk::wire::{AdmissionRequest, Operation, PolicyMetadata, Rule, Verdict};
use palisade_sdk::{AdmissionPolicy, Host, PolicyError, PolicySettings, SettingsError};
use serde::Deserialize;

pub use constraint::{Action, Constraint};
pub use inventory::Inventory;
pub use review::Review;
pub use template::Template;

use crate::rego;

/// The reason of a denial by a Constraint.
pub const VIOLATION: &str = "constraint-violation";
/// The audit annotation recording `dryrun` violations.
pub const DRYRUN_ANNOTATION: &str = "dryrun-violations";

/// The Gatekeeper policy.
pub struct Gatekeeper;

/// The settings: one ConstraintTemplate, the Constraints of its kind and, optionally, the
/// objects templates read as `data.inventory`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// The ConstraintTemplate, as applied to a cluster.
    #[serde(default)]
    pub template: Option<serde_json::Value>,
    /// Constraints of the template's kind, as applied to a cluster.
    #[serde(default)]
    pub constraints: Vec<serde_json::Value>,
    /// Objects templates read as `data.inventory` (what Gatekeeper's sync would give); Namespace
    /// objects among them also give Namespace labels to `namespaceSelector`.
    #[serde(default)]
    pub inventory: Vec<serde_json::Value>,
}

impl PolicySettings for Settings {
    fn validate(&self) -> Result<(), SettingsError> {
        if self.template.is_none() {
            return Err(SettingsError::new(
                "template",
                "a ConstraintTemplate is required",
            ));
        }
        if self.constraints.is_empty() {
            return Err(SettingsError::new(
                "constraints",
                "at least one Constraint of the template's kind is required",
            ));
        }
        Ok(())
    }
}

/// A template, its Constraints and the inventory, compiled once per instance.
#[derive(Debug, Clone)]
pub struct Prepared {
    template: Template,
    engine: regorus::Engine,
    constraints: Vec<Constraint>,
    inventory: Inventory,
}

/// One violation of one Constraint.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Violation {
    /// The Constraint's name.
    pub constraint: String,
    /// The Constraint's kind.
    pub kind: String,
    /// The message (`msg`), or the error when the Constraint could not be evaluated.
    pub msg: String,
    /// `details`, `{}` when the template gives none.
    pub details: serde_json::Value,
    /// What happens to it at the enforcement point it was reviewed for.
    pub actions: Vec<Action>,
}

impl Prepared {
    /// Puts a template, its Constraints (sorted by name, as Gatekeeper orders results) and an
    /// inventory together.
    ///
    /// # Errors
    /// regorus's message when the inventory cannot be added as data.
    pub fn new(
        template: Template,
        mut constraints: Vec<Constraint>,
        inventory: Inventory,
    ) -> Result<Self, String> {
        let mut engine = template.engine().clone();
        if !inventory.is_empty() {
            let data = serde_json::json!({ "inventory": inventory.document() });
            engine
                .add_data(regorus::Value::from(data))
                .map_err(|e| rego::error(&e))?;
            // Prepares again now that data changed, so reviews start from a ready engine.
            engine
                .compile_with_entrypoint(&template.rule().into())
                .map_err(|e| rego::error(&e))?;
        }
        constraints.sort_by(|a, b| a.name().cmp(b.name()));
        Ok(Self {
            template,
            engine,
            constraints,
            inventory,
        })
    }

    /// The template.
    #[must_use]
    pub fn template(&self) -> &Template {
        &self.template
    }

    /// The Constraints, by name.
    #[must_use]
    pub fn constraints(&self) -> &[Constraint] {
        &self.constraints
    }

    /// The inventory.
    #[must_use]
    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// Reviews one request or object for an enforcement point (`validation.gatekeeper.sh`,
    /// `gator.gatekeeper.sh`): the violations of every Constraint that matches, in Constraint
    /// order. Constraints with no action at that point are skipped.
    #[must_use]
    pub fn review(&self, review: &Review, point: &str) -> Vec<Violation> {
        let mut violations = Vec::new();
        for constraint in &self.constraints {
            let actions = constraint.actions_at(point);
            if actions.is_empty() {
                continue;
            }
            let violation = |msg: String, details: serde_json::Value| Violation {
                constraint: constraint.name().to_owned(),
                kind: constraint.kind().to_owned(),
                msg,
                details,
                actions: actions.clone(),
            };
            match constraint.matches(review) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(error) => {
                    violations.push(violation(error, serde_json::json!({})));
                    continue;
                }
            }
            let mut engine = self.engine.clone();
            engine.set_input(rego::object([
                ("review", review.value().clone()),
                ("parameters", constraint.parameters().clone()),
            ]));
            match engine.eval_rule(self.template.rule().to_owned()) {
                Ok(result) => {
                    for (msg, details) in results(&result) {
                        violations.push(violation(msg, details));
                    }
                }
                Err(error) => {
                    violations.push(violation(rego::error(&error), serde_json::json!({})))
                }
            }
        }
        violations
    }
}

/// The members of a `violation` set that Gatekeeper keeps: objects with a string `msg`.
fn results(value: &regorus::Value) -> Vec<(String, serde_json::Value)> {
    let members: Vec<&regorus::Value> = match value {
        regorus::Value::Set(set) => set.iter().collect(),
        regorus::Value::Array(array) => array.iter().collect(),
        _ => Vec::new(),
    };
    members
        .into_iter()
        .filter_map(|member| {
            let msg = rego::string_at(member, "msg")?.to_owned();
            let details = match member {
                regorus::Value::Object(map) => map
                    .get(&regorus::Value::from("details"))
                    .map_or_else(|| serde_json::json!({}), rego::to_json),
                _ => serde_json::json!({}),
            };
            Some((msg, details))
        })
        .collect()
}

/// Compiles settings: the template, then each Constraint against it, then the inventory.
///
/// # Errors
/// [`SettingsError`] naming the template field, the Constraint (`constraints[i]...`) or the
/// inventory object (`inventory[i]`) that cannot be used.
pub fn compile(settings: &Settings) -> Result<Prepared, SettingsError> {
    let template = settings
        .template
        .as_ref()
        .ok_or_else(|| SettingsError::new("template", "a ConstraintTemplate is required"))?;
    let template = Template::from_value(template, "template")?;
    let constraints = settings
        .constraints
        .iter()
        .enumerate()
        .map(|(i, c)| Constraint::from_value(c, &template, &format!("constraints[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let mut names: Vec<&str> = constraints.iter().map(Constraint::name).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|w| w.first() == w.get(1)) {
        return Err(SettingsError::new(
            "constraints",
            format!(
                "two Constraints are named {:?}",
                pair.first().unwrap_or(&"")
            ),
        ));
    }
    let inventory = Inventory::from_objects(&settings.inventory)
        .map_err(|(i, m)| SettingsError::new(format!("inventory[{i}]"), m))?;
    Prepared::new(template, constraints, inventory).map_err(|m| SettingsError::new("inventory", m))
}

impl AdmissionPolicy for Gatekeeper {
    type Settings = Settings;
    type Prepared = Prepared;

    fn metadata() -> PolicyMetadata {
        PolicyMetadata {
            name: env!("CARGO_PKG_NAME").to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description: "Gatekeeper ConstraintTemplates and Constraints, unchanged, on regorus"
                .to_owned(),
            // Gatekeeper's validating webhook registers CREATE and UPDATE of everything.
            rules: vec![Rule::new(
                &["*"],
                &["*"],
                &["*"],
                &[Operation::Create, Operation::Update],
            )],
            mutating: false,
        }
    }

    fn prepare(settings: Settings) -> Result<Prepared, SettingsError> {
        compile(&settings)
    }

    fn evaluate(
        request: &AdmissionRequest,
        prepared: &Prepared,
        _host: &dyn Host,
    ) -> Result<Verdict, PolicyError> {
        evaluate(request, prepared)
    }
}

/// The webhook's answer to a request: denied with every `deny` violation as `[name] msg`
/// (one per line), warnings for `warn` ones, `dryrun` ones in an audit annotation.
///
/// # Errors
/// [`PolicyError::InvalidRequest`] when the request's objects are not Kubernetes objects.
pub fn evaluate(request: &AdmissionRequest, prepared: &Prepared) -> Result<Verdict, PolicyError> {
    let operations = prepared.template().operations();
    if !operations.is_empty()
        && !operations
            .iter()
            .any(|o| o == "*" || o == request.operation.as_str())
    {
        return Ok(Verdict::not_applicable(format!(
            "the template {} applies to {} only",
            prepared.template().name(),
            operations.join(", ")
        )));
    }
    // Most requests match no Constraint: learn that before converting the objects for Rego.
    let probe = Review::for_matching(request, prepared.inventory())?;
    let applies = prepared.constraints().iter().any(|c| {
        !c.actions_at(constraint::WEBHOOK).is_empty() && c.matches(&probe).unwrap_or(true)
    });
    if !applies {
        return Ok(Verdict::not_applicable(format!(
            "no {} Constraint applies to this request",
            prepared.template().kind()
        )));
    }
    let review = probe.with_value(request, prepared.inventory())?;
    let violations = prepared.review(&review, constraint::WEBHOOK);
    let line = |v: &Violation| format!("[{}] {}", v.constraint, v.msg);
    let with = |action: Action| {
        violations
            .iter()
            .filter(move |v| v.actions.contains(&action))
            .map(line)
            .collect::<Vec<_>>()
    };
    let (deny, warn, dryrun) = (with(Action::Deny), with(Action::Warn), with(Action::Dryrun));
    let mut verdict = if deny.is_empty() {
        Verdict::allow()
    } else {
        Verdict::deny(VIOLATION, deny.join("\n")).with_code(403)
    };
    for warning in warn {
        verdict = verdict.with_warning(warning);
    }
    if !dryrun.is_empty() {
        verdict = verdict.with_audit_annotation(DRYRUN_ANNOTATION, dryrun.join("\n"));
    }
    Ok(verdict)
}
