//! The virtual clock: tick timers, shared-queue notifications and callout answers run in time
//! order; after each successful callback its worker is settled (timer re-armed, new callouts and
//! notices scheduled, streams the module resumed, answered or reset moved on).

use std::time::Duration;

use super::Proxy;
use crate::scenario::CalloutReply;
use crate::state::CalloutKind;
use crate::vm::Callback;

/// Something due at a point of virtual time.
#[derive(Debug, Clone)]
pub(super) enum Event {
    /// The tick timer of a worker's VM fires (`proxy_on_tick` on its root context).
    Tick { worker: usize, generation: u64 },
    /// A shared queue the worker's root context registered has items
    /// (`proxy_on_queue_ready`).
    Queue {
        worker: usize,
        root: u32,
        token: u32,
    },
    /// A callout's answer arrives (or its timeout expires).
    Callout {
        worker: usize,
        generation: u64,
        token: u32,
        kind: CalloutKind,
        reply: CalloutReply,
        timed_out: bool,
    },
}

impl Proxy<'_> {
    pub(super) fn schedule(&mut self, at: u64, event: Event) {
        self.seq = self.seq.wrapping_add(1);
        self.events.insert((at, self.seq), event);
    }

    /// Runs every event due at or before `until`, in order, moving the clock with them.
    pub(super) fn drain(&mut self, until: u64) {
        while let Some((&(at, seq), _)) = self.events.iter().next() {
            if at > until {
                break;
            }
            let Some(event) = self.events.remove(&(at, seq)) else {
                break;
            };
            self.shared.set_now(at);
            self.dispatch(event);
        }
        self.shared.set_now(until);
    }

    /// Moves the clock on by `by`, running what falls due.
    pub(super) fn advance(&mut self, by: Duration) {
        let until = self
            .shared
            .now()
            .saturating_add(u64::try_from(by.as_nanos()).unwrap_or(u64::MAX));
        self.drain(until);
    }

    fn dispatch(&mut self, event: Event) {
        match event {
            Event::Tick { worker, generation } => {
                if let Some(w) = self.workers.get_mut(worker)
                    && w.generation == generation
                {
                    w.tick_queued = false;
                }
                let Some(vm) = self.live_vm(worker, generation) else {
                    return;
                };
                let root = vm.store.data().root;
                let result = vm.call(Callback::Tick, root, &[]);
                let now = self.shared.now();
                if let Some(w) = self.workers.get_mut(worker) {
                    w.next_tick = None;
                    if w.tick_period > 0 {
                        w.next_tick = Some(now.saturating_add(w.tick_period));
                    }
                }
                self.after(worker, result.err(), now);
            }
            Event::Queue {
                worker,
                root,
                token,
            } => {
                let generation = self.generation(worker);
                let Some(vm) = self.live_vm(worker, generation) else {
                    return;
                };
                let result = vm.call(Callback::QueueReady, root, &[token.cast_signed()]);
                let now = self.shared.now();
                self.after(worker, result.err(), now);
            }
            Event::Callout {
                worker,
                generation,
                token,
                kind,
                reply,
                timed_out,
            } => {
                self.deliver(worker, generation, token, &kind, &reply, timed_out);
            }
        }
    }

    /// Brings `worker` up to date after a successful callback (or its start): re-arms the tick
    /// timer if the period changed, schedules the callouts and queue notices the module caused,
    /// and moves on the streams it resumed, answered or reset.
    pub(super) fn settle(&mut self, worker: usize, now: u64) {
        let generation = self.generation(worker);
        let Some(w) = self.workers.get_mut(worker) else {
            return;
        };
        let state = w.vm.store.data_mut();
        let callouts = std::mem::take(&mut state.callouts);
        let period = state.tick_period_ms.saturating_mul(1_000_000);
        if period != w.tick_period {
            w.tick_period = period;
            w.next_tick = (period > 0).then(|| now.saturating_add(period));
        }
        if let Some(at) = w.next_tick
            && !w.tick_queued
        {
            w.tick_queued = true;
            self.schedule(at, Event::Tick { worker, generation });
        }
        self.answer_callouts(worker, generation, now, callouts);
        for notice in self.shared.take_notices() {
            self.schedule(
                now,
                Event::Queue {
                    worker: notice.vm,
                    root: notice.root,
                    token: notice.token,
                },
            );
        }
        // Streams the module resumed or answered from another context.
        for key in self.open_streams(worker, false) {
            if self.take_actions(key) {
                self.pump(key);
            }
        }
    }
}
