//! The lease benchmark: many leases kept alive through every member (sustained
//! keep-alives per second, the leader's CPU and memory), and expiry precision (how late
//! after its nominal end a lease's node disappears, as a watcher sees it).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::cluster::{Cluster, System};
use crate::events::{self, Message};
use crate::Args;

const EXPIRY_TTL_MS: u64 = 3_000;
const EXPIRY_LEASES: usize = 1_000;

pub(crate) fn http() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(1024).tcp_nodelay(true).build().unwrap_or_default()
}

pub(crate) fn num(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

pub(crate) async fn grant(
    http: &reqwest::Client,
    system: System,
    endpoint: &str,
    ttl_ms: u64,
) -> anyhow::Result<u64> {
    let v: Value = match system {
        System::Cairn => {
            http.post(format!("http://{endpoint}/v1/leases"))
                .body(json!({ "ttl_ms": ttl_ms }).to_string())
                .send()
                .await?
                .json()
                .await?
        }
        System::Etcd => {
            let body = json!({ "TTL": ttl_ms / 1000 }).to_string();
            http.post(format!("http://{endpoint}/v3/lease/grant")).body(body).send().await?.json().await?
        }
    };
    num(&v[if system == System::Cairn { "id" } else { "ID" }]).with_context(|| format!("grant answered {v}"))
}

pub(crate) async fn keep_alive(http: &reqwest::Client, system: System, endpoint: &str, id: u64) -> bool {
    let req = match system {
        System::Cairn => http.post(format!("http://{endpoint}/v1/leases/{id}/keepalive")),
        System::Etcd => http
            .post(format!("http://{endpoint}/v3/lease/keepalive"))
            .body(json!({ "ID": id.to_string() }).to_string()),
    };
    match req.send().await {
        Ok(r) => {
            let ok = r.status().is_success();
            let body = r.bytes().await.unwrap_or_default();
            ok && (system == System::Cairn || !body.is_empty())
        }
        Err(_) => false,
    }
}

async fn put_with_lease(http: &reqwest::Client, system: System, endpoint: &str, key: &str, id: u64) -> bool {
    let req = match system {
        System::Cairn => http.put(format!("http://{endpoint}/v1/nodes{key}?parents&lease={id}")).body("x"),
        System::Etcd => http.post(format!("http://{endpoint}/v3/kv/put")).body(
            json!({ "key": B64.encode(key), "value": B64.encode("x"), "lease": id.to_string() }).to_string(),
        ),
    };
    matches!(req.send().await, Ok(r) if r.status().is_success())
}

/// Index of the member that leads now.
async fn leader_index(http: &reqwest::Client, cluster: &Cluster) -> usize {
    for (i, endpoint) in cluster.clients.iter().enumerate() {
        let v: Option<Value> = match cluster.system {
            System::Cairn => match http.get(format!("http://{endpoint}/v1/cluster")).send().await {
                Ok(r) => r.json().await.ok(),
                Err(_) => None,
            },
            System::Etcd => {
                match http.post(format!("http://{endpoint}/v3/maintenance/status")).body("{}").send().await {
                    Ok(r) => r.json().await.ok(),
                    Err(_) => None,
                }
            }
        };
        let Some(v) = v else { continue };
        let leads = match cluster.system {
            System::Cairn => num(&v["cluster"]["leader"]) == num(&v["header"]["member"]),
            System::Etcd => {
                num(&v["leader"]).is_some() && num(&v["leader"]) == num(&v["header"]["member_id"])
            }
        };
        if leads {
            return i;
        }
    }
    0
}

#[derive(Debug, Default, serde::Serialize)]
struct LeaseOutcome {
    leases: usize,
    grant_seconds: f64,
    keepalives_per_sec: f64,
    keepalive_errors: u64,
    needed_per_sec_at_ttl_third: f64,
    leader_cpu_percent: f64,
    leader_rss_mib: f64,
    expiry_p50_late_ms: f64,
    expiry_p99_late_ms: f64,
    expiry_max_late_ms: f64,
    expiry_early: usize,
    expired_seen: usize,
    put_ops_per_sec_before_mass_expiry: f64,
    put_p99_ms_before_mass_expiry: f64,
    put_p99_ms_worst_during_mass_expiry: f64,
    put_ops_per_sec_during_mass_expiry: f64,
    mass_expiry_seconds: f64,
}

/// How many leases the cluster still has.
async fn lease_count(http: &reqwest::Client, cluster: &Cluster) -> Option<usize> {
    let endpoint = &cluster.clients[0];
    let v: Value = match cluster.system {
        System::Cairn => {
            http.get(format!("http://{endpoint}/v1/leases")).send().await.ok()?.json().await.ok()?
        }
        System::Etcd => http
            .post(format!("http://{endpoint}/v3/lease/leases"))
            .body("{}")
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?,
    };
    Some(v["leases"].as_array().map(Vec::len).unwrap_or(0))
}

async fn watch_deletes(
    system: System,
    endpoint: String,
    tx: mpsc::UnboundedSender<(String, Instant)>,
) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let resp = events::open(&http, system, &endpoint, "/prec", true).await?;
    events::follow(system, resp, |m, at| {
        if let Message::Change { delete: true, key, .. } = m {
            let _ = tx.send((key, at));
        }
    })
    .await
}

