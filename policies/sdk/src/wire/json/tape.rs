//! Building a [`Tape`]: one validating pass over JSON text (RFC 8259) that records every token
//! with its offset, and where each object and array ends.
//!
//! The format, two `u32` words per token (the `index` a host sends beside an object's text):
//! - word 0: the kind in the low 4 bits ([`Kind`]), the byte offset in the text in the high 28
//!   (of a string: its first byte after the opening quote; otherwise the token's first byte);
//! - word 1: of `{` and `[`, the token number of the matching `}` or `]`; of `}` and `]`, the
//!   token number of the matching opener; of a string, its length in bytes without the quotes;
//!   of a number, its length; of `true`, `false` and `null`, zero.
//!
//! Texts are limited to 256 MiB (28 offset bits). Nesting is not limited here (the pass keeps
//! its own stack, as serde_json does when it skips a value); reading limits it.

use super::Error;

/// The most bytes a text may have: offsets have 28 bits.
pub(super) const MAX_TEXT: usize = 1 << 28;

/// What a token is, in the low 4 bits of its first word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `{`.
    ObjectStart = 1,
    /// `}`.
    ObjectEnd = 2,
    /// `[`.
    ArrayStart = 3,
    /// `]`.
    ArrayEnd = 4,
    /// A string without escapes: its bytes are its value.
    String = 5,
    /// A string with at least one backslash escape.
    EscapedString = 6,
    /// A number.
    Number = 7,
    /// `true`.
    True = 8,
    /// `false`.
    False = 9,
    /// `null`.
    Null = 10,
}

impl Kind {
    pub(super) fn from_word(word: u32) -> Option<Self> {
        Some(match word & 0xf {
            1 => Self::ObjectStart,
            2 => Self::ObjectEnd,
            3 => Self::ArrayStart,
            4 => Self::ArrayEnd,
            5 => Self::String,
            6 => Self::EscapedString,
            7 => Self::Number,
            8 => Self::True,
            9 => Self::False,
            10 => Self::Null,
            _ => return None,
        })
    }
}

/// The tokens of one JSON text, two words each (see the module documentation).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Tape {
    pub(super) words: Vec<u32>,
}

impl std::fmt::Debug for Tape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tape({} tokens)", self.words.len() / 2)
    }
}

impl Tape {
    /// Checks that `text` is exactly one JSON value (surrounded by whitespace at most) and
    /// records its tokens.
    ///
    /// # Errors
    /// [`Error`] with the byte offset of the first problem, as serde_json would refuse it.
    pub fn build(text: &str) -> Result<Self, Error> {
        if text.len() > MAX_TEXT {
            return Err(Error::at(0, "the JSON text is larger than 256 MiB"));
        }
        let mut builder = Builder {
            bytes: text.as_bytes(),
            pos: 0,
            words: Vec::with_capacity(text.len() / 4),
            open: Vec::new(),
        };
        builder.value()?;
        builder.skip_whitespace();
        if builder.pos < builder.bytes.len() {
            return Err(Error::at(builder.pos, "trailing characters"));
        }
        Ok(Self {
            words: builder.words,
        })
    }

    /// The tape's words, for a host to send beside the text.
    #[must_use]
    pub fn words(&self) -> &[u32] {
        &self.words
    }

    /// A tape its producer vouches for (the host built it for this text). The deserializer
    /// checks every word it reads, so a wrong tape gives errors, never a panic.
    #[must_use]
    pub fn from_words(words: Vec<u32>) -> Self {
        Self { words }
    }

    /// The number of tokens.
    #[must_use]
    pub fn len(&self) -> usize {
        self.words.len() / 2
    }

    /// Whether the tape has no token (only a default tape has none).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }
}

/// The first position from `pos` on that holds `"`, `\\` or a control character (or the end):
/// the next quote or backslash found with `memchr` (vectorised), then the bytes before it
/// checked for control characters in one pass the compiler vectorises too.
fn skip_plain(bytes: &[u8], pos: usize) -> usize {
    let rest = bytes.get(pos..).unwrap_or_default();
    let special = memchr::memchr2(b'"', b'\\', rest).unwrap_or(rest.len());
    let plain = rest.get(..special).unwrap_or_default();
    let control = if plain.iter().any(|&b| b < 0x20) {
        plain.iter().position(|&b| b < 0x20).unwrap_or(special)
    } else {
        special
    };
    pos.saturating_add(control)
}

