//! The wording PSA builds its forbidden details from (`policy/helpers.go`: `pluralize`,
//! `joinQuote`), and Go's `%q` quoting, so our messages match PSA's character for character.

use std::fmt::Write as _;

/// `singular` when `count` is 1, else `plural` (PSA `pluralize`).
pub(crate) fn pluralize<'a>(singular: &'a str, plural: &'a str, count: usize) -> &'a str {
    if count == 1 { singular } else { plural }
}

/// Items wrapped in double quotes and joined by `, ` without escaping; empty for no items
/// (PSA `joinQuote`).
pub(crate) fn join_quote<I, S>(items: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let quoted: Vec<String> = items
        .into_iter()
        .map(|item| format!("\"{}\"", item.as_ref()))
        .collect();
    quoted.join(", ")
}

/// `container "a"` or `containers "a", "b"`: the subject of most container-level details.
pub(crate) fn containers<S: AsRef<str>>(names: &[S]) -> String {
    named("container", "containers", names)
}

/// `<singular> "a"` or `<plural> "a", "b"`.
pub(crate) fn named<S: AsRef<str>>(singular: &str, plural: &str, names: &[S]) -> String {
    format!(
        "{} {}",
        pluralize(singular, plural, names.len()),
        join_quote(names)
    )
}

/// `text` quoted as Go's `%q` verb (`strconv.Quote`) does: backslash escapes for quotes,
/// backslashes and control characters; other characters as they are.
pub(crate) fn go_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len().saturating_add(2));
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if !is_printable(c) => {
                let code = u32::from(c);
                let _ = if code < 0x1_0000 {
                    write!(out, "\\u{code:04x}")
                } else {
                    write!(out, "\\U{code:08x}")
                };
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `unicode.IsPrint` beyond ASCII: control characters, spaces other
/// than U+0020 and the common invisible format characters are not printable.
fn is_printable(c: char) -> bool {
    !(c.is_control()
        || (c.is_whitespace() && c != ' ')
        || matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pluralizes_on_count() {
        assert_eq!(pluralize("uses", "use", 1), "uses");
        assert_eq!(pluralize("uses", "use", 2), "use");
        assert_eq!(pluralize("a", "b", 0), "b");
    }

    #[test]
    fn joins_and_quotes_without_escaping() {
        assert_eq!(join_quote(["a", "b\"c"]), r#""a", "b"c""#);
        assert_eq!(join_quote(Vec::<String>::new()), "");
        assert_eq!(containers(&["app"]), r#"container "app""#);
        assert_eq!(containers(&["a", "b"]), r#"containers "a", "b""#);
    }

    #[test]
    fn quotes_like_go() {
        assert_eq!(go_quote("unconfined"), r#""unconfined""#);
        assert_eq!(go_quote(""), r#""""#);
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("x\ny\u{1}"), r#""x\ny\x01""#);
        assert_eq!(go_quote("é"), "\"é\"");
        assert_eq!(go_quote("\u{a0}"), r#""\u00a0""#);
    }
}
