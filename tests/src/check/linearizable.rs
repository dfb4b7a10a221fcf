//! Linearizability of register / compare-and-set histories.
//!
//! The search ([`search`]) is Wing & Gong's: repeatedly pick an operation that may come next
//! (its call precedes every pending return), apply it to a sequential register, and
//! backtrack when a return is reached whose operation was not yet placed. Lowe's
//! memoisation prunes states already explored (set of placed operations, register value).
//! Keys are independent registers, so each key is checked on its own (P-compositionality),
//! which keeps the search small.
//!
//! Uncertain operations follow Porcupine: `Fail` operations never happened and are dropped;
//! an `Unknown` read constrains nothing and is dropped; an `Unknown` write, CAS or delete
//! returns at +infinity, i.e. it may take effect anywhere after its invocation or never.
//! Taken literally that doubles the search space per timeout, so [`prepare`] narrows each
//! unknown op first, exactly (no linearization is lost or invented):
//! - nobody could observe its value: dropped (never taking effect explains as much);
//! - its value is unique and a definite op needed it: it must take effect before the
//!   earliest such op returned, so it becomes a definite op with that return time;
//! - otherwise it is optional until its last possible observer returned: at that return
//!   the search may skip it (after that point, taking effect or not makes no difference);
//! - an optional op whose unique value no other op mentions only ever helps a mismatched
//!   CAS; all such values are alike ("poison"), so of several such writes the search
//!   applies only the one that expires first, and none over another (symmetry breaking).

mod model;
mod search;

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use self::model::{prepare, Effect, Observers, Op, State};
use self::search::{search, Searched, Verdict};
use super::ms;
use crate::history::{Outcome, RegisterOp, RegisterRecord};

/// How much work the checker may do before answering "undecided".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Search steps (operation placements tried) per key.
    pub steps_per_key: u64,
    /// Search steps in total for shrinking one anomaly to a small sub-history, or, when
    /// the search of a key ran out, for proving an anomaly on a sub-history around the
    /// place the search got stuck.
    pub shrink_steps: u64,
}

impl Default for Budget {
    fn default() -> Budget {
        Budget { steps_per_key: 5_000_000, shrink_steps: 20_000_000 }
    }
}

/// The verdict on a whole register history.
#[derive(Debug, Clone, Default)]
pub struct LinReport {
    pub keys_checked: usize,
    /// Operations that took part in the search (after dropping failed ops and unknown reads).
    pub ops_checked: usize,
    pub anomalies: Vec<Anomaly>,
    /// Keys whose search ran out of budget: neither proven linearizable nor not.
    /// (An anomaly found on a sub-history is still a proof, so it is reported as such.)
    pub undecided: Vec<String>,
}

impl LinReport {
    /// Proven linearizable: no anomaly and nothing undecided.
    pub fn is_linearizable(&self) -> bool {
        self.anomalies.is_empty() && self.undecided.is_empty()
    }
}

impl fmt::Display for LinReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} keys, {} operations: {} anomalies, {} undecided",
            self.keys_checked,
            self.ops_checked,
            self.anomalies.len(),
            self.undecided.len()
        )?;
        for a in &self.anomalies {
            writeln!(f, "{}", a.text)?;
        }
        for key in &self.undecided {
            writeln!(f, "key {key:?}: search budget exhausted, undecided")?;
        }
        Ok(())
    }
}

/// A key whose history has no linearization, with a small sub-history that has none either.
#[derive(Debug, Clone)]
pub struct Anomaly {
    pub key: String,
    /// The shrunk sub-history, sorted by invocation. Shrinking only removes operations whose
    /// removal cannot turn a linearizable history into a non-linearizable one, so these ops
    /// alone prove the violation.
    pub ops: Vec<RegisterRecord>,
    /// How many operations the key had before shrinking.
    pub shrunk_from: usize,
    /// One header line, then one line per operation.
    pub text: String,
}

