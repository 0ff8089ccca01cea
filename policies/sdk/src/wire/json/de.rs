//! A serde `Deserializer` over a [`Tape`](super::Tape): values are read from the tokens the tape
//! recorded, strings borrowed from the text when they have no escapes, and a value nobody reads
//! (`IgnoredAny`, an unknown field) is skipped in one step to the end the tape recorded.
//!
//! It gives visitors what serde_json gives them for the same text: maps for objects, sequences
//! for arrays, `u64` for non-negative integers, `i64` for negative ones, `f64` for the rest
//! (and for `-0` and integers too large for 64 bits), unit for `null`, enums from strings or
//! single-member objects, `Option` from `null` or a value.

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use super::Error;
use super::tape::Kind;

/// The newtype-struct name by which [`RawJson`](crate::wire::RawJson) asks for its value's
/// text and tape; other deserializers (serde_json's) just hand it their own value.
pub(crate) const RAW_TOKEN: &str = "$palisade::wire::RawJson";
/// The member names under which the text and the tape are handed over.
pub(crate) const RAW_TEXT: &str = "$text";
pub(crate) const RAW_TAPE: &str = "$tape";

/// Reads values from a text and its tape, one token after another.
pub(crate) struct Deserializer<'de, 't> {
    text: &'de str,
    words: &'t [u32],
    /// The next token to read.
    token: usize,
    /// Objects and arrays that may still be entered (serde_json's recursion limit): reading
    /// recurses once per level, and a guest's stack is small.
    depth: u8,
}

/// How deep values nest at most when read: 127 levels, as serde_json reads.
const MAX_DEPTH: u8 = 127;

/// One token: its kind, byte offset, and second word.
#[derive(Clone, Copy)]
struct Token {
    kind: Kind,
    offset: usize,
    extra: u32,
}

impl<'de, 't> Deserializer<'de, 't> {
    pub(crate) fn new(text: &'de str, words: &'t [u32]) -> Self {
        Self {
            text,
            words,
            token: 0,
            depth: MAX_DEPTH,
        }
    }

    /// Whether every token was read.
    pub(crate) fn at_end(&self) -> bool {
        self.token.saturating_mul(2) >= self.words.len()
    }

    fn get(&self, token: usize) -> Result<Token, Error> {
        let index = token.saturating_mul(2);
        let (Some(&w0), Some(&w1)) = (self.words.get(index), self.words.get(index.wrapping_add(1)))
        else {
            return Err(Error::new("EOF while parsing a value"));
        };
        let kind = Kind::from_word(w0).ok_or_else(|| Error::new("the JSON tape is corrupt"))?;
        Ok(Token {
            kind,
            offset: usize::try_from(w0 >> 4).unwrap_or(usize::MAX),
            extra: w1,
        })
    }

    fn peek(&self) -> Result<Token, Error> {
        self.get(self.token)
    }

    fn enter(&mut self) -> Result<(), Error> {
        self.depth = self
            .depth
            .checked_sub(1)
            .ok_or_else(|| Error::new("recursion limit exceeded"))?;
        Ok(())
    }

    fn advance(&mut self) {
        self.token = self.token.wrapping_add(1);
    }

    /// The token number of the end of the container that starts with `token`.
    fn end_of(&self, token: Token) -> Result<usize, Error> {
        let end = usize::try_from(token.extra).unwrap_or(usize::MAX);
        if end <= self.token {
            return Err(Error::new("the JSON tape is corrupt"));
        }
        Ok(end)
    }

    fn text(&self, offset: usize, length: usize) -> Result<&'de str, Error> {
        self.text
            .get(offset..offset.saturating_add(length))
            .ok_or_else(|| Error::new("the JSON tape does not fit its text"))
    }

    /// Moves past the value at the current token.
    fn skip(&mut self) -> Result<(), Error> {
        let token = self.peek()?;
        self.token = match token.kind {
            Kind::ObjectStart | Kind::ArrayStart => self.end_of(token)?.wrapping_add(1),
            _ => self.token.wrapping_add(1),
        };
        Ok(())
    }

    /// The byte range of the value at the current token, and the token it ends with.
    fn span(&self) -> Result<(usize, usize, usize), Error> {
        let token = self.peek()?;
        let length = |t: Token| -> usize {
            match t.kind {
                Kind::ObjectEnd | Kind::ArrayEnd => 1,
                Kind::Number => usize::try_from(t.extra).unwrap_or(usize::MAX),
                Kind::True | Kind::Null => 4,
                Kind::False => 5,
                _ => 0,
            }
        };
        Ok(match token.kind {
            Kind::ObjectStart | Kind::ArrayStart => {
                let end = self.end_of(token)?;
                let last = self.get(end)?;
                (token.offset, last.offset.saturating_add(1), end)
            }
            Kind::String | Kind::EscapedString => {
                let length = usize::try_from(token.extra).unwrap_or(usize::MAX);
                (
                    token.offset.saturating_sub(1),
                    token.offset.saturating_add(length).saturating_add(1),
                    self.token,
                )
            }
            _ => (
                token.offset,
                token.offset.saturating_add(length(token)),
                self.token,
            ),
        })
    }
}

