//! The root (plugin) context: VM start, configuration, metrics definition, ticks, the shared
//! queue, and resuming the requests that `continue-later` parked.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, MetricType};

use crate::http::ProbeHttp;
use crate::shared::{Counted, DEQUEUED_KEY, TICKS_KEY, cas_increment, status_code};

/// The plugin configuration (JSON; an empty configuration is `{}`).
#[derive(Debug, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Settings {
    /// `on_configure` returns false.
    reject: bool,
    /// Tick period to ask for, in milliseconds (0 disables).
    tick_ms: Option<u64>,
    /// Shared queue to register.
    queue: Option<String>,
    /// Environment variable to read and log.
    env: Option<String>,
    /// Cluster of the `callout` and `count-race` HTTP calls.
    http_cluster: String,
    /// Cluster of the `grpc` call.
    grpc_cluster: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            reject: false,
            tick_ms: None,
            queue: None,
            env: None,
            http_cluster: "authz".to_owned(),
            grpc_cluster: "grpc-authz".to_owned(),
        }
    }
}

/// Metric ids returned by `proxy_define_metric`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Metrics {
    /// Counter `probe_requests`.
    pub(crate) requests: u32,
    /// Gauge `probe_inflight`.
    pub(crate) inflight: u32,
    /// Histogram `probe_body_bytes`.
    pub(crate) body_bytes: u32,
}

/// What HTTP contexts need from the last successful configuration.
#[derive(Debug)]
pub(crate) struct Runtime {
    /// Cluster of the HTTP callouts.
    pub(crate) http_cluster: String,
    /// Cluster of the gRPC callout.
    pub(crate) grpc_cluster: String,
    /// Metric ids, once defined.
    pub(crate) metrics: Option<Metrics>,
}

impl Default for Runtime {
    fn default() -> Self {
        let settings = Settings::default();
        Self {
            http_cluster: settings.http_cluster,
            grpc_cluster: settings.grpc_cluster,
            metrics: None,
        }
    }
}

/// Context ids of the requests parked by `continue-later`, shared by a root and its streams.
/// A `Cell` (take/set) rather than a `RefCell`: no borrow can fail.
pub(crate) type Parked = Rc<Cell<Vec<u32>>>;

/// The root context.
pub(crate) struct ProbeRoot {
    runtime: Rc<Runtime>,
    parked: Parked,
}

impl ProbeRoot {
    pub(crate) fn new() -> Self {
        Self {
            runtime: Rc::new(Runtime::default()),
            parked: Rc::new(Cell::new(Vec::new())),
        }
    }

    fn define_metrics() -> Option<Metrics> {
        let define = |kind, name| match hostcalls::define_metric(kind, name) {
            Ok(id) => Some(id),
            Err(status) => {
                log::error!("define_metric {name} failed: {}", status_code(status));
                None
            }
        };
        Some(Metrics {
            requests: define(MetricType::Counter, "probe_requests")?,
            inflight: define(MetricType::Gauge, "probe_inflight")?,
            body_bytes: define(MetricType::Histogram, "probe_body_bytes")?,
        })
    }

    fn resume_parked(&self) {
        for id in self.parked.take() {
            if let Err(status) = hostcalls::set_effective_context(id) {
                log::warn!("set_effective_context {id} failed: {}", status_code(status));
                continue;
            }
            match hostcalls::resume_http_request() {
                Ok(()) => log::debug!("resumed {id}"),
                Err(status) => log::warn!("resume {id} failed: {}", status_code(status)),
            }
        }
    }
}

impl Context for ProbeRoot {}