/// Checks every key of a register history. The register of every key starts absent.
pub fn check_registers(ops: &[RegisterRecord], budget: Budget) -> LinReport {
    let mut by_key: BTreeMap<&str, Vec<RegisterRecord>> = BTreeMap::new();
    for r in ops {
        let list = by_key.entry(r.key.as_str()).or_default();
        if matters(r) {
            list.push(r.clone());
        }
    }
    let mut report = LinReport::default();
    for (key, records) in by_key {
        report.keys_checked += 1;
        report.ops_checked += records.len();
        let lowered: Vec<Op> = records.iter().enumerate().map(|(i, r)| Op::from_record(i, r)).collect();
        let searched = search(&prepare(lowered.clone()), budget.steps_per_key);
        let proven = match searched.verdict {
            Verdict::Linearizable => continue,
            Verdict::NotLinearizable => true,
            Verdict::Undecided => false,
        };
        let Some(keep) = shrink(&lowered, searched.stuck, proven, budget.shrink_steps) else {
            report.undecided.push(key.to_string());
            continue;
        };
        let mut sub: Vec<RegisterRecord> = keep.iter().map(|&i| records[i].clone()).collect();
        sub.sort_by_key(|r| (r.invoke_ns, r.process));
        let text = render(key, &sub, records.len());
        report.anomalies.push(Anomaly { key: key.to_string(), ops: sub, shrunk_from: records.len(), text });
    }
    report
}

/// Whether a record can constrain the search at all.
fn matters(r: &RegisterRecord) -> bool {
    match r.outcome {
        Outcome::Ok => true,
        Outcome::Fail => false,
        Outcome::Unknown => !matches!(r.op, RegisterOp::Read { .. }),
    }
}

fn render(key: &str, ops: &[RegisterRecord], total: usize) -> String {
    let mut text = format!("key {key:?}: these {} operations have no linearization (of {total}):", ops.len());
    for r in ops {
        let end = match r.outcome {
            Outcome::Unknown => "?".to_string(),
            _ => ms(r.complete_ns),
        };
        let outcome = format!("{:?}", r.outcome).to_lowercase();
        text.push_str(&format!(
            "\n  p{:<4} {:<22} {:<8} {} .. {}",
            r.process,
            r.op.describe(),
            outcome,
            ms(r.invoke_ns),
            end
        ));
    }
    text
}

/// Shrinks a history to a sub-history that is non-linearizable. Only removals that keep the
/// sub-history a proof are tried: reads and mismatched CASes (pure constraints) and writes
/// nobody left observes — so a non-linearizable sub-history also proves the history
/// non-linearizable, even one too big to search (`proven` false): then the ops around the
/// place the search got stuck are the only hope ([`Shrinker::around`]). Otherwise that is
/// just a first jump, followed by delta debugging: chunks of halving size, down to single
/// ops. `ops[i].id == i`; returns the ids kept, or `None` if nothing was proven.
fn shrink(ops: &[Op], stuck: Option<usize>, proven: bool, budget: u64) -> Option<Vec<usize>> {
    let mut shrinker = Shrinker { ops, spent: 0, budget };
    let mut keep = match stuck.and_then(|x| shrinker.around(x)) {
        Some(keep) => keep,
        None if proven => (0..ops.len()).collect(),
        None => return None,
    };
    let mut chunk = (keep.len() / 2).max(1);
    loop {
        let mut changed = false;
        let mut i = 0;
        while i < keep.len() && shrinker.spent < budget {
            let end = (i + chunk).min(keep.len());
            if let Some(candidate) = shrinker.try_remove(&keep, &keep[i..end]) {
                keep = candidate;
                changed = true;
            } else {
                i = end;
            }
        }
        if shrinker.spent >= budget || (chunk == 1 && !changed) {
            return Some(keep);
        }
        chunk = (chunk / 2).max(1);
    }
}

struct Shrinker<'a> {
    ops: &'a [Op],
    spent: u64,
    budget: u64,
}

