//! The lock and election benchmark: three members each, clients round robin over them.
//!
//! - lock+unlock cycles of one client on one lock (throughput, cycle latency);
//! - the same lock under N contenders, each with its own lease (total cycles, acquire wait);
//! - election failover: A leads, B waits in the queue, an observer streams leader changes;
//!   A's lease is revoked (time to the observer seeing B) or just no longer kept alive (time
//!   from A's last acknowledged keep-alive to the observer seeing B, TTL included).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::cluster::{Cluster, System};
use crate::lease::{grant, http, num};
use crate::Args;

/// TTL of the leases the lock rows use; they are kept alive every third of it.
const LOCK_LEASE_TTL_MS: u64 = 30_000;
/// TTL of the waiting candidate's lease (it outlives a failover trial).
const WAITER_LEASE_TTL_MS: u64 = 60_000;
/// Longest a single lock, unlock or campaign call may take before it counts as an error.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

fn lease_id(system: System, id: u64) -> Value {
    // etcd's gateway takes 64-bit numbers as strings (its ids do not fit a double).
    match system {
        System::Cairn => json!(id),
        System::Etcd => json!(id.to_string()),
    }
}

/// Sends a JSON body and returns the answer's status and JSON.
async fn call(req: reqwest::RequestBuilder, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
    let req = match body {
        Some(b) => req.body(b.to_string()),
        None => req,
    };
    let resp = req.timeout(CALL_TIMEOUT).send().await?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await?;
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, v))
}

/// Takes lock `name` for `lease`; returns the key to release it with.
async fn lock(
    http: &reqwest::Client,
    system: System,
    endpoint: &str,
    name: &str,
    lease: u64,
) -> anyhow::Result<String> {
    let (status, v) = match system {
        System::Cairn => {
            call(http.post(format!("http://{endpoint}/v1/locks/{name}")), Some(json!({ "lease": lease })))
                .await?
        }
        System::Etcd => {
            let body = json!({ "name": B64.encode(name), "lease": lease_id(system, lease) });
            call(http.post(format!("http://{endpoint}/v3/lock/lock")), Some(body)).await?
        }
    };
    match v["key"].as_str() {
        Some(k) if status == 200 => Ok(k.to_owned()),
        _ => bail!("lock {name} answered {status}: {v}"),
    }
}

async fn unlock(
    http: &reqwest::Client,
    system: System,
    endpoint: &str,
    name: &str,
    key: &str,
) -> anyhow::Result<()> {
    let (status, v) = match system {
        System::Cairn => call(http.delete(format!("http://{endpoint}/v1/locks/{name}/{key}")), None).await?,
        System::Etcd => {
            call(http.post(format!("http://{endpoint}/v3/lock/unlock")), Some(json!({ "key": key }))).await?
        }
    };
    anyhow::ensure!(status == 200, "unlock {name}/{key} answered {status}: {v}");
    Ok(())
}

async fn revoke(http: &reqwest::Client, system: System, endpoint: &str, lease: u64) -> anyhow::Result<()> {
    let (status, v) = match system {
        System::Cairn => call(http.delete(format!("http://{endpoint}/v1/leases/{lease}")), None).await?,
        System::Etcd => {
            let body = json!({ "ID": lease_id(system, lease) });
            call(http.post(format!("http://{endpoint}/v3/lease/revoke")), Some(body)).await?
        }
    };
    anyhow::ensure!(status == 200 && v.get("error").is_none(), "revoke {lease} answered {status}: {v}");
    Ok(())
}

/// One keep-alive that the server acknowledged with the lease still alive.
async fn refresh(http: &reqwest::Client, system: System, endpoint: &str, lease: u64) -> anyhow::Result<()> {
    match system {
        System::Cairn => {
            let (status, v) =
                call(http.post(format!("http://{endpoint}/v1/leases/{lease}/keepalive")), None).await?;
            anyhow::ensure!(status == 200, "keep-alive of {lease} answered {status}: {v}");
        }
        System::Etcd => {
            let body = json!({ "ID": lease_id(system, lease) });
            let (status, v) =
                call(http.post(format!("http://{endpoint}/v3/lease/keepalive")), Some(body)).await?;
            // A lease that has ended is answered with no TTL.
            anyhow::ensure!(
                status == 200 && num(&v["result"]["TTL"]).unwrap_or(0) > 0,
                "keep-alive of {lease} answered {status}: {v}"
            );
        }
    }
    Ok(())
}

