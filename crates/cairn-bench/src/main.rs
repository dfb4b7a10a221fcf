//! `cairn-bench`: starts a three-member Cairn cluster and a three-member etcd cluster on
//! loopback (both fsync every commit), runs the same workloads against both, alternating,
//! and prints a table (throughput, p50/p99/p999) with the Cairn/etcd ratio per row, plus
//! the same as JSON under bench-results/. `--watch`, `--leases` and `--locks` select the
//! other suites.

mod cluster;
mod events;
mod lease;
mod locks;
mod watch;
mod workload;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use cluster::{Cluster, System};
use workload::{Op, Outcome, Workload};

#[derive(Parser, Debug)]
#[command(about = "Cairn vs etcd on this machine, same workloads, same run")]
pub struct Args {
    /// The cairn binary to benchmark (build it with --release).
    #[arg(long, default_value = "target/release/cairn")]
    pub cairn_bin: PathBuf,
    /// The etcd binary (Debian's etcd-server).
    #[arg(long, default_value = "etcd")]
    pub etcd_bin: PathBuf,
    /// Seconds per workload and system.
    #[arg(long, default_value_t = 8)]
    pub seconds: u64,
    /// Concurrent clients for the put workload, comma separated.
    #[arg(long, default_value = "1,16,64,256")]
    pub put_clients: String,
    /// Concurrent clients for the read workloads.
    #[arg(long, default_value_t = 64)]
    pub read_clients: usize,
    #[arg(long, default_value_t = 256)]
    pub value_size: usize,
    #[arg(long, default_value_t = 10_000)]
    pub keys: usize,
    /// Where the JSON results go.
    #[arg(long, default_value = "bench-results")]
    pub out: PathBuf,
    /// Run the watch benchmark (one member each) instead of the key-value suite.
    #[arg(long)]
    pub watch: bool,
    /// Watchers each on its own key (watch benchmark).
    #[arg(long, default_value_t = 10_000)]
    pub watchers: usize,
    /// Watchers on one hot key (watch benchmark).
    #[arg(long, default_value_t = 1_000)]
    pub hot_watchers: usize,
    /// Run the lease benchmark (three members each) instead of the key-value suite.
    #[arg(long)]
    pub leases: bool,
    /// Leases kept alive (lease benchmark).
    #[arg(long, default_value_t = 100_000)]
    pub lease_count: usize,
    /// TTL of the kept-alive leases, in ms (lease benchmark); they are kept alive at a third of it.
    #[arg(long, default_value_t = 60_000)]
    pub lease_ttl_ms: u64,
    /// Run the lock and election benchmark (three members each) instead of the key-value suite.
    #[arg(long)]
    pub locks: bool,
    /// Clients contending for one lock, each with its own lease (lock benchmark).
    #[arg(long, default_value_t = 16)]
    pub lock_contenders: usize,
    /// Election failovers per system and kind (revoke, expiry) (lock benchmark).
    #[arg(long, default_value_t = 5)]
    pub failover_runs: usize,
    /// TTL of the leading candidate's lease, in ms (lock benchmark; Cairn's minimum is 2000,
    /// etcd takes whole seconds).
    #[arg(long, default_value_t = 2_000)]
    pub failover_ttl_ms: u64,
}

