//! The workloads, each expressed for every driver: Cairn's and etcd's HTTP APIs, and (with
//! the `grpc` and `zookeeper` features) etcd's gRPC API and ZooKeeper's client protocol.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Serialize;

use crate::cluster::{Cluster, System};

#[derive(Debug, Clone, Copy)]
pub enum Op {
    Put,
    GetLinearizable,
    GetSerializable,
    /// A linearizable get as of the revision reached after loading the keys.
    GetPastRevision,
    /// Compare-and-set: each client rewrites its own key on the condition that its
    /// mod_revision is the one its last write returned (so every CAS succeeds).
    Cas,
    /// Each client creates new nodes under one parent, create-only (Cairn's POST,
    /// ZooKeeper's create).
    Create,
}

#[derive(Debug, Clone)]
pub struct Workload {
    pub op: Op,
    pub clients: usize,
}

impl Op {
    /// The name `--rows` knows it by.
    pub fn flag(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::GetLinearizable => "get",
            Op::GetSerializable => "serializable",
            Op::GetPastRevision => "past",
            Op::Cas => "cas",
            Op::Create => "create",
        }
    }
}

impl Workload {
    pub fn label(&self) -> String {
        let op = match self.op {
            Op::Put => "put",
            Op::GetLinearizable => "get linearizable",
            Op::GetSerializable => "get serializable",
            Op::GetPastRevision => "get at past revision",
            Op::Cas => "compare-and-set",
            Op::Create => "create",
        };
        format!("{op} c={}", self.clients)
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    pub ops: u64,
    pub errors: u64,
    pub ops_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

pub fn key(i: usize) -> String {
    format!("k{i:06}")
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(1024).tcp_nodelay(true).build().unwrap_or_default()
}

async fn request(
    client: &reqwest::Client,
    system: System,
    endpoint: &str,
    op: Op,
    k: &str,
    value: &[u8],
    past: u64,
) -> bool {
    let req = match (system, op) {
        (System::Cairn, Op::Put) => client.put(format!("http://{endpoint}/v1/nodes/bench/{k}")).body(value.to_vec()),
        (System::Cairn, Op::GetLinearizable) => client.get(format!("http://{endpoint}/v1/nodes/bench/{k}")),
        (System::Cairn, Op::GetPastRevision) => {
            client.get(format!("http://{endpoint}/v1/nodes/bench/{k}?revision={past}"))
        }
        (System::Etcd, Op::GetPastRevision) => client
            .post(format!("http://{endpoint}/v3/kv/range"))
            .body(serde_json::json!({ "key": B64.encode(format!("/bench/{k}")), "revision": past }).to_string()),
        (System::Cairn, Op::GetSerializable) => {
            client.get(format!("http://{endpoint}/v1/nodes/bench/{k}?consistency=serializable"))
        }
        (System::Etcd, Op::Put) => client
            .post(format!("http://{endpoint}/v3/kv/put"))
            .body(serde_json::json!({ "key": B64.encode(format!("/bench/{k}")), "value": B64.encode(value) }).to_string()),
        (System::Etcd, Op::GetLinearizable | Op::GetSerializable) => client.post(format!("http://{endpoint}/v3/kv/range")).body(
            serde_json::json!({ "key": B64.encode(format!("/bench/{k}")), "serializable": matches!(op, Op::GetSerializable) })
                .to_string(),
        ),
        (System::Cairn, Op::Create) => {
            client.post(format!("http://{endpoint}/v1/nodes/bench-create/{k}")).body(value.to_vec())
        }
        (_, Op::Cas) | (System::Etcd, Op::Create) => return false,
    };
    match req.send().await {
        Ok(r) => {
            let ok = r.status().is_success();
            let _ = r.bytes().await;
            ok
        }
        Err(_) => false,
    }
}

/// Writes every key once so reads find them; returns the revision reached.
pub async fn prepare(cluster: &Cluster, keys: usize, value_size: usize) -> anyhow::Result<u64> {
    let client = http();
    let value = vec![b'v'; value_size];
    if cluster.system == System::Cairn {
        for parent in ["bench", "bench-create"] {
            let r = client.put(format!("http://{}/v1/nodes/{parent}", cluster.clients[0])).send().await?;
            anyhow::ensure!(r.status().is_success(), "creating /{parent}: {}", r.status());
        }
    }
    let chunks: Vec<Vec<usize>> =
        (0..keys).collect::<Vec<_>>().chunks(keys.div_ceil(64).max(1)).map(|c| c.to_vec()).collect();
    let mut tasks = Vec::new();
    for chunk in chunks {
        let (client, value, endpoint, system) =
            (client.clone(), value.clone(), cluster.clients[0].clone(), cluster.system);
        tasks.push(tokio::spawn(async move {
            for i in chunk {
                if !request(&client, system, &endpoint, Op::Put, &key(i), &value, 0).await {
                    return false;
                }
            }
            true
        }));
    }
    for t in tasks {
        anyhow::ensure!(t.await?, "{}: loading keys failed", cluster.system.name());
    }
    current_revision(&client, cluster).await
}

/// The revision the cluster has reached (from a read's response header).
/// One compare-and-set of `k` expecting `mod_revision`; the key's new mod_revision.
async fn cas(
    client: &reqwest::Client,
    system: System,
    endpoint: &str,
    k: &str,
    value: &[u8],
    mod_revision: u64,
) -> Option<u64> {
    let req = match system {
        System::Cairn => {
            client.put(format!("http://{endpoint}/v1/nodes/bench/{k}?mod_revision={mod_revision}")).body(value.to_vec())
        }
        System::Etcd => client.post(format!("http://{endpoint}/v3/kv/txn")).body(
            serde_json::json!({
                "compare": [{ "key": B64.encode(format!("/bench/{k}")), "target": "MOD", "result": "EQUAL",
                              "mod_revision": mod_revision.to_string() }],
                "success": [{ "request_put": { "key": B64.encode(format!("/bench/{k}")), "value": B64.encode(value) } }],
            })
            .to_string(),
        ),
    };
    let v: serde_json::Value = req.send().await.ok()?.json().await.ok()?;
    match system {
        System::Cairn => v["node"]["stat"]["mod_revision"].as_u64(),
        System::Etcd if v["succeeded"] == true => v["header"]["revision"].as_str()?.parse().ok(),
        System::Etcd => None,
    }
}

/// Writes `k` once and returns its mod_revision (the starting point of a CAS client).
async fn cas_start(
    client: &reqwest::Client,
    system: System,
    endpoint: &str,
    k: &str,
    value: &[u8],
) -> Option<u64> {
    let req = match system {
        System::Cairn => client.put(format!("http://{endpoint}/v1/nodes/bench/{k}")).body(value.to_vec()),
        System::Etcd => client.post(format!("http://{endpoint}/v3/kv/put")).body(
            serde_json::json!({ "key": B64.encode(format!("/bench/{k}")), "value": B64.encode(value) })
                .to_string(),
        ),
    };
    let v: serde_json::Value = req.send().await.ok()?.json().await.ok()?;
    match system {
        System::Cairn => v["node"]["stat"]["mod_revision"].as_u64(),
        System::Etcd => v["header"]["revision"].as_str()?.parse().ok(),
    }
}

async fn current_revision(client: &reqwest::Client, cluster: &Cluster) -> anyhow::Result<u64> {
    let endpoint = &cluster.clients[0];
    let v: serde_json::Value = match cluster.system {
        System::Cairn => client.get(format!("http://{endpoint}/v1/nodes/bench")).send().await?.json().await?,
        System::Etcd => {
            let body = serde_json::json!({ "key": B64.encode("/bench/k000000") }).to_string();
            client.post(format!("http://{endpoint}/v3/kv/range")).body(body).send().await?.json().await?
        }
    };
    let rev = &v["header"]["revision"];
    // etcd's gateway renders 64-bit numbers as strings.
    rev.as_u64()
        .or_else(|| rev.as_str().and_then(|s| s.parse().ok()))
        .ok_or_else(|| anyhow::anyhow!("{}: no revision in {v}", cluster.system.name()))
}

/// Clients that share one gRPC channel (one HTTP/2 connection) to etcd. etcd's benchmark
/// tool also multiplexes many clients over a few connections; 16 keeps a channel's streams
/// from queueing behind each other while the connection count stays small.
pub const GRPC_CLIENTS_PER_CHANNEL: usize = 16;

/// One client's connection to the system under test.
pub enum Conn {
    /// Cairn, or etcd's JSON gateway; the `reqwest` pool gives each concurrent client its own
    /// HTTP/1.1 connection.
    Http { client: reqwest::Client, system: System, endpoint: String },
    /// Boxed: a gRPC client is several times the size of the others.
    #[cfg(feature = "grpc")]
    Grpc(Box<etcd_client::KvClient>),
    #[cfg(feature = "zookeeper")]
    Zk(zookeeper_client::Client),
}

impl Conn {
    async fn request(&mut self, op: Op, k: &str, value: &[u8], past: u64) -> bool {
        match self {
            Conn::Http { client, system, endpoint } => {
                request(client, *system, endpoint, op, k, value, past).await
            }
            #[cfg(feature = "grpc")]
            Conn::Grpc(kv) => crate::grpc::request(kv, op, k, value, past).await,
            #[cfg(feature = "zookeeper")]
            Conn::Zk(zk) if matches!(op, Op::Create) => crate::zk::create(zk, k, value).await,
            #[cfg(feature = "zookeeper")]
            Conn::Zk(zk) => crate::zk::request(zk, op, k, value).await,
        }
    }

    async fn cas_start(&mut self, k: &str, value: &[u8]) -> Option<u64> {
        match self {
            Conn::Http { client, system, endpoint } => cas_start(client, *system, endpoint, k, value).await,
            #[cfg(feature = "grpc")]
            Conn::Grpc(kv) => crate::grpc::cas_start(kv, k, value).await,
            #[cfg(feature = "zookeeper")]
            Conn::Zk(zk) => crate::zk::cas_start(zk, k, value).await,
        }
    }

    async fn cas(&mut self, k: &str, value: &[u8], expected: u64) -> Option<u64> {
        match self {
            Conn::Http { client, system, endpoint } => {
                cas(client, *system, endpoint, k, value, expected).await
            }
            #[cfg(feature = "grpc")]
            Conn::Grpc(kv) => crate::grpc::cas(kv, k, value, expected).await,
            #[cfg(feature = "zookeeper")]
            Conn::Zk(zk) => crate::zk::cas(zk, k, value, expected).await,
        }
    }
}

/// HTTP connections for `clients` clients, client `c` on member `c % members`.
pub fn http_conns(cluster: &Cluster, clients: usize) -> Vec<Conn> {
    let client = http();
    (0..clients)
        .map(|c| Conn::Http {
            client: client.clone(),
            system: cluster.system,
            endpoint: cluster.clients[c % cluster.clients.len()].clone(),
        })
        .collect()
}

/// Runs `w` over HTTP against `cluster` (the watch and lease suites' put load).
pub async fn run(
    cluster: &Cluster,
    w: &Workload,
    duration: Duration,
    keys: usize,
    value_size: usize,
    past: u64,
) -> anyhow::Result<Outcome> {
    measure(http_conns(cluster, w.clients), w.op, duration, keys, value_size, past).await
}

/// One task per connection runs `op` back to back for `duration`; throughput and latency
/// percentiles over the requests that succeeded.
pub async fn measure(
    conns: Vec<Conn>,
    op: Op,
    duration: Duration,
    keys: usize,
    value_size: usize,
    past: u64,
) -> anyhow::Result<Outcome> {
    let stop = Arc::new(AtomicBool::new(false));
    let value = vec![b'x'; value_size];
    let mut tasks = Vec::new();
    for (c, mut conn) in conns.into_iter().enumerate() {
        let (value, stop) = (value.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            if let Op::Cas = op {
                let k = format!("cas-{c}");
                let mut rev = conn.cas_start(&k, &value).await;
                while !stop.load(Ordering::Relaxed) {
                    let Some(expected) = rev else {
                        errors += 1;
                        rev = conn.cas_start(&k, &value).await;
                        continue;
                    };
                    let t = Instant::now();
                    rev = conn.cas(&k, &value, expected).await;
                    match rev {
                        Some(_) => lat.push(t.elapsed().as_micros() as u32),
                        None => errors += 1,
                    }
                }
                return (lat, errors);
            }
            let mut i = c.wrapping_mul(7919);
            let mut created = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let k = if let Op::Create = op {
                    created += 1;
                    format!("c{c}-{created}")
                } else {
                    i = (i + 1) % keys;
                    key(i)
                };
                let t = Instant::now();
                if conn.request(op, &k, &value, past).await {
                    lat.push(t.elapsed().as_micros() as u32);
                } else {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    let start = Instant::now();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await?;
        all.extend(lat);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.is_empty() {
            return 0.0;
        }
        let idx = ((all.len() as f64 * p).ceil() as usize).saturating_sub(1).min(all.len() - 1);
        all[idx] as f64 / 1000.0
    };
    Ok(Outcome {
        ops: all.len() as u64,
        errors,
        ops_per_sec: all.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        p999_ms: pct(0.999),
    })
}
