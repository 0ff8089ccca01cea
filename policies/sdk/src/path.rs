//! Request path normalisation before matching (shared by every HTTP policy that matches paths:
//! request-guard, zero-trust), as Istio's default (`BASE`: Envoy's
//! `normalize_path`, RFC 3986 section 6.2.2) plus `MERGE_SLASHES`, so that spelling a path
//! differently cannot bypass a rule.

use std::borrow::Cow;

/// The forms of `path` that rules are matched against: query and fragment cut off, escapes of
/// unreserved characters decoded and the others' hex digits upper-cased (RFC 3986 6.2.2.1 and
/// 6.2.2.2; `%2F` and `%5C` stay encoded), `\` read as `/` (as Envoy's `normalize_path` does),
/// dot segments removed (RFC 3986 5.2.4) and runs of `/` merged. A path that does not start
/// with `/` is read as if it did.
///
/// The first form removes dot segments before merging slashes (Envoy's order); when the path
/// has empty segments a backend that merges first resolves it differently
/// (`/a//../b` is `/a/b` one way, `/b` the other), so that form follows when it differs.
///
/// ```
/// use palisade_sdk::path::normalise;
/// assert_eq!(normalise("/a/./b/../c?x=/admin#f"), vec!["/a/c"]);
/// assert_eq!(normalise("/%61dmin/%2e%2e/%7Euser%2f"), vec!["/~user%2F"]);
/// assert_eq!(normalise("\\admin\\x"), vec!["/admin/x"]);
/// assert_eq!(normalise("/a//../admin"), vec!["/a/admin", "/admin"]);
/// ```
#[must_use]
pub fn normalise(path: &str) -> Vec<Cow<'_, str>> {
    let end = path
        .bytes()
        .position(|b| b == b'?' || b == b'#')
        .unwrap_or(path.len());
    let path = path.get(..end).unwrap_or(path);
    if is_normal(path) {
        // Most paths: nothing to decode, no dot segment, no repeated slash.
        return vec![Cow::Borrowed(path)];
    }
    let decoded = decode_unreserved(path).replace('\\', "/");
    let envoy = merge_slashes(&remove_dot_segments(&decoded));
    if !decoded.contains("//") {
        return vec![Cow::Owned(envoy)];
    }
    let merged_first = remove_dot_segments(&merge_slashes(&decoded));
    if merged_first == envoy {
        vec![Cow::Owned(envoy)]
    } else {
        vec![Cow::Owned(envoy), Cow::Owned(merged_first)]
    }
}

/// The value of the first query parameter `name` of a request target, percent-decoded; only
/// the parameter found is decoded (no allocation for the others).
///
/// ```
/// use palisade_sdk::path::query_param;
/// assert_eq!(query_param("/p?a=1&access%5Ftoken=x%2Ey", "access_token").as_deref(), Some("x.y"));
/// assert_eq!(query_param("/p?a=1", "b"), None);
/// assert_eq!(query_param("/p?flag&b=2#b=3", "flag").as_deref(), Some(""));
/// assert_eq!(query_param("/p#x?b=2", "b"), None);
/// assert_eq!(query_param("/p", "b"), None);
/// assert_eq!(query_param("/p?a=1&&=2&b", "b").as_deref(), Some(""));
/// assert_eq!(query_param("/p?a=1&b=x=y&", "b").as_deref(), Some("x=y"));
/// assert_eq!(query_param("/p?", ""), Some("".into()));
/// ```
#[must_use]
pub fn query_param<'a>(target: &'a str, name: &str) -> Option<std::borrow::Cow<'a, str>> {
    // By bytes: every request's target is searched, and `split` and `contains` cost a
    // searcher each in wasm. The delimiters are ASCII, so every cut is a character boundary.
    let bytes = target.as_bytes();
    let find = |from: usize, to: usize, byte: u8| {
        bytes
            .get(from..to)
            .and_then(|part| part.iter().position(|b| *b == byte))
            .map(|at| from.saturating_add(at))
    };
    // A fragment ends the target, whatever it holds.
    let end = find(0, bytes.len(), b'#').unwrap_or(bytes.len());
    let mut pair = find(0, end, b'?')?.saturating_add(1);
    while pair <= end {
        let pair_end = find(pair, end, b'&').unwrap_or(end);
        let (key, value) = match find(pair, pair_end, b'=') {
            Some(at) => (pair..at, at.saturating_add(1)..pair_end),
            None => (pair..pair_end, pair_end..pair_end),
        };
        let key = target.get(key)?;
        let escaped = |text: &str| text.as_bytes().contains(&b'%');
        let matches = if escaped(key) {
            percent_decode(key) == name
        } else {
            crate::compare::eq(key, name)
        };
        if matches {
            let value = target.get(value)?;
            return Some(if escaped(value) {
                std::borrow::Cow::Owned(percent_decode(value))
            } else {
                std::borrow::Cow::Borrowed(value)
            });
        }
        pair = pair_end.saturating_add(1);
    }
    None
}

