//! Per-evaluation limits and the store-side enforcement of the memory cap.

use std::time::Duration;

/// Limits applied to every evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock budget of one evaluation, enforced with epoch interruption.
    pub timeout: Duration,
    /// Cap on the guest's linear memory (and table elements) in bytes.
    pub memory: usize,
}

impl Default for Limits {
    /// 1 s and 64 MiB: far above what a policy needs, low enough to contain a runaway guest.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(1),
            memory: 64 << 20,
        }
    }
}

/// Enforces [`Limits::memory`] and remembers a refusal, so the trap that follows can be
/// reported as a memory-limit error rather than a plain trap (see [`EvalError::classify`]).
/// Install it with `Store::limiter`, one per store.
///
/// [`EvalError::classify`]: crate::EvalError::classify
#[derive(Debug)]
pub struct MemoryCap {
    limit: usize,
    pub(crate) refused: Option<usize>,
}

impl MemoryCap {
    /// A cap of `limit` bytes of linear memory (and table elements at 8 bytes each).
    #[must_use]
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            refused: None,
        }
    }

    /// The size a guest asked to grow its memory to when the cap refused it, if it did.
    #[must_use]
    pub fn refused(&self) -> Option<usize> {
        self.refused
    }
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.refused = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // A table element is at least a pointer: bound tables by the same budget.
        Ok(desired.saturating_mul(8) <= self.limit)
    }
}
