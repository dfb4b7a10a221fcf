//! A Jepsen-style fault-injection run: real `cairn` members with a proxy on every directed
//! peer link, client workloads that record what they saw, a seeded fault schedule, and
//! checkers that decide afterwards whether a correct cluster could have produced it.
//!
//! Order of a run: start the members; set up; start the workloads; apply the schedule
//! (each fault held, then healed); stop the workloads; heal everything; SIGKILL every
//! member at once and restart them (no acknowledged write may be missing afterwards);
//! read the final state and the committed history; run the checkers; leave every history
//! in a folder; print a summary.

pub mod client;
pub mod nemesis;
pub mod net;
pub mod proxy;
pub mod sessions;
pub mod watchers;
pub mod workload;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;

use self::client::{call, Answer, RunClock};
use self::nemesis::{schedule, Fault};
use self::net::Network;
use self::workload::Ctx;
use crate::history::{write_jsonl, Outcome};
use crate::Cluster;

#[derive(Debug, Clone)]
pub struct Config {
    pub seed: u64,
    pub duration: Duration,
    /// 3 or 5.
    pub members: usize,
    /// Where the run's folder goes (`chaos-results/` by default).
    pub out: PathBuf,
    /// Progress lines on stderr.
    pub verbose: bool,
}

/// Operations of one workload by outcome.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Counts {
    pub ok: u64,
    pub fail: u64,
    pub unknown: u64,
}

impl Counts {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::Fail => self.fail += 1,
            Outcome::Unknown => self.unknown += 1,
        }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub seed: u64,
    pub seconds: f64,
    pub operations: BTreeMap<String, Counts>,
    pub faults: BTreeMap<String, u64>,
    /// Anomalies by checker (every checker is listed, with none if it found none).
    pub anomalies: BTreeMap<String, Vec<String>>,
    /// Register keys the linearizability search could not decide within its budget.
    pub undecided: Vec<String>,
    pub dir: PathBuf,
}

impl Report {
    pub fn anomaly_count(&self) -> usize {
        self.anomalies.values().map(Vec::len).sum()
    }

    /// The summary table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "chaos run: seed {}, {:.0} s, histories in {}",
            self.seed,
            self.seconds,
            self.dir.display()
        );
        let _ = writeln!(s, "\n{:<22} {:>8} {:>8} {:>8} {:>8}", "workload", "ops", "ok", "fail", "unknown");
        for (name, c) in &self.operations {
            let total = c.ok + c.fail + c.unknown;
            let _ = writeln!(s, "{name:<22} {total:>8} {:>8} {:>8} {:>8}", c.ok, c.fail, c.unknown);
        }
        let _ = writeln!(s, "\n{:<22} {:>8}", "fault", "injected");
        for (kind, n) in &self.faults {
            let _ = writeln!(s, "{kind:<22} {n:>8}");
        }
        let _ = writeln!(s, "\n{:<22} {:>8}", "checker", "anomalies");
        for (checker, found) in &self.anomalies {
            let _ = writeln!(s, "{checker:<22} {:>8}", found.len());
        }
        if !self.undecided.is_empty() {
            let _ = writeln!(
                s,
                "{:<22} {:>8}  (keys the linearizability search could not decide)",
                "undecided",
                self.undecided.len()
            );
        }
        for (checker, found) in &self.anomalies {
            for a in found.iter().take(5) {
                let _ = writeln!(s, "\n[{checker}] {a}");
            }
        }
        s
    }
}

fn log(cfg: &Config, start: Instant, line: &str) {
    if cfg.verbose {
        eprintln!("[{:>6.1}s] {line}", start.elapsed().as_secs_f64());
    }
}

/// The leader's index, asking each running member once (none during an election).
fn current_leader(c: &mut Cluster) -> Option<usize> {
    for i in c.alive() {
        if let Some(info) = c.cluster_info(i) {
            if let Some(id) = info["cluster"]["leader"].as_u64() {
                if let Some(l) = c.index_of(id) {
                    return Some(l);
                }
            }
        }
    }
    None
}

