//! Spec "Context lifecycle" and "Timers": `proxy_done`, `proxy_set_effective_context`,
//! `proxy_get_current_time_nanoseconds`, `proxy_set_tick_period_milliseconds`.

use super::memory;
use super::{Ctx, Status};

/// `proxy_done()`: the root context finished the work it delayed in `proxy_on_done`.
pub(super) fn done(caller: &mut Ctx<'_>) -> wasmtime::Result<Status> {
    let state = caller.data_mut();
    if state.effective != state.root {
        // cpp-host: only a root context may call done.
        return Ok(Status::NotFound);
    }
    state.done = true;
    Ok(Status::Ok)
}

/// `proxy_set_effective_context(id)`: later hostcalls of this callback act on `id`;
/// an unknown id is BAD_ARGUMENT.
pub(super) fn set_effective_context(caller: &mut Ctx<'_>, id: i32) -> wasmtime::Result<Status> {
    let state = caller.data_mut();
    let id = id.cast_unsigned();
    if id != state.root && !state.streams.contains_key(&id) {
        return Ok(Status::BadArgument);
    }
    state.effective = id;
    Ok(Status::Ok)
}

/// `proxy_get_current_time_nanoseconds(out)`: wall-clock time on the scenario's virtual clock.
pub(super) fn current_time(caller: &mut Ctx<'_>, out: i32) -> wasmtime::Result<Status> {
    let state = caller.data();
    let now = state.plugin.epoch_nanos.saturating_add(state.shared.now());
    Ok(memory::write_u64(caller, out, now)
        .err()
        .unwrap_or(Status::Ok))
}

/// `proxy_set_tick_period_milliseconds(ms)`: one timer per root context per VM; 0 disables.
pub(super) fn set_tick_period(caller: &mut Ctx<'_>, period: i32) -> wasmtime::Result<Status> {
    caller.data_mut().tick_period_ms = u64::from(period.cast_unsigned());
    Ok(Status::Ok)
}
