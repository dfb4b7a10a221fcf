//! A session: one lease kept alive in the background, the base of locks and elections.
//!
//! The client counts a lease's life from when it *sent* the last keep-alive that succeeded:
//! the leader restarts the countdown when it receives it, later, so the lease lives at
//! least until then plus the TTL. Past that point with no success the session is declared
//! lost, even if the server might still hold the lease: a session never claims a lease it
//! cannot prove alive.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::{Client, Wait};
use crate::error::Result;
use crate::lease::Lease;

/// A lease kept alive every TTL/3 by a background task. Clones share the lease; when the
/// last clone is dropped the task stops (and the lease ends after its TTL), `close`
/// revokes it at once.
#[derive(Clone)]
pub struct Session {
    inner: Arc<SessionInner>,
}

struct SessionInner {
    client: Client,
    lease: Lease,
    lost: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl Drop for SessionInner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("lease", &self.inner.lease).field("lost", &self.is_lost()).finish()
    }
}

impl Session {
    /// Grants a lease of `ttl` and starts keeping it alive. Needs a Tokio runtime.
    pub async fn new(client: &Client, ttl: Duration) -> Result<Session> {
        let sent = Instant::now();
        let lease = client.grant(ttl).await?;
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(keep_alive(client.clone(), lease, sent, tx));
        Ok(Session { inner: Arc::new(SessionInner { client: client.clone(), lease, lost: rx, task }) })
    }

    pub fn lease_id(&self) -> u64 {
        self.inner.lease.id
    }

    /// The TTL the server granted.
    pub fn ttl(&self) -> Duration {
        self.inner.lease.ttl
    }

    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// True once the lease is known gone or can no longer be proven alive (or the session
    /// was closed).
    pub fn is_lost(&self) -> bool {
        let rx = &self.inner.lost;
        *rx.borrow() || rx.has_changed().is_err()
    }

    /// Resolves when the session is lost: the server said the lease is gone, no keep-alive
    /// succeeded within the TTL, or the session was closed.
    pub fn lost(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.inner.lost.clone();
        async move {
            // An error means the keep-alive task is gone: nothing keeps the lease alive.
            let _ = rx.wait_for(|lost| *lost).await;
        }
    }

    /// Stops the keep-alives and revokes the lease, deleting its nodes (and so releasing
    /// its locks and candidacies). A lease already gone is not an error.
    pub async fn close(self) -> Result<()> {
        self.inner.task.abort();
        match self.inner.client.revoke(self.inner.lease.id).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_lease_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The keep-alive loop: one renewal every TTL/3, quick retries after a failure (each call
/// also tries the other members, as `keep_alive_within` is retried like a read), and
/// `lost` once the lease is gone or its TTL ran out since the last renewal that was sent
/// and answered.
async fn keep_alive(client: Client, lease: Lease, granted_at: Instant, lost: watch::Sender<bool>) {
    let ttl = lease.ttl;
    let interval = ttl / 3;
    let retry = (ttl / 10).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut alive_since = granted_at;
    let mut next = granted_at + interval;
    loop {
        tokio::time::sleep_until(next).await;
        let deadline = alive_since + ttl;
        let sent = Instant::now();
        if sent >= deadline {
            let _ = lost.send(true);
            return;
        }
        // The whole retry (across members) must end by the deadline, and one attempt may
        // take at most a third of the TTL, so a member that hangs cannot use up the window.
        let budget = deadline - sent;
        let attempt = interval.min(budget).min(client.request_timeout());
        match tokio::time::timeout(budget, client.keep_alive_within(lease.id, Wait::Exactly(attempt))).await {
            Ok(Ok(_)) => {
                alive_since = sent;
                next = sent + interval;
            }
            Ok(Err(e)) if e.is_lease_not_found() => {
                let _ = lost.send(true);
                return;
            }
            Ok(Err(_)) | Err(_) => next = Instant::now() + retry,
        }
    }
}
