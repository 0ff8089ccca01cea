//! Paths on `palisade rego`'s command line into a regorus engine, as OPA's loader (`v1/loader`)
//! reads `-d` and `opa test` paths: Rego files become modules, JSON and YAML files are merged
//! into `data` under the path of their directory below the path given.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::{Map, Value};

/// Which Rego syntax modules are parsed as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Syntax {
    /// Rego v1, OPA 1.x's default: `if` and `contains` required, keywords always on.
    V1,
    /// Rego v0, OPA 0.x's syntax (`opa ... --v0-compatible`).
    V0,
}

/// An engine holding every module and the merged data document found under `paths`.
///
/// A directory is walked recursively in name order; below the directory given, each
/// subdirectory adds its name to the data path (`-d dir` with `dir/a/b/x.json` puts the
/// object's keys under `data.a.b`). In a directory, files other than `.rego`, `.json`, `.yaml`
/// and `.yml` are ignored; a file named on the command line with another extension is read as
/// Rego, JSON or YAML, whichever parses, as OPA does.
///
/// # Errors
/// A path that cannot be read or is larger than the input limit, a module that does not
/// parse (regorus's message has the line and column), a data file that does not parse, a data
/// file at the root that is not an object, and two files that both set the same value (the
/// error names both).
pub(crate) fn engine(paths: &[PathBuf], syntax: Syntax) -> anyhow::Result<regorus::Engine> {
    // The policies' engine: v0 with OPA's deprecated builtins (`re_match`, `any`, ...).
    let engine = rego::rego::engine(syntax != Syntax::V0);
    let mut loader = Loader {
        engine,
        modules: BTreeSet::new(),
        data: Map::new(),
        origins: BTreeMap::new(),
    };
    for path in paths {
        loader.walk(path, &[], 0)?;
    }
    let Loader {
        mut engine, data, ..
    } = loader;
    engine
        .add_data(regorus::Value::from(Value::Object(data)))
        .context("adding the data files to the engine")?;
    Ok(engine)
}

/// What has been loaded so far.
struct Loader {
    engine: regorus::Engine,
    /// Names of the modules added, so a file named twice is loaded once (OPA keys modules by path).
    modules: BTreeSet<String>,
    data: Map<String, Value>,
    /// For every key a file added to `data` (a path of keys below `data`), that file: a
    /// conflict names the file that set the value first.
    origins: BTreeMap<Vec<String>, PathBuf>,
}

/// What a file holds, by its extension.
enum Kind {
    Rego,
    Json,
    Yaml,
    Other,
}

fn kind(path: &Path) -> Kind {
    // OPA compares extensions exactly (`filepath.Ext`), so `X.JSON` is not a data file.
    match path.extension().and_then(|e| e.to_str()) {
        Some("rego") => Kind::Rego,
        Some("json") => Kind::Json,
        Some("yaml" | "yml") => Kind::Yaml,
        _ => Kind::Other,
    }
}

impl Loader {
    /// Loads `path` with its data under `prefix`; `depth` is 0 for a path of the command line.
    fn walk(&mut self, path: &Path, prefix: &[String], depth: usize) -> anyhow::Result<()> {
        let metadata =
            std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
        if !metadata.is_dir() {
            return self.file(path, prefix, depth);
        }
        let mut prefix = prefix.to_vec();
        if depth > 0
            && let Some(name) = path.file_name()
        {
            prefix.push(name.to_string_lossy().into_owned());
        }
        let mut entries = std::fs::read_dir(path)
            .and_then(|entries| {
                entries
                    .map(|e| e.map(|e| e.path()))
                    .collect::<Result<Vec<_>, _>>()
            })
            .with_context(|| format!("reading directory {}", path.display()))?;
        entries.sort();
        for entry in entries {
            self.walk(&entry, &prefix, depth.saturating_add(1))?;
        }
        Ok(())
    }

    fn file(&mut self, path: &Path, prefix: &[String], depth: usize) -> anyhow::Result<()> {
        let kind = kind(path);
        if matches!(kind, Kind::Other) && depth > 0 {
            return Ok(());
        }
        let bytes = palisade_suite::input::read_bytes(path)?;
        let text = String::from_utf8(bytes)
            .with_context(|| format!("reading {}: not UTF-8 text", path.display()))?;
        match kind {
            Kind::Rego => self.module(path, text),
            Kind::Json | Kind::Yaml => {
                let document = palisade_suite::input::parse_document(path, &text)?;
                self.merge(path, prefix, document)
            }
            Kind::Other => self.any(path, prefix, &text),
        }
    }

