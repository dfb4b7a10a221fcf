//! The workloads, each expressed for every driver: Cairn's and etcd's HTTP APIs, and (with
//! the `grpc` and `zookeeper` features) etcd's gRPC API and ZooKeeper's client protocol.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::HeaderValue;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
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
    /// CPU time the system's members spent per successful request, all members together
    /// (user + system, from /proc), in microseconds: what a request costs the machine.
    pub cpu_us_per_op: f64,
}

pub fn key(i: usize) -> String {
    format!("k{i:06}")
}

/// One HTTP/1.1 connection driven by hyper directly. The load generator shares the
/// machine with the servers, and reqwest's per-request work (URL parsing, the pool,
/// header maps) cost it about as much CPU as a member spent answering, which the servers
/// then lacked; a bare connection with prepared paths costs a fraction of that.
pub struct H1 {
    endpoint: String,
    host: HeaderValue,
    send: Option<SendRequest<Full<Bytes>>>,
}

impl H1 {
    pub async fn connect(endpoint: &str) -> anyhow::Result<H1> {
        let host = HeaderValue::from_str(endpoint).context("endpoint as a Host header")?;
        let mut conn = H1 { endpoint: endpoint.to_owned(), host, send: None };
        conn.reconnect().await?;
        Ok(conn)
    }

    async fn reconnect(&mut self) -> anyhow::Result<()> {
        self.send = None;
        let tcp = tokio::net::TcpStream::connect(&self.endpoint)
            .await
            .with_context(|| format!("connecting to {}", self.endpoint))?;
        tcp.set_nodelay(true)?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(conn);
        self.send = Some(send);
        Ok(())
    }

    /// One request; the status and body, or `None` when the connection failed (the next
    /// call reconnects).
    pub async fn call(&mut self, method: Method, path: &str, body: Bytes) -> Option<(StatusCode, Bytes)> {
        if self.send.as_ref().is_none_or(|s| s.is_closed()) && self.reconnect().await.is_err() {
            return None;
        }
        let send = self.send.as_mut()?;
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, self.host.clone())
            .body(Full::new(body))
            .ok()?;
        let answer = async {
            send.ready().await?;
            let resp = send.send_request(req).await?;
            let status = resp.status();
            Ok::<_, hyper::Error>((status, resp.into_body().collect().await?.to_bytes()))
        };
        match answer.await {
            Ok(r) => Some(r),
            Err(_) => {
                self.send = None;
                None
            }
        }
    }

    async fn json(&mut self, method: Method, path: &str, body: Bytes) -> Option<serde_json::Value> {
        match self.call(method, path, body).await? {
            (status, bytes) if status.is_success() => serde_json::from_slice(&bytes).ok(),
            _ => None,
        }
    }
}

fn etcd_key(k: &str) -> String {
    B64.encode(format!("/bench/{k}"))
}

/// The request of one plain operation against `system`: method, path and body.
fn plain_request(
    system: System,
    op: Op,
    k: &str,
    value: &[u8],
    past: u64,
) -> Option<(Method, String, Bytes)> {
    let json = |v: serde_json::Value| Bytes::from(v.to_string());
    Some(match (system, op) {
        (System::Cairn, Op::Put) => {
            (Method::PUT, format!("/v1/nodes/bench/{k}"), Bytes::copy_from_slice(value))
        }
        (System::Cairn, Op::GetLinearizable) => (Method::GET, format!("/v1/nodes/bench/{k}"), Bytes::new()),
        (System::Cairn, Op::GetPastRevision) => {
            (Method::GET, format!("/v1/nodes/bench/{k}?revision={past}"), Bytes::new())
        }
        (System::Cairn, Op::GetSerializable) => {
            (Method::GET, format!("/v1/nodes/bench/{k}?consistency=serializable"), Bytes::new())
        }
        (System::Cairn, Op::Create) => {
            (Method::POST, format!("/v1/nodes/bench-create/{k}"), Bytes::copy_from_slice(value))
        }
        (System::Etcd, Op::GetPastRevision) => (
            Method::POST,
            "/v3/kv/range".into(),
            json(serde_json::json!({ "key": etcd_key(k), "revision": past })),
        ),
        (System::Etcd, Op::Put) => (
            Method::POST,
            "/v3/kv/put".into(),
            json(serde_json::json!({ "key": etcd_key(k), "value": B64.encode(value) })),
        ),
        (System::Etcd, Op::GetLinearizable | Op::GetSerializable) => (
            Method::POST,
            "/v3/kv/range".into(),
            json(
                serde_json::json!({ "key": etcd_key(k), "serializable": matches!(op, Op::GetSerializable) }),
            ),
        ),
        (_, Op::Cas) | (System::Etcd, Op::Create) => return None,
    })
}

