//! ZooKeeper as a reference: a three-member ensemble of Debian's `zookeeper` on loopback,
//! started with `java` directly (no wrapper script, so killing the child ends the server),
//! and the client calls the rows map to.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zookeeper_client as zk;

use crate::workload::Op;

/// How the bench finds ZooKeeper (Debian's layout by default).
#[derive(Debug, Clone)]
pub struct Install {
    pub java: PathBuf,
    pub classpath: String,
}

impl Install {
    /// Debian's jar, plus slf4j-simple (a dependency of the package) so the servers' warnings
    /// reach their logs instead of being dropped.
    pub fn debian(java: PathBuf, jar: &Path) -> Install {
        let mut classpath = jar.display().to_string();
        let simple = Path::new("/usr/share/java/slf4j-simple.jar");
        if simple.exists() {
            classpath.push(':');
            classpath.push_str(&simple.display().to_string());
        }
        Install { java, classpath }
    }
}

/// A running ensemble; dropping it kills the servers.
pub struct Ensemble {
    pub clients: Vec<String>,
    /// As the servers report it (`srvr`), e.g. "3.8.0".
    pub version: String,
    children: Vec<Child>,
}

impl Ensemble {
    /// CPU seconds all servers together have used.
    pub fn total_cpu_seconds(&self) -> f64 {
        self.children.iter().map(|c| crate::cluster::process_cpu_seconds(c.id())).sum()
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Sends a four-letter command and returns the answer (the server closes after it).
async fn four_letter(addr: &str, cmd: &str) -> Option<String> {
    let mut s = tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr))
        .await
        .ok()?
        .ok()?;
    s.write_all(cmd.as_bytes()).await.ok()?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(2), s.read_to_string(&mut out)).await.ok()?.ok()?;
    Some(out)
}

impl Ensemble {
    pub async fn start(install: &Install, dir: &Path, members: usize) -> anyhow::Result<Ensemble> {
        let mut clients = Vec::new();
        let mut servers = Vec::new();
        for i in 0..members {
            clients.push(free_port()?);
            servers.push(format!("server.{}=127.0.0.1:{}:{}", i + 1, free_port()?, free_port()?));
        }
        let mut ensemble = Ensemble {
            clients: clients.iter().map(|p| format!("127.0.0.1:{p}")).collect(),
            version: String::new(),
            children: Vec::new(),
        };
        for (i, port) in clients.iter().enumerate() {
            let home = dir.join(format!("zookeeper-{members}-{}", i + 1));
            let data = home.join("data");
            std::fs::create_dir_all(&data).context("creating ZooKeeper's data dir")?;
            std::fs::write(data.join("myid"), format!("{}\n", i + 1))?;
            // forceSync=yes is the default; it is written out because the comparison rests on it
            // (every commit fsynced, as Cairn and etcd do). The admin server is off because three
            // of them would all want port 8080.
            let cfg = format!(
                "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={}\n\
                 clientPortAddress=127.0.0.1\nmaxClientCnxns=0\nforceSync=yes\n\
                 admin.enableServer=false\n4lw.commands.whitelist=srvr\n{}\n",
                data.display(),
                port,
                servers.join("\n")
            );
            let cfg_path = home.join("zoo.cfg");
            std::fs::write(&cfg_path, cfg)?;
            let log = std::fs::File::create(dir.join(format!("zookeeper-{members}-{}.log", i + 1)))?;
            let mut cmd = Command::new(&install.java);
            cmd.arg("-Xmx1000m")
                .arg("-cp")
                .arg(&install.classpath)
                .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
                .arg(format!("-Dzookeeper.log.dir={}", home.display()))
                .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
                .arg(&cfg_path)
                .stdout(log.try_clone()?)
                .stderr(log)
                .stdin(Stdio::null());
            let child = cmd.spawn().with_context(|| format!("starting {}", install.java.display()))?;
            ensemble.children.push(child);
        }
        ensemble.wait_ready().await?;
        Ok(ensemble)
    }

