//! The key-value suite: every row measured against Cairn and each reference in the same run
//! (etcd through gRPC and through its JSON gateway, ZooKeeper where it has the call), the
//! order rotating from row to row so no system always gets the warmer machine.

use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::cluster::{Cluster, System};
use crate::workload::{self, Conn, Op, Outcome, Workload};
use crate::Args;

/// Who answers a row: Cairn or one of the systems it is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Cairn,
    EtcdGrpc,
    EtcdJson,
    ZooKeeper,
}

impl Target {
    /// The name `--refs` takes.
    fn flag(self) -> &'static str {
        match self {
            Target::Cairn => "cairn",
            Target::EtcdGrpc => "etcd-grpc",
            Target::EtcdJson => "etcd-json",
            Target::ZooKeeper => "zookeeper",
        }
    }

    /// The key of its figures in the JSON results.
    fn key(self) -> &'static str {
        match self {
            Target::Cairn => "cairn",
            Target::EtcdGrpc => "etcd_grpc",
            Target::EtcdJson => "etcd_json_gateway",
            Target::ZooKeeper => "zookeeper",
        }
    }

    /// The label of its line in the table; for ZooKeeper, the call the row maps to.
    fn label(self, op: Op) -> &'static str {
        match (self, op) {
            (Target::Cairn, _) => "cairn",
            (Target::EtcdGrpc, _) => "etcd gRPC",
            (Target::EtcdJson, _) => "etcd JSON gateway",
            (Target::ZooKeeper, Op::Put) => "zookeeper setData",
            (Target::ZooKeeper, Op::Cas) => "zookeeper setData(ver)",
            (Target::ZooKeeper, Op::GetSerializable) => "zookeeper getData",
            (Target::ZooKeeper, Op::GetLinearizable) => "zookeeper sync+getData",
            (Target::ZooKeeper, Op::Create) => "zookeeper create",
            (Target::ZooKeeper, Op::GetPastRevision) => "zookeeper",
        }
    }

    /// The cargo feature its driver needs, if any.
    fn feature(self) -> Option<&'static str> {
        match self {
            Target::EtcdGrpc => Some("grpc"),
            Target::ZooKeeper => Some("zookeeper"),
            Target::Cairn | Target::EtcdJson => None,
        }
    }

    fn compiled(self) -> bool {
        match self {
            Target::EtcdGrpc => cfg!(feature = "grpc"),
            Target::ZooKeeper => cfg!(feature = "zookeeper"),
            Target::Cairn | Target::EtcdJson => true,
        }
    }
}

/// The references a row is compared with, among those selected. ZooKeeper has no reads at a
/// past revision and no single-client put row worth its time; etcd's create-only is a
/// transaction, not a call, so the create row is Cairn against ZooKeeper alone.
fn references(w: &Workload, selected: &[Target]) -> Vec<Target> {
    selected
        .iter()
        .copied()
        .filter(|t| match (t, w.op) {
            (Target::ZooKeeper, Op::Put) => w.clients >= 64,
            (Target::ZooKeeper, Op::GetPastRevision) => false,
            (Target::EtcdGrpc | Target::EtcdJson, Op::Create) => false,
            _ => true,
        })
        .collect()
}

/// Parses `--refs`; references whose driver is not compiled in are dropped and returned apart.
fn selected(refs: &str) -> anyhow::Result<(Vec<Target>, Vec<Target>)> {
    let mut on = Vec::new();
    let mut missing = Vec::new();
    // `none`: Cairn alone, for measuring a change of Cairn's quickly.
    for name in refs.split(',').map(str::trim).filter(|s| !s.is_empty() && *s != "none") {
        let t = [Target::EtcdGrpc, Target::EtcdJson, Target::ZooKeeper]
            .into_iter()
            .find(|t| t.flag() == name)
            .with_context(|| {
                format!("--refs: unknown reference {name:?} (etcd-grpc, etcd-json, zookeeper, or none)")
            })?;
        if t.compiled() {
            on.push(t);
        } else {
            missing.push(t);
        }
    }
    Ok((on, missing))
}

