//! Spec "Buffers": `proxy_get_buffer_bytes`, `proxy_set_buffer_bytes`, `proxy_get_buffer_status`,
//! with Envoy's availability rules (plugin configuration only while configuring, call and gRPC
//! bodies only while their answer is delivered).

use super::memory;
use super::{Ctx, Status};
use crate::state::{Phase, VmState};
use crate::types::BufferType;

/// The bytes a buffer holds now, or NOT_FOUND when Envoy has no such buffer at this moment
/// (borrowed: reads copy only the range they return).
fn contents(state: &VmState, kind: BufferType) -> Result<&[u8], Status> {
    let stream = state.streams.get(&state.effective);
    match kind {
        BufferType::VmConfiguration => Ok(&state.plugin.vm_configuration),
        BufferType::PluginConfiguration if state.phase == Phase::Configuring => {
            Ok(&state.plugin.plugin_configuration)
        }
        BufferType::HttpCallResponseBody | BufferType::GrpcReceiveBuffer => {
            state.answer.body.as_deref().ok_or(Status::NotFound)
        }
        BufferType::ForeignFunctionArguments => {
            state.foreign_args.as_deref().ok_or(Status::NotFound)
        }
        // Envoy hands out an empty buffer outside the body callbacks rather than none.
        BufferType::HttpRequestBody => Ok(stream
            .filter(|s| s.live_request_body)
            .map_or(&[][..], |s| &s.request_body)),
        BufferType::HttpResponseBody => Ok(stream
            .filter(|s| s.live_response_body)
            .map_or(&[][..], |s| &s.response_body)),
        BufferType::PluginConfiguration | BufferType::DownstreamData | BufferType::UpstreamData => {
            Err(Status::NotFound)
        }
    }
}

/// `proxy_get_buffer_bytes(type, start, max_size, out...)`: clamps to what exists; an overflowing
/// range is BAD_ARGUMENT; an empty result is OK with address 0.
pub(super) fn get(
    caller: &mut Ctx<'_>,
    kind: i32,
    start: i32,
    max: i32,
    ptr_out: i32,
    size_out: i32,
) -> wasmtime::Result<Status> {
    let Some(kind) = BufferType::from_raw(kind) else {
        return Ok(Status::BadArgument);
    };
    let (start, max) = (start.cast_unsigned() as usize, max.cast_unsigned() as usize);
    if start.checked_add(max).is_none() {
        return Ok(Status::BadArgument);
    }
    let slice = match contents(caller.data(), kind) {
        Ok(bytes) => {
            let from = start.min(bytes.len());
            let to = start.saturating_add(max).min(bytes.len());
            bytes.get(from..to).unwrap_or_default().to_vec()
        }
        Err(status) => return Ok(status),
    };
    memory::copy_out(caller, &slice, ptr_out, size_out)
}

/// `proxy_set_buffer_bytes(type, start, size, data)`: Envoy supports prepend (start 0, size 0),
/// replace (start 0, size >= length) and append (start >= length); anything else is
/// BAD_ARGUMENT. Only the HTTP bodies are writable.
pub(super) fn set(
    caller: &mut Ctx<'_>,
    kind: i32,
    start: i32,
    size: i32,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<Status> {
    let Some(kind) = BufferType::from_raw(kind) else {
        return Ok(Status::BadArgument);
    };
    let data = match memory::read(caller, ptr, len) {
        Ok(d) => d,
        Err(status) => return Ok(status),
    };
    let (start, size) = (
        start.cast_unsigned() as usize,
        size.cast_unsigned() as usize,
    );
    let state = caller.data_mut();
    let Some(stream) = state.stream() else {
        return Ok(Status::NotFound);
    };
    let body = match kind {
        BufferType::HttpRequestBody if stream.live_request_body => &mut stream.request_body,
        BufferType::HttpResponseBody if stream.live_response_body => &mut stream.response_body,
        BufferType::HttpRequestBody | BufferType::HttpResponseBody => return Ok(Status::NotFound),
        _ => return Ok(Status::BadArgument),
    };
    if start == 0 && size == 0 {
        let mut joined = data;
        joined.extend_from_slice(body);
        *body = joined;
    } else if start == 0 && size >= body.len() {
        *body = data;
    } else if start >= body.len() {
        body.extend_from_slice(&data);
    } else {
        return Ok(Status::BadArgument);
    }
    Ok(Status::Ok)
}

/// `proxy_get_buffer_status(type, length_out, flags_out)`: the buffer's length (flags are 0).
pub(super) fn status(
    caller: &mut Ctx<'_>,
    kind: i32,
    len_out: i32,
    flags_out: i32,
) -> wasmtime::Result<Status> {
    let Some(kind) = BufferType::from_raw(kind) else {
        return Ok(Status::BadArgument);
    };
    let len = match contents(caller.data(), kind) {
        Ok(b) => u32::try_from(b.len()).unwrap_or(u32::MAX),
        Err(status) => return Ok(status),
    };
    let written = memory::write_u32(caller, len_out, len)
        .and_then(|()| memory::write_u32(caller, flags_out, 0));
    Ok(written.err().unwrap_or(Status::Ok))
}