/// The words of the value whose tokens are `start..=end` and whose text starts at byte `base`:
/// offsets and token numbers made relative to it, as if it had been built on its own; as
/// little-endian bytes, how the tape reader hands a value's tape over.
pub(super) fn slice(words: &[u32], start: usize, end: usize, base: usize) -> Vec<u8> {
    let base = u32::try_from(base).unwrap_or(u32::MAX) << 4;
    let first = u32::try_from(start).unwrap_or(u32::MAX);
    let words = words
        .get(start.saturating_mul(2)..end.saturating_add(1).saturating_mul(2))
        .unwrap_or_default();
    let mut out = Vec::with_capacity(words.len().saturating_mul(4));
    for pair in words.chunks_exact(2) {
        let (Some(&w0), Some(&w1)) = (pair.first(), pair.get(1)) else {
            continue;
        };
        let linked = matches!(
            Kind::from_word(w0),
            Some(Kind::ObjectStart | Kind::ObjectEnd | Kind::ArrayStart | Kind::ArrayEnd)
        );
        out.extend_from_slice(&w0.wrapping_sub(base).to_le_bytes());
        let w1 = if linked { w1.wrapping_sub(first) } else { w1 };
        out.extend_from_slice(&w1.to_le_bytes());
    }
    out
}

struct Builder<'a> {
    bytes: &'a [u8],
    pos: usize,
    words: Vec<u32>,
    /// Token numbers of the objects and arrays not closed yet.
    open: Vec<usize>,
}

