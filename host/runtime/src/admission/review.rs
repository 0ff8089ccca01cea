//! The AdmissionReview codec every front-end uses: reading a review (or a bare request, as
//! `palisade run` accepts) and writing the answer in the version the request came in. One place,
//! so that `palisade run` and `palisade serve` answer the same request with the same bytes.

use base64::Engine as _;
use palisade_sdk::wire::json::{self, Tape};
use palisade_sdk::wire::{AdmissionRequest, AdmissionResponse, AdmissionReview, Status, Verdict};

/// The AdmissionReview versions the API server may send.
pub const SUPPORTED_VERSIONS: [&str; 2] = ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"];

/// Why a review could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The JSON is malformed or does not have the AdmissionReview shape.
    #[error("not a valid AdmissionReview: {0}")]
    Malformed(#[source] serde_json::Error),
    /// The review has no `request`.
    #[error("the AdmissionReview has no request")]
    MissingRequest,
    /// The review's `apiVersion` is not one this host answers.
    #[error(
        "unsupported AdmissionReview apiVersion {0:?} (expected admission.k8s.io/v1 or v1beta1)"
    )]
    Version(String),
}

/// An AdmissionReview as read: the version to answer in and the request.
#[derive(Debug, Clone)]
pub struct Review {
    /// The `apiVersion` the review came in (v1 for a bare request).
    pub api_version: String,
    /// The request.
    pub request: AdmissionRequest,
}

/// Reads an AdmissionReview, or a bare AdmissionRequest, from JSON text, in one pass that
/// checks the text and records its tokens (a [`Tape`]), then one typed read from the tape: the
/// object, old object and options are kept as raw text with their part of the tape, for the
/// policy to read without scanning them again. Only what is not a review is tried again as a
/// bare request, and only a failure is read again by serde_json, to say where it is.
///
/// # Errors
/// [`ReviewError`] naming what is wrong, with line and column for malformed JSON.
pub fn parse(json: &str) -> Result<Review, ReviewError> {
    let Ok(tape) = Tape::build(json) else {
        return Err(malformed(json));
    };
    // A bare request fails as a review: its `kind` is a GroupVersionKind, not a string.
    let Ok(review) = json::from_tape::<AdmissionReview>(json, &tape) else {
        return json::from_tape::<AdmissionRequest>(json, &tape)
            .map(bare)
            .map_err(|_| malformed(json));
    };
    let Some(request) = review.request else {
        return match json::from_tape::<AdmissionRequest>(json, &tape) {
            Ok(request) => Ok(bare(request)),
            Err(_) => Err(ReviewError::MissingRequest),
        };
    };
    let api_version = if review.api_version.is_empty() {
        SUPPORTED_VERSIONS[0].to_owned()
    } else {
        review.api_version
    };
    if !SUPPORTED_VERSIONS.contains(&api_version.as_str()) {
        return Err(ReviewError::Version(api_version));
    }
    Ok(Review {
        api_version,
        request,
    })
}

/// The error serde_json gives for text that is not a review, with its line and column.
fn malformed(json: &str) -> ReviewError {
    match serde_json::from_str::<AdmissionReview>(json) {
        Err(error) => ReviewError::Malformed(error),
        // Only serde_json's reading of the same text can say where it is wrong; should it accept
        // what the tape refused, say so rather than invent a position.
        Ok(_) => ReviewError::Malformed(serde::de::Error::custom(
            "the AdmissionReview could not be read",
        )),
    }
}

fn bare(request: AdmissionRequest) -> Review {
    Review {
        api_version: SUPPORTED_VERSIONS[0].to_owned(),
        request,
    }
}