async fn request(conn: &mut H1, system: System, op: Op, k: &str, value: &[u8], past: u64) -> bool {
    let Some((method, path, body)) = plain_request(system, op, k, value, past) else { return false };
    matches!(conn.call(method, &path, body).await, Some((status, _)) if status.is_success())
}

/// Writes every key once so reads find them; returns the revision reached.
pub async fn prepare(cluster: &Cluster, keys: usize, value_size: usize) -> anyhow::Result<u64> {
    let endpoint = &cluster.clients[0];
    let value = vec![b'v'; value_size];
    if cluster.system == System::Cairn {
        let mut conn = H1::connect(endpoint).await?;
        for parent in ["bench", "bench-create"] {
            let r = conn.call(Method::PUT, &format!("/v1/nodes/{parent}"), Bytes::new()).await;
            anyhow::ensure!(
                r.as_ref().is_some_and(|(s, _)| s.is_success()),
                "creating /{parent}: {:?}",
                r.map(|(s, _)| s)
            );
        }
    }
    let chunks: Vec<Vec<usize>> =
        (0..keys).collect::<Vec<_>>().chunks(keys.div_ceil(64).max(1)).map(|c| c.to_vec()).collect();
    let mut tasks = Vec::new();
    for chunk in chunks {
        let mut conn = H1::connect(endpoint).await?;
        let (value, system) = (value.clone(), cluster.system);
        tasks.push(tokio::spawn(async move {
            for i in chunk {
                if !request(&mut conn, system, Op::Put, &key(i), &value, 0).await {
                    return false;
                }
            }
            true
        }));
    }
    for t in tasks {
        anyhow::ensure!(t.await?, "{}: loading keys failed", cluster.system.name());
    }
    current_revision(cluster).await
}

/// One compare-and-set of `k` expecting `mod_revision`; the key's new mod_revision.
async fn cas(conn: &mut H1, system: System, k: &str, value: &[u8], mod_revision: u64) -> Option<u64> {
    match system {
        System::Cairn => {
            let path = format!("/v1/nodes/bench/{k}?mod_revision={mod_revision}");
            let v = conn.json(Method::PUT, &path, Bytes::copy_from_slice(value)).await?;
            v["node"]["stat"]["mod_revision"].as_u64()
        }
        System::Etcd => {
            let body = serde_json::json!({
                "compare": [{ "key": etcd_key(k), "target": "MOD", "result": "EQUAL",
                              "mod_revision": mod_revision.to_string() }],
                "success": [{ "request_put": { "key": etcd_key(k), "value": B64.encode(value) } }],
            });
            let v = conn.json(Method::POST, "/v3/kv/txn", Bytes::from(body.to_string())).await?;
            if v["succeeded"] != true {
                return None;
            }
            etcd_revision(&v)
        }
    }
}

/// Writes `k` once and returns its mod_revision (the starting point of a CAS client).
async fn cas_start(conn: &mut H1, system: System, k: &str, value: &[u8]) -> Option<u64> {
    let (method, path, body) = plain_request(system, Op::Put, k, value, 0)?;
    let v = conn.json(method, &path, body).await?;
    match system {
        System::Cairn => v["node"]["stat"]["mod_revision"].as_u64(),
        System::Etcd => etcd_revision(&v),
    }
}

