//! The tape reader against serde_json: the same texts accepted, the same values read.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    reason = "tests fail by panicking"
)]

use super::*;
use crate::wire::RawJson;
use serde::de::IgnoredAny;
use serde_json::Value;

/// Texts both readers must accept, or both refuse.
const CASES: &[&str] = &[
    "null",
    "true",
    "false",
    "0",
    "-0",
    "1",
    "-1",
    "01",
    "-",
    "1.",
    ".5",
    "1.5",
    "1e5",
    "1E+5",
    "1e-5",
    "1e",
    "1e+",
    "-1.5e300",
    "1e400",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "-9223372036854775809",
    "\"\"",
    "\"a\"",
    "\"\\u00e9\"",
    "\"\\u12\"",
    "\"\\x\"",
    "\"\\ud83d\\ude00\"",
    "\"tab\there\"",
    "\"\\t\"",
    "\"unterminated",
    "[]",
    "[1,]",
    "[,1]",
    "[1 2]",
    "{}",
    "{,}",
    "{\"a\":1,}",
    "{\"a\" 1}",
    "{1:2}",
    "{\"a\":1}",
    " [ 1 , 2 ] ",
    "[1] 2",
    "",
    "   ",
    "nul",
    "truex",
    "[true,false,null]",
    "{\"a\":{\"b\":[{}]}}",
    "\"\\/\\b\\f\\n\\r\\\\\\\"\"",
    "\"é€𝄞\"",
    "[-0.0, 0.1, 123456789012345678901234567890]",
    "{\"a\":1,\"a\":2}",
    "\"\u{7f}\"",
    "[\"\\u0000\"]",
    "{\"\\u0041\":\"\\u0042\"}",
];

#[test]
fn accepts_what_serde_json_accepts() {
    for case in CASES {
        let ours = Tape::build(case);
        let theirs = serde_json::from_str::<IgnoredAny>(case);
        assert_eq!(
            ours.is_ok(),
            theirs.is_ok(),
            "{case:?}: tape {ours:?}, serde_json {theirs:?}"
        );
    }
}

#[test]
fn reads_the_values_serde_json_reads() {
    for case in CASES {
        let Ok(theirs) = serde_json::from_str::<Value>(case) else {
            continue;
        };
        let ours: Value = from_str(case).unwrap_or_else(|e| panic!("{case:?}: {e}"));
        assert_eq!(ours, theirs, "{case:?}");
        // And the same kind of number (u64, i64 or f64).
        assert_eq!(format!("{ours:?}"), format!("{theirs:?}"), "{case:?}");
    }
}

#[test]
fn refuses_lone_surrogates_where_serde_json_does() {
    for case in [
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"\\ud800\\u0041\"",
        "\"\\ud800x\"",
    ] {
        assert!(Tape::build(case).is_ok(), "{case}: skipping accepts it");
        assert!(serde_json::from_str::<String>(case).is_err(), "{case}");
        assert!(from_str::<String>(case).is_err(), "{case}");
    }
}

#[test]
fn nesting_stops_where_serde_json_stops() {
    for depth in [126, 127, 128, 129, 130, 5000] {
        let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert_eq!(
            Tape::build(&text).is_ok(),
            serde_json::from_str::<IgnoredAny>(&text).is_ok(),
            "skipping, depth {depth}"
        );
        assert_eq!(
            from_str::<Value>(&text).is_ok(),
            serde_json::from_str::<Value>(&text).is_ok(),
            "reading, depth {depth}"
        );
    }
}

#[derive(Debug, PartialEq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Container<'a> {
    name: &'a str,
    #[serde(borrow)]
    image: std::borrow::Cow<'a, str>,
    #[serde(default)]
    ports: Vec<u16>,
    security_context: Option<Security>,
    kind: Kind,
    #[serde(default)]
    policy: Option<Policy>,
}

#[derive(Debug, PartialEq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Security {
    run_as_user: i64,
    privileged: Option<bool>,
}

#[derive(Debug, PartialEq, serde::Deserialize)]
enum Kind {
    Plain,
    Weighted(f64),
}

#[derive(Debug, PartialEq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum Policy {
    Always,
    Never,
}

