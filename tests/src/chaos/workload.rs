//! The client workloads of a chaos run. Each worker is a thread that loops until the run
//! stops, sends every call to a member picked at random (faults make any of them slow or
//! unreachable) and records what it saw. A worker whose call ends with an unknown outcome
//! continues as a new logical process, so a process never has two calls outstanding.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::blocking::Client;
use serde::Serialize;
use serde_json::{json, Value};

use super::client::{call, client, Answer, RunClock};
use crate::check::watch::AckedWrite;
use crate::history::{History, Outcome, RegisterOp};

/// Logical process ids of one worker are `worker + k * PROCESS_STRIDE`.
const PROCESS_STRIDE: u64 = 1_000;

/// What every worker shares.
#[derive(Clone)]
pub struct Ctx {
    pub addrs: Vec<SocketAddr>,
    pub clock: RunClock,
    pub stop: Arc<AtomicBool>,
    pub seed: u64,
}

impl Ctx {
    pub fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed)
    }

    pub(crate) fn rng_for(&self, salt: u64) -> StdRng {
        StdRng::seed_from_u64(self.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(salt))
    }

    pub(crate) fn member_for(&self, rng: &mut StdRng) -> SocketAddr {
        self.addrs[rng.gen_range(0..self.addrs.len())]
    }

    fn pause(&self, rng: &mut StdRng) {
        thread::sleep(Duration::from_millis(rng.gen_range(2..12)));
    }
}

fn header_revision(v: &Value) -> u64 {
    v["header"]["revision"].as_u64().unwrap_or(0)
}

fn node_value(v: &Value) -> Option<String> {
    v["node"]["value"].as_str().map(str::to_owned)
}

pub const REGISTER_KEYS: usize = 12;

pub fn register_path(key: &str) -> String {
    format!("/chaos/reg/{key}")
}

/// Reads, writes and compare-and-sets on a few registers; values are unique per write.
pub fn registers(ctx: &Ctx, worker: u64) -> (History, Vec<AckedWrite>) {
    let mut rng = ctx.rng_for(worker);
    let http = client();
    let (mut history, mut acked) = (History::new(), Vec::new());
    let mut process = worker;
    let mut next_value = 0u64;
    let mut seen: HashMap<String, Option<u64>> = HashMap::new();
    while ctx.running() {
        let key = format!("k{:02}", rng.gen_range(0..REGISTER_KEYS));
        let path = register_path(&key);
        let addr = ctx.member_for(&mut rng);
        next_value += 1;
        let unique = worker * 1_000_000_000 + next_value;
        let invoke = ctx.clock.now();
        let (op, outcome) = match rng.gen_range(0..4) {
            0 | 1 => {
                let answer = call(&http, addr, "GET", &format!("/v1/nodes{path}"), None);
                let (value, outcome) = match &answer {
                    Answer::Status(200, v) => (node_value(v).and_then(|s| s.parse().ok()), Outcome::Ok),
                    Answer::Status(404, _) => (None, Outcome::Ok),
                    _ => (None, Outcome::Fail),
                };
                if outcome == Outcome::Ok {
                    seen.insert(key.clone(), value);
                }
                (RegisterOp::Read { value }, outcome)
            }
            2 => {
                let answer = call(&http, addr, "PUT", &format!("/v1/nodes{path}"), Some(unique.to_string()));
                let outcome = answer.write_outcome(&[200, 201]);
                if let Answer::Status(200 | 201, v) = &answer {
                    acked.push(AckedWrite {
                        path: path.clone(),
                        value: Some(unique.to_string()),
                        revision: header_revision(v),
                    });
                }
                (RegisterOp::Write { value: unique }, outcome)
            }
            _ => {
                let expected = seen.get(&key).copied().flatten();
                let compare = match expected {
                    Some(v) => json!({ "path": path, "target": "value", "op": "==", "value": v.to_string() }),
                    None => json!({ "path": path, "target": "exists", "op": "==", "value": false }),
                };
                let txn = json!({
                    "compare": [compare],
                    "success": [{ "op": "set", "path": path, "value": unique.to_string() }],
                });
                let answer = call(&http, addr, "POST", "/v1/txn", Some(txn.to_string()));
                let succeeded = matches!(&answer, Answer::Status(200, v) if v["succeeded"] == true);
                if let (true, Answer::Status(_, v)) = (succeeded, &answer) {
                    acked.push(AckedWrite {
                        path: path.clone(),
                        value: Some(unique.to_string()),
                        revision: header_revision(v),
                    });
                }
                (RegisterOp::Cas { expected, new: unique, succeeded }, answer.write_outcome(&[200]))
            }
        };
        history.record(process, &key, op, (invoke, ctx.clock.now()), outcome);
        if outcome == Outcome::Unknown {
            process += PROCESS_STRIDE;
        }
        ctx.pause(&mut rng);
    }
    (history, acked)
}

