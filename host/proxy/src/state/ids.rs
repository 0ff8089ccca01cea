//! cpp-host's per-VM numbering of metric ids and callout tokens (`include/proxy-wasm/wasm.h`,
//! kMetricIdIncrement / kCalloutIncrement): one counter per type that starts at the type's value
//! and is pre-incremented by 4, so an id's type is its low two bits and ids never collide.

use std::collections::HashMap;

use crate::types::MetricType;

/// cpp-host's `kMetricTypeMask` and `kCalloutTypeMask`.
const TYPE_MASK: u32 = 0x3;
/// cpp-host's `kMetricIdIncrement` and `kCalloutIncrement`.
const INCREMENT: u32 = 0x4;

/// The metric ids one VM has handed out (Envoy keeps them in the `Wasm` object, one per VM):
/// counters 4, 8, 12, ...; gauges 5, 9, 13, ...; histograms 6, 10, 14, ... Defining a name again
/// hands out a new id for the same stat (Envoy's stats scope returns the existing one).
#[derive(Debug)]
pub(crate) struct MetricIds {
    next: [u32; 3],
    names: HashMap<u32, String>,
}

/// What a metric id passed to `proxy_*_metric` names, by its low two bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetricId<'a> {
    /// An id this VM handed out for a stat of this name.
    Defined(MetricType, &'a str),
    /// An id of this type that this VM never handed out.
    Undefined(MetricType),
    /// Type bits 3: no metric type.
    NoType,
}

impl Default for MetricIds {
    fn default() -> Self {
        Self {
            next: [
                MetricType::Counter as u32,
                MetricType::Gauge as u32,
                MetricType::Histogram as u32,
            ],
            names: HashMap::new(),
        }
    }
}

impl MetricIds {
    /// A new id for the stat `name` of type `kind` (`nextCounterMetricId` and its siblings).
    pub(crate) fn define(&mut self, kind: MetricType, name: &str) -> u32 {
        let next = match kind {
            MetricType::Counter => &mut self.next[0],
            MetricType::Gauge => &mut self.next[1],
            MetricType::Histogram => &mut self.next[2],
        };
        // cpp-host has no rollover protection either: a u32 that wraps.
        *next = next.wrapping_add(INCREMENT);
        let id = *next;
        self.names.insert(id, name.to_owned());
        id
    }

    /// What `id` names.
    pub(crate) fn resolve(&self, id: u32) -> MetricId<'_> {
        let kind = match id & TYPE_MASK {
            0 => MetricType::Counter,
            1 => MetricType::Gauge,
            2 => MetricType::Histogram,
            _ => return MetricId::NoType,
        };
        match self.names.get(&id) {
            Some(name) => MetricId::Defined(kind, name),
            None => MetricId::Undefined(kind),
        }
    }
}

/// The kinds of callout, by the value cpp-host gives them (`Wasm::CalloutType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CalloutType {
    HttpCall = 0,
    GrpcCall = 1,
    GrpcStream = 2,
}

impl CalloutType {
    /// The type a token carries in its low two bits (`isHttpCallId` and its siblings); `None`
    /// for bits 3.
    pub(crate) fn of(token: u32) -> Option<Self> {
        match token & TYPE_MASK {
            0 => Some(Self::HttpCall),
            1 => Some(Self::GrpcCall),
            2 => Some(Self::GrpcStream),
            _ => None,
        }
    }
}

/// The callout tokens one VM has handed out (cpp-host commit 0318597, "Make HTTP/gRPC callout
/// IDs unique per WasmVM instance"): HTTP calls 4, 8, 12, ...; gRPC calls 5, 9, 13, ...; gRPC
/// streams 6, 10, 14, ...
#[derive(Debug)]
pub(crate) struct CalloutIds {
    next: [u32; 3],
}

impl Default for CalloutIds {
    fn default() -> Self {
        Self {
            next: [
                CalloutType::HttpCall as u32,
                CalloutType::GrpcCall as u32,
                CalloutType::GrpcStream as u32,
            ],
        }
    }
}

impl CalloutIds {
    /// The next token of `kind` (`nextHttpCallId` and its siblings).
    pub(crate) fn next(&mut self, kind: CalloutType) -> u32 {
        let next = match kind {
            CalloutType::HttpCall => &mut self.next[0],
            CalloutType::GrpcCall => &mut self.next[1],
            CalloutType::GrpcStream => &mut self.next[2],
        };
        // cpp-host: "TODO: re-add rollover protection (requires at least 1 billion callouts)".
        *next = next.wrapping_add(INCREMENT);
        *next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_ids_count_by_type_from_the_types_value_in_steps_of_four() {
        let mut ids = MetricIds::default();
        assert_eq!(ids.define(MetricType::Counter, "c"), 4);
        assert_eq!(ids.define(MetricType::Gauge, "g"), 5);
        assert_eq!(ids.define(MetricType::Histogram, "h"), 6);
        assert_eq!(ids.define(MetricType::Counter, "d"), 8);
        assert_eq!(ids.define(MetricType::Gauge, "g2"), 9);
        assert_eq!(ids.define(MetricType::Histogram, "h2"), 10);
    }

    #[test]
    fn defining_a_name_twice_hands_out_a_new_id_for_the_same_stat() {
        let mut ids = MetricIds::default();
        let first = ids.define(MetricType::Counter, "twice");
        let second = ids.define(MetricType::Counter, "twice");
        assert_eq!((first, second), (4, 8));
        assert_eq!(
            ids.resolve(first),
            MetricId::Defined(MetricType::Counter, "twice")
        );
        assert_eq!(
            ids.resolve(second),
            MetricId::Defined(MetricType::Counter, "twice")
        );
    }

    #[test]
    fn ids_never_handed_out_resolve_by_their_type_bits() {
        let mut ids = MetricIds::default();
        ids.define(MetricType::Counter, "c");
        assert_eq!(ids.resolve(0), MetricId::Undefined(MetricType::Counter));
        assert_eq!(ids.resolve(1), MetricId::Undefined(MetricType::Gauge));
        assert_eq!(ids.resolve(2), MetricId::Undefined(MetricType::Histogram));
        assert_eq!(ids.resolve(3), MetricId::NoType);
        assert_eq!(ids.resolve(7), MetricId::NoType);
        assert_eq!(ids.resolve(8), MetricId::Undefined(MetricType::Counter));
    }

    #[test]
    fn callout_tokens_are_unique_per_vm_with_the_type_in_the_low_bits() {
        let mut ids = CalloutIds::default();
        assert_eq!(ids.next(CalloutType::HttpCall), 4);
        assert_eq!(ids.next(CalloutType::GrpcCall), 5);
        assert_eq!(ids.next(CalloutType::HttpCall), 8);
        assert_eq!(ids.next(CalloutType::GrpcStream), 6);
        assert_eq!(ids.next(CalloutType::GrpcCall), 9);
        assert_eq!(CalloutType::of(8), Some(CalloutType::HttpCall));
        assert_eq!(CalloutType::of(9), Some(CalloutType::GrpcCall));
        assert_eq!(CalloutType::of(6), Some(CalloutType::GrpcStream));
        assert_eq!(CalloutType::of(3), None);
    }
}
