//! Distributed lock: fencing tokens and mutual exclusion.
//!
//! A lock service cannot stop a paused holder from acting after its lease ran out; the
//! fencing token lets the guarded resource refuse it. So the checks are: tokens are unique
//! and grow with real time, two holders never overlap while both believe they hold the
//! lock, and the guarded resource never had to refuse anyone (a refusal means two holders
//! acted in the wrong order) nor accepted a stale token.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::ms;
use crate::history::Outcome;

/// One successful acquisition and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub process: u64,
    /// The fencing token the acquisition returned.
    pub token: u64,
    pub acquire_invoke_ns: u64,
    pub acquire_complete_ns: u64,
    /// When the holder asked to release; `None` if the hold ended by lease loss or in an
    /// unknown way.
    pub release_invoke_ns: Option<u64>,
    /// The release's outcome; only an `Ok` release bounds the hold.
    pub release_outcome: Option<Outcome>,
}

impl Hold {
    fn describe(&self) -> String {
        format!(
            "token {} (p{}, acquired {}..{})",
            self.token,
            self.process,
            ms(self.acquire_invoke_ns),
            ms(self.acquire_complete_ns)
        )
    }

    /// The start of a release the holder was told succeeded: it held the lock until then.
    fn known_release(&self) -> Option<u64> {
        self.release_invoke_ns.filter(|_| self.release_outcome == Some(Outcome::Ok))
    }
}

