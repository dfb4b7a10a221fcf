//! Starting and stopping the systems under test as real processes on loopback.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    Cairn,
    Etcd,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            System::Cairn => "cairn",
            System::Etcd => "etcd",
        }
    }
}

/// A running cluster; dropping it stops the members.
pub struct Cluster {
    pub system: System,
    pub clients: Vec<String>,
    children: Vec<Child>,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Cluster {
    pub async fn start(system: System, bin: &Path, dir: &Path, members: usize) -> anyhow::Result<Cluster> {
        let mut peers = Vec::new();
        let mut clients = Vec::new();
        for _ in 0..members {
            peers.push(format!("127.0.0.1:{}", free_port()?));
            clients.push(format!("127.0.0.1:{}", free_port()?));
        }
        // Built before the members start so that a failure part way kills those already started.
        let mut cluster = Cluster { system, clients, children: Vec::new() };
        for i in 0..members {
            let data = dir.join(format!("{}-{members}-{}", system.name(), i + 1));
            let log = std::fs::File::create(dir.join(format!("{}-{members}-{}.log", system.name(), i + 1)))?;
            let client = cluster.clients[i].clone();
            let mut cmd = Command::new(bin);
            match system {
                System::Cairn => {
                    let cluster = peers
                        .iter()
                        .enumerate()
                        .map(|(j, p)| format!("{}={p}", j + 1))
                        .collect::<Vec<_>>()
                        .join(",");
                    cmd.args([
                        "--id",
                        &(i + 1).to_string(),
                        "--listen-client",
                        &client,
                        "--listen-peer",
                        &peers[i],
                    ])
                    .args(["--initial-cluster", &cluster])
                    // Keep the whole run's history, as etcd does without auto-compaction.
                    .args(["--history-revisions", "100000000"])
                    .arg("--data-dir")
                    .arg(&data);
                }
                System::Etcd => {
                    let cluster = peers
                        .iter()
                        .enumerate()
                        .map(|(j, p)| format!("e{}=http://{p}", j + 1))
                        .collect::<Vec<_>>()
                        .join(",");
                    cmd.args(["--name", &format!("e{}", i + 1)])
                        .arg("--data-dir")
                        .arg(&data)
                        .args(["--listen-client-urls", &format!("http://{client}")])
                        .args(["--advertise-client-urls", &format!("http://{client}")])
                        .args(["--listen-peer-urls", &format!("http://{}", peers[i])])
                        .args(["--initial-advertise-peer-urls", &format!("http://{}", peers[i])])
                        .args(["--initial-cluster", &cluster, "--initial-cluster-state", "new"])
                        .args(["--initial-cluster-token", "cairn-bench", "--log-level", "warn"]);
                }
            }
            cmd.stdout(log.try_clone()?).stderr(log).stdin(Stdio::null());
            cluster.children.push(cmd.spawn().with_context(|| format!("starting {}", bin.display()))?);
        }
        cluster.wait_ready().await?;
        Ok(cluster)
    }

    /// CPU seconds member `i` has used (user + system).
    pub fn cpu_seconds(&self, i: usize) -> f64 {
        self.children.get(i).map_or(0.0, |c| process_cpu_seconds(c.id()))
    }

    /// CPU seconds all members together have used.
    pub fn total_cpu_seconds(&self) -> f64 {
        self.children.iter().map(|c| process_cpu_seconds(c.id())).sum()
    }

    /// Resident memory of member `i`, in KiB.
    pub fn rss_kib(&self, i: usize) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.children[i].id())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        for c in &self.clients {
            loop {
                let ok = match self.system {
                    System::Cairn => client
                        .get(format!("http://{c}/ready"))
                        .send()
                        .await
                        .map(|r| r.status().is_success())
                        .unwrap_or(false),
                    System::Etcd => client
                        .post(format!("http://{c}/v3/kv/range"))
                        .body(r#"{"key":"AA=="}"#)
                        .send()
                        .await
                        .map(|r| r.status().is_success())
                        .unwrap_or(false),
                };
                if ok {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("{} member at {c} did not become ready in 30 s", self.system.name());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }
}

/// CPU seconds process `pid` has used (user + system), from /proc; 0 when unreadable.
pub fn process_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is the 12th, stime the 13th.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// How long members get to exit on SIGTERM before they are killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

impl Drop for Cluster {
    /// SIGTERM first, so that members exit through their own shutdown: a build instrumented
    /// for profile-guided optimisation writes its profile only then (`deploy/pgo-build.sh`).
    fn drop(&mut self) {
        for c in &self.children {
            #[allow(unsafe_code)]
            // SAFETY: kill(2) on the pid of a child we still own (not yet reaped).
            unsafe {
                libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        for c in &mut self.children {
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
