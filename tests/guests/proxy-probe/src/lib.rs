#![doc = include_str!("../README.md")]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod http;
mod ids;
mod root;
mod shared;

use proxy_wasm::traits::RootContext;
use proxy_wasm::types::LogLevel;

/// The module's `_initialize` export. Only SDK registration here: Envoy (V8) traps any
/// `proxy_*` call but `proxy_log` while `_initialize` runs (reference 1.2, start-up gotcha).
mod init {
    use super::{LogLevel, RootContext, root};

    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Trace);
        proxy_wasm::set_root_context(|_context_id| -> Box<dyn RootContext> {
            Box::new(root::ProbeRoot::new())
        });
    }}
}
