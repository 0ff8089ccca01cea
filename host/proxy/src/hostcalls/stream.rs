//! Spec "HTTP fields"/"Stream control": `proxy_continue_stream`, `proxy_close_stream`,
//! `proxy_send_local_response`, `proxy_get_status`. Envoy defers continue and local replies until
//! the VM call returns; the proxy applies them then.

use super::memory;
use super::{Ctx, Status};
use crate::header_map::decode_pairs;
use crate::stream::LocalReply;
use crate::types::StreamType;

/// `proxy_continue_stream(type)`: resumes a paused request or response; UPSTREAM/DOWNSTREAM are
/// UNIMPLEMENTED for an HTTP filter.
pub(super) fn continue_stream(caller: &mut Ctx<'_>, kind: i32) -> wasmtime::Result<Status> {
    let Some(kind) = StreamType::from_raw(kind) else {
        return Ok(Status::BadArgument);
    };
    Ok(caller.data_mut().stream_control(kind, false))
}

/// `proxy_close_stream(type)`: resets the HTTP stream (details `wasm_close_stream`).
pub(super) fn close_stream(caller: &mut Ctx<'_>, kind: i32) -> wasmtime::Result<Status> {
    let Some(kind) = StreamType::from_raw(kind) else {
        return Ok(Status::BadArgument);
    };
    Ok(caller.data_mut().stream_control(kind, true))
}

/// `proxy_send_local_response(code, details, body, headers, grpc_status)`: sent when the callback
/// returns; spaces in details become underscores; a gRPC status outside 0..=16 means none.
#[expect(clippy::too_many_arguments, reason = "the ABI's signature")]
pub(super) fn send_local_response(
    caller: &mut Ctx<'_>,
    code: i32,
    details: i32,
    details_len: i32,
    body: i32,
    body_len: i32,
    headers: i32,
    headers_len: i32,
    grpc_status: i32,
) -> wasmtime::Result<Status> {
    let read = (|| {
        let details = memory::read_text(caller, details, details_len)?;
        let body = memory::read(caller, body, body_len)?;
        let headers = memory::read(caller, headers, headers_len)?;
        let headers = decode_pairs(&headers).map_err(|_| Status::BadArgument)?;
        Ok::<_, Status>((details, body, headers))
    })();
    let (details, body, headers) = match read {
        Ok(parts) => parts,
        Err(status) => return Ok(status),
    };
    let Some(stream) = caller.data_mut().stream() else {
        // The root context has no stream to answer: Envoy accepts and does nothing.
        return Ok(Status::Ok);
    };
    stream.local_reply = Some(LocalReply {
        status: code.cast_unsigned(),
        details: details.replace(' ', "_"),
        body,
        headers: headers
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect(),
        grpc_status: u32::try_from(grpc_status).ok().filter(|s| *s <= 16),
    });
    Ok(Status::Ok)
}

/// `proxy_get_status(code_out, message_out...)`: the status of the callout being delivered.
pub(super) fn get_status(
    caller: &mut Ctx<'_>,
    code_out: i32,
    ptr_out: i32,
    size_out: i32,
) -> wasmtime::Result<Status> {
    let (code, message) = caller.data().status.clone();
    if let Err(status) = memory::write_u32(caller, code_out, code) {
        return Ok(status);
    }
    memory::copy_out(caller, message.as_bytes(), ptr_out, size_out)
}
