//! Member-to-member requests above Raft: a follower hands writes, read-index requests and
//! membership changes to the leader. They ride the peer listener with the same binary
//! encoding and naming check as Raft traffic. The leader never forwards further (a hop
//! budget of one), so a stale view of who leads cannot bounce a request around.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Semaphore};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use cairn_raft::{check_target, decode, encode, encoded_len, parse, reply, PeerNetwork, PostError, Refusal};
use cairn_store::{Applied, Command};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::batcher::WriteError;
use crate::lease::LeaseOp;
use crate::node::App;

/// What a member says of itself, for `GET /v1/cluster`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberStatus {
    pub state: String,
    pub term: u64,
    pub leader: Option<u64>,
    pub last_log_index: u64,
    pub applied_index: u64,
    pub revision: u64,
    pub snapshot_index: Option<u64>,
    pub purged_index: Option<u64>,
}

/// Membership changes, run on the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum AdminOp {
    AddLearner { id: u64, addr: String },
    Promote { id: u64 },
    Remove { id: u64 },
}

#[derive(Clone)]
pub struct Forwarder {
    network: PeerNetwork,
}

impl Forwarder {
    pub fn new(network: PeerNetwork) -> Self {
        Forwarder { network }
    }

    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        target: u64,
        addr: &str,
        route: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, WriteError> {
        let body = encode(req).map_err(|e| WriteError::Api(cairn_api::ApiError::internal(e.to_string())))?;
        let sent = self.network.post_path(target, addr, &format!("/cairn/{route}"), body, timeout).await;
        let (status, bytes) = match sent {
            Ok(answer) => answer,
            Err(e @ PostError::Connect(_)) => return Err(WriteError::Unreachable(e.to_string())),
            Err(e) => return Err(WriteError::Unknown(e.to_string())),
        };
        match status {
            StatusCode::OK => {}
            // The address now belongs to another member: nothing was done.
            StatusCode::MISDIRECTED_REQUEST | StatusCode::BAD_REQUEST => {
                return Err(WriteError::Unreachable(String::from_utf8_lossy(&bytes).into_owned()))
            }
            status => return Err(WriteError::Unknown(format!("leader answered {status}"))),
        }
        decode::<Result<Resp, WriteError>>(&bytes).map_err(|e| WriteError::Unknown(e.to_string()))?
    }

    /// Several writes in one request; the leader answers each.
    async fn propose_batch(
        &self,
        leader: u64,
        addr: &str,
        commands: &[&Command],
    ) -> Result<Vec<Result<Applied, WriteError>>, WriteError> {
        self.call(leader, addr, "propose_batch", &commands, Duration::from_secs(10)).await
    }

    pub async fn read_index(&self, leader: u64, addr: &str) -> Result<u64, WriteError> {
        self.call(leader, addr, "read_index", &(), Duration::from_secs(5)).await
    }

    pub async fn lease(&self, leader: u64, addr: &str, op: &LeaseOp) -> Result<u64, WriteError> {
        self.call(leader, addr, "lease", op, Duration::from_secs(5)).await
    }

    /// Asks a member for its own status, briefly: an unreachable member shows as such.
    pub async fn status(&self, member: u64, addr: &str) -> Result<MemberStatus, WriteError> {
        self.call(member, addr, "status", &(), Duration::from_millis(500)).await
    }

    pub async fn admin(&self, leader: u64, addr: &str, op: &AdminOp) -> Result<(), WriteError> {
        self.call(leader, addr, "admin", op, Duration::from_secs(30)).await
    }
}

type Reply = Result<Vec<u8>, Refusal>;

/// Runs `work` if this member leads; otherwise answers who does. Never forwards further.
async fn on_leader<T, F>(app: &App, headers: &HeaderMap, work: impl FnOnce() -> F) -> Reply
where
    T: Serialize,
    F: std::future::Future<Output = Result<T, WriteError>>,
{
    check_target(app.id, headers)?;
    let result = if app.is_leader() { work().await } else { Err(WriteError::NotLeader(app.leader_id())) };
    reply(&result)
}

