//! A running member: storage, Raft, the two listeners and the background tasks.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cairn_api::{ApiError, Header};
use cairn_raft::openraft::error::{ClientWriteError, RaftError};
use cairn_raft::openraft::{self, ChangeMembers, SnapshotPolicy};
use cairn_raft::{Node, PeerNetwork, Raft};
use cairn_store::{Applied, Command, Store};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::batcher::{Batcher, WriteError};
use crate::config::{Config, Limits};
use crate::forward::{AdminOp, ForwardQueue, Forwarder, MemberStatus};
use crate::lease::{LeaseKeeper, LeaseOp, REVOKE_BATCH};
use crate::metrics::Metrics;
use crate::reads::ReadGate;
use crate::watch::Hub;

/// How long a write or read keeps looking for a leader before answering 503.
const LEADER_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the data directory {0}: {1}")]
    Storage(String, Box<cairn_raft::OpenError>),
    #[error("cannot listen on {0} for {1}: {2} (is another cairn using it? choose another address)")]
    Bind(SocketAddr, &'static str, std::io::Error),
    #[error("raft: {0}")]
    Raft(String),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot start Raft's threads: {0}")]
    Runtime(std::io::Error),
}

/// Shared state of a member's request handlers.
pub struct App {
    pub id: u64,
    pub raft: Raft,
    pub store: Arc<Store>,
    pub batcher: Batcher,
    pub local_reads: ReadGate,
    pub remote_reads: ReadGate,
    pub forwarder: Forwarder,
    pub forward_queue: ForwardQueue,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    pub hub: Arc<Hub>,
    pub leases: Arc<LeaseKeeper>,
    term: AtomicU64,
    /// 0 = no leader known.
    leader: AtomicU64,
}

fn leader_of(raft: &Raft) -> Option<(u64, String)> {
    let m = raft.metrics();
    let m = m.borrow();
    let id = m.current_leader?;
    let node = m.membership_config.membership().get_node(&id)?;
    Some((id, node.addr.clone()))
}

impl App {
    pub fn leader_id(&self) -> Option<u64> {
        match self.leader.load(Ordering::Relaxed) {
            0 => None,
            id => Some(id),
        }
    }

    pub fn is_leader(&self) -> bool {
        self.leader_id() == Some(self.id)
    }

    pub fn header(&self, revision: u64) -> Header {
        Header {
            revision,
            raft_term: self.term.load(Ordering::Relaxed),
            leader: self.leader_id(),
            member: self.id,
        }
    }

    /// Runs `local` if this member leads, else `remote(leader id, leader address)`, retrying
    /// while no leader is known or it cannot be reached, for up to `LEADER_WAIT`. An answer
    /// that came back with an unknown outcome is retried only when `idempotent` says so.
    async fn via_leader<T, L, LF, R, RF>(&self, idempotent: bool, local: L, remote: R) -> Result<T, ApiError>
    where
        L: Fn() -> LF,
        LF: std::future::Future<Output = Result<T, WriteError>>,
        R: Fn(u64, String) -> RF,
        RF: std::future::Future<Output = Result<T, WriteError>>,
    {
        let deadline = tokio::time::Instant::now() + LEADER_WAIT;
        let mut attempt = 0u32;
        loop {
            let result = match leader_of(&self.raft) {
                Some((id, _)) if id == self.id => local().await,
                Some((id, addr)) => remote(id, addr).await,
                None => Err(WriteError::NotLeader(None)),
            };
            let retry = match &result {
                Err(WriteError::NotLeader(_) | WriteError::Unreachable(_)) => true,
                Err(WriteError::Unknown(_)) => idempotent,
                _ => false,
            };
            if !retry || tokio::time::Instant::now() >= deadline {
                return result.map_err(WriteError::into_api);
            }
            attempt += 1;
            tokio::time::sleep(Duration::from_millis((20 * u64::from(attempt)).min(200))).await;
        }
    }

