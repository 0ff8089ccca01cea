//! The AdmissionReview codec shared by the front-ends: reading a review (or a bare request) and
//! writing the response in the version the request came in. Fail-closed verdicts live here too.

use base64::Engine as _;
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

/// Reads an AdmissionReview, or a bare AdmissionRequest (as `palisade run` accepts), from JSON
/// text; returns the apiVersion to answer in and the request.
///
/// # Errors
/// [`ReviewError`] naming what is wrong, with line and column for malformed JSON.
pub fn parse(json: &str) -> Result<(String, AdmissionRequest), ReviewError> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(default)]
        request: Option<serde::de::IgnoredAny>,
    }
    let probe: Probe = serde_json::from_str(json).map_err(ReviewError::Malformed)?;
    if probe.request.is_none()
        && let Ok(request) = serde_json::from_str::<AdmissionRequest>(json)
    {
        return Ok((SUPPORTED_VERSIONS[0].to_owned(), request));
    }
    let review: AdmissionReview = serde_json::from_str(json).map_err(ReviewError::Malformed)?;
    let version = if review.api_version.is_empty() {
        SUPPORTED_VERSIONS[0].to_owned()
    } else {
        review.api_version
    };
    if !SUPPORTED_VERSIONS.contains(&version.as_str()) {
        return Err(ReviewError::Version(version));
    }
    let request = review.request.ok_or(ReviewError::MissingRequest)?;
    Ok((version, request))
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

/// The fail-closed verdict for a policy that could not decide: a denial with reason
/// `policy-error` whose message says what failed.
#[must_use]
pub fn policy_error_verdict(policy: &str, error: &dyn std::error::Error) -> Verdict {
    let mut message = format!("policy {policy} failed: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    Verdict::deny("policy-error", message).with_code(500)
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
        let review = format!(
            r#"{{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {REQUEST}}}"#
        );
        let (version, request) = parse(&review).unwrap();
        assert_eq!(version, "admission.k8s.io/v1beta1");
        let out =
            serde_json::to_value(response(&version, &request.uid, &Verdict::allow())).unwrap();
        assert_eq!(out["apiVersion"], "admission.k8s.io/v1beta1");
        assert_eq!(out["response"]["uid"], "u-1");
        assert_eq!(out["response"]["allowed"], true);
    }

    #[test]
    fn accepts_a_bare_request() {
        let (version, request) = parse(REQUEST).unwrap();
        assert_eq!(version, "admission.k8s.io/v1");
        assert_eq!(request.user_info.username, "alice");
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
    fn rejects_unknown_versions_and_reports_json_position() {
        assert!(matches!(
            parse(r#"{"apiVersion": "v2", "request": {}}"#),
            Err(ReviewError::Malformed(_) | ReviewError::Version(_))
        ));
        let err = parse("{\n  \"request\": [1,\n").unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
    }
}