/// Applies a fault; returns how to describe it and how to heal it.
fn inject(c: &mut Cluster, net: &Network, fault: &Fault, fallback: usize) -> (String, Heal) {
    let n = c.len();
    let leader = |c: &mut Cluster| current_leader(c).unwrap_or(fallback);
    match fault {
        Fault::Kill { member } => {
            c.kill(*member);
            (format!("kill member {}", member + 1), Heal::Restart(vec![*member]))
        }
        Fault::KillLeader => {
            let m = leader(c);
            c.kill(m);
            (format!("kill the leader (member {})", m + 1), Heal::Restart(vec![m]))
        }
        Fault::Pause { member } => {
            c.pause(*member);
            (format!("pause member {}", member + 1), Heal::Resume(*member))
        }
        Fault::PauseLeader => {
            let m = leader(c);
            c.pause(m);
            (format!("pause the leader (member {})", m + 1), Heal::Resume(m))
        }
        Fault::Isolate { member } => {
            net.isolate(*member, n);
            (format!("isolate member {}", member + 1), Heal::Network)
        }
        Fault::IsolateLeader => {
            let m = leader(c);
            net.isolate(m, n);
            (format!("isolate the leader (member {})", m + 1), Heal::Network)
        }
        Fault::Split { minority } => {
            let rest: Vec<usize> = (0..n).filter(|i| !minority.contains(i)).collect();
            net.partition(&[minority.clone(), rest.clone()]);
            (format!("split {:?} | {:?}", plus_one(minority), plus_one(&rest)), Heal::Network)
        }
        Fault::Bridge { left, bridge, right } => {
            net.bridge(left, *bridge, right);
            (format!("bridge {:?} - {} - {:?}", plus_one(left), bridge + 1, plus_one(right)), Heal::Network)
        }
        Fault::OneWay { from, to } => {
            net.cut_one_way(*from, *to);
            (format!("cut {} -> {}", from + 1, to + 1), Heal::Network)
        }
        Fault::KillAll => {
            c.kill_all();
            ("kill every member".into(), Heal::Restart((0..n).collect()))
        }
    }
}

fn plus_one(v: &[usize]) -> Vec<usize> {
    v.iter().map(|i| i + 1).collect()
}

enum Heal {
    Restart(Vec<usize>),
    Resume(usize),
    Network,
}

fn heal(c: &mut Cluster, net: &Network, heal: Heal) {
    match heal {
        Heal::Restart(members) => {
            for m in members {
                if !c.is_alive(m) {
                    c.start_member(m);
                }
            }
        }
        Heal::Resume(m) => c.resume(m),
        Heal::Network => net.heal(),
    }
}

/// Heals everything and waits until every member is ready.
fn heal_all(c: &mut Cluster, net: &Network) {
    net.heal();
    for i in 0..c.len() {
        c.resume(i);
        if !c.is_alive(i) {
            c.start_member(i);
        }
    }
    for i in 0..c.len() {
        c.wait_ready(i);
    }
}

/// A linearizable read's revision: the cluster's current revision.
fn current_revision(c: &Cluster) -> u64 {
    let http = client::client();
    for _ in 0..50 {
        for i in 0..c.len() {
            if let Answer::Status(_, v) = call(&http, c.client_addr(i), "GET", "/v1/nodes/chaos", None) {
                if let Some(r) = v["header"]["revision"].as_u64() {
                    return r;
                }
            }
        }
        thread::sleep(Duration::from_millis(200));
    }
    panic!("no member answered a read after the run");
}

