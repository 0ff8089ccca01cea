//! The `metric-ids` and `callout-tokens` actions: which metric ids and callout tokens the host
//! hands out, and how it answers ids it never handed out (Envoy numbers both per VM and per
//! type, with the type in the low two bits).

use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{MetricType, Status};

use crate::root::Metrics;
use crate::shared::status_code;

/// A cluster no scenario defines.
const UNKNOWN_CLUSTER: &str = "palisade-unknown";
/// The counter `metric-ids` defines twice.
const TWICE: &str = "probe_twice";
/// The timeout of the `callout-tokens` calls.
const TIMEOUT: Duration = Duration::from_secs(1);

/// An action of this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdAction {
    /// `metric-ids`.
    MetricIds,
    /// `callout-tokens`.
    CalloutTokens,
}

impl IdAction {
    pub(crate) fn parse(name: &str) -> Option<Self> {
        match name {
            "metric-ids" => Some(Self::MetricIds),
            "callout-tokens" => Some(Self::CalloutTokens),
            _ => None,
        }
    }
}

/// `ok` or `error:<n>`.
fn done(result: Result<(), Status>) -> String {
    match result {
        Ok(()) => "ok".to_owned(),
        Err(status) => format!("error:{}", status_code(status)),
    }
}

/// A value or `error:<n>`.
fn value<T: ToString>(result: Result<T, Status>) -> String {
    match result {
        Ok(value) => value.to_string(),
        Err(status) => format!("error:{}", status_code(status)),
    }
}

/// `metric-ids`: the request headers to add, in order.
pub(crate) fn metric_ids(defined: Option<Metrics>) -> Vec<(&'static str, String)> {
    let first = hostcalls::define_metric(MetricType::Counter, TWICE);
    let second = hostcalls::define_metric(MetricType::Counter, TWICE);
    let mut headers = vec![(
        "x-probe-metric-defined",
        format!("{},{}", value(first), value(second)),
    )];
    if let (Ok(first), Ok(second)) = (first, second) {
        let by_first = hostcalls::increment_metric(first, 1);
        let by_second = hostcalls::increment_metric(second, 2);
        headers.push((
            "x-probe-metric-shared",
            format!(
                "inc={},{} get={},{}",
                done(by_first),
                done(by_second),
                value(hostcalls::get_metric(first)),
                value(hostcalls::get_metric(second)),
            ),
        ));
    }
    let unknown: Vec<String> = (0..4)
        .map(|id| {
            format!(
                "{id}:{}/{}/{}",
                done(hostcalls::increment_metric(id, 1)),
                done(hostcalls::record_metric(id, 1)),
                value(hostcalls::get_metric(id)),
            )
        })
        .collect();
    headers.push(("x-probe-metric-unknown", unknown.join(" ")));
    let typed = match defined {
        Some(ids) => format!(
            "counter+0={} gauge+0={} histogram+1={} get-histogram={}",
            done(hostcalls::increment_metric(ids.requests, 0)),
            done(hostcalls::increment_metric(ids.inflight, 0)),
            done(hostcalls::increment_metric(ids.body_bytes, 1)),
            value(hostcalls::get_metric(ids.body_bytes)),
        ),
        None => "undefined".to_owned(),
    };
    headers.push(("x-probe-metric-typed", typed));
    headers
}

/// `callout-tokens`: the value of its request header and the tokens of the calls it started.
pub(crate) fn callout_tokens(http_cluster: &str, grpc_cluster: &str) -> (String, Vec<u32>) {
    let http = |cluster: &str, authority: bool| {
        let mut headers = vec![(":method", "GET"), (":path", "/token")];
        if authority {
            headers.push((":authority", cluster));
        }
        hostcalls::dispatch_http_call(cluster, headers, None, vec![], TIMEOUT)
    };
    let grpc = |cluster: &str| {
        hostcalls::dispatch_grpc_call(cluster, "probe.v1.Tokens", "Take", vec![], None, TIMEOUT)
    };
    let attempts = [
        ("unknown-http", http(UNKNOWN_CLUSTER, true)),
        ("unknown-grpc", grpc(UNKNOWN_CLUSTER)),
        ("no-authority", http(http_cluster, false)),
        ("http", http(http_cluster, true)),
        ("grpc", grpc(grpc_cluster)),
        ("http", http(http_cluster, true)),
    ];
    let shown: Vec<String> = attempts
        .iter()
        .map(|(what, result)| format!("{what}={}", value(*result)))
        .collect();
    let tokens = attempts
        .iter()
        .filter_map(|(_, result)| result.ok())
        .collect();
    (shown.join(" "), tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_actions_parse() {
        assert_eq!(IdAction::parse("metric-ids"), Some(IdAction::MetricIds));
        assert_eq!(
            IdAction::parse("callout-tokens"),
            Some(IdAction::CalloutTokens)
        );
        assert_eq!(IdAction::parse("count"), None);
    }

    #[test]
    fn results_render_as_ok_values_or_error_codes() {
        assert_eq!(done(Ok(())), "ok");
        assert_eq!(done(Err(Status::NotFound)), "error:1");
        assert_eq!(value(Ok(8_u32)), "8");
        assert_eq!(value::<u64>(Err(Status::BadArgument)), "error:2");
    }
}
