//! A [`Cluster`] over Kubernetes manifests: the YAML and JSON files of a directory, read once,
//! indexed by API version and kind, and answered from memory.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde::Deserialize as _;
use serde_json::{Map, Value};

use super::fields::FieldSelector;
use super::labels::Selector;
use super::rbac::{Rbac, RbacBuilder};
use super::{AccessReview, AccessStatus, Cluster, ClusterError, ListQuery};

/// A manifest file larger than this (64 MiB) is refused rather than read.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// A store holds at most this many objects.
const MAX_OBJECTS: usize = 1_000_000;
/// How deep `List`s may be nested in `List`s.
const MAX_LIST_DEPTH: usize = 8;

/// Objects by name (cluster-scoped objects under the namespace "").
type ByName = BTreeMap<String, Value>;
/// Objects of one API version and kind, by namespace then name.
type ByNamespace = BTreeMap<String, ByName>;

/// Why manifests could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// A file or directory cannot be read.
    #[error("reading {path}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file is larger than 64 MiB.
    #[error("{path} has {size} bytes, more than the {MAX_FILE_BYTES} a manifest file may have")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// A file is not YAML or JSON.
    #[error("parsing {path}: document {document}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The document of the file, from 1.
        document: usize,
        /// What and where (line and column).
        message: String,
    },
    /// An object is not a Kubernetes object this store can hold.
    #[error("{origin}: {problem}")]
    Invalid {
        /// Where the object is: `pods.yaml document 2`, `list.json document 1 item 3`, or
        /// `object 4` for objects given in memory.
        origin: String,
        /// What is wrong with it.
        problem: String,
    },
    /// There are more than a million objects.
    #[error("more than {MAX_OBJECTS} objects")]
    TooMany,
}

/// Kubernetes objects read from manifests, answering `list`, `get` and `can_i` like a cluster
/// holding exactly them would (and RBAC as its authorizer decides, see [`Cluster::can_i`]).
///
/// Every object needs `apiVersion`, `kind` and `metadata.name`; one without
/// `metadata.namespace` (or with an empty one) is cluster-scoped, so a namespaced object must
/// name its namespace (no `default` is assumed). Two objects with the same API version, kind,
/// namespace and name are an error.
#[derive(Default)]
pub struct ManifestDirectory {
    /// apiVersion → kind → namespace → name → object.
    objects: BTreeMap<String, BTreeMap<String, ByNamespace>>,
    rbac: Rbac,
    count: usize,
}

impl fmt::Debug for ManifestDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManifestDirectory")
            .field("objects", &self.count)
            .finish_non_exhaustive()
    }
}

impl ManifestDirectory {
    /// Reads the manifests of `path`: every `*.yaml`, `*.yml` and `*.json` file in it and its
    /// subdirectories, in path order (or `path` itself when it is a file). A YAML file may hold
    /// several documents (`---`), a JSON file several values one after another; empty
    /// documents are skipped. A `List` (`kind: List`, or any `*List` with `items`) stands for
    /// its items; the items of a typed list (`PodList`) that lack `apiVersion` or `kind` get
    /// the list's.
    ///
    /// Entries whose names start with `.` are skipped, as are symbolic links to directories
    /// (so a ConfigMap volume's `..data` links and timestamped directories are read once,
    /// through the files' own links).
    ///
    /// # Errors
    /// [`ManifestError`] naming the file (and the document) that cannot be read, is larger
    /// than 64 MiB, does not parse, repeats a key in a mapping or holds an object that is not
    /// a valid Kubernetes object; or when there are more than a million objects.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let files = manifest_files(path)?;
        let mut store = Builder::default();
        for file in &files {
            for (document, value) in read_documents(file)? {
                let origin = format!("{} document {document}", file.display());
                store.add(value, &origin, 0)?;
            }
        }
        tracing::debug!(
            path = %path.display(),
            files = files.len(),
            objects = store.count,
            "loaded Kubernetes manifests"
        );
        Ok(store.finish())
    }

    /// A store of `objects` (`List`s expanded), for tests and embedders that hold objects
    /// already.
    ///
    /// # Errors
    /// [`ManifestError::Invalid`] naming the object (`object 3`, from 1) that is not a valid
    /// Kubernetes object, or [`ManifestError::TooMany`].
    pub fn from_objects(objects: Vec<Value>) -> Result<Self, ManifestError> {
        let mut store = Builder::default();
        for (index, object) in objects.into_iter().enumerate() {
            store.add(object, &format!("object {}", index + 1), 0)?;
        }
        Ok(store.finish())
    }

    /// How many objects the store holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the store holds no object.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn kind(&self, api_version: &str, kind: &str) -> Option<&ByNamespace> {
        self.objects.get(api_version)?.get(kind)
    }
}

