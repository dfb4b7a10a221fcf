use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::history::History;

const MS: u64 = 1_000_000;

fn read(v: Option<u64>) -> RegisterOp {
    RegisterOp::Read { value: v }
}
fn write(v: u64) -> RegisterOp {
    RegisterOp::Write { value: v }
}
fn cas(expected: Option<u64>, new: u64, succeeded: bool) -> RegisterOp {
    RegisterOp::Cas { expected, new, succeeded }
}
/// A span in whole milliseconds.
fn at(from: u64, to: u64) -> (u64, u64) {
    (from * MS, to * MS)
}
fn check(h: &History) -> LinReport {
    check_registers(&h.records, Budget::default())
}

#[test]
fn empty_and_sequential_histories_pass() {
    assert!(check(&History::new()).is_linearizable());
    let mut h = History::new();
    h.ok(1, "x", read(None), at(0, 1))
        .ok(1, "x", write(1), at(2, 3))
        .ok(2, "x", read(Some(1)), at(4, 5))
        .ok(2, "x", cas(Some(1), 2, true), at(6, 7))
        .ok(3, "x", cas(Some(1), 3, false), at(8, 9))
        .ok(3, "x", read(Some(2)), at(10, 11))
        .ok(1, "x", RegisterOp::Delete, at(12, 13))
        .ok(2, "x", read(None), at(14, 15))
        .ok(2, "x", cas(None, 5, true), at(16, 17))
        .ok(1, "x", read(Some(5)), at(18, 19));
    let report = check(&h);
    assert!(report.is_linearizable(), "{report}");
    assert_eq!((report.keys_checked, report.ops_checked), (1, 10));
}

#[test]
fn concurrent_overlapping_ops_pass() {
    let mut h = History::new();
    // Two concurrent writes; the reads during them may see either value or none.
    h.ok(1, "x", write(1), at(0, 10))
        .ok(2, "x", write(2), at(1, 9))
        .ok(3, "x", read(Some(2)), at(2, 3))
        .ok(4, "x", read(None), at(0, 4))
        .ok(3, "x", read(Some(1)), at(5, 6))
        // A CAS concurrent with both writes succeeds against 1, so the last write is 2.
        .ok(5, "x", cas(Some(1), 7, true), at(3, 12))
        .ok(4, "x", read(Some(7)), at(13, 14));
    let report = check(&h);
    assert!(report.is_linearizable(), "{report}");
}

#[test]
fn stale_read_fails_and_shrinks_to_the_three_ops_that_prove_it() {
    let mut h = History::new();
    h.ok(1, "x", write(1), at(0, 1))
        .ok(2, "x", read(Some(1)), at(1, 2))
        .ok(1, "x", write(2), at(2, 3))
        .ok(3, "x", read(Some(2)), at(4, 5))
        .ok(2, "x", read(Some(1)), at(6, 7))
        .ok(3, "y", write(9), at(0, 1));
    let report = check(&h);
    assert_eq!(report.anomalies.len(), 1, "{report}");
    let a = &report.anomalies[0];
    assert_eq!(a.key, "x");
    assert_eq!(a.shrunk_from, 5);
    let ops: Vec<RegisterOp> = a.ops.iter().map(|r| r.op).collect();
    assert_eq!(ops, [write(1), write(2), read(Some(1))], "{}", a.text);
    assert!(a.text.contains("p2    read()=1") && a.text.contains("6.000ms .. 7.000ms"), "{}", a.text);
}

#[test]
fn lost_write_fails() {
    // The write of 2 was acknowledged, yet every later read sees the older value.
    let mut h = History::new();
    h.ok(1, "x", write(1), at(0, 1)).ok(2, "x", write(2), at(2, 3)).ok(3, "x", read(Some(1)), at(4, 5)).ok(
        1,
        "x",
        read(Some(1)),
        at(6, 7),
    );
    let report = check(&h);
    assert_eq!(report.anomalies.len(), 1, "{report}");
    assert!(report.anomalies[0].ops.len() <= 4);
}

#[test]
fn cas_against_a_superseded_value_fails() {
    let mut h = History::new();
    h.ok(1, "x", write(1), at(0, 1)).ok(2, "x", write(2), at(2, 3)).ok(
        3,
        "x",
        cas(Some(1), 3, true),
        at(4, 5),
    );
    let report = check(&h);
    assert_eq!(report.anomalies.len(), 1, "{report}");
    assert_eq!(report.anomalies[0].ops.len(), 3, "{}", report.anomalies[0].text);
}

