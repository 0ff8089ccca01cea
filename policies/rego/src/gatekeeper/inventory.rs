//! Referential data: objects a template may read as `data.inventory`, in Gatekeeper's layout
//! (`cluster[<groupVersion>][<Kind>][<name>]` and
//! `namespace[<namespace>][<groupVersion>][<Kind>][<name>]`, frameworks `driver.go` and
//! gatekeeper `target.go`). Namespace objects among them also give Namespace labels to
//! `namespaceSelector` and `input.review.namespaceObject`, as Gatekeeper's namespace cache does.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

/// The inventory: the data document and the Namespaces it holds.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    document: Value,
    namespaces: BTreeMap<String, (Value, BTreeMap<String, String>)>,
    len: usize,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Head {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    metadata: HeadMetadata,
}

#[derive(Default, Deserialize)]
struct HeadMetadata {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

impl Inventory {
    /// The inventory of `objects`; a later object with the same identity replaces an earlier
    /// one (as syncing does). A `List` (`kind: ...List` with `items`) adds its items.
    ///
    /// # Errors
    /// `(index, message)`: the object at `index` has no apiVersion, kind or name, or its
    /// metadata does not parse.
    pub fn from_objects<'a>(
        objects: impl IntoIterator<Item = &'a Value>,
    ) -> Result<Self, (usize, String)> {
        let mut inventory = Self::default();
        for (index, object) in objects.into_iter().enumerate() {
            inventory.add(object).map_err(|m| (index, m))?;
        }
        Ok(inventory)
    }

    /// Adds one object (or a List's items).
    ///
    /// # Errors
    /// A message when the object has no apiVersion, kind or name.
    pub fn add(&mut self, object: &Value) -> Result<(), String> {
        let head =
            Head::deserialize(object).map_err(|e| format!("not a Kubernetes object: {e}"))?;
        if head.kind.ends_with("List")
            && let Some(items) = object.get("items").and_then(Value::as_array)
        {
            for (index, item) in items.iter().enumerate() {
                self.add(item).map_err(|m| format!("items[{index}]: {m}"))?;
            }
            return Ok(());
        }
        for (field, value) in [
            ("apiVersion", &head.api_version),
            ("kind", &head.kind),
            ("metadata.name", &head.metadata.name),
        ] {
            if value.is_empty() {
                return Err(format!("an inventory object needs {field}"));
            }
        }
        let path: Vec<&str> = if head.metadata.namespace.is_empty() {
            vec!["cluster", &head.api_version, &head.kind]
        } else {
            vec![
                "namespace",
                &head.metadata.namespace,
                &head.api_version,
                &head.kind,
            ]
        };
        insert(
            &mut self.document,
            &path,
            &head.metadata.name,
            object.clone(),
        );
        if head.kind == "Namespace"
            && head.api_version == "v1"
            && head.metadata.namespace.is_empty()
        {
            self.namespaces
                .insert(head.metadata.name, (object.clone(), head.metadata.labels));
        }
        self.len = self.len.saturating_add(1);
        Ok(())
    }

    /// How many objects it holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no object.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The document to add as `data.inventory` (`{}` sections filled only as objects exist).
    #[must_use]
    pub fn document(&self) -> Value {
        if self.document.is_null() {
            serde_json::json!({})
        } else {
            self.document.clone()
        }
    }

    /// The Namespace object of that name and its labels, when the inventory holds it.
    #[must_use]
    pub fn namespace(&self, name: &str) -> Option<(&Value, &BTreeMap<String, String>)> {
        self.namespaces.get(name).map(|(o, l)| (o, l))
    }
}

/// Puts `object` at `path` + `name`, creating the objects on the way.
fn insert(document: &mut Value, path: &[&str], name: &str, object: Value) {
    if !document.is_object() {
        *document = Value::Object(Map::new());
    }
    let Some(map) = document.as_object_mut() else {
        return;
    };
    match path.split_first() {
        None => {
            map.insert(name.to_owned(), object);
        }
        Some((first, rest)) => {
            let child = map
                .entry((*first).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            insert(child, rest, name, object);
        }
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_are_laid_out_as_gatekeeper_syncs_them() {
        let objects = [
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"team": "a"}}}),
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web", "namespace": "shop"}}),
            json!({"apiVersion": "v1", "kind": "List", "items": [
                {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": "shop"}}]}),
        ];
        let inventory = Inventory::from_objects(&objects).unwrap();
        let doc = inventory.document();
        assert_eq!(
            doc["cluster"]["v1"]["Namespace"]["shop"]["metadata"]["name"],
            "shop"
        );
        assert_eq!(
            doc["namespace"]["shop"]["networking.k8s.io/v1"]["Ingress"]["web"]["kind"],
            "Ingress"
        );
        assert_eq!(
            doc["namespace"]["shop"]["v1"]["Service"]["db"]["kind"],
            "Service"
        );
        assert_eq!(inventory.len(), 3);
        assert_eq!(inventory.namespace("shop").unwrap().1["team"], "a");
    }

    #[test]
    fn an_object_without_a_name_is_refused_with_its_index() {
        let objects = [json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}})];
        let (index, message) = Inventory::from_objects(&objects).unwrap_err();
        assert_eq!(index, 0);
        assert!(message.contains("metadata.name"), "{message}");
    }
}
