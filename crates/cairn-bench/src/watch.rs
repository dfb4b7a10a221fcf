//! The watch benchmark (issue figures): one member of each system; N watchers each on its
//! own key plus M on one hot key. Reports delivery latency from the write's acknowledgement
//! to the watcher's receipt, memory per watcher (RSS growth / watchers), and put throughput
//! with the watchers attached and idle against none.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::json;
use tokio::sync::{mpsc, Semaphore};

use crate::cluster::{Cluster, System};
use crate::events::{self, Message};
use crate::workload::{self, Op, Outcome, Workload};
use crate::Args;

/// A delivery seen by a watcher: (key, value, when).
type Seen = (String, String, Instant);

fn client() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(0).tcp_nodelay(true).build().unwrap_or_default()
}

/// Opens one watch stream; sends `()` on `ready` once the server has registered it, then
/// reports every delivery until the stream ends.
async fn watch_one(
    http: reqwest::Client,
    system: System,
    endpoint: String,
    key: String,
    ready: mpsc::UnboundedSender<()>,
    seen: mpsc::UnboundedSender<Seen>,
) -> anyhow::Result<()> {
    let resp = events::open(&http, system, &endpoint, &key, false).await?;
    events::follow(system, resp, |m, at| match m {
        Message::Ready => {
            let _ = ready.send(());
        }
        Message::Change { key, value, .. } => {
            let _ = seen.send((key, value, at));
        }
    })
    .await
}

async fn put(http: &reqwest::Client, system: System, endpoint: &str, key: &str, value: &str) -> bool {
    let req = match system {
        System::Cairn => http.put(format!("http://{endpoint}/v1/nodes{key}?parents")).body(value.to_owned()),
        System::Etcd => http
            .post(format!("http://{endpoint}/v3/kv/put"))
            .body(json!({ "key": B64.encode(key), "value": B64.encode(value) }).to_string()),
    };
    matches!(req.send().await, Ok(r) if r.status().is_success())
}

#[derive(Debug, Default, serde::Serialize)]
struct WatchOutcome {
    watchers: usize,
    open_seconds: f64,
    rss_mib_before: f64,
    rss_mib_after: f64,
    kib_per_watcher: f64,
    deliveries_expected: usize,
    deliveries_seen: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    put_ops_without_watchers: f64,
    put_ops_with_idle_watchers: f64,
    put_drop_percent: f64,
}

