//! The arithmetic of the host's token buckets (WIT `rate-limit`), one definition for every
//! store: the SDK's own (on compare-and-swap state, in the proxy and in tests), the admission
//! host's memory store, and the Lua script of its Redis store, which mirrors [`take_at`] line
//! by line.
//!
//! A bucket is two numbers: its level in micro-tokens and the time (microseconds) it was last
//! brought up to date. It refills continuously, as Envoy's atomic token bucket and Go's
//! `x/time/rate` (which Kubernetes' EventRateLimit uses) do. Every quantity stays below 2^53 so
//! that the Lua script, whose numbers are doubles, computes the same values.

use std::time::Duration;

/// Micro-tokens per token: the bucket's level keeps fractions of a token between takes.
pub const MICRO: u64 = 1_000_000;

/// The largest capacity, refill and take: with [`MICRO`] it keeps levels below 2^53.
pub const MAX_TOKENS: u64 = 1_000_000_000;

/// The longest refill period: ten years, in milliseconds.
pub const MAX_PERIOD_MS: u64 = 10 * 366 * 24 * 3_600_000;

/// A bucket's shape: at most `capacity` tokens, full at first, `refill_tokens` more every
/// `refill_period` (continuously; none when `refill_tokens` is 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// The most tokens the bucket holds (1 to [`MAX_TOKENS`]).
    pub capacity: u64,
    /// Tokens gained per period (0 to [`MAX_TOKENS`]).
    pub refill_tokens: u64,
    /// The period, in milliseconds (1 to [`MAX_PERIOD_MS`]).
    pub refill_period_ms: u64,
}

impl Shape {
    /// A bucket of `burst` tokens refilled at `per_second` tokens a second (Go's
    /// `rate.NewLimiter(qps, burst)`, as EventRateLimit builds it).
    #[must_use]
    pub fn per_second(per_second: u64, burst: u64) -> Self {
        Self {
            capacity: burst,
            refill_tokens: per_second,
            refill_period_ms: 1000,
        }
    }

    /// Checks the bounds, naming the one that is out.
    ///
    /// # Errors
    /// A message naming the field and its bounds.
    pub fn check(&self, tokens: u64) -> Result<(), String> {
        if !(1..=MAX_TOKENS).contains(&self.capacity) {
            return Err(format!(
                "capacity {} is outside 1..={MAX_TOKENS}",
                self.capacity
            ));
        }
        if self.refill_tokens > MAX_TOKENS {
            return Err(format!(
                "refill-tokens {} is over {MAX_TOKENS}",
                self.refill_tokens
            ));
        }
        if !(1..=MAX_PERIOD_MS).contains(&self.refill_period_ms) {
            return Err(format!(
                "refill-period-ms {} is outside 1..={MAX_PERIOD_MS}",
                self.refill_period_ms
            ));
        }
        if tokens > MAX_TOKENS {
            return Err(format!("a take of {tokens} tokens is over {MAX_TOKENS}"));
        }
        Ok(())
    }
}

/// What a take gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// Whether the tokens were there (and are now taken); a refused take takes nothing.
    pub allowed: bool,
    /// Whole tokens left.
    pub remaining: u64,
    /// Until a take of the same size could succeed: zero when this one did, [`Duration::MAX`]
    /// when none ever can (more than the capacity, or no refill).
    pub retry_after: Duration,
    /// Until the bucket is full again ([`Duration::MAX`] when it never refills).
    pub reset: Duration,
}

/// A bucket's stored state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    /// Micro-tokens held.
    pub micro: u64,
    /// When `micro` was true, in microseconds since the epoch.
    pub at_us: u64,
}

impl Level {
    /// Bytes of [`encode`](Self::encode).
    pub const SIZE: usize = 16;

    /// The stored form: both numbers little-endian.
    #[must_use]
    pub fn encode(self) -> [u8; Self::SIZE] {
        let mut bytes = [0; Self::SIZE];
        let (micro, at) = bytes.split_at_mut(8);
        micro.copy_from_slice(&self.micro.to_le_bytes());
        at.copy_from_slice(&self.at_us.to_le_bytes());
        bytes
    }

    /// Reads [`encode`](Self::encode)'s form; `None` for anything else.
    #[must_use]
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; Self::SIZE] = bytes.try_into().ok()?;
        let (micro, at) = bytes.split_at(8);
        Some(Self {
            micro: u64::from_le_bytes(micro.try_into().ok()?),
            at_us: u64::from_le_bytes(at.try_into().ok()?),
        })
    }
}

