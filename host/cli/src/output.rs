//! What the command prints: results on stdout, summaries and errors on stderr. Printing never
//! panics: a stdout that fails is an error (a closed pipe ends the command quietly, as other
//! Unix tools end; anything else, a full disk, is reported and exits 2); a stderr that fails
//! has nowhere to be reported, so its errors are dropped.

use std::fmt::Display;
use std::io::Write;

/// Writing the command's results to stdout failed.
#[derive(Debug, thiserror::Error)]
#[error("writing to stdout")]
pub(crate) struct StdoutError(#[source] pub(crate) std::io::Error);

impl StdoutError {
    /// Whether the reader went away (`| head`): nothing to report.
    pub(crate) fn is_closed_pipe(&self) -> bool {
        self.0.kind() == std::io::ErrorKind::BrokenPipe
    }
}

/// Writes `text` and a newline to stdout, and flushes.
pub(crate) fn line(text: impl Display) -> Result<(), StdoutError> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")
        .and_then(|()| stdout.flush())
        .map_err(StdoutError)
}

/// Writes `text` to stdout as it is, and flushes.
pub(crate) fn text(text: impl Display) -> Result<(), StdoutError> {
    let mut stdout = std::io::stdout().lock();
    write!(stdout, "{text}")
        .and_then(|()| stdout.flush())
        .map_err(StdoutError)
}

/// Writes `text` and a newline to stderr; a failure is dropped.
pub(crate) fn note(text: impl Display) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}
