//! Peer traffic: Raft RPCs as HTTP POSTs with binary bodies over pooled keep-alive
//! connections (reqwest keeps one pool per peer host). Every request names the node it is
//! meant for, and a member refuses traffic for another id, so a stale address book cannot
//! make two members mix their logs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{decode, encode, Node, NodeId, Raft, TypeConfig};

/// Header naming the node id a peer request is meant for.
pub const TARGET_HEADER: &str = "x-cairn-target";
/// Largest peer request body: above the log reader's batch cap and the snapshot chunk size.
pub const PEER_BODY_LIMIT: usize = 64 << 20;

#[derive(Clone)]
pub struct PeerNetwork {
    client: reqwest::Client,
    /// Addresses to dial instead of the advertised ones (NAT, or a fault-injection proxy).
    routes: Arc<BTreeMap<NodeId, String>>,
}

impl PeerNetwork {
    pub fn new(routes: BTreeMap<NodeId, String>) -> Self {
        PeerNetwork { client: peer_client(), routes: Arc::new(routes) }
    }

    /// The same routes with a pool of connections of its own. A pooled connection is
    /// served by the runtime that opened it, so traffic from two runtimes keeps apart.
    pub fn with_own_connections(&self) -> Self {
        PeerNetwork { client: peer_client(), routes: self.routes.clone() }
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The address to dial for member `id`, which advertises `advertised`.
    pub fn dial<'a>(&'a self, id: NodeId, advertised: &'a str) -> &'a str {
        self.routes.get(&id).map_or(advertised, String::as_str)
    }
}

fn peer_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(16)
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_millis(500))
        .build()
        .unwrap_or_default()
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerClient;

    /// Cheap: openraft calls this for every heartbeat round of a read index.
    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerClient {
        PeerClient {
            client: self.client.clone(),
            target,
            base: format!("http://{}", self.dial(target, &node.addr)),
        }
    }
}

pub struct PeerClient {
    client: reqwest::Client,
    target: NodeId,
    base: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct PeerError(String);

impl PeerClient {
    async fn call<Req, Resp, E>(
        &self,
        route: &str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, Node, E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let body = encode(req).map_err(|e| RPCError::Network(NetworkError::new(&*e)))?;
        let sent = self
            .client
            .post(format!("{}/raft/{route}", self.base))
            .header(TARGET_HEADER, self.target.to_string())
            .timeout(option.hard_ttl())
            .body(body)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) if e.is_connect() || e.is_timeout() => {
                return Err(RPCError::Unreachable(Unreachable::new(&e)))
            }
            Err(e) => return Err(RPCError::Network(NetworkError::new(&e))),
        };
        if resp.status() != StatusCode::OK {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            let e = PeerError(format!("peer {} answered {status}: {text}", self.target));
            return Err(RPCError::Unreachable(Unreachable::new(&e)));
        }
        let bytes = resp.bytes().await.map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let result: Result<Resp, E> =
            decode(&bytes).map_err(|e| RPCError::Network(NetworkError::new(&*e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.call("append", &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Node, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call("snapshot", &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.call("vote", &rpc, &option).await
    }
}

#[derive(Clone)]
struct PeerState {
    raft: Raft,
    id: NodeId,
}

/// A peer request refused: the status and why.
pub type Refusal = (StatusCode, String);

/// Refuses a request meant for another member (a stale address), before decoding it.
/// Every request on the peer listener goes through it, Raft's and the server's alike.
pub fn check_target(id: NodeId, headers: &HeaderMap) -> Result<(), Refusal> {
    let target =
        headers.get(TARGET_HEADER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<NodeId>().ok());
    match target {
        Some(t) if t == id => Ok(()),
        Some(t) => Err((StatusCode::MISDIRECTED_REQUEST, format!("this is member {id}, not {t}"))),
        None => Err((StatusCode::BAD_REQUEST, format!("missing {TARGET_HEADER} header"))),
    }
}

/// Encodes a peer answer.
pub fn reply<T: Serialize>(value: &T) -> Result<Vec<u8>, Refusal> {
    encode(value).map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// Decodes a peer request body.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Refusal> {
    decode(body).map_err(|e| (StatusCode::BAD_REQUEST, format!("undecodable peer message: {e}")))
}

async fn append(
    State(s): State<PeerState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Vec<u8>, (StatusCode, String)> {
    check_target(s.id, &headers)?;
    reply(&s.raft.append_entries(parse(&body)?).await)
}

async fn vote(
    State(s): State<PeerState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Vec<u8>, (StatusCode, String)> {
    check_target(s.id, &headers)?;
    reply(&s.raft.vote(parse(&body)?).await)
}

async fn snapshot(
    State(s): State<PeerState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Vec<u8>, (StatusCode, String)> {
    check_target(s.id, &headers)?;
    reply(&s.raft.install_snapshot(parse(&body)?).await)
}

/// The Raft RPC routes of a member's peer listener.
pub fn peer_routes(raft: Raft, id: NodeId) -> Router {
    Router::new()
        .route("/raft/append", post(append))
        .route("/raft/vote", post(vote))
        .route("/raft/snapshot", post(snapshot))
        .layer(DefaultBodyLimit::max(PEER_BODY_LIMIT))
        .with_state(PeerState { raft, id })
}