/// Microseconds as a duration rounded up to whole milliseconds ([`Duration::MAX`] for `None`).
fn ceil_ms(micros: Option<u128>) -> Duration {
    micros
        .and_then(|us| u64::try_from(us.div_ceil(1000)).ok())
        .map_or(Duration::MAX, Duration::from_millis)
}

/// Microseconds to gain `micro` micro-tokens at the shape's rate, rounded up; `None` without
/// refill.
fn time_to_gain(shape: Shape, micro: u64) -> Option<u128> {
    if micro == 0 {
        return Some(0);
    }
    let per_period = u128::from(shape.refill_tokens).checked_mul(u128::from(MICRO))?;
    let period_us = u128::from(shape.refill_period_ms).checked_mul(1000)?;
    u128::from(micro)
        .checked_mul(period_us)?
        .checked_div(per_period)
        .map(|t| {
            // Round up: the tokens are there at the end of the last microsecond, not before.
            let exact = u128::from(micro)
                .checked_mul(period_us)
                .is_some_and(|n| n.checked_rem(per_period) == Some(0));
            if exact { t } else { t.saturating_add(1) }
        })
}

/// One take of `tokens` at `now_us` from a bucket in `state` (`None`: never used, so full).
/// The shape must have passed [`Shape::check`]. A clock that goes back refills nothing and
/// keeps the later time.
#[must_use]
pub fn take_at(shape: Shape, state: Option<Level>, now_us: u64, tokens: u64) -> (Level, Taken) {
    let capacity = shape.capacity.saturating_mul(MICRO);
    let mut level = state.unwrap_or(Level {
        micro: capacity,
        at_us: now_us,
    });
    if now_us > level.at_us {
        let elapsed = u128::from(now_us.saturating_sub(level.at_us));
        let period_us = u128::from(shape.refill_period_ms).saturating_mul(1000);
        let gained = elapsed
            .saturating_mul(u128::from(shape.refill_tokens))
            .saturating_mul(u128::from(MICRO))
            .checked_div(period_us)
            .unwrap_or(0);
        level.micro =
            u64::try_from(u128::from(level.micro).saturating_add(gained)).unwrap_or(u64::MAX);
        level.at_us = now_us;
    }
    level.micro = level.micro.min(capacity);
    let wanted = tokens.saturating_mul(MICRO);
    let allowed = level.micro >= wanted;
    if allowed {
        level.micro = level.micro.saturating_sub(wanted);
    }
    (level, report(shape, level.micro, tokens, allowed))
}

/// What a take of `tokens` that left `micro` micro-tokens in the bucket gave (a store that
/// computes the level itself, as the Redis script does, reports through this).
#[must_use]
pub fn report(shape: Shape, micro: u64, tokens: u64, allowed: bool) -> Taken {
    let capacity = shape.capacity.saturating_mul(MICRO);
    let micro = micro.min(capacity);
    let retry_after = if allowed {
        Duration::ZERO
    } else if tokens > shape.capacity {
        Duration::MAX
    } else {
        ceil_ms(time_to_gain(
            shape,
            tokens.saturating_mul(MICRO).saturating_sub(micro),
        ))
    };
    Taken {
        allowed,
        remaining: micro.checked_div(MICRO).unwrap_or(0),
        retry_after,
        reset: ceil_ms(time_to_gain(shape, capacity.saturating_sub(micro))),
    }
}