#[test]
fn unknown_write_that_must_have_taken_effect_passes_and_ok_twin_shows_it_matters() {
    let mut h = History::new();
    h.ok(1, "x", write(1), at(0, 1))
        .unknown(2, "x", write(2), at(2, 3))
        .ok(3, "x", read(Some(1)), at(4, 5))
        // Seen well after the client gave up: the write took effect late.
        .ok(3, "x", read(Some(2)), at(50, 51));
    assert!(check(&h).is_linearizable(), "{}", check(&h));
    // Had the write been acknowledged at 3ms, reading 1 at 4ms would be stale.
    h.records[1].outcome = Outcome::Ok;
    assert_eq!(check(&h).anomalies.len(), 1);
}

#[test]
fn unknown_ops_that_must_not_have_taken_effect_pass() {
    let mut h = History::new();
    h.ok(1, "x", write(1), at(0, 1))
        .unknown(2, "x", write(2), at(2, 3))
        .unknown(4, "x", cas(Some(1), 5, false), at(2, 3))
        .unknown(5, "x", RegisterOp::Delete, at(2, 3))
        .ok(3, "x", read(Some(1)), at(10, 11))
        .ok(3, "x", read(Some(1)), at(20, 21));
    assert!(check(&h).is_linearizable(), "{}", check(&h));
    // The same ops acknowledged: the reads are stale.
    h.records[1].outcome = Outcome::Ok;
    assert_eq!(check(&h).anomalies.len(), 1);
}

#[test]
fn unknown_write_explaining_a_mismatched_cas_is_kept() {
    // Nobody reads 2, but the CAS from 1 failing is only explained by the unknown write.
    let mut h = History::new();
    h.ok(1, "x", write(1), at(0, 1)).unknown(2, "x", write(2), at(2, 3)).ok(
        3,
        "x",
        cas(Some(1), 3, false),
        at(10, 11),
    );
    assert!(check(&h).is_linearizable(), "{}", check(&h));
    h.records[1].outcome = Outcome::Fail;
    assert_eq!(check(&h).anomalies.len(), 1);
}

#[test]
fn chain_of_unknown_ops_is_explored() {
    let mut h = History::new();
    h.ok(1, "x", write(1), at(0, 1))
        .unknown(2, "x", write(5), at(2, 3))
        .unknown(3, "x", cas(Some(5), 6, false), at(4, 5))
        .ok(1, "x", read(Some(6)), at(10, 11));
    assert!(check(&h).is_linearizable(), "{}", check(&h));
}

#[test]
fn failed_ops_and_unknown_reads_constrain_nothing() {
    let mut h = History::new();
    h.ok(1, "x", write(1), at(0, 1))
        .fail(2, "x", write(2), at(2, 3))
        .unknown(3, "x", read(Some(77)), at(2, 3))
        .fail(3, "x", read(Some(78)), at(4, 5))
        .ok(1, "x", read(Some(1)), at(10, 11));
    let report = check(&h);
    assert!(report.is_linearizable(), "{report}");
    assert_eq!(report.ops_checked, 2);
}

#[test]
fn running_out_of_budget_is_undecided_not_an_anomaly() {
    let mut h = History::new();
    h.ok(1, "x", write(1), at(0, 1)).ok(2, "x", read(Some(1)), at(2, 3));
    let report = check_registers(&h.records, Budget { steps_per_key: 1, shrink_steps: 1 });
    assert_eq!(report.undecided, ["x"]);
    assert!(report.anomalies.is_empty() && !report.is_linearizable());
}

