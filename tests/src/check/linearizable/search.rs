//! Wing & Gong's search with Lowe's memoisation, generalised to dominance.
//!
//! The pending operations sit in a doubly linked list of call and return entries sorted by
//! time. An op can be placed next if its call precedes the first remaining return; placing
//! it unlinks both entries, backtracking relinks them. A configuration is (placed definite
//! ops, resolved optional ops, register). Lowe caches configurations already explored; here
//! a configuration is also pruned when one that failed had the same definite ops and
//! register but a *subset* of the optional ops resolved — unresolved optional ops only add
//! choices, so the failed one could do everything this one can.
//!
//! Three orderings keep the search small without losing linearizations:
//! - definite ops are tried before optional ones, so "the unknown op did not take effect
//!   (yet)" is explored first and dominance then cuts most branches where it did;
//! - candidates are tried most urgent (earliest return) first;
//! - an optional op is applied only right before a move that needs its value ([`depends`]).

use std::collections::HashMap;

use super::model::{step, Effect, Op, Reg};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    Linearizable,
    NotLinearizable,
    Undecided,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Searched {
    pub verdict: Verdict,
    /// Placements tried.
    pub steps: u64,
    /// Unless linearizable: the [`Op::id`] of the op whose return blocked the deepest
    /// attempt, i.e. where the history seems to stop making sense.
    pub stuck: Option<usize>,
}

const NIL: usize = usize::MAX;

/// A set of op indices.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Box<[u64]>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)].into_boxed_slice())
    }
    fn flip(&mut self, i: usize) {
        self.0[i / 64] ^= 1 << (i % 64);
    }
    fn subset_of(&self, other: &Bits) -> bool {
        self.0.iter().zip(other.0.iter()).all(|(a, b)| a & !b == 0)
    }
}

/// How an op left the pending list, which says where to resume after undoing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Move {
    /// A definite op was placed (found while scanning for definite ops).
    Definite,
    /// An optional op took effect (found while scanning for optional ops).
    Optional,
    /// An optional op's return was reached and it was dropped.
    Skip,
}

/// The linked list of entries: node 0 is the head, op `i` has nodes `2i+1` (call) and
/// `2i+2` (return).
struct Entries {
    next: Vec<usize>,
    prev: Vec<usize>,
}

impl Entries {
    fn new(ops: &[Op]) -> Entries {
        let n = 2 * ops.len() + 1;
        // At equal times calls sort before returns: touching operations count as concurrent.
        let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(n - 1);
        for (i, o) in ops.iter().enumerate() {
            order.push((o.invoke, false, 2 * i + 1));
            order.push((o.ret, true, 2 * i + 2));
        }
        order.sort_unstable();
        let mut entries = Entries { next: vec![NIL; n], prev: vec![NIL; n] };
        let mut last = 0;
        for &(_, _, node) in &order {
            entries.next[last] = node;
            entries.prev[node] = last;
            last = node;
        }
        entries
    }

    fn unlink(&mut self, x: usize) {
        let (p, n) = (self.prev[x], self.next[x]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
    }

    /// Undoes `unlink(x)`; undo in the reverse order of unlinking.
    fn relink(&mut self, x: usize) {
        let (p, n) = (self.prev[x], self.next[x]);
        self.next[p] = x;
        if n != NIL {
            self.prev[n] = x;
        }
    }

    /// The op of the first pending return.
    fn first_return(&self) -> Option<usize> {
        let mut node = self.next[0];
        while node != NIL && node % 2 == 1 {
            node = self.next[node];
        }
        (node != NIL).then(|| (node - 2) / 2)
    }

    /// The ops that could be placed now: calls before the first return.
    fn candidates(&self) -> impl Iterator<Item = usize> + '_ {
        let mut node = self.next[0];
        std::iter::from_fn(move || {
            (node != NIL && node % 2 == 1).then(|| {
                let op = (node - 1) / 2;
                node = self.next[node];
                op
            })
        })
    }
}

/// The register after optional op `op` takes effect, if it should be tried now. Taking
/// effect without changing anything is never tried (leaving the op pending is as good),
/// and of several poison writes only the one that expires first is used (they are alike).
fn apply_optional(ops: &[Op], op: usize, reg: Reg, entries: &Entries) -> Option<Reg> {
    let o = &ops[op];
    match o.effect {
        Effect::Read(_) => None,
        Effect::Put(_) if o.poison => {
            let earlier = |j: usize| {
                j != op
                    && ops[j].poison
                    && matches!(ops[j].effect, Effect::Put(_))
                    && (ops[j].ret, j) < (o.ret, op)
            };
            (reg != Reg::Poison && !entries.candidates().any(earlier)).then_some(Reg::Poison)
        }
        Effect::Put(v) => (reg != Reg::Is(v)).then_some(Reg::Is(v)),
        Effect::Cas { expected, new, .. } => {
            (reg == Reg::Is(expected)).then_some(if o.poison { Reg::Poison } else { Reg::Is(Some(new)) })
        }
    }
}

/// Whether a move right after an optional op took the register from `before` to something
/// else is worth trying. Optional ops are applied lazily: in any linearization, an optional
/// op followed by a read or mismatched CAS that also accepts `before` can swap places with
/// it, one followed by a write or delete can be dropped, and a drop of another op (at that
/// op's return) can go first. So only moves that need the optional op's value follow it.
fn depends(before: Reg, mv: Move, effect: Effect) -> bool {
    match (mv, effect) {
        (Move::Skip, _) | (_, Effect::Put(_)) => false,
        (_, Effect::Read(_)) | (_, Effect::Cas { succeeded: Some(false), .. }) => {
            step(before, effect).is_none()
        }
        (_, Effect::Cas { .. }) => true,
    }
}