impl Cluster for ManifestDirectory {
    /// `namespace: Some("")` lists the cluster-scoped objects, as `get` with `None` finds them.
    /// A field selector may name any dotted path (`spec.nodeName`), where an API server
    /// accepts only the few fields it indexes per kind; a missing field compares as "".
    fn list(&self, query: &ListQuery<'_>) -> Result<Vec<Value>, ClusterError> {
        let labels = query
            .label_selector
            .map(|s| Selector::parse(s).map_err(|e| ClusterError::Invalid(e.describe(s))))
            .transpose()?;
        let fields = query
            .field_selector
            .map(|s| FieldSelector::parse(s).map_err(ClusterError::Invalid))
            .transpose()?;
        let Some(by_namespace) = self.kind(query.api_version, query.kind) else {
            return Ok(Vec::new());
        };
        let namespaces: Vec<&ByName> = match query.namespace {
            Some(namespace) => by_namespace.get(namespace).into_iter().collect(),
            None => by_namespace.values().collect(),
        };
        Ok(namespaces
            .into_iter()
            .flat_map(BTreeMap::values)
            .filter(|object| {
                labels.as_ref().is_none_or(|selector| {
                    selector.matches(
                        object
                            .pointer("/metadata/labels")
                            .and_then(Value::as_object),
                    )
                }) && fields
                    .as_ref()
                    .is_none_or(|selector| selector.matches(object))
            })
            .cloned()
            .collect())
    }

    fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, ClusterError> {
        Ok(self
            .kind(api_version, kind)
            .and_then(|by_namespace| by_namespace.get(namespace.unwrap_or_default()))
            .and_then(|by_name| by_name.get(name))
            .cloned())
    }

    fn can_i(&self, review: &AccessReview) -> Result<AccessStatus, ClusterError> {
        self.rbac.authorize(review)
    }
}

/// Collects objects, checking each and refusing duplicates.
#[derive(Default)]
struct Builder {
    objects: BTreeMap<String, BTreeMap<String, ByNamespace>>,
    /// Where each object came from, to name both places of a duplicate.
    origins: HashMap<(String, String, String, String), String>,
    rbac: RbacBuilder,
    count: usize,
}

impl Builder {
    /// Adds `value`, or the items of a `List`, `depth` lists down.
    fn add(&mut self, mut value: Value, origin: &str, depth: usize) -> Result<(), ManifestError> {
        let invalid = |problem: String| ManifestError::Invalid {
            origin: origin.to_owned(),
            problem,
        };
        if let Some(items) = list_items(&mut value).map_err(invalid)? {
            if depth >= MAX_LIST_DEPTH {
                return Err(invalid(format!(
                    "lists are nested more than {MAX_LIST_DEPTH} deep"
                )));
            }
            for (index, item) in items.into_iter().enumerate() {
                self.add(item, &format!("{origin} item {}", index + 1), depth + 1)?;
            }
            return Ok(());
        }
        let id = identify(&value).map_err(invalid)?;
        if self.count >= MAX_OBJECTS {
            return Err(ManifestError::TooMany);
        }
        self.rbac
            .add(&id.api_version, &id.kind, &value)
            .map_err(invalid)?;
        let key = (
            id.api_version.clone(),
            id.kind.clone(),
            id.namespace.clone(),
            id.name.clone(),
        );
        if let Some(first) = self.origins.get(&key) {
            let place = if id.namespace.is_empty() {
                id.name
            } else {
                format!("{}/{}", id.namespace, id.name)
            };
            return Err(invalid(format!(
                "{} {place} ({}) is given twice; first in {first}",
                id.kind, id.api_version
            )));
        }
        self.origins.insert(key, origin.to_owned());
        self.objects
            .entry(id.api_version)
            .or_default()
            .entry(id.kind)
            .or_default()
            .entry(id.namespace)
            .or_default()
            .insert(id.name, value);
        self.count += 1;
        Ok(())
    }

