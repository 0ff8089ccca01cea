//! Kubernetes label selectors (`metav1.LabelSelector`) as Gatekeeper's `labelSelector` and
//! `namespaceSelector` use them: `matchLabels` and `matchExpressions`, ANDed; an empty selector
//! selects everything (apimachinery `LabelSelectorAsSelector`).

use std::collections::BTreeMap;

use serde::Deserialize;

/// A label selector as written in a Constraint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Labels that must be present with these values.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    /// Requirements on labels.
    #[serde(default)]
    pub match_expressions: Vec<Requirement>,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Requirement {
    /// The label's key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// The values of `In` and `NotIn`; empty for `Exists` and `DoesNotExist`.
    #[serde(default)]
    pub values: Vec<String>,
}

/// A selector checked once, ready to match.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    requirements: Vec<Compiled>,
}

#[derive(Debug, Clone)]
enum Compiled {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Selector {
    /// Checks a selector as apimachinery does when it converts one.
    ///
    /// # Errors
    /// A message naming the requirement: an unknown operator, values on `Exists` or
    /// `DoesNotExist`, no values on `In` or `NotIn`, an empty key.
    pub fn new(selector: &LabelSelector) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for (key, value) in &selector.match_labels {
            requirements.push(Compiled::In(key.clone(), vec![value.clone()]));
        }
        for (index, r) in selector.match_expressions.iter().enumerate() {
            let at = format!("matchExpressions[{index}]");
            if r.key.is_empty() {
                return Err(format!("{at}: key must not be empty"));
            }
            let compiled = match r.operator.as_str() {
                "In" | "NotIn" if r.values.is_empty() => {
                    return Err(format!(
                        "{at}: for 'in', 'notin' operators, values set can't be empty"
                    ));
                }
                "Exists" | "DoesNotExist" if !r.values.is_empty() => {
                    return Err(format!(
                        "{at}: values set must be empty for exists and does not exist"
                    ));
                }
                "In" => Compiled::In(r.key.clone(), r.values.clone()),
                "NotIn" => Compiled::NotIn(r.key.clone(), r.values.clone()),
                "Exists" => Compiled::Exists(r.key.clone()),
                "DoesNotExist" => Compiled::DoesNotExist(r.key.clone()),
                other => {
                    return Err(format!(
                        "{at}: {other:?} is not a valid label selector operator"
                    ));
                }
            };
            requirements.push(compiled);
        }
        Ok(Self { requirements })
    }

    /// Whether labels satisfy every requirement.
    #[must_use]
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| match r {
            Compiled::In(key, values) => labels.get(key).is_some_and(|v| values.contains(v)),
            Compiled::NotIn(key, values) => labels.get(key).is_none_or(|v| !values.contains(v)),
            Compiled::Exists(key) => labels.contains_key(key),
            Compiled::DoesNotExist(key) => !labels.contains_key(key),
        })
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn selector(yaml: serde_json::Value) -> Result<Selector, String> {
        Selector::new(&serde_json::from_value(yaml).unwrap())
    }

    #[test]
    fn empty_selector_selects_everything() {
        assert!(
            selector(serde_json::json!({}))
                .unwrap()
                .matches(&labels(&[]))
        );
    }

    #[test]
    fn match_labels_and_expressions_are_anded() {
        let s = selector(serde_json::json!({
            "matchLabels": {"team": "web"},
            "matchExpressions": [
                {"key": "env", "operator": "NotIn", "values": ["prod"]},
                {"key": "owner", "operator": "Exists"},
                {"key": "legacy", "operator": "DoesNotExist"}
            ]
        }))
        .unwrap();
        assert!(s.matches(&labels(&[("team", "web"), ("owner", "a")])));
        assert!(s.matches(&labels(&[("team", "web"), ("owner", "a"), ("env", "dev")])));
        assert!(!s.matches(&labels(&[("team", "web"), ("owner", "a"), ("env", "prod")])));
        assert!(!s.matches(&labels(&[("team", "db"), ("owner", "a")])));
        assert!(!s.matches(&labels(&[("team", "web")])));
        assert!(!s.matches(&labels(&[("team", "web"), ("owner", "a"), ("legacy", "")])));
    }

    #[test]
    fn malformed_requirements_are_refused_with_their_place() {
        let e = selector(serde_json::json!({"matchExpressions": [{"key": "a", "operator": "In"}]}));
        assert!(e.unwrap_err().starts_with("matchExpressions[0]: "));
        let e = selector(
            serde_json::json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
        );
        assert!(e.is_err());
        let e = selector(
            serde_json::json!({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]}),
        );
        assert!(e.unwrap_err().contains("\"Equals\""));
    }
}
