//! Constraints (`constraints.gatekeeper.sh` v1beta1, v1alpha1, v1): which objects a template
//! applies to (`spec.match`), with what parameters and what happens to a violation
//! (`spec.enforcementAction`). Matching mirrors gatekeeper `pkg/mutation/match/match.go` and
//! `pkg/target/matcher.go`: every criterion must pass, for the object or the old object.

use std::collections::BTreeMap;

use serde::Deserialize;

use palisade_sdk::SettingsError;

use super::review::{Namespace, Review, Subject};
use super::schema;
use super::selector::{LabelSelector, Selector};
use super::template::Template;

/// The group of Constraints.
pub const GROUP: &str = "constraints.gatekeeper.sh";
/// The enforcement point of Gatekeeper's validating webhook (scoped actions).
pub const WEBHOOK: &str = "validation.gatekeeper.sh";
/// The enforcement point of gator (scoped actions).
pub const GATOR: &str = "gator.gatekeeper.sh";

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
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(default, rename = "match")]
    matching: Option<Match>,
    #[serde(default)]
    parameters: Option<serde_json::Value>,
    #[serde(default)]
    enforcement_action: Option<String>,
    #[serde(default)]
    scoped_enforcement_actions: Vec<Scoped>,
}

/// `spec.match` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Match {
    #[serde(default)]
    kinds: Vec<Kinds>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    namespaces: Vec<String>,
    #[serde(default)]
    excluded_namespaces: Vec<String>,
    #[serde(default)]
    label_selector: Option<LabelSelector>,
    #[serde(default)]
    namespace_selector: Option<LabelSelector>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    source: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Kinds {
    #[serde(default)]
    api_groups: Vec<String>,
    #[serde(default)]
    kinds: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Scoped {
    #[serde(default)]
    action: String,
    #[serde(default)]
    enforcement_points: Vec<Point>,
}

#[derive(Debug, Clone, Deserialize)]
struct Point {
    #[serde(default)]
    name: String,
}

/// What happens to a violation at an enforcement point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The request is denied.
    Deny,
    /// The request is allowed with a warning.
    Warn,
    /// The violation is recorded only (audit).
    Dryrun,
}

impl Action {
    fn parse(action: &str) -> Option<Self> {
        // Gatekeeper compares case-insensitively (util.ValidateEnforcementAction lowercases).
        match action.to_ascii_lowercase().as_str() {
            "deny" => Some(Self::Deny),
            "warn" => Some(Self::Warn),
            "dryrun" => Some(Self::Dryrun),
            _ => None,
        }
    }
}

/// An action and the enforcement point it applies at: `None` = every point (`deny`, `warn`,
/// `dryrun`), `*` too.
type Scope = (Option<String>, Action);

/// A Constraint, checked against its template and compiled.
#[derive(Debug, Clone)]
pub struct Constraint {
    name: String,
    kind: String,
    matching: Option<Compiled>,
    parameters: regorus::Value,
    /// The actions per enforcement point.
    actions: Vec<Scope>,
}

#[derive(Debug, Clone)]
struct Compiled {
    kinds: Vec<Kinds>,
    scope: Option<String>,
    namespaces: Vec<String>,
    excluded_namespaces: Vec<String>,
    label_selector: Option<Selector>,
    namespace_selector: Option<Selector>,
    name: Option<String>,
    generated_only: bool,
}

impl Constraint {
    /// Reads a Constraint of `template`'s kind; `at` is where it sits in the settings.
    ///
    /// # Errors
    /// [`SettingsError`] naming the field: not a Constraint of the template's kind, no name or a
    /// name over 63 characters, an unknown enforcement action, a malformed selector, or
    /// parameters the template's schema refuses.
    pub fn from_value(
        value: &serde_json::Value,
        template: &Template,
        at: &str,
    ) -> Result<Self, SettingsError> {
        let field = |f: &str| {
            if at.is_empty() {
                f.to_owned()
            } else {
                format!("{at}.{f}")
            }
        };
        let document: Document = serde_path_to_error::deserialize(value)
            .map_err(|e| SettingsError::new(field(&e.path().to_string()), e.inner().to_string()))?;
        let group = document.api_version.split_once('/').map_or("", |(g, _)| g);
        if group != GROUP {
            return Err(SettingsError::new(
                field("apiVersion"),
                format!("expected {GROUP}/v1beta1, found {:?}", document.api_version),
            ));
        }
        if document.kind != template.kind() {
            return Err(SettingsError::new(
                field("kind"),
                format!(
                    "the template {:?} defines the kind {:?}, not {:?}",
                    template.name(),
                    template.kind(),
                    document.kind
                ),
            ));
        }
        let name = document.metadata.name;
        if name.is_empty() || name.len() > 63 {
            return Err(SettingsError::new(
                field("metadata.name"),
                "a Constraint's name must have 1 to 63 characters",
            ));
        }
        let spec = document.spec;
        let parameters = spec.parameters.unwrap_or_else(|| serde_json::json!({}));
        if let Some(schema) = template.schema() {
            schema::validate(schema, &parameters, "spec.parameters")
                .map_err(|m| SettingsError::new(at, m))?;
        }
        let parameters = regorus::Value::from(parameters);
        let actions = actions(
            spec.enforcement_action.as_deref(),
            &spec.scoped_enforcement_actions,
        )
        .map_err(|(f, m)| SettingsError::new(field(&f), m))?;
        let matching = spec
            .matching
            .map(|m| {
                compile(m)
                    .map_err(|(f, e)| SettingsError::new(field(&format!("spec.match.{f}")), e))
            })
            .transpose()?;
        Ok(Self {
            name,
            kind: document.kind,
            matching,
            parameters,
            actions,
        })
    }

