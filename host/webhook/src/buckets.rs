//! Where `palisade serve` keeps the token buckets of the `rate-limit` capability: in its own
//! memory (the runtime's [`MemoryBuckets`]) or in a Redis server shared by every replica
//! ([`RedisBuckets`]), one round trip per take.

use std::sync::Arc;
use std::time::Duration;

use palisade_runtime::capabilities::{
    Buckets, MemoryBuckets, Shape, StateError, StateFuture, SystemClock, Taken,
};
use palisade_sdk::host::rate::{self, MICRO};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use crate::config::{RateLimitConfig, RedisConfig};

/// The store the configuration names.
#[must_use]
pub fn from_config(config: &RateLimitConfig) -> Arc<dyn Buckets> {
    match &config.redis {
        Some(redis) => Arc::new(RedisBuckets::new(redis)),
        None => Arc::new(MemoryBuckets::new(
            Arc::new(SystemClock),
            config.max_buckets,
        )),
    }
}

/// Checks a Redis URL without connecting.
///
/// # Errors
/// Why the URL cannot be used.
pub fn check_url(url: &str) -> Result<(), String> {
    let info = redis::IntoConnectionInfo::into_connection_info(url).map_err(|e| e.to_string())?;
    match info.addr() {
        redis::ConnectionAddr::Tcp(..) | redis::ConnectionAddr::Unix(_) => Ok(()),
        _ => Err(
            "TLS (rediss://) is not supported; use redis:// on a trusted network or a unix socket"
                .into(),
        ),
    }
}

/// One take, atomically, in Redis: the bucket is a hash of its level in micro-tokens and the
/// time (Redis's clock, so that replicas whose clocks differ agree) it was last brought up to
/// date. It mirrors `palisade_sdk::host::rate::take_at` step by step; the script returns
/// whether the take succeeded and the level left, from which the host reports the rest with the
/// SDK's `report`. Redis numbers are doubles: every quantity stays below 2^53 (the shape's
/// bounds see to it). The key expires once the bucket would be full again, which is the same as
/// a missing key; a bucket that never refills does not expire.
const TAKE: &str = r"
local capacity = tonumber(ARGV[1]) * 1000000
local refill = tonumber(ARGV[2])
local period_us = tonumber(ARGV[3]) * 1000
local wanted = tonumber(ARGV[4]) * 1000000
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local stored = redis.call('HMGET', KEYS[1], 'micro', 'at')
local micro = tonumber(stored[1])
local at = tonumber(stored[2])
if micro == nil or at == nil then
  micro = capacity
  at = now
end
if now > at then
  micro = micro + math.floor((now - at) * refill * 1000000 / period_us)
  at = now
end
if micro > capacity then micro = capacity end
local allowed = 0
if micro >= wanted then
  allowed = 1
  micro = micro - wanted
end
redis.call('HSET', KEYS[1], 'micro', string.format('%.0f', micro), 'at', string.format('%.0f', at))
if refill > 0 then
  local full_ms = math.ceil((capacity - micro) * period_us / (refill * 1000000) / 1000) + 1000
  if full_ms > 320000000000 then full_ms = 320000000000 end
  redis.call('PEXPIRE', KEYS[1], string.format('%.0f', full_ms))
else
  redis.call('PERSIST', KEYS[1])
end
return {allowed, string.format('%.0f', micro)}
";

/// Token buckets in a Redis server. The connection is made on first use and remade after a
/// failure, so the server starts while Redis is down; a take that cannot reach Redis is an
/// `unavailable` error to the policy, which decides what it means.
pub struct RedisBuckets {
    url: String,
    prefix: String,
    timeout: Duration,
    script: redis::Script,
    connection: OnceCell<ConnectionManager>,
}

impl std::fmt::Debug for RedisBuckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBuckets")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn unavailable(what: &str, error: impl std::fmt::Display) -> StateError {
    StateError::Unavailable(format!("redis {what}: {error}"))
}

impl RedisBuckets {
    /// Buckets in the Redis server of `config`; nothing is connected yet.
    #[must_use]
    pub fn new(config: &RedisConfig) -> Self {
        Self {
            url: config.url.clone(),
            prefix: config.key_prefix.clone(),
            timeout: config.timeout,
            script: redis::Script::new(TAKE),
            connection: OnceCell::new(),
        }
    }

    async fn connection(&self) -> Result<ConnectionManager, StateError> {
        self.connection
            .get_or_try_init(|| async {
                let client =
                    redis::Client::open(self.url.as_str()).map_err(|e| unavailable("url", e))?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout));
                ConnectionManager::new_with_config(client, config)
                    .await
                    .map_err(|e| unavailable("connection", e))
            })
            .await
            .cloned()
    }

    async fn take_in_redis(
        &self,
        namespace: &str,
        name: &str,
        shape: Shape,
        tokens: u64,
    ) -> Result<Taken, StateError> {
        let mut connection = self.connection().await?;
        let key = format!("{}{namespace}:{name}", self.prefix);
        let (allowed, micro): (u8, String) = self
            .script
            .key(key)
            .arg(shape.capacity)
            .arg(shape.refill_tokens)
            .arg(shape.refill_period_ms)
            .arg(tokens)
            .invoke_async(&mut connection)
            .await
            .map_err(|e| unavailable("take", e))?;
        let micro: u64 = micro
            .parse()
            .map_err(|e| unavailable("answer", format!("level {micro:?}: {e}")))?;
        if micro > shape.capacity.saturating_mul(MICRO) {
            return Err(unavailable(
                "answer",
                format!("level {micro} is over the capacity"),
            ));
        }
        Ok(rate::report(shape, micro, tokens, allowed == 1))
    }
}

impl Buckets for RedisBuckets {
    fn take<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        shape: Shape,
        tokens: u64,
    ) -> StateFuture<'a, Taken> {
        Box::pin(async move {
            tokio::time::timeout(
                self.timeout,
                self.take_in_redis(namespace, name, shape, tokens),
            )
            .await
            .unwrap_or_else(|_| {
                Err(StateError::Unavailable(format!(
                    "redis take: no answer within {:?}",
                    self.timeout
                )))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_without_connecting() {
        assert!(check_url("redis://127.0.0.1:6379/0").is_ok());
        assert!(check_url("redis+unix:///run/redis.sock").is_ok());
        assert!(check_url("http://example").is_err());
        assert!(check_url("rediss://example:6380").is_err());
    }
}
