//! Checks on the documents operators and users write (configurations, settings, requests,
//! suites) that serde's own types do not make: a key given twice in one mapping is an error
//! naming the key and where it is, never a silent last-wins (a second `level:` once turned a
//! restricted policy into a baseline one).

mod files;

pub use files::{SettingsFileError, SettingsSource, add_settings_from, read_documents, yaml_files};

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Walks a whole document and fails at the first mapping that repeats a key, naming its path
/// (`policies[0].settings`) and the key. Works with any self-describing format (YAML, JSON).
///
/// # Errors
/// The format's error, with a message such as
/// `policies[0].settings: the key "level" is given twice`.
pub fn unique_keys<'de, D: Deserializer<'de>>(deserializer: D) -> Result<(), D::Error> {
    deserializer.deserialize_any(Walk {
        path: String::new(),
    })
}

/// The visitor of one value, at `path`.
struct Walk {
    path: String,
}

impl Walk {
    fn at(&self, segment: fmt::Arguments<'_>) -> Self {
        Self {
            path: format!("{}{segment}", self.path),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// A mapping key as text, whatever its type (YAML keys may be numbers or booleans).
struct Key(String);

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Key, E> {
                Ok(Key("null".to_owned()))
            }
            fn visit_none<E: de::Error>(self) -> Result<Key, E> {
                Ok(Key("null".to_owned()))
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}

impl<'de> Visitor<'de> for Walk {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_i128<E>(self, _: i128) -> Result<(), E> {
        Ok(())
    }
    fn visit_u128<E>(self, _: u128) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_bytes<E>(self, _: &[u8]) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0usize;
        while seq
            .next_element_seed(self.at(format_args!("[{index}]")))?
            .is_some()
        {
            index += 1;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(Key(key)) = map.next_key()? {
            let path = if self.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.path)
            };
            if !seen.insert(key.clone()) {
                let place = if self.path.is_empty() {
                    "the document".to_owned()
                } else {
                    self.path.clone()
                };
                return Err(de::Error::custom(format!(
                    "{place}: the key {key:?} is given twice (a second value would silently \
                     replace the first)"
                )));
            }
            map.next_value_seed(Walk { path })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str) -> Result<(), String> {
        let mut deserializer = serde_json::Deserializer::from_str(json);
        unique_keys(&mut deserializer).map_err(|e| e.to_string())
    }

    #[test]
    fn a_repeated_key_is_named_with_its_place() {
        let error = check(r#"{"policies": [{"id": "p", "settings": {"level": "restricted", "level": "baseline"}}]}"#)
            .expect_err("refused");
        assert!(
            error.starts_with(r#"policies[0].settings: the key "level" is given twice"#),
            "{error}"
        );
        let error = check(r#"{"a": 1, "a": 2}"#).expect_err("refused");
        assert!(error.starts_with(r#"the document: the key "a""#), "{error}");
    }

    #[test]
    fn the_same_key_in_different_mappings_is_fine() {
        check(r#"{"a": {"x": 1}, "b": {"x": [{"x": 1}, {"x": 2}]}, "c": null}"#).expect("unique");
    }
}
