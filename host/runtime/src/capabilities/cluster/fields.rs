//! Field selectors as `k8s.io/apimachinery/pkg/fields` parses them (`ParseSelector`:
//! `splitTerms`, `splitTerm`, `UnescapeValue`), matched against any dotted path of an object.
//!
//! An API server accepts only a few fields per kind (`metadata.name`, `metadata.namespace`,
//! `status.phase`, `spec.nodeName` for Pods, ...) and refuses the others; this store accepts
//! every dotted path, so a selector it answers may be one a real cluster refuses.

use std::borrow::Cow;

use serde_json::Value;

/// A field selector: every term must match; no term at all matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSelector {
    terms: Vec<Term>,
}

/// `path=value` (`hasTerm`) or `path!=value` (`notHasTerm`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    path: String,
    value: String,
    equal: bool,
}

/// The operators in the order `splitTerm` tries them at each character: `==` before `=`, so
/// `a==b` is not `a` = `=b`.
const OPERATORS: [&str; 3] = ["!=", "==", "="];

impl FieldSelector {
    /// Parses `selector`: comma-separated `path=value`, `path==value` or `path!=value` terms.
    /// In a value, `\,`, `\=` and `\\` stand for `,`, `=` and `\`; an unescaped `,` separates
    /// terms. The path is everything before the first operator, taken as written (no escapes,
    /// no trimming); empty terms are skipped.
    ///
    /// # Errors
    /// A term without an operator, an unknown escape (`\x`, a trailing `\`), or an unescaped
    /// `=` in a value, naming the selector and the term.
    pub(crate) fn parse(selector: &str) -> Result<Self, String> {
        let mut parts = split_terms(selector);
        // ParseSelector sorts the terms, so the first error it reports is the first in order.
        parts.sort_unstable();
        let mut terms = Vec::new();
        for part in parts {
            if part.is_empty() {
                continue;
            }
            let Some((path, operator, raw)) = split_term(part) else {
                return Err(format!(
                    "invalid field selector {selector:?}: can't understand {part:?} (expected \
                     path=value, path==value or path!=value)"
                ));
            };
            let value = unescape(raw).map_err(|problem| {
                format!("invalid field selector {selector:?}: in {part:?}: {problem}")
            })?;
            terms.push(Term {
                path: path.to_owned(),
                value,
                equal: operator != "!=",
            });
        }
        Ok(Self { terms })
    }

    /// Whether `object` satisfies every term. A field compares by its text: a string as it is,
    /// a number or boolean as its JSON (`3`, `true`), an object or array as its compact JSON,
    /// and a missing or null field as "" (so `spec.nodeName=` matches Pods without one and
    /// `status.phase!=Failed` matches objects without a status).
    pub(crate) fn matches(&self, object: &Value) -> bool {
        self.terms
            .iter()
            .all(|term| (field_text(object, &term.path) == term.value) == term.equal)
    }
}

/// The text of the field at `path` (`.`-separated keys; arrays are not entered).
fn field_text<'a>(object: &'a Value, path: &str) -> Cow<'a, str> {
    let mut current = object;
    for key in path.split('.') {
        match current.get(key) {
            Some(next) => current = next,
            None => return Cow::Borrowed(""),
        }
    }
    match current {
        Value::Null => Cow::Borrowed(""),
        Value::String(text) => Cow::Borrowed(text),
        other => Cow::Owned(other.to_string()),
    }
}

/// `splitTerms`: splits at commas not escaped by a backslash; escapes stay in the terms.
fn split_terms(selector: &str) -> Vec<&str> {
    if selector.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in selector.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(selector.get(start..i).unwrap_or_default());
            start = i + 1;
        }
    }
    terms.push(selector.get(start..).unwrap_or_default());
    terms
}

/// `splitTerm`: the path before the first operator, the operator, the raw value after it.
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    term.char_indices().find_map(|(i, _)| {
        let rest = term.get(i..)?;
        let operator = OPERATORS.into_iter().find(|op| rest.starts_with(op))?;
        Some((term.get(..i)?, operator, rest.get(operator.len()..)?))
    })
}

