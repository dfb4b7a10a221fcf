//! Watches: one hub per member routes each applied change to the streams that want it.
//!
//! The hub follows the state machine's applied revision and reads the new revisions'
//! events from the store's history once, off the apply path. It routes them through an
//! index (exact path, parent path for children watches, every ancestor for subtree
//! watches), so a change costs a few hash lookups, not a scan of every watcher, and reads
//! a change's values and renders it only for the streams that want it. Each stream
//! has a bounded queue fed with `try_send`: a stream that falls behind is cut with a final
//! `cancelled` event naming the last revision it delivered, and never slows anyone else.
//!
//! A stream that starts in the past registers first (at the hub's dispatched revision D),
//! then reads history up to D itself: live events after D wait in its queue meanwhile, so
//! there is no gap and no duplicate. Snapshot-then-stream reads the namespace *at* D (MVCC
//! makes that a consistent point-in-time read), so no lock is held while it is sent.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use cairn_api::json::{self as wire, Encoding};
use cairn_api::{parent_of, ApiError, ErrorCode, Node};
use cairn_store::{Event, EventKind, ReadView, Store};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use crate::metrics::Metrics;

/// Revisions read from history per step (bounds memory while catching up).
const HISTORY_STEP: u64 = 1024;
/// Deliveries queued per stream before it counts as too slow.
const STREAM_QUEUE: usize = 1024;

/// What a watcher watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Node(String),
    Children(String),
    Subtree(String),
}

impl Scope {
    pub fn matches(&self, path: &str) -> bool {
        match self {
            Scope::Node(p) => path == p,
            Scope::Children(p) => parent_of(path) == Some(p.as_str()),
            Scope::Subtree(p) => {
                path == p
                    || p == "/"
                    || (path.starts_with(p.as_str()) && path.as_bytes().get(p.len()) == Some(&b'/'))
            }
        }
    }
}

/// One change, rendered when the first stream that receives it needs it, once for all.
pub struct Change {
    pub kind: EventKind,
    pub revision: u64,
    pub node: Node,
    pub prev: Option<Node>,
    json: OnceLock<String>,
    json_with_prev: OnceLock<String>,
}

fn kind_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Create => "create",
        EventKind::Set => "set",
        EventKind::Delete => "delete",
    }
}

impl Change {
    fn new(kind: EventKind, revision: u64, node: Node, prev: Option<Node>) -> Change {
        Change { kind, revision, node, prev, json: OnceLock::new(), json_with_prev: OnceLock::new() }
    }

    fn render(&self, with_prev: bool, encoding: Encoding) -> String {
        json!({
            "type": kind_name(self.kind),
            "revision": self.revision,
            "node": wire::node(&self.node, encoding),
            "prev": if with_prev { self.prev.as_ref().map(|p| wire::node(p, encoding)) } else { None },
        })
        .to_string()
    }

    fn data(&self, opts: &StreamOptions) -> String {
        match opts.encoding {
            Encoding::Utf8 if opts.prev => {
                self.json_with_prev.get_or_init(|| self.render(true, Encoding::Utf8)).clone()
            }
            Encoding::Utf8 => self.json.get_or_init(|| self.render(false, Encoding::Utf8)).clone(),
            Encoding::Base64 => self.render(opts.prev, Encoding::Base64),
        }
    }
}

/// The changes of one revision that concern one stream.
pub struct Delivery {
    pub revision: u64,
    pub changes: Vec<Arc<Change>>,
}

struct Entry {
    /// Usually one; a waiter on a lock queue watches its predecessor and itself.
    scopes: Vec<Scope>,
    tx: mpsc::Sender<Delivery>,
    lagged: Arc<AtomicBool>,
}

#[derive(Default)]
struct Index {
    next_id: u64,
    entries: HashMap<u64, Entry>,
    exact: HashMap<String, HashSet<u64>>,
    children: HashMap<String, HashSet<u64>>,
    subtree: HashMap<String, HashSet<u64>>,
}

impl Index {
    fn slot(&mut self, scope: &Scope) -> (&mut HashMap<String, HashSet<u64>>, String) {
        match scope {
            Scope::Node(p) => (&mut self.exact, p.clone()),
            Scope::Children(p) => (&mut self.children, p.clone()),
            Scope::Subtree(p) => (&mut self.subtree, p.clone()),
        }
    }