    /// The Constraint's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its kind (its template's).
    #[must_use]
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// `spec.parameters` (`{}` when absent), as the template reads `input.parameters`.
    #[must_use]
    pub fn parameters(&self) -> &regorus::Value {
        &self.parameters
    }

    /// Its actions at an enforcement point (`validation.gatekeeper.sh`, `gator.gatekeeper.sh`):
    /// one for `deny`, `warn` and `dryrun`; for `scoped`, those listed for the point (or `*`),
    /// possibly none.
    #[must_use]
    pub fn actions_at(&self, point: &str) -> Vec<Action> {
        let mut actions: Vec<Action> = self
            .actions
            .iter()
            .filter(|(p, _)| p.as_deref().is_none_or(|p| p == point || p == "*"))
            .map(|(_, a)| *a)
            .collect();
        actions.sort();
        actions.dedup();
        actions
    }

    /// Whether the Constraint applies to the review (its object or old object).
    ///
    /// # Errors
    /// A message when matching cannot be decided: neither object nor old object, or a
    /// `namespaceSelector` for a namespaced object whose Namespace is unknown (Gatekeeper
    /// rejects the request then).
    pub fn matches(&self, review: &Review) -> Result<bool, String> {
        let Some(matching) = &self.matching else {
            return Ok(true);
        };
        let subjects = review.subjects();
        if subjects.is_empty() {
            return Err("unable to match: neither object nor old object are defined".to_owned());
        }
        for subject in subjects {
            if matching.matches(subject, review.namespace())? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

fn actions(action: Option<&str>, scoped: &[Scoped]) -> Result<Vec<Scope>, (String, String)> {
    let action = action.unwrap_or("deny");
    if action.eq_ignore_ascii_case("scoped") {
        if scoped.is_empty() {
            return Err((
                "spec.scopedEnforcementActions".to_owned(),
                "enforcementAction scoped needs scopedEnforcementActions".to_owned(),
            ));
        }
        let mut actions = Vec::new();
        for (index, s) in scoped.iter().enumerate() {
            let parsed = Action::parse(&s.action).ok_or_else(|| {
                (
                    format!("spec.scopedEnforcementActions[{index}].action"),
                    format!("{:?} is not deny, warn or dryrun", s.action),
                )
            })?;
            if s.enforcement_points.is_empty() {
                actions.push((Some("*".to_owned()), parsed));
            }
            for point in &s.enforcement_points {
                actions.push((Some(point.name.clone()), parsed));
            }
        }
        return Ok(actions);
    }
    let parsed = Action::parse(action).ok_or_else(|| {
        (
            "spec.enforcementAction".to_owned(),
            format!("{action:?} is not deny, dryrun, warn or scoped"),
        )
    })?;
    Ok(vec![(None, parsed)])
}

fn compile(m: Match) -> Result<Compiled, (String, String)> {
    let label_selector = m
        .label_selector
        .as_ref()
        .map(Selector::new)
        .transpose()
        .map_err(|e| ("labelSelector".to_owned(), e))?;
    let namespace_selector = m
        .namespace_selector
        .as_ref()
        .map(Selector::new)
        .transpose()
        .map_err(|e| ("namespaceSelector".to_owned(), e))?;
    let generated_only = match m.source.as_deref() {
        None | Some("" | "All" | "Original") => false,
        Some("Generated") => true,
        Some(other) => {
            return Err((
                "source".to_owned(),
                format!("{other:?} is not All, Original or Generated"),
            ));
        }
    };
    Ok(Compiled {
        kinds: m.kinds,
        scope: m.scope,
        namespaces: m.namespaces,
        excluded_namespaces: m.excluded_namespaces,
        label_selector,
        namespace_selector,
        name: m.name.filter(|n| !n.is_empty()),
        generated_only,
    })
}

impl Compiled {
    fn matches(&self, subject: &Subject, ns: Option<&Namespace>) -> Result<bool, String> {
        // Palisade reviews what the API server sends (Gatekeeper's `Original` source); objects
        // generated by expansion are not produced.
        if self.generated_only {
            return Ok(false);
        }
        let is_namespace = subject.is_namespace();
        // The namespace the name criteria test: a Namespace's own name, the request's Namespace,
        // or the one the object declares (gator).
        let namespace = if is_namespace {
            Some(subject.name.as_str())
        } else if let Some(ns) = ns {
            Some(ns.name.as_str())
        } else if subject.namespace.is_empty() {
            None
        } else {
            Some(subject.namespace.as_str())
        };
        let kinds = self.kinds.is_empty()
            || self.kinds.iter().any(|k| {
                (k.kinds.is_empty() || k.kinds.iter().any(|x| x == "*" || *x == subject.kind))
                    && (k.api_groups.is_empty()
                        || k.api_groups.iter().any(|g| g == "*" || *g == subject.group))
            });
        if !kinds {
            return Ok(false);
        }
        let has_namespace = !subject.namespace.is_empty() || ns.is_some();
        let scope = match self.scope.as_deref() {
            Some("Cluster") => is_namespace || !has_namespace,
            Some("Namespaced") => !is_namespace && has_namespace,
            // `*`, absent, and anything else (typos included) match everything, as Gatekeeper.
            _ => true,
        };
        if !scope {
            return Ok(false);
        }
        if !self.namespaces.is_empty()
            && let Some(namespace) = namespace
            && !self.namespaces.iter().any(|w| wildcard(w, namespace))
        {
            return Ok(false);
        }
        if let Some(namespace) = namespace
            && self
                .excluded_namespaces
                .iter()
                .any(|w| wildcard(w, namespace))
        {
            return Ok(false);
        }
        if let Some(selector) = &self.label_selector
            && !selector.matches(&subject.labels)
        {
            return Ok(false);
        }
        if let Some(selector) = &self.namespace_selector {
            let labels: Option<&BTreeMap<String, String>> = if is_namespace {
                Some(&subject.labels)
            } else if let Some(ns) = ns {
                match &ns.labels {
                    Some(labels) => Some(labels),
                    None => {
                        return Err(format!(
                            "namespace selector for namespace-scoped object but missing Namespace {:?}: give the Namespace object in the inventory",
                            ns.name
                        ));
                    }
                }
            } else if subject.namespace.is_empty() {
                None
            } else {
                return Err(format!(
                    "namespace selector for namespace-scoped object but missing Namespace {:?}: give the Namespace object in the inventory",
                    subject.namespace
                ));
            };
            if let Some(labels) = labels
                && !selector.matches(labels)
            {
                return Ok(false);
            }
        }
        if let Some(name) = &self.name
            && !wildcard(name, &subject.name)
            && !(name.ends_with('*')
                && !subject.generate_name.is_empty()
                && wildcard(name, &subject.generate_name))
        {
            return Ok(false);
        }
        Ok(true)
    }
}

/// Gatekeeper's wildcard (`pkg/wildcard`, `util.Wildcard`): `prefix*`, `*suffix`, `*infix*`
/// or an exact string.
#[must_use]
pub fn wildcard(pattern: &str, candidate: &str) -> bool {
    match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
        (Some(rest), Some(_)) => candidate.contains(rest.strip_suffix('*').unwrap_or(rest)),
        (Some(suffix), None) => candidate.ends_with(suffix),
        (None, Some(prefix)) => candidate.starts_with(prefix),
        (None, None) => pattern == candidate,
    }
}

#[cfg(test)]
mod tests {
    use super::wildcard;

    #[test]
    fn wildcards_match_prefix_suffix_infix_and_exact() {
        assert!(wildcard("kube-*", "kube-system"));
        assert!(!wildcard("kube-*", "my-kube-system"));
        assert!(wildcard("*-system", "gatekeeper-system"));
        assert!(!wildcard("*-system", "system-a"));
        assert!(wildcard("*stem*", "kube-system"));
        assert!(wildcard("*", "anything"));
        assert!(wildcard("default", "default"));
        assert!(!wildcard("default", "default2"));
    }
}