/// Decodes every `%XX` escape; a `%` without two hex digits stays as it is, and bytes that are
/// not UTF-8 become U+FFFD.
#[must_use]
pub fn percent_decode(text: &str) -> String {
    if !text.contains('%') {
        return text.to_owned();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let escaped = match (
            b,
            bytes.get(i.wrapping_add(1)),
            bytes.get(i.wrapping_add(2)),
        ) {
            (b'%', Some(&h), Some(&l)) => hex_byte(char::from(h), char::from(l)),
            _ => None,
        };
        match escaped {
            Some(byte) => {
                out.push(byte);
                i = i.saturating_add(3);
            }
            None => {
                out.push(b);
                i = i.saturating_add(1);
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Whether `normalise` would give `path` back unchanged, as one form: absolute, without `%`,
/// `\\`, `//` or a `.`/`..` segment.
fn is_normal(path: &str) -> bool {
    // One pass over the bytes: paths are checked on every request, and `contains` with a set of
    // characters or a substring costs a searcher each in wasm.
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let mut segments = rest.as_bytes().split(|b| *b == b'/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if (segment.is_empty() && !last)
            || segment == b"."
            || segment == b".."
            || segment.iter().any(|b| *b == b'%' || *b == b'\\')
        {
            return false;
        }
    }
    true
}

/// Decodes `%XX` escapes of unreserved characters (ALPHA, DIGIT, `-`, `.`, `_`, `~`; RFC 3986
/// 2.3) and upper-cases the hex digits of every other escape; a `%` without two hex digits
/// stays as it is.
fn decode_unreserved(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut ahead = chars.clone();
        let Some((high, low, byte)) = ahead
            .next()
            .zip(ahead.next())
            .and_then(|(high, low)| Some((high, low, hex_byte(high, low)?)))
        else {
            out.push('%');
            continue;
        };
        chars = ahead;
        let decoded = char::from(byte);
        if decoded.is_ascii_alphanumeric() || matches!(decoded, '-' | '.' | '_' | '~') {
            out.push(decoded);
        } else {
            out.push('%');
            out.push(high.to_ascii_uppercase());
            out.push(low.to_ascii_uppercase());
        }
    }
    out
}

/// The byte two hex digits spell, if both are hex digits.
fn hex_byte(high: char, low: char) -> Option<u8> {
    if !high.is_ascii_hexdigit() || !low.is_ascii_hexdigit() {
        return None;
    }
    u8::from_str_radix(&format!("{high}{low}"), 16).ok()
}

/// RFC 3986 5.2.4 on an absolute path, segment by segment: `.` is dropped, `..` drops the
/// segment before it (never above the root), and a final `.` or `..` leaves a trailing `/`.
fn remove_dot_segments(path: &str) -> String {
    let rest = path.strip_prefix('/').unwrap_or(path);
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in rest.split('/') {
        trailing_slash = matches!(segment, "." | "..");
        match segment {
            "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut out = String::with_capacity(path.len());
    out.push('/');
    out.push_str(&segments.join("/"));
    if trailing_slash && !segments.is_empty() {
        out.push('/');
    }
    out
}

/// Replaces every run of `/` with one.
fn merge_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if c != '/' || !out.ends_with('/') {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `query_param` by its definition: the query cut at `#`, split at `&`, each pair at its
    /// first `=`, keys compared decoded.
    fn query_param_by_split<'a>(target: &'a str, name: &str) -> Option<Cow<'a, str>> {
        let target = target.split('#').next()?;
        let (_, query) = target.split_once('?')?;
        query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key) == name).then(|| {
                if value.contains('%') {
                    Cow::Owned(percent_decode(value))
                } else {
                    Cow::Borrowed(value)
                }
            })
        })
    }

    #[test]
    fn query_params_are_found_as_splitting_finds_them() {
        // Every target of up to six characters over the delimiters, a letter and an escape.
        let alphabet = ["?", "&", "=", "#", "a", "%61", "b"];
        let mut targets = vec![String::from("/p")];
        let mut last = targets.clone();
        for _ in 0..6 {
            last = last
                .iter()
                .flat_map(|t| alphabet.iter().map(move |c| format!("{t}{c}")))
                .collect();
            targets.extend(last.iter().cloned());
        }
        for target in &targets {
            for name in ["a", "b", "", "ab"] {
                assert_eq!(
                    query_param(target, name),
                    query_param_by_split(target, name),
                    "{target:?} {name:?}"
                );
            }
        }
    }

    #[test]
    fn the_fast_path_agrees_with_the_full_normalisation() {
        for path in [
            "/",
            "/a",
            "/a/",
            "/a/b.c/..d",
            "/a/.b",
            "/%61",
            "/a/./b",
            "/a/..",
            "/.",
            "a/b",
            "/a//b",
            "/a\\b",
            "/~user/x-y_z",
            "",
            "/..a/b..",
            "/a/b/.",
            "//",
            "/a//",
            "/..",
            "/a/%2e",
            "/a/b/",
        ] {
            let decoded = decode_unreserved(path).replace('\\', "/");
            let full = merge_slashes(&remove_dot_segments(&decoded));
            if is_normal(path) {
                assert_eq!(full, path, "{path:?} is taken as normal");
                assert!(!decoded.contains("//"));
            }
        }
        assert!(is_normal("/api/v1/items"));
        assert!(is_normal("/api/v1/items/"));
        assert!(!is_normal("/api//items"));
        assert!(!is_normal("/api/../admin"));
    }

    #[test]
    fn removes_dot_segments_as_rfc_3986_examples() {
        // RFC 3986 5.2.4's own examples, and its edge cases at the root.
        assert_eq!(remove_dot_segments("/a/b/c/./../../g"), "/a/g");
        assert_eq!(remove_dot_segments("/mid/content=5/../6"), "/mid/6");
        assert_eq!(remove_dot_segments("/.."), "/");
        assert_eq!(remove_dot_segments("/../../x"), "/x");
        assert_eq!(remove_dot_segments("/a/."), "/a/");
        assert_eq!(remove_dot_segments("/a/b/.."), "/a/");
        assert_eq!(remove_dot_segments("/"), "/");
        assert_eq!(remove_dot_segments("/a/"), "/a/");
        assert_eq!(remove_dot_segments("/a//."), "/a//");
        assert_eq!(remove_dot_segments("/a/..//b"), "//b");
        assert_eq!(remove_dot_segments("/a..b/.c/..."), "/a..b/.c/...");
    }

    #[test]
    fn decodes_only_unreserved_escapes() {
        assert_eq!(decode_unreserved("%41%7a%30%2D%2e%5F%7e"), "Az0-._~");
        assert_eq!(
            decode_unreserved("%2f%5c%25%3F%c3%a9"),
            "%2F%5C%25%3F%C3%A9"
        );
        assert_eq!(decode_unreserved("%"), "%");
        assert_eq!(decode_unreserved("%4"), "%4");
        assert_eq!(decode_unreserved("%zz%+1"), "%zz%+1");
        assert_eq!(decode_unreserved("%2541"), "%2541");
        assert_eq!(decode_unreserved("é%é1"), "é%é1");
    }

    #[test]
    fn merges_runs_of_slashes() {
        assert_eq!(merge_slashes("///a//b/"), "/a/b/");
    }

    #[test]
    fn cuts_query_and_fragment() {
        assert_eq!(normalise("/x?a=/../admin"), vec!["/x"]);
        assert_eq!(normalise("/x#/../admin"), vec!["/x"]);
        assert_eq!(normalise("?q"), vec!["/"]);
    }

    #[test]
    fn relative_and_empty_paths_are_read_from_the_root() {
        assert_eq!(normalise(""), vec!["/"]);
        assert_eq!(normalise("admin/../x"), vec!["/x"]);
        assert_eq!(normalise("*"), vec!["/*"]);
    }

    #[test]
    fn both_orders_when_empty_segments_meet_dot_segments() {
        assert_eq!(normalise("//admin"), vec!["/admin"]);
        assert_eq!(normalise("/admin//../x"), vec!["/admin/x", "/x"]);
        assert_eq!(normalise("/a/..//admin"), vec!["/admin"]);
    }
}
