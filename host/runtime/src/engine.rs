//! The shared wasmtime engine: compilation settings, the epoch ticker behind every deadline, and
//! the compiled-module cache. One per process; every ABI module compiles and runs through it.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::cache::{Artefact, CacheStatus, ModuleCache};
use crate::{Limits, LoadError};

/// How to build an [`Engine`].
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Directory of the compiled-module cache; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// How often the epoch advances; deadlines are rounded up to whole ticks.
    pub tick: Duration,
    /// Limits given to policies that do not set their own.
    pub limits: Limits,
    /// Whether compiled guest code is described to an outside profiler.
    pub profiler: Profiler,
}

/// Which outside profiler compiled guest code is described to, so that samples in guest code
/// are attributed to the guest's own functions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Profiler {
    /// None (the default).
    #[default]
    None,
    /// Linux `perf`, through `/tmp/perf-<pid>.map`.
    PerfMap,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            tick: Duration::from_millis(10),
            limits: Limits::default(),
            profiler: Profiler::None,
        }
    }
}

/// A wasmtime engine with epoch-based deadlines and an optional on-disk cache of compiled code.
pub struct Engine {
    inner: wasmtime::Engine,
    cache: Option<ModuleCache>,
    config: EngineConfig,
    ticker: Arc<Ticker>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Builds the engine and starts its epoch ticker thread.
    ///
    /// # Errors
    /// [`LoadError::Compile`] when wasmtime rejects the configuration (for example a CPU it
    /// cannot generate code for).
    pub fn new(config: EngineConfig) -> Result<Self, LoadError> {
        let mut wasm = wasmtime::Config::new();
        wasm.epoch_interruption(true)
            .wasm_component_model(true)
            .cranelift_opt_level(wasmtime::OptLevel::Speed);
        if config.profiler == Profiler::PerfMap {
            wasm.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let inner = wasmtime::Engine::new(&wasm).map_err(LoadError::Compile)?;
        let cache = config.cache_dir.clone().map(ModuleCache::new);
        let ticker = Arc::new(Ticker::start(inner.clone(), config.tick));
        Ok(Self {
            inner,
            cache,
            config,
            ticker,
        })
    }

    /// The underlying wasmtime engine.
    #[must_use]
    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner
    }

    /// The limits policies get unless they set their own.
    #[must_use]
    pub fn default_limits(&self) -> Limits {
        self.config.limits
    }

    /// A handle that keeps the epoch ticker running while held: whatever runs guest code on
    /// this engine holds one, so its deadlines keep firing after the `Engine` itself is dropped.
    #[must_use]
    pub fn ticker(&self) -> Arc<Ticker> {
        Arc::clone(&self.ticker)
    }

    /// How often the epoch advances: an epoch deadline of `n` ticks fires after `n - 1` to `n`
    /// of these.
    #[must_use]
    pub fn tick(&self) -> Duration {
        self.config.tick
    }

    /// Compiles a core module for this engine, through the compiled-module cache when one is
    /// configured, and says whether the cache served it. Hosts of core-module ABIs (the
    /// proxy-wasm host) load their modules with this.
    ///
    /// # Errors
    /// [`LoadError::Compile`] when wasmtime rejects the module; [`LoadError::Cache`] when the
    /// compiled code cannot be stored in the cache.
    pub fn compile_module(
        &self,
        bytes: &[u8],
    ) -> Result<(wasmtime::Module, CacheStatus), LoadError> {
        self.compile(bytes)
    }

    /// Compiles a component or core module, through the cache when one is configured.
    pub(crate) fn compile<A: Artefact>(&self, bytes: &[u8]) -> Result<(A, CacheStatus), LoadError> {
        match &self.cache {
            Some(cache) => cache.load(&self.inner, bytes),
            None => A::compile(&self.inner, bytes)
                .map(|a| (a, CacheStatus::Disabled))
                .map_err(LoadError::Compile),
        }
    }
}

/// Advances the engine's epoch every tick until the last holder drops it. Whatever runs guest
/// code holds one (see [`Engine::ticker`]), so deadlines keep firing even after the `Engine`
/// value itself is gone. Nothing to call: holding it is the point.
#[derive(Debug)]
pub struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: wasmtime::Engine, tick: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("palisade-epoch".into())
            .spawn(move || {
                // Parked rather than asleep, so that dropping the ticker wakes it at once: a
                // short-lived process (`palisade run`) does not wait out a tick to exit.
                let mut next = Instant::now() + tick;
                while !flag.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    if now < next {
                        std::thread::park_timeout(next - now);
                        continue;
                    }
                    engine.increment_epoch();
                    next += tick;
                }
            })
            .unwrap_or_else(|e| {
                // Without a ticker no deadline would ever fire: refuse to run rather than hang.
                tracing::error!(error = %e, "cannot start the epoch ticker thread");
                std::process::abort()
            });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            // The thread only sleeps and bumps a counter; a join error would mean it panicked,
            // which leaves nothing to clean up.
            let _ = thread.join();
        }
    }
}
