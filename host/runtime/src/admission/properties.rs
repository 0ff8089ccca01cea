//! Properties of the decision core that every answer must keep, whatever the verdict, failure,
//! failurePolicy and mode: monitor mode never denies; failurePolicy Ignore never denies on a
//! policy error; the answer's uid is the request's; a denial that passes the answer limits
//! carries a 4xx or 5xx code.

use proptest::prelude::*;

use super::{AnswerLimits, Decision, Failure, FailurePolicy, Mode, review};
use palisade_sdk::wire::Verdict;

fn verdict() -> impl Strategy<Value = Verdict> {
    (
        any::<bool>(),
        "[a-z-]{0,12}",
        ".{0,40}",
        proptest::option::of(any::<u16>()),
        proptest::collection::vec(".{0,20}", 0..4),
        proptest::collection::btree_map("[a-z.]{1,8}", ".{0,20}", 0..3),
    )
        .prop_map(|(allowed, reason, message, code, warnings, annotations)| {
            let mut verdict = if allowed {
                let mut verdict = Verdict::allow();
                verdict.message = message;
                verdict
            } else {
                Verdict::deny(reason, message)
            };
            verdict.code = code;
            verdict.warnings = warnings;
            verdict.audit_annotations = annotations;
            verdict
        })
}

fn failure() -> impl Strategy<Value = Failure> {
    (
        prop_oneof![
            Just("trap"),
            Just("timeout"),
            Just("memory"),
            Just("bad-output")
        ],
        ".{0,60}",
    )
        .prop_map(|(kind, message)| Failure {
            kind,
            message,
            backtrace: String::new(),
        })
}

fn result() -> impl Strategy<Value = Result<Verdict, Failure>> {
    prop_oneof![verdict().prop_map(Ok), failure().prop_map(Err)]
}

fn failure_policy() -> impl Strategy<Value = FailurePolicy> {
    prop_oneof![Just(FailurePolicy::Fail), Just(FailurePolicy::Ignore)]
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![Just(Mode::Protect), Just(Mode::Monitor)]
}

proptest! {
    #[test]
    fn monitor_mode_never_denies(result in result(), failure_policy in failure_policy()) {
        let decision = Decision::enforced("p", "u", result, failure_policy).in_mode("p", Mode::Monitor);
        prop_assert!(decision.verdict.allowed);
    }

    #[test]
    fn failure_policy_ignore_never_denies_on_a_policy_error(failure in failure(), mode in mode()) {
        let decision = Decision::enforced("p", "u", Err(failure), FailurePolicy::Ignore).in_mode("p", mode);
        prop_assert!(decision.verdict.allowed);
    }

    #[test]
    fn the_answer_carries_the_request_uid(
        uid in ".{0,40}",
        v1 in any::<bool>(),
        result in result(),
        failure_policy in failure_policy(),
        mode in mode(),
    ) {
        let api_version = if v1 { "admission.k8s.io/v1" } else { "admission.k8s.io/v1beta1" };
        let decision = Decision::enforced("p", &uid, result, failure_policy).in_mode("p", mode);
        let bytes = review::encode(api_version, &uid, &decision.verdict).expect("encodes");
        let answer: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
        prop_assert_eq!(answer["response"]["uid"].as_str(), Some(uid.as_str()));
        prop_assert_eq!(answer["apiVersion"].as_str(), Some(api_version));
        prop_assert_eq!(answer["response"]["allowed"].as_bool(), Some(decision.verdict.allowed));
    }

    #[test]
    fn a_denial_within_the_limits_has_an_error_code(verdict in verdict()) {
        let mut bounded = verdict.clone();
        if AnswerLimits::default().apply(&mut bounded).is_ok() && !bounded.allowed {
            let bytes = review::encode("admission.k8s.io/v1", "u", &bounded).expect("encodes");
            let answer: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
            let code = answer["response"]["status"]["code"].as_u64().expect("a denial has a code");
            prop_assert!((400..=599).contains(&code), "code {}", code);
        }
    }
}