    /// Runs a write on the leader, from here or by forwarding (never retried once its
    /// outcome is unknown).
    pub async fn write(&self, command: Command) -> Result<Applied, ApiError> {
        self.metrics.writes.inc();
        self.via_leader(
            false,
            || self.batcher.propose(command.clone()),
            |id, addr| {
                let command = &command;
                async move { self.forward_queue.propose(id, &addr, command.clone()).await }
            },
        )
        .await
    }

    /// Waits until this member has applied everything committed before the call: a read
    /// of local state after it is linearizable (ReadIndex; followers ask the leader).
    pub async fn linearize(&self) -> Result<(), ApiError> {
        let index = self
            .via_leader(true, || self.local_reads.read_index(), |_, _| self.remote_reads.read_index())
            .await?;
        self.raft
            .wait(Some(LEADER_WAIT))
            .applied_index_at_least(Some(index), "linearizable read")
            .await
            .map(|_| ())
            .map_err(|e| {
                ApiError::unavailable(format!("this member is not catching up with the leader: {e}"))
            })
    }

    /// This member's own view of its Raft progress.
    pub fn own_status(&self) -> MemberStatus {
        let m = self.raft.metrics().borrow().clone();
        MemberStatus {
            state: format!("{:?}", m.state).to_lowercase(),
            term: m.current_term,
            leader: m.current_leader,
            last_log_index: m.last_log_index.unwrap_or(0),
            applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
            revision: self.store.revision(),
            snapshot_index: m.snapshot.map(|l| l.index),
            purged_index: m.purged.map(|l| l.index),
        }
    }

    /// Lease keep-alives and countdown reads run on the leader.
    pub async fn lease(&self, op: LeaseOp) -> Result<u64, ApiError> {
        self.via_leader(
            false,
            || self.lease_local(op.clone()),
            |id, addr| {
                let op = &op;
                async move { self.forwarder.lease(id, &addr, op).await }
            },
        )
        .await
    }

    /// On the leader: renew a countdown (keep-alive) or tell what is left of it.
    ///
    /// A renewal is acknowledged only once a quorum has confirmed this member's leadership
    /// *after* it: an old leader cut off from the others would otherwise acknowledge
    /// keep-alives that the new leader, whose countdown started earlier, never sees, and
    /// the lease would end before the TTL counted from the last acknowledged keep-alive.
    pub async fn lease_local(&self, op: LeaseOp) -> Result<u64, WriteError> {
        let left = self.lease_countdown(&op)?;
        if let LeaseOp::KeepAlive(_) = op {
            self.local_reads.read_index().await?;
        }
        Ok(left)
    }

    fn lease_countdown(&self, op: &LeaseOp) -> Result<u64, WriteError> {
        let id = match *op {
            LeaseOp::KeepAlive(id) | LeaseOp::Remaining(id) => id,
        };
        let known = match op {
            LeaseOp::KeepAlive(_) => {
                self.leases.renew(id).map_err(|_| WriteError::Api(ApiError::lease_not_found(id)))?
            }
            LeaseOp::Remaining(_) => self.leases.remaining_ms(id),
        };
        if let Some(v) = known {
            return Ok(v);
        }
        // Not counted down here (yet): the lease may not exist, or this leader has not
        // finished taking over. The replicated state decides.
        let lease = self.store.read().and_then(|v| v.lease(id)).map_err(|e| WriteError::Api(e.into()))?;
        match lease {
            None => Err(WriteError::Api(ApiError::lease_not_found(id))),
            Some(_) if self.leases.is_ending(id) => Err(WriteError::Api(ApiError::lease_not_found(id))),
            Some((lease, _)) if self.leases.is_leading() => {
                self.leases.granted(lease.id, lease.ttl_ms);
                Ok(lease.ttl_ms)
            }
            Some(_) => Err(WriteError::NotLeader(Some(self.id))),
        }
    }