/// Campaigns for election `name`; returns once this candidate leads.
async fn campaign(
    http: &reqwest::Client,
    system: System,
    endpoint: &str,
    name: &str,
    lease: u64,
    value: &str,
) -> anyhow::Result<()> {
    let (status, v) = match system {
        System::Cairn => {
            let body = json!({ "lease": lease, "value": value });
            call(http.post(format!("http://{endpoint}/v1/elections/{name}/campaign")), Some(body)).await?
        }
        System::Etcd => {
            let body = json!({ "name": B64.encode(name), "lease": lease_id(system, lease), "value": B64.encode(value) });
            call(http.post(format!("http://{endpoint}/v3/election/campaign")), Some(body)).await?
        }
    };
    let ok = match system {
        System::Cairn => v["key"].is_string(),
        System::Etcd => v["leader"]["key"].is_string(),
    };
    anyhow::ensure!(status == 200 && ok, "campaign in {name} answered {status}: {v}");
    Ok(())
}

/// How many candidates are queued in election `name` (the leader included).
async fn candidates(
    http: &reqwest::Client,
    system: System,
    endpoint: &str,
    name: &str,
) -> anyhow::Result<usize> {
    match system {
        System::Cairn => {
            let (status, v) =
                call(http.get(format!("http://{endpoint}/v1/nodes/_cairn/elections/{name}?children")), None)
                    .await?;
            if status == 404 {
                return Ok(0);
            }
            anyhow::ensure!(status == 200, "listing election {name} answered {status}: {v}");
            Ok(v["children"].as_array().map(Vec::len).unwrap_or(0))
        }
        System::Etcd => {
            // etcd's election keys are `{name}/{lease in hex}`.
            let body = json!({
                "key": B64.encode(format!("{name}/")),
                "range_end": B64.encode(format!("{name}0")),
                "count_only": true,
            });
            let (status, v) = call(http.post(format!("http://{endpoint}/v3/kv/range")), Some(body)).await?;
            anyhow::ensure!(status == 200, "counting election {name} answered {status}: {v}");
            Ok(num(&v["count"]).unwrap_or(0) as usize)
        }
    }
}

/// Streams the leader of election `name`: sends the leader's value (`None` while nobody
/// leads) and the time its bytes arrived, for every event, until the stream ends.
async fn observe(
    system: System,
    endpoint: String,
    name: String,
    tx: mpsc::UnboundedSender<(Option<String>, Instant)>,
) -> anyhow::Result<()> {
    let http = reqwest::Client::builder().tcp_nodelay(true).build()?;
    let resp = match system {
        System::Cairn => http.get(format!("http://{endpoint}/v1/elections/{name}/observe")).send().await?,
        System::Etcd => {
            http.post(format!("http://{endpoint}/v3/election/observe"))
                .body(json!({ "name": B64.encode(&name) }).to_string())
                .send()
                .await?
        }
    };
    anyhow::ensure!(resp.status().is_success(), "observe {name}: {}", resp.status());
    crate::events::blocks(system, resp, |text, now| {
        let leader = match system {
            System::Cairn => {
                if text.lines().find_map(|l| l.strip_prefix("event: ")) != Some("leader") {
                    return true;
                }
                let Some(data) = text.lines().find_map(|l| l.strip_prefix("data: ")) else { return true };
                let v: Value = serde_json::from_str(data).unwrap_or(Value::Null);
                v["leader"]["value"].as_str().map(str::to_owned)
            }
            System::Etcd => {
                // `{"result": {"header": …, "kv": {key, value (base64), …}}}`, one per leader.
                let v: Value = serde_json::from_str(text.trim()).unwrap_or(Value::Null);
                if v["result"].is_null() {
                    return true;
                }
                v["result"]["kv"]["value"]
                    .as_str()
                    .and_then(|s| B64.decode(s).ok())
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
            }
        };
        tx.send((leader, now)).is_ok()
    })
    .await
}

