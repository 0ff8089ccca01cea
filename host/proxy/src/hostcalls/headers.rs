//! Spec "HTTP fields" (header maps): get/set pairs, get/add/replace/remove a value, size, with
//! Envoy's rules: keys lower-cased, only the first of repeated values returned, a map Envoy does
//! not hold at this moment is BAD_ARGUMENT (NOT_FOUND for a read in the access-log phase) except
//! for `get_header_map_pairs`, which answers OK with an empty map.

use super::memory;
use super::{Ctx, Status};
use crate::header_map::{HeaderMap, PairsError, decode_pairs};
use crate::state::VmState;
use crate::types::MapType;

/// The map for reading, if Envoy holds it now (borrowed: reads copy only what they return).
fn readable(state: &VmState, map: MapType) -> Option<&HeaderMap> {
    match map {
        MapType::HttpCallResponseHeaders => return state.answer.headers.as_ref(),
        MapType::HttpCallResponseTrailers => return state.answer.trailers.as_ref(),
        MapType::GrpcReceiveInitialMetadata => return state.answer.grpc_initial.as_ref(),
        MapType::GrpcReceiveTrailingMetadata => return state.answer.grpc_trailing.as_ref(),
        _ => {}
    }
    let stream = state.streams.get(&state.effective)?;
    if stream.access_log {
        return match map {
            MapType::RequestHeaders => Some(&stream.request_headers),
            MapType::ResponseHeaders => Some(&stream.response_headers),
            MapType::ResponseTrailers => Some(&stream.response_trailers),
            _ => None,
        };
    }
    match map {
        MapType::RequestHeaders if stream.live_request_headers => Some(&stream.request_headers),
        MapType::RequestTrailers if stream.live_request_trailers => Some(&stream.request_trailers),
        MapType::ResponseHeaders if stream.live_response_headers => Some(&stream.response_headers),
        MapType::ResponseTrailers if stream.live_response_trailers => {
            Some(&stream.response_trailers)
        }
        _ => None,
    }
}

/// The map for writing, if Envoy holds a mutable one now. Trailers may be created from the last
/// body callback of a stream that has none (Envoy's `addDecodedTrailers`).
fn writable(state: &mut VmState, map: MapType) -> Option<&mut HeaderMap> {
    let stream = state.stream()?;
    if stream.access_log {
        return None;
    }
    match map {
        MapType::RequestHeaders if stream.live_request_headers => Some(&mut stream.request_headers),
        MapType::RequestTrailers if stream.live_request_trailers => {
            Some(&mut stream.request_trailers)
        }
        MapType::RequestTrailers if stream.may_add_request_trailers => {
            stream.live_request_trailers = true;
            Some(&mut stream.request_trailers)
        }
        MapType::ResponseHeaders if stream.live_response_headers => {
            Some(&mut stream.response_headers)
        }
        MapType::ResponseTrailers if stream.live_response_trailers => {
            Some(&mut stream.response_trailers)
        }
        MapType::ResponseTrailers if stream.may_add_response_trailers => {
            stream.live_response_trailers = true;
            Some(&mut stream.response_trailers)
        }
        _ => None,
    }
}

fn map_type(raw: i32) -> Result<MapType, Status> {
    MapType::from_raw(raw).ok_or(Status::BadArgument)
}

/// `proxy_get_header_map_pairs(map, out...)`.
pub(super) fn get_pairs(
    caller: &mut Ctx<'_>,
    map: i32,
    ptr_out: i32,
    size_out: i32,
) -> wasmtime::Result<Status> {
    let map = match map_type(map) {
        Ok(m) => m,
        Err(s) => return Ok(s),
    };
    let bytes = readable(caller.data(), map)
        .map(HeaderMap::encode)
        .unwrap_or_default();
    memory::copy_out(caller, &bytes, ptr_out, size_out)
}

