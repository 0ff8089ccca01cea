//! Envoy's token bucket as its local rate limit uses it today (`AtomicTokenBucketImpl`,
//! envoyproxy/envoy `source/common/common/token_bucket_impl.cc`, the only implementation since
//! envoy#38197): the bucket keeps one "time zero" t0, and holds
//! `min(max_tokens, (now - t0) * rate)` tokens, with `rate = tokens_per_fill / fill_interval`.
//! Refill is continuous (not in steps of `tokens_per_fill`), needs no timer, and a take moves
//! t0 forward. It starts full.
//!
//! Here t0 is kept exactly, in nanoseconds times `tokens_per_fill` ("scaled time"), so that
//! every quantity is an integer: tokens at `now` = `(now * tpf - t0s) / fill_interval_ns`.

use std::time::Duration;

/// A bucket's shape, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// The most tokens it holds (and holds at first).
    pub max_tokens: u64,
    /// Tokens gained per `fill_interval`.
    pub tokens_per_fill: u64,
    /// The interval, in nanoseconds (at least 50 ms, as Envoy requires).
    pub fill_interval_ns: u64,
}

/// A bucket's state: its scaled time zero. `0` is a full bucket at any real time.
pub type State = u128;

/// What a take gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Take {
    /// Whether the tokens were there (and are now taken).
    pub allowed: bool,
    /// Whole tokens left after this take.
    pub remaining: u64,
}

impl Shape {
    fn scaled(&self, now_ns: u128) -> u128 {
        if self.tokens_per_fill == 1 {
            return now_ns;
        }
        now_ns.saturating_mul(u128::from(self.tokens_per_fill))
    }

    fn span(&self) -> u128 {
        product(self.max_tokens, self.fill_interval_ns)
    }

    /// The state read at scaled time `now`: a time zero later than now (the clock went back)
    /// is taken as an empty bucket that fills from now on, and one older than a full bucket's
    /// worth as full.
    fn settled(&self, state: State, now: u128) -> State {
        state.min(now).max(now.saturating_sub(self.span()))
    }

    /// Whole tokens in a settled bucket at scaled time `now`.
    fn whole_tokens(&self, settled: State, now: u128) -> u64 {
        let elapsed = now.saturating_sub(settled);
        // In 64 bits when it fits (nearly always: at most a full bucket's span); wasm has no
        // 128-bit division, only a library call.
        let tokens = match u64::try_from(elapsed) {
            Ok(elapsed) => elapsed.checked_div(self.fill_interval_ns).unwrap_or(0),
            Err(_) => u64::try_from(
                elapsed
                    .checked_div(u128::from(self.fill_interval_ns))
                    .unwrap_or(0),
            )
            .unwrap_or(u64::MAX),
        };
        tokens.min(self.max_tokens)
    }

    /// Whole tokens in the bucket at `now` (nanoseconds since 1970).
    #[must_use]
    pub fn tokens(&self, state: State, now_ns: u128) -> u64 {
        let now = self.scaled(now_ns);
        self.whole_tokens(self.settled(state, now), now)
    }

    /// Takes `n` tokens at `now` if the bucket has them; the new state and what it gave.
    #[must_use]
    pub fn take(&self, state: State, now_ns: u128, n: u64) -> (State, Take) {
        let now = self.scaled(now_ns);
        let state = self.settled(state, now);
        let available = self.whole_tokens(state, now);
        if available < n {
            return (
                state,
                Take {
                    allowed: false,
                    remaining: available,
                },
            );
        }
        let cost = product(n, self.fill_interval_ns);
        (
            state.saturating_add(cost),
            Take {
                allowed: true,
                remaining: available.saturating_sub(n),
            },
        )
    }

    /// Time until `n` tokens are in the bucket (zero when they are now); `None` when the bucket
    /// can never hold them.
    #[must_use]
    pub fn wait_for(&self, state: State, now_ns: u128, n: u64) -> Option<Duration> {
        if n > self.max_tokens || self.tokens_per_fill == 0 {
            return None;
        }
        let now = self.scaled(now_ns);
        let state = self.settled(state, now);
        let needed = state.saturating_add(product(n, self.fill_interval_ns));
        let short = needed.saturating_sub(now);
        let ns = short.div_ceil(u128::from(self.tokens_per_fill));
        Some(Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX)))
    }

    /// `x-ratelimit-reset` as Envoy's local filter writes it: 0 while a whole token remains,
    /// else the time one token takes, `ceil(1000 / rate)` milliseconds, in whole seconds
    /// (rounded down).
    #[must_use]
    pub fn reset_seconds(&self, remaining: u64) -> u64 {
        if remaining > 0 || self.tokens_per_fill == 0 {
            return 0;
        }
        let ms = u128::from(self.fill_interval_ns)
            .div_ceil(u128::from(self.tokens_per_fill).saturating_mul(1_000_000));
        u64::try_from(ms / 1000).unwrap_or(u64::MAX)
    }

    /// Whether this bucket fills more slowly than `other` (Envoy consumes the strictest first).
    #[must_use]
    pub fn slower_than(&self, other: &Self) -> bool {
        u128::from(self.tokens_per_fill).saturating_mul(u128::from(other.fill_interval_ns))
            < u128::from(other.tokens_per_fill).saturating_mul(u128::from(self.fill_interval_ns))
    }
}