/// The systems under test, started once for the whole suite; dropping them stops them.
struct Systems {
    cairn: Cluster,
    etcd: Option<Cluster>,
    #[cfg(feature = "zookeeper")]
    zookeeper: Option<crate::zk::Ensemble>,
}

impl Systems {
    /// Connections for `clients` clients of `target`.
    async fn connect(&self, target: Target, clients: usize) -> anyhow::Result<Vec<Conn>> {
        let etcd = || self.etcd.as_ref().context("etcd is not running");
        match target {
            Target::Cairn => workload::http_conns(&self.cairn, clients).await,
            Target::EtcdJson => workload::http_conns(etcd()?, clients).await,
            #[cfg(feature = "grpc")]
            Target::EtcdGrpc => Ok(crate::grpc::connect(&etcd()?.clients, clients)
                .await?
                .into_iter()
                .map(|kv| Conn::Grpc(Box::new(kv)))
                .collect()),
            #[cfg(feature = "zookeeper")]
            Target::ZooKeeper => {
                let zk = self.zookeeper.as_ref().context("ZooKeeper is not running")?;
                Ok(crate::zk::connect(&zk.clients, clients).await?.into_iter().map(Conn::Zk).collect())
            }
            #[allow(unreachable_patterns)]
            _ => anyhow::bail!("{} needs the `{}` feature", target.flag(), target.feature().unwrap_or("?")),
        }
    }
}

impl Systems {
    /// CPU seconds used so far by every member of `target`.
    fn cpu_seconds(&self, target: Target) -> f64 {
        match target {
            Target::Cairn => self.cairn.total_cpu_seconds(),
            Target::EtcdGrpc | Target::EtcdJson => self.etcd.as_ref().map_or(0.0, Cluster::total_cpu_seconds),
            #[cfg(feature = "zookeeper")]
            Target::ZooKeeper => self.zookeeper.as_ref().map_or(0.0, crate::zk::Ensemble::total_cpu_seconds),
            #[cfg(not(feature = "zookeeper"))]
            Target::ZooKeeper => 0.0,
        }
    }
}

/// etcd's own version, from its /version endpoint.
async fn etcd_version(cluster: &Cluster) -> String {
    let url = format!("http://{}/version", cluster.clients[0]);
    let v: Option<serde_json::Value> = match reqwest::get(url).await {
        Ok(r) => r.json().await.ok(),
        Err(_) => None,
    };
    v.and_then(|v| v["etcdserver"].as_str().map(str::to_owned)).unwrap_or_else(|| "(unknown version)".into())
}

/// A line above the progress bar (or plainly on stderr when the bar is hidden, as it is
/// when stderr is not a terminal).
fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

fn ratio(cairn: &Outcome, reference: &Outcome) -> f64 {
    if reference.ops_per_sec > 0.0 {
        cairn.ops_per_sec / reference.ops_per_sec
    } else {
        0.0
    }
}

/// One measured row: Cairn's outcome and each reference's, in the table's order.
struct Row {
    workload: Workload,
    /// Each system's median round.
    cairn: Outcome,
    references: Vec<(Target, Outcome)>,
    /// Every round's op/s, per system, in round order.
    rounds: Vec<(Target, Vec<f64>)>,
}

impl Row {
    fn round_ops(&self, target: Target) -> &[f64] {
        self.rounds.iter().find(|(t, _)| *t == target).map_or(&[], |(_, ops)| ops.as_slice())
    }
}

/// `target`'s round with the median op/s (the lower middle one of an even count), whole:
/// its latencies and CPU come from the same round as its throughput.
fn median_round(outcomes: &[(Target, Outcome)], target: Target) -> Option<Outcome> {
    let mut mine: Vec<&Outcome> = outcomes.iter().filter(|(t, _)| *t == target).map(|(_, o)| o).collect();
    mine.sort_by(|a, b| a.ops_per_sec.total_cmp(&b.ops_per_sec));
    mine.get(mine.len().saturating_sub(1) / 2).map(|o| (*o).clone())
}

