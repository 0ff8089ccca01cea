//! Host of proxy-wasm filters (ABI 0.2.1 and 0.2.0), an offline stand-in for Envoy: the module
//! is started as Envoy starts a plugin (canary, then one VM per worker), HTTP streams go through
//! it in Envoy's callback order, and every hostcall answers with Envoy's status for the case.
//! Scenarios ([`Scenario`]) describe the plugin, connection, upstream clusters and requests; a
//! [`Report`] says what the client, the upstream and the stats saw.
//!
//! The modules below follow the spec's sections; none of them knows files, YAML or the CLI.
//! Compilation, deadlines and memory caps come from `palisade-runtime`'s engine; the admission
//! webhook does not depend on this crate.

#[doc(hidden)]
pub mod fuzzing;
mod header_map;
mod hostcalls;
mod properties;
mod proxy;
mod scenario;
mod shared;
mod state;
mod stream;
mod types;
mod vm;

pub use header_map::HeaderMap;
pub use properties::{Connection, Node};
pub use proxy::{RunOptions, run};
pub use scenario::{
    Body, CalloutReply, CalloutReport, Delivered, Exchange, FailStrategy, Forwarded, Headers,
    Outcome, PluginConfig, Report, Request, RequestReport, Response, Scenario, Step,
};
pub use shared::{LogLine, Metric, SharedValue};
pub use types::{LogLevel, MetricType};
pub use vm::Filter;

#[cfg(test)]
mod tests;