    fn remove(&mut self, id: u64) -> bool {
        let Some(entry) = self.entries.remove(&id) else { return false };
        for scope in &entry.scopes {
            let (map, key) = self.slot(scope);
            if let Some(set) = map.get_mut(&key) {
                set.remove(&id);
                if set.is_empty() {
                    map.remove(&key);
                }
            }
        }
        true
    }

    /// Every watcher one change concerns.
    fn matching(&self, path: &str, out: &mut HashSet<u64>) {
        if let Some(ids) = self.exact.get(path) {
            out.extend(ids);
        }
        if let Some(ids) = parent_of(path).and_then(|p| self.children.get(p)) {
            out.extend(ids);
        }
        let mut ancestor = Some(path);
        while let Some(a) = ancestor {
            if let Some(ids) = self.subtree.get(a) {
                out.extend(ids);
            }
            ancestor = parent_of(a);
        }
    }
}

pub struct Hub {
    store: Arc<Store>,
    index: Mutex<Index>,
    /// Every change up to this revision has been routed.
    dispatched: AtomicU64,
    max_watchers: usize,
    progress: Duration,
    metrics: Arc<Metrics>,
    applied: watch::Receiver<u64>,
}

/// A registered watcher; dropping it unregisters.
pub struct Subscription {
    hub: Arc<Hub>,
    id: u64,
    /// What it watches: history reads keep only these changes.
    scopes: Vec<Scope>,
    rx: mpsc::Receiver<Delivery>,
    lagged: Arc<AtomicBool>,
    /// Live deliveries start after this revision; history covers the rest.
    pub registered_at: u64,
}

impl Subscription {
    /// Whether the hub cut this subscription for falling behind.
    pub fn lagged(&self) -> bool {
        self.lagged.load(Ordering::Relaxed)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Ok(mut index) = self.hub.index.lock() {
            index.remove(self.id);
        }
        self.hub.metrics.watchers.dec();
    }
}

impl Hub {
    pub fn start(
        store: Arc<Store>,
        applied: watch::Receiver<u64>,
        max_watchers: usize,
        progress: Duration,
        metrics: Arc<Metrics>,
    ) -> Arc<Hub> {
        let hub = Arc::new(Hub {
            dispatched: AtomicU64::new(store.revision()),
            store,
            index: Mutex::new(Index::default()),
            max_watchers,
            progress,
            metrics,
            applied: applied.clone(),
        });
        tokio::spawn(dispatch(hub.clone(), applied));
        hub
    }

