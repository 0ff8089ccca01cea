//! Spec "HTTP calls" and "gRPC calls": callouts run on the root context and are answered later
//! by the proxy from the scenario's clusters. Envoy's checks: the cluster must exist (HTTP:
//! BAD_ARGUMENT; gRPC: PARSE_FAILURE), `:path`, `:method` and `:authority` are required, a
//! negative timeout is BAD_ARGUMENT.

use super::memory;
use super::{Ctx, Status};
use crate::header_map::decode_pairs;
use crate::state::{Callout, CalloutKind, VmState};

fn known_cluster(state: &VmState, name: &str) -> bool {
    state.plugin.clusters.iter().any(|c| c == name)
}

/// `proxy_http_call(upstream, headers, body, trailers, timeout_ms, token_out)`.
#[expect(clippy::too_many_arguments, reason = "the ABI's signature")]
pub(super) fn http_call(
    caller: &mut Ctx<'_>,
    upstream: i32,
    upstream_len: i32,
    headers: i32,
    headers_len: i32,
    body: i32,
    body_len: i32,
    _trailers: i32,
    _trailers_len: i32,
    timeout: i32,
    token_out: i32,
) -> wasmtime::Result<Status> {
    let read = (|| {
        let cluster = memory::read_text(caller, upstream, upstream_len)?;
        let headers = memory::read(caller, headers, headers_len)?;
        let headers = decode_pairs(&headers).map_err(|_| Status::BadArgument)?;
        let body = memory::read(caller, body, body_len)?;
        Ok::<_, Status>((cluster, headers, body))
    })();
    let (cluster, headers, body) = match read {
        Ok(parts) => parts,
        Err(status) => return Ok(status),
    };
    if timeout < 0 || !known_cluster(caller.data(), &cluster) {
        return Ok(Status::BadArgument);
    }
    let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    if !has(":path") || !has(":method") || !(has(":authority") || has("host")) {
        return Ok(Status::BadArgument);
    }
    let state = caller.data_mut();
    let token = state.next_http_token;
    state.next_http_token = state.next_http_token.wrapping_add(1).max(1);
    let origin = state.effective;
    state.pending.insert(token, origin);
    state.callouts.push(Callout {
        token,
        kind: CalloutKind::Http,
        cluster,
        headers,
        body,
        timeout_ms: u64::from(timeout.cast_unsigned()),
    });
    Ok(memory::write_u32(caller, token_out, token)
        .err()
        .unwrap_or(Status::Ok))
}

/// The cluster a gRPC `upstream` names: a plain cluster name, or a serialised
/// `envoy.config.core.v3.GrpcService` whose `envoy_grpc.cluster_name` (fields 1.1) is one.
fn grpc_cluster(upstream: &[u8]) -> Option<String> {
    fn field(bytes: &[u8], wanted: u8) -> Option<&[u8]> {
        let (&tag, rest) = bytes.split_first()?;
        if tag != (wanted << 3 | 2) {
            return None;
        }
        let (&len, rest) = rest.split_first()?;
        rest.get(..usize::from(len))
    }
    if let Some(name) = field(upstream, 1).and_then(|g| field(g, 1)) {
        return String::from_utf8(name.to_vec()).ok();
    }
    String::from_utf8(upstream.to_vec()).ok()
}

/// `proxy_grpc_call(upstream, service, method, metadata, message, timeout_ms, token_out)`.
#[expect(clippy::too_many_arguments, reason = "the ABI's signature")]
pub(super) fn grpc_call(
    caller: &mut Ctx<'_>,
    upstream: i32,
    upstream_len: i32,
    service: i32,
    service_len: i32,
    method: i32,
    method_len: i32,
    metadata: i32,
    metadata_len: i32,
    message: i32,
    message_len: i32,
    timeout: i32,
    token_out: i32,
) -> wasmtime::Result<Status> {
    let read = (|| {
        let upstream = memory::read(caller, upstream, upstream_len)?;
        let service = memory::read_text(caller, service, service_len)?;
        let method = memory::read_text(caller, method, method_len)?;
        let metadata = memory::read(caller, metadata, metadata_len)?;
        let metadata = decode_pairs(&metadata).map_err(|_| Status::BadArgument)?;
        let message = memory::read(caller, message, message_len)?;
        Ok::<_, Status>((upstream, service, method, metadata, message))
    })();
    let (upstream, service, method, metadata, message) = match read {
        Ok(parts) => parts,
        Err(status) => return Ok(status),
    };
    let Some(cluster) = grpc_cluster(&upstream).filter(|c| known_cluster(caller.data(), c)) else {
        return Ok(Status::ParseFailure);
    };
    let state = caller.data_mut();
    // gRPC call tokens are odd, stream tokens even (Envoy's nextGrpcCallToken).
    let token = state.next_grpc_token | 1;
    state.next_grpc_token = token.wrapping_add(2);
    state.pending_grpc.insert(token, state.effective);
    state.callouts.push(Callout {
        token,
        kind: CalloutKind::Grpc { service, method },
        cluster,
        headers: metadata,
        body: message,
        timeout_ms: u64::from(timeout.cast_unsigned()),
    });
    Ok(memory::write_u32(caller, token_out, token)
        .err()
        .unwrap_or(Status::Ok))
}

/// `proxy_grpc_stream(...)`: streaming gRPC is not emulated; Envoy answers INTERNAL_FAILURE when
/// a stream cannot be started, which filters must handle anyway.
#[expect(clippy::too_many_arguments, reason = "the ABI's signature")]
pub(super) fn grpc_stream(
    caller: &mut Ctx<'_>,
    _upstream: i32,
    _upstream_len: i32,
    _service: i32,
    _service_len: i32,
    _method: i32,
    _method_len: i32,
    _metadata: i32,
    _metadata_len: i32,
    _token_out: i32,
) -> wasmtime::Result<Status> {
    caller.data().log(
        crate::types::LogLevel::Warn,
        "palisade: gRPC streams are not emulated; proxy_grpc_stream answered INTERNAL_FAILURE"
            .into(),
    );
    Ok(Status::InternalFailure)
}

/// `proxy_grpc_send(token, message, end_of_stream)`: a call token is BAD_ARGUMENT, an unknown
/// one NOT_FOUND (no stream can exist here).
pub(super) fn grpc_send(
    caller: &mut Ctx<'_>,
    token: i32,
    _message: i32,
    _len: i32,
    _end: i32,
) -> wasmtime::Result<Status> {
    let token = token.cast_unsigned();
    Ok(if caller.data().pending_grpc.contains_key(&token) {
        Status::BadArgument
    } else {
        Status::NotFound
    })
}

/// `proxy_grpc_cancel(token)` / `proxy_grpc_close(token)`: drops a pending call.
pub(super) fn grpc_cancel(caller: &mut Ctx<'_>, token: i32) -> wasmtime::Result<Status> {
    let token = token.cast_unsigned();
    let state = caller.data_mut();
    if state.pending_grpc.remove(&token).is_some() {
        state
            .callouts
            .retain(|c| c.token != token || c.kind == CalloutKind::Http);
        return Ok(Status::Ok);
    }
    Ok(Status::NotFound)
}