    /// Membership changes go to the leader.
    pub async fn admin(&self, op: AdminOp) -> Result<(), ApiError> {
        match leader_of(&self.raft) {
            Some((id, _)) if id == self.id => self.admin_local(op).await,
            Some((id, addr)) => self.forwarder.admin(id, &addr, &op).await,
            None => Err(WriteError::NotLeader(None)),
        }
        .map_err(WriteError::into_api)
    }

    pub async fn admin_local(&self, op: AdminOp) -> Result<(), WriteError> {
        let membership = self.raft.metrics().borrow().membership_config.membership().clone();
        let is_voter = |id: &u64| membership.voter_ids().any(|v| v == *id);
        let is_member = |id: &u64| membership.get_node(id).is_some();
        let not_member = |id: u64| {
            WriteError::Api(ApiError::new(
                cairn_api::ErrorCode::NotFound,
                format!("member {id} is not in the cluster"),
            ))
        };
        let result = match op {
            AdminOp::AddLearner { id, addr } => {
                if is_member(&id) {
                    return Err(WriteError::Api(ApiError::new(
                        cairn_api::ErrorCode::AlreadyExists,
                        format!("member {id} is already in the cluster"),
                    )));
                }
                self.raft.add_learner(id, Node { addr }, false).await.map(|_| ())
            }
            AdminOp::Promote { id } => {
                if !is_member(&id) {
                    return Err(not_member(id));
                }
                if is_voter(&id) {
                    return Ok(());
                }
                self.raft
                    .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                    .await
                    .map(|_| ())
            }
            AdminOp::Remove { id } => {
                if !is_member(&id) {
                    return Err(not_member(id));
                }
                let change = if is_voter(&id) {
                    ChangeMembers::RemoveVoters(BTreeSet::from([id]))
                } else {
                    ChangeMembers::RemoveNodes(BTreeSet::from([id]))
                };
                self.raft.change_membership(change, false).await.map(|_| ())
            }
        };
        result.map_err(|e| match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => WriteError::NotLeader(f.leader_id),
            RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
                WriteError::Api(ApiError::invalid_request(format!("membership change refused: {e}")))
            }
            other => WriteError::Unknown(other.to_string()),
        })
    }
}

/// A started member.
pub struct Running {
    pub app: Arc<App>,
    pub client_addr: SocketAddr,
    pub peer_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    servers: Vec<JoinHandle<()>>,
    consensus: Consensus,
}

impl Running {
    /// Stops serving and shuts Raft down.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for s in self.servers {
            let _ = tokio::time::timeout(Duration::from_secs(5), s).await;
        }
        let _ = self.app.raft.shutdown().await;
        drop(self.consensus);
    }
}

/// The runtime of Raft and of what feeds it: openraft's tasks (core, state-machine worker,
/// replication streams), the peer listener (Raft messages and forwarded writes) and the
/// write batcher. Client connections, watches and leases run on the main runtime.
///
/// Why apart: on one runtime, the answers to a batch woke dozens of connection tasks just
/// before Raft's next steps, and each step of the next commit then waited its turn behind
/// them (~0.3 ms per hand-off between Raft's tasks on 2 cores at 64 clients). On threads of
/// their own those steps are scheduled by the operating system as soon as they are woken.
/// In interleaved runs puts at 64 clients rose 6-14%; puts at 1 and 256 clients moved
/// within noise and linearizable gets lost ~3% (a read index now crosses runtimes). The
/// log's fsyncs run on these threads too, blocking them (see `LogStore::append`).
struct Consensus {
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
}

impl Consensus {
    /// One thread per four cores, at least one: Raft's core and its state machine are one
    /// task each, so more threads serve only replication and peer connections.
    fn start() -> Result<Consensus, StartError> {
        let threads = std::thread::available_parallelism().map_or(1, |n| (n.get() / 4).max(1));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("cairn-raft")
            .enable_all()
            .build()
            .map_err(StartError::Runtime)?;
        Ok(Consensus { handle: runtime.handle().clone(), runtime: Some(runtime) })
    }
}

