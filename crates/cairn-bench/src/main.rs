//! `cairn-bench`: starts a three-member Cairn cluster and three-member reference clusters
//! on loopback (etcd, and ZooKeeper with the `zookeeper` feature; all fsync every commit),
//! runs the same workloads against each, rotating the order, and prints a table
//! (throughput, p50/p99/p999) with Cairn's ratio to each reference per row, plus the same
//! as JSON under bench-results/. `--watch`, `--leases` and `--locks` select the other suites.

mod cluster;
mod events;
#[cfg(feature = "grpc")]
mod grpc;
mod kv;
mod lease;
mod locks;
mod watch;
mod workload;
#[cfg(feature = "zookeeper")]
mod zk;

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Cairn vs etcd on this machine, same workloads, same run")]
pub struct Args {
    /// The cairn binary to benchmark (build it with --release).
    #[arg(long, default_value = "target/release/cairn")]
    pub cairn_bin: PathBuf,
    /// The etcd binary (Debian's etcd-server).
    #[arg(long, default_value = "etcd")]
    pub etcd_bin: PathBuf,
    /// References for the key-value suite, comma separated: etcd-grpc (needs the `grpc`
    /// feature), etcd-json, zookeeper (needs the `zookeeper` feature), or `none` for Cairn
    /// alone. Those not built in are skipped with a note.
    #[arg(long, default_value = "etcd-grpc,etcd-json,zookeeper")]
    pub refs: String,
    /// Rows of the key-value suite, comma separated: put, cas, get, serializable, past,
    /// create (all by default); for measuring one change quickly.
    #[arg(long, default_value = "put,cas,get,serializable,past,create")]
    pub rows: String,
    /// The java binary that runs ZooKeeper.
    #[arg(long, default_value = "java")]
    pub java_bin: PathBuf,
    /// ZooKeeper's server jar (Debian's `zookeeper`; its manifest names its dependencies).
    #[arg(long, default_value = "/usr/share/java/zookeeper.jar")]
    pub zookeeper_jar: PathBuf,
    /// Seconds per workload and system.
    #[arg(long, default_value_t = 8)]
    pub seconds: u64,
    /// Rounds per row of the key-value suite: each round measures every system once, the
    /// order rotating, and the table shows each system's median round (by op/s). The host's
    /// speed drifts by 10-30% within minutes, so one round can land a row in a slow minute.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=15))]
    pub rounds: u64,
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
    let suite = async {
        if args.watch {
            watch::run(&args, &machine).await
        } else if args.leases {
            lease::run(&args, &machine).await
        } else if args.locks {
            locks::run(&args, &machine).await
        } else {
            kv::run(&args, &machine).await
        }
    };
    // On Ctrl-C or SIGTERM (`kill`, a timeout) the suite is dropped, and with it the
    // clusters it started (their Drop kills the servers), instead of leaving them running.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        r = suite => r,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted; the servers this run started were stopped"),
        _ = terminate.recv() => anyhow::bail!("terminated; the servers this run started were stopped"),
    }
}
