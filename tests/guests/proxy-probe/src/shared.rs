//! Helpers shared by the root and the HTTP contexts: the CAS counter on shared data, property
//! rendering and status formatting. Everything goes through `proxy_wasm::hostcalls`, whose
//! `Result`s we handle, never through the trait helpers that `unwrap()` them.

use proxy_wasm::hostcalls;
use proxy_wasm::types::{Bytes, Status};

/// Shared-data key counted by the `count` and `count-race` actions.
pub(crate) const COUNT_KEY: &str = "probe.count";
/// Shared-data key counted by `on_tick`.
pub(crate) const TICKS_KEY: &str = "probe.ticks";
/// Shared-data key counted by `on_queue_ready`, once per dequeued item.
pub(crate) const DEQUEUED_KEY: &str = "probe.dequeued";
/// How many times a CAS loop retries after `CAS_MISMATCH` before giving up.
pub(crate) const MAX_CAS_RETRIES: u32 = 10;

/// The ABI number of a status, as written in headers and logs (`error:<n>`).
pub(crate) fn status_code(status: Status) -> u32 {
    status as u32
}

/// The outcome of a CAS increment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counted {
    /// The write succeeded: the new value and how many `CAS_MISMATCH` retries it took.
    Done { value: u64, retries: u32 },
    /// Every attempt (1 + `MAX_CAS_RETRIES`) hit `CAS_MISMATCH`.
    GaveUp,
}

/// Parses a counter value as stored in shared data: decimal text; empty (the SDK's
/// `remove_shared_data` writes an empty value) counts as 0. `None` if it is not a number.
pub(crate) fn parse_counter(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() {
        return Some(0);
    }
    std::str::from_utf8(bytes).ok()?.trim().parse().ok()
}

/// Reads a counter and its CAS. Absent = 0 with no CAS; garbage counts from 0 (logged).
pub(crate) fn read_counter(key: &str) -> Result<(u64, Option<u32>), Status> {
    let (value, cas) = hostcalls::get_shared_data(key)?;
    let bytes = value.unwrap_or_default();
    let number = parse_counter(&bytes).unwrap_or_else(|| {
        log::warn!("{key} holds a non-decimal value, counting from 0");
        0
    });
    Ok((number, cas))
}

/// Writes `value + 1` with `cas`; `Ok(false)` on `CAS_MISMATCH`.
pub(crate) fn try_store(key: &str, value: u64, cas: Option<u32>) -> Result<bool, Status> {
    let next = value.saturating_add(1).to_string();
    match hostcalls::set_shared_data(key, Some(next.as_bytes()), cas) {
        Ok(()) => Ok(true),
        Err(Status::CasMismatch) => Ok(false),
        Err(other) => Err(other),
    }
}

/// Increments a decimal counter in shared data with a get/set-with-CAS loop (proxy-wasm
/// shared data: a set with a stale CAS answers `CAS_MISMATCH`, see reference 1.8).
pub(crate) fn cas_increment(key: &str) -> Result<Counted, Status> {
    let mut retries = 0;
    loop {
        let (value, cas) = read_counter(key)?;
        if try_store(key, value, cas)? {
            return Ok(Counted::Done {
                value: value.saturating_add(1),
                retries,
            });
        }
        if retries >= MAX_CAS_RETRIES {
            log::warn!("cas loop on {key} gave up after {MAX_CAS_RETRIES} retries");
            return Ok(Counted::GaveUp);
        }
        retries = retries.saturating_add(1);
    }
}

/// How Envoy encodes a property's value (reference 1.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Raw bytes.
    Str,
    /// 8 bytes little-endian, rendered in decimal.
    Int,
    /// 1 byte, rendered `true`/`false`.
    Bool,
}

/// Renders a `get_property` answer as a header value.
pub(crate) fn render_property(kind: Kind, answer: Result<Option<Bytes>, Status>) -> Bytes {
    let bytes = match answer {
        Err(status) => return format!("<error:{}>", status_code(status)).into_bytes(),
        Ok(None) => return b"<absent>".to_vec(),
        Ok(Some(bytes)) => bytes,
    };
    let bad = || format!("<bad:{} bytes>", bytes.len()).into_bytes();
    match kind {
        Kind::Str => bytes,
        Kind::Int => match <[u8; 8]>::try_from(bytes.as_slice()) {
            Ok(le) => i64::from_le_bytes(le).to_string().into_bytes(),
            Err(_) => bad(),
        },
        Kind::Bool => match bytes.as_slice() {
            [0] => b"false".to_vec(),
            [_] => b"true".to_vec(),
            _ => bad(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_parse_as_decimal_text() {
        assert_eq!(parse_counter(b""), Some(0));
        assert_eq!(parse_counter(b"41"), Some(41));
        assert_eq!(parse_counter(b"x"), None);
        assert_eq!(parse_counter(&[0xff]), None);
    }

    #[test]
    fn properties_render_as_envoy_encodes_them() {
        let port = 8080_i64.to_le_bytes().to_vec();
        assert_eq!(render_property(Kind::Int, Ok(Some(port))), b"8080");
        assert_eq!(
            render_property(Kind::Int, Ok(Some(b"8080".to_vec()))),
            b"<bad:4 bytes>"
        );
        assert_eq!(render_property(Kind::Bool, Ok(Some(vec![1]))), b"true");
        assert_eq!(render_property(Kind::Bool, Ok(Some(vec![0]))), b"false");
        assert_eq!(
            render_property(Kind::Bool, Ok(Some(vec![]))),
            b"<bad:0 bytes>"
        );
        assert_eq!(render_property(Kind::Str, Ok(Some(b"/x".to_vec()))), b"/x");
        assert_eq!(render_property(Kind::Str, Ok(None)), b"<absent>");
        assert_eq!(
            render_property(Kind::Str, Err(Status::InternalFailure)),
            b"<error:10>"
        );
    }
}
