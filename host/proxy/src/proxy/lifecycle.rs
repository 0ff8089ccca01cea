//! Plugin start-up and teardown as cpp-host runs them for Envoy: base VM (initialised only),
//! canary (started, configured, thrown away), one VM per worker; at the end each root context
//! gets `proxy_on_done`, then `proxy_on_delete` once it is done.

use std::sync::Arc;

use super::{Proxy, Worker, describe};
use crate::scenario::Outcome;
use crate::state::{Phase, VmState};
use crate::vm::{Callback, Vm, VmError};
use palisade_runtime::EvalError;

/// Why a VM of the plugin could not be started; Envoy then refuses the configuration.
#[derive(Debug, thiserror::Error)]
pub(super) enum StartError {
    /// Instantiating the module or its `_initialize`/`main`/`_start` failed.
    #[error("{vm}: initialising the module failed")]
    Initialise {
        /// The VM's label (`base`, `canary`, `worker-N`).
        vm: String,
        /// What went wrong.
        #[source]
        source: EvalError,
    },
    /// A start-up callback failed (trap, deadline, memory cap).
    #[error("{vm}: {callback} failed")]
    Callback {
        /// The VM's label.
        vm: String,
        /// The callback's name.
        callback: &'static str,
        /// What went wrong.
        #[source]
        source: VmError,
    },
    /// `proxy_on_vm_start` or `proxy_on_configure` returned false.
    #[error("{vm}: {callback} returned false: the plugin rejected its configuration")]
    Rejected {
        /// The VM's label.
        vm: String,
        /// The callback's name.
        callback: &'static str,
    },
}

