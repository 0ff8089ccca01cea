//! Header maps as Envoy keeps them (ordered, keys lower-cased on every write) and the ABI's
//! pair serialisation (spec v0.2.1 "Header maps": u32 count, u32 key/value lengths, then each key
//! and value followed by a NUL that the lengths do not count; little-endian).

use super::types::{MAX_PAIRS, MAX_PAIRS_BYTES};

/// An ordered multimap of header names to values, keys lower-cased as Envoy stores them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeaderMap(pub Vec<(String, String)>);

impl HeaderMap {
    /// A map from pairs, lower-casing the keys.
    #[must_use]
    pub fn from_pairs<K: AsRef<str>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.as_ref().to_ascii_lowercase(), v.into()))
                .collect(),
        )
    }

    /// The first value of `key` (Envoy's `get_header_map_value` returns only the first).
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        let key = key.to_ascii_lowercase();
        self.0
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, comma-joined (how Envoy's `request.headers` property shows them).
    #[must_use]
    pub fn joined(&self, key: &str) -> Option<String> {
        let values: Vec<&str> = self
            .0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect();
        (!values.is_empty()).then(|| values.join(","))
    }

    /// Appends a value (`proxy_add_header_map_value`).
    pub fn add(&mut self, key: &str, value: &str) {
        self.0.push((key.to_ascii_lowercase(), value.to_owned()));
    }

    /// Sets a key to one value, replacing every existing value in place of the first, or
    /// appending when absent (`proxy_replace_header_map_value`, Envoy's `setCopy`).
    pub fn replace(&mut self, key: &str, value: &str) {
        let key = key.to_ascii_lowercase();
        match self.0.iter().position(|(k, _)| *k == key) {
            Some(first) => {
                if let Some(slot) = self.0.get_mut(first) {
                    slot.1 = value.to_owned();
                }
                let mut index = 0usize;
                self.0.retain(|(k, _)| {
                    let keep = *k != key || index == first;
                    index = index.saturating_add(1);
                    keep
                });
            }
            None => self.0.push((key, value.to_owned())),
        }
    }

    /// Removes every value of `key`; removing a missing key is not an error.
    pub fn remove(&mut self, key: &str) {
        let key = key.to_ascii_lowercase();
        self.0.retain(|(k, _)| *k != key);
    }

    /// Envoy's `HeaderMap::byteSize()`: the sum of key and value lengths
    /// (`proxy_get_header_map_size` returns this, not a count).
    #[must_use]
    pub fn byte_size(&self) -> usize {
        self.0
            .iter()
            .map(|(k, v)| k.len().saturating_add(v.len()))
            .fold(0usize, usize::saturating_add)
    }

    /// Number of entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the map has no entry.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Serialises the map in the ABI's pair format.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        encode_pairs(self.0.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())))
    }
}