    /// Waits until every server serves (it says `Mode: leader` or `follower`), and reads the
    /// version the servers report.
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        // Three JVMs starting on a small machine take a while.
        let deadline = Instant::now() + Duration::from_secs(90);
        for (i, addr) in self.clients.iter().enumerate() {
            loop {
                if let Some(Ok(Some(status))) = self.children.get_mut(i).map(|c| c.try_wait()) {
                    bail!(
                        "ZooKeeper server {} exited ({status}); see its log in the bench's temp dir",
                        i + 1
                    );
                }
                let answer = four_letter(addr, "srvr").await.unwrap_or_default();
                if answer.contains("Mode: leader") || answer.contains("Mode: follower") {
                    if let Some(v) = answer.lines().find_map(|l| l.strip_prefix("Zookeeper version: ")) {
                        // "3.8.0-debian--1, built on ..." -> "3.8.0"
                        self.version = v.split([',', '-']).next().unwrap_or(v).trim().to_owned();
                    }
                    break;
                }
                if Instant::now() > deadline {
                    bail!("ZooKeeper server at {addr} did not join a quorum in 90 s");
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        Ok(())
    }
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn session(addr: &str) -> anyhow::Result<zk::Client> {
    zk::Client::connector()
        .with_session_timeout(Duration::from_secs(30))
        .with_connection_timeout(Duration::from_secs(10))
        .connect(addr)
        .await
        .with_context(|| format!("ZooKeeper session to {addr}"))
}

/// One session per client, client `c` on server `c % members`: a session orders its own
/// requests, so sharing one between clients would queue reads behind other clients' writes.
pub async fn connect(servers: &[String], clients: usize) -> anyhow::Result<Vec<zk::Client>> {
    let mut pending = Vec::new();
    for c in 0..clients {
        let addr = servers[c % servers.len()].clone();
        pending.push(tokio::spawn(async move { session(&addr).await }));
    }
    let mut out = Vec::new();
    for p in pending {
        out.push(p.await??);
    }
    Ok(out)
}

fn create_options() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

/// Creates `/bench`, `/bench-create` and `keys` children of `/bench` with `value_size`-byte
/// values.
pub async fn prepare(ensemble: &Ensemble, keys: usize, value_size: usize) -> anyhow::Result<()> {
    let client = session(&ensemble.clients[0]).await?;
    for p in ["/bench", "/bench-create"] {
        match client.create(p, b"", &create_options()).await {
            Ok(_) | Err(zk::Error::NodeExists) => {}
            Err(e) => bail!("ZooKeeper: creating {p}: {e}"),
        }
    }
    let value = vec![b'v'; value_size];
    let mut tasks = Vec::new();
    for t in 0..64 {
        let (client, value) = (client.clone(), value.clone());
        tasks.push(tokio::spawn(async move {
            for i in (t..keys).step_by(64) {
                match client
                    .create(&format!("/bench/{}", crate::workload::key(i)), &value, &create_options())
                    .await
                {
                    Ok(_) | Err(zk::Error::NodeExists) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        }));
    }
    for t in tasks {
        t.await?.context("ZooKeeper: loading keys")?;
    }
    Ok(())
}

/// One request of a plain row; `false` for an error or a row ZooKeeper has no call for.
pub async fn request(client: &zk::Client, op: Op, k: &str, value: &[u8]) -> bool {
    let path = format!("/bench/{k}");
    match op {
        Op::Put => client.set_data(&path, value, None).await.is_ok(),
        Op::GetSerializable => client.get_data(&path).await.is_ok(),
        // sync makes the server catch up with the leader first; the closest ZooKeeper has to
        // a linearizable read.
        Op::GetLinearizable => client.sync(&path).await.is_ok() && client.get_data(&path).await.is_ok(),
        Op::GetPastRevision | Op::Cas | Op::Create => false,
    }
}

/// Sets `/bench/{k}` unconditionally (creating it if missing); its version.
pub async fn cas_start(client: &zk::Client, k: &str, value: &[u8]) -> Option<u64> {
    let path = format!("/bench/{k}");
    match client.set_data(&path, value, None).await {
        Ok(stat) => u64::try_from(stat.version).ok(),
        Err(zk::Error::NoNode) => client.create(&path, value, &create_options()).await.ok().map(|_| 0),
        Err(_) => None,
    }
}

/// setData conditional on the version: ZooKeeper's compare-and-set.
pub async fn cas(client: &zk::Client, k: &str, value: &[u8], version: u64) -> Option<u64> {
    let version = i32::try_from(version).ok()?;
    let stat = client.set_data(&format!("/bench/{k}"), value, Some(version)).await.ok()?;
    u64::try_from(stat.version).ok()
}

pub async fn create(client: &zk::Client, name: &str, value: &[u8]) -> bool {
    client.create(&format!("/bench-create/{name}"), value, &create_options()).await.is_ok()
}
