//! `make chaos`: one fault-injection run against real `cairn` members, then the checkers.
//! Prints progress and a summary table, leaves every history under `--out`, and exits
//! non-zero if any checker found an anomaly.

use std::path::PathBuf;
use std::time::Duration;

use cairn_tests::chaos::{run, Config};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Fault-injection run with history checkers (Jepsen style)")]
struct Args {
    /// Seed of the fault schedule and of the workloads' choices: the same seed gives the
    /// same faults at the same times.
    #[arg(long, env = "SEED", default_value_t = 1)]
    seed: u64,
    /// Length of the faulty part of the run, in seconds.
    #[arg(long, env = "DURATION", default_value_t = 60)]
    duration: u64,
    /// Members in the cluster (3 or 5).
    #[arg(long, env = "MEMBERS", default_value_t = 3)]
    members: usize,
    /// Folder for the run's histories.
    #[arg(long, default_value = "chaos-results")]
    out: PathBuf,
}

fn main() {
    let args = Args::parse();
    if !(3..=7).contains(&args.members) {
        eprintln!("--members must be between 3 and 7");
        std::process::exit(2);
    }
    let cfg = Config {
        seed: args.seed,
        duration: Duration::from_secs(args.duration.max(5)),
        members: args.members,
        out: args.out,
        verbose: true,
    };
    let report = run(&cfg);
    println!("{}", report.table());
    if report.anomaly_count() > 0 {
        eprintln!("{} anomalies; see {}", report.anomaly_count(), report.dir.display());
        std::process::exit(1);
    }
}
