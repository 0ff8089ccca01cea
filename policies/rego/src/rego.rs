//! What every home shares of regorus: an engine configured as OPA evaluates (builtin errors
//! make an expression undefined instead of aborting), and conversions between JSON and Rego
//! values.

/// A new engine for Rego v1 (`rego_v1`) or v0, with OPA's non-strict builtin errors.
#[must_use]
pub fn engine(rego_v1: bool) -> regorus::Engine {
    let mut engine = regorus::Engine::new();
    engine.set_rego_v0(!rego_v1);
    engine.set_strict_builtin_errors(false);
    engine
}

/// An error of regorus as one line: `<module>:<line>:<col>: <message>` when regorus points at
/// source (its own rendering spans several lines, with the source line and a caret), then the
/// error's causes.
#[must_use]
pub fn error(error: &anyhow::Error) -> String {
    let mut message = one_line(&error.to_string());
    for cause in error.chain().skip(1) {
        message.push_str(": ");
        message.push_str(&one_line(&cause.to_string()));
    }
    message
}

fn one_line(text: &str) -> String {
    let location = text
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("--> "));
    let what = text.lines().rev().find_map(|l| l.strip_prefix("error: "));
    match (location, what) {
        (Some(location), Some(what)) => format!("{}: {what}", location.trim()),
        _ => text.trim().lines().collect::<Vec<_>>().join(" "),
    }
}

/// A Rego value as JSON: sets become arrays (as OPA serialises them), undefined becomes null.
#[must_use]
pub fn to_json(value: &regorus::Value) -> serde_json::Value {
    match value {
        regorus::Value::Undefined | regorus::Value::Null => serde_json::Value::Null,
        other => serde_json::to_value(other).unwrap_or(serde_json::Value::Null),
    }
}

/// JSON text as a Rego value.
///
/// # Errors
/// The parser's message when the text is not JSON.
pub fn from_json_text(text: &str) -> Result<regorus::Value, String> {
    regorus::Value::from_json_str(text).map_err(|e| error(&e))
}

/// A string-keyed Rego object from its entries.
#[must_use]
pub fn object<'a>(entries: impl IntoIterator<Item = (&'a str, regorus::Value)>) -> regorus::Value {
    regorus::Value::from(
        entries
            .into_iter()
            .map(|(k, v)| (regorus::Value::from(k), v))
            .collect::<std::collections::BTreeMap<_, _>>(),
    )
}

/// The string at `key` of a Rego object.
#[must_use]
pub fn string_at<'a>(value: &'a regorus::Value, key: &str) -> Option<&'a str> {
    match value {
        regorus::Value::Object(map) => match map.get(&regorus::Value::from(key)) {
            Some(regorus::Value::String(s)) => Some(s),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn a_parse_error_is_one_line_with_module_line_and_column() {
        let mut e = engine(false);
        let err = e
            .add_policy("t/template.rego".into(), "package t\n\nx := \n".into())
            .unwrap_err();
        let message = error(&err);
        assert!(
            message.starts_with("t/template.rego:4:1: expecting"),
            "{message}"
        );
        assert!(!message.contains('\n'), "{message}");
    }
}
