//! `admission.k8s.io/v1` AdmissionReview, request and response, with the API's own field names.
//! Kubernetes payloads are parsed leniently (unknown fields are kept out, not rejected).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::BTreeMap;

use super::json::{self, Tape};
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

/// Reads raw JSON into `T` through its tape. Only a failed read is repeated, with serde_json
/// and path tracking, to name where the object does not fit.
fn parse_raw<'a, T: Deserialize<'a>>(
    raw: Option<&'a RawJson>,
    field: &str,
) -> Result<Option<T>, PolicyError> {
    let Some(raw) = raw else { return Ok(None) };
    let error = match raw.read() {
        Ok(value) => return Ok(Some(value)),
        Err(error) => error,
    };
    let mut deserializer = serde_json::Deserializer::from_str(raw.get());
    match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
        Err(e) => Err(PolicyError::InvalidRequest(format!(
            "{field}.{}: {}",
            e.path(),
            e.inner()
        ))),
        // Both readers take the same values; should they ever disagree, the tape's word stands.
        Ok(_) => Err(PolicyError::InvalidRequest(format!("{field}: {error}"))),
    }
}

/// JSON text kept as it came, with its [`Tape`], read only when a policy asks for it (as in
/// [`AdmissionRequest::object`]): a policy reads an object once, into its own types, skipping
/// what it does not read without scanning it.
///
/// It (de)serializes as the JSON it holds; building one ([`parse`](Self::parse),
/// [`from_value`](Self::from_value), deserializing) checks the text and builds its tape in one
/// pass. Read from a tape-aware deserializer (the host's review parse), it takes its text and
/// its part of the tape as they are, without a second pass.
#[derive(Clone)]
pub struct RawJson {
    text: String,
    tape: Tape,
}

impl RawJson {
    /// Checks that `text` is one JSON value and keeps it as it is, with its tape.
    ///
    /// # Errors
    /// Where and why the text is not JSON.
    pub fn parse(text: String) -> Result<Self, json::Error> {
        let tape = Tape::build(&text)?;
        Ok(Self { text, tape })
    }

    /// Serializes `value` as compact JSON.
    ///
    /// # Errors
    /// The serializer's error (for example a map with non-string keys).
    pub fn from_value<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        let text = serde_json::to_string(value)?;
        Self::parse(text).map_err(serde::ser::Error::custom)
    }

    /// Text and tape their producer vouches for (the host's: it checked the text and built the
    /// tape while reading the review). A tape that does not fit gives read errors, not panics.
    #[cfg(all(feature = "admission-component", target_arch = "wasm32"))]
    pub(crate) fn trusted(text: String, tape: Vec<u32>) -> Self {
        Self {
            text,
            tape: Tape::from_words(tape),
        }
    }

    /// The JSON text.
    #[must_use]
    pub fn get(&self) -> &str {
        &self.text
    }

    /// The text's tape.
    #[must_use]
    pub fn tape(&self) -> &Tape {
        &self.tape
    }

    /// Reads the value into `T` through the tape; `T` may borrow from the text.
    ///
    /// # Errors
    /// [`json::Error`] when the value does not fit `T`.
    pub fn read<'a, T: Deserialize<'a>>(&'a self) -> Result<T, json::Error> {
        json::from_tape(&self.text, &self.tape)
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for RawJson {}

impl std::fmt::Debug for RawJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for RawJson {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serde_json::from_str::<&RawValue>(&self.text)
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_newtype_struct(json::RAW_TOKEN, RawJsonVisitor)
    }
}

/// A tape handed over as little-endian bytes by the tape reader.
struct TapeBytes(Vec<u32>);

impl<'de> Deserialize<'de> for TapeBytes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BytesVisitor;

        impl serde::de::Visitor<'_> for BytesVisitor {
            type Value = TapeBytes;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a tape as bytes")
            }

            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<TapeBytes, E> {
                Ok(TapeBytes(
                    bytes
                        .chunks_exact(4)
                        .filter_map(|b| <[u8; 4]>::try_from(b).ok())
                        .map(u32::from_le_bytes)
                        .collect(),
                ))
            }
        }

        deserializer.deserialize_bytes(BytesVisitor)
    }
}

/// Takes a value's text and tape from the tape reader, or its text from any other
/// deserializer (serde_json's, which hands over the value itself) and builds the tape.
struct RawJsonVisitor;

impl<'de> serde::de::Visitor<'de> for RawJsonVisitor {
    type Value = RawJson;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_newtype_struct<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<RawJson, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        RawJson::parse(Box::<str>::from(raw).into_string()).map_err(serde::de::Error::custom)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<RawJson, A::Error> {
        let mut text = None;
        let mut tape = None;
        while let Some(key) = map.next_key::<&str>()? {
            match key {
                json::RAW_TEXT => text = Some(map.next_value::<String>()?),
                json::RAW_TAPE => tape = Some(map.next_value::<TapeBytes>()?.0),
                other => {
                    return Err(serde::de::Error::unknown_field(
                        other,
                        &[json::RAW_TEXT, json::RAW_TAPE],
                    ));
                }
            }
        }
        match (text, tape) {
            (Some(text), Some(tape)) => Ok(RawJson {
                text,
                tape: Tape::from_words(tape),
            }),
            _ => Err(serde::de::Error::custom(
                "a raw JSON value needs its text and tape",
            )),
        }
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

impl Operation {
    /// The operation as the API server writes it: `CREATE`, `UPDATE`, `DELETE`, `CONNECT`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
            Self::Connect => "CONNECT",
        }
    }
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
        assert_eq!(error.to_string(), "EOF while parsing an object at byte 14");
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