pub async fn run(args: &Args, machine: &str) -> anyhow::Result<()> {
    let (refs, missing) = selected(&args.refs)?;
    let mut workloads = Vec::new();
    for c in args.put_clients.split(',').filter_map(|c| c.trim().parse::<usize>().ok()) {
        workloads.push(Workload { op: Op::Put, clients: c });
    }
    workloads.push(Workload { op: Op::Cas, clients: 64 });
    workloads.push(Workload { op: Op::GetLinearizable, clients: args.read_clients });
    workloads.push(Workload { op: Op::GetSerializable, clients: args.read_clients });
    workloads.push(Workload { op: Op::GetPastRevision, clients: args.read_clients });
    workloads.push(Workload { op: Op::Create, clients: 64 });
    let rows: Vec<&str> = args.rows.split(',').map(str::trim).collect();
    if let Some(unknown) = rows.iter().find(|r| workloads.iter().all(|w| w.op.flag() != **r)) {
        anyhow::bail!("--rows: unknown row {unknown:?} (put, cas, get, serializable, past, create)");
    }
    workloads.retain(|w| rows.contains(&w.op.flag()));
    // A row without a reference would say nothing about Cairn against anything, unless Cairn
    // alone was asked for.
    if !refs.is_empty() {
        workloads.retain(|w| !references(w, &refs).is_empty());
    }

    let uses_etcd = refs.iter().any(|t| matches!(t, Target::EtcdGrpc | Target::EtcdJson));
    let uses_zk = refs.contains(&Target::ZooKeeper);
    println!(
        "3 members each, loopback, fsync on; {}-byte values over {} keys; {} s per row{}",
        args.value_size,
        args.keys,
        args.seconds,
        if args.rounds > 1 { format!(", median of {} rounds", args.rounds) } else { String::new() }
    );

    let dir = tempfile::tempdir().context("temp dir")?;
    eprintln!("starting a 3-member Cairn cluster...");
    let cairn = Cluster::start(System::Cairn, &args.cairn_bin, dir.path(), 3).await?;
    let etcd = if uses_etcd {
        eprintln!("starting a 3-member etcd cluster...");
        Some(Cluster::start(System::Etcd, &args.etcd_bin, dir.path(), 3).await?)
    } else {
        None
    };
    #[cfg(feature = "zookeeper")]
    let zookeeper = if uses_zk {
        anyhow::ensure!(
            args.zookeeper_jar.exists(),
            "{} not found: install Debian's zookeeper (make bench does), or leave it out with --refs etcd-grpc,etcd-json",
            args.zookeeper_jar.display()
        );
        eprintln!("starting a 3-member ZooKeeper ensemble...");
        let install = crate::zk::Install::debian(args.java_bin.clone(), &args.zookeeper_jar);
        Some(crate::zk::Ensemble::start(&install, dir.path(), 3).await?)
    } else {
        None
    };
    let systems = Systems {
        cairn,
        etcd,
        #[cfg(feature = "zookeeper")]
        zookeeper,
    };

    eprintln!("loading {} keys into each...", args.keys);
    // The revision after loading: the "past revision" rows read as of it, after the put
    // rows have written newer versions of every key.
    let cairn_past = workload::prepare(&systems.cairn, args.keys, args.value_size).await?;
    let etcd_past = match &systems.etcd {
        Some(e) => workload::prepare(e, args.keys, args.value_size).await?,
        None => 1,
    };
    #[cfg(feature = "zookeeper")]
    if let Some(zk) = &systems.zookeeper {
        crate::zk::prepare(zk, args.keys, args.value_size).await?;
    }
    let etcd_version = match &systems.etcd {
        Some(e) => etcd_version(e).await,
        None => String::new(),
    };
    #[cfg(feature = "zookeeper")]
    let zk_version = systems.zookeeper.as_ref().map(|z| z.version.clone()).unwrap_or_default();
    #[cfg(not(feature = "zookeeper"))]
    let zk_version = String::new();

    let duration = Duration::from_secs(args.seconds);
    let rounds = args.rounds as usize;
    let total: usize = workloads.iter().map(|w| (references(w, &refs).len() + 1) * rounds).sum();
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] [{bar:30}] {pos}/{len} eta {eta} {msg}")?
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));

    let mut rows = Vec::new();
    for (i, w) in workloads.iter().enumerate() {
        let mut systems_of_row = vec![Target::Cairn];
        systems_of_row.extend(references(w, &refs));
        let mut outcomes: Vec<(Target, Outcome)> = Vec::new();
        for round in 0..rounds {
            // Rotate which system goes first from row to row and round to round.
            let mut order = systems_of_row.clone();
            let n = order.len();
            order.rotate_left((i + round) % n);
            for target in order {
                let what = if rounds > 1 {
                    format!("{} · {} · round {}/{rounds}", w.label(), target.label(w.op), round + 1)
                } else {
                    format!("{} · {}", w.label(), target.label(w.op))
                };
                bar.set_message(format!("{what} · connecting"));
                let conns = systems.connect(target, w.clients).await?;
                let ticker = {
                    let (bar, what) = (bar.clone(), what.clone());
                    let end = Instant::now() + duration;
                    tokio::spawn(async move {
                        loop {
                            let left = end.saturating_duration_since(Instant::now());
                            bar.set_message(format!("{what} · {} s left", left.as_secs_f64().ceil()));
                            if left.is_zero() {
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(250)).await;
                        }
                    })
                };
                let past = if target == Target::Cairn { cairn_past } else { etcd_past };
                let cpu_before = systems.cpu_seconds(target);
                let o =
                    workload::measure(conns, w.op, duration, args.keys, args.value_size, past, round).await;
                ticker.abort();
                let mut o = o?;
                if o.ops > 0 {
                    o.cpu_us_per_op = (systems.cpu_seconds(target) - cpu_before) * 1e6 / o.ops as f64;
                }
                bar.inc(1);
                say(
                    &bar,
                    format!(
                    "{what:<48} {:>9.0} ops/s  p50 {:>7.2} ms  p99 {:>7.2} ms  cpu/op {:>5.0} µs  errors {}",
                    o.ops_per_sec, o.p50_ms, o.p99_ms, o.cpu_us_per_op, o.errors
                ),
                );
                outcomes.push((target, o));
            }
        }
        let cairn = median_round(&outcomes, Target::Cairn).unwrap_or_default();
        let measured = references(w, &refs)
            .into_iter()
            .filter_map(|t| median_round(&outcomes, t).map(|o| (t, o)))
            .collect();
        let spread = systems_of_row
            .iter()
            .map(|t| (*t, outcomes.iter().filter(|(o, _)| o == t).map(|(_, o)| o.ops_per_sec).collect()))
            .collect();
        rows.push(Row { workload: w.clone(), cairn, references: measured, rounds: spread });
    }
    bar.finish_and_clear();
    drop(systems);

    print_table(&rows);
    if args.rounds > 1 {
        print_rounds(&rows);
    }
    println!("cairn/ref = Cairn's op/s over the reference's; latencies per request, client side;");
    println!("cpu/op = CPU time all members of the system spent per request (the load generator excluded);");
    println!("client c talks to member c mod 3.");
    if refs.contains(&Target::EtcdGrpc) {
        println!(
            "etcd {etcd_version} gRPC: its native API (etcd-client crate), up to {} clients per HTTP/2 channel.",
            workload::GRPC_CLIENTS_PER_CHANNEL
        );
    }
    if refs.contains(&Target::EtcdJson) {
        println!(
            "etcd {etcd_version} JSON gateway: /v3/kv/*, one HTTP/1.1 connection per client (as for Cairn)."
        );
    }
    if uses_zk {
        println!("ZooKeeper {zk_version}: one session per client; put = setData, CAS = setData with the expected version,");
        println!("  linearizable get = sync + getData, serializable get = getData (answered by the member itself),");
        println!("  create = create of a new node (against Cairn's create-only POST).");
    }
    for t in &missing {
        println!(
            "no {} rows: this cairn-bench was built without the `{}` feature (make bench builds with",
            t.flag(),
            t.feature().unwrap_or("?")
        );
        println!("  --features references).");
    }

    let json = json!({
        "machine": machine,
        "seconds_per_row": args.seconds,
        "rounds": args.rounds,
        "value_size": args.value_size,
        "keys": args.keys,
        "versions": { "etcd": etcd_version, "zookeeper": zk_version },
        "rows": rows.iter().map(|r| {
            let mut row = json!({ "workload": r.workload.label(), "clients": r.workload.clients, "cairn": r.cairn });
            if args.rounds > 1 {
                row["cairn"]["rounds_ops_per_sec"] = json!(r.round_ops(Target::Cairn));
            }
            for (t, o) in &r.references {
                let mut v = json!(o);
                if args.rounds > 1 {
                    v["rounds_ops_per_sec"] = json!(r.round_ops(*t));
                }
                v["ratio"] = json!(ratio(&r.cairn, o));
                if *t == Target::ZooKeeper {
                    v["operation"] = json!(t.label(r.workload.op).trim_start_matches("zookeeper "));
                }
                row[t.key()] = v;
            }
            row
        }).collect::<Vec<_>>(),
    });
    let path = crate::save_results(&args.out, "bench", &json)?;
    println!("results: {}", path.display());
    Ok(())
}