/// One move on the search path: enough to undo it and to resume with the next candidate.
struct Frame {
    op: usize,
    before: Reg,
    mv: Move,
    /// Position of `op` among the candidates of its kind.
    index: usize,
}

struct Search<'a> {
    ops: &'a [Op],
    entries: Entries,
    /// Each op's index among the ops of its kind (must / optional), for the bit sets.
    slot: Vec<usize>,
    /// Placed ops that must be placed.
    definite: Bits,
    /// Optional ops applied or dropped.
    resolved: Bits,
    reg: Reg,
    /// Ops that must still be placed.
    remaining: usize,
    path: Vec<Frame>,
    /// Failed configurations: placed definite ops -> (register, resolved optional ops).
    failed: HashMap<Bits, Vec<(Reg, Bits)>>,
    steps: u64,
}

impl Search<'_> {
    /// The ops a move of kind `mv` may take now. Calls before the first return, most urgent
    /// (earliest return) first: a long-running write is then placed late, where it is
    /// usually needed, instead of early, where it spoils reads. For `Skip`, the op of the
    /// first return if it is optional.
    fn candidates(&self, mv: Move) -> Vec<usize> {
        if mv == Move::Skip {
            return self.entries.first_return().filter(|&op| !self.ops[op].must).into_iter().collect();
        }
        let must = mv == Move::Definite;
        let mut ops: Vec<usize> = self.entries.candidates().filter(|&o| self.ops[o].must == must).collect();
        ops.sort_unstable_by_key(|&o| (self.ops[o].ret, o));
        ops
    }

    /// Makes the move if it is allowed, consistent and not dominated by a failure.
    fn try_move(&mut self, op: usize, mv: Move, index: usize) -> bool {
        self.steps += 1;
        let effect = self.ops[op].effect;
        if let Some(Frame { before, mv: Move::Optional, .. }) = self.path.last() {
            if !depends(*before, mv, effect) {
                return false;
            }
        }
        let next = match mv {
            Move::Definite => step(self.reg, effect),
            Move::Optional => apply_optional(self.ops, op, self.reg, &self.entries),
            Move::Skip => Some(self.reg),
        };
        let Some(next) = next else { return false };
        let must = self.ops[op].must;
        self.flip(op);
        let dominated = self.failed.get(&self.definite).is_some_and(|f| {
            f.iter().any(|(reg, resolved)| *reg == next && resolved.subset_of(&self.resolved))
        });
        if dominated {
            self.flip(op);
            return false;
        }
        self.path.push(Frame { op, before: self.reg, mv, index });
        self.reg = next;
        self.remaining -= usize::from(must);
        self.entries.unlink(2 * op + 1);
        self.entries.unlink(2 * op + 2);
        true
    }

    /// Records the current configuration as failed and undoes the last move.
    fn undo(&mut self) -> Option<Frame> {
        let frame = self.path.pop()?;
        // Right after an optional op only some moves are tried (see `depends`), so such a
        // configuration failing says nothing about reaching it another way.
        if frame.mv != Move::Optional {
            self.failed.entry(self.definite.clone()).or_default().push((self.reg, self.resolved.clone()));
        }
        self.flip(frame.op);
        self.reg = frame.before;
        self.remaining += usize::from(self.ops[frame.op].must);
        self.entries.relink(2 * frame.op + 2);
        self.entries.relink(2 * frame.op + 1);
        Some(frame)
    }

    fn flip(&mut self, op: usize) {
        if self.ops[op].must {
            self.definite.flip(self.slot[op]);
        } else {
            self.resolved.flip(self.slot[op]);
        }
    }
}

/// Searches for a linearization of `ops` from an absent register, trying at most `budget`
/// moves.
pub(super) fn search(ops: &[Op], budget: u64) -> Searched {
    let remaining = ops.iter().filter(|o| o.must).count();
    let (mut musts, mut optionals) = (0, 0);
    let slot = ops
        .iter()
        .map(|o| {
            let count = if o.must { &mut musts } else { &mut optionals };
            *count += 1;
            *count - 1
        })
        .collect();
    let mut s = Search {
        ops,
        entries: Entries::new(ops),
        slot,
        definite: Bits::new(musts),
        resolved: Bits::new(optionals),
        reg: Reg::Is(None),
        remaining,
        path: Vec::new(),
        failed: HashMap::new(),
        steps: 0,
    };
    // The deepest point reached, by definite ops placed, and the op whose return blocked it.
    let mut stuck: (usize, Option<usize>) = (0, None);
    // Where to resume in the current configuration: kind of move and candidate index.
    let (mut mv, mut from) = (Move::Definite, 0);
    loop {
        if s.remaining == 0 {
            return Searched { verdict: Verdict::Linearizable, steps: s.steps, stuck: None };
        }
        if s.steps >= budget {
            return Searched { verdict: Verdict::Undecided, steps: s.steps, stuck: stuck.1 };
        }
        let candidates = s.candidates(mv);
        if candidates.iter().enumerate().skip(from).any(|(i, &op)| s.try_move(op, mv, i)) {
            (mv, from) = (Move::Definite, 0);
            continue;
        }
        (mv, from) = match mv {
            Move::Definite => (Move::Optional, 0),
            Move::Optional => (Move::Skip, 0),
            Move::Skip => {
                let depth = remaining - s.remaining;
                if stuck.1.is_none() || depth > stuck.0 {
                    stuck = (depth, s.entries.first_return().map(|op| ops[op].id));
                }
                let Some(frame) = s.undo() else {
                    return Searched { verdict: Verdict::NotLinearizable, steps: s.steps, stuck: stuck.1 };
                };
                (frame.mv, frame.index + 1)
            }
        };
    }
}
