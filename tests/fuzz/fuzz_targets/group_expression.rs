//! Policy-group expressions from the configuration: an error with a position, or an expression
//! whose evaluation needs only its members, never a panic or a stack overflow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_webhook::Expression;

fuzz_target!(|text: &str| {
    let Ok(expression) = Expression::parse(text) else {
        return;
    };
    let members = expression.members();
    assert!(!members.is_empty());
    let first = members.iter().next().cloned();
    for allowed in [true, false] {
        let outcome = expression.evaluate(&|id| {
            assert!(members.contains(id), "{id} is not a member");
            allowed == (Some(id) == first.as_deref())
        });
        let _ = outcome;
    }
});