    /// How often idle streams get a progress bookmark.
    pub fn progress_interval(&self) -> Duration {
        self.progress
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Waits until this member's state machine has applied `revision` (a write made
    /// through the leader may not have reached a follower yet).
    pub async fn wait_applied(&self, revision: u64, timeout: Duration) -> Result<(), ApiError> {
        let mut applied = self.applied.clone();
        let reached = tokio::time::timeout(timeout, applied.wait_for(|r| *r >= revision))
            .await
            .is_ok_and(|r| r.is_ok());
        match reached {
            true => Ok(()),
            false => Err(ApiError::unavailable(format!(
                "this member has not applied revision {revision} yet; it is behind the leader"
            ))),
        }
    }

    pub fn dispatched(&self) -> u64 {
        self.dispatched.load(Ordering::Acquire)
    }

    pub fn subscribe(self: &Arc<Self>, scope: Scope) -> Result<Subscription, ApiError> {
        self.subscribe_all(vec![scope])
    }

    /// One subscription for several scopes: a change in any of them is delivered once.
    pub fn subscribe_all(self: &Arc<Self>, scopes: Vec<Scope>) -> Result<Subscription, ApiError> {
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let lagged = Arc::new(AtomicBool::new(false));
        let mut index = self.index.lock().map_err(|_| ApiError::internal("watch hub poisoned"))?;
        if index.entries.len() >= self.max_watchers {
            return Err(ApiError {
                limit: Some(self.max_watchers as u64),
                ..ApiError::new(
                    ErrorCode::TooManyRequests,
                    format!("this member already serves {} watchers", self.max_watchers),
                )
            });
        }
        let id = index.next_id;
        index.next_id += 1;
        for scope in &scopes {
            let (map, key) = index.slot(scope);
            map.entry(key).or_default().insert(id);
        }
        index.entries.insert(id, Entry { scopes: scopes.clone(), tx, lagged: lagged.clone() });
        // Read under the lock: routing bumps it under the same lock.
        let registered_at = self.dispatched();
        drop(index);
        self.metrics.watchers.inc();
        Ok(Subscription { hub: self.clone(), id, scopes, rx, lagged, registered_at })
    }

    /// Ends every stream (they resume from their last revision): used when history they
    /// would need is gone, e.g. after installing a snapshot compacted past them.
    fn cut_all(&self) {
        let Ok(mut index) = self.index.lock() else { return };
        let ids: Vec<u64> = index.entries.keys().copied().collect();
        for id in ids {
            if let Some(entry) = index.entries.get(&id) {
                entry.lagged.store(true, Ordering::Relaxed);
            }
            index.remove(id);
            self.metrics.streams_cut.inc();
        }
    }

    /// With nobody watching there is nothing to route: history is not even read (it was
    /// 13% of a member's CPU under a write load). Decided under the index lock, which
    /// `subscribe` takes to read its starting point, so a new watcher starts after `target`
    /// and reads anything older from history itself.
    fn skip_if_unwatched(&self, target: u64) -> bool {
        let Ok(index) = self.index.lock() else { return false };
        if !index.entries.is_empty() {
            return false;
        }
        self.dispatched.fetch_max(target, Ordering::AcqRel);
        true
    }

    /// Routes revisions `from..=end` from history. A change's values are read, and the
    /// change built, only when some stream wants it: with watchers on other keys, routing
    /// a write costs its event record and a few hash lookups.
    fn route_range(&self, from: u64, end: u64) -> Result<(), ApiError> {
        let view = self.store.read()?;
        for (revision, events) in view.events(from, end)? {
            self.route(&view, revision, events)?;
        }
        self.dispatched.fetch_max(end, Ordering::AcqRel);
        Ok(())
    }

    /// Every change is read before anything is sent, so a failed read leaves the revision
    /// to be routed again whole. Under the index lock, so that a stream subscribing meanwhile
    /// either gets the revision from here or reads it from history itself.
    fn route(&self, view: &ReadView, revision: u64, events: Vec<Event>) -> Result<(), ApiError> {
        let Ok(mut index) = self.index.lock() else { return Ok(()) };
        let mut per: HashMap<u64, Vec<Arc<Change>>> = HashMap::new();
        let mut ids = HashSet::new();
        for event in events {
            ids.clear();
            index.matching(&event.path, &mut ids);
            if ids.is_empty() {
                continue;
            }
            let change = load_change(view, revision, event)?;
            for id in &ids {
                per.entry(*id).or_default().push(change.clone());
            }
        }
        let mut cut = Vec::new();
        for (id, changes) in per {
            let Some(entry) = index.entries.get(&id) else { continue };
            let n = changes.len() as u64;
            match entry.tx.try_send(Delivery { revision, changes }) {
                Ok(()) => self.metrics.events_sent.inc_by(n),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    entry.lagged.store(true, Ordering::Relaxed);
                    self.metrics.streams_cut.inc();
                    cut.push(id);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => cut.push(id),
            }
        }
        for id in cut {
            index.remove(id);
        }
        self.dispatched.store(revision, Ordering::Release);
        Ok(())
    }
}

/// The changes of each revision, in order.
type Revisions = Vec<(u64, Vec<Arc<Change>>)>;

/// Reads the changes of revisions `from..=to` that one of `scopes` covers, at most
/// `HISTORY_STEP` revisions of them, off the async runtime. Also returns the last revision
/// the read covered: every change up to it is in the answer (none at all if its history
/// was compacted), so the next read starts right after it.
pub(crate) async fn read_changes(
    store: &Arc<Store>,
    from: u64,
    to: u64,
    scopes: &[Scope],
) -> Result<(Revisions, u64), ApiError> {
    let end = step_end(from, to);
    let (store, scopes) = (store.clone(), scopes.to_vec());
    let revisions = off_runtime(move || {
        let view = store.read()?;
        let mut out = Vec::new();
        for (revision, events) in view.events(from, end)? {
            let mut changes = Vec::new();
            for event in events {
                if scopes.iter().any(|s| s.matches(&event.path)) {
                    changes.push(load_change(&view, revision, event)?);
                }
            }
            out.push((revision, changes));
        }
        Ok(out)
    })
    .await?;
    Ok((revisions, end))
}

/// The last revision of one step through history from `from` towards `to`.
fn step_end(from: u64, to: u64) -> u64 {
    to.min(from.saturating_add(HISTORY_STEP - 1))
}

/// Runs a read of history on the blocking pool: it may read many revisions from disk.
async fn off_runtime<T: Send + 'static>(
    read: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(read)
        .await
        .map_err(|e| ApiError::internal(format!("history reader failed: {e}")))?
}

