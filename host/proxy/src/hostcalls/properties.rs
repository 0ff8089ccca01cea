//! Spec "Properties" and "Foreign function interface": `proxy_get_property` resolves Envoy's
//! attributes (see `properties.rs` at the crate root); `proxy_set_property` writes stream filter state;
//! `proxy_call_foreign_function` knows no function (NOT_FOUND, as cpp-host answers unknown names).

use super::memory;
use super::{Ctx, Status};
use crate::properties::{Lookup, StreamView};

/// `proxy_get_property(path, value_out...)`.
pub(super) fn get(
    caller: &mut Ctx<'_>,
    path: i32,
    path_len: i32,
    ptr_out: i32,
    size_out: i32,
) -> wasmtime::Result<Status> {
    let path = match memory::read(caller, path, path_len) {
        Ok(p) => p,
        Err(s) => return Ok(s),
    };
    let state = caller.data();
    let plugin = &state.plugin;
    let current = state.streams.get(&state.effective);
    let connection = current
        .and_then(|s| s.connection.as_deref())
        .unwrap_or(&plugin.connection);
    let stream = current.map(|s| StreamView {
        request_headers: Some(&s.request_headers).filter(|h| !h.is_empty()),
        response_headers: Some(&s.response_headers).filter(|h| !h.is_empty()),
        response_trailers: Some(&s.response_trailers).filter(|h| !h.is_empty()),
        protocol: &s.protocol,
        start_nanos: i64::try_from(plugin.epoch_nanos.saturating_add(s.start_nanos))
            .unwrap_or(i64::MAX),
        request_size: s.request_size,
        response_size: s.response_size,
        duration_nanos: None,
        response_code_details: s.response_code_details.as_deref(),
        filter_state: &s.filter_state,
        route: s.route.as_ref(),
    });
    let lookup = Lookup {
        connection,
        node: &plugin.node,
        plugin: &plugin.identity,
        stream,
    };
    match lookup.get(&path) {
        Ok(value) => memory::copy_out(caller, &value, ptr_out, size_out),
        Err(s) => Ok(s),
    }
}

/// `proxy_set_property(path, value)`: Envoy stores it as filter state of the stream, readable
/// back with `proxy_get_property`; outside a stream it is NOT_FOUND.
pub(super) fn set(
    caller: &mut Ctx<'_>,
    path: i32,
    path_len: i32,
    value: i32,
    value_len: i32,
) -> wasmtime::Result<Status> {
    let read = memory::read(caller, path, path_len)
        .and_then(|p| Ok((p, memory::read(caller, value, value_len)?)));
    let (path, value) = match read {
        Ok(pv) => pv,
        Err(s) => return Ok(s),
    };
    let Some(stream) = caller.data_mut().stream() else {
        return Ok(Status::NotFound);
    };
    stream.filter_state.retain(|(k, _)| *k != path);
    stream.filter_state.push((path, value));
    Ok(Status::Ok)
}

/// `proxy_call_foreign_function(name, args, results_out...)`.
pub(super) fn call_foreign(
    caller: &mut Ctx<'_>,
    name: i32,
    name_len: i32,
    _args: i32,
    _args_len: i32,
    _ptr_out: i32,
    _size_out: i32,
) -> wasmtime::Result<Status> {
    Ok(match memory::read(caller, name, name_len) {
        Ok(_) => Status::NotFound,
        Err(s) => s,
    })
}
