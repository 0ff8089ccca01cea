//! Bounds on what a policy may answer. A policy's verdict travels into the HTTP response to the
//! API server, the client's terminal and the logs; a guest that answers a 40 MiB message or
//! half a million warnings must not carry them there. Text meant for people (message,
//! warnings, annotation values) is cut with a note saying so; what would be wrong if cut (a
//! patch, the set of annotations, a denial's HTTP code) makes the answer invalid, a policy
//! error that the failurePolicy decides.

use palisade_sdk::wire::Verdict;
use serde::Deserialize;

/// The bounds; the defaults fit anything a sound policy says (the API server's own request
/// limit is 3 MiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AnswerLimits {
    /// A longer message is cut.
    pub max_message_bytes: usize,
    /// Warnings past this many are dropped, the last kept one saying how many were.
    pub max_warnings: usize,
    /// A longer warning is cut.
    pub max_warning_bytes: usize,
    /// More audit annotations make the answer invalid.
    pub max_annotations: usize,
    /// A longer annotation value is cut.
    pub max_annotation_bytes: usize,
    /// A larger JSONPatch (serialised) makes the answer invalid.
    pub max_patch_bytes: usize,
}

impl Default for AnswerLimits {
    fn default() -> Self {
        Self {
            max_message_bytes: 32 << 10,
            max_warnings: 64,
            max_warning_bytes: 2 << 10,
            max_annotations: 64,
            max_annotation_bytes: 8 << 10,
            max_patch_bytes: 3 << 20,
        }
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary, saying so at the end.
pub(crate) fn cut(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let original = text.len();
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(&format!("... [cut: {original} bytes]"));
}

impl AnswerLimits {
    /// Applies the bounds to a verdict: cuts its text, or says why the answer is invalid.
    ///
    /// # Errors
    /// A denial whose HTTP code is not 4xx or 5xx, too many audit annotations, a patch larger
    /// than allowed.
    pub fn apply(&self, verdict: &mut Verdict) -> Result<(), String> {
        if !verdict.allowed
            && let Some(code) = verdict.code
            && !(400..=599).contains(&code)
        {
            return Err(format!(
                "the policy denied with HTTP code {code}: a denial's code must be 4xx or 5xx"
            ));
        }
        if verdict.audit_annotations.len() > self.max_annotations {
            return Err(format!(
                "the policy answered {} audit annotations, more than the limit of {} \
                 (maxAnnotations)",
                verdict.audit_annotations.len(),
                self.max_annotations
            ));
        }
        if let Some(patch) = &verdict.patch {
            let size = serde_json::to_vec(patch).map_or(usize::MAX, |bytes| bytes.len());
            if size > self.max_patch_bytes {
                return Err(format!(
                    "the policy's patch is {size} bytes, more than the limit of {} \
                     (maxPatchBytes)",
                    self.max_patch_bytes
                ));
            }
        }
        cut(&mut verdict.message, self.max_message_bytes);
        for warning in &mut verdict.warnings {
            cut(warning, self.max_warning_bytes);
        }
        if verdict.warnings.len() > self.max_warnings {
            let dropped = verdict.warnings.len() - self.max_warnings + 1;
            verdict
                .warnings
                .truncate(self.max_warnings.saturating_sub(1));
            verdict.warnings.push(format!(
                "{dropped} more warnings of the policy were dropped (maxWarnings {})",
                self.max_warnings
            ));
        }
        for value in verdict.audit_annotations.values_mut() {
            cut(value, self.max_annotation_bytes);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_on_a_character_boundary_with_a_note() {
        let mut text = "é".repeat(10);
        cut(&mut text, 5);
        assert_eq!(text, "éé... [cut: 20 bytes]");
        let mut short = "ok".to_owned();
        cut(&mut short, 5);
        assert_eq!(short, "ok");
    }

    #[test]
    fn oversized_text_is_cut_and_excess_warnings_dropped() {
        let limits = AnswerLimits {
            max_message_bytes: 10,
            max_warnings: 3,
            max_warning_bytes: 4,
            ..AnswerLimits::default()
        };
        let mut verdict = Verdict::deny("x", "m".repeat(1000));
        verdict.warnings = (0..10).map(|i| format!("warning {i}")).collect();
        limits.apply(&mut verdict).expect("valid");
        assert_eq!(verdict.message, "mmmmmmmmmm... [cut: 1000 bytes]");
        assert_eq!(verdict.warnings.len(), 3);
        assert_eq!(verdict.warnings[0], "warn... [cut: 9 bytes]");
        assert!(
            verdict.warnings[2].starts_with("8 more warnings"),
            "{:?}",
            verdict.warnings
        );
    }

    #[test]
    fn a_denial_with_a_success_code_is_invalid() {
        let limits = AnswerLimits::default();
        for code in [200, 302, 99, 600] {
            let mut verdict = Verdict::deny("x", "no").with_code(code);
            let error = limits.apply(&mut verdict).expect_err("invalid");
            assert!(error.contains(&format!("HTTP code {code}")), "{error}");
        }
        for code in [400, 403, 429, 503] {
            limits
                .apply(&mut Verdict::deny("x", "no").with_code(code))
                .expect("valid");
        }
    }

    #[test]
    fn too_many_annotations_or_too_large_a_patch_are_invalid() {
        let limits = AnswerLimits {
            max_annotations: 2,
            max_patch_bytes: 100,
            ..AnswerLimits::default()
        };
        let mut verdict = Verdict::allow();
        for i in 0..3 {
            verdict
                .audit_annotations
                .insert(format!("k{i}"), "v".into());
        }
        assert!(limits.apply(&mut verdict).is_err());
        let patch: Vec<palisade_sdk::wire::PatchOperation> = serde_json::from_value(
            serde_json::json!([{"op": "add", "path": "/metadata/labels/x", "value": "v".repeat(200)}]),
        )
        .expect("patch");
        let mut verdict = Verdict::allow();
        verdict.patch = Some(patch);
        let error = limits.apply(&mut verdict).expect_err("invalid");
        assert!(error.contains("maxPatchBytes"), "{error}");
    }
}
