//! How an evaluation becomes the answer: the policy's verdict, or, when it could not decide, the
//! verdict its failurePolicy gives; then monitor mode, which lets a denial through and records
//! it. Every front-end answers through here, so a failure reads the same everywhere.

use palisade_sdk::wire::Verdict;
use serde::Deserialize;

use crate::EvalError;

/// Whether a policy's denials are enforced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Denials deny.
    #[default]
    Protect,
    /// Denials are allowed, logged and counted.
    Monitor,
}

impl Mode {
    /// The label used in metrics, logs and `/policies`.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Protect => "protect",
            Self::Monitor => "monitor",
        }
    }
}

/// What happens when a policy cannot decide (load error, trap, timeout, memory limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum FailurePolicy {
    /// Deny (fail closed).
    #[default]
    Fail,
    /// Allow, with a warning (fail open).
    Ignore,
}

impl FailurePolicy {
    /// The name, as Kubernetes spells it.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Fail => "Fail",
            Self::Ignore => "Ignore",
        }
    }
}

/// How a request was decided, for the response, the logs and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The policy allowed it.
    Allowed,
    /// The policy denied it.
    Denied,
    /// The policy denied it but runs in monitor mode: allowed.
    Monitored,
    /// The policy failed and its failurePolicy denied the request.
    FailedClosed,
    /// The policy failed and its failurePolicy allowed the request.
    FailedOpen,
}

impl Outcome {
    /// The label used in metrics and logs.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::Monitored => "monitored",
            Self::FailedClosed => "failed-closed",
            Self::FailedOpen => "failed-open",
        }
    }
}

/// The answer to one request.
#[derive(Debug, Clone)]
pub struct Decision {
    /// What to send back.
    pub verdict: Verdict,
    /// How it came about.
    pub outcome: Outcome,
    /// The mode of the policy or group.
    pub mode: Mode,
    /// The kind of each error that happened (`trap`, `timeout`, `load`, ...).
    pub errors: Vec<&'static str>,
    /// The policies that started an instance for this request.
    pub started: Vec<String>,
    /// Where each policy's time went.
    pub spent: Vec<Spent>,
}

/// The time one policy took for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spent {
    /// The policy's id.
    pub policy: String,
    /// Waiting for a turn (its concurrency limit).
    pub waited: std::time::Duration,
    /// Starting an instance and evaluating.
    pub ran: std::time::Duration,
}

/// The longest policy error message that goes into an answer or a log line; the rest is cut.
const MAX_FAILURE_BYTES: usize = 4 << 10;

/// Why a policy produced no verdict: the error's kind (as in [`EvalError::kind`], or `load`)
/// and its message.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Short, stable, kebab-case kind.
    pub kind: &'static str,
    /// What went wrong, with its causes.
    pub message: String,
    /// The guest's backtrace when it trapped, for the log only.
    pub backtrace: String,
}

impl From<&EvalError> for Failure {
    /// The failure an evaluation error describes, its causes joined into the message.
    fn from(error: &EvalError) -> Self {
        let mut message = crate::chain(error);
        super::answer::cut(&mut message, MAX_FAILURE_BYTES);
        let backtrace = match error {
            EvalError::Trap { backtrace, .. } => backtrace.clone(),
            _ => String::new(),
        };
        Self {
            kind: error.kind(),
            message,
            backtrace,
        }
    }
}

