//! A request's header fields in one buffer: names and values back to back, with their places.
//! A proxy hands the whole map over as one serialized buffer; keeping it whole (instead of a
//! string per name and per value) is what makes reading a request cost one allocation rather
//! than two per header, and dropping it one free.

use std::fmt;

use serde::de::Deserializer;
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

/// Header fields in arrival order, repeated names repeated. In JSON a list of `[name, value]`
/// pairs, as `Vec<(String, String)>` would be.
///
/// ```
/// use palisade_sdk::wire::Headers;
/// let mut headers = Headers::from(vec![("accept".to_owned(), "*/*".to_owned())]);
/// headers.push("x-b3-traceid", "80f198ee");
/// headers.push("accept", "text/html");
/// assert_eq!(headers.get("Accept"), Some("*/*"));
/// assert_eq!(headers.get_all("accept").collect::<Vec<_>>(), ["*/*", "text/html"]);
/// assert_eq!(headers.iter().nth(1), Some(("x-b3-traceid", "80f198ee")));
/// assert_eq!(serde_json::to_string(&headers).unwrap(),
///     r#"[["accept","*/*"],["x-b3-traceid","80f198ee"],["accept","text/html"]]"#);
/// ```
#[derive(Clone, Default)]
pub struct Headers {
    /// Every name and value, in the places `fields` gives.
    text: String,
    fields: Vec<Field>,
}

/// Where one field's name and value are in the text: `[start, end)` each.
#[derive(Debug, Clone, Copy)]
struct Field {
    name: (u32, u32),
    value: (u32, u32),
}

/// Why a serialized header map cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderMapError(String);

impl fmt::Display for HeaderMapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed header map: {}", self.0)
    }
}

impl std::error::Error for HeaderMapError {}

/// A little-endian `u32` at `at` as a length.
fn length_at(bytes: &[u8], at: usize) -> Option<usize> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    let word: [u8; 4] = word.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(word)).ok()
}

/// Whether `bytes` hold an ASCII upper-case letter: eight bytes at a time (every header name of
/// every request is looked at).
fn has_upper(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // Per byte, its low seven bits b: b + (0x80 - 'A') has its high bit set when b >= 'A',
    // and b + (0x80 - 'Z' - 1) when b > 'Z' (no sum carries into the next byte); bytes of
    // 0x80 and above are then left out by `!w`.
    let upper = |w: u64| {
        let low = w & !HIGHS;
        let at_least_a = low.wrapping_add(ONES * u64::from(0x80 - b'A'));
        let above_z = low.wrapping_add(ONES * u64::from(0x80 - b'Z' - 1));
        at_least_a & !above_z & !w & HIGHS != 0
    };
    let words = bytes.chunks_exact(8);
    let tail = words.remainder();
    words
        .map(|w| u64::from_ne_bytes(w.try_into().unwrap_or_default()))
        .any(upper)
        || tail.iter().any(u8::is_ascii_uppercase)
}

/// Where a name or a value is in the data: `[start, end)`.
type Place = (usize, usize);

/// A name of `name_len` bytes at `at` and a value of `value_len` bytes, each followed by a
/// NUL: their places, and where the next pair starts.
fn places(at: usize, name_len: usize, value_len: usize) -> Option<(Place, Place, usize)> {
    let name_end = at.checked_add(name_len)?;
    let value_start = name_end.checked_add(1)?;
    let value_end = value_start.checked_add(value_len)?;
    Some((
        (at, name_end),
        (value_start, value_end),
        value_end.checked_add(1)?,
    ))
}

