//! The workloads, each expressed for both systems' HTTP APIs.

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
}

#[derive(Debug, Clone)]
pub struct Workload {
    pub op: Op,
    pub clients: usize,
}

impl Workload {
    pub fn label(&self) -> String {
        let op = match self.op {
            Op::Put => "put",
            Op::GetLinearizable => "get linearizable",
            Op::GetSerializable => "get serializable",
            Op::GetPastRevision => "get at past revision",
            Op::Cas => "compare-and-set",
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

fn key(i: usize) -> String {
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
        (_, Op::Cas) => return false,
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
        let r = client.put(format!("http://{}/v1/nodes/bench", cluster.clients[0])).send().await?;
        anyhow::ensure!(r.status().is_success(), "creating /bench: {}", r.status());
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

pub async fn run(
    cluster: &Cluster,
    w: &Workload,
    duration: Duration,
    keys: usize,
    value_size: usize,
    past: u64,
) -> anyhow::Result<Outcome> {
    let stop = Arc::new(AtomicBool::new(false));
    let client = http();
    let value = vec![b'x'; value_size];
    let mut tasks = Vec::new();
    for c in 0..w.clients {
        let endpoint = cluster.clients[c % cluster.clients.len()].clone();
        let (client, value, stop, system, op) =
            (client.clone(), value.clone(), stop.clone(), cluster.system, w.op);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            if let Op::Cas = op {
                let k = format!("cas-{c}");
                let mut rev = cas_start(&client, system, &endpoint, &k, &value).await;
                while !stop.load(Ordering::Relaxed) {
                    let Some(expected) = rev else {
                        errors += 1;
                        rev = cas_start(&client, system, &endpoint, &k, &value).await;
                        continue;
                    };
                    let t = Instant::now();
                    rev = cas(&client, system, &endpoint, &k, &value, expected).await;
                    match rev {
                        Some(_) => lat.push(t.elapsed().as_micros() as u32),
                        None => errors += 1,
                    }
                }
                return (lat, errors);
            }
            let mut i = c.wrapping_mul(7919);
            while !stop.load(Ordering::Relaxed) {
                i = (i + 1) % keys;
                let t = Instant::now();
                if request(&client, system, &endpoint, op, &key(i), &value, past).await {
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
