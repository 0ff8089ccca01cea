//! Spec "Metrics": define, increment, record, get, answered as Envoy does (`Context::defineMetric`,
//! `incrementMetric`, `recordMetric`, `getMetric` in source/extensions/common/wasm/context.cc): the
//! id's low two bits decide (see `state/ids.rs`); the stats are the proxy's, by name (`shared.rs`).

use super::memory;
use super::{Ctx, Status};
use crate::state::MetricId;
use crate::types::MetricType;

/// `proxy_define_metric(type, name, id_out)`: a new id every time, even for a name defined
/// before (both ids then name the same stat); a type above histogram is BAD_ARGUMENT.
pub(super) fn define(
    caller: &mut Ctx<'_>,
    kind: i32,
    name: i32,
    name_len: i32,
    id_out: i32,
) -> wasmtime::Result<Status> {
    // cpp-host reads the name before Envoy looks at the type.
    let name = match memory::read_text(caller, name, name_len) {
        Ok(n) => n,
        Err(s) => return Ok(s),
    };
    let Some(kind) = MetricType::from_raw(kind) else {
        return Ok(Status::BadArgument);
    };
    let state = caller.data_mut();
    state.shared.define_metric(&name, kind);
    let id = state.metric_ids.define(kind, &name);
    Ok(memory::write_u32(caller, id_out, id)
        .err()
        .unwrap_or(Status::Ok))
}

/// `proxy_increment_metric(id, offset)`: a counter takes offsets above 0 only, a gauge any;
/// an id of either type never handed out is NOT_FOUND; histogram ids (defined or not) and
/// type bits 3 are BAD_ARGUMENT.
pub(super) fn increment(caller: &mut Ctx<'_>, id: i32, offset: i64) -> wasmtime::Result<Status> {
    let state = caller.data();
    Ok(match state.metric_ids.resolve(id.cast_unsigned()) {
        MetricId::Defined(MetricType::Counter, _) if offset <= 0 => Status::BadArgument,
        MetricId::Defined(MetricType::Counter | MetricType::Gauge, name) => {
            state.shared.add_to_metric(name, offset);
            Status::Ok
        }
        MetricId::Undefined(MetricType::Counter | MetricType::Gauge) => Status::NotFound,
        MetricId::Defined(MetricType::Histogram, _)
        | MetricId::Undefined(MetricType::Histogram)
        | MetricId::NoType => Status::BadArgument,
    })
}

/// `proxy_record_metric(id, value)`: a counter adds, a gauge is set, a histogram takes a
/// sample; an id never handed out (type bits 3 included) is NOT_FOUND.
pub(super) fn record(caller: &mut Ctx<'_>, id: i32, value: i64) -> wasmtime::Result<Status> {
    let state = caller.data();
    // The ABI's value is a u64 carried in an i64.
    let value = value.cast_unsigned();
    Ok(match state.metric_ids.resolve(id.cast_unsigned()) {
        MetricId::Defined(MetricType::Counter, name) => {
            state
                .shared
                .add_to_metric(name, i64::try_from(value).unwrap_or(i64::MAX));
            Status::Ok
        }
        MetricId::Defined(MetricType::Gauge, name) => {
            state.shared.set_metric(name, value);
            Status::Ok
        }
        MetricId::Defined(MetricType::Histogram, name) => {
            state.shared.record_sample(name, value);
            Status::Ok
        }
        MetricId::Undefined(_) | MetricId::NoType => Status::NotFound,
    })
}

/// `proxy_get_metric(id, out)`: counters and gauges only; an id of theirs never handed out is
/// NOT_FOUND; histogram ids and type bits 3 are BAD_ARGUMENT.
pub(super) fn get(caller: &mut Ctx<'_>, id: i32, out: i32) -> wasmtime::Result<Status> {
    let state = caller.data();
    let value = match state.metric_ids.resolve(id.cast_unsigned()) {
        MetricId::Defined(MetricType::Counter | MetricType::Gauge, name) => {
            state.shared.metric_value(name)
        }
        MetricId::Undefined(MetricType::Counter | MetricType::Gauge) => {
            return Ok(Status::NotFound);
        }
        MetricId::Defined(MetricType::Histogram, _)
        | MetricId::Undefined(MetricType::Histogram)
        | MetricId::NoType => return Ok(Status::BadArgument),
    };
    Ok(memory::write_u64(caller, out, value)
        .err()
        .unwrap_or(Status::Ok))
}