/// `proxy_set_header_map_pairs(map, pairs)`: replaces the whole map.
pub(super) fn set_pairs(
    caller: &mut Ctx<'_>,
    map: i32,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<Status> {
    let map = match map_type(map) {
        Ok(m) => m,
        Err(s) => return Ok(s),
    };
    let pairs = match memory::read(caller, ptr, len).map(|b| decode_pairs(&b)) {
        Ok(Ok(pairs)) => pairs,
        Ok(Err(PairsError::Malformed | PairsError::TooLarge)) => return Ok(Status::BadArgument),
        Err(status) => return Ok(status),
    };
    let Some(target) = writable(caller.data_mut(), map) else {
        return Ok(Status::BadArgument);
    };
    *target = HeaderMap::from_pairs(pairs);
    Ok(Status::Ok)
}

/// `proxy_get_header_map_value(map, key, out...)`: the first value; a missing key is NOT_FOUND.
pub(super) fn get_value(
    caller: &mut Ctx<'_>,
    map: i32,
    key: i32,
    key_len: i32,
    ptr_out: i32,
    size_out: i32,
) -> wasmtime::Result<Status> {
    let map = match map_type(map) {
        Ok(m) => m,
        Err(s) => return Ok(s),
    };
    let key = match memory::read_text(caller, key, key_len) {
        Ok(k) => k,
        Err(s) => return Ok(s),
    };
    let state = caller.data();
    let access_log = state
        .streams
        .get(&state.effective)
        .is_some_and(|s| s.access_log);
    let Some(headers) = readable(state, map) else {
        return Ok(if access_log {
            Status::NotFound
        } else {
            Status::BadArgument
        });
    };
    let Some(value) = headers.get(&key).map(str::to_owned) else {
        return Ok(Status::NotFound);
    };
    memory::copy_out(caller, value.as_bytes(), ptr_out, size_out)
}

/// Reads key and value and applies `edit` to the writable map.
fn edit(
    caller: &mut Ctx<'_>,
    map: i32,
    key: (i32, i32),
    value: Option<(i32, i32)>,
    apply: fn(&mut HeaderMap, &str, &str),
) -> wasmtime::Result<Status> {
    let map = match map_type(map) {
        Ok(m) => m,
        Err(s) => return Ok(s),
    };
    let key = match memory::read_text(caller, key.0, key.1) {
        Ok(k) => k,
        Err(s) => return Ok(s),
    };
    let value = match value
        .map(|(p, l)| memory::read_text(caller, p, l))
        .transpose()
    {
        Ok(v) => v.unwrap_or_default(),
        Err(s) => return Ok(s),
    };
    let Some(target) = writable(caller.data_mut(), map) else {
        return Ok(Status::BadArgument);
    };
    apply(target, &key, &value);
    Ok(Status::Ok)
}

/// `proxy_add_header_map_value(map, key, value)`.
pub(super) fn add_value(
    caller: &mut Ctx<'_>,
    map: i32,
    key: i32,
    key_len: i32,
    value: i32,
    value_len: i32,
) -> wasmtime::Result<Status> {
    edit(
        caller,
        map,
        (key, key_len),
        Some((value, value_len)),
        |m, k, v| m.add(k, v),
    )
}

/// `proxy_replace_header_map_value(map, key, value)`: sets, adding when absent.
pub(super) fn replace_value(
    caller: &mut Ctx<'_>,
    map: i32,
    key: i32,
    key_len: i32,
    value: i32,
    value_len: i32,
) -> wasmtime::Result<Status> {
    edit(
        caller,
        map,
        (key, key_len),
        Some((value, value_len)),
        |m, k, v| m.replace(k, v),
    )
}

/// `proxy_remove_header_map_value(map, key)`: removing a missing key is OK.
pub(super) fn remove_value(
    caller: &mut Ctx<'_>,
    map: i32,
    key: i32,
    key_len: i32,
) -> wasmtime::Result<Status> {
    edit(caller, map, (key, key_len), None, |m, k, _| m.remove(k))
}

/// `proxy_get_header_map_size(map, out)`: Envoy answers the map's byte size, not a count.
pub(super) fn size(caller: &mut Ctx<'_>, map: i32, out: i32) -> wasmtime::Result<Status> {
    let map = match map_type(map) {
        Ok(m) => m,
        Err(s) => return Ok(s),
    };
    let Some(target) = writable(caller.data_mut(), map) else {
        return Ok(Status::BadArgument);
    };
    let size = u32::try_from(target.byte_size()).unwrap_or(u32::MAX);
    Ok(memory::write_u32(caller, out, size)
        .err()
        .unwrap_or(Status::Ok))
}