/// A recorded event with its values (the new one and, for a set or delete, the one before).
fn load_change(view: &ReadView, revision: u64, event: Event) -> Result<Arc<Change>, ApiError> {
    let value = view.value(&event.path, &event.stat)?;
    let prev = match &event.prev {
        Some(p) => {
            Some(Node { path: event.path.clone(), value: view.value(&event.path, p)?, stat: p.clone() })
        }
        None => None,
    };
    let node = Node { path: event.path, value, stat: event.stat };
    Ok(Arc::new(Change::new(event.kind, revision, node, prev)))
}

async fn dispatch(hub: Arc<Hub>, mut applied: watch::Receiver<u64>) {
    loop {
        let target = *applied.borrow_and_update();
        while hub.dispatched() < target {
            if hub.skip_if_unwatched(target) {
                break;
            }
            let from = hub.dispatched() + 1;
            if from < hub.store.compact_revision() {
                tracing::warn!(from, "history before the compact revision is gone; cutting watch streams");
                hub.cut_all();
                hub.dispatched.fetch_max(hub.store.compact_revision() - 1, Ordering::AcqRel);
                continue;
            }
            let (routing, end) = (hub.clone(), step_end(from, target));
            if let Err(e) = off_runtime(move || routing.route_range(from, end)).await {
                tracing::error!("watch hub cannot read history: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        if applied.changed().await.is_err() {
            return;
        }
    }
}

/// Per-stream options from the query string.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    pub scope: Scope,
    /// Deliver changes after this revision (`None`: from now).
    pub after: Option<u64>,
    pub prev: bool,
    pub snapshot: bool,
    pub encoding: Encoding,
}

pub(crate) type Out = mpsc::Sender<Result<SseEvent, Infallible>>;

/// Starts a watch: errors that belong in the HTTP status (compacted, limits) come back
/// before the stream starts.
pub fn open(hub: &Arc<Hub>, opts: StreamOptions) -> Result<axum::response::Response, ApiError> {
    let sub = hub.subscribe(opts.scope.clone())?;
    let compact = hub.store.compact_revision();
    if let Some(after) = opts.after {
        if after.saturating_add(1) < compact {
            return Err(ApiError::compacted(after.saturating_add(1), compact));
        }
    }
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(stream(hub.clone(), sub, opts, tx));
    let sse =
        Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)));
    Ok(axum::response::IntoResponse::into_response(sse))
}

pub(crate) fn event(kind: &str, id: Option<u64>, data: String) -> Result<SseEvent, Infallible> {
    let e = SseEvent::default().event(kind).data(data);
    Ok(match id {
        Some(id) => e.id(id.to_string()),
        None => e,
    })
}

/// A watch stream's events for one revision (changes in its scope, see [`follow`]), only
/// the last carrying the SSE id, so a client that reconnects with `Last-Event-ID` never
/// resumes halfway through a revision.
fn revision_events(
    revision: u64,
    changes: &[Arc<Change>],
    opts: &StreamOptions,
) -> Vec<Result<SseEvent, Infallible>> {
    let last = changes.len().saturating_sub(1);
    changes
        .iter()
        .enumerate()
        .map(|(i, c)| event(kind_name(c.kind), (i == last).then_some(revision), c.data(opts)))
        .collect()
}