impl Headers {
    /// No fields.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            text: String::new(),
            fields: Vec::new(),
        }
    }

    /// How many fields.
    #[must_use]
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there is no field.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    fn slice(&self, (start, end): (u32, u32)) -> &str {
        // Places are made only by `push` and `from_map`, at character boundaries of `text`.
        self.text
            .get(start as usize..end as usize)
            .unwrap_or_default()
    }

    /// Every field as `(name, value)`, in order.
    #[must_use]
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            headers: self,
            fields: self.fields.iter(),
        }
    }

    /// Every value of the field `name` (compared case-insensitively), in order.
    pub fn get_all<'s, 'n>(
        &'s self,
        name: &'n str,
    ) -> impl Iterator<Item = &'s str> + Clone + use<'s, 'n> {
        self.fields
            .iter()
            .filter(move |f| self.name_is(f, name))
            .map(|f| self.slice(f.value))
    }

    /// Whether `field`'s name is `name`, compared case-insensitively as bytes (no value is
    /// sliced for the names that differ).
    fn name_is(&self, field: &Field, name: &str) -> bool {
        let (start, end) = field.name;
        (end.wrapping_sub(start) as usize) == name.len()
            && self
                .text
                .as_bytes()
                .get(start as usize..end as usize)
                .is_some_and(|n| n.eq_ignore_ascii_case(name.as_bytes()))
    }

    /// The first value of the field `name` (compared case-insensitively).
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_all(name).next()
    }

    /// Whether a field is named exactly `name` (names are kept as they were given).
    #[must_use]
    pub fn contains(&self, name: &str) -> bool {
        self.fields.iter().any(|f| {
            self.text
                .as_bytes()
                .get(f.name.0 as usize..f.name.1 as usize)
                .is_some_and(|n| crate::compare::bytes_eq(n, name.as_bytes()))
        })
    }

    /// Appends a field.
    ///
    /// # Panics
    /// Never for real headers: only past 4 GiB of names and values.
    pub fn push(&mut self, name: &str, value: &str) {
        let mut place = |s: &str| {
            let start = self.text.len();
            self.text.push_str(s);
            let end = self.text.len();
            (
                u32::try_from(start).unwrap_or(u32::MAX),
                u32::try_from(end).unwrap_or(u32::MAX),
            )
        };
        let name = place(name);
        let value = place(value);
        self.fields.push(Field { name, value });
    }

    /// Reads a header map as proxy-wasm serializes it (`proxy_get_header_map_pairs`): the
    /// number of pairs, each pair's name and value length (little-endian `u32`s), then each
    /// name and value followed by a NUL. Pseudo-headers (`:`-names) go to `pseudo` instead of
    /// the fields; names with upper-case letters are lower-cased. Values that are not UTF-8
    /// get U+FFFD in place of the invalid bytes; so do names. No bytes at all is no fields.
    ///
    /// # Errors
    /// [`HeaderMapError`] when the lengths do not fit the buffer.
    pub fn from_map(
        bytes: Vec<u8>,
        pseudo: impl FnMut(&str, &str),
    ) -> Result<Self, HeaderMapError> {
        let mut headers = Self::new();
        headers.read_map(bytes, pseudo)?;
        Ok(headers)
    }

    /// [`Headers::from_map`] into these headers, which it replaces (keeping the room their
    /// list of fields had: a filter reads one map per request). On error they are left empty.
    ///
    /// # Errors
    /// [`HeaderMapError`] when the lengths do not fit the buffer.
    pub fn read_map(
        &mut self,
        mut bytes: Vec<u8>,
        mut pseudo: impl FnMut(&str, &str),
    ) -> Result<(), HeaderMapError> {
        let mut fields = std::mem::take(&mut self.fields);
        fields.clear();
        self.text = String::new();
        if bytes.is_empty() {
            self.fields = fields;
            return Ok(());
        }
        let count = length_at(&bytes, 0)
            .ok_or_else(|| HeaderMapError("shorter than its pair count".into()))?;
        let data = count
            .checked_mul(8)
            .and_then(|n| n.checked_add(4))
            .filter(|data| *data <= bytes.len())
            .ok_or_else(|| {
                HeaderMapError(format!("{count} pairs do not fit in {} bytes", bytes.len()))
            })?;
        let over = || HeaderMapError("over 4 GiB".into());
        // Every place checked against the buffer first; places are into the whole buffer.
        // Names are lower-cased here, in the bytes (ASCII letters only, so UTF-8 stays UTF-8).
        fields.reserve(count);
        let mut pseudos = 0usize;
        let mut at = data;
        for i in 0..count {
            let lengths = i
                .checked_mul(8)
                .and_then(|o| o.checked_add(4))
                .and_then(|o| bytes.get(o..o.checked_add(8)?));
            let Some((name_len, value_len)) =
                lengths.and_then(|l| Some((length_at(l, 0)?, length_at(l, 4)?)))
            else {
                return Err(HeaderMapError(format!("pair {i} has no lengths")));
            };
            let ((ns, ne), (vs, ve), next) = places(at, name_len, value_len)
                .filter(|(_, _, next)| *next <= bytes.len())
                .ok_or_else(|| HeaderMapError(format!("pair {i} runs past the end")))?;
            if bytes.get(ne) != Some(&0) || bytes.get(ve) != Some(&0) {
                return Err(HeaderMapError(format!(
                    "pair {i}: its name or value is not followed by a NUL"
                )));
            }
            if let Some(name) = bytes.get_mut(ns..ne) {
                if name.first() == Some(&b':') {
                    pseudos = pseudos.saturating_add(1);
                } else if has_upper(name) {
                    // Proxies hand names over lower-case already (HTTP/2, Envoy's HTTP/1
                    // codec): look before writing.
                    name.make_ascii_lowercase();
                }
            }
            let place = |start: usize, end: usize| {
                Some((u32::try_from(start).ok()?, u32::try_from(end).ok()?))
            };
            fields.push(Field {
                name: place(ns, ne).ok_or_else(over)?,
                value: place(vs, ve).ok_or_else(over)?,
            });
            at = next;
        }
        // The lengths are binary: zeroed, the whole buffer is text when the names and values
        // are, and it becomes the text in place (nothing moved, validated once).
        if let Some(table) = bytes.get_mut(..data) {
            table.fill(0);
        }
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            // Rare (obs-text, RFC 9110 section 5.5): each name and value on its own.
            Err(e) => {
                *self = Self::lossy(&e.into_bytes(), &fields, pseudo);
                return Ok(());
            }
        };
        self.text = text;
        if pseudos > 0 {
            // Values are sliced only when read (every place ends at a NUL, so it is a
            // character boundary).
            let text = &self.text;
            fields.retain(|field| {
                let name = field.name.0 as usize..field.name.1 as usize;
                if text.as_bytes().get(name.start) != Some(&b':') {
                    return true;
                }
                if let (Some(name), Some(value)) = (
                    text.get(name),
                    text.get(field.value.0 as usize..field.value.1 as usize),
                ) {
                    pseudo(name, value);
                }
                false
            });
        }
        self.fields = fields;
        Ok(())
    }

    /// [`Headers::from_map`] for data that is not all UTF-8.
    fn lossy(data: &[u8], fields: &[Field], mut pseudo: impl FnMut(&str, &str)) -> Self {
        let mut headers = Self::new();
        for Field { name, value } in fields {
            let slice = |(start, end): (u32, u32)| {
                String::from_utf8_lossy(data.get(start as usize..end as usize).unwrap_or_default())
            };
            let (name, value) = (slice(*name), slice(*value));
            if name.starts_with(':') {
                pseudo(&name, &value);
            } else {
                headers.push(&name.to_ascii_lowercase(), &value);
            }
        }
        headers
    }
}

impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Headers {}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<N: AsRef<str>, V: AsRef<str>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(fields: I) -> Self {
        let mut headers = Self::new();
        headers.extend(fields);
        headers
    }
}

impl<N: AsRef<str>, V: AsRef<str>> Extend<(N, V)> for Headers {
    fn extend<I: IntoIterator<Item = (N, V)>>(&mut self, fields: I) {
        for (name, value) in fields {
            self.push(name.as_ref(), value.as_ref());
        }
    }
}

impl<N: AsRef<str>, V: AsRef<str>> From<Vec<(N, V)>> for Headers {
    fn from(fields: Vec<(N, V)>) -> Self {
        fields.into_iter().collect()
    }
}

/// The fields of [`Headers`] as `(name, value)`, in order.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    headers: &'a Headers,
    fields: std::slice::Iter<'a, Field>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let f = self.fields.next()?;
        Some((self.headers.slice(f.name), self.headers.slice(f.value)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.fields.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let f = self.fields.next_back()?;
        Some((self.headers.slice(f.name), self.headers.slice(f.value)))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Headers {
    type Item = (&'a str, &'a str);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl Serialize for Headers {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for field in self.iter() {
            seq.serialize_element(&field)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<(String, String)>::deserialize(deserializer).map(Self::from)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![expect(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        reason = "tests fail by panicking"
    )]

    use super::*;

    /// A header map serialized as a proxy does.
    pub(crate) fn serialize(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut bytes = u32::try_from(pairs.len()).unwrap().to_le_bytes().to_vec();
        for (name, value) in pairs {
            bytes.extend(u32::try_from(name.len()).unwrap().to_le_bytes());
            bytes.extend(u32::try_from(value.len()).unwrap().to_le_bytes());
        }
        for (name, value) in pairs {
            bytes.extend(*name);
            bytes.push(0);
            bytes.extend(*value);
            bytes.push(0);
        }
        bytes
    }

    fn map(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        serialize(pairs)
    }

    fn read(bytes: Vec<u8>) -> Result<(Headers, Vec<(String, String)>), HeaderMapError> {
        let mut pseudo = Vec::new();
        let headers = Headers::from_map(bytes, |n, v| pseudo.push((n.to_owned(), v.to_owned())))?;
        Ok((headers, pseudo))
    }

    #[test]
    fn a_map_is_read_whole_with_pseudo_headers_apart() {
        let (headers, pseudo) = read(map(&[
            (b":method", b"GET"),
            (b"accept", b"*/*"),
            (b":path", b"/a?b"),
            (b"X-Mixed", b"Case"),
            (b"empty", b""),
            (b"accept", "text/h\u{e9}".as_bytes()),
        ]))
        .unwrap();
        assert_eq!(
            pseudo,
            [(":method", "GET"), (":path", "/a?b")].map(|(n, v)| (n.to_owned(), v.to_owned()))
        );
        assert_eq!(
            headers.iter().collect::<Vec<_>>(),
            [
                ("accept", "*/*"),
                ("x-mixed", "Case"),
                ("empty", ""),
                ("accept", "text/h\u{e9}")
            ]
        );
        assert_eq!(headers.get("X-MIXED"), Some("Case"));
        assert!(headers.contains("empty"));
        assert!(!headers.contains("Empty"));
        assert_eq!(read(map(&[])).unwrap().0, Headers::new());
    }

    #[test]
    fn invalid_utf8_is_replaced_per_field_and_the_others_stay_whole() {
        let (headers, pseudo) = read(map(&[
            (b":authority", b"a.example"),
            (b"x-obs", b"caf\xe9"),
            (b"X-\xff", b"v"),
            (b"ok", b"yes"),
        ]))
        .unwrap();
        assert_eq!(pseudo, [(":authority".to_owned(), "a.example".to_owned())]);
        assert_eq!(
            headers.iter().collect::<Vec<_>>(),
            [("x-obs", "caf\u{fffd}"), ("x-\u{fffd}", "v"), ("ok", "yes")]
        );
    }

    #[test]
    fn lengths_that_do_not_fit_are_errors_not_panics() {
        let whole = map(&[(b"a", b"1"), (b"bb", b"22")]);
        assert_eq!(read(Vec::new()).unwrap().0, Headers::new());
        for cut in 1..whole.len() {
            let err = read(whole.get(..cut).unwrap().to_vec()).unwrap_err();
            assert!(
                err.to_string().starts_with("malformed header map: "),
                "{err}"
            );
        }
        let mut huge = map(&[(b"a", b"1")]);
        huge.get_mut(..4)
            .unwrap()
            .copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(read(huge).is_err());
        let mut no_nul = map(&[(b"a", b"1"), (b"b", b"2")]);
        *no_nul.last_mut().unwrap() = b'x';
        assert!(read(no_nul).unwrap_err().to_string().contains("pair 1"));
        let mut long = map(&[(b"a", b"1")]);
        long.get_mut(8..12)
            .unwrap()
            .copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(read(long).is_err());
    }

    #[test]
    fn json_is_a_list_of_pairs_both_ways() {
        let headers: Headers = serde_json::from_str(r#"[["a","1"],["b",""],["a","2"]]"#).unwrap();
        assert_eq!(
            headers,
            Headers::from(vec![("a", "1"), ("b", ""), ("a", "2")])
        );
        assert_eq!(
            serde_json::to_string(&headers).unwrap(),
            r#"[["a","1"],["b",""],["a","2"]]"#
        );
        assert!(serde_json::from_str::<Headers>(r#"{"a":"1"}"#).is_err());
        assert_eq!(
            format!("{headers:?}"),
            r#"[("a", "1"), ("b", ""), ("a", "2")]"#
        );
    }

    #[test]
    fn upper_case_is_found_in_any_byte_and_only_in_ascii_letters() {
        for len in 0..20 {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut name = vec![b'a'; len];
                    name[at] = b;
                    assert_eq!(
                        has_upper(&name),
                        b.is_ascii_uppercase(),
                        "{b:#x} at {at} of {len}"
                    );
                    // Next to bytes of every kind.
                    name.fill(0xff);
                    name[at] = b;
                    assert_eq!(
                        has_upper(&name),
                        b.is_ascii_uppercase(),
                        "{b:#x} among 0xff"
                    );
                }
            }
        }
    }
}
