//! Spec "Metrics": define, increment, record, get, with Envoy's rules (see `shared.rs`). Ids carry
//! the metric type in their low two bits, as Envoy numbers them.

use super::memory;
use super::{Ctx, Status};
use crate::types::MetricType;

/// `proxy_define_metric(type, name, id_out)`.
pub(super) fn define(
    caller: &mut Ctx<'_>,
    kind: i32,
    name: i32,
    name_len: i32,
    id_out: i32,
) -> wasmtime::Result<Status> {
    let Some(kind) = MetricType::from_raw(kind) else {
        return Ok(Status::BadArgument);
    };
    let name = match memory::read_text(caller, name, name_len) {
        Ok(n) => n,
        Err(s) => return Ok(s),
    };
    let state = caller.data_mut();
    state.shared.define_metric(&name, kind);
    let id = state.metric_id(&name, kind);
    Ok(memory::write_u32(caller, id_out, id)
        .err()
        .unwrap_or(Status::Ok))
}

fn name_of(caller: &Ctx<'_>, id: i32) -> Option<String> {
    caller.data().metric_names.get(&id.cast_unsigned()).cloned()
}

/// `proxy_increment_metric(id, delta)`.
pub(super) fn increment(caller: &mut Ctx<'_>, id: i32, delta: i64) -> wasmtime::Result<Status> {
    let Some(name) = name_of(caller, id) else {
        return Ok(Status::NotFound);
    };
    Ok(caller.data().shared.increment_metric(&name, delta))
}

/// `proxy_record_metric(id, value)`.
pub(super) fn record(caller: &mut Ctx<'_>, id: i32, value: i64) -> wasmtime::Result<Status> {
    let Some(name) = name_of(caller, id) else {
        return Ok(Status::NotFound);
    };
    Ok(caller
        .data()
        .shared
        .record_metric(&name, value.cast_unsigned()))
}

/// `proxy_get_metric(id, out)`.
pub(super) fn get(caller: &mut Ctx<'_>, id: i32, out: i32) -> wasmtime::Result<Status> {
    let Some(name) = name_of(caller, id) else {
        return Ok(Status::NotFound);
    };
    match caller.data().shared.get_metric(&name) {
        Ok(value) => Ok(memory::write_u64(caller, out, value)
            .err()
            .unwrap_or(Status::Ok)),
        Err(s) => Ok(s),
    }
}