async fn bench_one(system: System, args: &Args, dir: &std::path::Path) -> anyhow::Result<LeaseOutcome> {
    let bin = if system == System::Cairn { &args.cairn_bin } else { &args.etcd_bin };
    let cluster = Cluster::start(system, bin, dir, 3).await?;
    let http = http();
    let n = args.lease_count;

    // Grant the leases, 64 at a time.
    let started = Instant::now();
    let ids = Arc::new(tokio::sync::Mutex::new(Vec::with_capacity(n)));
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for t in 0..64 {
        let (http, ids, next, endpoint) =
            (http.clone(), ids.clone(), next.clone(), cluster.clients[t % 3].clone());
        let ttl = args.lease_ttl_ms;
        tasks.push(tokio::spawn(async move {
            while (next.fetch_add(1, Ordering::Relaxed) as usize) < n {
                let id = grant(&http, system, &endpoint, ttl).await?;
                ids.lock().await.push(id);
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let ids: Arc<Vec<u64>> = Arc::new(ids.lock().await.clone());
    let grant_seconds = started.elapsed().as_secs_f64();
    eprintln!("  {}: granted {} leases in {grant_seconds:.1} s", system.name(), ids.len());

    // Keep them alive, round robin over every member, as fast as they take it.
    let leader = leader_index(&http, &cluster).await;
    let cpu_before = cluster.cpu_seconds(leader);
    let stop = Arc::new(AtomicBool::new(false));
    let (done, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut tasks = Vec::new();
    let clients = 64;
    for t in 0..clients {
        let (http, ids, stop, done, errors, endpoint) = (
            http.clone(),
            ids.clone(),
            stop.clone(),
            done.clone(),
            errors.clone(),
            cluster.clients[t % 3].clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = t;
            while !stop.load(Ordering::Relaxed) {
                if keep_alive(&http, system, &endpoint, ids[i % ids.len()]).await {
                    done.fetch_add(1, Ordering::Relaxed);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                i += clients;
            }
        }));
    }
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = (cluster.cpu_seconds(leader) - cpu_before) / secs * 100.0;
    let rss = cluster.rss_kib(leader) as f64 / 1024.0;
    let keepalives_per_sec = done.load(Ordering::Relaxed) as f64 / secs;
    eprintln!(
        "  {}: {keepalives_per_sec:.0} keep-alives/s, leader CPU {cpu:.0}%, RSS {rss:.0} MiB",
        system.name()
    );

    // Mass expiry: nobody keeps the leases alive any more, so they all end within about
    // one TTL of the last keep-alive; writes go on meanwhile.
    crate::workload::prepare(&cluster, 1000, args.value_size).await?;
    let puts = crate::workload::Workload { op: crate::workload::Op::Put, clients: 16 };
    let window = Duration::from_secs(5);
    let before = crate::workload::run(&cluster, &puts, window, 1000, args.value_size, 0).await?;
    let (mut worst_p99, mut ops, mut windows) = (0.0f64, 0.0, 0);
    let expiry_started = Instant::now();
    let mut first_gone: Option<Instant> = None;
    let limit = Duration::from_millis(args.lease_ttl_ms + 150_000);
    loop {
        let left = lease_count(&http, &cluster).await.unwrap_or(usize::MAX);
        if left < ids.len() && first_gone.is_none() {
            first_gone = Some(Instant::now());
        }
        if left == 0 || expiry_started.elapsed() > limit {
            break;
        }
        let o = crate::workload::run(&cluster, &puts, window, 1000, args.value_size, 0).await?;
        if first_gone.is_some() {
            worst_p99 = worst_p99.max(o.p99_ms);
            ops += o.ops_per_sec;
            windows += 1;
        }
        eprint!("\r  {}: {left} leases left, puts p99 {:.1} ms    ", system.name(), o.p99_ms);
    }
    let mass_expiry_seconds = first_gone.map(|t| t.elapsed().as_secs_f64()).unwrap_or(0.0);
    eprintln!(
        "\r  {}: every lease ended {mass_expiry_seconds:.1} s after the first              ",
        system.name()
    );

    // Expiry precision: short leases, one node each, deletes seen by a watcher.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let watcher = tokio::spawn(watch_deletes(system, cluster.clients[0].clone(), tx));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut nominal: HashMap<String, Instant> = HashMap::new();
    let mut tasks = Vec::new();
    for t in 0..16 {
        let (http, endpoint) = (http.clone(), cluster.clients[t % 3].clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in (t..EXPIRY_LEASES).step_by(16) {
                // The countdown cannot start before the grant is sent: an expiry seen before
                // `sent + TTL` would be early on any clock.
                let sent = Instant::now();
                let Ok(id) = grant(&http, system, &endpoint, EXPIRY_TTL_MS).await else { continue };
                let key = format!("/prec/n{i:05}");
                if put_with_lease(&http, system, &endpoint, &key, id).await {
                    out.push((key, sent + Duration::from_millis(EXPIRY_TTL_MS)));
                }
            }
            out
        }));
    }
    for t in tasks {
        nominal.extend(t.await?);
    }
    let mut late: Vec<f64> = Vec::new();
    let mut early = 0;
    let deadline = Instant::now() + Duration::from_millis(EXPIRY_TTL_MS + 15_000);
    while late.len() + early < nominal.len() && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
            Ok(Some((key, at))) => {
                if let Some(n) = nominal.get(&key) {
                    if at < *n {
                        early += 1;
                    } else {
                        late.push(at.duration_since(*n).as_secs_f64() * 1000.0);
                    }
                }
            }
            Ok(None) => break,
            Err(_) => {}
        }
    }
    watcher.abort();
    late.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        late.get(((late.len() as f64 * p).ceil() as usize).saturating_sub(1)).copied().unwrap_or(0.0)
    };
    Ok(LeaseOutcome {
        leases: ids.len(),
        grant_seconds,
        keepalives_per_sec,
        keepalive_errors: errors.load(Ordering::Relaxed),
        needed_per_sec_at_ttl_third: ids.len() as f64 / (args.lease_ttl_ms as f64 / 3000.0),
        leader_cpu_percent: cpu,
        leader_rss_mib: rss,
        expiry_p50_late_ms: pct(0.5),
        expiry_p99_late_ms: pct(0.99),
        expiry_max_late_ms: late.last().copied().unwrap_or(0.0),
        expiry_early: early,
        expired_seen: late.len() + early,
        put_ops_per_sec_before_mass_expiry: before.ops_per_sec,
        put_p99_ms_before_mass_expiry: before.p99_ms,
        put_p99_ms_worst_during_mass_expiry: worst_p99,
        put_ops_per_sec_during_mass_expiry: if windows > 0 { ops / windows as f64 } else { 0.0 },
        mass_expiry_seconds,
    })
}

