//! etcd through its native gRPC API (the `etcd-client` crate), the way its own Go clients
//! and benchmark tool talk to it.

use anyhow::Context;
use etcd_client::{Client, Compare, CompareOp, GetOptions, KvClient, Txn, TxnOp};

use crate::workload::{Op, GRPC_CLIENTS_PER_CHANNEL as CLIENTS_PER_CHANNEL};

/// One KV handle per client: client `c` talks to member `c % members`, like the HTTP
/// clients, and the clients of a member share its channels, `CLIENTS_PER_CHANNEL` each.
pub async fn connect(endpoints: &[String], clients: usize) -> anyhow::Result<Vec<KvClient>> {
    let members = endpoints.len().max(1);
    let mut channels: Vec<Vec<KvClient>> = vec![Vec::new(); members];
    let mut out = Vec::with_capacity(clients);
    for c in 0..clients {
        let (m, nth) = (c % members, c / members);
        if nth % CLIENTS_PER_CHANNEL == 0 {
            let url = format!("http://{}", endpoints[m]);
            let client = Client::connect([url.as_str()], None)
                .await
                .with_context(|| format!("etcd gRPC connection to {url}"))?;
            channels[m].push(client.kv_client());
        }
        let kv = channels[m].last().cloned().context("no channel")?;
        out.push(kv);
    }
    Ok(out)
}

fn key(k: &str) -> String {
    format!("/bench/{k}")
}

/// One request of a plain row; `false` for an error.
pub async fn request(kv: &mut KvClient, op: Op, k: &str, value: &[u8], past: u64) -> bool {
    match op {
        Op::Put => kv.put(key(k), value, None).await.is_ok(),
        Op::GetLinearizable => kv.get(key(k), None).await.is_ok(),
        Op::GetSerializable => kv.get(key(k), Some(GetOptions::new().with_serializable())).await.is_ok(),
        Op::GetPastRevision => {
            let rev = i64::try_from(past).unwrap_or(i64::MAX);
            kv.get(key(k), Some(GetOptions::new().with_revision(rev))).await.is_ok()
        }
        Op::Cas | Op::Create => false,
    }
}

/// Writes `k` once; its mod_revision (the revision of that write).
pub async fn cas_start(kv: &mut KvClient, k: &str, value: &[u8]) -> Option<u64> {
    let r = kv.put(key(k), value, None).await.ok()?;
    u64::try_from(r.header()?.revision()).ok()
}

/// A transaction: put if the key's mod_revision is still `mod_revision` (what the JSON
/// driver sends to /v3/kv/txn); the new mod_revision when it succeeded.
pub async fn cas(kv: &mut KvClient, k: &str, value: &[u8], mod_revision: u64) -> Option<u64> {
    let expected = i64::try_from(mod_revision).ok()?;
    let txn = Txn::new()
        .when([Compare::mod_revision(key(k), CompareOp::Equal, expected)])
        .and_then([TxnOp::put(key(k), value, None)]);
    let r = kv.txn(txn).await.ok()?;
    if !r.succeeded() {
        return None;
    }
    u64::try_from(r.header()?.revision()).ok()
}