/// Every round's op/s and, for references, Cairn's ratio within the round: two systems
/// measured minutes apart see different machines, one right after the other much less so.
fn print_rounds(rows: &[Row]) {
    println!("\nper round (op/s; for references, cairn/ref within the round):");
    for r in rows {
        let cairn = r.round_ops(Target::Cairn);
        let figures = |ops: &[f64]| ops.iter().map(|v| format!("{v:.0}")).collect::<Vec<_>>().join(", ");
        println!("{:<26} {:<22} {}", r.workload.label(), "cairn", figures(cairn));
        for (t, _) in &r.references {
            let ops = r.round_ops(*t);
            let ratios = cairn.iter().zip(ops).map(|(c, o)| format!("{:.2}x", c / o)).collect::<Vec<_>>();
            println!("{:<26} {:<22} {}  ({})", "", t.label(r.workload.op), figures(ops), ratios.join(", "));
        }
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "\n{:<26} {:<22} {:>10} {:>9} {:>10} {:>10} {:>10} {:>8} {:>8}",
        "workload", "system", "op/s", "cairn/ref", "p50", "p99", "p999", "cpu/op", "errors"
    );
    println!("{}", "-".repeat(121));
    let ms = |v: f64| format!("{v:.2}ms");
    for r in rows {
        let mut first = true;
        let lines =
            std::iter::once((Target::Cairn, &r.cairn)).chain(r.references.iter().map(|(t, o)| (*t, o)));
        for (t, o) in lines {
            let ratio =
                if t == Target::Cairn { String::new() } else { format!("{:.2}x", ratio(&r.cairn, o)) };
            println!(
                "{:<26} {:<22} {:>10.0} {:>9} {:>10} {:>10} {:>10} {:>8} {:>8}",
                if first { r.workload.label() } else { String::new() },
                t.label(r.workload.op),
                o.ops_per_sec,
                ratio,
                ms(o.p50_ms),
                ms(o.p99_ms),
                ms(o.p999_ms),
                format!("{:.0}µs", o.cpu_us_per_op),
                o.errors
            );
            first = false;
        }
    }
}
