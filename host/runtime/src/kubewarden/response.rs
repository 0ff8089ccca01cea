//! What a Kubewarden policy answers, and how policy-server turns it into an admission response
//! (policy-evaluator `admission_response.rs`, `from_policy_validation_response`): `accepted`
//! is `allowed`, `message` and `code` the status, warnings and audit annotations as given, and
//! a `mutated_object` becomes the JSONPatch from the request's object to it (`json_patch::diff`,
//! the crate and function policy-server uses, so the patch is the same operation for operation).

use std::collections::BTreeMap;

use palisade_sdk::wire::{AdmissionRequest, PatchOperation, Verdict};
use serde::Deserialize;

use crate::EvalError;

/// policy-evaluator's answer to a mutation of a request without an object (DELETE).
pub(crate) const NULL_OBJECT_MUTATION: &str = "Incoming object is null, which happens only with DELETE operations, but the policy is attempting a mutation. This is not allowed";

/// The SDKs' `ValidationResponse` (kubewarden-policy-sdk `response.rs`).
#[derive(Debug, Deserialize)]
struct ValidationResponse {
    accepted: bool,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    code: Option<u16>,
    #[serde(default)]
    mutated_object: Option<serde_json::Value>,
    #[serde(default)]
    audit_annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    warnings: Option<Vec<String>>,
    /// Palisade's own policies built for Kubewarden say why too (Kubewarden ignores it).
    #[serde(default)]
    reason: Option<String>,
}

/// The SDKs' `SettingsValidationResponse`.
#[derive(Debug, Deserialize)]
pub(crate) struct SettingsResponse {
    pub(crate) valid: bool,
    #[serde(default)]
    pub(crate) message: Option<String>,
}

/// Reads a `validate` answer into a verdict for `request`.
pub(crate) fn verdict(request: &AdmissionRequest, answer: &[u8]) -> Result<Verdict, EvalError> {
    let response: ValidationResponse = serde_json::from_slice(answer).map_err(|e| {
        EvalError::BadOutput(format!(
            "the answer to validate is not a ValidationResponse: {e} (it begins {:?})",
            String::from_utf8_lossy(answer.get(..answer.len().min(80)).unwrap_or_default())
        ))
    })?;
    let mut verdict = Verdict {
        allowed: response.accepted,
        reason: response.reason.unwrap_or_default(),
        message: response.message.unwrap_or_default(),
        code: response.code,
        warnings: response.warnings.unwrap_or_default(),
        audit_annotations: response.audit_annotations.unwrap_or_default(),
        patch: None,
    };
    if let Some(mutated) = response.mutated_object {
        let Some(object) = &request.object else {
            return Ok(Verdict::deny("", NULL_OBJECT_MUTATION));
        };
        let original: serde_json::Value = serde_json::from_str(object.get())
            .map_err(|e| EvalError::BadOutput(format!("the request's object: {e}")))?;
        let diff = json_patch::diff(&original, &mutated);
        let patch: Vec<PatchOperation> = serde_json::to_value(&diff)
            .and_then(serde_json::from_value)
            .map_err(|e| EvalError::BadOutput(format!("the mutation's patch: {e}")))?;
        verdict = verdict.with_patch(patch);
    }
    Ok(verdict)
}

/// Reads a `validate_settings` answer.
pub(crate) fn settings(answer: &[u8]) -> Result<SettingsResponse, EvalError> {
    serde_json::from_slice(answer).map_err(|e| {
        EvalError::BadOutput(format!(
            "the answer to validate_settings is not a SettingsValidationResponse: {e}"
        ))
    })
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use palisade_sdk::wire::RawJson;

    fn request(object: Option<&str>) -> AdmissionRequest {
        let mut request: AdmissionRequest = serde_json::from_str(
            r#"{"uid":"u","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"operation":"CREATE","userInfo":{}}"#,
        )
        .unwrap();
        request.object = object.map(|o| RawJson::parse(o.to_owned()).unwrap());
        request
    }

    #[test]
    fn a_rejection_keeps_message_code_warnings_and_annotations() {
        let verdict = verdict(
            &request(Some("{}")),
            br#"{"accepted":false,"message":"no","code":418,"mutated_object":null,"audit_annotations":{"a":"b"},"warnings":["w"]}"#,
        )
        .unwrap();
        assert!(!verdict.allowed);
        assert_eq!(verdict.message, "no");
        assert_eq!(verdict.code, Some(418));
        assert_eq!(verdict.warnings, ["w"]);
        assert_eq!(verdict.audit_annotations["a"], "b");
        assert_eq!(verdict.reason, "");
    }

    #[test]
    fn a_mutated_object_becomes_the_patch_policy_server_computes() {
        let verdict = verdict(
            &request(Some(r#"{"metadata":{"name":"p","labels":{"a":"1"}},"spec":{"x":[1,2]}}"#)),
            br#"{"accepted":true,"mutated_object":{"metadata":{"name":"p","labels":{"a":"1","b":"2"}},"spec":{"x":[1]}}}"#,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&verdict.patch).unwrap(),
            r#"[{"op":"add","path":"/metadata/labels/b","value":"2"},{"op":"remove","path":"/spec/x/1"}]"#
        );
    }

    #[test]
    fn an_unchanged_object_gives_no_patch() {
        let verdict = verdict(
            &request(Some(r#"{"a":1}"#)),
            br#"{"accepted":true,"mutated_object":{"a":1}}"#,
        )
        .unwrap();
        assert_eq!(verdict.patch, None);
    }

    #[test]
    fn mutating_a_request_without_object_is_refused_as_policy_server_does() {
        let verdict = verdict(
            &request(None),
            br#"{"accepted":true,"mutated_object":{"a":1}}"#,
        )
        .unwrap();
        assert!(!verdict.allowed);
        assert_eq!(verdict.message, NULL_OBJECT_MUTATION);
    }

    #[test]
    fn an_answer_that_is_not_a_response_is_named() {
        let error = verdict(&request(None), b"nonsense").unwrap_err();
        assert!(
            matches!(&error, EvalError::BadOutput(m) if m.contains("not a ValidationResponse") && m.contains("nonsense"))
        );
    }
}
