//! A short fault-injection run with a fixed seed, inside `make test`: faults of every kind
//! the schedule draws for this seed, every workload, every checker. `make chaos` runs
//! longer ones with any seed.

use std::time::Duration;

use cairn_tests::chaos::{run, Config};

#[test]
fn a_short_chaos_run_finds_no_anomaly() {
    let cfg = Config {
        seed: 42,
        duration: Duration::from_secs(25),
        members: 3,
        out: std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("chaos-results"),
        verbose: true,
    };
    let report = run(&cfg);
    println!("{}", report.table());
    assert!(!report.faults.is_empty(), "no fault was injected");
    assert!(report.operations["registers"].ok > 100, "too few register operations to mean anything");
    assert_eq!(report.anomaly_count(), 0, "anomalies found:\n{}", report.table());
}