/// The current state at `revision` as `create` events (no ids), page by page.
async fn send_snapshot(
    store: &Store,
    revision: u64,
    opts: &StreamOptions,
    out: &Out,
) -> Result<bool, ApiError> {
    let (path, with_self, children_only) = match &opts.scope {
        Scope::Node(p) => (p.clone(), true, None),
        Scope::Children(p) => (p.clone(), false, Some(true)),
        Scope::Subtree(p) => (p.clone(), true, Some(false)),
    };
    let render = |node: &Node| {
        json!({ "type": "create", "revision": revision, "node": wire::node(node, opts.encoding), "prev": null }).to_string()
    };
    if with_self {
        match store.read()?.get(&path, Some(revision)) {
            Ok(node) => {
                if out.send(event("create", None, render(&node))).await.is_err() {
                    return Ok(false);
                }
            }
            Err(e) if e.code == ErrorCode::NotFound => return Ok(true),
            Err(e) => return Err(e),
        }
    }
    let Some(children_only) = children_only else { return Ok(true) };
    let mut cursor: Option<String> = None;
    loop {
        let view = store.read()?;
        let (nodes, next) = if children_only {
            let page = match view.children(&path, Some(revision), cursor.as_deref(), 1000) {
                Ok(p) => p,
                Err(e) if e.code == ErrorCode::NotFound => return Ok(true),
                Err(e) => return Err(e),
            };
            let mut nodes = Vec::with_capacity(page.entries.len());
            for child in &page.entries {
                nodes.push(view.get(&cairn_api::join_child(&path, &child.name), Some(revision))?);
            }
            (nodes, page.next)
        } else {
            let page = view.subtree(&path, Some(revision), cursor.as_deref(), 1000)?;
            (page.entries, page.next)
        };
        drop(view);
        for node in &nodes {
            if out.send(event("create", None, render(node))).await.is_err() {
                return Ok(false);
            }
        }
        match next {
            Some(n) => cursor = Some(n),
            None => return Ok(true),
        }
    }
}

async fn stream(hub: Arc<Hub>, mut sub: Subscription, opts: StreamOptions, out: Out) {
    let mut delivered = sub.registered_at;
    let result: Result<(), ApiError> = async {
        if opts.snapshot && opts.after.is_none() {
            if !send_snapshot(&hub.store, sub.registered_at, &opts, &out).await? {
                return Ok(());
            }
            let synced = json!({ "revision": sub.registered_at }).to_string();
            if out.send(event("synced", Some(sub.registered_at), synced)).await.is_err() {
                return Ok(());
            }
        } else if let Some(after) = opts.after {
            delivered = after;
        }
        follow(&hub, &mut sub, &mut delivered, 0, &out, |revision, changes| {
            revision_events(revision, changes, &opts)
        })
        .await
    }
    .await;
    end_stream(&out, sub.lagged(), delivered, result).await;
}

/// Follows a subscription from `*delivered`: history up to the point it registered at,
/// then its live deliveries, with a progress bookmark every interval. `render` turns each
/// revision's changes, only those in the subscription's scopes, into the events to send;
/// revisions up to `quiet_through` (already seen by a resuming client) are rendered but not
/// sent. Returns once the client is gone or the hub cut the subscription; `*delivered` is
/// then the last revision covered.
pub(crate) async fn follow(
    hub: &Hub,
    sub: &mut Subscription,
    delivered: &mut u64,
    quiet_through: u64,
    out: &Out,
    mut render: impl FnMut(u64, &[Arc<Change>]) -> Vec<Result<SseEvent, Infallible>>,
) -> Result<(), ApiError> {
    let mut pass = async |revision: u64, changes: &[Arc<Change>], delivered: &mut u64| -> bool {
        if revision <= *delivered {
            return true;
        }
        *delivered = revision;
        let events = render(revision, changes);
        if revision <= quiet_through {
            return true;
        }
        for e in events {
            if out.send(e).await.is_err() {
                return false;
            }
        }
        true
    };
    // Catch up from history, then hand over to the live queue.
    while *delivered < sub.registered_at {
        let (revisions, covered) =
            read_changes(&hub.store, *delivered + 1, sub.registered_at, &sub.scopes).await?;
        for (revision, changes) in revisions {
            if !pass(revision, &changes, delivered).await {
                return Ok(());
            }
        }
        *delivered = (*delivered).max(covered);
    }
    *delivered = (*delivered).max(sub.registered_at);
    let mut tick = tokio::time::interval(hub.progress);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            d = sub.rx.recv() => match d {
                Some(d) => {
                    if !pass(d.revision, &d.changes, delivered).await {
                        return Ok(());
                    }
                }
                None => return Ok(()),
            },
            _ = tick.tick() => {
                // Everything up to `seen` was queued before `seen` was published: drain
                // the queue, then the bookmark is exact.
                let seen = hub.dispatched();
                while let Ok(d) = sub.rx.try_recv() {
                    if !pass(d.revision, &d.changes, delivered).await {
                        return Ok(());
                    }
                }
                *delivered = seen.max(*delivered);
                let data = json!({ "revision": *delivered }).to_string();
                if *delivered > quiet_through && out.send(event("progress", Some(*delivered), data)).await.is_err() {
                    return Ok(());
                }
            }
            _ = out.closed() => return Ok(()),
        }
    }
}