    fn finish(self) -> ManifestDirectory {
        ManifestDirectory {
            objects: self.objects,
            rbac: self.rbac.finish(),
            count: self.count,
        }
    }
}

/// The items of `value` if it is a list: `kind: List`, or a `*List` kind with `items`. Items
/// of a typed list get its `apiVersion` and item kind where they have none (as an API
/// server's list responses leave them out).
fn list_items(value: &mut Value) -> Result<Option<Vec<Value>>, String> {
    let Some(object) = value.as_object_mut() else {
        return Ok(None);
    };
    let Some(kind) = object.get("kind").and_then(Value::as_str) else {
        return Ok(None);
    };
    let Some(item_kind) = kind.strip_suffix("List") else {
        return Ok(None);
    };
    if item_kind.is_empty() {
        if !object.contains_key("items") {
            return Ok(Some(Vec::new()));
        }
    } else if !object.contains_key("items") {
        // A kind that merely ends in "List" (a CRD's `AllowList`), not a list.
        return Ok(None);
    }
    let (kind, item_kind) = (kind.to_owned(), item_kind.to_owned());
    let api_version = object.get("apiVersion").cloned();
    let items = match object.remove("items") {
        Some(Value::Array(items)) => items,
        Some(Value::Null) | None => Vec::new(),
        Some(_) => return Err(format!("the items of a {kind} must be a list")),
    };
    if item_kind.is_empty() {
        return Ok(Some(items));
    }
    Ok(Some(
        items
            .into_iter()
            .map(|mut item| {
                if let Some(fields) = item.as_object_mut() {
                    fields
                        .entry("kind")
                        .or_insert_with(|| Value::String(item_kind.clone()));
                    if let Some(api_version) = &api_version {
                        fields
                            .entry("apiVersion")
                            .or_insert_with(|| api_version.clone());
                    }
                }
                item
            })
            .collect(),
    ))
}

/// What names an object in the store.
struct Identity {
    api_version: String,
    kind: String,
    /// "" for a cluster-scoped object.
    namespace: String,
    name: String,
}

/// Checks the fields every object needs, and the labels and annotations (string maps).
fn identify(value: &Value) -> Result<Identity, String> {
    let Some(object) = value.as_object() else {
        return Err(format!(
            "a Kubernetes object must be a mapping, not {}",
            type_name(value)
        ));
    };
    let text = |field: &str| -> Result<String, String> {
        match object.get(field) {
            Some(Value::String(text)) if !text.is_empty() => Ok(text.clone()),
            None | Some(Value::Null) => Err(format!("the object has no {field}")),
            Some(Value::String(_)) => Err(format!("the object's {field} is empty")),
            Some(other) => Err(format!(
                "{field} must be a string, not {}",
                type_name(other)
            )),
        }
    };
    let api_version = text("apiVersion")?;
    let kind = text("kind")?;
    let metadata = match object.get("metadata") {
        Some(Value::Object(metadata)) => metadata,
        None | Some(Value::Null) => return Err(format!("the {kind} has no metadata.name")),
        Some(other) => {
            return Err(format!(
                "metadata must be a mapping, not {}",
                type_name(other)
            ));
        }
    };
    let name = match metadata.get("name") {
        Some(Value::String(name)) if !name.is_empty() => name.clone(),
        None | Some(Value::Null) => return Err(format!("the {kind} has no metadata.name")),
        Some(Value::String(_)) => return Err(format!("the {kind}'s metadata.name is empty")),
        Some(other) => {
            return Err(format!(
                "metadata.name must be a string, not {}",
                type_name(other)
            ));
        }
    };
    let namespace = match metadata.get("namespace") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(namespace)) => namespace.clone(),
        Some(other) => {
            return Err(format!(
                "metadata.namespace must be a string, not {}",
                type_name(other)
            ));
        }
    };
    for field in ["labels", "annotations"] {
        check_string_map(metadata, field)?;
    }
    Ok(Identity {
        api_version,
        kind,
        namespace,
        name,
    })
}

