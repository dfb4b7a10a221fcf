//! The sequential register, and the exact narrowing of unknown operations before a search.

use std::collections::{HashMap, HashSet};

use crate::history::{Outcome, RegisterOp, RegisterRecord};

/// Register value: `None` is "key absent".
pub(super) type State = Option<u64>;

/// The register as the search sees it. `Poison` is a value written by an unknown op that
/// no other op mentions: all such values behave alike (see [`prepare`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Reg {
    Is(State),
    Poison,
}

/// What an operation does to, or demands of, the register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Effect {
    Read(State),
    /// Write or delete: sets the value whatever it was.
    Put(State),
    /// `succeeded: None` for an unknown outcome: applies when the compare holds.
    Cas {
        expected: State,
        new: u64,
        succeeded: Option<bool>,
    },
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Op {
    /// Index of the record it came from.
    pub id: usize,
    pub effect: Effect,
    pub invoke: u64,
    /// `u64::MAX` when the outcome is unknown, until [`prepare`] bounds it.
    pub ret: u64,
    /// The outcome was `Ok`.
    pub known: bool,
    /// The search must place it. Ops that need not be placed are optional: at their return
    /// the search may drop them instead.
    pub must: bool,
    /// Optional, and its value is mentioned by no other op: it writes [`Reg::Poison`].
    pub poison: bool,
}

impl Op {
    pub fn from_record(id: usize, r: &RegisterRecord) -> Op {
        let known = r.outcome == Outcome::Ok;
        let effect = match r.op {
            RegisterOp::Read { value } => Effect::Read(value),
            RegisterOp::Write { value } => Effect::Put(Some(value)),
            RegisterOp::Delete => Effect::Put(None),
            RegisterOp::Cas { expected, new, succeeded } => {
                Effect::Cas { expected, new, succeeded: known.then_some(succeeded) }
            }
        };
        let ret = if known { r.complete_ns.max(r.invoke_ns) } else { u64::MAX };
        Op { id, effect, invoke: r.invoke_ns, ret, known, must: known, poison: false }
    }

    /// The value left behind if this operation changes the register.
    pub fn written(&self) -> Option<State> {
        match self.effect {
            Effect::Read(_) => None,
            Effect::Put(v) => Some(v),
            Effect::Cas { succeeded: Some(false), .. } => None,
            Effect::Cas { new, .. } => Some(Some(new)),
        }
    }

    /// A known op that is only possible if the register holds `v` when it takes effect.
    pub fn requires(&self, v: State) -> bool {
        match self.effect {
            Effect::Read(x) => self.known && x == v,
            Effect::Cas { expected, succeeded: Some(true), .. } => expected == v,
            _ => false,
        }
    }

    /// Whether this op's answer could depend on the register holding `v` rather than
    /// something else. `possible` holds every value the register can take.
    fn could_observe(&self, v: State, possible: &HashSet<State>) -> bool {
        match self.effect {
            Effect::Read(x) => x == v,
            Effect::Put(_) => false,
            // A mismatch needs "not expected": `v` helps only if `expected` could be there.
            Effect::Cas { expected, succeeded: Some(false), .. } => {
                expected != v && possible.contains(&expected)
            }
            Effect::Cas { expected, .. } => expected == v,
        }
    }
}

/// Applies a definite `effect` to `reg`: the new register, or `None` if the answer
/// contradicts it.
pub(super) fn step(reg: Reg, effect: Effect) -> Option<Reg> {
    match effect {
        Effect::Read(v) => (reg == Reg::Is(v)).then_some(reg),
        Effect::Put(v) => Some(Reg::Is(v)),
        Effect::Cas { expected, new, succeeded: Some(true) } => {
            (reg == Reg::Is(expected)).then_some(Reg::Is(Some(new)))
        }
        Effect::Cas { expected, succeeded: Some(false), .. } => (reg != Reg::Is(expected)).then_some(reg),
        Effect::Cas { expected, new, succeeded: None } => {
            Some(if reg == Reg::Is(expected) { Reg::Is(Some(new)) } else { reg })
        }
    }
}

/// Every value the register can take in `ops`: absent, or something some op writes.
fn possible_values(ops: &[Op]) -> HashSet<State> {
    ops.iter().filter_map(Op::written).chain([None]).collect()
}

/// Answers "could removing write-like op `w` make a linearizable history
/// non-linearizable?" for every op of one history, after one pass over it.
///
/// If no other op that may follow `w` reads `w`'s value, CASes from it (definitely or
/// maybe) or fails a CAS that `w`'s value would explain, then in any linearization `w` can
/// be cut out: nothing between `w` and the next write depends on its value (unknown ops
/// there can move to the end). So for such `w`, "non-linearizable without `w`" implies
/// "non-linearizable with `w`" — and for an unknown `w`, dropping it is exact. Removing ops
/// only removes observers, so ops found unobserved together can be removed together.
pub(super) struct Observers {
    possible: HashSet<State>,
    /// Per value: the two latest returns (with op index) of ops that need that value.
    needing: HashMap<State, [Option<(u64, usize)>; 2]>,
    /// The latest returns of mismatched CASes, for the two latest distinct expected values.
    mismatches: [Option<(u64, State)>; 2],
}

