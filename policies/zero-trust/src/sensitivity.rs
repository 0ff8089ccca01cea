//! Data sensitivity (ours, beyond Istio): routes are labelled `public`, `internal`,
//! `confidential` or `restricted`, and a label may carry a requirement every request to such a
//! route must meet (for example restricted: an mTLS peer from an allowed namespace, a token
//! whose `amr` holds `mfa`, a managed device). Routes and requirements are written in
//! AuthorizationPolicy's own forms (an `operation`; a rule's `from` and `when`), so they match
//! with the same engine. A requirement not met denies, whatever the AuthorizationPolicies say.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::Attributes;
use crate::authorization::{Authorizer, ConfigError, Decision, Effect, Options, RuleName};

/// The labels, least to most sensitive.
pub const LABELS: [&str; 4] = ["public", "internal", "confidential", "restricted"];

/// The `sensitivity` setting as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Settings {
    /// The label of a route no entry of `routes` matches; none by default.
    pub default: Option<String>,
    /// Labelled routes, first match wins: `label` and an Istio `operation` (hosts, ports,
    /// methods, paths and their `not…` forms).
    pub routes: Vec<Map<String, Value>>,
    /// Per label, what a request must meet: an Istio rule's `from` and `when`.
    pub requirements: Map<String, Value>,
}

/// The compiled setting.
#[derive(Debug, Clone, Default)]
pub struct Sensitivity {
    routes: Vec<(&'static str, Authorizer)>,
    default: Option<&'static str>,
    requirements: Vec<(&'static str, Authorizer)>,
}

/// What the setting says of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assessment {
    /// The route's label, if it has one.
    pub label: Option<&'static str>,
    /// Whether the label's requirement (if any) is met.
    pub met: bool,
}

impl Assessment {
    /// The denial of a route whose label's requirement is not met (rule `sensitivity[<label>]`),
    /// decided before any AuthorizationPolicy; `None` when the requirement is met.
    #[must_use]
    pub fn denial(self) -> Option<Decision> {
        (!self.met).then(|| Decision {
            effect: Effect::Deny,
            policy: Some(RuleName::new(format!(
                "sensitivity[{}]",
                self.label.unwrap_or_default()
            ))),
            audited: Vec::new(),
            dry_run: None,
        })
    }
}

fn label(name: &str, at: &str) -> Result<&'static str, ConfigError> {
    LABELS
        .iter()
        .copied()
        .find(|l| *l == name)
        .ok_or_else(|| ConfigError {
            path: at.to_owned(),
            message: format!("{name:?} is not a label ({})", LABELS.join(", ")),
        })
}

/// One rule as a one-policy authorizer; its errors re-rooted at `at`.
fn matcher(rule: &Value, at: &str, inner: &str) -> Result<Authorizer, ConfigError> {
    Authorizer::new(&json!({"spec": {"rules": [rule]}}), Options::default()).map_err(|e| {
        let path = e.path.trim_start_matches('.');
        let rest = path.strip_prefix(inner).unwrap_or(path);
        let path = if rest.is_empty() || rest.starts_with(['.', '[']) {
            format!("{at}{rest}")
        } else {
            format!("{at}.{rest}")
        };
        ConfigError {
            path,
            message: e.message,
        }
    })
}

impl Sensitivity {
    /// Compiles the setting.
    ///
    /// # Errors
    /// [`ConfigError`] with the path under `sensitivity`: an unknown label, a route or
    /// requirement AuthorizationPolicy would refuse, a requirement with `to`.
    pub fn new(settings: &Settings) -> Result<Self, ConfigError> {
        let mut compiled = Self {
            default: settings
                .default
                .as_deref()
                .map(|d| label(d, ".default"))
                .transpose()?,
            ..Self::default()
        };
        for (i, route) in settings.routes.iter().enumerate() {
            let at = format!(".routes[{i}]");
            let mut operation = route.clone();
            let name = match operation.remove("label") {
                Some(Value::String(name)) => label(&name, &format!("{at}.label"))?,
                _ => {
                    return Err(ConfigError {
                        path: format!("{at}.label"),
                        message: format!("each route needs a label ({})", LABELS.join(", ")),
                    });
                }
            };
            let rule = json!({"to": [{"operation": operation}]});
            let matcher = matcher(&rule, &at, "spec.rules[0].to[0].operation")?;
            compiled.routes.push((name, matcher));
        }
        for (name, requirement) in &settings.requirements {
            let at = format!(".requirements.{name}");
            let name = label(name, &at)?;
            if requirement.get("to").is_some() {
                return Err(ConfigError {
                    path: format!("{at}.to"),
                    message: "a requirement has from and when; the routes say where it applies"
                        .into(),
                });
            }
            compiled
                .requirements
                .push((name, matcher(requirement, &at, "spec.rules[0]")?));
        }
        Ok(compiled)
    }

    /// Whether the setting labels nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty() && self.default.is_none()
    }

    /// The request's label and whether its requirement is met.
    #[must_use]
    pub fn assess(&self, request: &Attributes) -> Assessment {
        let label = self
            .routes
            .iter()
            .find(|(_, route)| route.first_match(request).is_some())
            .map(|(name, _)| *name)
            .or(self.default);
        let met = label.is_none_or(|label| {
            self.requirements
                .iter()
                .filter(|(name, _)| *name == label)
                .all(|(_, requirement)| requirement.first_match(request).is_some())
        });
        Assessment { label, met }
    }
}