/// Serialises pairs in the ABI's format. An empty map is 0 bytes, as cpp-host writes it.
pub(crate) fn encode_pairs<'a>(
    pairs: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
) -> Vec<u8> {
    let count = pairs.clone().count();
    if count == 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    out.extend_from_slice(&u32::try_from(count).unwrap_or(u32::MAX).to_le_bytes());
    for (k, v) in pairs.clone() {
        out.extend_from_slice(&u32::try_from(k.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(&u32::try_from(v.len()).unwrap_or(u32::MAX).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

/// Why serialised pairs from the guest were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PairsError {
    /// Truncated, inconsistent lengths, or missing NUL terminators.
    #[error("malformed header pairs")]
    Malformed,
    /// Over cpp-host's 1024 pairs / 1 MiB.
    #[error("more header pairs than cpp-host accepts (1024 pairs, 1 MiB)")]
    TooLarge,
}

/// Parses the ABI's pair format (as sent by `proxy_set_header_map_pairs`, `proxy_http_call`,
/// `proxy_send_local_response`). 0 bytes, or a lone 0 byte, is the empty map.
pub(crate) fn decode_pairs(bytes: &[u8]) -> Result<Vec<(String, String)>, PairsError> {
    if bytes.len() > MAX_PAIRS_BYTES {
        return Err(PairsError::TooLarge);
    }
    if bytes.len() <= 1 && bytes.iter().all(|b| *b == 0) {
        return Ok(Vec::new());
    }
    let word = |at: usize| -> Result<usize, PairsError> {
        let end = at.checked_add(4).ok_or(PairsError::Malformed)?;
        let raw: [u8; 4] = bytes
            .get(at..end)
            .and_then(|s| s.try_into().ok())
            .ok_or(PairsError::Malformed)?;
        usize::try_from(u32::from_le_bytes(raw)).map_err(|_| PairsError::Malformed)
    };
    let count = word(0)?;
    if count > MAX_PAIRS {
        return Err(PairsError::TooLarge);
    }
    let mut sizes = Vec::with_capacity(count);
    let mut at = 4usize;
    for _ in 0..count {
        let k = word(at)?;
        let v = word(at.saturating_add(4))?;
        sizes.push((k, v));
        at = at.saturating_add(8);
    }
    let mut take = |len: usize| -> Result<String, PairsError> {
        let end = at.checked_add(len).ok_or(PairsError::Malformed)?;
        let text = bytes.get(at..end).ok_or(PairsError::Malformed)?;
        if bytes.get(end) != Some(&0) {
            return Err(PairsError::Malformed);
        }
        at = end.saturating_add(1);
        Ok(String::from_utf8_lossy(text).into_owned())
    };
    let mut pairs = Vec::with_capacity(count);
    for (k, v) in sizes {
        let key = take(k)?;
        let value = take(v)?;
        pairs.push((key, value));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn encodes_the_specs_worked_example() {
        // Two pairs: ("a", "1") and ("bb", "22"): count, two (key, value) length words, then
        // "a\0" "1\0" "bb\0" "22\0".
        let map = HeaderMap::from_pairs([("a", "1"), ("bb", "22")]);
        let expected: Vec<u8> = [
            2u32.to_le_bytes(),
            1u32.to_le_bytes(),
            1u32.to_le_bytes(),
            2u32.to_le_bytes(),
            2u32.to_le_bytes(),
        ]
        .concat()
        .into_iter()
        .chain(*b"a\x001\x00bb\x0022\x00")
        .collect();
        assert_eq!(map.encode(), expected);
        assert_eq!(decode_pairs(&expected).unwrap(), map.0);
    }

    #[test]
    fn empty_map_is_zero_bytes_and_a_lone_nul_decodes_empty() {
        assert!(HeaderMap::default().encode().is_empty());
        assert!(decode_pairs(&[]).unwrap().is_empty());
        assert!(decode_pairs(&[0]).unwrap().is_empty());
    }

    #[test]
    fn rejects_truncated_and_unterminated_pairs() {
        let good = HeaderMap::from_pairs([("k", "v")]).encode();
        assert_eq!(
            decode_pairs(&good[..good.len() - 1]),
            Err(PairsError::Malformed)
        );
        let mut no_nul = good.clone();
        let last = no_nul.len() - 1;
        no_nul[last] = b'x';
        assert_eq!(decode_pairs(&no_nul), Err(PairsError::Malformed));
        let mut huge = 5000u32.to_le_bytes().to_vec();
        huge.extend([0; 8]);
        assert_eq!(decode_pairs(&huge), Err(PairsError::TooLarge));
    }

    #[test]
    fn replace_keeps_position_and_drops_duplicates() {
        let mut map = HeaderMap::from_pairs([("A", "1"), ("b", "2"), ("a", "3")]);
        map.replace("a", "9");
        assert_eq!(map, HeaderMap::from_pairs([("a", "9"), ("b", "2")]));
        map.replace("C", "4");
        assert_eq!(map.get("c"), Some("4"));
        map.remove("missing");
        assert_eq!(map.byte_size(), 6);
    }
}
