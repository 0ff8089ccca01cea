//! The host functions a proxy-wasm module imports, one module per section of the ABI spec
//! (v0.2.1), linked under `env`, plus the WASI preview1 subset under both WASI module names.
//! Every function returns Envoy's status for each case: the Rust SDK panics on any other.

mod buffers;
mod callouts;
mod headers;
mod lifecycle;
mod logging;
mod metrics;
mod properties;
mod shared_data;
mod stream;
mod wasi;

use wasmtime::{Caller, Linker};

use super::state::VmState;
use super::types::Status;

/// The caller every host function gets.
pub(crate) type Ctx<'a> = Caller<'a, VmState>;

/// Every `env` function this host links (ABI 0.2.1; 0.2.0 lacks `proxy_get_log_level`).
pub(crate) const ENV_FUNCTIONS: [&str; 39] = [
    "proxy_log",
    "proxy_get_log_level",
    "proxy_done",
    "proxy_set_effective_context",
    "proxy_get_current_time_nanoseconds",
    "proxy_set_tick_period_milliseconds",
    "proxy_get_buffer_bytes",
    "proxy_set_buffer_bytes",
    "proxy_get_buffer_status",
    "proxy_get_header_map_pairs",
    "proxy_set_header_map_pairs",
    "proxy_get_header_map_value",
    "proxy_add_header_map_value",
    "proxy_replace_header_map_value",
    "proxy_remove_header_map_value",
    "proxy_get_header_map_size",
    "proxy_continue_stream",
    "proxy_close_stream",
    "proxy_send_local_response",
    "proxy_get_status",
    "proxy_http_call",
    "proxy_grpc_call",
    "proxy_grpc_stream",
    "proxy_grpc_send",
    "proxy_grpc_cancel",
    "proxy_grpc_close",
    "proxy_get_shared_data",
    "proxy_set_shared_data",
    "proxy_register_shared_queue",
    "proxy_resolve_shared_queue",
    "proxy_enqueue_shared_queue",
    "proxy_dequeue_shared_queue",
    "proxy_define_metric",
    "proxy_increment_metric",
    "proxy_record_metric",
    "proxy_get_metric",
    "proxy_get_property",
    "proxy_set_property",
    "proxy_call_foreign_function",
];

/// The WASI module names cpp-host serves the same functions under.
pub(crate) const WASI_MODULES: [&str; 2] = ["wasi_snapshot_preview1", "wasi_unstable"];

/// Links one `env` function: counts it, enforces the start-up restriction, traces its status.
macro_rules! env {
    ($linker:ident, $name:literal, $f:path, ($($arg:ident : $ty:ty),*)) => {
        $linker.func_wrap(
            "env",
            $name,
            |mut caller: Ctx<'_>, $($arg: $ty),*| -> wasmtime::Result<i32> {
                caller.data_mut().enter($name)?;
                let started = std::time::Instant::now();
                let status: Status = $f(&mut caller, $($arg),*)?;
                let state = caller.data_mut();
                state.hostcall_time = state.hostcall_time.saturating_add(started.elapsed());
                state.traced($name, &[$(i64::from($arg)),*], status);
                Ok(status as i32)
            },
        )?;
    };
}