/// Runs one chaos run and checks it. Panics only when the cluster cannot even be started
/// or healed; anomalies are in the report.
pub fn run(cfg: &Config) -> Report {
    let start = Instant::now();
    let net = RefCell::new(Network::default());
    let mut c = Cluster::start_routed(
        cfg.members,
        &["--watch-progress-ms", "500", "--snapshot-logs", "5000"],
        |i, j, peer| net.borrow_mut().add_link(i, j, peer),
    );
    let net = net.into_inner();
    let addrs: Vec<_> = (0..c.len()).map(|i| c.client_addr(i)).collect();
    let dir = cfg.out.join(format!(
        "seed-{}-{}",
        cfg.seed,
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).expect("create the run's folder");
    log(cfg, start, &format!("{} members up; histories go to {}", c.len(), dir.display()));

    // Set-up.
    let http = client::client();
    workload::bank_setup(&http, addrs[0]);
    for path in ["/v1/nodes/chaos/reg", "/v1/nodes/chaos/seq", "/v1/nodes/chaos/eph"] {
        let _ = call(&http, addrs[0], "PUT", path, Some(String::new()));
    }
    let _ =
        call(&http, addrs[0], "PUT", &format!("/v1/nodes{}", sessions::GUARD), Some(format!("{:020}:0", 0)));
    let from_revision = current_revision(&c) + 1;

    // Workloads.
    let clock = RunClock(Instant::now());
    let ctx = Ctx { addrs: addrs.clone(), clock, stop: Arc::new(AtomicBool::new(false)), seed: cfg.seed };
    let spawn = |f: Box<dyn FnOnce(Ctx) -> Box<dyn std::any::Any + Send> + Send>| {
        let ctx = ctx.clone();
        thread::spawn(move || f(ctx))
    };
    let registers: Vec<_> =
        (0..4).map(|w| spawn(Box::new(move |ctx| Box::new(workload::registers(&ctx, w))))).collect();
    let banks: Vec<_> =
        (0..2).map(|w| spawn(Box::new(move |ctx| Box::new(workload::bank(&ctx, w))))).collect();
    let seqs = spawn(Box::new(|ctx| Box::new(workload::sequential(&ctx, 0))));
    let leases: Vec<_> =
        (0..2).map(|w| spawn(Box::new(move |ctx| Box::new(sessions::leases(&ctx, w))))).collect();
    let locks = spawn(Box::new(|ctx| Box::new(sessions::locks(&ctx, 3))));
    let watchers: Vec<_> = (0..2)
        .map(|w| spawn(Box::new(move |ctx| Box::new(watchers::watcher(&ctx, w, from_revision)))))
        .collect();

    // Faults, on this thread (members die with the thread that started them).
    let plan = schedule(cfg.seed, cfg.duration.as_millis() as u64, c.len());
    std::fs::write(dir.join("schedule.json"), serde_json::to_string_pretty(&plan).unwrap_or_default())
        .expect("write the schedule");
    let mut report = Report { seed: cfg.seed, dir: dir.clone(), ..Report::default() };
    let begun = Instant::now();
    let mut fault_times = Vec::new();
    for (k, p) in plan.iter().enumerate() {
        let at = begun + Duration::from_millis(p.at_ms);
        thread::sleep(at.saturating_duration_since(Instant::now()));
        let fallback = k % c.len();
        let struck = clock.now();
        let (what, cure) = inject(&mut c, &net, &p.fault, fallback);
        *report.faults.entry(p.fault.kind().to_owned()).or_default() += 1;
        log(
            cfg,
            start,
            &format!("fault {}/{}: {what} for {:.1} s", k + 1, plan.len(), p.hold_ms as f64 / 1000.0),
        );
        thread::sleep(Duration::from_millis(p.hold_ms));
        heal(&mut c, &net, cure);
        fault_times.push((struck, clock.now()));
        log(cfg, start, "healed");
    }
    thread::sleep((begun + cfg.duration).saturating_duration_since(Instant::now()));
    ctx.stop.store(true, Ordering::Relaxed);
    log(cfg, start, "workloads stopping");
    heal_all(&mut c, &net);

    let take = |h: thread::JoinHandle<Box<dyn std::any::Any + Send>>| h.join().expect("workload thread");
    let mut history = crate::history::History::new();
    let mut acked = Vec::new();
    for h in registers {
        if let Ok(out) = take(h).downcast::<(crate::history::History, Vec<crate::check::watch::AckedWrite>)>()
        {
            let (h, a) = *out;
            history.records.extend(h.records);
            acked.extend(a);
        }
    }
    let mut bank = workload::BankLog::default();
    for h in banks {
        if let Ok(out) = take(h).downcast::<workload::BankLog>() {
            bank.reads.extend(out.reads);
            for (k, v) in out.transfers {
                *bank.transfers.entry(k).or_default() += v;
            }
        }
    }
    let seq = take(seqs).downcast::<Vec<workload::SeqCreate>>().map(|b| *b).unwrap_or_default();
    let mut lease_lives = Vec::new();
    for h in leases {
        if let Ok(out) = take(h).downcast::<Vec<crate::check::lease::LeaseRecord>>() {
            lease_lives.extend(*out);
        }
    }
    let lock_log = take(locks).downcast::<sessions::LockLog>().map(|b| *b).unwrap_or_default();
    let mut streams = Vec::new();
    for h in watchers {
        if let Ok(out) = take(h).downcast::<(Vec<crate::check::watch::StreamItem>, Option<u64>)>() {
            streams.push(*out);
        }
    }

    // Every member killed at once and restarted: nothing acknowledged may be missing.
    log(cfg, start, "killing every member at once, then restarting them");
    c.kill_all();
    *report.faults.entry("kill-all (final)".into()).or_default() += 1;
    for i in 0..c.len() {
        c.start_member(i);
    }
    for i in 0..c.len() {
        c.wait_ready(i);
    }
    let final_revision = current_revision(&c);
    workload::final_register_reads(&addrs, clock, &mut history);
    let bank_last = workload::bank_final(&addrs);
    let seq_final = workload::sequential_final(&addrs);
    for (seen, last) in &mut streams {
        *last = watchers::catch_up(&ctx, seen, *last, from_revision, final_revision);
    }
    let committed = watchers::committed(&ctx, from_revision, final_revision);
    log(cfg, start, &format!("final revision {final_revision}; checking"));

    // Counts.
    let ops = &mut report.operations;
    for r in &history.records {
        ops.entry("registers".into()).or_default().add(r.outcome);
    }
    let transfers = ops.entry("bank transfers".into()).or_default();
    transfers.ok =
        bank.transfers.get("ok").copied().unwrap_or(0) + bank.transfers.get("conflict").copied().unwrap_or(0);
    transfers.fail = bank.transfers.get("fail").copied().unwrap_or(0);
    transfers.unknown = bank.transfers.get("unknown").copied().unwrap_or(0);
    ops.entry("bank reads".into()).or_default().ok = bank.reads.len() as u64;
    for s in &seq {
        ops.entry("sequential creates".into()).or_default().add(s.outcome);
    }
    for l in &lease_lives {
        ops.entry("leases".into()).or_default().add(Outcome::Ok);
        for k in &l.keepalives {
            ops.entry("lease keep-alives".into()).or_default().add(k.outcome);
        }
    }
    ops.entry("lock holds".into()).or_default().ok = lock_log.holds.len() as u64;
    ops.entry("lock timeouts".into()).or_default().fail = lock_log.timeouts;
    for a in &lock_log.actions {
        ops.entry("guarded actions".into()).or_default().add(a.outcome);
    }
    for (seen, _) in &streams {
        let events =
            seen.iter().filter(|s| matches!(s, crate::check::watch::StreamItem::Event(_))).count() as u64;
        ops.entry("watch events".into()).or_default().ok += events;
    }

    // Histories on disk.
    let _ = history.write_jsonl(&dir.join("registers.jsonl"));
    let _ = write_jsonl(&dir.join("acknowledged.jsonl"), &acked);
    let _ = std::fs::write(dir.join("bank.json"), serde_json::to_string_pretty(&bank).unwrap_or_default());
    let _ = write_jsonl(&dir.join("sequential.jsonl"), &seq);
    let _ = write_jsonl(&dir.join("leases.jsonl"), &lease_lives);
    let _ =
        std::fs::write(dir.join("locks.json"), serde_json::to_string_pretty(&lock_log).unwrap_or_default());
    for (w, (seen, _)) in streams.iter().enumerate() {
        let _ = write_jsonl(&dir.join(format!("watch-{w}.jsonl")), seen);
    }
    if let Some(committed) = &committed {
        let _ = write_jsonl(&dir.join("committed.jsonl"), committed);
    }

    // Checks.
    let anomalies = &mut report.anomalies;
    let (found, undecided) = check::registers(&history, &dir);
    anomalies.insert("linearizability".into(), found);
    report.undecided = undecided;
    anomalies.insert("bank".into(), workload::check_bank(&bank, bank_last.as_ref()));
    anomalies.insert("sequential".into(), check::sequential(&seq, seq_final.as_ref()));
    anomalies.insert("durability".into(), check::acknowledged(&acked, &seq, committed.as_deref()));
    anomalies.insert(
        "watch".into(),
        check::watches(&streams, committed.as_deref(), from_revision, final_revision),
    );
    anomalies.insert("lease".into(), check::leases(&lease_lives, &fault_times));
    anomalies.insert("lock".into(), check::locks(&lock_log));
    for i in 0..c.len() {
        let _ = std::fs::copy(c.log_file(i), dir.join(format!("member-{}.log", c.id(i))));
    }
    report.seconds = start.elapsed().as_secs_f64();
    let _ = std::fs::write(dir.join("summary.txt"), report.table());
    let _ =
        std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(&report).unwrap_or_default());
    report
}

mod check;