async fn bench_one(system: System, args: &Args, dir: &std::path::Path) -> anyhow::Result<WatchOutcome> {
    let bin = match system {
        System::Cairn => &args.cairn_bin,
        System::Etcd => &args.etcd_bin,
    };
    let cluster = Cluster::start(system, bin, dir, 1).await?;
    let endpoint = cluster.clients[0].clone();
    let http = client();
    workload::prepare(&cluster, 1000, args.value_size).await?;
    let put_load = Workload { op: Op::Put, clients: 64 };
    let seconds = Duration::from_secs(args.seconds.max(3));
    eprintln!("  {}: put throughput without watchers ...", system.name());
    let without: Outcome = workload::run(&cluster, &put_load, seconds, 1000, args.value_size, 0).await?;

    let rss_before = cluster.rss_kib(0);
    let total = args.watchers + args.hot_watchers;
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
    let gate = Arc::new(Semaphore::new(256));
    let started = Instant::now();
    for i in 0..total {
        let key = if i < args.watchers { format!("/wb/k{i:06}") } else { "/wb/hot".to_owned() };
        let (http, endpoint, ready, seen, gate) =
            (client(), endpoint.clone(), ready_tx.clone(), seen_tx.clone(), gate.clone());
        tokio::spawn(async move {
            let permit = gate.acquire_owned().await;
            let r = watch_one(http, system, endpoint, key, ready, seen);
            drop(permit);
            // Streams end with an error when the member is stopped at the end; a stream that
            // never opened shows as a watcher that did not become ready.
            let _ = r.await;
        });
        if i % 1000 == 999 {
            eprint!("\r  {}: opening watchers {}/{total}", system.name(), i + 1);
        }
    }
    for n in 0..total {
        tokio::time::timeout(Duration::from_secs(60), ready_rx.recv())
            .await
            .with_context(|| format!("only {n} of {total} watchers became ready"))?;
    }
    let open_seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = cluster.rss_kib(0);
    eprintln!("\r  {}: {total} watchers open in {open_seconds:.1} s                 ", system.name());

    eprintln!("  {}: put throughput with the watchers idle ...", system.name());
    let with: Outcome = workload::run(&cluster, &put_load, seconds, 1000, args.value_size, 0).await?;

    // Deliveries: one write per own key, and 100 writes to the hot key.
    eprintln!("  {}: writing watched keys ...", system.name());
    let mut acked: HashMap<(String, String), Instant> = HashMap::new();
    let writes: Vec<(String, String)> = (0..args.watchers)
        .map(|i| (format!("/wb/k{i:06}"), format!("o{i}")))
        .chain((0..100).map(|n| ("/wb/hot".to_owned(), format!("h{n}"))))
        .collect();
    let mut expected = args.watchers + 100 * args.hot_watchers;
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel();
    let chunks: Vec<Vec<(String, String)>> =
        writes.chunks(writes.len().div_ceil(16)).map(|c| c.to_vec()).collect();
    let mut writers = Vec::new();
    for chunk in chunks {
        let (http, endpoint, ack_tx) = (http.clone(), endpoint.clone(), ack_tx.clone());
        writers.push(tokio::spawn(async move {
            for (k, v) in chunk {
                if put(&http, system, &endpoint, &k, &v).await {
                    let _ = ack_tx.send(((k, v), Instant::now()));
                }
            }
        }));
    }
    drop(ack_tx);
    let mut deliveries: Vec<Seen> = Vec::with_capacity(expected);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut writers_done = false;
    while deliveries.len() < expected && Instant::now() < deadline {
        tokio::select! {
            a = ack_rx.recv(), if !writers_done => match a {
                Some((kv, t)) => { acked.insert(kv, t); }
                None => writers_done = true,
            },
            s = seen_rx.recv() => if let Some(s) = s { deliveries.push(s) },
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    while let Ok((kv, t)) = ack_rx.try_recv() {
        acked.insert(kv, t);
    }
    for w in writers {
        let _ = w.await;
    }
    if acked.len() < writes.len() {
        expected -= writes.len() - acked.len();
    }
    let mut lat: Vec<f64> = deliveries
        .iter()
        .filter_map(|(k, v, t)| {
            acked.get(&(k.clone(), v.clone())).map(|a| t.saturating_duration_since(*a).as_secs_f64() * 1000.0)
        })
        .collect();
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct =
        |p: f64| lat.get(((lat.len() as f64 * p).ceil() as usize).saturating_sub(1)).copied().unwrap_or(0.0);
    let drop =
        if without.ops_per_sec > 0.0 { (1.0 - with.ops_per_sec / without.ops_per_sec) * 100.0 } else { 0.0 };
    Ok(WatchOutcome {
        watchers: total,
        open_seconds,
        rss_mib_before: rss_before as f64 / 1024.0,
        rss_mib_after: rss_after as f64 / 1024.0,
        kib_per_watcher: rss_after.saturating_sub(rss_before) as f64 / total as f64,
        deliveries_expected: expected,
        deliveries_seen: deliveries.len(),
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        max_ms: lat.last().copied().unwrap_or(0.0),
        put_ops_without_watchers: without.ops_per_sec,
        put_ops_with_idle_watchers: with.ops_per_sec,
        put_drop_percent: drop,
    })
}

pub async fn run(args: &Args, machine: &str) -> anyhow::Result<()> {
    println!(
        "watch benchmark: one member each; {} watchers on their own keys + {} on one hot key\n",
        args.watchers, args.hot_watchers
    );
    let dir = tempfile::tempdir().context("temp dir")?;
    let mut results = Vec::new();
    for system in [System::Cairn, System::Etcd] {
        eprintln!("{}:", system.name());
        let o = bench_one(system, args, dir.path()).await?;
        results.push((system, o));
    }
    println!(
        "{:<6} {:>9} {:>9} {:>10} {:>10} {:>9} {:>9} {:>9} {:>11} {:>11} {:>7}",
        "system",
        "watchers",
        "open s",
        "KiB/watch",
        "delivered",
        "p50 ms",
        "p99 ms",
        "max ms",
        "put/s none",
        "put/s idle",
        "drop"
    );
    for (s, o) in &results {
        println!(
            "{:<6} {:>9} {:>9.1} {:>10.1} {:>4}/{:<5} {:>9.2} {:>9.2} {:>9.2} {:>11.0} {:>11.0} {:>6.1}%",
            s.name(),
            o.watchers,
            o.open_seconds,
            o.kib_per_watcher,
            o.deliveries_seen,
            o.deliveries_expected,
            o.p50_ms,
            o.p99_ms,
            o.max_ms,
            o.put_ops_without_watchers,
            o.put_ops_with_idle_watchers,
            o.put_drop_percent
        );
    }
    println!("(etcd through its JSON gateway, POST /v3/watch; latency = receipt minus the write's acknowledgement, clamped at 0)");
    let json = json!({ "machine": machine, "results": results.iter().map(|(s, o)| json!({ "system": s.name(), "outcome": o })).collect::<Vec<_>>() });
    let path = crate::save_results(&args.out, "watch", &json)?;
    println!("results: {}", path.display());
    Ok(())
}
