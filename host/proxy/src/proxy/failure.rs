//! Envoy's failure policy once a VM has failed (trap, deadline, memory cap): it is never called
//! again; its streams and later ones pass as if the filter were absent (FAIL_OPEN) or get 503
//! `wasm_fail_stream`, until FAIL_RELOAD replaces the VM after its backoff.

use super::{Proxy, StreamKey};
use crate::scenario::{FailStrategy, Outcome};
use crate::stream::{Outgoing, Stage};
use crate::vm::VmError;

/// Envoy's default FAIL_RELOAD backoff base interval.
const RELOAD_BACKOFF: u64 = 1_000_000_000;

impl Proxy<'_> {
    /// After any callback on `worker`: a failure fails the VM and its streams; otherwise the
    /// worker is settled.
    pub(super) fn after(&mut self, worker: usize, error: Option<VmError>, now: u64) {
        if let Some(error) = error {
            self.fail_worker(worker, &error, now);
            return;
        }
        self.settle(worker, now);
    }

    /// A VM failed: it is never called again; its streams take the fail path now, and later
    /// requests follow the failure policy.
    pub(super) fn fail_worker(&mut self, worker: usize, error: &VmError, now: u64) {
        let label = self
            .workers
            .get(worker)
            .map(|w| w.label.clone())
            .unwrap_or_default();
        self.report.failures.push(format!("{label}: {error}"));
        if let Some(w) = self.workers.get_mut(worker) {
            w.failed_at = Some(now);
            w.next_tick = None;
        }
        for key in self.open_streams(worker, true) {
            self.fail_stream(key);
        }
    }

    /// Sends a stream down the fail path: bypassed (FAIL_OPEN) or answered with a 503; it
    /// moves on now unless one of its callbacks is still running.
    pub(super) fn fail_stream(&mut self, key: StreamKey) {
        let fail = self.fail;
        let Some(stream) = self.stream_mut(key) else {
            return;
        };
        let progress = &mut stream.progress;
        progress.bypass = true;
        progress.paused = false;
        if fail == FailStrategy::FailOpen {
            if progress.outcome.is_none() {
                progress.outcome = Some(Outcome::FailOpen);
            }
        } else {
            progress.outcome = Some(Outcome::FailClosed);
            progress.stage = Stage::ResponseHeaders;
            progress.chunk = 0;
            progress.outgoing = Some(Outgoing {
                status: 503,
                details: "wasm_fail_stream".into(),
                headers: Vec::new(),
                body: Vec::new(),
                trailers: None,
            });
        }
        if !progress.busy {
            self.pump(key);
        }
    }

    /// Whether `worker` has a VM for a new stream, replacing a failed one under FAIL_RELOAD
    /// once the backoff has passed (a failed restart counts as a new failure).
    pub(super) fn vm_for_request(&mut self, worker: usize) -> bool {
        let now = self.shared.now();
        let Some(w) = self.workers.get(worker) else {
            return false;
        };
        if !w.vm.failed() {
            return true;
        }
        let backoff_over = w
            .failed_at
            .is_some_and(|at| now >= at.saturating_add(RELOAD_BACKOFF));
        if self.fail != FailStrategy::FailReload || !backoff_over {
            return false;
        }
        if let Err(error) = self.start_worker(worker) {
            self.report
                .failures
                .push(format!("reloading: {}", super::describe(&error)));
            if let Some(w) = self.workers.get_mut(worker) {
                w.failed_at = Some(now);
            }
            return false;
        }
        true
    }
}