/// A spawned task that is stopped when this goes out of scope, also on an early return.
struct Task<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LockOutcome {
    pub clients: usize,
    pub cycles: u64,
    pub errors: u64,
    pub cycles_per_sec: f64,
    /// lock sent to unlock answered.
    pub cycle_p50_ms: f64,
    pub cycle_p99_ms: f64,
    /// lock sent to lock answered (the wait for the holder, under contention).
    pub acquire_p50_ms: f64,
    pub acquire_p99_ms: f64,
    pub acquire_max_ms: f64,
    pub release_p50_ms: f64,
    pub release_p99_ms: f64,
}

/// `clients` loops of {lock; unlock} on one lock, each client with its own lease; every
/// client moves to the next member after each cycle. Only cycles finished within
/// `duration` count.
async fn lock_row(
    cluster: &Cluster,
    clients: usize,
    duration: Duration,
    lock_name: &str,
) -> anyhow::Result<LockOutcome> {
    let system = cluster.system;
    let http = http();
    let members = cluster.clients.len();
    let mut leases = Vec::new();
    for c in 0..clients {
        let endpoint = &cluster.clients[c % members];
        leases.push((endpoint.clone(), grant(&http, system, endpoint, LOCK_LEASE_TTL_MS).await?));
    }
    let keeper = {
        let (http, leases) = (http.clone(), leases.clone());
        Task(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(LOCK_LEASE_TTL_MS / 3));
            loop {
                tick.tick().await;
                for (endpoint, id) in &leases {
                    let _ = refresh(&http, system, endpoint, *id).await;
                }
            }
        }))
    };
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for (c, (_, lease)) in leases.iter().enumerate() {
        let (http, endpoints, name, lease) =
            (http.clone(), cluster.clients.clone(), lock_name.to_owned(), *lease);
        tasks.push(tokio::spawn(async move {
            let (mut cycle, mut acquire, mut release) = (Vec::new(), Vec::new(), Vec::new());
            let mut errors = 0u64;
            let mut i = c;
            while Instant::now() < deadline {
                let endpoint = &endpoints[i % endpoints.len()];
                i += 1;
                let t0 = Instant::now();
                let key = match lock(&http, system, endpoint, &name, lease).await {
                    Ok(k) => k,
                    Err(_) => {
                        errors += 1;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let t1 = Instant::now();
                if unlock(&http, system, endpoint, &name, &key).await.is_err() {
                    errors += 1;
                    continue;
                }
                let t2 = Instant::now();
                if t2 <= deadline {
                    cycle.push(ms(t2 - t0));
                    acquire.push(ms(t1 - t0));
                    release.push(ms(t2 - t1));
                }
            }
            (cycle, acquire, release, errors)
        }));
    }
    let (mut cycle, mut acquire, mut release, mut errors) = (Vec::new(), Vec::new(), Vec::new(), 0);
    for t in tasks {
        let (c, a, r, e) = t.await?;
        cycle.extend(c);
        acquire.extend(a);
        release.extend(r);
        errors += e;
    }
    drop(keeper);
    for (endpoint, id) in &leases {
        let _ = revoke(&http, system, endpoint, *id).await;
    }
    for v in [&mut cycle, &mut acquire, &mut release] {
        v.sort_by(|a, b| a.total_cmp(b));
    }
    Ok(LockOutcome {
        clients,
        cycles: cycle.len() as u64,
        errors,
        cycles_per_sec: cycle.len() as f64 / duration.as_secs_f64(),
        cycle_p50_ms: percentile(&cycle, 0.5),
        cycle_p99_ms: percentile(&cycle, 0.99),
        acquire_p50_ms: percentile(&acquire, 0.5),
        acquire_p99_ms: percentile(&acquire, 0.99),
        acquire_max_ms: acquire.last().copied().unwrap_or(0.0),
        release_p50_ms: percentile(&release, 0.5),
        release_p99_ms: percentile(&release, 0.99),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failover {
    /// A's lease is revoked: measured from sending the revoke.
    Revoke,
    /// A's lease is no longer kept alive: measured from its last acknowledged keep-alive.
    Expiry,
}

impl Failover {
    fn tag(self) -> &'static str {
        match self {
            Failover::Revoke => "revoke",
            Failover::Expiry => "expiry",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Trial {
    /// To the observer's receipt of B as leader.
    pub observed_ms: f64,
    /// To B's campaign call returning.
    pub b_returned_ms: f64,
}

/// One failover on election `bench-{kind}-{n}`: A campaigns on member n, B on n+1, the
/// observer watches through n+2.
async fn failover_trial(cluster: &Cluster, kind: Failover, n: usize, ttl_ms: u64) -> anyhow::Result<Trial> {
    let system = cluster.system;
    let http = http();
    let m = cluster.clients.len();
    let (a, b, o) = (&cluster.clients[n % m], &cluster.clients[(n + 1) % m], &cluster.clients[(n + 2) % m]);
    let name = format!("bench-{}-{n}", kind.tag());
    let lease_a = grant(&http, system, a, ttl_ms).await?;
    let lease_b = grant(&http, system, b, WAITER_LEASE_TTL_MS).await?;
    campaign(&http, system, a, &name, lease_a, "A").await.context("A's campaign")?;
    let mut last_refresh = Instant::now();

    let (tx, mut rx) = mpsc::unbounded_channel();
    let _observer = Task(tokio::spawn(observe(system, o.clone(), name.clone(), tx)));
    // The first event is the state of the observer's member, which may not have applied A's
    // entry yet (Cairn answers from the member's own state): wait for A to show.
    let shown_by = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(shown_by, rx.recv()).await {
            Ok(Some((Some(v), _))) if v == "A" => break,
            Ok(Some(_)) => {}
            Ok(None) => bail!("the observer's stream of {name} ended before A showed"),
            Err(_) => bail!("the observer did not show A leading {name} within 10 s"),
        }
    }

    let mut b_task = {
        let (http, b, name) = (http.clone(), b.clone(), name.clone());
        Task(tokio::spawn(async move {
            campaign(&http, system, &b, &name, lease_b, "B").await?;
            anyhow::Ok(Instant::now())
        }))
    };
    // Keep A alive until B waits in the queue.
    let queued_by = Instant::now() + Duration::from_secs(10);
    while candidates(&http, system, o, &name).await? < 2 {
        anyhow::ensure!(Instant::now() < queued_by, "B did not join the queue of {name} in 10 s");
        if last_refresh.elapsed() > Duration::from_millis(ttl_ms / 3) {
            refresh(&http, system, a, lease_a).await?;
            last_refresh = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    refresh(&http, system, a, lease_a).await.context("A's last keep-alive")?;
    let from = match kind {
        Failover::Expiry => Instant::now(),
        Failover::Revoke => {
            let t = Instant::now();
            revoke(&http, system, a, lease_a).await.context("revoking A's lease")?;
            t
        }
    };
    let limit = Duration::from_millis(ttl_ms) + Duration::from_secs(20);
    let seen = loop {
        match tokio::time::timeout_at((from + limit).into(), rx.recv()).await {
            Ok(Some((Some(v), at))) if v == "B" => break at,
            Ok(Some(_)) => {}
            Ok(None) => bail!("the observer's stream of {name} ended before B led"),
            Err(_) => bail!("the observer did not see B lead {name} within {} s", limit.as_secs()),
        }
    };
    let b_returned =
        tokio::time::timeout(Duration::from_secs(10), &mut b_task.0).await.context("B's campaign")???;
    let _ = revoke(&http, system, b, lease_b).await;
    if kind == Failover::Expiry {
        // Gone already; a failure here is expected.
        let _ = revoke(&http, system, a, lease_a).await;
    }
    Ok(Trial {
        observed_ms: ms(seen.saturating_duration_since(from)),
        b_returned_ms: ms(b_returned.saturating_duration_since(from)),
    })
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct FailoverOutcome {
    pub trials: Vec<Trial>,
    pub errors: Vec<String>,
    pub observed_p50_ms: f64,
    pub observed_max_ms: f64,
    pub b_returned_p50_ms: f64,
}

impl FailoverOutcome {
    fn summarize(&mut self) {
        let mut seen: Vec<f64> = self.trials.iter().map(|t| t.observed_ms).collect();
        let mut ret: Vec<f64> = self.trials.iter().map(|t| t.b_returned_ms).collect();
        seen.sort_by(|a, b| a.total_cmp(b));
        ret.sort_by(|a, b| a.total_cmp(b));
        self.observed_p50_ms = percentile(&seen, 0.5);
        self.observed_max_ms = seen.last().copied().unwrap_or(0.0);
        self.b_returned_p50_ms = percentile(&ret, 0.5);
    }
}

fn ratio(c: f64, e: f64) -> f64 {
    if e > 0.0 {
        c / e
    } else {
        0.0
    }
}

pub async fn run(args: &Args, machine: &str) -> anyhow::Result<()> {
    let ttl = args.failover_ttl_ms;
    println!(
        "lock/election benchmark: 3 members each, loopback, fsync on; clients round robin over the members; \
         {} s per lock row; {} failovers per system and kind, candidate lease TTL {} ms\n",
        args.seconds, args.failover_runs, ttl
    );
    let dir = tempfile::tempdir().context("temp dir")?;
    eprintln!("starting a 3-member Cairn cluster and a 3-member etcd cluster...");
    let cairn = Cluster::start(System::Cairn, &args.cairn_bin, dir.path(), 3).await?;
    let etcd = Cluster::start(System::Etcd, &args.etcd_bin, dir.path(), 3).await?;
    let duration = Duration::from_secs(args.seconds);
    let pick = |i: usize| -> [&Cluster; 2] {
        if i.is_multiple_of(2) {
            [&cairn, &etcd]
        } else {
            [&etcd, &cairn]
        }
    };

    let lock_rows = [1, args.lock_contenders];
    let total = lock_rows.len() * 2 + 2 * 2 * args.failover_runs;
    let mut step = 0;
    let mut locks: Vec<(usize, LockOutcome, LockOutcome)> = Vec::new();
    for (i, clients) in lock_rows.iter().enumerate() {
        let (mut c_out, mut e_out) = (LockOutcome::default(), LockOutcome::default());
        for c in pick(i) {
            step += 1;
            eprintln!(
                "[{step:>2}/{total}] {} lock+unlock, {clients} client(s) on one lock ...",
                c.system.name()
            );
            let o = lock_row(c, *clients, duration, &format!("bench-lock-{clients}")).await?;
            eprintln!(
                "        {:>8.0} cycles/s  cycle p50 {:>7.2} ms p99 {:>7.2} ms  acquire p50 {:>7.2} ms p99 {:>7.2} ms  errors {}",
                o.cycles_per_sec, o.cycle_p50_ms, o.cycle_p99_ms, o.acquire_p50_ms, o.acquire_p99_ms, o.errors
            );
            match c.system {
                System::Cairn => c_out = o,
                System::Etcd => e_out = o,
            }
        }
        locks.push((*clients, c_out, e_out));
    }

    let mut failovers: Vec<(Failover, FailoverOutcome, FailoverOutcome)> = Vec::new();
    for kind in [Failover::Revoke, Failover::Expiry] {
        let (mut c_out, mut e_out) = (FailoverOutcome::default(), FailoverOutcome::default());
        for n in 0..args.failover_runs {
            for c in pick(n) {
                step += 1;
                eprint!("[{step:>2}/{total}] {} failover by {} #{} ...", c.system.name(), kind.tag(), n + 1);
                let out = if c.system == System::Cairn { &mut c_out } else { &mut e_out };
                match failover_trial(c, kind, n, ttl).await {
                    Ok(t) => {
                        eprintln!(
                            " B observed after {:.1} ms (B's campaign returned after {:.1} ms)",
                            t.observed_ms, t.b_returned_ms
                        );
                        out.trials.push(t);
                    }
                    Err(e) => {
                        eprintln!(" failed: {e:#}");
                        out.errors.push(format!("{e:#}"));
                    }
                }
            }
        }
        c_out.summarize();
        e_out.summarize();
        failovers.push((kind, c_out, e_out));
    }
    drop(cairn);
    drop(etcd);

    println!(
        "\n{:<46} {:>11} {:>11} {:>7} | {:>9} {:>9} | {:>9} {:>9}",
        "lock (cycles/s; latency: see row)", "cairn", "etcd", "ratio", "c p50", "c p99", "e p50", "e p99"
    );
    println!("{}", "-".repeat(122));
    for (clients, c, e) in &locks {
        let (label, cp, ep) = if *clients == 1 {
            (
                "lock+unlock, 1 client: cycle".to_owned(),
                (c.cycle_p50_ms, c.cycle_p99_ms),
                (e.cycle_p50_ms, e.cycle_p99_ms),
            )
        } else {
            (
                format!("lock+unlock, {clients} contenders: acquire wait"),
                (c.acquire_p50_ms, c.acquire_p99_ms),
                (e.acquire_p50_ms, e.acquire_p99_ms),
            )
        };
        println!(
            "{:<46} {:>9.0}/s {:>9.0}/s {:>6.2}x | {:>7.2}ms {:>7.2}ms | {:>7.2}ms {:>7.2}ms",
            label,
            c.cycles_per_sec,
            e.cycles_per_sec,
            ratio(c.cycles_per_sec, e.cycles_per_sec),
            cp.0,
            cp.1,
            ep.0,
            ep.1
        );
    }
    println!(
        "\n{:<46} {:>11} {:>11} {:>7} | {:>9} {:>9} | {:>9} {:>9}",
        "election failover (B seen by observer)",
        "cairn p50",
        "etcd p50",
        "ratio",
        "c max",
        "c runs",
        "e max",
        "e runs"
    );
    println!("{}", "-".repeat(122));
    for (kind, c, e) in &failovers {
        let label = match kind {
            Failover::Revoke => "revoke A's lease -> B observed".to_owned(),
            Failover::Expiry => format!("A's last keep-alive -> B observed (TTL {} s)", ttl as f64 / 1000.0),
        };
        println!(
            "{:<46} {:>9.1}ms {:>9.1}ms {:>6.2}x | {:>7.1}ms {:>9} | {:>7.1}ms {:>9}",
            label,
            c.observed_p50_ms,
            e.observed_p50_ms,
            ratio(c.observed_p50_ms, e.observed_p50_ms),
            c.observed_max_ms,
            format!("{}/{}", c.trials.len(), args.failover_runs),
            e.observed_max_ms,
            format!("{}/{}", e.trials.len(), args.failover_runs)
        );
    }
    println!(
        "(ratio = cairn/etcd: above 1 is Cairn faster for cycles/s, below 1 is Cairn faster for failover times; \
         each client moves to the next member after every cycle; failover: A, B and the observer on three different \
         members, measured at the observer's receipt; etcd through its JSON gateway, /v3/lock/*, /v3/election/*)"
    );

    let json = json!({
        "machine": machine,
        "seconds_per_row": args.seconds,
        "failover_ttl_ms": ttl,
        "failover_runs": args.failover_runs,
        "locks": locks.iter().map(|(clients, c, e)| json!({
            "clients": clients, "cairn": c, "etcd_json_gateway": e,
            "ratio": ratio(c.cycles_per_sec, e.cycles_per_sec),
        })).collect::<Vec<_>>(),
        "failover": failovers.iter().map(|(kind, c, e)| json!({
            "kind": kind.tag(), "cairn": c, "etcd_json_gateway": e,
            "ratio_p50": ratio(c.observed_p50_ms, e.observed_p50_ms),
        })).collect::<Vec<_>>(),
    });
    let path = crate::save_results(&args.out, "locks", &json)?;
    println!("results: {}", path.display());
    Ok(())
}