#[test]
fn reads_typed_values_borrowing_and_skipping() {
    let text = r#"{"name": "web", "env": [{"name": "A", "value": {"deep": [1, [2, {"x": null}]]}}],
        "image": "nginx\u0021", "ports": [80, 443], "securityContext": {"runAsUser": -7,
        "privileged": null, "extra": "ignored"}, "kind": {"Weighted": 0.5}, "policy": "never"}"#;
    let ours: Container = from_str(text).unwrap();
    let theirs: Container = serde_json::from_str(text).unwrap();
    assert_eq!(ours, theirs);
    assert_eq!(ours.image, "nginx!");
    assert_eq!(ours.kind, Kind::Weighted(0.5));
    let plain: Container =
        from_str(r#"{"name": "a", "image": "b", "securityContext": null, "kind": "Plain"}"#)
            .unwrap();
    assert_eq!(plain.kind, Kind::Plain);
    assert!(from_str::<Container>(r#"{"name": "a\n", "image": "b", "kind": "Plain"}"#).is_err());
}

#[derive(Debug, serde::Deserialize)]
struct Envelope {
    before: String,
    object: RawJson,
    list: Vec<RawJson>,
    after: u8,
}

#[test]
fn raw_values_keep_their_text_and_their_part_of_the_tape() {
    let text = r#"{"before": "x", "object": {"kind": "Pod", "spec": {"containers": [{"name": "a"}]}},
        "list": ["s\u0041", 12.5e1, true, [ ], {"k": null}], "after": 3}"#;
    let envelope: Envelope = from_str(text).unwrap();
    assert_eq!(envelope.before, "x");
    assert_eq!(envelope.after, 3);
    assert_eq!(
        envelope.object.get(),
        r#"{"kind": "Pod", "spec": {"containers": [{"name": "a"}]}}"#
    );
    // The part of the tape is the tape of the text alone.
    assert_eq!(
        envelope.object.tape(),
        &Tape::build(envelope.object.get()).unwrap()
    );
    let texts: Vec<&str> = envelope.list.iter().map(RawJson::get).collect();
    assert_eq!(
        texts,
        ["\"s\\u0041\"", "12.5e1", "true", "[ ]", "{\"k\": null}"]
    );
    for raw in &envelope.list {
        assert_eq!(raw.tape(), &Tape::build(raw.get()).unwrap(), "{raw:?}");
        let value: Value = raw.read().unwrap();
        assert_eq!(value, serde_json::from_str::<Value>(raw.get()).unwrap());
    }
    // Read by serde_json, the raw values build their own tapes.
    let again: Envelope = serde_json::from_str(text).unwrap();
    assert_eq!(again.object, envelope.object);
    assert_eq!(again.object.tape(), envelope.object.tape());
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn space(&mut self, out: &mut String) {
        for _ in 0..self.below(3) {
            out.push([' ', '\n', '\t', '\r'][self.below(4) as usize]);
        }
    }

    fn value(&mut self, depth: u32, out: &mut String) {
        self.space(out);
        let choice = if depth > 5 {
            self.below(6)
        } else {
            self.below(8)
        };
        match choice {
            0 => out.push_str("null"),
            1 => out.push_str(if self.below(2) == 0 { "true" } else { "false" }),
            2 => {
                let numbers = [
                    "0",
                    "-0",
                    "7",
                    "-12",
                    "3.25",
                    "-0.5e-3",
                    "1E10",
                    "99999999999999999999",
                    "-9223372036854775808",
                    "4.9e-324",
                    "1.7976931348623157e308",
                ];
                out.push_str(numbers[self.below(numbers.len() as u64) as usize]);
            }
            3..=5 => {
                out.push('"');
                for _ in 0..self.below(6) {
                    let pieces = [
                        "a",
                        "é",
                        "𝄞",
                        "\\n",
                        "\\\"",
                        "\\\\",
                        "\\u00e9",
                        "\\ud83d\\ude00",
                        " ",
                        "\\/",
                        "{",
                        "]",
                    ];
                    out.push_str(pieces[self.below(pieces.len() as u64) as usize]);
                }
                out.push('"');
            }
            6 => {
                out.push('[');
                let n = self.below(4);
                for i in 0..n {
                    if i > 0 {
                        out.push(',');
                    }
                    self.value(depth + 1, out);
                }
                self.space(out);
                out.push(']');
            }
            _ => {
                out.push('{');
                let n = self.below(4);
                for i in 0..n {
                    if i > 0 {
                        out.push(',');
                    }
                    self.space(out);
                    out.push_str(["\"a\"", "\"b\"", "\"\\u0063\"", "\"\""][self.below(4) as usize]);
                    self.space(out);
                    out.push(':');
                    self.value(depth + 1, out);
                }
                self.space(out);
                out.push('}');
            }
        }
        self.space(out);
    }
}

#[test]
fn random_documents_read_alike_and_their_mutations_are_judged_alike() {
    let mut random = Random(0x2545_f491_4f6c_dd1d);
    for _ in 0..3000 {
        let mut text = String::new();
        random.value(0, &mut text);
        let theirs: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        let ours: Value = from_str(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(format!("{ours:?}"), format!("{theirs:?}"), "{text:?}");
        // One byte changed, removed or doubled: both accept, or both refuse.
        let mut bytes = text.into_bytes();
        let at = random.below(bytes.len() as u64) as usize;
        match random.below(3) {
            0 => bytes[at] = b"{}[],:\"\\0-e.tn \x01"[random.below(16) as usize],
            1 => {
                bytes.remove(at);
            }
            _ => bytes.insert(at, bytes[at]),
        }
        let Ok(mutated) = String::from_utf8(bytes) else {
            continue;
        };
        assert_eq!(
            Tape::build(&mutated).is_ok(),
            serde_json::from_str::<IgnoredAny>(&mutated).is_ok(),
            "{mutated:?}"
        );
        if let Ok(theirs) = serde_json::from_str::<Value>(&mutated) {
            let ours: Value = from_str(&mutated).unwrap();
            assert_eq!(format!("{ours:?}"), format!("{theirs:?}"), "{mutated:?}");
        }
    }
}