    /// A file of unknown type named on the command line: Rego, else JSON, else YAML (OPA's
    /// `loadFileForAnyType`).
    fn any(&mut self, path: &Path, prefix: &[String], text: &str) -> anyhow::Result<()> {
        let name = path.display().to_string();
        if self.modules.contains(&name) {
            return Ok(());
        }
        if self
            .engine
            .add_policy(name.clone(), text.to_owned())
            .is_ok()
        {
            self.modules.insert(name);
            return Ok(());
        }
        let document = serde_json::from_str::<Value>(text)
            .ok()
            .or_else(|| serde_yaml::from_str::<Value>(text).ok());
        match document {
            Some(document) => self.merge(path, prefix, document),
            None => bail!("{name}: can't recognize file type (not Rego, JSON or YAML)"),
        }
    }

    fn module(&mut self, path: &Path, source: String) -> anyhow::Result<()> {
        let name = path.display().to_string();
        if self.modules.contains(&name) {
            return Ok(());
        }
        self.engine
            .add_policy(name.clone(), source)
            .with_context(|| format!("parsing {name}"))?;
        self.modules.insert(name);
        Ok(())
    }

    /// Merges `document` under `prefix` into `data`: objects merge key by key; any other
    /// value set twice is a conflict, even when both are equal (OPA's `merge.InterfaceMaps`).
    fn merge(&mut self, path: &Path, prefix: &[String], document: Value) -> anyhow::Result<()> {
        let document = prefix.iter().rev().fold(document, |inner, key| {
            Value::Object(Map::from_iter([(key.clone(), inner)]))
        });
        let Value::Object(document) = document else {
            bail!(
                "{}: a data file at the root of a path must hold an object",
                path.display()
            );
        };
        let mut at = Vec::new();
        if let Err(conflict) =
            merge_into(&mut self.data, document, &mut at, path, &mut self.origins)
        {
            let first = (0..=conflict.len())
                .rev()
                .find_map(|len| conflict.get(..len).and_then(|key| self.origins.get(key)));
            let location = data_path(&conflict);
            return Err(match first {
                Some(first) => anyhow::anyhow!(
                    "{} and {} both set {location}",
                    first.display(),
                    path.display()
                ),
                None => anyhow::anyhow!("{}: {location} is already set", path.display()),
            });
        }
        Ok(())
    }
}

/// Merges `from` into `into`, recording the file of every key added; `Err` is the path of the
/// first key both set.
fn merge_into(
    into: &mut Map<String, Value>,
    from: Map<String, Value>,
    at: &mut Vec<String>,
    file: &Path,
    origins: &mut BTreeMap<Vec<String>, PathBuf>,
) -> Result<(), Vec<String>> {
    for (key, value) in from {
        at.push(key.clone());
        match (into.get_mut(&key), value) {
            (None, value) => {
                origins.insert(at.clone(), file.to_owned());
                into.insert(key, value);
            }
            (Some(Value::Object(existing)), Value::Object(value)) => {
                merge_into(existing, value, at, file, origins)?;
            }
            (Some(_), _) => return Err(at.clone()),
        }
        at.pop();
    }
    Ok(())
}

/// `data.a.b`, with `["..."]` for a key that is not an identifier: how OPA prints a reference.
pub(crate) fn data_path<S: AsRef<str>>(keys: &[S]) -> String {
    let mut out = String::from("data");
    for key in keys {
        let key = key.as_ref();
        let identifier = key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if identifier {
            out.push('.');
            out.push_str(key);
        } else {
            out.push('[');
            out.push_str(&Value::String(key.to_owned()).to_string());
            out.push(']');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merged(documents: &[(&str, &[&str], Value)]) -> Result<Value, String> {
        let mut data = Map::new();
        let mut origins = BTreeMap::new();
        for (file, prefix, document) in documents {
            let document = prefix.iter().rev().fold(document.clone(), |inner, key| {
                Value::Object(Map::from_iter([((*key).to_owned(), inner)]))
            });
            let Value::Object(document) = document else {
                return Err("not an object".to_owned());
            };
            merge_into(
                &mut data,
                document,
                &mut Vec::new(),
                Path::new(file),
                &mut origins,
            )
            .map_err(|at| data_path(&at))?;
        }
        Ok(Value::Object(data))
    }

    #[test]
    fn objects_merge_key_by_key_under_their_directory() {
        let data = merged(&[
            ("a/x.json", &["a"], serde_json::json!({"x": {"one": 1}})),
            ("a/y.json", &["a"], serde_json::json!({"x": {"two": 2}})),
            ("b/list.json", &["b"], serde_json::json!([1, 2])),
        ]);
        assert_eq!(
            data,
            Ok(serde_json::json!({"a": {"x": {"one": 1, "two": 2}}, "b": [1, 2]}))
        );
    }

    #[test]
    fn equal_leaves_set_twice_conflict_as_in_opa() {
        let data = merged(&[
            ("x.json", &[], serde_json::json!({"a": {"n": 1}})),
            ("y.json", &[], serde_json::json!({"a": {"n": 1}})),
        ]);
        assert_eq!(data, Err("data.a.n".to_owned()));
    }

    #[test]
    fn references_quote_keys_that_are_not_identifiers() {
        assert_eq!(data_path(&["a", "b-c", "1"]), r#"data.a["b-c"]["1"]"#);
    }
}