impl Decision {
    /// The decision of policy `id` in protect mode: its verdict, or what `failure_policy` makes
    /// of its failure (logged with the request's `uid`).
    #[must_use]
    pub fn enforced(
        id: &str,
        uid: &str,
        result: Result<Verdict, Failure>,
        failure_policy: FailurePolicy,
    ) -> Self {
        let (verdict, outcome, errors) = match result {
            Ok(verdict) => {
                let outcome = if verdict.allowed {
                    Outcome::Allowed
                } else {
                    Outcome::Denied
                };
                (verdict, outcome, Vec::new())
            }
            Err(Failure {
                kind,
                message,
                backtrace,
            }) => {
                tracing::error!(policy = %id, uid = %uid, kind, error = %message, backtrace, "policy failed");
                let (verdict, outcome) = match failure_policy {
                    FailurePolicy::Fail => (
                        Verdict::deny(
                            "policy-error",
                            format!(
                                "policy {id} failed ({kind}): {message}; failurePolicy Fail denies the request"
                            ),
                        )
                        .with_code(500),
                        Outcome::FailedClosed,
                    ),
                    FailurePolicy::Ignore => (
                        Verdict::allow().with_warning(format!(
                            "policy {id} failed ({kind}): {message}; failurePolicy Ignore allows the request"
                        )),
                        Outcome::FailedOpen,
                    ),
                };
                (verdict, outcome, vec![kind])
            }
        };
        Self {
            verdict,
            outcome,
            mode: Mode::Protect,
            errors,
            started: Vec::new(),
            spent: Vec::new(),
        }
    }

    /// The decision in `mode`: in monitor mode a denial (a failure that denies included) is
    /// allowed, logged at warn and recorded in the audit annotation `<id>.monitor-denied`.
    #[must_use]
    pub fn in_mode(mut self, id: &str, mode: Mode) -> Self {
        self.mode = mode;
        if mode == Mode::Monitor && !self.verdict.allowed {
            tracing::warn!(policy = %id, reason = %self.verdict.reason, message = %self.verdict.message, "monitor mode: would have denied");
            let denied = std::mem::replace(&mut self.verdict, Verdict::allow());
            self.verdict.warnings = denied.warnings;
            self.verdict.audit_annotations = denied.audit_annotations;
            self.verdict.audit_annotations.insert(
                format!("{id}.monitor-denied"),
                format!("{}: {}", denied.reason, denied.message),
            );
            self.outcome = if self.outcome == Outcome::FailedClosed {
                Outcome::FailedOpen
            } else {
                Outcome::Monitored
            };
        }
        self
    }

    /// The decision as a validating webhook gives it: without a patch.
    #[must_use]
    pub fn without_patch(mut self) -> Self {
        self.verdict.patch = None;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trap() -> Failure {
        Failure {
            kind: "trap",
            message: "the policy trapped: unreachable".into(),
            backtrace: String::new(),
        }
    }

    #[test]
    fn failure_policy_fail_denies_with_500_naming_the_policy_and_kind() {
        let decision = Decision::enforced("p", "u", Err(trap()), FailurePolicy::Fail);
        assert_eq!(decision.outcome, Outcome::FailedClosed);
        assert!(!decision.verdict.allowed);
        assert_eq!(decision.verdict.code, Some(500));
        assert_eq!(decision.verdict.reason, "policy-error");
        assert_eq!(
            decision.verdict.message,
            "policy p failed (trap): the policy trapped: unreachable; failurePolicy Fail denies the request"
        );
        assert_eq!(decision.errors, ["trap"]);
    }

    #[test]
    fn failure_policy_ignore_allows_with_a_warning() {
        let decision = Decision::enforced("p", "u", Err(trap()), FailurePolicy::Ignore);
        assert_eq!(decision.outcome, Outcome::FailedOpen);
        assert!(decision.verdict.allowed);
        assert_eq!(decision.verdict.warnings.len(), 1);
    }

    #[test]
    fn monitor_mode_allows_a_denial_and_annotates_it() {
        let denied = Decision::enforced(
            "p",
            "u",
            Ok(Verdict::deny("r", "m").with_warning("w")),
            FailurePolicy::Fail,
        )
        .in_mode("p", Mode::Monitor);
        assert!(denied.verdict.allowed);
        assert_eq!(denied.outcome, Outcome::Monitored);
        assert_eq!(denied.verdict.warnings, ["w"]);
        assert_eq!(denied.verdict.audit_annotations["p.monitor-denied"], "r: m");
        let failed = Decision::enforced("p", "u", Err(trap()), FailurePolicy::Fail)
            .in_mode("p", Mode::Monitor);
        assert!(failed.verdict.allowed);
        assert_eq!(failed.outcome, Outcome::FailedOpen);
    }
}