/// The revision in an answer of etcd's gateway, which renders 64-bit numbers as strings.
fn etcd_revision(v: &serde_json::Value) -> Option<u64> {
    let rev = &v["header"]["revision"];
    rev.as_u64().or_else(|| rev.as_str().and_then(|s| s.parse().ok()))
}

/// The revision the cluster has reached (from a read's response header).
async fn current_revision(cluster: &Cluster) -> anyhow::Result<u64> {
    let mut conn = H1::connect(&cluster.clients[0]).await?;
    let v = match cluster.system {
        System::Cairn => conn.json(Method::GET, "/v1/nodes/bench", Bytes::new()).await,
        System::Etcd => {
            let body = serde_json::json!({ "key": etcd_key("k000000") }).to_string();
            conn.json(Method::POST, "/v3/kv/range", Bytes::from(body)).await
        }
    };
    let v = v.with_context(|| format!("{}: reading the current revision failed", cluster.system.name()))?;
    match cluster.system {
        System::Cairn => v["header"]["revision"].as_u64(),
        System::Etcd => etcd_revision(&v),
    }
    .ok_or_else(|| anyhow::anyhow!("{}: no revision in {v}", cluster.system.name()))
}

/// Clients that share one gRPC channel (one HTTP/2 connection) to etcd. etcd's benchmark
/// tool also multiplexes many clients over a few connections; 16 keeps a channel's streams
/// from queueing behind each other while the connection count stays small.
pub const GRPC_CLIENTS_PER_CHANNEL: usize = 16;

/// One client's connection to the system under test.
pub enum Conn {
    /// Cairn, or etcd's JSON gateway: one HTTP/1.1 connection per client.
    Http { conn: H1, system: System },
    /// Boxed: a gRPC client is several times the size of the others.
    #[cfg(feature = "grpc")]
    Grpc(Box<etcd_client::KvClient>),
    #[cfg(feature = "zookeeper")]
    Zk(zookeeper_client::Client),
}

impl Conn {
    async fn request(&mut self, op: Op, k: &str, value: &[u8], past: u64) -> bool {
        match self {
            Conn::Http { conn, system } => request(conn, *system, op, k, value, past).await,
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
            Conn::Http { conn, system } => cas_start(conn, *system, k, value).await,
            #[cfg(feature = "grpc")]
            Conn::Grpc(kv) => crate::grpc::cas_start(kv, k, value).await,
            #[cfg(feature = "zookeeper")]
            Conn::Zk(zk) => crate::zk::cas_start(zk, k, value).await,
        }
    }

    async fn cas(&mut self, k: &str, value: &[u8], expected: u64) -> Option<u64> {
        match self {
            Conn::Http { conn, system } => cas(conn, *system, k, value, expected).await,
            #[cfg(feature = "grpc")]
            Conn::Grpc(kv) => crate::grpc::cas(kv, k, value, expected).await,
            #[cfg(feature = "zookeeper")]
            Conn::Zk(zk) => crate::zk::cas(zk, k, value, expected).await,
        }
    }
}

/// HTTP connections for `clients` clients, client `c` on member `c % members`.
pub async fn http_conns(cluster: &Cluster, clients: usize) -> anyhow::Result<Vec<Conn>> {
    let mut conns = Vec::with_capacity(clients);
    for c in 0..clients {
        let conn = H1::connect(&cluster.clients[c % cluster.clients.len()]).await?;
        conns.push(Conn::Http { conn, system: cluster.system });
    }
    Ok(conns)
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
    measure(http_conns(cluster, w.clients).await?, w.op, duration, keys, value_size, past, 0).await
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
    round: usize,
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
                    // New names every round too: a name made in an earlier round exists.
                    format!("r{round}c{c}-{created}")
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
        cpu_us_per_op: 0.0,
    })
}
