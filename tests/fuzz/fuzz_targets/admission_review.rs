//! The AdmissionReview codec on any text: never a panic; what it accepts is JSON, the object it
//! keeps is the object as serde_json reads it, and the answer carries the request's uid.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_runtime::admission::review;
use palisade_sdk::wire::Verdict;
use serde_json::Value;

fuzz_target!(|text: &str| {
    let Ok(parsed) = review::parse(text) else {
        return;
    };
    let whole: Value = serde_json::from_str(text).expect("an accepted review is JSON");
    let request = whole
        .get("request")
        .filter(|r| r.is_object())
        .unwrap_or(&whole);
    if let Some(object) = &parsed.request.object {
        let kept: Value = serde_json::from_str(object.get()).expect("the kept object is JSON");
        assert_eq!(
            Some(&kept),
            request.get("object"),
            "the kept object differs"
        );
    }
    for verdict in [Verdict::allow(), Verdict::deny("Fuzz", "denied")] {
        let bytes = review::encode(&parsed.api_version, &parsed.request.uid, &verdict)
            .expect("answers serialise");
        let answer: Value = serde_json::from_slice(&bytes).expect("the answer is JSON");
        assert_eq!(
            answer["response"]["uid"],
            Value::from(parsed.request.uid.as_str())
        );
        assert_eq!(
            answer["apiVersion"],
            Value::from(parsed.api_version.as_str())
        );
    }
});
