//! The fault schedule: a pure function of the seed, the run's length and the cluster size,
//! so the same seed replays the same faults (which member, when, for how long). Faults aimed
//! at "the leader" pick whoever leads when they start.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Fault {
    /// SIGKILL, restarted when the fault ends.
    Kill {
        member: usize,
    },
    KillLeader,
    /// SIGSTOP, SIGCONT when the fault ends.
    Pause {
        member: usize,
    },
    PauseLeader,
    /// Cut off from every other member, both ways.
    Isolate {
        member: usize,
    },
    IsolateLeader,
    /// A majority and a minority that cannot talk.
    Split {
        minority: Vec<usize>,
    },
    /// Two halves joined only through one member.
    Bridge {
        left: Vec<usize>,
        bridge: usize,
        right: Vec<usize>,
    },
    /// One direction of one link.
    OneWay {
        from: usize,
        to: usize,
    },
    /// Every member SIGKILLed at once, then all restarted.
    KillAll,
}

impl Fault {
    /// The kind, for the summary table.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Kill { .. } => "kill",
            Fault::KillLeader => "kill-leader",
            Fault::Pause { .. } => "pause",
            Fault::PauseLeader => "pause-leader",
            Fault::Isolate { .. } => "isolate",
            Fault::IsolateLeader => "isolate-leader",
            Fault::Split { .. } => "split",
            Fault::Bridge { .. } => "bridge",
            Fault::OneWay { .. } => "one-way",
            Fault::KillAll => "kill-all",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Planned {
    /// When the fault starts, from the start of the run.
    pub at_ms: u64,
    /// How long it lasts before it is healed.
    pub hold_ms: u64,
    pub fault: Fault,
}

/// Faults for a run of `duration_ms` on `n` members: each held 1.5–5 s, then 1–3 s of
/// calm so the cluster can recover and the workloads make progress between faults. The
/// last second of the run is fault-free.
pub fn schedule(seed: u64, duration_ms: u64, n: usize) -> Vec<Planned> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    let mut at = rng.gen_range(500..1_500);
    loop {
        let hold = rng.gen_range(1_500..5_000);
        if at + hold + 1_000 > duration_ms {
            break;
        }
        let fault = pick(&mut rng, n);
        out.push(Planned { at_ms: at, hold_ms: hold, fault });
        at += hold + rng.gen_range(1_000..3_000);
    }
    out
}

fn pick(rng: &mut StdRng, n: usize) -> Fault {
    let member = rng.gen_range(0..n);
    let mut others: Vec<usize> = (0..n).filter(|&j| j != member).collect();
    match rng.gen_range(0..10) {
        0 => Fault::Kill { member },
        1 => Fault::KillLeader,
        2 => Fault::Pause { member },
        3 => Fault::PauseLeader,
        4 => Fault::Isolate { member },
        5 => Fault::IsolateLeader,
        6 => {
            // A minority: fewer than half.
            let size = rng.gen_range(1..=(n - 1) / 2);
            let mut all: Vec<usize> = (0..n).collect();
            for i in (1..all.len()).rev() {
                all.swap(i, rng.gen_range(0..=i));
            }
            let mut minority = all[..size].to_vec();
            minority.sort();
            Fault::Split { minority }
        }
        7 if n >= 3 => {
            for i in (1..others.len()).rev() {
                others.swap(i, rng.gen_range(0..=i));
            }
            let half = others.len() / 2;
            let (mut left, mut right) = (others[..half].to_vec(), others[half..].to_vec());
            left.sort();
            right.sort();
            Fault::Bridge { left, bridge: member, right }
        }
        8 => Fault::OneWay { from: member, to: others[rng.gen_range(0..others.len())] },
        _ => Fault::KillAll,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        assert_eq!(schedule(7, 60_000, 3), schedule(7, 60_000, 3));
        assert_ne!(schedule(7, 60_000, 3), schedule(8, 60_000, 3));
        let s = schedule(7, 60_000, 5);
        assert!(s.len() >= 6, "{s:?}");
        assert!(s.windows(2).all(|w| w[0].at_ms + w[0].hold_ms < w[1].at_ms));
        assert!(s.iter().all(|p| p.at_ms + p.hold_ms + 1_000 <= 60_000));
    }

    #[test]
    fn splits_leave_a_majority() {
        for seed in 0..50 {
            for p in schedule(seed, 60_000, 5) {
                if let Fault::Split { minority } = p.fault {
                    assert!(!minority.is_empty() && minority.len() * 2 < 5);
                }
            }
        }
    }
}