/// A simulated run: processes issue operations with random durations and gaps, each op
/// takes effect at a random instant inside its window (unknown ones maybe later, or never)
/// on a sequential register per key, and answers are what that register said.
fn simulate(seed: u64, keys: usize, processes: u64, per_process: usize, unknown_rate: f64) -> History {
    struct Planned {
        record: RegisterRecord,
        effect_at: Option<u64>,
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut planned = Vec::new();
    for process in 0..processes {
        let mut t = rng.gen_range(0..1_000);
        for _ in 0..per_process {
            let invoke = t + rng.gen_range(0..500);
            let complete = invoke + rng.gen_range(1..2_000);
            t = complete;
            let roll: f64 = rng.gen();
            let (outcome, effect_at) = if roll < unknown_rate {
                let effect_at = match rng.gen_range(0..3) {
                    0 => None,
                    1 => Some(rng.gen_range(invoke..=complete)),
                    _ => Some(rng.gen_range(complete..complete + 5_000)),
                };
                (Outcome::Unknown, effect_at)
            } else if roll < unknown_rate + 0.02 {
                (Outcome::Fail, None)
            } else {
                (Outcome::Ok, Some(rng.gen_range(invoke..=complete)))
            };
            let key = format!("k{}", rng.gen_range(0..keys));
            let op = match rng.gen_range(0..10) {
                0..=3 => read(None),
                4..=6 => write(0),
                7..=8 => cas(None, 0, false),
                _ => RegisterOp::Delete,
            };
            let record = RegisterRecord {
                process,
                key,
                op,
                invoke_ns: invoke * 1_000,
                complete_ns: complete * 1_000,
                outcome,
            };
            planned.push(Planned { record, effect_at });
        }
    }
    planned.sort_by_key(|p| p.effect_at.unwrap_or(u64::MAX));
    let mut registers: std::collections::HashMap<String, Option<u64>> = Default::default();
    let mut next_value = 1;
    for p in &mut planned {
        let state = registers.entry(p.record.key.clone()).or_default();
        let applies = p.effect_at.is_some();
        match &mut p.record.op {
            RegisterOp::Read { value } => *value = if applies { *state } else { Some(999_999) },
            RegisterOp::Write { value } => {
                *value = next_value;
                next_value += 1;
                if applies {
                    *state = Some(*value);
                }
            }
            RegisterOp::Cas { expected, new, succeeded } => {
                *expected = if rng.gen_bool(0.6) { *state } else { Some(rng.gen_range(0..next_value)) };
                *new = next_value;
                next_value += 1;
                *succeeded = *expected == *state;
                if applies && *succeeded {
                    *state = Some(*new);
                }
            }
            RegisterOp::Delete => {
                if applies {
                    *state = None;
                }
            }
        }
    }
    let mut h = History::new();
    for p in planned {
        h.push(p.record);
    }
    h.records.sort_by_key(|r| r.invoke_ns);
    h
}

#[test]
fn simulated_concurrent_histories_pass() {
    for seed in 0..4 {
        let h = simulate(seed, 3, 8, 150, 0.0);
        let report = check(&h);
        assert!(report.is_linearizable(), "seed {seed}: {report}");
        assert_eq!(report.keys_checked, 3);
        assert!(report.ops_checked > 1_000, "{report}");
    }
}

#[test]
fn simulated_histories_with_timeouts_pass() {
    for seed in 10..14 {
        let h = simulate(seed, 3, 8, 150, 0.1);
        let report = check(&h);
        assert!(report.is_linearizable(), "seed {seed}: {report}");
    }
}

#[test]
fn stale_read_at_the_end_of_a_big_history_shrinks_small() {
    let mut h = simulate(7, 1, 8, 60, 0.05);
    let end = h.records.iter().map(|r| r.complete_ns).max().unwrap_or(0) + 10 * MS;
    h.ok(100, "k0", write(1_000_001), (end, end + MS))
        .ok(101, "k0", write(1_000_002), (end + 2 * MS, end + 3 * MS))
        .ok(100, "k0", read(Some(1_000_001)), (end + 4 * MS, end + 5 * MS));
    let report = check(&h);
    assert_eq!(report.anomalies.len(), 1, "{report}");
    let a = &report.anomalies[0];
    assert!(a.ops.len() <= 4, "{}", a.text);
    assert!(a.shrunk_from > 400);
    assert!(a.ops.iter().any(|r| r.op == read(Some(1_000_001))), "{}", a.text);
}

#[test]
fn stale_read_in_the_middle_of_a_big_history_shrinks_small() {
    let mut h = simulate(8, 1, 8, 60, 0.05);
    let mid = h.records[h.len() / 2].invoke_ns;
    let us = 1_000;
    h.ok(200, "k0", write(2_000_001), (mid, mid + us))
        .ok(201, "k0", write(2_000_002), (mid + 2 * us, mid + 3 * us))
        .ok(200, "k0", read(Some(2_000_001)), (mid + 4 * us, mid + 5 * us));
    let report = check(&h);
    assert_eq!(report.anomalies.len(), 1, "{report}");
    let a = &report.anomalies[0];
    assert!(a.ops.len() <= 4, "{}", a.text);
    assert!(a.ops.iter().any(|r| r.op == read(Some(2_000_001))), "{}", a.text);
}

/// The definition, by brute force: some order of the definite ops and some of the unknown
/// ones, respecting real time, that a sequential register accepts.
fn brute_force(records: &[RegisterRecord]) -> bool {
    fn go(
        ops: &[RegisterRecord],
        placed: u32,
        state: Option<u64>,
        seen: &mut std::collections::HashSet<(u32, Option<u64>)>,
    ) -> bool {
        let definite = |o: &RegisterRecord| o.outcome == Outcome::Ok;
        if ops.iter().enumerate().all(|(i, o)| placed & (1 << i) != 0 || !definite(o)) {
            return true;
        }
        if !seen.insert((placed, state)) {
            return false;
        }
        for (i, o) in ops.iter().enumerate() {
            if placed & (1 << i) != 0 {
                continue;
            }
            let blocked = ops
                .iter()
                .enumerate()
                .any(|(j, p)| placed & (1 << j) == 0 && j != i && definite(p) && p.complete_ns < o.invoke_ns);
            if blocked {
                continue;
            }
            let next = match (o.op, definite(o)) {
                (RegisterOp::Read { value }, _) => (value == state).then_some(state),
                (RegisterOp::Write { value }, _) => Some(Some(value)),
                (RegisterOp::Delete, _) => Some(None),
                (RegisterOp::Cas { expected, new, succeeded }, true) => {
                    match (expected == state, succeeded) {
                        (true, true) => Some(Some(new)),
                        (false, false) => Some(state),
                        _ => None,
                    }
                }
                (RegisterOp::Cas { expected, new, .. }, false) => {
                    Some(if expected == state { Some(new) } else { state })
                }
            };
            if let Some(next) = next {
                if go(ops, placed | (1 << i), next, seen) {
                    return true;
                }
            }
        }
        false
    }
    let ops: Vec<RegisterRecord> = records.iter().filter(|r| matters(r)).cloned().collect();
    go(&ops, 0, None, &mut Default::default())
}

fn random_small_history(rng: &mut StdRng, n: usize, values: u64) -> History {
    let span = rng.gen_range(5..40);
    let mut h = History::new();
    let value = |rng: &mut StdRng| rng.gen_range(1..=values);
    for _ in 0..n {
        let invoke = rng.gen_range(0..span);
        let complete = invoke + rng.gen_range(0..8);
        let outcome = match rng.gen_range(0..10) {
            0..=5 => Outcome::Ok,
            6..=8 => Outcome::Unknown,
            _ => Outcome::Fail,
        };
        let maybe = |rng: &mut StdRng| if rng.gen_bool(0.3) { None } else { Some(value(rng)) };
        let op = match rng.gen_range(0..4) {
            0 => read(maybe(rng)),
            1 => write(value(rng)),
            2 => cas(maybe(rng), value(rng), rng.gen_bool(0.5)),
            _ => RegisterOp::Delete,
        };
        h.record(rng.gen_range(0..4), "x", op, (invoke, complete), outcome);
    }
    h
}

#[test]
fn agrees_with_brute_force_on_small_random_histories() {
    let mut rng = StdRng::seed_from_u64(42);
    let (mut yes, mut no) = (0, 0);
    for round in 0..5_000 {
        let values = if round % 2 == 0 { 3 } else { 50 };
        let n = rng.gen_range(1..=14);
        let h = random_small_history(&mut rng, n, values);
        let expected = brute_force(&h.records);
        let report = check(&h);
        assert!(report.undecided.is_empty());
        assert_eq!(report.is_linearizable(), expected, "round {round}: {h:#?}\n{report}");
        if expected {
            yes += 1;
        } else {
            no += 1;
            // The shrunk sub-history must itself be non-linearizable.
            assert!(!brute_force(&report.anomalies[0].ops), "round {round}: {}", report.anomalies[0].text);
        }
    }
    assert!(yes > 300 && no > 300, "{yes} linearizable, {no} not");
}

#[test]
fn anomaly_in_a_history_too_big_to_search_is_proven_locally() {
    let mut h = simulate(7, 1, 8, 60, 0.05);
    let end = h.records.iter().map(|r| r.complete_ns).max().unwrap_or(0) + 10 * MS;
    h.ok(100, "k0", write(1_000_001), (end, end + MS))
        .ok(101, "k0", write(1_000_002), (end + 2 * MS, end + 3 * MS))
        .ok(100, "k0", read(Some(1_000_001)), (end + 4 * MS, end + 5 * MS));
    // Enough steps to reach the stale read, too few to search the whole history (~600k).
    let report = check_registers(&h.records, Budget { steps_per_key: 250_000, shrink_steps: 1_000_000 });
    assert!(report.undecided.is_empty(), "{report}");
    assert_eq!(report.anomalies.len(), 1, "{report}");
    assert_eq!(report.anomalies[0].ops.len(), 3, "{report}");
}
