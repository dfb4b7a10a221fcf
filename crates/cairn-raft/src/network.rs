//! Peer traffic: Raft RPCs as HTTP POSTs with binary bodies over pooled keep-alive
//! connections (one pool per peer host). Every request names the node it is meant for, and
//! a member refuses traffic for another id, so a stale address book cannot make two members
//! mix their logs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Request, StatusCode, Uri};
use axum::routing::post;
use axum::Router;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
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

/// hyper's own pooled client rather than reqwest: members only ever POST bytes to each
/// other, and reqwest's per-request work on top (URL parsing both ways, redirect and retry
/// layers, proxy matching) was ~4% of a leader's CPU under puts.
type HttpClient = hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>;

/// Why a peer request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// No connection could be made: the request was not sent.
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Sent (perhaps), but the exchange failed.
    #[error("{0}")]
    Failed(String),
}

#[derive(Clone)]
pub struct PeerNetwork {
    client: HttpClient,
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

    /// The address to dial for member `id`, which advertises `advertised`.
    pub fn dial<'a>(&'a self, id: NodeId, advertised: &'a str) -> &'a str {
        self.routes.get(&id).map_or(advertised, String::as_str)
    }

    /// The URI of `path` on member `id`'s peer listener.
    pub fn uri(&self, id: NodeId, advertised: &str, path: &str) -> Result<Uri, PostError> {
        let addr = self.dial(id, advertised);
        format!("http://{addr}{path}")
            .parse()
            .map_err(|e| PostError::Connect(format!("bad peer address {addr}: {e}")))
    }

    /// POSTs `body` to `path` on member `id`'s peer listener (see [`Self::post`]).
    pub async fn post_path(
        &self,
        id: NodeId,
        advertised: &str,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), PostError> {
        self.post(self.uri(id, advertised, path)?, id, body, timeout).await
    }

    /// POSTs `body` to `uri` on member `target`'s peer listener: the answer's status and body.
    pub async fn post(
        &self,
        uri: Uri,
        target: NodeId,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), PostError> {
        let request = Request::post(uri)
            .header(TARGET_HEADER, target)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| PostError::Failed(e.to_string()))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                if e.is_connect() {
                    PostError::Connect(e.to_string())
                } else {
                    PostError::Failed(e.to_string())
                }
            })?;
            let status = response.status();
            let body = response.into_body().collect().await.map_err(|e| PostError::Failed(e.to_string()))?;
            Ok((status, body.to_bytes()))
        };
        tokio::time::timeout(timeout, exchange).await.map_err(|_| PostError::Timeout(timeout))?
    }
}

fn peer_client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_millis(500)));
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_timer(TokioTimer::new())
        .pool_max_idle_per_host(16)
        .build(connector)
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerClient;

    /// Cheap: openraft calls this for every heartbeat round of a read index.
    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerClient {
        PeerClient {
            network: self.clone(),
            target,
            addr: node.addr.clone(),
            append: self.uri(target, &node.addr, "/raft/append"),
        }
    }
}

pub struct PeerClient {
    network: PeerNetwork,
    target: NodeId,
    addr: String,
    /// Made once: a replication stream keeps its client for every append it sends.
    append: Result<Uri, PostError>,
}

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
        let (network, timeout) = (&self.network, option.hard_ttl());
        let sent = match (route, &self.append) {
            ("append", Ok(uri)) => network.post(uri.clone(), self.target, body, timeout).await,
            _ => network.post_path(self.target, &self.addr, &format!("/raft/{route}"), body, timeout).await,
        };
        let (status, bytes) = match sent {
            Ok(answer) => answer,
            Err(e @ PostError::Connect(_)) => return Err(RPCError::Unreachable(Unreachable::new(&e))),
            // A late answer is a slow member, not a gone one. openraft sends an unreachable
            // member nothing for 500 ms, heartbeats included, and an append may take only the
            // heartbeat interval (100 ms): one slow sync or busy moment on a follower held back
            // every commit that needed it, and on both followers at once stopped writes for
            // half a second. As a network error openraft tries again at its next heartbeat or
            // entry.
            Err(e) => return Err(RPCError::Network(NetworkError::new(&e))),
        };
        if status != StatusCode::OK {
            let e = PostError::Failed(format!(
                "peer {} answered {status}: {}",
                self.target,
                String::from_utf8_lossy(&bytes)
            ));
            return Err(RPCError::Unreachable(Unreachable::new(&e)));
        }
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
