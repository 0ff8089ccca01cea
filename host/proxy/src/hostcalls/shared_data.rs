//! Spec "Shared key-value store" and "Shared queues": process-wide, keyed by the plugin's vm_id,
//! seen by every worker VM (see `shared.rs` for cpp-host's CAS and receiver rules).

use super::memory;
use super::{Ctx, Status};

/// `proxy_get_shared_data(key, value_out..., cas_out)`.
pub(super) fn get(
    caller: &mut Ctx<'_>,
    key: i32,
    key_len: i32,
    ptr_out: i32,
    size_out: i32,
    cas_out: i32,
) -> wasmtime::Result<Status> {
    let key = match memory::read(caller, key, key_len) {
        Ok(k) => k,
        Err(s) => return Ok(s),
    };
    let state = caller.data();
    let (value, cas) = match state.shared.get(&state.plugin.identity.vm_id, &key) {
        Ok(found) => found,
        Err(s) => return Ok(s),
    };
    if let Err(s) = memory::write_u32(caller, cas_out, cas) {
        return Ok(s);
    }
    memory::copy_out(caller, &value, ptr_out, size_out)
}

/// `proxy_set_shared_data(key, value, cas)`.
pub(super) fn set(
    caller: &mut Ctx<'_>,
    key: i32,
    key_len: i32,
    value: i32,
    value_len: i32,
    cas: i32,
) -> wasmtime::Result<Status> {
    let read = memory::read(caller, key, key_len)
        .and_then(|k| Ok((k, memory::read(caller, value, value_len)?)));
    let (key, value) = match read {
        Ok(kv) => kv,
        Err(s) => return Ok(s),
    };
    let state = caller.data();
    Ok(state.shared.set(
        &state.plugin.identity.vm_id,
        &key,
        value,
        cas.cast_unsigned(),
    ))
}

/// `proxy_register_shared_queue(name, token_out)`: the calling VM's root context receives.
pub(super) fn register_queue(
    caller: &mut Ctx<'_>,
    name: i32,
    name_len: i32,
    token_out: i32,
) -> wasmtime::Result<Status> {
    let name = match memory::read(caller, name, name_len) {
        Ok(n) => n,
        Err(s) => return Ok(s),
    };
    let state = caller.data();
    let token =
        state
            .shared
            .register_queue(&state.plugin.identity.vm_id, &name, state.index, state.root);
    Ok(memory::write_u32(caller, token_out, token)
        .err()
        .unwrap_or(Status::Ok))
}

/// `proxy_resolve_shared_queue(vm_id, name, token_out)`: an empty vm_id means our own.
pub(super) fn resolve_queue(
    caller: &mut Ctx<'_>,
    vm_id: i32,
    vm_id_len: i32,
    name: i32,
    name_len: i32,
    token_out: i32,
) -> wasmtime::Result<Status> {
    let read = memory::read_text(caller, vm_id, vm_id_len)
        .and_then(|v| Ok((v, memory::read(caller, name, name_len)?)));
    let (vm_id, name) = match read {
        Ok(parts) => parts,
        Err(s) => return Ok(s),
    };
    let state = caller.data();
    let vm_id = if vm_id.is_empty() {
        state.plugin.identity.vm_id.clone()
    } else {
        vm_id
    };
    match state.shared.resolve_queue(&vm_id, &name) {
        Ok(token) => Ok(memory::write_u32(caller, token_out, token)
            .err()
            .unwrap_or(Status::Ok)),
        Err(s) => Ok(s),
    }
}

/// `proxy_enqueue_shared_queue(token, value)`.
pub(super) fn enqueue(
    caller: &mut Ctx<'_>,
    token: i32,
    value: i32,
    value_len: i32,
) -> wasmtime::Result<Status> {
    let value = match memory::read(caller, value, value_len) {
        Ok(v) => v,
        Err(s) => return Ok(s),
    };
    Ok(caller.data().shared.enqueue(token.cast_unsigned(), value))
}

/// `proxy_dequeue_shared_queue(token, value_out...)`: EMPTY when nothing is queued.
pub(super) fn dequeue(
    caller: &mut Ctx<'_>,
    token: i32,
    ptr_out: i32,
    size_out: i32,
) -> wasmtime::Result<Status> {
    match caller.data().shared.dequeue(token.cast_unsigned()) {
        Ok(item) => memory::copy_out(caller, &item, ptr_out, size_out),
        Err(s) => Ok(s),
    }
}
