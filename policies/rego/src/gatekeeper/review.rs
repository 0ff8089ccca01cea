//! `input.review`: what a template sees of a request, built as Gatekeeper builds it
//! (gatekeeper `pkg/target/target.go`, `review.go`): the AdmissionRequest's JSON with Go's field
//! presence (`object`, `oldObject` and `options` present as null; `name`, `namespace`,
//! `subResource` and the `request*` fields omitted when empty) plus `namespaceObject`. A DELETE
//! reviews its old object as `object` (gatekeeper `util.SetObjectOnDelete`). A plain object (gator
//! cases, audit) is reviewed as Gatekeeper's synthesized request: only `kind`, `object`, `name`
//! and `namespace`, with empty `operation`, `uid` and `resource`.

use std::collections::BTreeMap;

use palisade_sdk::PolicyError;
use palisade_sdk::wire::{AdmissionRequest, Operation};
use serde::Deserialize;

use super::inventory::Inventory;
use crate::rego;

/// A request or object under review.
#[derive(Debug, Clone)]
pub struct Review {
    value: regorus::Value,
    subjects: Vec<Subject>,
    namespace: Option<Namespace>,
}

/// What matching reads of an object.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    /// API group (from `apiVersion`).
    pub group: String,
    /// Kind.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.generateName`.
    pub generate_name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
}

impl Subject {
    /// Whether the object is a core Namespace.
    #[must_use]
    pub fn is_namespace(&self) -> bool {
        self.kind == "Namespace" && self.group.is_empty()
    }
}

/// The Namespace of a namespaced request.
#[derive(Debug, Clone)]
pub struct Namespace {
    /// Its name.
    pub name: String,
    /// Its labels, when known (the inventory holds the Namespace).
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Head<'a> {
    #[serde(default, borrow)]
    api_version: &'a str,
    #[serde(default, borrow)]
    kind: &'a str,
    #[serde(default)]
    metadata: Metadata,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    #[serde(default)]
    name: String,
    #[serde(default)]
    generate_name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

fn subject(head: Head<'_>) -> Subject {
    let group = head.api_version.split_once('/').map_or("", |(g, _)| g);
    Subject {
        group: group.to_owned(),
        kind: head.kind.to_owned(),
        name: head.metadata.name,
        generate_name: head.metadata.generate_name,
        namespace: head.metadata.namespace,
        labels: head.metadata.labels,
    }
}

fn gvk(group: &str, version: &str, kind: &str) -> regorus::Value {
    rego::object([
        ("group", group.into()),
        ("version", version.into()),
        ("kind", kind.into()),
    ])
}

impl Review {
    /// The review of an admission request.
    ///
    /// # Errors
    /// [`PolicyError::InvalidRequest`] when the object or old object is not a Kubernetes object,
    /// or a DELETE carries no old object.
    pub fn from_request(
        request: &AdmissionRequest,
        inventory: &Inventory,
    ) -> Result<Self, PolicyError> {
        Self::for_matching(request, inventory)?.with_value(request, inventory)
    }

