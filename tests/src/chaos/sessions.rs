//! Lease and lock workloads: ephemeral nodes whose expiry is timed from the client's side,
//! and lock holders that act on a guarded node only with their fencing token.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use rand::Rng;
use serde::Serialize;
use serde_json::json;

use super::client::{call, client, Answer};
use super::workload::Ctx;
use crate::check::lease::{KeepAlive, LeaseRecord};
use crate::check::lock::{GuardAction, Hold};
use crate::history::Outcome;

/// TTL of the leases the lease workload watches expire.
pub const LEASE_TTL_MS: u64 = 3_000;
/// How long after its keep-alives stop (plus TTL) a lease must be gone when no fault
/// strikes meanwhile; each fault that does adds its length, a TTL (a new leader restarts
/// every countdown) and an election (see `check::leases`).
pub const EXPIRY_SLACK_MS: u64 = 5_000;
/// How long a lease client watches for the end of its lease before giving up.
const OBSERVE_MS: u64 = 45_000;

fn node_gone(
    http: &reqwest::blocking::Client,
    ctx: &Ctx,
    rng: &mut rand::rngs::StdRng,
    path: &str,
) -> Option<bool> {
    match call(http, ctx.addrs[rng.gen_range(0..ctx.addrs.len())], "GET", &format!("/v1/nodes{path}"), None) {
        Answer::Status(200, _) => Some(false),
        Answer::Status(404, _) => Some(true),
        _ => None,
    }
}

/// Grants a lease, binds a node to it, keeps it alive for 0–3 s, then watches it end.
pub fn leases(ctx: &Ctx, worker: u64) -> Vec<LeaseRecord> {
    let mut rng = ctx.rng_for(30_000 + worker);
    let http = client();
    let mut out = Vec::new();
    while ctx.running() {
        let grant_invoke = ctx.clock.now();
        let body = json!({ "ttl_ms": LEASE_TTL_MS }).to_string();
        let Answer::Status(201, v) = call(&http, ctx.member_for(&mut rng), "POST", "/v1/leases", Some(body))
        else {
            thread::sleep(Duration::from_millis(200));
            continue;
        };
        let grant_complete = ctx.clock.now();
        let Some(id) = v["id"].as_u64() else { continue };
        let path = format!("/chaos/eph/lease-{id}");
        let put = call(
            &http,
            ctx.member_for(&mut rng),
            "PUT",
            &format!("/v1/nodes{path}?parents&lease={id}"),
            Some("x".into()),
        );
        if !matches!(put, Answer::Status(201, _)) {
            continue;
        }
        let mut life = LeaseRecord {
            lease: id,
            ttl_ms: LEASE_TTL_MS,
            grant_invoke_ns: grant_invoke,
            grant_complete_ns: grant_complete,
            keepalives: Vec::new(),
            revoke: None,
            stopped_ns: None,
            observed_delete_ns: None,
            observed_until_ns: 0,
        };
        for _ in 0..rng.gen_range(0..4) {
            thread::sleep(Duration::from_millis(LEASE_TTL_MS / 3));
            let invoke = ctx.clock.now();
            let answer =
                call(&http, ctx.member_for(&mut rng), "POST", &format!("/v1/leases/{id}/keepalive"), None);
            life.keepalives.push(KeepAlive {
                invoke_ns: invoke,
                complete_ns: ctx.clock.now(),
                outcome: answer.write_outcome(&[200]),
            });
            if node_gone(&http, ctx, &mut rng, &path) == Some(true) {
                life.observed_delete_ns = Some(ctx.clock.now());
                break;
            }
        }
        let stopped = ctx.clock.now();
        life.stopped_ns = Some(stopped);
        let give_up = stopped + (LEASE_TTL_MS + OBSERVE_MS) * 1_000_000;
        while life.observed_delete_ns.is_none() && ctx.clock.now() < give_up && ctx.running() {
            if node_gone(&http, ctx, &mut rng, &path) == Some(true) {
                life.observed_delete_ns = Some(ctx.clock.now());
            } else {
                thread::sleep(Duration::from_millis(100));
            }
        }
        life.observed_until_ns = ctx.clock.now();
        out.push(life);
    }
    out
}

#[derive(Debug, Default, Serialize)]
pub struct LockLog {
    pub holds: Vec<Hold>,
    pub actions: Vec<GuardAction>,
    /// Tokens of holds whose lease was reported lost while held: the lock may have moved
    /// on, and the guard is right to refuse them.
    pub lost_tokens: Vec<u64>,
    pub timeouts: u64,
}

pub const GUARD: &str = "/chaos/guard";

/// Leases reported lost by the keeper: holders on them may have been overtaken.
type Lost = Arc<Mutex<HashSet<u64>>>;

/// Keeps the lock workers' leases alive (every second, through any member).
fn keep(ctx: Ctx, leases: Arc<Mutex<Vec<u64>>>, lost: Lost) {
    let http = client();
    let mut rng = ctx.rng_for(40_000);
    while ctx.running() {
        let ids = leases.lock().map(|l| l.clone()).unwrap_or_default();
        for id in ids {
            if let Answer::Status(404, _) =
                call(&http, ctx.member_for(&mut rng), "POST", &format!("/v1/leases/{id}/keepalive"), None)
            {
                if let Ok(mut lost) = lost.lock() {
                    lost.insert(id);
                }
            }
        }
        thread::sleep(Duration::from_millis(1_000));
    }
}

