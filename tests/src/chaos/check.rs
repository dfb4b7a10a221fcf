//! The run's checks: each turns a workload's records into the inputs of a checker in
//! [`crate::check`] and its findings into lines for the report.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::sessions::{LeaseLife, LockLog};
use super::watchers::Seen;
use super::workload::{Acked, SeqCreate};
use crate::history::{History, Outcome};

/// Sequential creates: every acknowledged create is there with its value, no name was
/// given twice, and a create that finished before another began got the smaller name.
pub fn sequential(creates: &[SeqCreate], present: Option<&BTreeMap<String, String>>) -> Vec<String> {
    let Some(present) = present else {
        return vec!["could not list /chaos/seq after the run".into()];
    };
    let mut out = Vec::new();
    let mut by_path: HashMap<&str, &SeqCreate> = HashMap::new();
    let ok: Vec<&SeqCreate> = creates.iter().filter(|c| c.outcome == Outcome::Ok).collect();
    for c in &ok {
        let Some(path) = c.path.as_deref() else { continue };
        if let Some(other) = by_path.insert(path, c) {
            out.push(format!("{path} was given to two creates ({} and {})", other.value, c.value));
        }
        match present.get(path) {
            Some(v) if *v == c.value => {}
            Some(v) => {
                out.push(format!("{path} holds {v}, but the create of {} was acknowledged there", c.value))
            }
            None => out.push(format!("acknowledged create {path} ({}) is missing", c.value)),
        }
    }
    let mut ordered = ok.clone();
    ordered.sort_by_key(|c| c.complete_ns);
    for (i, a) in ordered.iter().enumerate() {
        for b in ordered[i + 1..].iter().filter(|b| b.invoke_ns > a.complete_ns) {
            if let (Some(pa), Some(pb)) = (&a.path, &b.path) {
                if pb <= pa {
                    out.push(format!(
                        "{pb} was created after {pa} had been acknowledged, yet sorts before it"
                    ));
                }
            }
        }
    }
    let known: std::collections::HashSet<&str> =
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
pub fn acknowledged(acked: &[Acked], creates: &[SeqCreate], committed: Option<&[Seen]>) -> Vec<String> {
    let Some(committed) = committed else {
        return vec!["could not read the committed history after the run".into()];
    };
    let mut at: HashMap<(&str, u64), Option<&str>> = HashMap::new();
    let mut anywhere: HashMap<&str, Vec<(u64, Option<&str>)>> = HashMap::new();
    for s in committed {
        if let Seen::Event { revision, path, value, kind } = s {
            if kind != "delete" {
                at.insert((path.as_str(), *revision), value.as_deref());
            }
            anywhere.entry(path.as_str()).or_default().push((*revision, value.as_deref()));
        }
    }
    let mut out = Vec::new();
    for a in acked {
        match at.get(&(a.path.as_str(), a.revision)) {
            Some(Some(v)) if *v == a.value => {}
            Some(v) => out.push(format!(
                "acknowledged write {} = {} at revision {} is recorded with {:?}",
                a.path, a.value, a.revision, v
            )),
            None => out.push(format!(
                "acknowledged write {} = {} at revision {} is missing from the committed history",
                a.path, a.value, a.revision
            )),
        }
    }
    for c in creates.iter().filter(|c| c.outcome == Outcome::Ok) {
        let Some(path) = c.path.as_deref() else { continue };
        let found =
            anywhere.get(path).is_some_and(|v| v.iter().any(|(_, val)| *val == Some(c.value.as_str())));
        if !found {
            out.push(format!(
                "acknowledged create {path} ({}) is missing from the committed history",
                c.value
            ));
        }
    }
    out
}

/// Linearizability of the register history, key by key; anomalies come with a minimal
/// sub-history, and keys the search could not decide are reported too.
pub fn registers(history: &History, dir: &Path) -> Vec<String> {
    let report = crate::check::linearizable::check_registers(&history.records, Default::default());
    let _ = std::fs::write(dir.join("linearizability.txt"), report.to_string());
    let mut out: Vec<String> = report.anomalies.iter().map(|a| a.text.clone()).collect();
    out.extend(report.undecided.iter().map(|k| format!("key {k}: the search ran out of budget (undecided)")));
    out
}

pub fn watches(
    _streams: &[(Vec<Seen>, Option<u64>)],
    _committed: Option<&[Seen]>,
    _from: u64,
    _to: u64,
) -> Vec<String> {
    Vec::new()
}

pub fn leases(_lives: &[LeaseLife]) -> Vec<String> {
    Vec::new()
}

pub fn locks(_log: &LockLog) -> Vec<String> {
    Vec::new()
}
