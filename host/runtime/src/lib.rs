//! Palisade's wasmtime host: the [`Engine`] (deadlines, memory caps, compiled-module cache),
//! the one [`admission`] API over every admission ABI, and a module per admission ABI. The
//! proxy-wasm host (crate `palisade-proxy`) builds on the engine's pieces exported here.
//! Front-ends (CLI, webhook) do all IO; nothing here knows HTTP or argument parsing.

mod abi;
pub mod admission;
mod cache;
pub mod capabilities;
mod component;
pub mod documents;
mod engine;
mod error;
pub mod kubewarden;
mod limits;

pub use abi::Abi;
pub use admission::review;
pub use cache::CacheStatus;
pub use cache::ModuleCache;
pub use engine::{Engine, EngineConfig, Profiler, Ticker};
pub use error::{EvalError, LoadError, chain};
pub use limits::{Limits, MemoryCap};