impl Shrinker<'_> {
    /// `keep` without `doomed`, if that removal is sound and leaves a non-linearizable history.
    fn try_remove(&mut self, keep: &[usize], doomed: &[usize]) -> Option<Vec<usize>> {
        let candidate = remove_soundly(self.ops, keep, doomed)?;
        let sub: Vec<Op> = candidate.iter().map(|&j| self.ops[j]).collect();
        let Searched { verdict, steps, .. } = search(&prepare(sub), self.budget - self.spent);
        self.spent += steps;
        (verdict == Verdict::NotLinearizable).then_some(candidate)
    }

    /// Anomalies are usually local: tries the ops overlapping a growing window that ends
    /// where op `x` returns, plus the writers of values they need, first without and then
    /// with mismatched CASes (which observe almost every write, so they block removals).
    fn around(&mut self, x: usize) -> Option<Vec<usize>> {
        let ops = self.ops;
        // An unknown op's return is its horizon, unknown here: use the end of the history.
        let end =
            if ops[x].known { ops[x].ret } else { ops.iter().filter(|o| o.known).map(|o| o.ret).max()? };
        let start = ops.iter().map(|o| o.invoke).min()?;
        let all: Vec<usize> = (0..ops.len()).collect();
        let mut tried = Vec::new();
        for shift in (0..=12).rev() {
            let from = end.saturating_sub(end.saturating_sub(start) >> shift);
            for mismatches in [false, true] {
                let mut inside: Vec<bool> = ops
                    .iter()
                    .map(|o| {
                        let mismatch = matches!(o.effect, Effect::Cas { succeeded: Some(false), .. });
                        // Unknown ops never return: count them by their invocation.
                        let last = if o.known { o.ret } else { o.invoke };
                        o.invoke <= end && last >= from && (mismatches || !mismatch)
                    })
                    .collect();
                close_over_writers(ops, &mut inside);
                if inside == tried {
                    continue;
                }
                let doomed: Vec<usize> = all.iter().copied().filter(|&i| !inside[i]).collect();
                if doomed.is_empty() || self.spent >= self.budget {
                    return None;
                }
                if let Some(keep) = self.try_remove(&all, &doomed) {
                    return Some(keep);
                }
                tried = inside;
            }
        }
        None
    }
}

/// Adds to `inside` every op writing a value that an op inside reads or CASes from
/// (deletes for "absent").
fn close_over_writers(ops: &[Op], inside: &mut [bool]) {
    loop {
        let needed: HashSet<State> = ops
            .iter()
            .zip(inside.iter())
            .filter(|(_, &i)| i)
            .filter_map(|(o, _)| match o.effect {
                Effect::Read(v) | Effect::Cas { expected: v, .. } => Some(v),
                Effect::Put(_) => None,
            })
            .collect();
        let mut grew = false;
        for (o, i) in ops.iter().zip(inside.iter_mut()) {
            if !*i && o.written().is_some_and(|w| needed.contains(&w)) {
                *i = true;
                grew = true;
            }
        }
        if !grew {
            return;
        }
    }
}

/// `keep` without `doomed`, if those ops can be removed one by one soundly.
fn remove_soundly(ops: &[Op], keep: &[usize], doomed: &[usize]) -> Option<Vec<usize>> {
    let gone: HashSet<usize> = doomed.iter().copied().collect();
    let rest: Vec<usize> = keep.iter().copied().filter(|j| !gone.contains(j)).collect();
    // Pure constraints go first: without them, writes may no longer be observed.
    let mut writes: Vec<usize> = doomed.iter().copied().filter(|&j| ops[j].written().is_some()).collect();
    while !writes.is_empty() {
        let sub: Vec<Op> = rest.iter().chain(&writes).map(|&j| ops[j]).collect();
        let observers = Observers::new(&sub);
        let before = writes.len();
        let mut d = rest.len();
        writes.retain(|_| {
            d += 1;
            observers.observed(&sub, d - 1)
        });
        if writes.len() == before {
            return None;
        }
    }
    Some(rest)
}

#[cfg(test)]
mod tests;