/// `a * b`, in 64 bits when it fits.
fn product(a: u64, b: u64) -> u128 {
    a.checked_mul(b)
        .map_or_else(|| u128::from(a).saturating_mul(u128::from(b)), u128::from)
}

#[cfg(test)]
mod tests {
    #![expect(clippy::arithmetic_side_effects, reason = "tests, small numbers")]
    use super::*;
    use proptest::prelude::*;

    const S: u128 = 1_000_000_000;
    const T: u128 = 1_767_225_600 * S;

    fn shape(max: u64, per_fill: u64, interval_ms: u64) -> Shape {
        Shape {
            max_tokens: max,
            tokens_per_fill: per_fill,
            fill_interval_ns: interval_ms * 1_000_000,
        }
    }

    #[test]
    fn starts_full_empties_and_refills_continuously() {
        let b = shape(3, 1, 1000);
        let mut state = 0;
        let mut allowed = Vec::new();
        for _ in 0..4 {
            let (next, take) = b.take(state, T, 1);
            state = next;
            allowed.push((take.allowed, take.remaining));
        }
        assert_eq!(allowed, [(true, 2), (true, 1), (true, 0), (false, 0)]);
        // Half an interval: no whole token; a whole one: one.
        assert!(!b.take(state, T + S / 2, 1).1.allowed);
        assert_eq!(
            b.wait_for(state, T + S / 2, 1),
            Some(Duration::from_millis(500))
        );
        let (state, take) = b.take(state, T + S, 1);
        assert!(take.allowed);
        // Ten intervals later it is full again, not over full.
        assert_eq!(b.tokens(state, T + 20 * S), 3);
    }

    #[test]
    fn tokens_per_fill_is_a_rate_not_a_step() {
        // 10 tokens per 10 s: one per second, not ten at once every ten seconds.
        let b = shape(10, 10, 10_000);
        let (mut state, _) = b.take(0, T, 10);
        assert_eq!(b.tokens(state, T + 3 * S), 3);
        state = b.take(state, T + 3 * S, 3).0;
        assert_eq!(b.tokens(state, T + 3 * S), 0);
    }

    #[test]
    fn a_clock_that_goes_back_empties_but_never_fills() {
        let b = shape(2, 1, 1000);
        let (state, _) = b.take(0, T, 1);
        assert_eq!(b.tokens(state, T - 3600 * S), 0);
        assert_eq!(b.tokens(state, T), 1);
    }

    #[test]
    fn reset_and_strictness_as_envoy_reports_them() {
        assert_eq!(shape(5, 1, 60_000).reset_seconds(0), 60);
        assert_eq!(shape(5, 1, 60_000).reset_seconds(1), 0);
        assert_eq!(shape(5, 3, 1000).reset_seconds(0), 0);
        assert!(shape(5, 1, 60_000).slower_than(&shape(5, 2, 60_000)));
        assert!(!shape(5, 2, 1000).slower_than(&shape(5, 2, 1000)));
    }

    proptest! {
        /// However requests and time interleave, no more pass in any window than the bucket
        /// held at its start plus what the window refills.
        #[test]
        fn never_more_than_capacity_plus_refill(
            max in 1u64..20, per_fill in 1u64..5, interval_ms in 50u64..5000,
            steps in proptest::collection::vec((0u64..3000, 1u64..4), 1..200),
        ) {
            let b = shape(max, per_fill, interval_ms);
            let mut state = 0;
            let mut now = T;
            let mut passed: Vec<(u128, u64)> = Vec::new();
            for (advance_ms, n) in steps {
                now += u128::from(advance_ms) * 1_000_000;
                let (next, take) = b.take(state, now, n);
                state = next;
                if take.allowed {
                    passed.push((now, n));
                }
                prop_assert!(take.remaining <= max);
            }
            for (i, (start, _)) in passed.iter().enumerate() {
                for (end, _) in passed.iter().skip(i) {
                    let window = end - start;
                    let taken: u64 = passed.iter().filter(|(t, _)| t >= start && t <= end).map(|(_, n)| n).sum();
                    let refill = window * u128::from(per_fill) / u128::from(b.fill_interval_ns);
                    prop_assert!(u128::from(taken) <= u128::from(max) + refill,
                        "{taken} taken in {window} ns, max {max} + refill {refill}");
                }
            }
        }
    }
}
