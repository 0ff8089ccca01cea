//! Recording and replaying a run's host-capability exchanges, in the file format of kwctl's
//! `--record-host-capabilities-interactions` / `--replay-host-capabilities-interactions`
//! (kwctl `callback_handler/proxy.rs`, policy-evaluator `callback_requests.rs`): a YAML list of
//! `{type: Exchange, request: <YAML text of a tagged request such as !KubernetesGetResource>,
//! response: {type: Success, payload: <JSON text>} | {type: Error, message}}`. A session kwctl
//! recorded replays here, and one recorded here replays in kwctl.
//!
//! Replay takes exchanges front to back; the next request must equal the recorded one (absent
//! and null fields are the same), else the call fails with kwctl's words.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One exchange of the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Exchange {
    /// A request and what answered it.
    Exchange {
        /// The request: YAML text of a tagged value (`!OciManifestDigest\nimage: ...`).
        request: String,
        /// The answer.
        response: Response,
    },
}

/// An answer of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Response {
    /// The bytes the guest got, as text.
    Success {
        /// JSON text.
        payload: String,
    },
    /// The error the guest got.
    Error {
        /// Its message.
        message: String,
    },
}

/// A request as kwctl names it: the variant of `CallbackRequestType` and its fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// `KubernetesGetResource`, `OciManifestDigest`, ...
    pub variant: &'static str,
    /// Its fields, as a JSON object.
    pub fields: Value,
}

impl Request {
    /// The request as the file writes it.
    fn to_yaml(&self) -> String {
        let tagged = serde_yaml::value::TaggedValue {
            tag: serde_yaml::value::Tag::new(self.variant),
            value: serde_yaml::to_value(&self.fields).unwrap_or(serde_yaml::Value::Null),
        };
        serde_yaml::to_string(&serde_yaml::Value::Tagged(Box::new(tagged))).unwrap_or_default()
    }

    /// Whether the file's `recorded` request is this one.
    fn matches(&self, recorded: &str) -> bool {
        let Ok(serde_yaml::Value::Tagged(tagged)) = serde_yaml::from_str(recorded) else {
            return false;
        };
        let Ok(fields) = serde_json::to_value(&tagged.value) else {
            return false;
        };
        tagged.tag == serde_yaml::value::Tag::new(self.variant)
            && without_nulls(fields) == without_nulls(self.fields.clone())
    }
}

/// `value` with every null member of its objects removed (absent and null are the same).
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

/// A run's exchanges: being recorded, or being replayed.
#[derive(Debug)]
pub enum Session {
    /// Every exchange is kept, in order, for [`Session::recorded`].
    Record(Mutex<Vec<Exchange>>),
    /// Exchanges are answered from these, in order.
    Replay(Mutex<VecDeque<Exchange>>),
}

impl Session {
    /// A session that records.
    #[must_use]
    pub fn record() -> Self {
        Self::Record(Mutex::new(Vec::new()))
    }

    /// A session that replays the file's `text`.
    ///
    /// # Errors
    /// When the text is not a list of exchanges.
    pub fn replay(text: &str) -> Result<Self, String> {
        let exchanges: Vec<Exchange> = serde_yaml::from_str(text)
            .map_err(|e| format!("not a list of recorded host-capability exchanges: {e}"))?;
        Ok(Self::Replay(Mutex::new(exchanges.into())))
    }

    /// The answer replay gives `request`; `None` when recording.
    pub(crate) fn replayed(&self, request: &Request) -> Option<Result<Vec<u8>, String>> {
        let Self::Replay(queue) = self else {
            return None;
        };
        let next = queue.lock().ok().and_then(|mut q| q.pop_front());
        Some(match next {
            None => Err("Replay error: the list of recorded responses is empty".to_owned()),
            Some(Exchange::Exchange {
                request: recorded,
                response,
            }) => {
                if request.matches(&recorded) {
                    match response {
                        Response::Success { payload } => Ok(payload.into_bytes()),
                        Response::Error { message } => Err(message),
                    }
                } else {
                    Err(format!(
                        "Replay error: unexpected request: got {}, expected {}",
                        request.to_yaml().trim_end(),
                        recorded.trim_end()
                    ))
                }
            }
        })
    }