/// Reads every register once, through any member that answers (after the run).
pub fn final_register_reads(addrs: &[SocketAddr], clock: RunClock, history: &mut History) {
    let http = client();
    for k in 0..REGISTER_KEYS {
        let key = format!("k{k:02}");
        let read = on_any_member(addrs, |addr| {
            let invoke = clock.now();
            match call(&http, addr, "GET", &format!("/v1/nodes{}", register_path(&key)), None) {
                Answer::Status(200, v) => Some((node_value(&v).and_then(|s| s.parse().ok()), invoke)),
                Answer::Status(404, _) => Some((None, invoke)),
                _ => None,
            }
        });
        if let Some((value, invoke)) = read {
            history.ok(u64::MAX, &key, RegisterOp::Read { value }, (invoke, clock.now()));
        }
    }
}

pub const ACCOUNTS: usize = 5;
pub const BALANCE: u64 = 100;

fn account(i: usize) -> String {
    format!("/chaos/bank/a{i}")
}

/// A read of every account in one transaction (one revision).
#[derive(Debug, Clone, Serialize)]
pub struct BankRead {
    pub revision: u64,
    pub balances: Vec<u64>,
}

#[derive(Debug, Default, Serialize)]
pub struct BankLog {
    pub reads: Vec<BankRead>,
    pub transfers: BTreeMap<&'static str, u64>,
}

fn read_accounts(http: &Client, addr: SocketAddr) -> Option<(u64, Vec<(u64, u64)>)> {
    let gets: Vec<Value> = (0..ACCOUNTS).map(|i| json!({ "op": "get", "path": account(i) })).collect();
    let txn = json!({ "compare": [], "success": gets });
    let Answer::Status(200, v) = call(http, addr, "POST", "/v1/txn", Some(txn.to_string())) else {
        return None;
    };
    let results = v["results"].as_array()?;
    let mut out = Vec::new();
    for r in results {
        let balance = r["node"]["value"].as_str()?.parse().ok()?;
        out.push((balance, r["node"]["stat"]["mod_revision"].as_u64()?));
    }
    Some((header_revision(&v), out))
}

/// Transfers between accounts with compare-and-set on both, and reads of all of them at
/// one revision: every read must sum to the starting total.
pub fn bank(ctx: &Ctx, worker: u64) -> BankLog {
    let mut rng = ctx.rng_for(10_000 + worker);
    let http = client();
    let mut log = BankLog::default();
    while ctx.running() {
        let addr = ctx.member_for(&mut rng);
        let Some((revision, accounts)) = read_accounts(&http, addr) else {
            ctx.pause(&mut rng);
            continue;
        };
        log.reads.push(BankRead { revision, balances: accounts.iter().map(|a| a.0).collect() });
        let (from, to) = (rng.gen_range(0..ACCOUNTS), rng.gen_range(0..ACCOUNTS));
        if from != to && accounts[from].0 > 0 {
            let amount = rng.gen_range(1..=accounts[from].0.min(10));
            let txn = json!({
                "compare": [
                    { "path": account(from), "target": "mod_revision", "op": "==", "value": accounts[from].1 },
                    { "path": account(to), "target": "mod_revision", "op": "==", "value": accounts[to].1 },
                ],
                "success": [
                    { "op": "set", "path": account(from), "value": (accounts[from].0 - amount).to_string() },
                    { "op": "set", "path": account(to), "value": (accounts[to].0 + amount).to_string() },
                ],
            });
            let answer = call(&http, ctx.member_for(&mut rng), "POST", "/v1/txn", Some(txn.to_string()));
            let kind = match &answer {
                Answer::Status(200, v) if v["succeeded"] == true => "ok",
                Answer::Status(200, _) => "conflict",
                _ => match answer.write_outcome(&[]) {
                    Outcome::Unknown => "unknown",
                    _ => "fail",
                },
            };
            *log.transfers.entry(kind).or_default() += 1;
        }
        ctx.pause(&mut rng);
    }
    log
}

