//! `admission.k8s.io/v1` AdmissionReview, request and response, with the API's own field names.
//! Kubernetes payloads are parsed leniently (unknown fields are kept out, not rejected).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::BTreeMap;

use crate::PolicyError;

/// An `admission.k8s.io/v1` (or `v1beta1`) AdmissionReview as the API server sends and expects it.
///
/// ```
/// use palisade_sdk::wire::AdmissionReview;
/// let review: AdmissionReview = serde_json::from_str(r#"{
///   "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
///   "request": {"uid": "705ab4f5", "kind": {"group": "", "version": "v1", "kind": "Pod"},
///               "resource": {"group": "", "version": "v1", "resource": "pods"},
///               "operation": "CREATE", "userInfo": {"username": "alice"},
///               "object": {"kind": "Pod"}}
/// }"#).unwrap();
/// let request = review.request.unwrap();
/// assert_eq!(request.uid, "705ab4f5");
/// assert_eq!(request.object.unwrap().get(), r#"{"kind": "Pod"}"#);
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionReview {
    /// `admission.k8s.io/v1` or `admission.k8s.io/v1beta1`; a response is sent in the version the request came in.
    #[serde(default)]
    pub api_version: String,
    /// Always `AdmissionReview`.
    #[serde(default)]
    pub kind: String,
    /// The attributes of the admission request; set on requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<AdmissionRequest>,
    /// The webhook's answer; set on responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<AdmissionResponse>,
}

/// The attributes of one admission request (`AdmissionRequest` in `admission.k8s.io/v1`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    /// Identifier of this admission call, unique per request; must be echoed in the response.
    pub uid: String,
    /// Fully-qualified type of the object being submitted (for example `v1.Pod`).
    pub kind: GroupVersionKind,
    /// Fully-qualified resource being requested (for example `v1.pods`).
    pub resource: GroupVersionResource,
    /// Subresource being requested, if any (for example `status` or `ephemeralcontainers`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_resource: Option<String>,
    /// Type of the original API request, when the API server converted it to match the webhook's rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_kind: Option<GroupVersionKind>,
    /// Resource of the original API request, when it was converted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_resource: Option<GroupVersionResource>,
    /// Subresource of the original API request, when it was converted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_sub_resource: Option<String>,
    /// Name of the object as presented in the request; may be empty on CREATE with `generateName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace associated with the request, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The operation being performed.
    pub operation: Operation,
    /// Information about the requesting user.
    #[serde(default)]
    pub user_info: UserInfo,
    /// The object from the incoming request (JSON text, kept raw so it is parsed once, by the policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<RawJson>,
    /// The existing object; only populated for UPDATE and DELETE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_object: Option<RawJson>,
    /// True when the request is a dry run: the policy must have no side effects.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// The operation's options (`CreateOptions`, `UpdateOptions`, `DeleteOptions`) as JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<RawJson>,
}

impl AdmissionRequest {
    /// Parses the request's `object` into `T`; `Ok(None)` when the request carries none. `T`
    /// may borrow from the request (`&str` or `Cow<str>` fields with `#[serde(borrow)]`), so
    /// reading an object need not copy its strings.
    ///
    /// # Errors
    /// [`PolicyError::InvalidRequest`] naming the JSON path and problem when the object does not fit `T`.
    pub fn object<'a, T: Deserialize<'a>>(&'a self) -> Result<Option<T>, PolicyError> {
        parse_raw(self.object.as_ref(), "object")
    }

    /// Parses the request's `oldObject` into `T`; `Ok(None)` when the request carries none.
    ///
    /// # Errors
    /// [`PolicyError::InvalidRequest`] naming the JSON path and problem when the object does not fit `T`.
    pub fn old_object<'a, T: Deserialize<'a>>(&'a self) -> Result<Option<T>, PolicyError> {
        parse_raw(self.old_object.as_ref(), "oldObject")
    }
}

/// Parses raw JSON into `T`. The common case (the object fits) takes one plain pass; only a
/// failed parse is repeated with path tracking, to name where the object does not fit.
fn parse_raw<'a, T: Deserialize<'a>>(
    raw: Option<&'a RawJson>,
    field: &str,
) -> Result<Option<T>, PolicyError> {
    let Some(raw) = raw else { return Ok(None) };
    if let Ok(value) = serde_json::from_str(raw.get()) {
        return Ok(Some(value));
    }
    let mut deserializer = serde_json::Deserializer::from_str(raw.get());
    serde_path_to_error::deserialize::<_, T>(&mut deserializer)
        .map(Some)
        .map_err(|e| PolicyError::InvalidRequest(format!("{field}.{}: {}", e.path(), e.inner())))
}

/// JSON text kept as it came, parsed only when a policy asks for it (as in
/// [`AdmissionRequest::object`]), so a policy reads an object once, into its own types.
///
/// It (de)serializes as the JSON it holds. Deserializing checks that it is JSON; so do
/// [`parse`](Self::parse) and [`from_value`](Self::from_value) by construction. Inside a policy,
/// the admission adapter takes the text the host already checked without checking it again:
/// a policy's typed parse reports any problem anyway, with its JSON path.
#[derive(Clone, PartialEq, Eq)]
pub struct RawJson(String);