impl Proxy<'_> {
    /// Envoy's plugin start: the base VM (initialised only), the canary (started, configured,
    /// thrown away), then one VM per worker. Any failure rejects the plugin.
    pub(super) fn start(&mut self) {
        match Vm::start(
            self.filter,
            self.vm_state("base", usize::MAX),
            self.options.limits,
        ) {
            Ok(mut base) => self.note_startup(&mut base),
            Err(source) => {
                let error = StartError::Initialise {
                    vm: "base".into(),
                    source,
                };
                self.report.rejected = Some(describe(&error));
                return;
            }
        }
        match self.configured_vm("canary", usize::MAX) {
            Ok(canary) => drop(canary),
            Err(error) => {
                self.report.rejected = Some(describe(&error));
                return;
            }
        }
        for index in 0..self.concurrency {
            if let Err(error) = self.start_worker(index) {
                self.report.rejected = Some(describe(&error));
                return;
            }
        }
        self.report.accepted = true;
    }

    /// Starts (or, after a failure, replaces) the VM of worker `index` and arms what its
    /// start-up asked for.
    pub(super) fn start_worker(&mut self, index: usize) -> Result<(), StartError> {
        let label = format!("worker-{index}");
        let vm = self.configured_vm(&label, index)?;
        let now = self.shared.now();
        match self.workers.get_mut(index) {
            Some(worker) => {
                let old = std::mem::replace(&mut worker.vm, vm);
                worker.generation = worker.generation.wrapping_add(1);
                worker.failed_at = None;
                worker.tick_period = 0;
                worker.next_tick = None;
                worker.tick_queued = false;
                // Streams still held by the failed VM end with it; they never finished.
                self.file_pending(old);
            }
            None => self.workers.push(Worker {
                vm,
                generation: 1,
                label,
                tick_period: 0,
                next_tick: None,
                tick_queued: false,
                failed_at: None,
            }),
        }
        self.settle(index, now);
        Ok(())
    }

    fn vm_state(&self, label: &str, index: usize) -> VmState {
        VmState::new(
            label.to_owned(),
            index,
            Arc::clone(&self.plugin),
            Arc::clone(&self.shared),
            self.options.limits.memory,
            self.options.trace,
        )
    }

    fn note_startup(&mut self, vm: &mut Vm) {
        let label = vm.store.data().label.clone();
        for call in std::mem::take(&mut vm.store.data_mut().callback_log) {
            self.report.startup.push(format!("{label}: {call}"));
        }
    }

    /// Starts and configures one VM as cpp-host does for a plugin: root context 1, then
    /// `on_vm_start(root, vm_config_size)` and `on_configure(root, plugin_config_size)`.
    fn configured_vm(&mut self, label: &str, index: usize) -> Result<Vm, StartError> {
        let state = self.vm_state(label, index);
        let mut vm = Vm::start(self.filter, state, self.options.limits).map_err(|source| {
            StartError::Initialise {
                vm: label.to_owned(),
                source,
            }
        })?;
        let root = vm.store.data_mut().allocate_context();
        vm.store.data_mut().root = root;
        let vm_size = i32::try_from(self.plugin.vm_configuration.len()).unwrap_or(i32::MAX);
        let plugin_size = i32::try_from(self.plugin.plugin_configuration.len()).unwrap_or(i32::MAX);
        let steps = [
            (Callback::ContextCreate, 0, false),
            (Callback::VmStart, vm_size, true),
            (Callback::Configure, plugin_size, true),
        ];
        for (callback, arg, may_refuse) in steps {
            let result = vm.call(callback, root, &[arg]);
            self.note_startup(&mut vm);
            match result {
                Err(source) => {
                    return Err(StartError::Callback {
                        vm: label.to_owned(),
                        callback: callback.name(),
                        source,
                    });
                }
                Ok(Some(0)) if may_refuse => {
                    return Err(StartError::Rejected {
                        vm: label.to_owned(),
                        callback: callback.name(),
                    });
                }
                Ok(_) => {}
            }
        }
        let state = vm.store.data_mut();
        state.phase = Phase::Running;
        state.record_callbacks = false;
        Ok(vm)
    }

    /// The scenario ended: streams still paused are reported as pending (ticks would fire
    /// forever, so the clock is not run on); then the plugin is torn down as Envoy does it:
    /// each root context gets `proxy_on_done`, and `proxy_on_delete` once it is done (at once,
    /// or after it calls `proxy_done` when `on_done` returned false).
    pub(super) fn finish(&mut self) {
        // The streams stay in their tables: a root context's `proxy_on_done` may still make
        // one of them its effective context.
        for worker in &self.workers {
            for stream in worker.vm.store.data().streams.values() {
                let mut report = stream.progress.report.clone();
                report.outcome = Outcome::Pending;
                if let Some(entry) = self.requests.get_mut(stream.progress.slot) {
                    *entry = Some(report);
                }
            }
        }
        for worker in &mut self.workers {
            let vm = &mut worker.vm;
            if vm.failed() {
                continue;
            }
            let label = worker.label.clone();
            let root = vm.store.data().root;
            vm.store.data_mut().record_callbacks = true;
            let done = vm.call(Callback::Done, root, &[]);
            let finished = match done {
                Ok(Some(0)) => vm.store.data().done,
                Ok(_) => true,
                Err(e) => {
                    self.report.failures.push(format!("{label}: {e}"));
                    continue;
                }
            };
            if finished && let Err(e) = vm.call(Callback::Delete, root, &[]) {
                self.report.failures.push(format!("{label}: {e}"));
            }
            for call in std::mem::take(&mut vm.store.data_mut().callback_log) {
                self.report.shutdown.push(format!("{label}: {call}"));
            }
            if !finished {
                self.report.shutdown.push(format!(
                    "{label}: root context {root} still finishing (proxy_on_done returned false and proxy_done was not called)"
                ));
            }
        }
    }

    /// Files the reports of the streams a replaced VM still held as pending.
    fn file_pending(&mut self, mut vm: Vm) {
        for (_, mut stream) in std::mem::take(&mut vm.store.data_mut().streams) {
            stream.progress.report.outcome = Outcome::Pending;
            self.file(stream);
        }
    }
}