/// Sets up the accounts before the run.
pub fn bank_setup(http: &Client, addr: SocketAddr) {
    for i in 0..ACCOUNTS {
        let answer =
            call(http, addr, "PUT", &format!("/v1/nodes{}?parents", account(i)), Some(BALANCE.to_string()));
        assert!(matches!(answer, Answer::Status(200 | 201, _)), "bank setup: {answer:?}");
    }
}

/// Reads the accounts after the run (any member that answers).
pub fn bank_final(addrs: &[SocketAddr]) -> Option<BankRead> {
    let http = client();
    let (revision, accounts) = on_any_member(addrs, |addr| read_accounts(&http, addr))?;
    Some(BankRead { revision, balances: accounts.iter().map(|a| a.0).collect() })
}

/// Bank anomalies: reads whose sum is not the starting total.
pub fn check_bank(log: &BankLog, last: Option<&BankRead>) -> Vec<String> {
    let total = BALANCE * ACCOUNTS as u64;
    log.reads
        .iter()
        .chain(last)
        .filter(|r| r.balances.iter().sum::<u64>() != total)
        .map(|r| {
            format!(
                "bank read at revision {} sums to {} (balances {:?}), not {total}",
                r.revision,
                r.balances.iter().sum::<u64>(),
                r.balances
            )
        })
        .collect()
}

/// One sequential create as the client saw it.
#[derive(Debug, Clone, Serialize)]
pub struct SeqCreate {
    pub value: String,
    pub invoke_ns: u64,
    pub complete_ns: u64,
    pub outcome: Outcome,
    /// The created node's path, when acknowledged.
    pub path: Option<String>,
}

/// Sequential creates under one parent.
pub fn sequential(ctx: &Ctx, worker: u64) -> Vec<SeqCreate> {
    let mut rng = ctx.rng_for(20_000 + worker);
    let http = client();
    let mut out = Vec::new();
    let mut n = 0u64;
    while ctx.running() {
        n += 1;
        let value = format!("w{worker}-{n}");
        let invoke = ctx.clock.now();
        let answer = call(
            &http,
            ctx.member_for(&mut rng),
            "POST",
            "/v1/nodes/chaos/seq/n-?sequential&parents",
            Some(value.clone()),
        );
        let path = match &answer {
            Answer::Status(201, v) => v["node"]["path"].as_str().map(str::to_owned),
            _ => None,
        };
        out.push(SeqCreate {
            value,
            invoke_ns: invoke,
            complete_ns: ctx.clock.now(),
            outcome: answer.write_outcome(&[201]),
            path,
        });
        ctx.pause(&mut rng);
        ctx.pause(&mut rng);
    }
    out
}

/// Every child of `/chaos/seq` after the run: name → value.
pub fn sequential_final(addrs: &[SocketAddr]) -> Option<BTreeMap<String, String>> {
    let http = client();
    on_any_member(addrs, |addr| list_sequential(&http, addr))
}

/// Every child of `/chaos/seq` as one member has it, page by page; `None` if it does not
/// answer every page.
fn list_sequential(http: &Client, addr: SocketAddr) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let mut target = "/v1/nodes/chaos/seq?recursive&limit=1000".to_owned();
        if let Some(a) = &after {
            target.push_str(&format!("&after={a}"));
        }
        match call(http, addr, "GET", &target, None) {
            Answer::Status(200, v) => {
                for node in v["nodes"].as_array().into_iter().flatten() {
                    if let (Some(p), Some(val)) = (node["path"].as_str(), node["value"].as_str()) {
                        if p != "/chaos/seq" {
                            out.insert(p.to_owned(), val.to_owned());
                        }
                    }
                }
                match v["next"].as_str() {
                    Some(n) => after = Some(n.to_owned()),
                    None => return Some(out),
                }
            }
            Answer::Status(404, _) => return Some(out),
            _ => return None,
        }
    }
}

/// After a run: `f` on each member in turn until one answers, ten rounds at most, with a
/// pause after each miss (the members may still be electing a leader).
fn on_any_member<T>(addrs: &[SocketAddr], mut f: impl FnMut(SocketAddr) -> Option<T>) -> Option<T> {
    for addr in addrs.iter().cycle().take(addrs.len() * 10) {
        if let Some(v) = f(*addr) {
            return Some(v);
        }
        thread::sleep(Duration::from_millis(200));
    }
    None
}