/// Ends a stream that was cut for falling behind or failed with a final `cancelled` event
/// naming the revision to resume after (a stream the client closed just ends).
pub(crate) async fn end_stream(out: &Out, lagged: bool, delivered: u64, result: Result<(), ApiError>) {
    let data = match result {
        Err(e) => json!({ "code": e.code.as_str(), "message": e.message, "revision": delivered }),
        Ok(()) if lagged => json!({
            "reason": "this stream fell behind; reconnect with Last-Event-ID to resume",
            "revision": delivered,
        }),
        Ok(()) => return,
    };
    let _ = out.send(event("cancelled", None, data.to_string())).await;
}

/// Long-poll: waits until something in one of `scopes` changes after `after`, or the
/// timeout.
pub async fn wait_for_change(
    hub: &Arc<Hub>,
    scopes: Vec<Scope>,
    after: u64,
    timeout: Duration,
) -> Result<(), ApiError> {
    let mut sub = hub.subscribe_all(scopes)?;
    let compact = hub.store.compact_revision();
    if after.saturating_add(1) < compact {
        return Err(ApiError::compacted(after.saturating_add(1), compact));
    }
    let mut from = after + 1;
    while from <= sub.registered_at {
        let (revisions, covered) = read_changes(&hub.store, from, sub.registered_at, &sub.scopes).await?;
        if revisions.iter().any(|(_, changes)| !changes.is_empty()) {
            return Ok(());
        }
        from = covered + 1;
    }
    let _ = tokio::time::timeout(timeout, async {
        while let Some(d) = sub.rx.recv().await {
            if d.revision > after {
                return;
            }
        }
    })
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_match_what_they_say() {
        let node = Scope::Node("/a".into());
        assert!(node.matches("/a") && !node.matches("/a/b"));
        let children = Scope::Children("/a".into());
        assert!(
            children.matches("/a/b")
                && !children.matches("/a/b/c")
                && !children.matches("/a")
                && !children.matches("/ab")
        );
        let sub = Scope::Subtree("/a".into());
        assert!(sub.matches("/a") && sub.matches("/a/b/c") && !sub.matches("/ab"));
        assert!(Scope::Subtree("/".into()).matches("/x/y"));
        assert!(Scope::Children("/".into()).matches("/x") && !Scope::Children("/".into()).matches("/x/y"));
    }

    #[test]
    fn index_finds_exact_children_and_ancestors() {
        let mut index = Index::default();
        for (id, scope) in [
            (1, Scope::Node("/a/b".into())),
            (2, Scope::Children("/a".into())),
            (3, Scope::Subtree("/".into())),
            (4, Scope::Subtree("/a/b".into())),
            (5, Scope::Node("/z".into())),
        ] {
            let (map, key) = index.slot(&scope);
            map.entry(key).or_default().insert(id);
        }
        let mut ids = HashSet::new();
        index.matching("/a/b", &mut ids);
        assert_eq!(ids, HashSet::from([1, 2, 3, 4]));
        ids.clear();
        index.matching("/a/b/c", &mut ids);
        assert_eq!(ids, HashSet::from([3, 4]));
    }
}
