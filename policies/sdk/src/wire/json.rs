//! JSON read once, typed and borrowed. A [`Tape`] records, in one validating pass over the
//! text, every token and where each object and array ends; values are then read from the tape
//! into a policy's own types, strings borrowed from the text, and whatever the types do not
//! read (most of a Kubernetes object) skipped in one step each. A host builds the tape of a
//! request while reading the review and sends it with the object's text, so a policy in wasm
//! reads the object without scanning its JSON again.
//!
//! Reading from a tape gives the same values as serde_json for the same text; only error
//! messages differ (callers that show them to people read the text with serde_json again).

mod de;
mod tape;

pub use tape::Tape;

pub(crate) use de::{RAW_TAPE, RAW_TEXT, RAW_TOKEN};
use serde::Deserialize;

/// Why JSON text or a tape could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
    offset: Option<usize>,
}

impl Error {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            offset: None,
        }
    }

    fn at(offset: usize, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            offset: Some(offset),
        }
    }

    /// The byte offset in the text where the problem is, when known.
    #[must_use]
    pub fn offset(&self) -> Option<usize> {
        self.offset
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.offset {
            Some(offset) => write!(f, "{} at byte {offset}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {}

impl serde::de::Error for Error {
    fn custom<T: std::fmt::Display>(message: T) -> Self {
        Self::new(message.to_string())
    }
}

/// Reads a `T` from `text` through its `tape` (built for this text).
///
/// ```
/// use palisade_sdk::wire::json::{Tape, from_tape};
/// #[derive(serde::Deserialize)]
/// struct Container<'a> { name: &'a str }
/// let text = r#"{"name": "web", "env": [{"name": "A", "value": "1"}], "image": "nginx"}"#;
/// let tape = Tape::build(text).unwrap();
/// let container: Container = from_tape(text, &tape).unwrap();
/// assert_eq!(container.name, "web");
/// ```
///
/// # Errors
/// [`Error`] when the value does not fit `T`, or the tape does not fit the text.
pub fn from_tape<'a, T: Deserialize<'a>>(text: &'a str, tape: &Tape) -> Result<T, Error> {
    let mut deserializer = de::Deserializer::new(text, &tape.words);
    let value = T::deserialize(&mut deserializer)?;
    if !deserializer.at_end() {
        return Err(Error::new("trailing tokens after the value"));
    }
    Ok(value)
}

/// Checks `text` and reads a `T` from it: one pass to build the tape, then the typed read.
///
/// # Errors
/// [`Error`] when the text is not JSON or does not fit `T`.
pub fn from_str<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, Error> {
    from_tape(text, &Tape::build(text)?)
}

#[cfg(test)]
mod tests;
