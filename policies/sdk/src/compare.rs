//! String comparisons eight bytes at a time, for policies' hot paths in wasm: there `==`,
//! `starts_with` and `ends_with` call the C library's `memcmp`, which goes byte by byte
//! (wasi-libc's), and a policy compares names, prefixes and tokens on every request.
//!
//! ```
//! use palisade_sdk::compare;
//! assert!(compare::eq("cluster.local/ns/shop/sa/web", "cluster.local/ns/shop/sa/web"));
//! assert!(compare::starts_with("cluster.local/ns/shop/sa/web", "cluster.local/ns/"));
//! assert!(compare::ends_with("/index.php", ".php"));
//! assert!(!compare::eq("a", "ab"));
//! ```

/// Whether `a` and `b` hold the same bytes.
#[must_use]
pub fn eq(a: &str, b: &str) -> bool {
    bytes_eq(a.as_bytes(), b.as_bytes())
}

/// Whether `text` begins with `prefix`.
#[must_use]
pub fn starts_with(text: &str, prefix: &str) -> bool {
    text.as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| bytes_eq(head, prefix.as_bytes()))
}

/// Whether `text` ends with `suffix`.
#[must_use]
pub fn ends_with(text: &str, suffix: &str) -> bool {
    text.len()
        .checked_sub(suffix.len())
        .and_then(|at| text.as_bytes().get(at..))
        .is_some_and(|tail| bytes_eq(tail, suffix.as_bytes()))
}

/// Whether two byte strings are equal: 32 bytes at a time (four 64-bit words, one branch),
/// then words, then the tail. Tokens of a kilobyte are compared on every request.
#[must_use]
pub fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut blocks_a, mut blocks_b) = (a.chunks_exact(32), b.chunks_exact(32));
    for (x, y) in (&mut blocks_a).zip(&mut blocks_b) {
        let diff = x
            .chunks_exact(8)
            .zip(y.chunks_exact(8))
            .fold(0, |diff, (x, y)| diff | (word(x) ^ word(y)));
        if diff != 0 {
            return false;
        }
    }
    let (words_a, words_b) = (
        blocks_a.remainder().chunks_exact(8),
        blocks_b.remainder().chunks_exact(8),
    );
    let tails_equal = words_a
        .remainder()
        .iter()
        .zip(words_b.remainder())
        .all(|(x, y)| x == y);
    tails_equal && words_a.zip(words_b).all(|(x, y)| word(x) == word(y))
}

/// A fast hash of `bytes`, eight at a time (FxHash's mixing), for tables whose keys the policy
/// chooses (metric names): not for keys a client chooses, which need a keyed hash.
///
/// ```
/// use palisade_sdk::compare::hash;
/// assert_eq!(hash(b"zero_trust.allowed"), hash(b"zero_trust.allowed"));
/// assert_ne!(hash(b"zero_trust.allowed"), hash(b"zero_trust.denied"));
/// ```
#[must_use]
pub fn hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mix = |h: u64, w: u64| (h.rotate_left(5) ^ w).wrapping_mul(K);
    let words = bytes.chunks_exact(8);
    let mut tail = [0u8; 8];
    for (t, b) in tail.iter_mut().zip(words.remainder()) {
        *t = *b;
    }
    let h = words.fold(bytes.len() as u64, |h, w| mix(h, word(w)));
    mix(h, u64::from_le_bytes(tail))
}

fn word(bytes: &[u8]) -> u64 {
    u64::from_ne_bytes(bytes.try_into().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #![expect(clippy::indexing_slicing, reason = "tests")]
    use super::*;

    #[test]
    fn hashes_differ_for_neighbouring_names() {
        let mut names: Vec<String> = ["", "a", "a\0", "\0a", "\0\0\0\0\0\0\0\0"]
            .map(str::to_owned)
            .to_vec();
        for rule in 0..200 {
            for result in ["allowed", "denied"] {
                names.push(format!(
                    "zero_trust.rule.ns[shop]-policy[p]-rule[{rule}].{result}"
                ));
            }
        }
        let mut hashes: Vec<u64> = names.iter().map(|n| hash(n.as_bytes())).collect();
        hashes.sort_unstable();
        hashes.dedup();
        assert_eq!(hashes.len(), names.len());
    }

    #[test]
    fn a_difference_at_any_byte_is_seen() {
        // Three blocks of 32, then words, then a tail.
        let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl".repeat(2);
        let token = token.as_str();
        assert!(bytes_eq(token.as_bytes(), token.to_owned().as_bytes()));
        for at in 0..token.len() {
            let mut other = token.as_bytes().to_vec();
            other[at] ^= 1;
            assert!(!bytes_eq(token.as_bytes(), &other), "differs at {at}");
        }
        assert!(!eq(token, &token[..token.len() - 1]));
    }

    #[test]
    fn agrees_with_the_standard_comparisons() {
        let samples = [
            "",
            "a",
            "ab",
            "abcdefg",
            "abcdefgh",
            "abcdefghi",
            "abcdefghijklmnop",
            "abcdefghijklmnoq",
            "bbcdefghijklmnop",
            "cluster.local/ns/shop/sa/web",
            "cluster.local/ns/team-1/sa/",
            "ünïcödé",
        ];
        for a in samples {
            for b in samples {
                assert_eq!(eq(a, b), a == b, "{a:?} == {b:?}");
                assert_eq!(
                    starts_with(a, b),
                    a.starts_with(b),
                    "{a:?} starts with {b:?}"
                );
                assert_eq!(ends_with(a, b), a.ends_with(b), "{a:?} ends with {b:?}");
            }
        }
    }
}