impl Observers {
    pub fn new(ops: &[Op]) -> Observers {
        let possible = possible_values(ops);
        let mut needing: HashMap<State, [Option<(u64, usize)>; 2]> = HashMap::new();
        let mut mismatches: [Option<(u64, State)>; 2] = [None, None];
        for (i, o) in ops.iter().enumerate() {
            match o.effect {
                Effect::Put(_) => {}
                Effect::Cas { expected, succeeded: Some(false), .. } => {
                    if !possible.contains(&expected) {
                        continue;
                    }
                    let entry = Some((o.ret, expected));
                    match mismatches {
                        [Some((r, e)), _] if e == expected => mismatches[0] = Some((r.max(o.ret), e)),
                        [_, Some((r, e))] if e == expected => mismatches[1] = Some((r.max(o.ret), e)),
                        _ => mismatches[1] = mismatches[1].max(entry),
                    }
                    if mismatches[1] > mismatches[0] {
                        mismatches.swap(0, 1);
                    }
                }
                Effect::Read(v) | Effect::Cas { expected: v, .. } => {
                    let top = needing.entry(v).or_default();
                    let entry = Some((o.ret, i));
                    if entry > top[0] {
                        *top = [entry, top[0]];
                    } else if entry > top[1] {
                        top[1] = entry;
                    }
                }
            }
        }
        Observers { possible, needing, mismatches }
    }

    /// Whether op `w` of `ops` (the ops this was built from) is observed.
    pub fn observed(&self, ops: &[Op], w: usize) -> bool {
        let Some(v) = ops[w].written() else { return false };
        let after = |ret: u64| ret >= ops[w].invoke;
        let needed = self.needing.get(&v).is_some_and(|top| {
            top.iter().flatten().find(|&&(_, i)| i != w).is_some_and(|&(ret, _)| after(ret))
        });
        let mismatch = self.mismatches.iter().flatten().find(|&&(_, e)| e != v);
        needed || mismatch.is_some_and(|&(ret, _)| after(ret))
    }

    /// Whether `o`'s answer could depend on the register holding `v`.
    pub fn could_observe(&self, o: &Op, v: State) -> bool {
        o.could_observe(v, &self.possible)
    }
}

/// Drops unknown writes nobody could have observed (see [`Observers`]), until none is left.
fn prune_unknowns(mut ops: Vec<Op>) -> Vec<Op> {
    loop {
        let observers = Observers::new(&ops);
        let unobserved: Vec<bool> =
            (0..ops.len()).map(|i| !ops[i].known && !observers.observed(&ops, i)).collect();
        if !unobserved.contains(&true) {
            return ops;
        }
        let mut flags = unobserved.into_iter();
        ops.retain(|_| !flags.next().unwrap_or(false));
    }
}

/// Narrows unknown ops before a search, exactly (see the module documentation of
/// [`super`]): drops the unobservable ones, makes the ones a definite op needed definite,
/// and bounds the rest by their last possible observer.
pub(super) fn prepare(ops: Vec<Op>) -> Vec<Op> {
    let mut ops = prune_unknowns(ops);
    let original = &ops.clone();
    let observers = &Observers::new(original);
    let written = |i: usize| original[i].written().filter(|_| !original[i].known);
    // Ops that may take effect after op `i` and whose answer could depend on its value.
    let watchers = |i: usize, v: State| {
        let invoke = original[i].invoke;
        original
            .iter()
            .enumerate()
            .filter(move |&(j, o)| j != i && o.ret >= invoke && observers.could_observe(o, v))
    };
    for (i, op) in ops.iter_mut().enumerate() {
        let Some(v) = written(i) else { continue };
        let unique = v.is_some() && original.iter().filter(|o| o.written() == Some(v)).count() == 1;
        let needed_by = watchers(i, v).filter(|(_, o)| o.requires(v)).map(|(_, o)| o.ret).min();
        if let (Some(ret), true) = (needed_by, unique) {
            // Nothing else writes `v`, so it took effect before that op returned.
            (op.must, op.ret) = (true, ret);
        }
    }
    // An optional op matters until its last watcher is placed: a known watcher by its
    // return, an optional one by its own horizon (least fixpoint; the last-placed op past
    // its horizon has every watcher before it, so it can be dropped, and so on).
    let optional: Vec<usize> = (0..ops.len()).filter(|&i| !ops[i].must).collect();
    for &i in &optional {
        ops[i].ret = ops[i].invoke;
    }
    loop {
        let mut grew = false;
        for &i in &optional {
            let Some(v) = written(i) else { continue };
            let horizon = watchers(i, v).map(|(j, _)| ops[j].ret).max().unwrap_or(0).max(ops[i].invoke);
            if horizon > ops[i].ret {
                ops[i].ret = horizon;
                grew = true;
            }
        }
        if !grew {
            break;
        }
    }
    for &i in &optional {
        let Some(v) = written(i) else { continue };
        let mentions = |o: &Op| match o.effect {
            Effect::Read(x) | Effect::Cas { expected: x, .. } => x == v,
            Effect::Put(_) => false,
        };
        let unique = original.iter().filter(|o| o.written() == Some(v)).count() == 1;
        ops[i].poison = unique && original.iter().enumerate().all(|(j, o)| j == i || !mentions(o));
    }
    ops
}
