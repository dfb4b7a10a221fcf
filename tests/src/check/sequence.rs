//! Sequences that must only grow or never repeat: revisions observed by clients, ids
//! handed out by the cluster (e.g. sequential node names, lease ids).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::ms;

/// A value a client read, e.g. the revision in a response header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    pub process: u64,
    pub invoke_ns: u64,
    pub complete_ns: u64,
    pub value: u64,
}

/// Checks that the value never goes backwards in real time: if one observation completed
/// before another was invoked, the later one is not smaller (which includes each process
/// seeing a non-decreasing sequence). Reports each observation that saw less than something
/// already seen, with the highest such earlier observation.
pub fn check_monotonic(name: &str, observations: &[Observation]) -> Vec<String> {
    let mut done: Vec<&Observation> = observations.iter().collect();
    done.sort_by_key(|o| o.complete_ns);
    let best: Vec<&Observation> = done
        .iter()
        .scan(None::<&Observation>, |top, &o| {
            let t = top.filter(|t| t.value >= o.value).unwrap_or(o);
            *top = Some(t);
            Some(t)
        })
        .collect();
    let mut anomalies = Vec::new();
    for o in observations {
        let before = done.partition_point(|d| d.complete_ns < o.invoke_ns);
        let Some(seen) = before.checked_sub(1).map(|i| best[i]) else { continue };
        if seen.value > o.value {
            anomalies.push(format!(
                "{name} went backwards: p{} saw {} at {}..{}, after p{} had seen {} at {}..{}",
                o.process,
                o.value,
                ms(o.invoke_ns),
                ms(o.complete_ns),
                seen.process,
                seen.value,
                ms(seen.invoke_ns),
                ms(seen.complete_ns)
            ));
        }
    }
    anomalies
}

/// Checks that no value was handed out twice; reports each repeated value once.
pub fn check_unique(name: &str, values: &[u64]) -> Vec<String> {
    let mut counts: HashMap<u64, usize> = HashMap::new();
    for v in values {
        *counts.entry(*v).or_default() += 1;
    }
    let mut repeated: Vec<(u64, usize)> = counts.into_iter().filter(|&(_, n)| n > 1).collect();
    repeated.sort_unstable();
    repeated.into_iter().map(|(v, n)| format!("{name} {v} was handed out {n} times")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(process: u64, at: u64, value: u64) -> Observation {
        Observation { process, invoke_ns: at * 1_000_000, complete_ns: (at + 10) * 1_000_000, value }
    }

    #[test]
    fn growing_and_concurrent_observations_pass() {
        // p2's read overlaps p1's second one, so it may see the older value.
        let list = [obs(1, 0, 5), obs(1, 20, 7), obs(2, 25, 5), obs(2, 40, 7), obs(3, 50, 9)];
        assert_eq!(check_monotonic("revision", &list), Vec::<String>::new());
    }

    #[test]
    fn going_backwards_is_reported() {
        let list = [obs(1, 0, 5), obs(1, 20, 7), obs(2, 35, 6)];
        let anomalies = check_monotonic("revision", &list);
        assert_eq!(anomalies.len(), 1);
        assert!(
            anomalies[0].contains("p2 saw 6 at 35.000ms..45.000ms, after p1 had seen 7"),
            "{}",
            anomalies[0]
        );
    }

    #[test]
    fn repeated_ids_are_reported_once() {
        assert_eq!(check_unique("lease id", &[1, 2, 3]), Vec::<String>::new());
        assert_eq!(
            check_unique("lease id", &[4, 1, 4, 4, 2, 1]),
            ["lease id 1 was handed out 2 times", "lease id 4 was handed out 3 times"]
        );
    }
}
