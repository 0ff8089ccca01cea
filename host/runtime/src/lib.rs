//! Palisade's wasmtime host: the [`Engine`] (deadlines, memory caps, compiled-module cache) and
//! one module per guest ABI. Front-ends (CLI, webhook) do all IO; nothing here knows HTTP or
//! argument parsing.

mod abi;
mod cache;
pub mod component;
mod engine;
mod error;
mod limits;
pub mod proxy_wasm;
pub mod review;

pub use abi::Abi;
pub use cache::CacheStatus;
pub use cache::ModuleCache;
pub use engine::{Engine, EngineConfig};
pub use error::{EvalError, LoadError};
pub use limits::Limits;