impl<'de> de::Deserializer<'de> for &mut Deserializer<'de, '_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let token = self.peek()?;
        match token.kind {
            Kind::ObjectStart => {
                let end = self.end_of(token)?;
                self.enter()?;
                self.advance();
                let value = visitor.visit_map(Members { de: self, end });
                self.depth = self.depth.saturating_add(1);
                self.token = end.wrapping_add(1);
                value
            }
            Kind::ArrayStart => {
                let end = self.end_of(token)?;
                self.enter()?;
                self.advance();
                let value = visitor.visit_seq(Elements { de: self, end });
                self.depth = self.depth.saturating_add(1);
                self.token = end.wrapping_add(1);
                value
            }
            Kind::String => {
                let text = self.text(token.offset, usize::try_from(token.extra).unwrap_or(0))?;
                self.advance();
                visitor.visit_borrowed_str(text)
            }
            Kind::EscapedString => {
                let raw = self.text(token.offset, usize::try_from(token.extra).unwrap_or(0))?;
                self.advance();
                visitor.visit_string(unescape(raw)?)
            }
            Kind::Number => {
                let text = self.text(token.offset, usize::try_from(token.extra).unwrap_or(0))?;
                self.advance();
                visit_number(text, visitor)
            }
            Kind::True => {
                self.advance();
                visitor.visit_bool(true)
            }
            Kind::False => {
                self.advance();
                visitor.visit_bool(false)
            }
            Kind::Null => {
                self.advance();
                visitor.visit_unit()
            }
            Kind::ObjectEnd | Kind::ArrayEnd => Err(Error::new("expected value")),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.peek()?.kind == Kind::Null {
            self.advance();
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.peek()?.kind == Kind::Null {
            self.advance();
            visitor.visit_unit()
        } else {
            self.deserialize_any(visitor)
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.skip()?;
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        if name != RAW_TOKEN {
            return visitor.visit_newtype_struct(self);
        }
        let (start, end, last) = self.span()?;
        let text = self.text(start, end.saturating_sub(start))?;
        let first = self.token;
        self.token = last.wrapping_add(1);
        visitor.visit_map(Raw {
            text: Some(text),
            tape: Some(RawTape {
                words: self.words,
                first,
                last,
                base: start,
            }),
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let token = self.peek()?;
        match token.kind {
            Kind::String | Kind::EscapedString => {
                let variant: String = de::Deserialize::deserialize(&mut *self)?;
                visitor.visit_enum(variant.into_deserializer())
            }
            Kind::ObjectStart => {
                let end = self.end_of(token)?;
                self.advance();
                let value = visitor.visit_enum(Variant { de: self })?;
                if self.token != end {
                    return Err(Error::new("expected `}` after the enum's single member"));
                }
                self.token = end.wrapping_add(1);
                Ok(value)
            }
            _ => Err(Error::new("expected a string or an object for an enum")),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf seq tuple tuple_struct map struct identifier
    }
}

/// Calls the visitor as serde_json does for a number token.
fn visit_number<'de, V: Visitor<'de>>(text: &str, visitor: V) -> Result<V::Value, Error> {
    // serde_json's own float reading: it rounds some long fractions differently from
    // `str::parse`, and the values must be the same.
    let float = || -> Result<f64, Error> {
        serde_json::from_str::<f64>(text).map_err(|_| Error::new("number out of range"))
    };
    if text.contains(['.', 'e', 'E']) {
        return visitor.visit_f64(float()?);
    }
    if text.starts_with('-') {
        return match text.parse::<i64>() {
            // serde_json reads `-0` as a float.
            Ok(0) => visitor.visit_f64(-0.0),
            Ok(value) => visitor.visit_i64(value),
            Err(_) => visitor.visit_f64(float()?),
        };
    }
    match text.parse::<u64>() {
        Ok(value) => visitor.visit_u64(value),
        Err(_) => visitor.visit_f64(float()?),
    }
}

/// The value of a string with escapes (RFC 8259 section 7).
fn unescape(raw: &str) -> Result<String, Error> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('\\') {
        out.push_str(rest.get(..at).unwrap_or_default());
        let escape = rest.get(at..).unwrap_or_default();
        let mut chars = escape.chars();
        chars.next();
        let consumed = match chars.next() {
            Some('"') => push(&mut out, '"'),
            Some('\\') => push(&mut out, '\\'),
            Some('/') => push(&mut out, '/'),
            Some('b') => push(&mut out, '\u{8}'),
            Some('f') => push(&mut out, '\u{c}'),
            Some('n') => push(&mut out, '\n'),
            Some('r') => push(&mut out, '\r'),
            Some('t') => push(&mut out, '\t'),
            Some('u') => {
                let first = hex4(escape.get(2..6))?;
                if (0xD800..0xDC00).contains(&first) {
                    // A leading surrogate must be followed by `\u` and a trailing one.
                    if escape.get(6..8) != Some("\\u") {
                        return Err(Error::new("lone leading surrogate in hex escape"));
                    }
                    let second = hex4(escape.get(8..12))?;
                    if !(0xDC00..0xE000).contains(&second) {
                        return Err(Error::new("lone leading surrogate in hex escape"));
                    }
                    let code = 0x10000_u32
                        .wrapping_add((first.wrapping_sub(0xD800)) << 10)
                        .wrapping_add(second.wrapping_sub(0xDC00));
                    out.push(char::from_u32(code).ok_or_else(|| Error::new("invalid escape"))?);
                    12
                } else if (0xDC00..0xE000).contains(&first) {
                    return Err(Error::new("lone trailing surrogate in hex escape"));
                } else {
                    out.push(char::from_u32(first).ok_or_else(|| Error::new("invalid escape"))?);
                    6
                }
            }
            _ => return Err(Error::new("invalid escape")),
        };
        rest = escape.get(consumed..).unwrap_or_default();
    }
    out.push_str(rest);
    Ok(out)
}

/// Pushes `c` for a two-character escape; returns the escape's length.
fn push(out: &mut String, c: char) -> usize {
    out.push(c);
    2
}

fn hex4(digits: Option<&str>) -> Result<u32, Error> {
    digits
        .and_then(|d| u32::from_str_radix(d, 16).ok())
        .ok_or_else(|| Error::new("invalid escape"))
}

/// The members of an object, up to its end token.
struct Members<'a, 'de, 't> {
    de: &'a mut Deserializer<'de, 't>,
    end: usize,
}

impl<'de> de::MapAccess<'de> for Members<'_, 'de, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        if self.de.token >= self.end {
            return Ok(None);
        }
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        seed.deserialize(&mut *self.de)
    }
}

