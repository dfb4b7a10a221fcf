//! Locks and leader elections over HTTP (DESIGN §5, §8), served by the member itself so a
//! shell script can take a lock with `curl`. Both are wait queues (see [`crate::queue`]):
//! a lock's holder and an election's leader are the oldest entry of their queue, and that
//! entry's `create_revision` is the fencing token or the term.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::Router;
use cairn_api::{ApiError, ErrorCode, Expect, Op, OpResult};
use cairn_store::{Command, EventKind, Output};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;

use crate::http::{last_event_id, read_body, reply, Answer, Params};
use crate::node::App;
use crate::queue::{Entry, PendingEntry, Queue, WaitEnd};
use crate::watch::{end_stream, event, follow, Out, Scope, Subscription};

type AppState = State<Arc<App>>;

fn captured<T>(raw: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    raw.map(|Path(v)| v).map_err(|e| ApiError::invalid_request(format!("invalid name: {}", e.body_text())))
}

/// The queue a lock or election route names (these calls take no query parameters).
fn named(
    uri: &Uri,
    name: Result<Path<String>, PathRejection>,
    queue: fn(&str) -> Result<Queue, ApiError>,
) -> Result<Queue, ApiError> {
    Params::parse(uri, &[])?;
    queue(&captured(name)?)
}

async fn json_body<T: DeserializeOwned>(app: &App, body: Body, shape: &str) -> Result<T, ApiError> {
    let bytes = read_body(app, body).await?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::invalid_request(format!("expected {shape}: {e}")))
}