    /// Keeps `request` and its `answer` when recording.
    pub(crate) fn keep(&self, request: &Request, answer: &Result<Vec<u8>, String>) {
        let Self::Record(exchanges) = self else {
            return;
        };
        let response = match answer {
            Ok(bytes) => Response::Success {
                payload: String::from_utf8_lossy(bytes).into_owned(),
            },
            Err(message) => Response::Error {
                message: message.clone(),
            },
        };
        if let Ok(mut exchanges) = exchanges.lock() {
            exchanges.push(Exchange::Exchange {
                request: request.to_yaml(),
                response,
            });
        }
    }

    /// The recorded exchanges as the file's text (empty when replaying).
    #[must_use]
    pub fn recorded(&self) -> String {
        match self {
            Self::Record(exchanges) => exchanges
                .lock()
                .map(|e| serde_yaml::to_string(&*e).unwrap_or_default())
                .unwrap_or_default(),
            Self::Replay(_) => String::new(),
        }
    }

    /// How many recorded exchanges were not replayed.
    #[must_use]
    pub fn left_over(&self) -> usize {
        match self {
            Self::Replay(queue) => queue.lock().map_or(0, |q| q.len()),
            Self::Record(_) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    /// A session as kwctl writes it.
    const KWCTL: &str = r#"- type: Exchange
  request: |
    !KubernetesGetResource
    api_version: v1
    kind: Namespace
    name: test-policy
    namespace: null
    disable_cache: false
  response:
    type: Success
    payload: '{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"test-policy"}}'
- type: Exchange
  request: |
    !OciManifestDigest
    image: ghcr.io/example/app:1
  response:
    type: Error
    message: not found
"#;

    fn get(namespace: Option<&str>) -> Request {
        Request {
            variant: "KubernetesGetResource",
            fields: serde_json::json!({"api_version": "v1", "kind": "Namespace", "name": "test-policy", "namespace": namespace, "disable_cache": false, "field_masks": null}),
        }
    }

    #[test]
    fn a_kwctl_session_replays_in_order() {
        let session = Session::replay(KWCTL).unwrap();
        let answer = session.replayed(&get(None)).unwrap().unwrap();
        assert!(String::from_utf8(answer).unwrap().contains("test-policy"));
        let digest = Request {
            variant: "OciManifestDigest",
            fields: serde_json::json!({"image": "ghcr.io/example/app:1"}),
        };
        assert_eq!(session.replayed(&digest).unwrap().unwrap_err(), "not found");
        assert_eq!(
            session.replayed(&digest).unwrap().unwrap_err(),
            "Replay error: the list of recorded responses is empty"
        );
    }

    #[test]
    fn a_different_request_is_a_replay_error() {
        let session = Session::replay(KWCTL).unwrap();
        let error = session.replayed(&get(Some("other"))).unwrap().unwrap_err();
        assert!(
            error.starts_with("Replay error: unexpected request"),
            "{error}"
        );
        assert_eq!(session.left_over(), 1);
    }

    #[test]
    fn a_recording_replays() {
        let recording = Session::record();
        assert!(recording.replayed(&get(None)).is_none());
        recording.keep(&get(None), &Ok(b"{}".to_vec()));
        recording.keep(&get(Some("x")), &Err("boom".to_owned()));
        let replay = Session::replay(&recording.recorded()).unwrap();
        assert_eq!(replay.replayed(&get(None)).unwrap().unwrap(), b"{}");
        assert_eq!(
            replay.replayed(&get(Some("x"))).unwrap().unwrap_err(),
            "boom"
        );
        assert_eq!(replay.left_over(), 0);
    }
}