/// The elements of an array, up to its end token.
struct Elements<'a, 'de, 't> {
    de: &'a mut Deserializer<'de, 't>,
    end: usize,
}

impl<'de> de::SeqAccess<'de> for Elements<'_, 'de, '_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if self.de.token >= self.end {
            return Ok(None);
        }
        seed.deserialize(&mut *self.de).map(Some)
    }
}

/// An enum written as an object with one member: `{"Variant": value}`.
struct Variant<'a, 'de, 't> {
    de: &'a mut Deserializer<'de, 't>,
}

impl<'de> de::EnumAccess<'de> for Variant<'_, 'de, '_> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Error> {
        let variant = seed.deserialize(&mut *self.de)?;
        Ok((variant, self))
    }
}

impl<'de> de::VariantAccess<'de> for Variant<'_, 'de, '_> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        de::Deserialize::deserialize(self.de)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self.de)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_seq(self.de, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_map(self.de, visitor)
    }
}

/// A value's own text and tape, handed to [`RawJson`](crate::wire::RawJson) as two members.
struct Raw<'de, 't> {
    text: Option<&'de str>,
    tape: Option<RawTape<'t>>,
}

/// The tokens `first..=last` of a tape, to be made relative to the byte `base`.
#[derive(Clone, Copy)]
struct RawTape<'t> {
    words: &'t [u32],
    first: usize,
    last: usize,
    base: usize,
}

impl<'de> de::MapAccess<'de> for Raw<'de, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let key = if self.text.is_some() {
            RAW_TEXT
        } else if self.tape.is_some() {
            RAW_TAPE
        } else {
            return Ok(None);
        };
        seed.deserialize(de::value::BorrowedStrDeserializer::new(key))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        if let Some(text) = self.text.take() {
            return seed.deserialize(de::value::BorrowedStrDeserializer::new(text));
        }
        let Some(tape) = self.tape.take() else {
            return Err(Error::new("no value left"));
        };
        // Handed over as little-endian bytes: one buffer, not a sequence of numbers.
        let bytes = super::tape::slice(tape.words, tape.first, tape.last, tape.base);
        seed.deserialize(de::value::BytesDeserializer::new(&bytes))
    }
}
