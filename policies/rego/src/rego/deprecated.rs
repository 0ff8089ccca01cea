//! OPA's deprecated builtins, which OPA still runs for Rego v0 (outside `--strict`) and so
//! Gatekeeper for its legacy `rego` templates, but regorus does not have: `re_match`, `any`,
//! `all`, `set_diff` and the `cast_*` family, added to v0 engines as regorus extensions. As with
//! every builtin here, a wrong argument type makes the call undefined (OPA's non-strict mode).
//! `net.cidr_overlap` (an alias of `net.cidr_contains`) is not among them.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use regorus::Value;

/// Adds the deprecated builtins to `engine`.
///
/// # Errors
/// regorus's error when an extension cannot be added (a name taken twice).
pub(super) fn add(engine: &mut regorus::Engine) -> anyhow::Result<()> {
    engine.add_extension(
        "re_match".to_owned(),
        2,
        Box::new(|a: Vec<Value>| re_match(&a)),
    )?;
    engine.add_extension(
        "any".to_owned(),
        1,
        Box::new(|a: Vec<Value>| truth(&a, false)),
    )?;
    engine.add_extension(
        "all".to_owned(),
        1,
        Box::new(|a: Vec<Value>| truth(&a, true)),
    )?;
    engine.add_extension(
        "set_diff".to_owned(),
        2,
        Box::new(|a: Vec<Value>| set_diff(&a)),
    )?;
    engine.add_extension(
        "cast_array".to_owned(),
        1,
        Box::new(|a: Vec<Value>| cast_array(&a)),
    )?;
    engine.add_extension(
        "cast_set".to_owned(),
        1,
        Box::new(|a: Vec<Value>| cast_set(&a)),
    )?;
    for (name, keeps) in [
        ("cast_string", is_string as fn(&Value) -> bool),
        ("cast_boolean", |v| matches!(v, Value::Bool(_))),
        ("cast_null", |v| matches!(v, Value::Null)),
        ("cast_object", |v| matches!(v, Value::Object(_))),
    ] {
        engine.add_extension(
            name.to_owned(),
            1,
            Box::new(move |a: Vec<Value>| {
                Ok(a.first()
                    .filter(|v| keeps(v))
                    .cloned()
                    .unwrap_or(Value::Undefined))
            }),
        )?;
    }
    Ok(())
}

fn is_string(value: &Value) -> bool {
    matches!(value, Value::String(_))
}

/// The regular expressions compiled so far (a template matches the same few again and again);
/// emptied when it holds more than [`KEPT`].
const KEPT: usize = 64;

thread_local! {
    static COMPILED: RefCell<HashMap<String, regex::Regex>> = RefCell::new(HashMap::new());
}

/// `re_match(pattern, value)`: `regex.match` under its old name.
fn re_match(args: &[Value]) -> anyhow::Result<Value> {
    let (Some(Value::String(pattern)), Some(Value::String(value))) = (args.first(), args.get(1))
    else {
        return Ok(Value::Undefined);
    };
    COMPILED.with_borrow_mut(|compiled| {
        if !compiled.contains_key(pattern.as_ref()) {
            let Ok(regex) = regex::Regex::new(pattern) else {
                return Ok(Value::Undefined);
            };
            if compiled.len() >= KEPT {
                compiled.clear();
            }
            compiled.insert(pattern.to_string(), regex);
        }
        Ok(compiled
            .get(pattern.as_ref())
            .map_or(Value::Undefined, |regex| Value::Bool(regex.is_match(value))))
    })
}

/// The members of an array or a set.
fn members(value: &Value) -> Option<Vec<&Value>> {
    match value {
        Value::Array(items) => Some(items.iter().collect()),
        Value::Set(items) => Some(items.iter().collect()),
        _ => None,
    }
}

/// `any` (some member is `true`) or, with `every`, `all` (no member is other than `true`).
fn truth(args: &[Value], every: bool) -> anyhow::Result<Value> {
    let Some(items) = args.first().and_then(members) else {
        return Ok(Value::Undefined);
    };
    let is_true = |v: &&Value| matches!(v, Value::Bool(true));
    Ok(Value::Bool(if every {
        items.iter().all(is_true)
    } else {
        items.iter().any(is_true)
    }))
}

fn set_diff(args: &[Value]) -> anyhow::Result<Value> {
    let (Some(Value::Set(a)), Some(Value::Set(b))) = (args.first(), args.get(1)) else {
        return Ok(Value::Undefined);
    };
    Ok(Value::from(
        a.iter()
            .filter(|v| !b.contains(v))
            .cloned()
            .collect::<BTreeSet<Value>>(),
    ))
}

fn cast_array(args: &[Value]) -> anyhow::Result<Value> {
    Ok(args
        .first()
        .and_then(members)
        .map_or(Value::Undefined, |items| {
            Value::from(items.into_iter().cloned().collect::<Vec<Value>>())
        }))
}

fn cast_set(args: &[Value]) -> anyhow::Result<Value> {
    Ok(args
        .first()
        .and_then(members)
        .map_or(Value::Undefined, |items| {
            Value::from(items.into_iter().cloned().collect::<BTreeSet<Value>>())
        }))
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn eval(query: &str) -> Value {
        let mut engine = crate::rego::engine(false);
        engine
            .add_policy(
                "t.rego".into(),
                format!("package t\nx = v {{ v := {query} }}\n"),
            )
            .unwrap();
        engine.eval_rule("data.t.x".into()).unwrap()
    }

    #[test]
    fn v0_engines_have_opas_deprecated_builtins() {
        assert_eq!(
            eval(r#"re_match(`^\w+-\d+$`, "SHOP-12")"#),
            Value::Bool(true)
        );
        assert_eq!(eval(r#"re_match("^a", "ba")"#), Value::Bool(false));
        assert_eq!(eval("any([false, true])"), Value::Bool(true));
        assert_eq!(eval("any(set())"), Value::Bool(false));
        assert_eq!(eval("all({true})"), Value::Bool(true));
        assert_eq!(eval("all([true, 1])"), Value::Bool(false));
        assert_eq!(eval("set_diff({1, 2, 3}, {2})"), eval("{1, 3}"));
        assert_eq!(eval("cast_array({2, 1})"), eval("[1, 2]"));
        assert_eq!(eval("cast_set([1, 1, 2])"), eval("{1, 2}"));
        assert_eq!(eval(r#"cast_string("s")"#), Value::from("s"));
        assert_eq!(eval("cast_object({})"), eval("{}"));
        // A wrong type or a pattern that does not compile: undefined, as non-strict OPA.
        assert_eq!(eval("cast_boolean(1)"), Value::Undefined);
        assert_eq!(eval(r#"re_match("(", "x")"#), Value::Undefined);
    }

    #[test]
    fn v1_engines_do_not_have_them() {
        let mut engine = crate::rego::engine(true);
        engine
            .add_policy(
                "t.rego".into(),
                "package t\nx := re_match(\"a\", \"a\")\n".into(),
            )
            .unwrap();
        assert!(engine.eval_rule("data.t.x".into()).is_err());
    }
}