/// `metadata.<field>`, if present, maps strings to strings (`version: 1` unquoted in YAML is
/// a number, which the API server refuses).
fn check_string_map(metadata: &Map<String, Value>, field: &str) -> Result<(), String> {
    match metadata.get(field) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(map)) => match map.iter().find(|(_, v)| !v.is_string()) {
            Some((key, value)) => Err(format!(
                "metadata.{field}.{key} must be a string, not {} (quote it)",
                type_name(value)
            )),
            None => Ok(()),
        },
        Some(other) => Err(format!(
            "metadata.{field} must be a mapping, not {}",
            type_name(other)
        )),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// `path` itself if it is a file, else the manifest files under it, in path order.
fn manifest_files(path: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    let read = |path: &Path| {
        let path = path.to_owned();
        move |source| ManifestError::Read { path, source }
    };
    if !std::fs::metadata(path).map_err(read(path))?.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    let mut pending = vec![path.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(read(&dir))? {
            let entry = entry.map_err(read(&dir))?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            let file_type = entry.file_type().map_err(read(&path))?;
            let is_file = if file_type.is_symlink() {
                // A link to a directory is not followed (no loops); a link to a file is.
                std::fs::metadata(&path).map_err(read(&path))?.is_file()
            } else if file_type.is_dir() {
                pending.push(path);
                continue;
            } else {
                file_type.is_file()
            };
            let manifest = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
            if is_file && manifest {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The non-empty documents of a file, numbered from 1. A key given twice in one mapping is an
/// error (a second value would silently replace the first).
fn read_documents(path: &Path) -> Result<Vec<(usize, Value)>, ManifestError> {
    let read = |source| ManifestError::Read {
        path: path.to_owned(),
        source,
    };
    let too_large = |size| ManifestError::TooLarge {
        path: path.to_owned(),
        size,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    let size = file.metadata().map_err(read)?.len();
    if size > MAX_FILE_BYTES {
        return Err(too_large(size));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    let parse = |document: usize, message: String| ManifestError::Parse {
        path: path.to_owned(),
        document,
        message,
    };
    let mut documents = Vec::new();
    if path.extension().is_some_and(|e| e == "json") {
        let mut stream = serde_json::Deserializer::from_slice(&bytes).into_iter::<Value>();
        let mut start = 0;
        let mut number = 0;
        while let Some(value) = stream.next() {
            number += 1;
            let value = value.map_err(|e| parse(number, e.to_string()))?;
            let end = stream.byte_offset();
            let text = bytes.get(start..end).unwrap_or_default();
            crate::documents::unique_keys(&mut serde_json::Deserializer::from_slice(text))
                .map_err(|e| parse(number, e.to_string()))?;
            start = end;
            if !value.is_null() {
                documents.push((number, value));
            }
        }
        return Ok(documents);
    }
    let text = std::str::from_utf8(&bytes).map_err(|e| parse(1, format!("not UTF-8 text: {e}")))?;
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        crate::documents::unique_keys(document).map_err(|e| parse(index + 1, e.to_string()))?;
    }
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(document).map_err(|e| parse(index + 1, e.to_string()))?;
        if !value.is_null() {
            documents.push((index + 1, value));
        }
    }
    Ok(documents)
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]

    use serde_json::json;

    use super::*;

    fn pod(namespace: &str, name: &str, labels: Value, phase: &str) -> Value {
        let mut pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"containers": [{"name": "app", "image": "app:1"}]},
            "status": {"phase": phase},
        });
        pod["metadata"]["labels"] = labels;
        pod
    }

    fn namespace(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    }

    fn store() -> ManifestDirectory {
        ManifestDirectory::from_objects(vec![
            pod(
                "shop",
                "web",
                json!({"app": "web", "tier": "front"}),
                "Running",
            ),
            pod("shop", "db", json!({"app": "db"}), "Running"),
            pod("bank", "web", json!({"app": "web"}), "Failed"),
            pod("bank", "api", json!({}), "Pending"),
            namespace("shop"),
            namespace("bank"),
        ])
        .unwrap()
    }

    fn names(objects: &[Value]) -> Vec<String> {
        objects
            .iter()
            .map(|o| {
                let metadata = &o["metadata"];
                match metadata["namespace"].as_str() {
                    Some(ns) => format!("{ns}/{}", metadata["name"].as_str().unwrap()),
                    None => metadata["name"].as_str().unwrap().to_owned(),
                }
            })
            .collect()
    }

    fn query<'a>(kind: &'a str, namespace: Option<&'a str>) -> ListQuery<'a> {
        ListQuery {
            api_version: "v1",
            kind,
            namespace,
            label_selector: None,
            field_selector: None,
        }
    }

    #[test]
    fn lists_are_sorted_by_namespace_then_name() {
        let store = store();
        let all = store.list(&query("Pod", None)).unwrap();
        assert_eq!(names(&all), ["bank/api", "bank/web", "shop/db", "shop/web"]);
        let shop = store.list(&query("Pod", Some("shop"))).unwrap();
        assert_eq!(names(&shop), ["shop/db", "shop/web"]);
        assert!(store.list(&query("Pod", Some("none"))).unwrap().is_empty());
        let namespaces = store.list(&query("Namespace", None)).unwrap();
        assert_eq!(names(&namespaces), ["bank", "shop"]);
        assert_eq!(
            names(&store.list(&query("Namespace", Some(""))).unwrap()),
            ["bank", "shop"]
        );
        let other_version = ListQuery {
            api_version: "v2",
            ..query("Pod", None)
        };
        assert!(store.list(&other_version).unwrap().is_empty());
    }

    #[test]
    fn lists_filter_by_labels_and_fields() {
        let store = store();
        let web = ListQuery {
            label_selector: Some("app=web"),
            ..query("Pod", None)
        };
        assert_eq!(names(&store.list(&web).unwrap()), ["bank/web", "shop/web"]);
        let not_web = ListQuery {
            label_selector: Some("app!=web"),
            ..query("Pod", None)
        };
        assert_eq!(
            names(&store.list(&not_web).unwrap()),
            ["bank/api", "shop/db"]
        );
        let running_web = ListQuery {
            label_selector: Some("app in (web, db)"),
            field_selector: Some("status.phase=Running,metadata.name!=db"),
            ..query("Pod", None)
        };
        assert_eq!(names(&store.list(&running_web).unwrap()), ["shop/web"]);
        let bad = ListQuery {
            label_selector: Some("app in web"),
            ..query("Pod", None)
        };
        let error = store.list(&bad).unwrap_err();
        assert!(
            matches!(&error, ClusterError::Invalid(m) if m.starts_with("invalid label selector \"app in web\"")),
            "{error}"
        );
        let bad = ListQuery {
            field_selector: Some("status.phase"),
            ..query("Pod", None)
        };
        assert!(matches!(store.list(&bad), Err(ClusterError::Invalid(_))));
    }

    #[test]
    fn get_finds_by_namespace_and_name() {
        let store = store();
        let web = store
            .get("v1", "Pod", Some("bank"), "web")
            .unwrap()
            .unwrap();
        assert_eq!(web["status"]["phase"], "Failed");
        assert!(store.get("v1", "Pod", None, "web").unwrap().is_none());
        assert!(
            store
                .get("v1", "Pod", Some("shop"), "api")
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .get("v1", "Namespace", None, "shop")
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .get("v1", "Namespace", Some("shop"), "shop")
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .get("apps/v1", "Pod", Some("bank"), "web")
                .unwrap()
                .is_none()
        );
        assert_eq!(store.len(), 6);
    }

    #[test]
    fn can_i_answers_from_the_rbac_objects() {
        let store = ManifestDirectory::from_objects(vec![
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "reader"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
            }),
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "readers", "namespace": "shop"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "reader"},
                "subjects": [{"kind": "User", "name": "alice"}],
            }),
        ])
        .unwrap();
        let review = AccessReview {
            user: "alice".to_owned(),
            namespace: Some("shop".to_owned()),
            verb: "get".to_owned(),
            resource: "pods".to_owned(),
            ..AccessReview::default()
        };
        let status = store.can_i(&review).unwrap();
        assert!(status.allowed, "{status:?}");
        let elsewhere = AccessReview {
            namespace: Some("bank".to_owned()),
            ..review
        };
        assert!(!store.can_i(&elsewhere).unwrap().allowed);
    }

    #[test]
    fn bad_objects_are_named() {
        let error = |objects: Vec<Value>| {
            ManifestDirectory::from_objects(objects)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            error(vec![
                namespace("a"),
                json!({"kind": "Pod", "metadata": {"name": "x"}})
            ]),
            "object 2: the object has no apiVersion"
        );
        assert_eq!(
            error(vec![
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}})
            ]),
            "object 1: the Pod has no metadata.name"
        );
        assert_eq!(
            error(vec![
                json!({"apiVersion": "v1", "kind": "", "metadata": {"name": "x"}})
            ]),
            "object 1: the object's kind is empty"
        );
        assert_eq!(
            error(vec![json!([1])]),
            "object 1: a Kubernetes object must be a mapping, not a list"
        );
        assert_eq!(
            error(vec![pod("a", "b", json!({"version": 1}), "Running")]),
            "object 1: metadata.labels.version must be a string, not a number (quote it)"
        );
        assert_eq!(
            error(vec![namespace("a"), namespace("a")]),
            "object 2: Namespace a (v1) is given twice; first in object 1"
        );
        assert_eq!(
            error(vec![
                json!({"apiVersion": "v1", "kind": "List", "items": [namespace("a"), {"kind": "Pod"}]})
            ]),
            "object 1 item 2: the object has no apiVersion"
        );
        assert_eq!(
            error(vec![
                json!({"apiVersion": "v1", "kind": "List", "items": {}})
            ]),
            "object 1: the items of a List must be a list"
        );
    }

    #[test]
    fn typed_lists_lend_their_items_a_type() {
        let store = ManifestDirectory::from_objects(vec![
            json!({
                "apiVersion": "v1",
                "kind": "PodList",
                "items": [{"metadata": {"name": "a", "namespace": "ns"}}],
            }),
            json!({
                "apiVersion": "example.com/v1",
                "kind": "AllowList",
                "metadata": {"name": "not-a-list"},
            }),
        ])
        .unwrap();
        let pod = store.get("v1", "Pod", Some("ns"), "a").unwrap().unwrap();
        assert_eq!(pod["kind"], "Pod");
        assert_eq!(pod["apiVersion"], "v1");
        assert!(
            store
                .get("example.com/v1", "AllowList", None, "not-a-list")
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn loads_a_directory_of_yaml_json_and_lists() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(
            root.join("pods.yaml"),
            "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: shop\n  labels:\n    app: web\n\
             ---\n# only a comment\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: db, namespace: shop}\n",
        )
        .unwrap();
        std::fs::write(
            root.join("namespaces.json"),
            r#"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
               {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bank"}}"#,
        )
        .unwrap();
        std::fs::create_dir(root.join("rbac")).unwrap();
        std::fs::write(
            root.join("rbac").join("list.yml"),
            "apiVersion: v1\nkind: List\nitems:\n\
             - apiVersion: rbac.authorization.k8s.io/v1\n  kind: ClusterRole\n  metadata: {name: reader}\n  \
               rules: [{apiGroups: [\"\"], resources: [pods], verbs: [list]}]\n\
             - apiVersion: rbac.authorization.k8s.io/v1\n  kind: ClusterRoleBinding\n  metadata: {name: readers}\n  \
               roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: reader}\n  \
               subjects: [{kind: Group, name: ops}]\n",
        )
        .unwrap();
        std::fs::write(root.join("notes.txt"), "not: [a manifest").unwrap();
        std::fs::create_dir(root.join(".git")).unwrap();
        std::fs::write(root.join(".git").join("junk.yaml"), "{{{").unwrap();

        let store = ManifestDirectory::load(root).unwrap();
        assert_eq!(store.len(), 6);
        let pods = store.list(&query("Pod", Some("shop"))).unwrap();
        assert_eq!(names(&pods), ["shop/db", "shop/web"]);
        let namespaces = store.list(&query("Namespace", None)).unwrap();
        assert_eq!(names(&namespaces), ["bank", "shop"]);
        let review = AccessReview {
            user: "bob".to_owned(),
            groups: ["ops".to_owned()].into(),
            verb: "list".to_owned(),
            resource: "pods".to_owned(),
            ..AccessReview::default()
        };
        assert_eq!(
            store.can_i(&review).unwrap().reason,
            "RBAC: allowed by ClusterRoleBinding \"readers\" of ClusterRole \"reader\" to Group \"ops\""
        );

        // One file alone loads too.
        let one = ManifestDirectory::load(&root.join("pods.yaml")).unwrap();
        assert_eq!(one.len(), 2);
    }

    #[test]
    fn file_errors_name_the_file_and_document() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.yaml");
        let load = |text: &str| {
            std::fs::write(&file, text).unwrap();
            ManifestDirectory::load(dir.path()).unwrap_err()
        };
        let error = load(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\nkind: Pod\nmetadata: {name: b}\n",
        );
        assert_eq!(
            error.to_string(),
            format!(
                "{} document 2: the object has no apiVersion",
                file.display()
            )
        );
        let error = load("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\nkind: [\n");
        assert!(
            matches!(&error, ManifestError::Parse { document: 2, .. }),
            "{error:?}"
        );
        let error = load("apiVersion: v1\nkind: Namespace\nkind: Pod\nmetadata: {name: a}\n");
        assert!(
            matches!(&error, ManifestError::Parse { document: 1, message, .. } if message.contains("the key \"kind\" is given twice")),
            "{error:?}"
        );
        std::fs::remove_file(&file).unwrap();
        let json = dir.path().join("bad.json");
        std::fs::write(
            &json,
            r#"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}} {"#,
        )
        .unwrap();
        let error = ManifestDirectory::load(dir.path()).unwrap_err();
        assert!(
            matches!(&error, ManifestError::Parse { document: 2, .. }),
            "{error:?}"
        );
        std::fs::write(&json, r#"{"apiVersion": "v1", "apiVersion": "v2"}"#).unwrap();
        let error = ManifestDirectory::load(dir.path()).unwrap_err();
        assert!(
            matches!(&error, ManifestError::Parse { document: 1, .. }),
            "{error:?}"
        );

        let missing = ManifestDirectory::load(&dir.path().join("nothing")).unwrap_err();
        assert!(matches!(missing, ManifestError::Read { .. }), "{missing:?}");
    }

    #[test]
    fn oversized_files_are_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::File::create(dir.path().join("huge.yaml")).unwrap();
        file.set_len(MAX_FILE_BYTES + 1).unwrap();
        let error = ManifestDirectory::load(dir.path()).unwrap_err();
        assert!(
            matches!(error, ManifestError::TooLarge { size, .. } if size == MAX_FILE_BYTES + 1),
            "{error:?}"
        );
    }
}
