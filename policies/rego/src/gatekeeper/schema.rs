//! Constraint parameters against their template's `openAPIV3Schema`, as the API server checks
//! a custom resource against its CRD's structural schema: `type`, `properties`, `items`,
//! `additionalProperties`, `enum`, `required`, `nullable`. Fields the schema does not declare
//! are accepted (the API server prunes them; templates never see them in a cluster, but gator
//! passes them, and so do we).

use serde_json::Value;

/// Checks `value` against `schema`; `at` names the value in messages.
///
/// # Errors
/// A message naming the first field that does not fit and why.
pub fn validate(schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let Some(schema) = schema.as_object() else {
        return Ok(());
    };
    if value.is_null() && schema.get("nullable").and_then(Value::as_bool) == Some(true) {
        return Ok(());
    }
    if let Some(kind) = schema.get("type").and_then(Value::as_str) {
        let fits = match kind {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            _ => true,
        };
        if !fits {
            return Err(format!(
                "{at}: Invalid value: {}: {at} in body must be of type {kind}: {:?}",
                value,
                type_name(value)
            ));
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        return Err(format!(
            "{at}: Unsupported value: {value}: supported values: {}",
            list.join(", ")
        ));
    }
    if let Some(object) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if !object.contains_key(name) {
                    return Err(format!("{at}.{name}: Required value"));
                }
            }
        }
        for (name, field) in object {
            let field_at = format!("{at}.{name}");
            match properties.and_then(|p| p.get(name)) {
                Some(field_schema) => validate(field_schema, field, &field_at)?,
                None => match schema.get("additionalProperties") {
                    Some(Value::Object(_)) => {
                        if let Some(extra) = schema.get("additionalProperties") {
                            validate(extra, field, &field_at)?;
                        }
                    }
                    Some(Value::Bool(false)) if properties.is_some() => {
                        return Err(format!(
                            "{field_at}: Forbidden: field not declared in the schema"
                        ));
                    }
                    _ => {}
                },
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (index, item) in array.iter().enumerate() {
            validate(items, item, &format!("{at}[{index}]"))?;
        }
    }
    Ok(())
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::validate;
    use serde_json::json;

    fn schema() -> serde_json::Value {
        json!({"type": "object", "properties": {
            "labels": {"type": "array", "items": {"type": "object", "properties": {
                "key": {"type": "string"}, "allowedRegex": {"type": "string"}}}},
            "limit": {"type": "integer"},
            "mode": {"type": "string", "enum": ["a", "b"]}
        }})
    }

    #[test]
    fn fitting_parameters_pass_and_undeclared_fields_are_accepted() {
        let p = json!({"labels": [{"key": "owner"}], "limit": 3, "extra": true});
        assert_eq!(validate(&schema(), &p, "spec.parameters"), Ok(()));
    }

    #[test]
    fn a_wrong_type_is_named_with_its_path() {
        let p = json!({"labels": [{"key": 7}]});
        let e = validate(&schema(), &p, "spec.parameters").unwrap_err();
        assert!(e.starts_with("spec.parameters.labels[0].key: "), "{e}");
        assert!(e.contains("must be of type string"), "{e}");
        assert!(validate(&schema(), &json!({"limit": 1.5}), "p").is_err());
        assert!(
            validate(&schema(), &json!({"mode": "c"}), "p")
                .unwrap_err()
                .contains("Unsupported value")
        );
    }
}