/// Writes `json` as `<dir>/<prefix>-<unix time>.json`; returns the path.
pub fn save_results(
    dir: &std::path::Path,
    prefix: &str,
    json: &serde_json::Value,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).context("creating the results folder")?;
    let stamp =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let path = dir.join(format!("{prefix}-{stamp}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(json)?).context("writing results")?;
    Ok(path)
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem_kb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("MemTotal")).map(|l| l.to_owned()))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .unwrap_or(0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown cpu".into());
    format!("{cores} cores ({cpu}), {:.1} GiB memory", mem_kb as f64 / 1024.0 / 1024.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.cairn_bin.exists(),
        "{} not found: run `cargo build --release --bin cairn` (make bench does)",
        args.cairn_bin.display()
    );
    let machine = machine();
    println!("cairn-bench on {machine}");
    if args.watch {
        return watch::run(&args, &machine).await;
    }
    if args.leases {
        return lease::run(&args, &machine).await;
    }
    if args.locks {
        return locks::run(&args, &machine).await;
    }
    println!(
        "3 members each, loopback, fsync on; {}-byte values over {} keys; {} s per row\n",
        args.value_size, args.keys, args.seconds
    );

    let mut workloads = Vec::new();
    for c in args.put_clients.split(',').filter_map(|c| c.trim().parse::<usize>().ok()) {
        workloads.push(Workload { op: Op::Put, clients: c });
    }
    workloads.push(Workload { op: Op::Cas, clients: 64 });
    workloads.push(Workload { op: Op::GetLinearizable, clients: args.read_clients });
    workloads.push(Workload { op: Op::GetSerializable, clients: args.read_clients });
    workloads.push(Workload { op: Op::GetPastRevision, clients: args.read_clients });

    let dir = tempfile::tempdir().context("temp dir")?;
    eprintln!("starting a 3-member Cairn cluster and a 3-member etcd cluster...");
    let cairn = Cluster::start(System::Cairn, &args.cairn_bin, dir.path(), 3).await?;
    let etcd = Cluster::start(System::Etcd, &args.etcd_bin, dir.path(), 3).await?;
    let duration = Duration::from_secs(args.seconds);
    // The revision after loading: the "past revision" rows read as of it, after the put
    // rows have written newer versions of every key.
    let mut past = std::collections::HashMap::new();
    for c in [&cairn, &etcd] {
        past.insert(c.system.name(), workload::prepare(c, args.keys, args.value_size).await?);
    }

    let total = workloads.len() * 2;
    let mut rows: Vec<(Workload, Outcome, Outcome)> = Vec::new();
    for (i, w) in workloads.iter().enumerate() {
        let mut outcomes = Vec::new();
        // Alternate which system goes first so neither always gets the warmer machine.
        let order: [&Cluster; 2] = if i % 2 == 0 { [&cairn, &etcd] } else { [&etcd, &cairn] };
        for (j, c) in order.iter().enumerate() {
            eprintln!("[{:>2}/{total}] {} {} ...", i * 2 + j + 1, c.system.name(), w.label());
            let o = workload::run(
                c,
                w,
                duration,
                args.keys,
                args.value_size,
                past.get(c.system.name()).copied().unwrap_or(1),
            )
            .await?;
            eprintln!(
                "        {:>10.0} ops/s  p50 {:>7.2} ms  p99 {:>7.2} ms  errors {}",
                o.ops_per_sec, o.p50_ms, o.p99_ms, o.errors
            );
            outcomes.push((c.system, o));
        }
        let pick = |s: System| {
            outcomes.iter().find(|(sys, _)| *sys == s).map(|(_, o)| o.clone()).unwrap_or_default()
        };
        rows.push((w.clone(), pick(System::Cairn), pick(System::Etcd)));
    }
    drop(cairn);
    drop(etcd);

    println!(
        "\n{:<28} {:>11} {:>11} {:>7} | {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8}",
        "workload",
        "cairn op/s",
        "etcd op/s",
        "ratio",
        "c p50",
        "c p99",
        "c p999",
        "e p50",
        "e p99",
        "e p999"
    );
    println!("{}", "-".repeat(120));
    for (w, c, e) in &rows {
        let ratio = if e.ops_per_sec > 0.0 { c.ops_per_sec / e.ops_per_sec } else { 0.0 };
        println!(
            "{:<28} {:>11.0} {:>11.0} {:>6.2}x | {:>7.2}ms {:>7.2}ms {:>7.2}ms | {:>7.2}ms {:>7.2}ms {:>7.2}ms",
            w.label(), c.ops_per_sec, e.ops_per_sec, ratio, c.p50_ms, c.p99_ms, c.p999_ms, e.p50_ms, e.p99_ms, e.p999_ms
        );
    }
    println!("(etcd rows use its HTTP/JSON gateway, /v3/kv/*; latencies are per request, client side)");

    let json = serde_json::json!({
        "machine": machine,
        "seconds_per_row": args.seconds,
        "value_size": args.value_size,
        "keys": args.keys,
        "rows": rows.iter().map(|(w, c, e)| serde_json::json!({
            "workload": w.label(), "clients": w.clients, "cairn": c, "etcd_json_gateway": e,
            "ratio": if e.ops_per_sec > 0.0 { c.ops_per_sec / e.ops_per_sec } else { 0.0 },
        })).collect::<Vec<_>>(),
    });
    let path = save_results(&args.out, "bench", &json)?;
    println!("results: {}", path.display());
    Ok(())
}