/// An action on the guarded resource, carrying the actor's fencing token. The resource
/// accepts an action only if its token is at least the highest it has seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardAction {
    pub process: u64,
    pub token: u64,
    pub invoke_ns: u64,
    pub complete_ns: u64,
    pub outcome: Outcome,
    /// Meaningful when `outcome` is `Ok`.
    pub accepted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockAnomalyKind {
    /// One token granted twice.
    DuplicateToken,
    /// A later acquisition got a lower token.
    TokenOrder,
    /// A lower-token holder still held the lock when a higher one had acquired it.
    Overlap,
    /// The guarded resource refused an action: a stale holder acted.
    RejectedAction,
    /// The guarded resource accepted a token lower than one it had already accepted.
    StaleTokenAccepted,
    /// An action carried a token no acquisition returned.
    UnknownToken,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockAnomaly {
    pub kind: LockAnomalyKind,
    /// The tokens involved.
    pub tokens: Vec<u64>,
    pub text: String,
}

impl fmt::Display for LockAnomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Checks the holds of one lock and the actions on the resource it guards:
/// - tokens are unique;
/// - if A's acquisition completed before B's was invoked, A's token is lower;
/// - if A's token is lower than B's and A's release is known (`Ok`), A invoked its release
///   no later than B's acquisition completed (otherwise both held the lock at once);
/// - every completed action was accepted, no accepted action carried a token lower than
///   one accepted before it was invoked, and every action's token was granted.
pub fn check_lock(holds: &[Hold], actions: &[GuardAction]) -> Vec<LockAnomaly> {
    let mut anomalies = Vec::new();
    let mut by_token: HashMap<u64, Vec<&Hold>> = HashMap::new();
    for h in holds {
        by_token.entry(h.token).or_default().push(h);
    }
    let mut duplicated: Vec<(&u64, &Vec<&Hold>)> = by_token.iter().filter(|(_, hs)| hs.len() > 1).collect();
    duplicated.sort_by_key(|(t, _)| **t);
    for (token, hs) in duplicated {
        let who: Vec<String> = hs.iter().map(|h| h.describe()).collect();
        anomalies.push(LockAnomaly {
            kind: LockAnomalyKind::DuplicateToken,
            tokens: vec![*token],
            text: format!("token {token} was granted {} times: {}", hs.len(), who.join(", ")),
        });
    }
    anomalies.extend(token_order(holds));
    anomalies.extend(overlaps(holds));
    anomalies.extend(guard(actions, &by_token));
    anomalies
}

/// For each hold, the highest token among holds acquired entirely before it.
fn token_order(holds: &[Hold]) -> Vec<LockAnomaly> {
    let mut done: Vec<&Hold> = holds.iter().collect();
    done.sort_by_key(|h| h.acquire_complete_ns);
    // best[i]: the highest-token hold among done[..=i].
    let best: Vec<&Hold> = done
        .iter()
        .scan(None::<&Hold>, |top, &h| {
            let t = top.filter(|t| t.token >= h.token).unwrap_or(h);
            *top = Some(t);
            Some(t)
        })
        .collect();
    let mut anomalies = Vec::new();
    for b in holds {
        let before = done.partition_point(|h| h.acquire_complete_ns < b.acquire_invoke_ns);
        let Some(a) = before.checked_sub(1).map(|i| best[i]) else { continue };
        if a.token > b.token {
            anomalies.push(LockAnomaly {
                kind: LockAnomalyKind::TokenOrder,
                tokens: vec![a.token, b.token],
                text: format!("{} came after {}, yet has a lower token", b.describe(), a.describe()),
            });
        }
    }
    anomalies
}

fn overlaps(holds: &[Hold]) -> Vec<LockAnomaly> {
    let mut anomalies = Vec::new();
    for a in holds {
        let Some(released) = a.known_release() else { continue };
        for b in holds.iter().filter(|b| b.token > a.token && b.acquire_complete_ns < released) {
            anomalies.push(LockAnomaly {
                kind: LockAnomalyKind::Overlap,
                tokens: vec![a.token, b.token],
                text: format!(
                    "two holders at once: {} acquired while {} held the lock until its release at {}",
                    b.describe(),
                    a.describe(),
                    ms(released)
                ),
            });
        }
    }
    anomalies
}

fn guard(actions: &[GuardAction], holds: &HashMap<u64, Vec<&Hold>>) -> Vec<LockAnomaly> {
    let mut anomalies = Vec::new();
    for a in actions.iter().filter(|a| !holds.contains_key(&a.token)) {
        anomalies.push(LockAnomaly {
            kind: LockAnomalyKind::UnknownToken,
            tokens: vec![a.token],
            text: format!(
                "p{} acted at {} with token {}, which no acquisition returned",
                a.process,
                ms(a.invoke_ns),
                a.token
            ),
        });
    }
    let mut accepted: Vec<&GuardAction> =
        actions.iter().filter(|a| a.outcome == Outcome::Ok && a.accepted).collect();
    accepted.sort_by_key(|a| a.complete_ns);
    let best: Vec<&GuardAction> = accepted
        .iter()
        .scan(None::<&GuardAction>, |top, &a| {
            let t = top.filter(|t| t.token >= a.token).unwrap_or(a);
            *top = Some(t);
            Some(t)
        })
        .collect();
    // The highest-token accepted action completed before `at`.
    let highest_before = |at: u64| {
        let n = accepted.partition_point(|a| a.complete_ns < at);
        n.checked_sub(1).map(|i| best[i])
    };
    for a in actions.iter().filter(|a| a.outcome == Outcome::Ok) {
        let higher = highest_before(a.invoke_ns).filter(|h| h.token > a.token);
        let after = higher.map_or_else(String::new, |h| {
            format!(" (token {} of p{} had acted at {})", h.token, h.process, ms(h.invoke_ns))
        });
        if !a.accepted {
            anomalies.push(LockAnomaly {
                kind: LockAnomalyKind::RejectedAction,
                tokens: vec![a.token],
                text: format!(
                    "holder with token {} (p{}) acted at {} after a higher token had acted{after}",
                    a.token,
                    a.process,
                    ms(a.invoke_ns)
                ),
            });
        } else if let Some(h) = higher {
            anomalies.push(LockAnomaly {
                kind: LockAnomalyKind::StaleTokenAccepted,
                tokens: vec![h.token, a.token],
                text: format!(
                    "the guarded resource accepted token {} at {}{after}",
                    a.token,
                    ms(a.invoke_ns)
                ),
            });
        }
    }
    anomalies
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn hold(process: u64, token: u64, acquire: (u64, u64), release: Option<u64>) -> Hold {
        Hold {
            process,
            token,
            acquire_invoke_ns: acquire.0 * MS,
            acquire_complete_ns: acquire.1 * MS,
            release_invoke_ns: release.map(|r| r * MS),
            release_outcome: release.map(|_| Outcome::Ok),
        }
    }
    fn act(process: u64, token: u64, at: u64, accepted: bool) -> GuardAction {
        GuardAction {
            process,
            token,
            invoke_ns: at * MS,
            complete_ns: (at + 1) * MS,
            outcome: Outcome::Ok,
            accepted,
        }
    }
    fn kinds(anomalies: &[LockAnomaly]) -> Vec<LockAnomalyKind> {
        anomalies.iter().map(|a| a.kind).collect()
    }

    /// Three holders in turn; the second lost its lease (no release) and the third
    /// acquired after it expired, with the guarded resource seeing tokens in order.
    fn good() -> (Vec<Hold>, Vec<GuardAction>) {
        let holds = vec![
            hold(1, 10, (0, 5), Some(100)),
            hold(2, 11, (50, 101), None),
            // Concurrent acquisition attempts may complete in either order.
            hold(3, 12, (90, 300), Some(400)),
        ];
        let actions =
            vec![act(1, 10, 10, true), act(1, 10, 90, true), act(2, 11, 150, true), act(3, 12, 310, true)];
        (holds, actions)
    }

    #[test]
    fn orderly_holders_pass() {
        let (holds, actions) = good();
        assert_eq!(check_lock(&holds, &actions), []);
    }

    #[test]
    fn overlapping_holders_are_reported() {
        let (mut holds, actions) = good();
        holds[0].release_invoke_ns = Some(200 * MS); // still held when token 11 acquired at 101
        let anomalies = check_lock(&holds, &actions);
        assert_eq!(kinds(&anomalies), [LockAnomalyKind::Overlap]);
        assert!(
            anomalies[0].text.contains("token 11 (p2, acquired 50.000ms..101.000ms)"),
            "{}",
            anomalies[0].text
        );
        // An unknown release bounds nothing.
        holds[0].release_outcome = Some(Outcome::Unknown);
        assert_eq!(check_lock(&holds, &actions), []);
    }

    #[test]
    fn rejected_guard_action_is_reported() {
        let (holds, mut actions) = good();
        // Holder 2 was paused, lost the lock, and acted after holder 3.
        actions.push(act(2, 11, 320, false));
        let anomalies = check_lock(&holds, &actions);
        assert_eq!(kinds(&anomalies), [LockAnomalyKind::RejectedAction]);
        let text = &anomalies[0].text;
        assert!(text.contains("holder with token 11 (p2) acted at 320.000ms after a higher token"), "{text}");
        assert!(text.contains("token 12 of p3 had acted at 310.000ms"), "{text}");
        // Rejections of actions whose outcome is unknown say nothing.
        actions.last_mut().unwrap().outcome = Outcome::Unknown;
        assert_eq!(check_lock(&holds, &actions), []);
    }

    #[test]
    fn stale_token_accepted_and_unknown_tokens_are_reported() {
        let (holds, mut actions) = good();
        actions.push(act(2, 11, 320, true));
        actions.push(act(9, 99, 330, true));
        let anomalies = check_lock(&holds, &actions);
        assert_eq!(kinds(&anomalies), [LockAnomalyKind::UnknownToken, LockAnomalyKind::StaleTokenAccepted]);
    }

    #[test]
    fn duplicate_and_backwards_tokens_are_reported() {
        let (mut holds, _) = good();
        holds[2].token = 11;
        assert_eq!(kinds(&check_lock(&holds, &[])), [LockAnomalyKind::DuplicateToken]);
        // A later acquisition with a lower token (that lost its lease, so no overlap).
        holds[2].token = 9;
        holds[2].release_invoke_ns = None;
        let anomalies = check_lock(&holds, &[]);
        assert_eq!(kinds(&anomalies), [LockAnomalyKind::TokenOrder]);
        assert!(anomalies[0].text.contains("token 9 (p3"), "{}", anomalies[0].text);
    }
}