/// Queues for `lease` and waits until the entry heads the queue, `timeout_ms` passes (the
/// entry is then removed: 408), or the entry goes away with its lease.
async fn contend(
    app: &Arc<App>,
    queue: &Queue,
    lease: u64,
    value: Vec<u8>,
    timeout_ms: Option<u64>,
    what: &str,
) -> Result<Entry, ApiError> {
    let deadline = timeout_ms.map(|ms| Instant::now() + Duration::from_millis(ms));
    let entry = queue.join(app, lease, value).await?;
    let pending = PendingEntry::new(app.clone(), queue.clone(), entry);
    match queue.wait_head(app, &pending.entry, deadline).await {
        Ok(()) => Ok(pending.keep()),
        Err(WaitEnd::TimedOut) => {
            pending.abandon().await?;
            Err(ApiError::new(
                ErrorCode::Timeout,
                format!(
                    "{what} \"{}\" was not obtained within {} ms; the queue entry was removed",
                    queue.name,
                    timeout_ms.unwrap_or_default()
                ),
            ))
        }
        Err(WaitEnd::Gone) => {
            let path = pending.keep().path;
            let lease_alive = app.store.read().and_then(|v| v.lease(lease)).ok().flatten().is_some();
            Err(if lease_alive {
                ApiError::new(ErrorCode::NotFound, format!("queue entry {path} was deleted while it waited"))
            } else {
                ApiError::lease_not_found(lease)
            })
        }
        // Dropping `pending` takes the entry back out: the caller gets an error instead.
        Err(WaitEnd::Failed(e)) => Err(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Acquire {
    lease: u64,
    timeout_ms: Option<u64>,
    value: Option<String>,
}

const ACQUIRE_SHAPE: &str = "{\"lease\": ID, \"timeout_ms\": N (optional), \"value\": \"...\" (optional)}";

async fn acquire(
    State(app): AppState,
    uri: Uri,
    name: Result<Path<String>, PathRejection>,
    body: Body,
) -> Answer {
    let queue = named(&uri, name, Queue::lock)?;
    let req: Acquire = json_body(&app, body, ACQUIRE_SHAPE).await?;
    let value = req.value.unwrap_or_default().into_bytes();
    let entry = contend(&app, &queue, req.lease, value, req.timeout_ms, "lock").await?;
    let mut body = entry.to_json("fencing_token");
    body["name"] = queue.name.into();
    Ok(reply(StatusCode::OK, app.header(app.store.revision().max(entry.create_revision)), body))
}

async fn release(
    State(app): AppState,
    uri: Uri,
    params: Result<Path<(String, String)>, PathRejection>,
) -> Answer {
    Params::parse(&uri, &[])?;
    let (name, key) = captured(params)?;
    let queue = Queue::lock(&name)?;
    let path = queue.entry_path(&key)?;
    let revision = queue.leave(&app, &path, None).await?;
    Ok(reply(StatusCode::OK, app.header(revision), json!({ "path": path, "revision": revision })))
}

/// The queue as a linearizable read: `(revision, entries oldest first)`.
async fn queue_state(app: &App, queue: &Queue) -> Result<(u64, Vec<Entry>), ApiError> {
    app.linearize().await?;
    let view = app.store.read()?;
    Ok((view.revision(), queue.entries(&view, None, true)?))
}

async fn lock_status(State(app): AppState, uri: Uri, name: Result<Path<String>, PathRejection>) -> Answer {
    let queue = named(&uri, name, Queue::lock)?;
    let (revision, entries) = queue_state(&app, &queue).await?;
    let mut all = entries.iter().map(|e| e.to_json("fencing_token"));
    let holder = all.next();
    let waiters: Vec<Value> = all.collect();
    Ok(reply(
        StatusCode::OK,
        app.header(revision),
        json!({ "name": queue.name, "holder": holder, "waiters": waiters }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Campaign {
    lease: u64,
    #[serde(default)]
    value: String,
    timeout_ms: Option<u64>,
}

async fn campaign(
    State(app): AppState,
    uri: Uri,
    name: Result<Path<String>, PathRejection>,
    body: Body,
) -> Answer {
    let queue = named(&uri, name, Queue::election)?;
    let req: Campaign =
        json_body(&app, body, "{\"lease\": ID, \"value\": \"...\", \"timeout_ms\": N (optional)}").await?;
    let entry =
        contend(&app, &queue, req.lease, req.value.into_bytes(), req.timeout_ms, "leadership").await?;
    let mut body = entry.to_json("term");
    body["name"] = queue.name.into();
    Ok(reply(StatusCode::OK, app.header(app.store.revision().max(entry.create_revision)), body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Proclaim {
    key: String,
    value: String,
}

/// A new value from the current leader; refused (409 `not_leader`) for any other entry.
async fn proclaim(
    State(app): AppState,
    uri: Uri,
    name: Result<Path<String>, PathRejection>,
    body: Body,
) -> Answer {
    let queue = named(&uri, name, Queue::election)?;
    let req: Proclaim = json_body(&app, body, "{\"key\": \"candidate-…\", \"value\": \"...\"}").await?;
    let path = queue.entry_path(&req.key)?;
    let (_, entries) = queue_state(&app, &queue).await?;
    let Some(head) = entries.first() else { return Err(ApiError::not_found(&path).into()) };
    if head.path != path {
        return Err(if entries.iter().any(|e| e.path == path) {
            ApiError::new(
                ErrorCode::NotLeader,
                format!("{} does not lead election \"{}\"; {} does", req.key, queue.name, head.key),
            )
        } else {
            ApiError::not_found(&path)
        }
        .into());
    }
    // Unchanged since the listing means still the head: only its own delete unseats it.
    let op = Op::Put {
        path: path.clone(),
        value: req.value.into_bytes(),
        lease: head.lease,
        parents: false,
        expect: Some(Expect::ModRevision(head.mod_revision)),
    };
    let applied = app.write(Command::Op(op)).await?;
    let Output::Op(OpResult::Put { node, .. }) = applied.output else {
        return Err(ApiError::internal(format!("unexpected answer {:?}", applied.output)).into());
    };
    let leader = Entry { value: node.value, mod_revision: node.stat.mod_revision, ..head.clone() };
    Ok(reply(
        StatusCode::OK,
        app.header(applied.revision),
        json!({ "name": queue.name, "leader": leader.to_json("term") }),
    ))
}

async fn leader(State(app): AppState, uri: Uri, name: Result<Path<String>, PathRejection>) -> Answer {
    let queue = named(&uri, name, Queue::election)?;
    let (revision, entries) = queue_state(&app, &queue).await?;
    let leader = entries.first().map(|e| e.to_json("term"));
    Ok(reply(StatusCode::OK, app.header(revision), json!({ "name": queue.name, "leader": leader })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Resign {
    key: String,
}

async fn resign(
    State(app): AppState,
    uri: Uri,
    name: Result<Path<String>, PathRejection>,
    body: Body,
) -> Answer {
    let queue = named(&uri, name, Queue::election)?;
    let req: Resign = json_body(&app, body, "{\"key\": \"candidate-…\"}").await?;
    let path = queue.entry_path(&req.key)?;
    let revision = queue.leave(&app, &path, None).await?;
    Ok(reply(StatusCode::OK, app.header(revision), json!({ "path": path, "revision": revision })))
}

/// SSE of every change of leader or of the leader's value: the state at connect time
/// first, then one `leader` event per change with the revision as its id.
async fn observe(
    State(app): AppState,
    uri: Uri,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
) -> Answer {
    let queue = named(&uri, name, Queue::election)?;
    let after = last_event_id(&headers)?;
    // The first event must be as current as a linearizable read, also on a follower.
    app.linearize().await?;
    let current = app.store.revision();
    let sub = app.hub.subscribe(Scope::Children(queue.dir.clone()))?;
    let compact = app.store.compact_revision();
    if let Some(after) = after {
        if after.saturating_add(1) < compact {
            return Err(ApiError::compacted(after.saturating_add(1), compact).into());
        }
    }
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(observe_stream(app.clone(), queue, sub, after, current, tx));
    let sse =
        Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)));
    Ok(sse.into_response())
}

/// The election's entries by `create_revision`, as an observer follows them.
struct Observed {
    queue: Queue,
    entries: BTreeMap<u64, Entry>,
    /// `(term, value)` of the leader last reported.
    shown: Option<(u64, Vec<u8>)>,
}

impl Observed {
    fn head(&self) -> Option<&Entry> {
        self.entries.values().next()
    }

    /// `changes` are the queue's own (its subscription watches the queue's children).
    fn apply(&mut self, changes: &[Arc<crate::watch::Change>]) {
        for c in changes {
            match c.kind {
                EventKind::Delete => {
                    self.entries.retain(|_, e| e.path != c.node.path);
                }
                EventKind::Create | EventKind::Set => {
                    self.entries.insert(c.node.stat.create_revision, Entry::from_node(c.node.clone()));
                }
            }
        }
    }

    /// The event to send if the leader or its value changed since the last one.
    fn changed(&mut self, revision: u64) -> Option<Result<SseEvent, Infallible>> {
        let now = self.head().map(|e| (e.create_revision, e.value.clone()));
        if now == self.shown {
            return None;
        }
        self.shown = now;
        Some(self.event(revision))
    }

    fn event(&self, revision: u64) -> Result<SseEvent, Infallible> {
        let data = json!({
            "name": self.queue.name,
            "revision": revision,
            "leader": self.head().map(|e| e.to_json("term")),
        });
        event("leader", Some(revision), data.to_string())
    }
}

async fn observe_stream(
    app: Arc<App>,
    queue: Queue,
    mut sub: Subscription,
    after: Option<u64>,
    current: u64,
    out: Out,
) {
    // A new observer starts from the state at `current` (already applied here; the hub
    // may not have routed it yet, and routed revisions up to it are skipped). A client
    // resuming from a revision this member has not reached yet starts from here and is
    // sent only what follows its Last-Event-ID.
    let base = after.map_or(sub.registered_at.max(current), |a| a.min(sub.registered_at));
    let quiet_through = after.unwrap_or(0);
    let mut delivered = base;
    let result: Result<(), ApiError> = async {
        let entries = {
            let view = app.store.read()?;
            queue.entries(&view, Some(base), true)?
        };
        let mut observed = Observed {
            queue,
            entries: entries.into_iter().map(|e| (e.create_revision, e)).collect(),
            shown: None,
        };
        observed.shown = observed.head().map(|e| (e.create_revision, e.value.clone()));
        if after.is_none() && out.send(observed.event(base)).await.is_err() {
            return Ok(());
        }
        follow(&app.hub, &mut sub, &mut delivered, quiet_through, &out, |revision, changes| {
            observed.apply(changes);
            observed.changed(revision).into_iter().collect()
        })
        .await
    }
    .await;
    end_stream(&out, sub.lagged(), delivered, result).await;
}

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/locks/{name}", post(acquire).get(lock_status))
        .route("/v1/locks/{name}/{key}", axum::routing::delete(release))
        .route("/v1/elections/{name}", get(leader))
        .route("/v1/elections/{name}/campaign", post(campaign))
        .route("/v1/elections/{name}/leader", put(proclaim).get(leader))
        .route("/v1/elections/{name}/observe", get(observe))
        .route("/v1/elections/{name}/resign", post(resign))
}