impl Drop for Consensus {
    /// Without waiting: a runtime dropped on an async thread would panic.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn raft_config(config: &Config) -> Result<openraft::Config, StartError> {
    openraft::Config {
        cluster_name: "cairn".into(),
        heartbeat_interval: 100,
        election_timeout_min: 600,
        election_timeout_max: 1200,
        install_snapshot_timeout: 10_000,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_logs),
        max_in_snapshot_log_to_keep: config.snapshot_logs / 2,
        snapshot_max_chunk_size: 4 << 20,
        max_payload_entries: 300,
        purge_batch_size: 256,
        ..Default::default()
    }
    .validate()
    .map_err(|e| StartError::Raft(e.to_string()))
}

/// A bound listener not yet tied to a runtime: [`serve`] hands it to the one that serves it.
fn bind(addr: SocketAddr, what: &'static str) -> Result<std::net::TcpListener, StartError> {
    let listener = std::net::TcpListener::bind(addr).map_err(|e| StartError::Bind(addr, what, e))?;
    listener.set_nonblocking(true).map_err(|e| StartError::Bind(addr, what, e))?;
    Ok(listener)
}

/// Opens storage, starts Raft and both listeners, and forms the cluster on first start.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let storage = cairn_raft::open_storage(&config.data_dir, config.id)
        .await
        .map_err(|e| StartError::Storage(config.data_dir.display().to_string(), Box::new(e)))?;
    let applied = storage.state_machine.applied_revision();
    let network = PeerNetwork::new(config.peer_routes.clone());
    let consensus = Consensus::start()?;
    let raft = consensus
        .handle
        .spawn(Raft::new(
            config.id,
            Arc::new(raft_config(&config)?),
            network.clone(),
            storage.log,
            storage.state_machine,
        ))
        .await
        .map_err(|e| StartError::Raft(e.to_string()))?
        .map_err(|e| StartError::Raft(e.to_string()))?;
    let metrics = Arc::new(Metrics::new()?);
    // Its own connections: a forwarded write then never waits in Raft's runtime.
    let forwarder = Forwarder::new(network.with_own_connections());

    let local_reads = {
        let raft = raft.clone();
        let m = metrics.clone();
        ReadGate::start(
            &consensus.handle,
            move || {
                let raft = raft.clone();
                async move {
                    match raft.get_read_log_id().await {
                        Ok((read_log_id, _applied)) => Ok(read_log_id.map(|l| l.index).unwrap_or(0)),
                        Err(RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(f))) => {
                            Err(WriteError::NotLeader(f.leader_id))
                        }
                        Err(e) => Err(WriteError::Unreachable(e.to_string())),
                    }
                }
            },
            move || m.read_index_rounds.inc(),
        )
    };
    let remote_reads = {
        let raft = raft.clone();
        let forwarder = forwarder.clone();
        ReadGate::start(
            &tokio::runtime::Handle::current(),
            move || {
                let raft = raft.clone();
                let forwarder = forwarder.clone();
                async move {
                    match leader_of(&raft) {
                        Some((id, addr)) => forwarder.read_index(id, &addr).await,
                        None => Err(WriteError::NotLeader(None)),
                    }
                }
            },
            || {},
        )
    };

    let hub = Hub::start(
        storage.store.clone(),
        applied,
        config.limits.max_watchers,
        Duration::from_millis(config.watch_progress_ms),
        metrics.clone(),
    );
    let leases = Arc::new(LeaseKeeper::default());
    let app = Arc::new(App {
        hub,
        leases: leases.clone(),
        id: config.id,
        batcher: Batcher::start(
            &consensus.handle,
            raft.clone(),
            metrics.clone(),
            leases,
            config.limits.max_pending_writes,
        ),
        raft: raft.clone(),
        store: storage.store,
        local_reads,
        remote_reads,
        forward_queue: ForwardQueue::start(forwarder.clone(), config.limits.max_request_bytes),
        forwarder,
        metrics,
        limits: config.limits.clone(),
        term: AtomicU64::new(0),
        leader: AtomicU64::new(0),
    });

    let (shutdown, shutdown_rx) = watch::channel(false);
    let peer_listener = bind(config.listen_peer, "peer traffic")?;
    let client_listener = bind(config.listen_client, "the client API")?;
    let peer_addr =
        peer_listener.local_addr().map_err(|e| StartError::Bind(config.listen_peer, "peer traffic", e))?;
    let client_addr = client_listener
        .local_addr()
        .map_err(|e| StartError::Bind(config.listen_client, "the client API", e))?;

    let peer_router = cairn_raft::peer_routes(raft.clone(), config.id)
        .merge(crate::forward::routes(app.clone(), config.limits.max_request_bytes));
    let client_router = crate::http::router(app.clone());
    let servers = vec![
        serve(
            &consensus.handle,
            (peer_listener, peer_addr, "peer traffic"),
            peer_router,
            shutdown_rx.clone(),
        ),
        serve(
            &tokio::runtime::Handle::current(),
            (client_listener, client_addr, "the client API"),
            client_router,
            shutdown_rx.clone(),
        ),
    ];

    tokio::spawn(track_metrics(app.clone(), shutdown_rx.clone()));
    tokio::spawn(compact_history(
        app.clone(),
        config.history_revisions,
        config.history_age,
        shutdown_rx.clone(),
    ));
    tokio::spawn(expire_leases(app.clone(), shutdown_rx.clone()));

    if !config.join && !raft.is_initialized().await.map_err(|e| StartError::Raft(e.to_string()))? {
        let members: BTreeMap<u64, Node> =
            config.initial_cluster.iter().map(|(id, addr)| (*id, Node { addr: addr.clone() })).collect();
        // Every founding member proposes the same configuration; openraft accepts that.
        if let Err(e) = raft.initialize(members).await {
            tracing::info!("cluster already formed: {e}");
        }
    }
    tracing::info!(id = config.id, %client_addr, %peer_addr, data_dir = %config.data_dir.display(), "cairn is serving");
    Ok(Running { app, client_addr, peer_addr, shutdown, servers, consensus })
}

