//! Nonce store shared by several instances: Redis `SET key 1 NX EX window` — atomic, so of two
//! instances seeing one nonce exactly one wins. The TTL is the same window the memory store
//! keeps; Redis expires by its own clock, which the window's margin covers. Connects lazily and reconnects by itself; every
//! call is bounded by a timeout, and any failure is reported (the gateway then fails closed).

use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::Mutex;

use super::ReplayError;

/// Redis-backed nonce store.
pub struct RedisReplayStore {
    client: redis::Client,
    conn: Mutex<Option<ConnectionManager>>,
    prefix: String,
    timeout: Duration,
}

impl RedisReplayStore {
    /// A store at `url` (`redis://host:port/db`), keys `prefix + nonce`, each call within `timeout`.
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> Result<Self, ReplayError> {
        let client = redis::Client::open(url)
            .map_err(|e| ReplayError::Unavailable(format!("redis URL: {e}")))?;
        Ok(Self {
            client,
            conn: Mutex::new(None),
            prefix: prefix.to_string(),
            timeout,
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, ReplayError> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = tokio::time::timeout(self.timeout, self.client.get_connection_manager())
            .await
            .map_err(|_| ReplayError::Unavailable("redis connect timed out".into()))?
            .map_err(|e| ReplayError::Unavailable(format!("redis connect: {e}")))?;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// See [`super::ReplayGuard::check_and_record`].
    pub async fn check_and_record(
        &self,
        nonce: &str,
        window_secs: i64,
    ) -> Result<bool, ReplayError> {
        let mut conn = self.connection().await?;
        let key = format!("{}{}", self.prefix, nonce);
        let cmd = redis::cmd("SET")
            .arg(&key)
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(window_secs.max(1))
            .to_owned();
        let reply: Option<String> = tokio::time::timeout(self.timeout, cmd.query_async(&mut conn))
            .await
            .map_err(|_| ReplayError::Unavailable("redis SET timed out".into()))?
            .map_err(|e| ReplayError::Unavailable(format!("redis SET: {e}")))?;
        Ok(reply.is_some())
    }

    /// `PING`, within the call timeout (readiness and `gateway_dependency_up`).
    pub async fn ping(&self) -> Result<(), ReplayError> {
        let mut conn = self.connection().await?;
        let _: String =
            tokio::time::timeout(self.timeout, redis::cmd("PING").query_async(&mut conn))
                .await
                .map_err(|_| ReplayError::Unavailable("redis PING timed out".into()))?
                .map_err(|e| ReplayError::Unavailable(format!("redis PING: {e}")))?;
        Ok(())
    }
}
