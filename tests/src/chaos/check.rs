//! The run's checks: each turns a workload's records into the inputs of a checker in
//! [`crate::check`] and its findings into lines for the report.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use super::sessions::{LockLog, EXPIRY_SLACK_MS};
use super::workload::SeqCreate;
use crate::check::lease::{self, LeaseRecord};
use crate::check::sequence::{self, Observation};
use crate::check::watch::{self, AckedWrite, Event, StreamItem, WatchStream};
use crate::check::{linearizable, lock};
use crate::history::{History, Outcome};

/// Sequential creates: every acknowledged create is there with its value, no name was
/// given twice, and a create that finished before another began got the smaller name.
pub fn sequential(creates: &[SeqCreate], present: Option<&BTreeMap<String, String>>) -> Vec<String> {
    let Some(present) = present else {
        return vec!["could not list /chaos/seq after the run".into()];
    };
    let mut out = Vec::new();
    let mut names = Vec::new();
    for c in creates.iter().filter(|c| c.outcome == Outcome::Ok) {
        let Some(path) = c.path.as_deref() else { continue };
        match present.get(path) {
            Some(v) if *v == c.value => {}
            Some(v) => {
                out.push(format!("{path} holds {v}, but the create of {} was acknowledged there", c.value))
            }
            None => out.push(format!("acknowledged create {path} ({}) is missing", c.value)),
        }
        // Names end in the parent's 10-digit counter.
        match path.rsplit('-').next().and_then(|n| n.parse::<u64>().ok()) {
            Some(value) => names.push(Observation {
                process: 0,
                invoke_ns: c.invoke_ns,
                complete_ns: c.complete_ns,
                value,
            }),
            None => out.push(format!("{path} does not end in a sequence number")),
        }
    }
    let numbers: Vec<u64> = names.iter().map(|o| o.value).collect();
    out.extend(sequence::check_unique("sequential name", &numbers));
    out.extend(sequence::check_monotonic("sequential name", &names));
    let known: HashSet<&str> =
        creates.iter().filter(|c| c.outcome != Outcome::Fail).map(|c| c.value.as_str()).collect();
    for (path, v) in present {
        if !known.contains(v.as_str()) {
            out.push(format!("{path} holds {v}, which no create that may have succeeded wrote"));
        }
    }
    out
}

/// Every acknowledged register write and sequential create is in the committed history
/// (read after every member was killed at once and restarted), at its revision.
pub fn acknowledged(acked: &[AckedWrite], creates: &[SeqCreate], committed: Option<&[Event]>) -> Vec<String> {
    let Some(committed) = committed else {
        return vec!["could not read the committed history after the run".into()];
    };
    let mut out: Vec<String> =
        watch::check_acknowledged(committed, acked).into_iter().map(|a| a.text).collect();
    for c in creates.iter().filter(|c| c.outcome == Outcome::Ok) {
        let Some(path) = c.path.as_deref() else { continue };
        let found = committed.iter().any(|e| e.path == path && e.value.as_deref() == Some(c.value.as_str()));
        if !found {
            out.push(format!(
                "acknowledged create {path} ({}) is missing from the committed history",
                c.value
            ));
        }
    }
    out
}

/// Linearizability of the register history, key by key: anomalies (each with a minimal
/// sub-history that proves it), and the keys the search could not decide within its
/// budget (not a finding either way; reported apart).
pub fn registers(history: &History, dir: &Path) -> (Vec<String>, Vec<String>) {
    let report = linearizable::check_registers(&history.records, Default::default());
    let _ = std::fs::write(dir.join("linearizability.txt"), report.to_string());
    let anomalies = report.anomalies.iter().map(|a| a.text.clone()).collect();
    let undecided = report
        .undecided
        .iter()
        .map(|k| format!("key {k}: the search ran out of budget (undecided)"))
        .collect();
    (anomalies, undecided)
}

/// Each watcher's stream against the committed history: ordered, exactly once, no gap,
/// resumed right after its Last-Event-ID, complete through the final revision.
pub fn watches(
    streams: &[(Vec<StreamItem>, Option<u64>)],
    committed: Option<&[Event]>,
    from_revision: u64,
    final_revision: u64,
) -> Vec<String> {
    let Some(committed) = committed else {
        return vec!["could not read the committed history after the run".into()];
    };
    let streams: Vec<WatchStream> = streams
        .iter()
        .enumerate()
        .map(|(i, (items, last))| WatchStream {
            name: format!("watcher {i}"),
            scope: watch::Scope::Subtree("/chaos".into()),
            start_revision: from_revision,
            items: items.clone(),
            covered_through: last.filter(|l| *l >= final_revision),
        })
        .collect();
    let mut out: Vec<String> =
        watch::check_streams(committed, &streams).into_iter().map(|a| a.text).collect();
    for s in &streams {
        if s.covered_through.is_none() {
            out.push(format!("{} did not reach the final revision {final_revision} after the run", s.name));
        }
    }
    out
}

/// No lease ended before its TTL since the last acknowledged keep-alive; every lease left
/// alone ended within its TTL plus a slack. The slack grows with each fault that struck
/// while the lease should have been ending: any fault may cost a failover, and a new leader
/// restarts every countdown at its full TTL (DESIGN §3: a lease may end one TTL late per
/// failover), after an election.
pub fn leases(records: &[LeaseRecord], faults: &[(u64, u64)]) -> Vec<String> {
    const ELECTION_NS: u64 = 3_000_000_000;
    let mut out = Vec::new();
    for r in records {
        let ttl = r.ttl_ms * 1_000_000;
        let from = r.stopped_ns.unwrap_or(r.grant_invoke_ns);
        let mut slack = EXPIRY_SLACK_MS * 1_000_000;
        // Widen until no further fault starts inside the window.
        for _ in 0..faults.len() + 1 {
            let end = from + ttl + slack;
            let widened = EXPIRY_SLACK_MS * 1_000_000
                + faults
                    .iter()
                    .filter(|(start, stop)| *start < end && *stop > from)
                    .map(|(start, stop)| stop - start + ttl + ELECTION_NS)
                    .sum::<u64>();
            if widened == slack {
                break;
            }
            slack = widened;
        }
        out.extend(lease::check_leases(std::slice::from_ref(r), slack).into_iter().map(|a| a.text));
    }
    out
}

/// No two holders at once as seen through fencing tokens. A refusal by the guard is right
/// (not an anomaly) for a holder whose lease was reported lost while it held.
pub fn locks(log: &LockLog) -> Vec<String> {
    let actions: Vec<_> =
        log.actions.iter().filter(|a| a.accepted || !log.lost_tokens.contains(&a.token)).cloned().collect();
    lock::check_lock(&log.holds, &actions).into_iter().map(|a| a.text).collect()
}