impl RawJson {
    /// Checks that `text` is one JSON value and keeps it as it is.
    ///
    /// # Errors
    /// The parser's error when it is not.
    pub fn parse(text: String) -> Result<Self, serde_json::Error> {
        serde_json::from_str::<&RawValue>(&text)?;
        Ok(Self(text))
    }

    /// Serializes `value` as compact JSON.
    ///
    /// # Errors
    /// The serializer's error (for example a map with non-string keys).
    pub fn from_value<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::to_string(value).map(Self)
    }

    /// Text its producer vouches for (the host's, already checked by its parse).
    #[cfg(all(feature = "admission-component", target_arch = "wasm32"))]
    pub(crate) fn trusted(text: String) -> Self {
        Self(text)
    }

    /// The JSON text.
    #[must_use]
    pub fn get(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for RawJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for RawJson {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serde_json::from_str::<&RawValue>(&self.0)
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        Ok(Self(Box::<str>::from(raw).into_string()))
    }
}

/// A Kubernetes group, version and kind (`metav1.GroupVersionKind`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupVersionKind {
    /// API group; empty for the core group.
    #[serde(default)]
    pub group: String,
    /// API version within the group (for example `v1`).
    #[serde(default)]
    pub version: String,
    /// Kind (for example `Pod`).
    #[serde(default)]
    pub kind: String,
}

/// A Kubernetes group, version and resource (`metav1.GroupVersionResource`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupVersionResource {
    /// API group; empty for the core group.
    #[serde(default)]
    pub group: String,
    /// API version within the group.
    #[serde(default)]
    pub version: String,
    /// Plural resource name (for example `pods`).
    #[serde(default)]
    pub resource: String,
}

/// The operation an admission request performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    /// The object is being created.
    Create,
    /// The object is being updated.
    Update,
    /// The object is being deleted.
    Delete,
    /// A connect subresource (exec, attach, port-forward, proxy) is being used.
    Connect,
}

/// The requesting user (`authentication.k8s.io/v1` UserInfo).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// The name that uniquely identifies this user among all active users.
    #[serde(default)]
    pub username: String,
    /// A unique value that identifies this user across time.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// The names of groups this user is a part of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Any additional information provided by the authenticator.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

/// A webhook's answer (`AdmissionResponse` in `admission.k8s.io/v1`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    /// The request's uid, echoed.
    pub uid: String,
    /// Whether the request is admitted.
    pub allowed: bool,
    /// Why a request was denied (ignored by the API server when allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// A JSONPatch (RFC 6902) as base64 text; only for mutating webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    /// Always `JSONPatch` when `patch` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<String>,
    /// Annotations the API server adds to the audit event, under the webhook's name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub audit_annotations: BTreeMap<String, String>,
    /// Warnings returned to the requesting client.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The subset of `metav1.Status` a webhook returns for a denial.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// HTTP status code the API server answers with (403 unless the policy says otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    /// Human-readable description shown to the user.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Machine-readable reason: the policy's stable kebab-case reason.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests fail by panicking")]

    use super::*;

    const REVIEW: &str = r#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                    "resource": {"group": "", "version": "v1", "resource": "pods"},
                    "operation": "CREATE", "userInfo": {"username": "alice"},
                    "object": {"kind": "Pod",  "spec": {"containers": [ ]}}}}"#;

    #[test]
    fn objects_keep_their_text_through_a_round_trip() {
        let review: AdmissionReview = serde_json::from_str(REVIEW).unwrap();
        let request = review.request.unwrap();
        let object = request.object.as_ref().unwrap();
        assert_eq!(
            object.get(),
            r#"{"kind": "Pod",  "spec": {"containers": [ ]}}"#
        );
        let again: AdmissionRequest =
            serde_json::from_str(&serde_json::to_string(&request).unwrap()).unwrap();
        assert_eq!(again.object, request.object);
        let pod: serde_json::Value = request.object().unwrap().unwrap();
        assert_eq!(pod.get("kind").unwrap(), "Pod");
    }

    #[test]
    fn raw_json_is_checked_where_it_is_built() {
        let error = RawJson::parse(r#"{"kind": "Pod""#.to_owned()).unwrap_err();
        assert!(error.is_eof(), "{error}");
        assert!(RawJson::parse("[1] 2".to_owned()).is_err());
        assert_eq!(
            RawJson::from_value(&serde_json::json!({"a": [1, "b"]}))
                .unwrap()
                .get(),
            r#"{"a":[1,"b"]}"#
        );
        let broken = REVIEW.replace(r#""containers": [ ]"#, r#""containers": [ }"#);
        let error = serde_json::from_str::<AdmissionReview>(&broken).unwrap_err();
        assert!(error.is_syntax(), "{error}");
    }
}
