//! Lease expiry: never before the TTL has run out since the last refresh the client can be
//! sure of, and eventually after the client stops refreshing.
//!
//! The observed expiry is when a watcher saw the lease's ephemeral node deleted. That is
//! after the real deletion, so a deletion seen too early is certainly too early; a
//! deletion seen late may be the watcher's delay, which the caller's slack must cover
//! (as well as countdowns that restart when leadership moves).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ms;
use crate::history::Outcome;

/// A keep-alive request and what the client learned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeepAlive {
    pub invoke_ns: u64,
    pub complete_ns: u64,
    pub outcome: Outcome,
}

/// A revoke request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoke {
    pub invoke_ns: u64,
    pub complete_ns: u64,
    pub outcome: Outcome,
}

/// Everything observed about one lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub lease: u64,
    pub grant_invoke_ns: u64,
    pub grant_complete_ns: u64,
    /// The TTL the grant answered with.
    pub ttl_ms: u64,
    pub keepalives: Vec<KeepAlive>,
    pub revoke: Option<Revoke>,
    /// When a watcher saw the attached ephemeral node deleted.
    pub observed_delete_ns: Option<u64>,
    /// When the client stopped sending keep-alives (`None`: it never stopped).
    pub stopped_ns: Option<u64>,
    /// Until when the watcher was watching.
    pub observed_until_ns: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseAnomalyKind {
    /// Deleted before the TTL ran out (and before any revoke).
    EarlyExpiry,
    /// Not deleted by the deadline after keep-alives (or a revoke) stopped.
    NoExpiry,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseAnomaly {
    pub lease: u64,
    pub kind: LeaseAnomalyKind,
    /// How early, or how late past the deadline.
    pub by_ns: u64,
    pub text: String,
}

impl fmt::Display for LeaseAnomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Checks each lease:
/// - no early expiry: the node must not be seen deleted before the TTL has run out since
///   the latest refresh certainly applied (the invocation of the latest `Ok` keep-alive, or
///   of the grant), unless a revoke (`Ok` or unknown) was invoked before the deletion;
/// - expiry happens: once keep-alives stopped, the node must be seen deleted by the latest
///   possible refresh (stop time, or completion of an `Ok` or unknown keep-alive) plus TTL
///   plus `slack_ns`; after an `Ok` revoke, by its completion plus `slack_ns`. Only checked
///   if the observation lasted past that deadline.
pub fn check_leases(leases: &[LeaseRecord], slack_ns: u64) -> Vec<LeaseAnomaly> {
    let mut anomalies = Vec::new();
    for lease in leases {
        anomalies.extend(early_expiry(lease));
        anomalies.extend(missing_expiry(lease, slack_ns));
    }
    anomalies
}

fn early_expiry(l: &LeaseRecord) -> Option<LeaseAnomaly> {
    let deleted = l.observed_delete_ns?;
    let ttl = l.ttl_ms.saturating_mul(1_000_000);
    let sure = l.keepalives.iter().filter(|k| k.outcome == Outcome::Ok).map(|k| k.invoke_ns).max();
    let refreshed = sure.unwrap_or(l.grant_invoke_ns).max(l.grant_invoke_ns);
    let earliest = refreshed.saturating_add(ttl);
    let revoked = l.revoke.as_ref().filter(|r| r.outcome != Outcome::Fail).map(|r| r.invoke_ns);
    if deleted >= earliest || revoked.is_some_and(|r| r <= deleted) {
        return None;
    }
    let by = earliest - deleted;
    let source = match sure {
        Some(t) if t >= l.grant_invoke_ns => format!("an ok keep-alive invoked at {}", ms(t)),
        _ => format!("the grant invoked at {}", ms(l.grant_invoke_ns)),
    };
    Some(LeaseAnomaly {
        lease: l.lease,
        kind: LeaseAnomalyKind::EarlyExpiry,
        by_ns: by,
        text: format!(
            "lease {} (ttl {}ms): node seen deleted at {}, {} before it could expire ({} + ttl = {})",
            l.lease,
            l.ttl_ms,
            ms(deleted),
            ms(by),
            source,
            ms(earliest)
        ),
    })
}

fn missing_expiry(l: &LeaseRecord, slack_ns: u64) -> Option<LeaseAnomaly> {
    let ttl = l.ttl_ms.saturating_mul(1_000_000);
    let expiry = l.stopped_ns.map(|stopped| {
        let latest = l
            .keepalives
            .iter()
            .filter(|k| k.outcome != Outcome::Fail)
            .map(|k| k.complete_ns)
            .chain([stopped, l.grant_complete_ns])
            .max()
            .unwrap_or(stopped);
        (
            latest.saturating_add(ttl).saturating_add(slack_ns),
            format!("keep-alives stopped at {}", ms(stopped)),
        )
    });
    let revoke = l
        .revoke
        .as_ref()
        .filter(|r| r.outcome == Outcome::Ok)
        .map(|r| (r.complete_ns.saturating_add(slack_ns), format!("revoked at {}", ms(r.complete_ns))));
    let (deadline, why) = [expiry, revoke].into_iter().flatten().min_by_key(|(d, _)| *d)?;
    if l.observed_until_ns < deadline || l.observed_delete_ns.is_some_and(|d| d <= deadline) {
        return None;
    }
    let (by, seen) = match l.observed_delete_ns {
        Some(d) => (d - deadline, format!("node seen deleted only at {}", ms(d))),
        None => (l.observed_until_ns - deadline, format!("node still there at {}", ms(l.observed_until_ns))),
    };
    Some(LeaseAnomaly {
        lease: l.lease,
        kind: LeaseAnomalyKind::NoExpiry,
        by_ns: by,
        text: format!(
            "lease {} (ttl {}ms): {why}, so it should be gone by {} (with slack {}), but {seen}, {} late",
            l.lease,
            l.ttl_ms,
            ms(deadline),
            ms(slack_ns),
            ms(by)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// Granted at 0 with a 1s TTL, kept alive every 300ms (ok) until `stop_ms`.
    fn lease(stop_ms: u64) -> LeaseRecord {
        let keepalives = (1..)
            .map(|i| i * 300)
            .take_while(|&t| t < stop_ms)
            .map(|t| KeepAlive { invoke_ns: t * MS, complete_ns: (t + 5) * MS, outcome: Outcome::Ok })
            .collect();
        LeaseRecord {
            lease: 7,
            grant_invoke_ns: 0,
            grant_complete_ns: 5 * MS,
            ttl_ms: 1_000,
            keepalives,
            revoke: None,
            observed_delete_ns: None,
            stopped_ns: Some(stop_ms * MS),
            observed_until_ns: 10_000 * MS,
        }
    }
    const SLACK: u64 = 2_000 * MS;

    #[test]
    fn expiry_after_the_ttl_passes() {
        let mut l = lease(3_000); // last keep-alive at 2.7s
        l.observed_delete_ns = Some(3_800 * MS);
        assert_eq!(check_leases(std::slice::from_ref(&l), SLACK), []);
        // Never stopped, never deleted: nothing to check.
        l.stopped_ns = None;
        l.observed_delete_ns = None;
        assert_eq!(check_leases(&[l], SLACK), []);
    }

    #[test]
    fn early_expiry_is_reported_with_how_early() {
        let mut l = lease(3_000);
        l.observed_delete_ns = Some(3_500 * MS); // 2.7s + 1s = 3.7s
        let anomalies = check_leases(&[l], SLACK);
        assert_eq!(anomalies.len(), 1);
        assert_eq!((anomalies[0].kind, anomalies[0].by_ns), (LeaseAnomalyKind::EarlyExpiry, 200 * MS));
        let text = &anomalies[0].text;
        assert!(text.contains("200.000ms before") && text.contains("invoked at 2700.000ms"), "{text}");
    }

    #[test]
    fn only_sure_refreshes_delay_the_earliest_expiry() {
        let mut l = lease(1_000); // ok keep-alives at 0.3, 0.6, 0.9s
        l.keepalives.push(KeepAlive {
            invoke_ns: 1_500 * MS,
            complete_ns: 2_500 * MS,
            outcome: Outcome::Unknown,
        });
        l.keepalives.push(KeepAlive {
            invoke_ns: 1_600 * MS,
            complete_ns: 1_700 * MS,
            outcome: Outcome::Fail,
        });
        l.stopped_ns = Some(2_500 * MS);
        l.observed_delete_ns = Some(2_000 * MS); // after 0.9s + 1s: fine
        assert_eq!(check_leases(&[l], SLACK), []);
    }

    #[test]
    fn revoke_allows_deletion_after_it_was_invoked() {
        let mut l = lease(1_000);
        l.revoke = Some(Revoke { invoke_ns: 1_200 * MS, complete_ns: 1_250 * MS, outcome: Outcome::Ok });
        l.observed_delete_ns = Some(1_300 * MS);
        assert_eq!(check_leases(std::slice::from_ref(&l), SLACK), []);
        // Deleted before the revoke was even sent: early.
        l.observed_delete_ns = Some(1_100 * MS);
        assert_eq!(check_leases(std::slice::from_ref(&l), SLACK)[0].kind, LeaseAnomalyKind::EarlyExpiry);
        // A failed revoke justifies nothing.
        l.revoke = Some(Revoke { invoke_ns: 1_000 * MS, complete_ns: 1_050 * MS, outcome: Outcome::Fail });
        assert_eq!(check_leases(&[l], SLACK)[0].kind, LeaseAnomalyKind::EarlyExpiry);
    }

    #[test]
    fn expiry_that_never_happens_is_reported() {
        let l = lease(3_000); // deadline: 3s + 1s + 2s slack = 6s; watched until 10s
        let anomalies = check_leases(std::slice::from_ref(&l), SLACK);
        assert_eq!(anomalies.len(), 1);
        assert_eq!((anomalies[0].kind, anomalies[0].by_ns), (LeaseAnomalyKind::NoExpiry, 4_000 * MS));
        assert!(anomalies[0].text.contains("node still there at 10000.000ms"), "{}", anomalies[0].text);
        // Deleted, but too late.
        let mut late = l.clone();
        late.observed_delete_ns = Some(7_000 * MS);
        assert_eq!(check_leases(&[late], SLACK)[0].by_ns, 1_000 * MS);
        // Not watched long enough to tell.
        let mut short = l;
        short.observed_until_ns = 5_000 * MS;
        assert_eq!(check_leases(&[short], SLACK), []);
    }

    #[test]
    fn unknown_keepalive_pushes_the_deadline_out() {
        let mut l = lease(3_000);
        l.keepalives.push(KeepAlive {
            invoke_ns: 2_900 * MS,
            complete_ns: 5_000 * MS,
            outcome: Outcome::Unknown,
        });
        l.observed_delete_ns = Some(7_500 * MS); // 5s + 1s + 2s = 8s
        assert_eq!(check_leases(&[l], SLACK), []);
    }

    #[test]
    fn ok_revoke_must_delete_within_the_slack() {
        let mut l = lease(1_000);
        l.stopped_ns = None; // still kept alive, but revoked
        l.revoke = Some(Revoke { invoke_ns: 1_000 * MS, complete_ns: 1_010 * MS, outcome: Outcome::Ok });
        let anomalies = check_leases(&[l], SLACK);
        assert_eq!(anomalies.len(), 1);
        assert_eq!(anomalies[0].kind, LeaseAnomalyKind::NoExpiry);
        assert!(anomalies[0].text.contains("revoked at 1010.000ms"), "{}", anomalies[0].text);
    }
}