impl Builder<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.pos = self.pos.wrapping_add(1);
        }
    }

    /// The number the next token gets.
    fn next_token(&self) -> usize {
        self.words.len() / 2
    }

    fn push(&mut self, kind: Kind, offset: usize, extra: u32) {
        // Offsets fit in 28 bits: the text is at most MAX_TEXT bytes long.
        let offset = u32::try_from(offset).unwrap_or(u32::MAX);
        self.words.push(offset << 4 | kind as u32);
        self.words.push(extra);
    }

    /// Sets word 1 of token `token`.
    fn link(&mut self, token: usize, to: usize) {
        if let Some(word) = self
            .words
            .get_mut(token.saturating_mul(2).saturating_add(1))
        {
            *word = u32::try_from(to).unwrap_or(u32::MAX);
        }
    }

    /// One value and everything inside it, iteratively (no recursion, whatever the depth).
    fn value(&mut self) -> Result<(), Error> {
        // After a value inside a container: `,` or its end.
        loop {
            self.skip_whitespace();
            let start = self.pos;
            match self.peek() {
                Some(b'{') => {
                    self.open_container(Kind::ObjectStart)?;
                    self.skip_whitespace();
                    if self.peek() == Some(b'}') {
                        self.close_container(Kind::ObjectEnd);
                    } else {
                        self.key()?;
                        continue;
                    }
                }
                Some(b'[') => {
                    self.open_container(Kind::ArrayStart)?;
                    self.skip_whitespace();
                    if self.peek() == Some(b']') {
                        self.close_container(Kind::ArrayEnd);
                    } else {
                        continue;
                    }
                }
                Some(b'"') => self.string()?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                Some(b't') => self.literal(b"true", Kind::True)?,
                Some(b'f') => self.literal(b"false", Kind::False)?,
                Some(b'n') => self.literal(b"null", Kind::Null)?,
                Some(_) => return Err(Error::at(start, "expected value")),
                None => return Err(Error::at(start, "EOF while parsing a value")),
            }
            // The value is complete: continue the innermost container, or finish.
            loop {
                let Some(&container) = self.open.last() else {
                    return Ok(());
                };
                let is_object = self.kind_of(container) == Some(Kind::ObjectStart);
                self.skip_whitespace();
                match (self.peek(), is_object) {
                    (Some(b','), true) => {
                        self.pos = self.pos.wrapping_add(1);
                        self.skip_whitespace();
                        self.key()?;
                        break;
                    }
                    (Some(b','), false) => {
                        self.pos = self.pos.wrapping_add(1);
                        self.skip_whitespace();
                        if self.peek() == Some(b']') {
                            return Err(Error::at(self.pos, "trailing comma"));
                        }
                        break;
                    }
                    (Some(b'}'), true) => self.close_container(Kind::ObjectEnd),
                    (Some(b']'), false) => self.close_container(Kind::ArrayEnd),
                    (Some(_), true) => {
                        return Err(Error::at(self.pos, "expected `,` or `}`"));
                    }
                    (Some(_), false) => {
                        return Err(Error::at(self.pos, "expected `,` or `]`"));
                    }
                    (None, true) => return Err(Error::at(self.pos, "EOF while parsing an object")),
                    (None, false) => return Err(Error::at(self.pos, "EOF while parsing a list")),
                }
            }
        }
    }

    fn kind_of(&self, token: usize) -> Option<Kind> {
        self.words
            .get(token.saturating_mul(2))
            .and_then(|w| Kind::from_word(*w))
    }

    fn open_container(&mut self, kind: Kind) -> Result<(), Error> {
        self.open.push(self.next_token());
        self.push(kind, self.pos, 0);
        self.pos = self.pos.wrapping_add(1);
        Ok(())
    }

    fn close_container(&mut self, kind: Kind) {
        let opener = self.open.pop().unwrap_or_default();
        let closer = self.next_token();
        self.push(kind, self.pos, u32::try_from(opener).unwrap_or(u32::MAX));
        self.link(opener, closer);
        self.pos = self.pos.wrapping_add(1);
    }

    /// A member's key and its colon; the value follows.
    fn key(&mut self) -> Result<(), Error> {
        match self.peek() {
            Some(b'"') => self.string()?,
            Some(b'}') => return Err(Error::at(self.pos, "trailing comma")),
            Some(_) => return Err(Error::at(self.pos, "key must be a string")),
            None => return Err(Error::at(self.pos, "EOF while parsing an object")),
        }
        self.skip_whitespace();
        match self.peek() {
            Some(b':') => {
                self.pos = self.pos.wrapping_add(1);
                Ok(())
            }
            Some(_) => Err(Error::at(self.pos, "expected `:`")),
            None => Err(Error::at(self.pos, "EOF while parsing an object")),
        }
    }

    fn string(&mut self) -> Result<(), Error> {
        let start = self.pos.wrapping_add(1);
        let mut pos = start;
        let mut escaped = false;
        loop {
            pos = skip_plain(self.bytes, pos);
            match self.bytes.get(pos) {
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    pos = self.escape(pos)?;
                }
                Some(0..0x20) => {
                    return Err(Error::at(
                        pos,
                        "control character (\\u0000-\\u001F) found while parsing a string",
                    ));
                }
                Some(_) => pos = pos.wrapping_add(1),
                None => return Err(Error::at(pos, "EOF while parsing a string")),
            }
        }
        let kind = if escaped {
            Kind::EscapedString
        } else {
            Kind::String
        };
        let length = u32::try_from(pos.wrapping_sub(start)).unwrap_or(u32::MAX);
        self.push(kind, start, length);
        self.pos = pos.wrapping_add(1);
        Ok(())
    }

    /// Checks the escape at `pos` (a backslash); returns the position after it.
    fn escape(&self, pos: usize) -> Result<usize, Error> {
        let at = pos.wrapping_add(1);
        match self.bytes.get(at) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(at.wrapping_add(1)),
            Some(b'u') => {
                for i in 1..=4 {
                    match self.bytes.get(at.wrapping_add(i)) {
                        Some(b) if b.is_ascii_hexdigit() => {}
                        Some(_) => {
                            return Err(Error::at(at.wrapping_add(i), "invalid escape"));
                        }
                        None => {
                            return Err(Error::at(
                                at.wrapping_add(i),
                                "EOF while parsing a string",
                            ));
                        }
                    }
                }
                Ok(at.wrapping_add(5))
            }
            Some(_) => Err(Error::at(at, "invalid escape")),
            None => Err(Error::at(at, "EOF while parsing a string")),
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Result<(), Error> {
        let start = self.pos;
        let mut pos = start;
        if self.bytes.get(pos) == Some(&b'-') {
            pos = pos.wrapping_add(1);
        }
        match self.bytes.get(pos) {
            Some(b'0') => {
                pos = pos.wrapping_add(1);
                if let Some(b'0'..=b'9') = self.bytes.get(pos) {
                    return Err(Error::at(pos, "invalid number"));
                }
            }
            Some(b'1'..=b'9') => pos = self.digits(pos),
            Some(_) => return Err(Error::at(pos, "invalid number")),
            None => return Err(Error::at(pos, "EOF while parsing a value")),
        }
        if self.bytes.get(pos) == Some(&b'.') {
            pos = pos.wrapping_add(1);
            match self.bytes.get(pos) {
                Some(b'0'..=b'9') => pos = self.digits(pos),
                Some(_) => return Err(Error::at(pos, "invalid number")),
                None => return Err(Error::at(pos, "EOF while parsing a value")),
            }
        }
        if let Some(b'e' | b'E') = self.bytes.get(pos) {
            pos = pos.wrapping_add(1);
            if let Some(b'+' | b'-') = self.bytes.get(pos) {
                pos = pos.wrapping_add(1);
            }
            match self.bytes.get(pos) {
                Some(b'0'..=b'9') => pos = self.digits(pos),
                Some(_) => return Err(Error::at(pos, "invalid number")),
                None => return Err(Error::at(pos, "EOF while parsing a value")),
            }
        }
        let length = u32::try_from(pos.wrapping_sub(start)).unwrap_or(u32::MAX);
        self.push(Kind::Number, start, length);
        self.pos = pos;
        Ok(())
    }

    fn digits(&self, mut pos: usize) -> usize {
        while let Some(b'0'..=b'9') = self.bytes.get(pos) {
            pos = pos.wrapping_add(1);
        }
        pos
    }

    fn literal(&mut self, word: &[u8], kind: Kind) -> Result<(), Error> {
        let end = self.pos.saturating_add(word.len());
        match self.bytes.get(self.pos..end) {
            Some(found) if found == word => {
                self.push(kind, self.pos, 0);
                self.pos = end;
                Ok(())
            }
            Some(_) => Err(Error::at(self.pos, "expected value")),
            None => Err(Error::at(self.pos, "EOF while parsing a value")),
        }
    }
}
