//! A distributed mutex on the server's lock queue (`/v1/locks/{name}`), held through a
//! [`Session`]: the queue entry is bound to the session's lease, so a holder that dies
//! releases the lock when its lease ends.
//!
//! The server keeps at most one entry per lease in a queue, so a session that calls
//! `lock` again (after an unknown outcome, say) gets its own entry back instead of queuing
//! behind itself; and it removes the entry of a waiter that hangs up, so dropping a `lock`
//! future leaves nothing behind.

use std::time::Duration;

use cairn_api::Header;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::client::{encode_component, Call, Client, Wait};
use crate::error::{Error, Result};
use crate::session::Session;

/// An entry of a lock's queue.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LockEntry {
    pub key: String,
    pub path: String,
    pub fencing_token: u64,
    /// `None` only for an entry someone made by hand through `/v1/nodes`.
    pub lease: Option<u64>,
    #[serde(default)]
    pub value: Option<String>,
}

/// Who holds a lock and who waits, in queue order.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LockState {
    pub header: Header,
    pub holder: Option<LockEntry>,
    #[serde(default)]
    pub waiters: Vec<LockEntry>,
}

#[derive(Deserialize)]
struct Acquired {
    header: Header,
    key: String,
    path: String,
    fencing_token: u64,
}

#[derive(Deserialize)]
struct Released {
    revision: u64,
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn lock_url(name: &str) -> Result<String> {
    if name.is_empty() {
        return Err(Error::InvalidArgument("a lock name must not be empty".into()));
    }
    Ok(format!("/v1/locks/{}", encode_component(name)))
}

impl Client {
    /// The holder and the waiters of a lock.
    pub async fn lock_state(&self, name: &str) -> Result<LockState> {
        self.call_json(&Call::get(lock_url(name)?)).await
    }

    /// Removes a lock queue entry by key (held or waiting); answers the revision of the
    /// removal. 404 `not_found` when there is no such entry.
    pub async fn release_lock(&self, name: &str, key: &str) -> Result<u64> {
        let url = format!("{}/{}", lock_url(name)?, encode_component(key));
        let r: Released = self.call_json(&Call::write(Method::DELETE, url)).await?;
        Ok(r.revision)
    }
}

/// A named lock taken on behalf of a session. A session has one entry per lock: locking
/// again while holding answers the same entry (same key and fencing token), and one
/// `unlock` releases it.
#[derive(Debug, Clone)]
pub struct Mutex {
    session: Session,
    name: String,
    value: Option<String>,
}

impl Mutex {
    pub fn new(session: &Session, name: impl Into<String>) -> Mutex {
        Mutex { session: session.clone(), name: name.into(), value: None }
    }

    /// A value shown with this session's entry in [`LockState`] (who holds the lock).
    pub fn with_value(mut self, value: impl Into<String>) -> Mutex {
        self.value = Some(value.into());
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits until the lock is held: at most `timeout` (then an error with
    /// [`Error::is_timeout`], and nothing is left in the queue), or with `None` until it is
    /// held or the session is lost. After an unknown outcome, call it again: the server
    /// answers with the entry the first call may have made.
    pub async fn lock(&self, timeout: Option<Duration>) -> Result<MutexGuard> {
        self.acquire(timeout).await
    }

    /// Takes the lock only if it is free now; `None` when someone else holds it.
    pub async fn try_lock(&self) -> Result<Option<MutexGuard>> {
        match self.acquire(Some(Duration::ZERO)).await {
            Ok(guard) => Ok(Some(guard)),
            Err(e) if e.is_timeout() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Who holds this lock and who waits.
    pub async fn state(&self) -> Result<LockState> {
        self.session.client().lock_state(&self.name).await
    }

    async fn acquire(&self, timeout: Option<Duration>) -> Result<MutexGuard> {
        let lease = self.session.lease_id();
        if self.session.is_lost() {
            return Err(Error::SessionLost { lease });
        }
        let client = self.session.client();
        let mut body = json!({ "lease": lease });
        if let Some(v) = &self.value {
            body["value"] = json!(v);
        }
        let wait = match timeout {
            Some(t) => {
                body["timeout_ms"] = json!(millis(t));
                Wait::Extra(t)
            }
            None => Wait::Unbounded,
        };
        let call = Call::write(Method::POST, lock_url(&self.name)?).json_body(&body).wait(wait);
        // A lost session ends the wait; dropping the request makes the server take the
        // entry back out.
        let a: Acquired = tokio::select! {
            r = client.call_json(&call) => r?,
            () = self.session.lost() => return Err(Error::SessionLost { lease }),
        };
        Ok(MutexGuard {
            client: client.clone(),
            name: self.name.clone(),
            key: a.key,
            path: a.path,
            fencing_token: a.fencing_token,
            lease,
            header: a.header,
            released: false,
        })
    }
}

/// A held lock. Call [`MutexGuard::unlock`]; a guard dropped without it releases the lock
/// from a background task (best effort; the session's lease ending releases it anyway).
#[derive(Debug)]
pub struct MutexGuard {
    client: Client,
    name: String,
    key: String,
    path: String,
    fencing_token: u64,
    lease: u64,
    header: Header,
    released: bool,
}

impl MutexGuard {
    /// The entry's key in the lock's queue.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The entry's node path (`/_cairn/locks/{name}/{key}`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Increases with every acquisition of this lock: pass it to the resources the lock
    /// protects, so they can refuse a holder whose lock has since been taken over.
    pub fn fencing_token(&self) -> u64 {
        self.fencing_token
    }

    pub fn lease(&self) -> u64 {
        self.lease
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The header of the acquire's answer.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Releases the lock. `not_found` means the entry was already gone (its lease ended):
    /// the lock was lost while held. After any other error the guard keeps trying in the
    /// background.
    pub async fn unlock(mut self) -> Result<()> {
        let result = self.client.release_lock(&self.name, &self.key).await;
        if result.is_ok() || result.as_ref().is_err_and(Error::is_not_found) {
            self.released = true;
        }
        result.map(|_| ())
    }
}

impl Drop for MutexGuard {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (client, name, key) =
                (self.client.clone(), std::mem::take(&mut self.name), std::mem::take(&mut self.key));
            rt.spawn(async move {
                for round in 0..3u32 {
                    match client.release_lock(&name, &key).await {
                        Ok(_) => return,
                        Err(e) if e.is_not_found() => return,
                        Err(_) => tokio::time::sleep(Duration::from_millis(200 << round)).await,
                    }
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_urls_and_tags() {
        assert_eq!(lock_url("jobs/a b").unwrap(), "/v1/locks/jobs%2Fa%20b");
        assert!(lock_url("").is_err());
        assert_eq!(millis(Duration::from_secs(2)), 2000);
    }

    #[test]
    fn reads_the_lock_state() {
        let s: LockState = serde_json::from_str(
            r#"{"header":{"revision":9,"raft_term":1,"leader":1,"member":1},"name":"jobs",
                "holder":{"key":"0000000003","path":"/_cairn/locks/jobs/0000000003","fencing_token":57,"lease":null,"value":null},
                "waiters":[{"key":"0000000004","path":"/_cairn/locks/jobs/0000000004","fencing_token":58,"lease":5,"value":"x"}]}"#,
        )
        .unwrap();
        assert_eq!(s.holder.map(|h| (h.fencing_token, h.lease)), Some((57, None)));
        assert_eq!(s.waiters[0].lease, Some(5));
        assert_eq!(s.waiters[0].value.as_deref(), Some("x"));
    }
}
