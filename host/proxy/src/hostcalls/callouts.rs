//! Spec "HTTP calls" and "gRPC calls": callouts run on the root context and are answered later
//! by the proxy from the scenario's clusters. Tokens are per VM with the callout type in their low
//! two bits (see `state/ids.rs`); a call Envoy refuses before starting it takes no token.

use super::memory;
use super::{Ctx, Status};
use crate::header_map::decode_pairs;
use crate::state::{Callout, CalloutKind, CalloutType, VmState};
use crate::types::LogLevel;

fn known_cluster(state: &VmState, name: &str) -> bool {
    state.plugin.clusters.iter().any(|c| c == name)
}

/// `proxy_http_call(upstream, headers, body, trailers, timeout_ms, token_out)`. cpp-host reads
/// every argument and writes a 0 token first ("to verify the memory before starting the async
/// operation"): INVALID_MEMORY_ACCESS. Envoy's `Context::httpCall` then answers BAD_ARGUMENT for a
/// negative timeout, an unknown cluster or a missing `:path`, `:method` or `:authority` (`host`
/// is the same header to Envoy), before `nextHttpCallId` takes a token.
#[expect(clippy::too_many_arguments, reason = "the ABI's signature")]
pub(super) fn http_call(
    caller: &mut Ctx<'_>,
    upstream: i32,
    upstream_len: i32,
    headers: i32,
    headers_len: i32,
    body: i32,
    body_len: i32,
    trailers: i32,
    trailers_len: i32,
    timeout: i32,
    token_out: i32,
) -> wasmtime::Result<Status> {
    let read = (|| {
        let cluster = memory::read_text(caller, upstream, upstream_len)?;
        let headers = memory::read(caller, headers, headers_len)?;
        let body = memory::read(caller, body, body_len)?;
        memory::read(caller, trailers, trailers_len)?;
        memory::write_u32(caller, token_out, 0)?;
        Ok::<_, Status>((cluster, headers, body))
    })();
    let (cluster, headers, body) = match read {
        Ok(parts) => parts,
        Err(status) => return Ok(status),
    };
    let Ok(headers) = decode_pairs(&headers) else {
        return Ok(Status::BadArgument);
    };
    if timeout < 0 || !known_cluster(caller.data(), &cluster) {
        return Ok(Status::BadArgument);
    }
    let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    if !has(":path") || !has(":method") || !(has(":authority") || has("host")) {
        return Ok(Status::BadArgument);
    }
    let state = caller.data_mut();
    let token = state.callout_ids.next(CalloutType::HttpCall);
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

/// What the `upstream` of a gRPC call names.
enum GrpcTarget {
    /// A serialised `envoy.config.core.v3.GrpcService` whose `envoy_grpc.cluster_name` (fields
    /// 1.1) is this cluster.
    Service(String),
    /// A plain cluster name.
    Name(String),
}

/// Reads a gRPC `upstream` as Envoy does: a `GrpcService` if it parses as one, else a cluster
/// name; `None` when it is neither (not UTF-8).
fn grpc_target(upstream: &[u8]) -> Option<GrpcTarget> {
    fn field(bytes: &[u8], wanted: u8) -> Option<&[u8]> {
        let (&tag, rest) = bytes.split_first()?;
        if tag != (wanted << 3 | 2) {
            return None;
        }
        let (&len, rest) = rest.split_first()?;
        rest.get(..usize::from(len))
    }
    if let Some(name) = field(upstream, 1).and_then(|g| field(g, 1)) {
        return String::from_utf8(name.to_vec())
            .ok()
            .map(GrpcTarget::Service);
    }
    String::from_utf8(upstream.to_vec())
        .ok()
        .map(GrpcTarget::Name)
}

/// The token and cluster of a gRPC call or stream to `upstream`, in Envoy's order
/// (`Context::grpcCall`, `grpcStream`): a cluster name that is not a known cluster is
/// PARSE_FAILURE before any token is taken; a `GrpcService` takes its token before its cluster is
/// looked at, so an unknown one spends a token.
fn grpc_token(
    state: &mut VmState,
    upstream: &[u8],
    kind: CalloutType,
) -> Result<(u32, String), Status> {
    match grpc_target(upstream) {
        Some(GrpcTarget::Name(cluster)) if known_cluster(state, &cluster) => {
            Ok((state.callout_ids.next(kind), cluster))
        }
        Some(GrpcTarget::Service(cluster)) => {
            let token = state.callout_ids.next(kind);
            if known_cluster(state, &cluster) {
                Ok((token, cluster))
            } else {
                // Envoy's async client fails inside the call (it answers INTERNAL_FAILURE after
                // an on_grpc_close with UNAVAILABLE, re-entering the VM); the emulator keeps
                // answering PARSE_FAILURE, with the token spent as in Envoy.
                Err(Status::ParseFailure)
            }
        }
        Some(GrpcTarget::Name(_)) | None => Err(Status::ParseFailure),
    }
}

/// `proxy_grpc_call(upstream, service, method, metadata, message, timeout_ms, token_out)`: the
/// token is written after the call started (a bad `token_out` is INVALID_MEMORY_ACCESS for a
/// call that is under way, as in cpp-host).
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
    let state = caller.data_mut();
    let (token, cluster) = match grpc_token(state, &upstream, CalloutType::GrpcCall) {
        Ok(taken) => taken,
        Err(status) => return Ok(status),
    };
    state.pending.insert(token, state.effective);
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

/// `proxy_grpc_stream(upstream, service, method, metadata, token_out)`: streaming gRPC is not
/// emulated. Envoy answers INTERNAL_FAILURE when a stream cannot be started, which filters must
/// handle anyway; by then the stream's token is spent. An unknown cluster name is PARSE_FAILURE.
#[expect(clippy::too_many_arguments, reason = "the ABI's signature")]
pub(super) fn grpc_stream(
    caller: &mut Ctx<'_>,
    upstream: i32,
    upstream_len: i32,
    service: i32,
    service_len: i32,
    method: i32,
    method_len: i32,
    metadata: i32,
    metadata_len: i32,
    _token_out: i32,
) -> wasmtime::Result<Status> {
    let read = (|| {
        let upstream = memory::read(caller, upstream, upstream_len)?;
        memory::read(caller, service, service_len)?;
        memory::read(caller, method, method_len)?;
        memory::read(caller, metadata, metadata_len)?;
        Ok::<_, Status>(upstream)
    })();
    let upstream = match read {
        Ok(upstream) => upstream,
        Err(status) => return Ok(status),
    };
    let state = caller.data_mut();
    if let Err(status) = grpc_token(state, &upstream, CalloutType::GrpcStream) {
        return Ok(status);
    }
    state.log(
        LogLevel::Warn,
        "palisade: gRPC streams are not emulated; proxy_grpc_stream answered INTERNAL_FAILURE"
            .into(),
    );
    Ok(Status::InternalFailure)
}

/// `proxy_grpc_send(token, message, end_of_stream)`: only a stream token may be sent on
/// (BAD_ARGUMENT otherwise), and no stream exists here (NOT_FOUND), as in Envoy's
/// `Context::grpcSend`.
pub(super) fn grpc_send(
    _caller: &mut Ctx<'_>,
    token: i32,
    _message: i32,
    _len: i32,
    _end: i32,
) -> wasmtime::Result<Status> {
    Ok(match CalloutType::of(token.cast_unsigned()) {
        Some(CalloutType::GrpcStream) => Status::NotFound,
        Some(CalloutType::HttpCall | CalloutType::GrpcCall) | None => Status::BadArgument,
    })
}

/// `proxy_grpc_cancel(token)` / `proxy_grpc_close(token)` (Envoy's `grpcCancel`, `grpcClose`):
/// a pending gRPC call is dropped (OK); a gRPC call or stream token that names nothing pending
/// is NOT_FOUND; any other token BAD_ARGUMENT.
pub(super) fn grpc_cancel(caller: &mut Ctx<'_>, token: i32) -> wasmtime::Result<Status> {
    let token = token.cast_unsigned();
    let state = caller.data_mut();
    Ok(match CalloutType::of(token) {
        Some(CalloutType::GrpcCall) if state.pending.remove(&token).is_some() => {
            state.callouts.retain(|c| c.token != token);
            Status::Ok
        }
        Some(CalloutType::GrpcCall | CalloutType::GrpcStream) => Status::NotFound,
        Some(CalloutType::HttpCall) | None => Status::BadArgument,
    })
}