impl RootContext for ProbeRoot {
    fn on_vm_start(&mut self, vm_configuration_size: usize) -> bool {
        let config =
            match hostcalls::get_buffer(BufferType::VmConfiguration, 0, vm_configuration_size) {
                Ok(bytes) => bytes.unwrap_or_default(),
                Err(status) => {
                    log::warn!(
                        "reading the vm configuration failed: {}",
                        status_code(status)
                    );
                    Vec::new()
                }
            };
        log::info!("vm_start {}", String::from_utf8_lossy(&config));
        true
    }

    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let raw = match hostcalls::get_buffer(
            BufferType::PluginConfiguration,
            0,
            plugin_configuration_size,
        ) {
            Ok(bytes) => bytes.unwrap_or_default(),
            Err(status) => {
                log::error!(
                    "reading the plugin configuration failed: {}",
                    status_code(status)
                );
                return false;
            }
        };
        let json: &[u8] = if raw.is_empty() { b"{}" } else { &raw };
        let settings: Settings = match serde_json::from_slice(json) {
            Ok(settings) => settings,
            Err(error) => {
                log::error!("bad configuration: {error}");
                return false;
            }
        };
        if settings.reject {
            log::warn!("configuration rejected on request");
            return false;
        }
        let Ok(tick) = settings.tick_ms.map(u32::try_from).transpose() else {
            log::error!("bad configuration: tick_ms does not fit 32 bits");
            return false;
        };

        let metrics = Self::define_metrics();
        if let Some(ms) = tick
            && let Err(status) = hostcalls::set_tick_period(Duration::from_millis(u64::from(ms)))
        {
            log::error!("set_tick_period failed: {}", status_code(status));
        }
        if let Some(name) = &settings.queue {
            match hostcalls::register_shared_queue(name) {
                Ok(id) => log::debug!("registered queue {name} as {id}"),
                Err(status) => log::error!("register_shared_queue failed: {}", status_code(status)),
            }
        }
        if let Some(name) = &settings.env {
            let value = std::env::var_os(name).map_or_else(
                || "<unset>".to_owned(),
                |value| value.to_string_lossy().into_owned(),
            );
            log::info!("env {name}={value}");
        }
        self.runtime = Rc::new(Runtime {
            http_cluster: settings.http_cluster,
            grpc_cluster: settings.grpc_cluster,
            metrics,
        });
        log::info!("configured {}", String::from_utf8_lossy(json));
        true
    }

    fn on_tick(&mut self) {
        match cas_increment(TICKS_KEY) {
            Ok(Counted::Done { value, .. }) => log::debug!("tick {value}"),
            Ok(Counted::GaveUp) => log::warn!("tick not counted"),
            Err(status) => log::warn!("tick not counted: {}", status_code(status)),
        }
        self.resume_parked();
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        loop {
            match hostcalls::dequeue_shared_queue(queue_id) {
                Ok(Some(item)) => {
                    log::info!("dequeued {}", String::from_utf8_lossy(&item));
                    if let Err(status) = cas_increment(DEQUEUED_KEY) {
                        log::warn!("dequeued not counted: {}", status_code(status));
                    }
                }
                Ok(None) => break,
                Err(status) => {
                    log::warn!("dequeue {queue_id} failed: {}", status_code(status));
                    break;
                }
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(ProbeHttp::new(
            context_id,
            Rc::clone(&self.runtime),
            Rc::clone(&self.parked),
        )))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[expect(clippy::unwrap_used, reason = "tests")]
    #[test]
    fn settings_default_and_reject_unknown_fields() {
        let empty: Settings = serde_json::from_str("{}").unwrap();
        assert_eq!(empty.http_cluster, "authz");
        assert_eq!(empty.grpc_cluster, "grpc-authz");
        assert!(!empty.reject);
        let full: Settings = serde_json::from_str(
            r#"{"reject":true,"tick_ms":5,"queue":"probe","env":"HOME","http_cluster":"a","grpc_cluster":"b"}"#,
        )
        .unwrap();
        assert!(full.reject);
        assert_eq!(full.tick_ms, Some(5));
        assert!(serde_json::from_str::<Settings>(r#"{"nope":1}"#).is_err());
        assert!(serde_json::from_str::<Settings>(r#"{"reject":"yes"}"#).is_err());
    }
}
