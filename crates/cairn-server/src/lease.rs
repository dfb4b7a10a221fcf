//! Lease countdowns, kept by the leader alone (etcd's lessor).
//!
//! Leases themselves live in the replicated state; their countdowns do not. The leader
//! keeps each lease's deadline on its monotonic clock in an ordered set, so finding the
//! due ones costs a range read, never a scan. Keep-alives reset a deadline in memory, with
//! no Raft round. On becoming leader every lease restarts at its full TTL, so a failover can
//! make a lease end late (by up to one TTL) but never early; on losing leadership the
//! countdowns are dropped. Expiry is proposed through Raft as a revoke, after confirming
//! leadership, in bounded batches.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cairn_store::Lease;
use serde::{Deserialize, Serialize};

/// Most leases revoked per expiry round.
pub const REVOKE_BATCH: usize = 1000;

#[derive(Default)]
struct Countdowns {
    leading: bool,
    by_id: HashMap<u64, (Instant, u64)>,
    queue: BTreeSet<(Instant, u64)>,
    /// Due leases whose revoke is under way: they cannot be renewed any more.
    ending: HashSet<u64>,
    /// Ending leases whose revoke failed, to be proposed again.
    retry: Vec<u64>,
}

impl Countdowns {
    fn set(&mut self, id: u64, ttl_ms: u64, now: Instant) {
        if let Some((old, _)) = self.by_id.remove(&id) {
            self.queue.remove(&(old, id));
        }
        let deadline = now + Duration::from_millis(ttl_ms);
        self.by_id.insert(id, (deadline, ttl_ms));
        self.queue.insert((deadline, id));
    }

    fn remove(&mut self, id: u64) {
        if let Some((deadline, _)) = self.by_id.remove(&id) {
            self.queue.remove(&(deadline, id));
        }
        self.ending.remove(&id);
    }
}

/// A lease that is past its deadline and being revoked.
#[derive(Debug)]
pub struct Ending;

#[derive(Default)]
pub struct LeaseKeeper {
    inner: Mutex<Countdowns>,
}

/// Lease calls that must run on the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LeaseOp {
    KeepAlive(u64),
    Remaining(u64),
}

impl LeaseKeeper {
    fn with<T>(&self, f: impl FnOnce(&mut Countdowns) -> T) -> T {
        let mut guard = match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// This member now leads: every lease restarts at its full TTL.
    pub fn promote(&self, leases: &[Lease]) {
        let now = Instant::now();
        self.with(|c| {
            c.leading = true;
            for l in leases {
                if !c.ending.contains(&l.id) {
                    c.set(l.id, l.ttl_ms, now);
                }
            }
        });
    }

    /// This member no longer leads: its countdowns mean nothing.
    pub fn demote(&self) {
        self.with(|c| *c = Countdowns::default());
    }

    pub fn is_leading(&self) -> bool {
        self.with(|c| c.leading)
    }

    /// A grant this leader committed.
    pub fn granted(&self, id: u64, ttl_ms: u64) {
        self.with(|c| c.set(id, ttl_ms, Instant::now()));
    }

    /// A revoke this leader committed (or found already done).
    pub fn revoked(&self, id: u64) {
        self.with(|c| c.remove(id));
    }

    /// Resets a countdown. `Ok(None)`: this keeper does not know the lease; `Err`: it is
    /// being revoked and can no longer be kept.
    pub fn renew(&self, id: u64) -> Result<Option<u64>, Ending> {
        let now = Instant::now();
        self.with(|c| {
            if c.ending.contains(&id) {
                return Err(Ending);
            }
            let Some(&(_, ttl)) = c.by_id.get(&id) else { return Ok(None) };
            c.set(id, ttl, now);
            Ok(Some(ttl))
        })
    }

    /// Milliseconds left on the leader's clock (0 while its revoke is under way).
    pub fn remaining_ms(&self, id: u64) -> Option<u64> {
        let now = Instant::now();
        self.with(|c| {
            if c.ending.contains(&id) {
                return Some(0);
            }
            c.by_id.get(&id).map(|(d, _)| d.saturating_duration_since(now).as_millis() as u64)
        })
    }

    /// Whether the lease is being revoked.
    pub fn is_ending(&self, id: u64) -> bool {
        self.with(|c| c.ending.contains(&id))
    }

    /// Takes out up to `max` leases to revoke: those whose revoke failed before, then those
    /// whose deadline has passed. They stay unrenewable until [`LeaseKeeper::revoked`].
    pub fn take_due(&self, max: usize) -> Vec<u64> {
        let now = Instant::now();
        self.with(|c| {
            if !c.leading {
                return Vec::new();
            }
            let mut out: Vec<u64> = c.retry.drain(..c.retry.len().min(max)).collect();
            let due: Vec<(Instant, u64)> =
                c.queue.iter().take_while(|(d, _)| *d <= now).take(max - out.len()).copied().collect();
            for (deadline, id) in due {
                c.queue.remove(&(deadline, id));
                c.by_id.remove(&id);
                c.ending.insert(id);
                out.push(id);
            }
            out
        })
    }

    /// A revoke that failed: propose it again in the next round.
    pub fn retry(&self, id: u64) {
        self.with(|c| {
            if c.ending.contains(&id) {
                c.retry.push(id);
            }
        });
    }

    /// Whether a revoke should be proposed now.
    pub fn has_due(&self) -> bool {
        let now = Instant::now();
        self.with(|c| {
            c.leading && (!c.retry.is_empty() || c.queue.iter().next().is_some_and(|(d, _)| *d <= now))
        })
    }

    /// When the expiry loop has work next.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.with(|c| {
            if !c.retry.is_empty() {
                return Some(Instant::now() + Duration::from_millis(200));
            }
            c.queue.iter().next().map(|(d, _)| *d)
        })
    }

    pub fn len(&self) -> usize {
        self.with(|c| c.by_id.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_leader_expires_and_renewal_pushes_the_deadline() {
        let k = LeaseKeeper::default();
        k.granted(1, 0);
        assert!(k.take_due(10).is_empty(), "not leading yet");
        k.promote(&[Lease { id: 1, ttl_ms: 0 }, Lease { id: 2, ttl_ms: 60_000 }]);
        assert_eq!(k.take_due(10), vec![1]);
        assert_eq!(k.renew(2).unwrap(), Some(60_000));
        assert!(k.remaining_ms(2).unwrap() > 59_000);
        assert!(k.renew(1).is_err(), "a lease being revoked cannot be kept");
        k.retry(1);
        assert_eq!(k.take_due(10), vec![1], "a failed revoke comes back");
        k.revoked(1);
        assert_eq!(k.renew(1).unwrap(), None);
        k.demote();
        assert_eq!(k.renew(2).unwrap(), None);
        assert!(k.is_empty());
    }
}
