//! On-disk cache of compiled modules: the native code wasmtime produced for a module's bytes on
//! this engine, keyed by the module's SHA-256 and the engine's compatibility hash.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::LoadError;

/// Whether a load was served from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// No cache is configured.
    Disabled,
    /// Compiled now and stored.
    Miss,
    /// Loaded from the cache without compiling.
    Hit,
}

/// A directory of compiled artefacts.
#[derive(Debug, Clone)]
pub struct ModuleCache {
    dir: PathBuf,
}

impl ModuleCache {
    /// A cache in `dir` (created on first store).
    #[must_use]
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The cache entry for `bytes` on `engine`.
    fn entry(&self, engine: &wasmtime::Engine, bytes: &[u8]) -> PathBuf {
        let digest = hex::encode(Sha256::digest(bytes));
        // DefaultHasher::new() has fixed keys, so the name is stable across processes of one
        // build; a different build names a different file, and wasmtime re-checks on load.
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        self.dir
            .join(format!("{digest}-{:016x}.cwasm", hasher.finish()))
    }

    /// Loads the compiled artefact for `bytes` from the cache, or compiles and stores it.
    pub(crate) fn load<A: Artefact>(
        &self,
        engine: &wasmtime::Engine,
        bytes: &[u8],
    ) -> Result<(A, CacheStatus), LoadError> {
        let path = self.entry(engine, bytes);
        if path.is_file() {
            match A::deserialize_file(engine, &path) {
                Ok(artefact) => return Ok((artefact, CacheStatus::Hit)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "discarding an unusable cache entry")
                }
            }
        }
        let artefact = A::compile(engine, bytes).map_err(LoadError::Compile)?;
        let serialized = artefact.serialize().map_err(LoadError::Compile)?;
        store(&path, &serialized).map_err(|source| LoadError::Cache {
            path: path.clone(),
            source,
        })?;
        Ok((artefact, CacheStatus::Miss))
    }
}

/// What the cache stores: a compiled component or core module.
pub(crate) trait Artefact: Sized {
    /// Compiles `bytes` with Cranelift.
    fn compile(engine: &wasmtime::Engine, bytes: &[u8]) -> wasmtime::Result<Self>;
    /// The native artefact to store.
    fn serialize(&self) -> wasmtime::Result<Vec<u8>>;
    /// Loads an artefact this cache stored.
    fn deserialize_file(engine: &wasmtime::Engine, path: &Path) -> wasmtime::Result<Self>;
}

/// Components and core modules have the same compile/serialize/deserialize API.
macro_rules! artefact {
    ($type:ty) => {
        impl Artefact for $type {
            fn compile(engine: &wasmtime::Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
                Self::new(engine, bytes)
            }

            fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
                Self::serialize(self)
            }

            fn deserialize_file(engine: &wasmtime::Engine, path: &Path) -> wasmtime::Result<Self> {
                // SAFETY: the file is one this cache wrote (named by the SHA-256 of its source
                // and the engine's compatibility hash, written to a temporary name and renamed
                // into place, so never seen half-written); wasmtime checks its header and engine
                // compatibility before use. The cache directory must not be writable by others.
                #[expect(unsafe_code, reason = "loading our own precompiled artefact")]
                unsafe {
                    Self::deserialize_file(engine, path)
                }
            }
        }
    };
}

artefact!(wasmtime::component::Component);
artefact!(wasmtime::Module);

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, then a rename.
fn store(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map(drop).map_err(|e| e.error)
}