    /// What matching reads of a request (its objects' kinds, names, namespaces and labels),
    /// without `input.review` (null until [`Review::with_value`]): enough to learn that no
    /// Constraint applies without converting the objects for Rego.
    ///
    /// # Errors
    /// As [`Review::from_request`].
    pub fn for_matching(
        request: &AdmissionRequest,
        inventory: &Inventory,
    ) -> Result<Self, PolicyError> {
        let mut subjects = Vec::new();
        for (raw, field) in [
            (reviewed_object(request)?, "object"),
            (&request.old_object, "oldObject"),
        ] {
            if let Some(raw) = raw {
                let head: Head<'_> = raw.read().map_err(|e| {
                    PolicyError::InvalidRequest(format!("{field} is not a Kubernetes object: {e}"))
                })?;
                subjects.push(subject(head));
            }
        }
        let namespace = request
            .namespace
            .as_deref()
            .filter(|n| !n.is_empty())
            .map(|name| namespace(name, inventory));
        Ok(Self {
            value: regorus::Value::Null,
            subjects,
            namespace,
        })
    }

    /// The review made by [`Review::for_matching`], completed with `input.review`: the
    /// request's objects converted for Rego (their kinds and labels are not read again).
    ///
    /// # Errors
    /// As [`Review::from_request`].
    pub fn with_value(
        self,
        request: &AdmissionRequest,
        inventory: &Inventory,
    ) -> Result<Self, PolicyError> {
        let convert = |raw: &Option<palisade_sdk::wire::RawJson>, field: &str| match raw {
            None => Ok(regorus::Value::Null),
            Some(raw) => rego::from_raw_json(raw).map_err(|e| {
                PolicyError::InvalidRequest(format!("{field} is not a Kubernetes object: {e}"))
            }),
        };
        let object_value = convert(reviewed_object(request)?, "object")?;
        let old_value = convert(&request.old_object, "oldObject")?;
        let Self {
            subjects,
            namespace,
            ..
        } = self;
        let namespace_object = namespace_object(namespace.as_ref(), inventory);
        let mut review = BTreeMap::new();
        let mut put = |k: &str, v: regorus::Value| {
            review.insert(regorus::Value::from(k), v);
        };
        put("uid", request.uid.as_str().into());
        let k = &request.kind;
        put("kind", gvk(&k.group, &k.version, &k.kind));
        let r = &request.resource;
        put(
            "resource",
            rego::object([
                ("group", r.group.as_str().into()),
                ("version", r.version.as_str().into()),
                ("resource", r.resource.as_str().into()),
            ]),
        );
        if let Some(sub) = request.sub_resource.as_deref().filter(|s| !s.is_empty()) {
            put("subResource", sub.into());
        }
        if let Some(k) = &request.request_kind {
            put("requestKind", gvk(&k.group, &k.version, &k.kind));
        }
        if let Some(r) = &request.request_resource {
            put(
                "requestResource",
                rego::object([
                    ("group", r.group.as_str().into()),
                    ("version", r.version.as_str().into()),
                    ("resource", r.resource.as_str().into()),
                ]),
            );
        }
        if let Some(sub) = request
            .request_sub_resource
            .as_deref()
            .filter(|s| !s.is_empty())
        {
            put("requestSubResource", sub.into());
        }
        if let Some(name) = request.name.as_deref().filter(|s| !s.is_empty()) {
            put("name", name.into());
        }
        if let Some(ns) = request.namespace.as_deref().filter(|s| !s.is_empty()) {
            put("namespace", ns.into());
        }
        put("operation", request.operation.as_str().into());
        put("userInfo", user_info(&request.user_info));
        put("object", object_value);
        put("oldObject", old_value);
        put("dryRun", request.dry_run.into());
        put(
            "options",
            match &request.options {
                Some(raw) => rego::from_raw_json(raw).map_err(PolicyError::InvalidRequest)?,
                None => regorus::Value::Null,
            },
        );
        put("namespaceObject", namespace_object);
        Ok(Self {
            value: regorus::Value::from(review),
            subjects,
            namespace,
        })
    }

    /// The review of a plain object, as gator and audit review one.
    ///
    /// # Errors
    /// A message when the value is not a Kubernetes object (no kind or metadata that parses).
    pub fn from_object(object: &serde_json::Value, inventory: &Inventory) -> Result<Self, String> {
        let head =
            Head::deserialize(object).map_err(|e| format!("not a Kubernetes object: {e}"))?;
        if head.kind.is_empty() {
            return Err("not a Kubernetes object: kind is missing".to_owned());
        }
        let (group, version) = head
            .api_version
            .split_once('/')
            .unwrap_or(("", head.api_version));
        let kind = gvk(group, version, head.kind);
        let subject = subject(head);
        let namespace =
            (!subject.namespace.is_empty()).then(|| namespace(&subject.namespace, inventory));
        let mut review = BTreeMap::new();
        let mut put = |k: &str, v: regorus::Value| {
            review.insert(regorus::Value::from(k), v);
        };
        put("uid", "".into());
        put("kind", kind);
        put(
            "resource",
            rego::object([
                ("group", "".into()),
                ("version", "".into()),
                ("resource", "".into()),
            ]),
        );
        if !subject.name.is_empty() {
            put("name", subject.name.as_str().into());
        }
        if !subject.namespace.is_empty() {
            put("namespace", subject.namespace.as_str().into());
        }
        put("operation", "".into());
        put("userInfo", rego::object([]));
        put("object", regorus::Value::from(object.clone()));
        put("oldObject", regorus::Value::Null);
        put("options", regorus::Value::Null);
        put("namespaceObject", regorus::Value::Null);
        Ok(Self {
            value: regorus::Value::from(review),
            subjects: vec![subject],
            namespace,
        })
    }

    /// `input.review`.
    #[must_use]
    pub fn value(&self) -> &regorus::Value {
        &self.value
    }

    /// The objects matching tests: the object, then the old object.
    #[must_use]
    pub fn subjects(&self) -> &[Subject] {
        &self.subjects
    }

    /// The request's Namespace.
    #[must_use]
    pub fn namespace(&self) -> Option<&Namespace> {
        self.namespace.as_ref()
    }
}

/// The object a request reviews: a DELETE's old object (gatekeeper `util.SetObjectOnDelete`).
fn reviewed_object(
    request: &AdmissionRequest,
) -> Result<&Option<palisade_sdk::wire::RawJson>, PolicyError> {
    if request.operation != Operation::Delete {
        return Ok(&request.object);
    }
    if request.old_object.is_none() {
        return Err(PolicyError::InvalidRequest(
            "a DELETE request must carry oldObject (Gatekeeper reviews the deleted object)"
                .to_owned(),
        ));
    }
    Ok(&request.old_object)
}

fn namespace(name: &str, inventory: &Inventory) -> Namespace {
    Namespace {
        name: name.to_owned(),
        labels: inventory.namespace(name).map(|(_, labels)| labels.clone()),
    }
}

fn namespace_object(namespace: Option<&Namespace>, inventory: &Inventory) -> regorus::Value {
    namespace
        .and_then(|ns| inventory.namespace(&ns.name))
        .map_or(regorus::Value::Null, |(object, _)| {
            regorus::Value::from(object.clone())
        })
}

fn user_info(user: &palisade_sdk::wire::UserInfo) -> regorus::Value {
    let mut info = Vec::new();
    if !user.username.is_empty() {
        info.push(("username", user.username.as_str().into()));
    }
    if !user.uid.is_empty() {
        info.push(("uid", user.uid.as_str().into()));
    }
    if !user.groups.is_empty() {
        info.push((
            "groups",
            regorus::Value::from(
                user.groups
                    .iter()
                    .map(|g| g.as_str().into())
                    .collect::<Vec<regorus::Value>>(),
            ),
        ));
    }
    if !user.extra.is_empty() {
        let extra = serde_json::to_value(&user.extra).unwrap_or(serde_json::Value::Null);
        info.push(("extra", regorus::Value::from(extra)));
    }
    rego::object(info)
}