/// Adds every host function to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<VmState>) -> wasmtime::Result<()> {
    env!(linker, "proxy_log", logging::log, (level: i32, ptr: i32, len: i32));
    env!(linker, "proxy_get_log_level", logging::get_log_level, (out: i32));
    env!(linker, "proxy_done", lifecycle::done, ());
    env!(linker, "proxy_set_effective_context", lifecycle::set_effective_context, (id: i32));
    env!(linker, "proxy_get_current_time_nanoseconds", lifecycle::current_time, (out: i32));
    env!(linker, "proxy_set_tick_period_milliseconds", lifecycle::set_tick_period, (period: i32));
    env!(linker, "proxy_get_buffer_bytes", buffers::get, (kind: i32, start: i32, max: i32, ptr_out: i32, size_out: i32));
    env!(linker, "proxy_set_buffer_bytes", buffers::set, (kind: i32, start: i32, size: i32, ptr: i32, len: i32));
    env!(linker, "proxy_get_buffer_status", buffers::status, (kind: i32, len_out: i32, flags_out: i32));
    env!(linker, "proxy_get_header_map_pairs", headers::get_pairs, (map: i32, ptr_out: i32, size_out: i32));
    env!(linker, "proxy_set_header_map_pairs", headers::set_pairs, (map: i32, ptr: i32, len: i32));
    env!(linker, "proxy_get_header_map_value", headers::get_value, (map: i32, key: i32, key_len: i32, ptr_out: i32, size_out: i32));
    env!(linker, "proxy_add_header_map_value", headers::add_value, (map: i32, key: i32, key_len: i32, value: i32, value_len: i32));
    env!(linker, "proxy_replace_header_map_value", headers::replace_value, (map: i32, key: i32, key_len: i32, value: i32, value_len: i32));
    env!(linker, "proxy_remove_header_map_value", headers::remove_value, (map: i32, key: i32, key_len: i32));
    env!(linker, "proxy_get_header_map_size", headers::size, (map: i32, out: i32));
    env!(linker, "proxy_continue_stream", stream::continue_stream, (kind: i32));
    env!(linker, "proxy_close_stream", stream::close_stream, (kind: i32));
    env!(linker, "proxy_send_local_response", stream::send_local_response, (code: i32, details: i32, details_len: i32, body: i32, body_len: i32, headers: i32, headers_len: i32, grpc_status: i32));
    env!(linker, "proxy_get_status", stream::get_status, (code_out: i32, ptr_out: i32, size_out: i32));
    env!(linker, "proxy_http_call", callouts::http_call, (upstream: i32, upstream_len: i32, headers: i32, headers_len: i32, body: i32, body_len: i32, trailers: i32, trailers_len: i32, timeout: i32, token_out: i32));
    env!(linker, "proxy_grpc_call", callouts::grpc_call, (upstream: i32, upstream_len: i32, service: i32, service_len: i32, method: i32, method_len: i32, metadata: i32, metadata_len: i32, message: i32, message_len: i32, timeout: i32, token_out: i32));
    env!(linker, "proxy_grpc_stream", callouts::grpc_stream, (upstream: i32, upstream_len: i32, service: i32, service_len: i32, method: i32, method_len: i32, metadata: i32, metadata_len: i32, token_out: i32));
    env!(linker, "proxy_grpc_send", callouts::grpc_send, (token: i32, message: i32, message_len: i32, end: i32));
    env!(linker, "proxy_grpc_cancel", callouts::grpc_cancel, (token: i32));
    env!(linker, "proxy_grpc_close", callouts::grpc_cancel, (token: i32));
    env!(linker, "proxy_get_shared_data", shared_data::get, (key: i32, key_len: i32, ptr_out: i32, size_out: i32, cas_out: i32));
    env!(linker, "proxy_set_shared_data", shared_data::set, (key: i32, key_len: i32, value: i32, value_len: i32, cas: i32));
    env!(linker, "proxy_register_shared_queue", shared_data::register_queue, (name: i32, name_len: i32, token_out: i32));
    env!(linker, "proxy_resolve_shared_queue", shared_data::resolve_queue, (vm_id: i32, vm_id_len: i32, name: i32, name_len: i32, token_out: i32));
    env!(linker, "proxy_enqueue_shared_queue", shared_data::enqueue, (token: i32, value: i32, value_len: i32));
    env!(linker, "proxy_dequeue_shared_queue", shared_data::dequeue, (token: i32, ptr_out: i32, size_out: i32));
    env!(linker, "proxy_define_metric", metrics::define, (kind: i32, name: i32, name_len: i32, id_out: i32));
    env!(linker, "proxy_increment_metric", metrics::increment, (id: i32, delta: i64));
    env!(linker, "proxy_record_metric", metrics::record, (id: i32, value: i64));
    env!(linker, "proxy_get_metric", metrics::get, (id: i32, out: i32));
    env!(linker, "proxy_get_property", properties::get, (path: i32, path_len: i32, ptr_out: i32, size_out: i32));
    env!(linker, "proxy_set_property", properties::set, (path: i32, path_len: i32, value: i32, value_len: i32));
    env!(linker, "proxy_call_foreign_function", properties::call_foreign, (name: i32, name_len: i32, args: i32, args_len: i32, ptr_out: i32, size_out: i32));
    for module in WASI_MODULES {
        wasi::add(linker, module)?;
    }
    Ok(())
}