pub async fn run(args: &Args, machine: &str) -> anyhow::Result<()> {
    println!(
        "lease benchmark: three members each; {} leases (TTL {} s) kept alive round robin through every member; \
         expiry of {EXPIRY_LEASES} leases with TTL {} s\n",
        args.lease_count,
        args.lease_ttl_ms / 1000,
        EXPIRY_TTL_MS / 1000
    );
    let dir = tempfile::tempdir().context("temp dir")?;
    let mut results = Vec::new();
    for system in [System::Cairn, System::Etcd] {
        eprintln!("{}:", system.name());
        results.push((system, bench_one(system, args, dir.path()).await?));
    }
    println!(
        "{:<6} {:>8} {:>8} {:>12} {:>10} {:>8} {:>9} {:>10} {:>10} {:>10} {:>7}",
        "system",
        "leases",
        "grant s",
        "keepalive/s",
        "needed/s",
        "CPU %",
        "RSS MiB",
        "exp p50",
        "exp p99",
        "exp max",
        "early"
    );
    for (s, o) in &results {
        println!(
            "{:<6} {:>8} {:>8.1} {:>12.0} {:>10.0} {:>8.0} {:>9.0} {:>8.0}ms {:>8.0}ms {:>8.0}ms {:>3}/{:<4}",
            s.name(),
            o.leases,
            o.grant_seconds,
            o.keepalives_per_sec,
            o.needed_per_sec_at_ttl_third,
            o.leader_cpu_percent,
            o.leader_rss_mib,
            o.expiry_p50_late_ms,
            o.expiry_p99_late_ms,
            o.expiry_max_late_ms,
            o.expiry_early,
            o.expired_seen
        );
    }
    println!("\nmass expiry of all {} leases while 16 clients put:", args.lease_count);
    for (s, o) in &results {
        println!(
            "{:<6} before: {:>6.0} puts/s, p99 {:>6.1} ms; during (worst 5 s window p99) {:>6.1} ms, {:>6.0} puts/s; all ended within {:.1} s",
            s.name(),
            o.put_ops_per_sec_before_mass_expiry,
            o.put_p99_ms_before_mass_expiry,
            o.put_p99_ms_worst_during_mass_expiry,
            o.put_ops_per_sec_during_mass_expiry,
            o.mass_expiry_seconds
        );
    }
    println!("(CPU and RSS of the leader during the keep-alive phase; expiry lateness = watcher's receipt of the delete minus (grant sent + TTL); etcd through its JSON gateway)");
    let json = json!({ "machine": machine, "results": results.iter().map(|(s, o)| json!({ "system": s.name(), "outcome": o })).collect::<Vec<_>>() });
    let path = crate::save_results(&args.out, "lease", &json)?;
    println!("results: {}", path.display());
    Ok(())
}
