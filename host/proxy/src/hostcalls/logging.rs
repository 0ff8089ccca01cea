//! Spec "Logging": `proxy_log`, `proxy_get_log_level`.

use super::memory;
use super::{Ctx, Status};
use crate::types::LogLevel;

/// `proxy_log(level, message)`: Envoy logs to its `wasm` logger; level > 5 is BAD_ARGUMENT.
pub(super) fn log(
    caller: &mut Ctx<'_>,
    level: i32,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<Status> {
    let Some(level) = LogLevel::from_raw(level) else {
        return Ok(Status::BadArgument);
    };
    let message = match memory::read_text(caller, ptr, len) {
        Ok(m) => m,
        Err(status) => return Ok(status),
    };
    caller.data().log(level, message);
    Ok(Status::Ok)
}

/// `proxy_get_log_level(out)`: the level of Envoy's `wasm` logger.
pub(super) fn get_log_level(caller: &mut Ctx<'_>, out: i32) -> wasmtime::Result<Status> {
    let level = caller.data().plugin.log_level.raw();
    Ok(memory::write_u32(caller, out, level.cast_unsigned())
        .err()
        .unwrap_or(Status::Ok))
}