async fn propose_batch(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Reply {
    let commands: Vec<Command> = parse(&body)?;
    on_leader(&app, &headers, || async {
        // Handed to the batcher as one, so they share one log entry.
        app.batcher.propose_all(commands).await
    })
    .await
}

async fn read_index(State(app): State<Arc<App>>, headers: HeaderMap) -> Reply {
    on_leader(&app, &headers, || app.local_reads.read_index()).await
}

async fn lease(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Reply {
    let op: LeaseOp = parse(&body)?;
    on_leader(&app, &headers, || app.lease_local(op)).await
}

async fn status(State(app): State<Arc<App>>, headers: HeaderMap) -> Reply {
    check_target(app.id, &headers)?;
    reply(&Ok::<_, WriteError>(app.own_status()))
}

async fn admin(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Reply {
    let op: AdminOp = parse(&body)?;
    on_leader(&app, &headers, || app.admin_local(op)).await
}

/// The forwarding routes of the peer listener. They take bodies of up to twice the client
/// API's limit, `max_request_bytes`: a forwarded batch of writes is bounded by it once
/// encoded (see [`ForwardQueue::start`]), and the rest is headroom.
pub fn routes(app: Arc<App>, max_request_bytes: usize) -> Router {
    Router::new()
        .route("/cairn/propose_batch", post(propose_batch))
        .route("/cairn/read_index", post(read_index))
        .route("/cairn/admin", post(admin))
        .route("/cairn/lease", post(lease))
        .route("/cairn/status", post(status))
        .layer(DefaultBodyLimit::max(max_request_bytes.saturating_mul(2)))
        .with_state(app)
}

/// Writes a follower forwards travel to the leader together: one peer request carries
/// every write that arrived while earlier requests were in flight (the follower's side of
/// group commit). It halves the HTTP work a forwarded write costs at high concurrency.
#[derive(Clone)]
pub struct ForwardQueue {
    tx: mpsc::UnboundedSender<Forwarded>,
}

struct Forwarded {
    leader: u64,
    addr: String,
    command: Command,
    done: oneshot::Sender<Result<Applied, WriteError>>,
}

/// Most writes in one forwarded request.
const FORWARD_BATCH: usize = 512;
/// Forwarded requests in flight at once; later writes queue up into the next one.
const FORWARDS_IN_FLIGHT: usize = 2;

impl ForwardQueue {
    /// A forwarded request carries at most `max_request_bytes` of encoded writes (one
    /// client request's worth, half what [`routes`] accepts), or a single write of any
    /// size. Without that bound a few large values forwarded together made a request the
    /// leader refused, and every write in it failed.
    pub fn start(forwarder: Forwarder, max_request_bytes: usize) -> ForwardQueue {
        let (tx, mut rx) = mpsc::unbounded_channel::<Forwarded>();
        let max_bytes = max_request_bytes as u64;
        // A command that cannot be sized goes alone, so its encoding error fails only itself.
        let size = |f: &Forwarded| encoded_len(&f.command).unwrap_or(u64::MAX);
        tokio::spawn(async move {
            let permits = Arc::new(Semaphore::new(FORWARDS_IN_FLIGHT));
            let mut held: Option<Forwarded> = None;
            loop {
                let first = match held.take() {
                    Some(f) => f,
                    None => match rx.recv().await {
                        Some(f) => f,
                        None => return,
                    },
                };
                let Ok(permit) = permits.clone().acquire_owned().await else { return };
                let mut bytes = size(&first);
                let mut batch = vec![first];
                while batch.len() < FORWARD_BATCH {
                    let Ok(f) = rx.try_recv() else { break };
                    let n = size(&f);
                    if f.leader != batch[0].leader
                        || f.addr != batch[0].addr
                        || bytes.saturating_add(n) > max_bytes
                    {
                        held = Some(f);
                        break;
                    }
                    bytes += n;
                    batch.push(f);
                }
                let forwarder = forwarder.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    let commands: Vec<&Command> = batch.iter().map(|f| &f.command).collect();
                    let answer = forwarder.propose_batch(batch[0].leader, &batch[0].addr, &commands).await;
                    let results = match answer {
                        Ok(results) if results.len() == batch.len() => results,
                        Ok(results) => vec![
                            Err(WriteError::Unknown(format!(
                                "the leader answered {} of {} writes",
                                results.len(),
                                batch.len()
                            )));
                            batch.len()
                        ],
                        Err(e) => vec![Err(e); batch.len()],
                    };
                    for (f, r) in batch.into_iter().zip(results) {
                        let _ = f.done.send(r);
                    }
                });
            }
        });
        ForwardQueue { tx }
    }

    /// Runs `command` on the leader `leader` (at `addr`).
    pub async fn propose(&self, leader: u64, addr: &str, command: Command) -> Result<Applied, WriteError> {
        let (done, answer) = oneshot::channel();
        let forwarded = Forwarded { leader, addr: addr.to_owned(), command, done };
        self.tx
            .send(forwarded)
            .map_err(|_| WriteError::Unreachable("this member is shutting down".into()))?;
        answer.await.map_err(|_| WriteError::Unknown("forwarding stopped before an answer came".into()))?
    }
}