/// Serves `router` on `runtime`; the listener is registered there, so its connections are too.
fn serve(
    runtime: &tokio::runtime::Handle,
    (listener, addr, what): (std::net::TcpListener, SocketAddr, &'static str),
    router: axum::Router,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    runtime.spawn(async move {
        let listener = match TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => return tracing::error!("cannot listen on {addr} for {what}: {e}"),
        };
        let result = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = result {
            tracing::error!("listener stopped: {e}");
        }
    })
}

/// Keeps the cached term/leader (used in every response header) and their gauges current.
///
/// It follows openraft's server metrics, which change only with the vote, role, leader or
/// membership: the full metrics are sent again on every turn of Raft's loop, several times
/// per commit, and each woke this task on the other runtime.
async fn track_metrics(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let mut rx = app.raft.server_metrics();
    let mut was_leader = false;
    loop {
        let leads = {
            let m = rx.borrow_and_update();
            let term = m.vote.leader_id().get_term();
            app.term.store(term, Ordering::Relaxed);
            app.leader.store(m.current_leader.unwrap_or(0), Ordering::Relaxed);
            app.metrics.term.set(term as i64);
            app.metrics.is_leader.set(i64::from(m.current_leader == Some(app.id)));
            m.current_leader == Some(app.id)
        };
        if leads != was_leader {
            was_leader = leads;
            if leads {
                tokio::spawn(take_over_leases(app.clone()));
            } else {
                app.leases.demote();
            }
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// A new leader restarts every lease at its full TTL once it has applied all that was
/// committed before it (its read index covers its own first entry).
async fn take_over_leases(app: Arc<App>) {
    loop {
        if !app.is_leader() {
            return;
        }
        if app.linearize().await.is_ok() {
            match app.store.read().and_then(|v| v.leases()) {
                Ok(leases) if app.is_leader() => {
                    tracing::info!(count = leases.len(), "leading: every lease restarts its countdown");
                    app.leases.promote(&leases);
                    return;
                }
                Ok(_) => return,
                Err(e) => tracing::warn!("cannot read leases: {e}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// On the leader: revoke due leases through Raft, after confirming leadership (a leader
/// cut off from its quorum must not end leases on its own clock).
async fn expire_leases(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    loop {
        let wait = app
            .leases
            .next_deadline()
            .map(|d| d.saturating_duration_since(std::time::Instant::now()))
            .unwrap_or(Duration::from_millis(500))
            .clamp(Duration::from_millis(10), Duration::from_millis(500));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if !app.is_leader() || !app.leases.is_leading() || !app.leases.has_due() {
            continue;
        }
        if app.local_reads.read_index().await.is_err() {
            continue;
        }
        let due = app.leases.take_due(REVOKE_BATCH);
        let revokes = due.iter().map(|id| Command::LeaseRevoke { id: *id }).collect();
        let results = match app.batcher.propose_all(revokes).await {
            Ok(results) => results,
            Err(e) => vec![Err(e); due.len()],
        };
        for (id, result) in due.iter().zip(results) {
            match result {
                Ok(_) => tracing::debug!(id, "lease expired"),
                Err(WriteError::Api(e)) if e.code == cairn_api::ErrorCode::LeaseNotFound => {
                    app.leases.revoked(*id)
                }
                Err(e) => {
                    tracing::warn!(id, "revoking an expired lease failed, will retry: {e:?}");
                    app.leases.retry(*id);
                }
            }
        }
    }
}

/// The leader keeps `history` revisions and compacts below them through Raft; every
/// member then removes what compaction made unreachable, off the request path.
async fn compact_history(app: Arc<App>, history: u64, max_age: Duration, mut stop: watch::Receiver<bool>) {
    let mut purged_at = 0u64;
    // (when, revision) samples taken while leading: the revision reached `max_age` ago is
    // the newest sample at least that old. A new leader starts sampling afresh, so its age
    // bound starts working `max_age` after it takes over (the revision bound at once).
    let mut samples: std::collections::VecDeque<(std::time::Instant, u64)> = Default::default();
    // The newest revision reached at least `max_age` ago (0: none known yet).
    let mut aged = 0u64;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let (revision, compacted) = (app.store.revision(), app.store.compact_revision());
        if app.is_leader() {
            samples.push_back((std::time::Instant::now(), revision));
            while let Some(&(when, rev)) = samples.front() {
                if when.elapsed() < max_age {
                    break;
                }
                aged = rev;
                samples.pop_front();
            }
            // Revisions before `aged` are older than `max_age`; the state at `aged` stays readable.
            let target = revision.saturating_sub(history).max(aged);
            // Compact in steps of a tenth of the window so it is not proposed on every write;
            // the age bound compacts whatever has aged out.
            if target > compacted && (target >= compacted + (history / 10).max(1) || aged > compacted) {
                if let Err(e) = app.write(Command::Compact { revision: target }).await {
                    tracing::warn!("history compaction at {target} failed: {e}");
                }
            }
        } else {
            samples.clear();
            aged = 0;
        }
        // Every member removes what compaction made unreachable.
        let compacted = app.store.compact_revision();
        if compacted > purged_at {
            let store = app.store.clone();
            match tokio::task::spawn_blocking(move || store.purge_compacted()).await {
                Ok(Ok(removed)) => {
                    purged_at = compacted;
                    tracing::debug!(removed, compacted, "purged compacted history");
                }
                Ok(Err(e)) => tracing::warn!("purging compacted history failed: {e}"),
                Err(e) => tracing::warn!("purge task failed: {e}"),
            }
        }
    }
}