/// The AdmissionReview answering `uid` with `verdict`, in `api_version`.
#[must_use]
pub fn response(api_version: &str, uid: &str, verdict: &Verdict) -> AdmissionReview {
    let status = (!verdict.allowed || !verdict.message.is_empty()).then(|| Status {
        code: (!verdict.allowed).then_some(verdict.code.unwrap_or(403)),
        message: verdict.message.clone(),
        reason: verdict.reason.clone(),
    });
    let patch = verdict.patch.as_ref().map(|p| {
        let json = serde_json::to_vec(p).unwrap_or_default();
        base64::engine::general_purpose::STANDARD.encode(json)
    });
    AdmissionReview {
        api_version: api_version.to_owned(),
        kind: "AdmissionReview".into(),
        request: None,
        response: Some(AdmissionResponse {
            uid: uid.to_owned(),
            allowed: verdict.allowed,
            status,
            patch_type: patch.as_ref().map(|_| "JSONPatch".to_owned()),
            patch,
            audit_annotations: verdict.audit_annotations.clone(),
            warnings: verdict.warnings.clone(),
        }),
    }
}

/// The bytes of the answer: the [`response`] as compact JSON, exactly what the webhook sends.
///
/// # Errors
/// When the verdict cannot be serialized (it always can: every field is a string, a number or
/// a JSON value).
pub fn encode(api_version: &str, uid: &str, verdict: &Verdict) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&response(api_version, uid, verdict))
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use palisade_sdk::wire::PatchOperation;

    const REQUEST: &str = r#"{"uid": "u-1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"}, "operation": "CREATE",
        "userInfo": {"username": "alice"}, "object": {"kind": "Pod"}}"#;

    #[test]
    fn answers_in_the_version_the_review_came_in() {
        let text = format!(
            r#"{{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {REQUEST}}}"#
        );
        let review = parse(&text).unwrap();
        assert_eq!(review.api_version, "admission.k8s.io/v1beta1");
        let out = serde_json::to_value(response(
            &review.api_version,
            &review.request.uid,
            &Verdict::allow(),
        ))
        .unwrap();
        assert_eq!(out["apiVersion"], "admission.k8s.io/v1beta1");
        assert_eq!(out["response"]["uid"], "u-1");
        assert_eq!(out["response"]["allowed"], true);
    }

    #[test]
    fn accepts_a_bare_request() {
        let review = parse(REQUEST).unwrap();
        assert_eq!(review.api_version, "admission.k8s.io/v1");
        assert_eq!(review.request.user_info.username, "alice");
    }

    #[test]
    fn a_review_without_request_is_named_as_such() {
        let err = parse(r#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}"#)
            .unwrap_err();
        assert!(matches!(err, ReviewError::MissingRequest), "{err}");
    }

    #[test]
    fn denial_carries_code_message_and_reason() {
        let out = response(
            "admission.k8s.io/v1",
            "u",
            &Verdict::deny("privileged", "container \"a\" is privileged"),
        );
        let status = out.response.unwrap().status.unwrap();
        assert_eq!(status.code, Some(403));
        assert_eq!(status.reason, "privileged");
    }

    #[test]
    fn patch_is_base64_json_patch() {
        let verdict =
            Verdict::allow().with_patch(vec![PatchOperation::Remove { path: "/a".into() }]);
        let response = response("admission.k8s.io/v1", "u", &verdict)
            .response
            .unwrap();
        assert_eq!(response.patch_type.as_deref(), Some("JSONPatch"));
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(response.patch.unwrap())
            .unwrap();
        assert_eq!(decoded, br#"[{"op":"remove","path":"/a"}]"#);
    }

    #[test]
    fn encoding_is_the_compact_json_of_the_response() {
        let verdict = Verdict::deny("r", "m").with_warning("w");
        let bytes = encode("admission.k8s.io/v1", "u", &verdict).unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"u","allowed":false,"status":{"code":403,"message":"m","reason":"r"},"warnings":["w"]}}"#
        );
    }

    #[test]
    fn rejects_unknown_versions_and_reports_json_position() {
        assert!(matches!(
            parse(&format!(r#"{{"apiVersion": "v2", "request": {REQUEST}}}"#)),
            Err(ReviewError::Version(_))
        ));
        let err = parse("{\n  \"request\": {\"uid\": 1,\n").unwrap_err();
        assert!(err.to_string().contains("line 2 column 22"), "{err}");
        let err = parse("{\n  \"request\": {\"uid\": \"u\",\n").unwrap_err();
        assert!(err.to_string().contains("EOF while parsing"), "{err}");
        assert!(err.to_string().contains("line 3"), "{err}");
    }
}