/// Guest memory access: every pointer the guest passes is checked; a bad one is
/// INVALID_MEMORY_ACCESS, never a host panic.
pub(crate) mod memory {
    use super::{Ctx, Status};

    fn range(ptr: i32, len: i32) -> Option<std::ops::Range<usize>> {
        let start = usize::try_from(ptr.cast_unsigned()).ok()?;
        let len = usize::try_from(len.cast_unsigned()).ok()?;
        Some(start..start.checked_add(len)?)
    }

    /// Copies `len` bytes at `ptr` out of the guest.
    pub(crate) fn read(caller: &Ctx<'_>, ptr: i32, len: i32) -> Result<Vec<u8>, Status> {
        let memory = caller.data().memory.ok_or(Status::InvalidMemoryAccess)?;
        range(ptr, len)
            .and_then(|r| memory.data(caller).get(r))
            .map(<[u8]>::to_vec)
            .ok_or(Status::InvalidMemoryAccess)
    }

    /// Reads guest bytes as (lossy) text.
    pub(crate) fn read_text(caller: &Ctx<'_>, ptr: i32, len: i32) -> Result<String, Status> {
        read(caller, ptr, len).map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// Writes bytes at `ptr`.
    pub(crate) fn write(caller: &mut Ctx<'_>, ptr: i32, bytes: &[u8]) -> Result<(), Status> {
        let memory = caller.data().memory.ok_or(Status::InvalidMemoryAccess)?;
        let len = i32::try_from(bytes.len()).map_err(|_| Status::InvalidMemoryAccess)?;
        range(ptr, len)
            .and_then(|r| memory.data_mut(&mut *caller).get_mut(r))
            .ok_or(Status::InvalidMemoryAccess)?
            .copy_from_slice(bytes);
        Ok(())
    }

    /// Writes a little-endian u32 at `ptr`.
    pub(crate) fn write_u32(caller: &mut Ctx<'_>, ptr: i32, value: u32) -> Result<(), Status> {
        write(caller, ptr, &value.to_le_bytes())
    }

    /// Writes a little-endian u64 at `ptr`.
    pub(crate) fn write_u64(caller: &mut Ctx<'_>, ptr: i32, value: u64) -> Result<(), Status> {
        write(caller, ptr, &value.to_le_bytes())
    }

    /// Hands bytes to the guest as cpp-host does: memory from the module's own allocator
    /// (which the SDK frees), its address and size written to the two out-pointers; nothing is
    /// allocated for an empty value (address 0, size 0). A failed allocation is
    /// INVALID_MEMORY_ACCESS; a trap inside the allocator is the guest's trap.
    pub(crate) fn copy_out(
        caller: &mut Ctx<'_>,
        bytes: &[u8],
        ptr_out: i32,
        size_out: i32,
    ) -> wasmtime::Result<Status> {
        let Ok(len) = i32::try_from(bytes.len()) else {
            return Ok(Status::InvalidMemoryAccess);
        };
        let mut address = 0i32;
        if len > 0 {
            let Some(allocate) = caller.data().allocate.clone() else {
                return Ok(Status::InvalidMemoryAccess);
            };
            address = allocate.call(&mut *caller, len)?;
            if address == 0 {
                return Ok(Status::InvalidMemoryAccess);
            }
            if let Err(status) = write(caller, address, bytes) {
                return Ok(status);
            }
        }
        let written = write_u32(caller, ptr_out, address.cast_unsigned())
            .and_then(|()| write_u32(caller, size_out, len.cast_unsigned()));
        Ok(written.err().unwrap_or(Status::Ok))
    }
}
