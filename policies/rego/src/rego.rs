//! What every home shares of regorus: an engine configured as OPA evaluates (builtin errors
//! make an expression undefined instead of aborting), and conversions between JSON and Rego
//! values.

mod deprecated;

/// A new engine for Rego v1 (`rego_v1`) or v0, with OPA's non-strict builtin errors; a v0
/// engine also has OPA's deprecated builtins (`re_match`, `any`, `all`, `set_diff`, `cast_*`),
/// which OPA keeps for v0 and legacy Gatekeeper templates use.
#[must_use]
pub fn engine(rego_v1: bool) -> regorus::Engine {
    let mut engine = regorus::Engine::new();
    engine.set_rego_v0(!rego_v1);
    engine.set_strict_builtin_errors(false);
    if !rego_v1 {
        // A fresh engine has no extensions yet: adding them cannot clash.
        let _ = deprecated::add(&mut engine);
    }
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

/// A request's JSON (an object, an old object, options) as a Rego value, read through the tape
/// the host built when it read the review: the text is not scanned again, and object keys are
/// not interned (regorus's `from_json_str` hashes every key into a table to share repeated ones;
/// a Kubernetes object's keys repeat little, and the hashing cost a quarter of the conversion).
/// The same value as [`from_json_text`] gives for the same text.
///
/// # Errors
/// The reader's message when the value cannot be read (a tape that does not fit its text).
pub fn from_raw_json(raw: &palisade_sdk::wire::RawJson) -> Result<regorus::Value, String> {
    raw.read::<Json>()
        .map(|json| json.0)
        .map_err(|e| e.to_string())
}

/// A Rego value read from any JSON deserializer.
struct Json(regorus::Value);

impl<'de> serde::Deserialize<'de> for Json {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor).map(Json)
    }
}

struct JsonVisitor;

impl<'de> serde::de::Visitor<'de> for JsonVisitor {
    type Value = regorus::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<regorus::Value, E> {
        Ok(regorus::Value::Bool(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<regorus::Value, E> {
        Ok(regorus::Value::from(v))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<regorus::Value, E> {
        Ok(regorus::Value::from(v))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<regorus::Value, E> {
        if v.is_finite() {
            Ok(regorus::Value::from(v))
        } else {
            Err(E::custom(format!("invalid non-finite number: {v}")))
        }
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<regorus::Value, E> {
        Ok(regorus::Value::from(v))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<regorus::Value, E> {
        Ok(regorus::Value::from(v))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<regorus::Value, E> {
        Ok(regorus::Value::Null)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<regorus::Value, E> {
        Ok(regorus::Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<regorus::Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> Result<regorus::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(Json(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(regorus::Value::from(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> Result<regorus::Value, A::Error> {
        let mut entries = std::collections::BTreeMap::new();
        // Keys as any string: borrowed from the text, or unescaped (`"k:{\"uid\"..."` in
        // managedFields) into a new one.
        // Keys as any string: borrowed from the text, or unescaped (`"k:{\"uid\"..."` in
        // managedFields) into a new one.
        while let Some((Json(key), Json(value))) = map.next_entry::<Json, Json>()? {
            // A repeated key keeps its last value, as serde_json's maps do.
            entries.insert(key, value);
        }
        Ok(regorus::Value::from(entries))
    }
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
    fn a_request_object_read_through_its_tape_is_the_value_the_text_gives() {
        for text in [
            r#"{"b": [1, -2, 3.5, 1e3, 18446744073709551615, -9223372036854775808, 0.1], "a": {"x": null, "y": true, "z": "s\u00e9\n"}, "a": {"k": []}, "e": {}}"#,
            r#"{"f:metadata": {"f:labels": {"k:{\"uid\":\"0f1e\"}": {}, "\u00e9t\u00e9": 1}}}"#,
            "[]",
            r#""text""#,
            "-0",
        ] {
            let raw = palisade_sdk::wire::RawJson::parse(text.to_owned()).unwrap();
            assert_eq!(
                from_raw_json(&raw).unwrap(),
                from_json_text(text).unwrap(),
                "{text}"
            );
        }
    }

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