fn grant(
    ctx: &Ctx,
    http: &reqwest::blocking::Client,
    rng: &mut rand::rngs::StdRng,
    ttl_ms: u64,
) -> Option<u64> {
    while ctx.running() {
        let body = json!({ "ttl_ms": ttl_ms }).to_string();
        if let Answer::Status(201, v) = call(http, ctx.member_for(rng), "POST", "/v1/leases", Some(body)) {
            return v["id"].as_u64();
        }
        thread::sleep(Duration::from_millis(200));
    }
    None
}

/// `workers` threads take one lock in turn and act twice on the guarded node while they
/// hold it; the guard takes an action only if no higher token has acted.
pub fn locks(ctx: &Ctx, workers: u64) -> LockLog {
    let http = client();
    let log = Arc::new(Mutex::new(LockLog::default()));
    let leases: Arc<Mutex<Vec<u64>>> = Arc::default();
    let lost: Lost = Arc::default();
    let keeper = {
        let (ctx, leases, lost) = (ctx.clone(), leases.clone(), lost.clone());
        thread::spawn(move || keep(ctx, leases, lost))
    };
    let threads: Vec<_> = (0..workers)
        .map(|w| {
            let (ctx, log, leases, lost, http) =
                (ctx.clone(), log.clone(), leases.clone(), lost.clone(), http.clone());
            thread::spawn(move || lock_worker(&ctx, w, &http, &log, &leases, &lost))
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    let _ = keeper.join();
    Arc::try_unwrap(log).ok().and_then(|m| m.into_inner().ok()).unwrap_or_default()
}

fn lock_worker(
    ctx: &Ctx,
    worker: u64,
    http: &reqwest::blocking::Client,
    log: &Mutex<LockLog>,
    leases: &Mutex<Vec<u64>>,
    lost: &Lost,
) {
    let mut rng = ctx.rng_for(50_000 + worker);
    let Some(mut lease) = grant(ctx, http, &mut rng, 6_000) else { return };
    if let Ok(mut l) = leases.lock() {
        l.push(lease);
    }
    let is_lost = |id: u64| lost.lock().map(|l| l.contains(&id)).unwrap_or(false);
    while ctx.running() {
        if is_lost(lease) {
            let Some(fresh) = grant(ctx, http, &mut rng, 6_000) else { return };
            lease = fresh;
            if let Ok(mut l) = leases.lock() {
                l.push(lease);
            }
        }
        let acquire_invoke = ctx.clock.now();
        let body = json!({ "lease": lease, "timeout_ms": 5_000 }).to_string();
        let v = match call(http, ctx.member_for(&mut rng), "POST", "/v1/locks/chaos", Some(body)) {
            Answer::Status(200, v) => v,
            Answer::Status(408, _) => {
                if let Ok(mut log) = log.lock() {
                    log.timeouts += 1;
                }
                continue;
            }
            _ => {
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let acquire_complete = ctx.clock.now();
        let (Some(token), Some(key)) = (v["fencing_token"].as_u64(), v["key"].as_str().map(str::to_owned))
        else {
            continue;
        };
        let mut actions = Vec::new();
        for step in 1..=2 {
            let txn = json!({
                "compare": [{ "path": GUARD, "target": "value", "op": "<", "value": format!("{token:020}:~") }],
                "success": [{ "op": "set", "path": GUARD, "value": format!("{token:020}:{step}") }],
            });
            let invoke = ctx.clock.now();
            let answer = call(http, ctx.member_for(&mut rng), "POST", "/v1/txn", Some(txn.to_string()));
            let accepted = !matches!(&answer, Answer::Status(200, v) if v["succeeded"] == false);
            actions.push(GuardAction {
                process: worker,
                token,
                invoke_ns: invoke,
                complete_ns: ctx.clock.now(),
                outcome: answer.write_outcome(&[200]),
                accepted,
            });
        }
        // Release until the answer is definite: an entry left behind would be found again
        // by this lease and handed back with the same token. For up to 20 s, longer than
        // any fault lasts: 5 s of tries had ended inside a 4.8 s outage of every member
        // (plus their restart and election), and the next acquire got the same token back.
        let (mut release_invoke, mut release_outcome) = (None, None);
        let give_up = ctx.clock.now() + 20_000 * 1_000_000;
        while ctx.clock.now() < give_up && ctx.running() {
            let invoke = ctx.clock.now();
            match call(http, ctx.member_for(&mut rng), "DELETE", &format!("/v1/locks/chaos/{key}"), None) {
                Answer::Status(200 | 404, _) => {
                    release_invoke = Some(release_invoke.unwrap_or(invoke));
                    release_outcome = Some(Outcome::Ok);
                    break;
                }
                Answer::Unknown(_) => {
                    release_invoke = Some(release_invoke.unwrap_or(invoke));
                    release_outcome = Some(Outcome::Unknown);
                }
                _ => {}
            }
            thread::sleep(Duration::from_millis(100));
        }
        let hold = Hold {
            process: worker,
            token,
            acquire_invoke_ns: acquire_invoke,
            acquire_complete_ns: acquire_complete,
            release_invoke_ns: release_invoke,
            release_outcome,
        };
        if let Ok(mut log) = log.lock() {
            if is_lost(lease) {
                log.lost_tokens.push(token);
            }
            log.holds.push(hold);
            log.actions.extend(actions);
        }
    }
}