#[cfg(test)]
mod tests {
    #![expect(
        clippy::arithmetic_side_effects,
        reason = "test arithmetic on small numbers"
    )]
    use super::*;
    use proptest::prelude::*;

    const QPS2: Shape = Shape {
        capacity: 4,
        refill_tokens: 2,
        refill_period_ms: 1000,
    };

    #[test]
    fn a_bucket_starts_full_and_refills_continuously() {
        let mut state = None;
        let mut allowed = Vec::new();
        let mut refused = None;
        for _ in 0..5 {
            let (level, t) = take_at(QPS2, state, 1_000_000, 1);
            state = Some(level);
            allowed.push(t.allowed);
            refused = Some(t);
        }
        assert_eq!(allowed, [true, true, true, true, false]);
        let refused = refused.unwrap_or_else(|| unreachable!());
        assert_eq!(refused.remaining, 0);
        // 2 tokens a second: one comes back in half a second, all four in two.
        assert_eq!(refused.retry_after, Duration::from_millis(500));
        assert_eq!(refused.reset, Duration::from_secs(2));
        // A quarter of a second later: half a token, still refused, a quarter second to go.
        let (level, t) = take_at(QPS2, state, 1_250_000, 1);
        assert!(!t.allowed);
        assert_eq!(t.retry_after, Duration::from_millis(250));
        let (_, t) = take_at(QPS2, Some(level), 1_500_000, 1);
        assert!(t.allowed);
        assert_eq!(t.remaining, 0);
    }

    #[test]
    fn takes_beyond_capacity_or_without_refill_never_succeed() {
        let (_, t) = take_at(QPS2, None, 0, 5);
        assert!(!t.allowed);
        assert_eq!(t.retry_after, Duration::MAX);
        assert_eq!(t.remaining, 4, "a refused take takes nothing");
        let fixed = Shape {
            refill_tokens: 0,
            ..QPS2
        };
        let (level, _) = take_at(fixed, None, 0, 4);
        let (_, t) = take_at(fixed, Some(level), 10_000_000_000, 1);
        assert!(!t.allowed);
        assert_eq!(t.retry_after, Duration::MAX);
        assert_eq!(t.reset, Duration::MAX);
    }

    #[test]
    fn a_clock_going_back_refills_nothing() {
        let (level, _) = take_at(QPS2, None, 5_000_000, 4);
        let (later, t) = take_at(QPS2, Some(level), 1_000_000, 1);
        assert!(!t.allowed);
        assert_eq!(later.at_us, 5_000_000);
    }

    #[test]
    fn levels_round_trip_through_their_bytes() {
        let level = Level {
            micro: 123_456_789,
            at_us: 1_700_000_000_000_000,
        };
        assert_eq!(Level::decode(&level.encode()), Some(level));
        assert_eq!(Level::decode(&[0; 15]), None);
    }

    proptest! {
        /// Over any run of takes, no more tokens are granted than the capacity plus what the
        /// elapsed time refilled, and a take the level covers is never refused.
        #[test]
        fn never_more_than_capacity_plus_refills(
            capacity in 1u64..50,
            refill_tokens in 0u64..20,
            refill_period_ms in 1u64..5_000,
            steps in proptest::collection::vec((0u64..400_000, 1u64..6), 1..200),
        ) {
            let shape = Shape { capacity, refill_tokens, refill_period_ms };
            let start = 1_700_000_000_000_000u64;
            let mut now = start;
            let mut state = None;
            let mut granted: u128 = 0;
            for (advance, tokens) in steps {
                now += advance;
                let before = state.map_or(capacity * MICRO, |l: Level| l.micro);
                let (level, taken) = take_at(shape, state, now, tokens);
                if taken.allowed {
                    granted += u128::from(tokens);
                } else {
                    // Refused only when the level (after refill) was short of the take.
                    prop_assert!(level.micro < tokens * MICRO);
                    prop_assert!(level.micro >= before.min(capacity * MICRO));
                }
                state = Some(level);
                let refilled = u128::from(now - start) * u128::from(refill_tokens)
                    / (u128::from(refill_period_ms) * 1000);
                prop_assert!(granted <= u128::from(capacity) + refilled,
                    "granted {granted} > {capacity} + {refilled}");
            }
        }

        /// The retry time is honest: waiting it makes the same take succeed, and waiting a
        /// millisecond less does not (unless rounding to whole milliseconds covers it).
        #[test]
        fn retry_after_is_when_the_take_succeeds(
            capacity in 1u64..50,
            refill_tokens in 1u64..20,
            refill_period_ms in 1u64..5_000,
            tokens in 1u64..50,
        ) {
            let shape = Shape { capacity, refill_tokens, refill_period_ms };
            let (empty, _) = take_at(shape, None, 0, capacity);
            let (level, refused) = take_at(shape, Some(empty), 0, tokens);
            if tokens > capacity {
                prop_assert_eq!(refused.retry_after, Duration::MAX);
            } else {
                prop_assert!(!refused.allowed);
                let wait = u64::try_from(refused.retry_after.as_micros()).unwrap_or(u64::MAX);
                let (_, later) = take_at(shape, Some(level), wait, tokens);
                prop_assert!(later.allowed);
                let (_, early) = take_at(shape, Some(level), wait.saturating_sub(1000), tokens);
                prop_assert!(!early.allowed || wait < 1000);
            }
        }
    }
}