/// `UnescapeValue`: `\\`, `\,` and `\=` are the characters; any other escape, a trailing `\`
/// or an unescaped `,` or `=` is an error.
fn unescape(raw: &str) -> Result<String, String> {
    let mut value = String::with_capacity(raw.len());
    let mut escaped = false;
    for c in raw.chars() {
        if escaped {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(format!("invalid escape sequence \\{c}"));
            }
            value.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            ',' | '=' => return Err(format!("unescaped character {c:?} in the value")),
            _ => value.push(c),
        }
    }
    if escaped {
        return Err("invalid escape sequence \\ at the end of the value".to_owned());
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]

    use serde_json::json;

    use super::*;

    fn pod() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"nodeName": "node-1", "hostNetwork": true, "priority": 7},
            "status": {"phase": "Running"},
        })
    }

    fn matches(selector: &str, object: &Value) -> bool {
        FieldSelector::parse(selector).unwrap().matches(object)
    }

    #[test]
    fn equality_and_inequality() {
        let pod = pod();
        assert!(matches("metadata.name=web", &pod));
        assert!(matches("metadata.name==web", &pod));
        assert!(!matches("metadata.name=db", &pod));
        assert!(matches("metadata.name!=db", &pod));
        assert!(!matches("metadata.name!=web", &pod));
        assert!(matches(
            "metadata.namespace=shop,status.phase=Running",
            &pod
        ));
        assert!(!matches(
            "metadata.namespace=shop,status.phase=Failed",
            &pod
        ));
    }

    #[test]
    fn a_missing_field_compares_as_empty() {
        let pod = pod();
        let unscheduled = json!({"metadata": {"name": "new"}, "spec": {}});
        assert!(matches("spec.nodeName=", &unscheduled));
        assert!(!matches("spec.nodeName=", &pod));
        assert!(matches("spec.nodeName!=node-1", &unscheduled));
        assert!(matches("status.phase!=Failed", &unscheduled));
        assert!(matches(
            "spec.nodeName=",
            &json!({"spec": {"nodeName": null}})
        ));
    }

    #[test]
    fn numbers_and_booleans_compare_by_their_json() {
        let pod = pod();
        assert!(matches("spec.hostNetwork=true", &pod));
        assert!(matches("spec.priority=7", &pod));
        assert!(!matches("spec.priority=07", &pod));
        assert!(matches("spec=", &json!({})));
        assert!(matches(
            r#"spec.ports=[1\,2]"#,
            &json!({"spec": {"ports": [1, 2]}})
        ));
    }

    #[test]
    fn empty_selectors_and_terms_match_everything() {
        let pod = pod();
        assert!(matches("", &pod));
        assert!(matches(",,", &pod));
        assert!(matches("metadata.name=web,", &pod));
    }

    #[test]
    fn escapes_in_values() {
        let object = json!({"metadata": {"name": "a,b=c\\d"}});
        assert!(matches(r"metadata.name=a\,b\=c\\d", &object));
        assert!(!matches(r"metadata.name=a\,b", &object));
        // An escaped comma does not split the selector.
        let selector = FieldSelector::parse(r"a=x\,y,b=z").unwrap();
        assert_eq!(selector.terms.len(), 2);
        assert!(selector.matches(&json!({"a": "x,y", "b": "z"})));
    }

    #[test]
    fn the_first_operator_splits_the_term() {
        // `a=b=c`: the value `b=c` holds an unescaped `=`.
        let error = FieldSelector::parse("a=b=c").unwrap_err();
        assert_eq!(
            error,
            "invalid field selector \"a=b=c\": in \"a=b=c\": unescaped character '=' in the value"
        );
        // `==` is one operator, `!=` too, and a path keeps its spaces.
        assert!(matches("a==b", &json!({"a": "b"})));
        assert!(
            FieldSelector::parse("a!==b")
                .unwrap_err()
                .contains("unescaped character '='")
        );
        assert!(matches("a =b", &json!({"a ": "b"})));
        assert!(!matches("a =b", &json!({"a": "b"})));
    }

    #[test]
    fn malformed_selectors_are_refused() {
        assert_eq!(
            FieldSelector::parse("metadata.name").unwrap_err(),
            "invalid field selector \"metadata.name\": can't understand \"metadata.name\" \
             (expected path=value, path==value or path!=value)"
        );
        assert!(
            FieldSelector::parse(r"a=x\y")
                .unwrap_err()
                .contains(r"invalid escape sequence \y")
        );
        assert!(
            FieldSelector::parse(r"a=x\!")
                .unwrap_err()
                .contains(r"invalid escape sequence \!")
        );
        assert!(
            FieldSelector::parse(r"a=x\")
                .unwrap_err()
                .contains("at the end of the value")
        );
        // Terms are sorted before they are read: the first error in sorted order is reported.
        assert!(
            FieldSelector::parse("z,a")
                .unwrap_err()
                .contains("can't understand \"a\"")
        );
    }
}
