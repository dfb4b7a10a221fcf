//! Wait queues for locks and elections (DESIGN §5), kept in the namespace itself.
//!
//! A queue is the directory `/_cairn/{locks|elections}/{name}`; each contender is an
//! ephemeral child bound to its lease and named by the parent's sequence counter, so the
//! entries line up in creation order and leave when their lease ends. The entry with the
//! lowest `create_revision` holds the lock (or leads); that revision is its fencing token
//! (or term): a later holder was necessarily created later, so tokens strictly increase.
//!
//! A waiter watches only its predecessor (and its own entry, to notice that its lease
//! ended), so a release wakes one waiter, not the herd (etcd's `waitDeletes`).

use std::sync::Arc;
use std::time::Duration;

use cairn_api::{validate_path, ApiError, ErrorCode, Expect, Node, Op, OpResult};
use cairn_store::{Command, Output, ReadView};
use tokio::time::Instant;

use crate::node::App;
use crate::watch::{wait_for_change, Scope};

/// Where the server keeps its queues; readable (and deletable) through `/v1/nodes` too.
pub const LOCKS_ROOT: &str = "/_cairn/locks";
pub const ELECTIONS_ROOT: &str = "/_cairn/elections";

/// Entries listed per page while scanning a queue.
const PAGE: usize = 1000;
/// A waiter re-checks its queue at least this often, even when nothing woke it.
const RECHECK: Duration = Duration::from_secs(30);

/// How long a follower may take to apply the entry it just had the leader create.
const APPLY_WAIT: Duration = Duration::from_secs(10);

/// One contender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The entry's name in the queue (`lock-0000000003`).
    pub key: String,
    pub path: String,
    /// The fencing token of a lock holder, the term of a leader.
    pub create_revision: u64,
    pub mod_revision: u64,
    pub lease: Option<u64>,
    pub value: Vec<u8>,
}

impl Entry {
    /// The entry a queue node stands for.
    pub fn from_node(node: Node) -> Entry {
        Entry {
            key: node.path.rsplit('/').next().unwrap_or_default().to_owned(),
            create_revision: node.stat.create_revision,
            mod_revision: node.stat.mod_revision,
            lease: node.stat.lease,
            value: node.value,
            path: node.path,
        }
    }

    pub fn to_json(&self, token_name: &str) -> serde_json::Value {
        let mut v = serde_json::json!({
            "key": self.key,
            "path": self.path,
            "lease": self.lease,
            "value": String::from_utf8_lossy(&self.value),
        });
        v[token_name] = self.create_revision.into();
        v
    }
}

/// How a wait ended without the queue's head position.
#[derive(Debug)]
pub enum WaitEnd {
    TimedOut,
    /// The entry is gone: its lease ended or someone deleted it.
    Gone,
    Failed(ApiError),
}

impl From<ApiError> for WaitEnd {
    fn from(e: ApiError) -> Self {
        WaitEnd::Failed(e)
    }
}

#[derive(Debug, Clone)]
pub struct Queue {
    pub name: String,
    pub dir: String,
    /// Prefix of entry names: `lock-` or `candidate-`.
    prefix: &'static str,
}

impl Queue {
    fn new(root: &str, prefix: &'static str, what: &str, name: &str) -> Result<Queue, ApiError> {
        let dir = format!("{root}/{name}");
        if name.is_empty() || name.contains('/') || name.len() > 255 {
            return Err(ApiError::invalid_request(format!(
                "{what} name \"{name}\" must be one path segment of 1 to 255 bytes"
            )));
        }
        validate_path(&dir).map_err(|e| {
            ApiError::invalid_request(format!("{what} name \"{name}\" is not valid: {}", e.message))
        })?;
        Ok(Queue { name: name.to_owned(), dir, prefix })
    }

    pub fn lock(name: &str) -> Result<Queue, ApiError> {
        Self::new(LOCKS_ROOT, "lock-", "lock", name)
    }

    pub fn election(name: &str) -> Result<Queue, ApiError> {
        Self::new(ELECTIONS_ROOT, "candidate-", "election", name)
    }

    /// The path of the entry `key`, which must be one of this queue's names.
    pub fn entry_path(&self, key: &str) -> Result<String, ApiError> {
        let digits = key.strip_prefix(self.prefix).unwrap_or_default();
        if digits.len() != cairn_api::SEQUENCE_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::invalid_request(format!(
                "\"{key}\" is not a key of this queue (keys look like {}0000000042)",
                self.prefix
            )));
        }
        Ok(format!("{}/{key}", self.dir))
    }

    /// Every entry at the view's revision (or `at`), oldest first; values when asked.
    pub fn entries(&self, view: &ReadView, at: Option<u64>, values: bool) -> Result<Vec<Entry>, ApiError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = match view.children(&self.dir, at, cursor.as_deref(), PAGE) {
                Ok(page) => page,
                Err(e) if e.code == ErrorCode::NotFound => return Ok(out),
                Err(e) => return Err(e),
            };
            for child in page.entries {
                let path = cairn_api::join_child(&self.dir, &child.name);
                let value = if values { view.get(&path, at)?.value } else { Vec::new() };
                out.push(Entry {
                    key: child.name,
                    path,
                    create_revision: child.stat.create_revision,
                    mod_revision: child.stat.mod_revision,
                    lease: child.stat.lease,
                    value,
                });
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        // Names follow creation order, unless someone made entries by hand.
        out.sort_by_key(|e| e.create_revision);
        Ok(out)
    }

    /// Adds an entry for `lease`, or keeps the one this lease already has: a client that
    /// retries after an unknown outcome must not end up queued behind itself. The entry is
    /// created first and the queue read after it (one write, no extra read-index round);
    /// a newer duplicate is taken back out.
    pub async fn join(&self, app: &App, lease: u64, value: Vec<u8>) -> Result<Entry, ApiError> {
        let op = Op::Create {
            path: format!("{}/{}", self.dir, self.prefix),
            value,
            sequential: true,
            lease: Some(lease),
            parents: true,
        };
        let applied = app.write(Command::Op(op)).await?;
        app.hub.wait_applied(applied.revision, APPLY_WAIT).await?;
        let Output::Op(OpResult::Created { node }) = applied.output else {
            return Err(ApiError::internal(format!("unexpected answer {:?}", applied.output)));
        };
        let older = {
            let view = app.store.read()?;
            match self
                .entries(&view, None, false)?
                .into_iter()
                .find(|e| e.lease == Some(lease) && e.create_revision < node.stat.create_revision)
            {
                Some(e) => Some(Entry { value: view.get(&e.path, None)?.value, ..e }),
                None => None,
            }
        };
        if let Some(entry) = older {
            if let Some(claimed) = self.claim(app, entry).await? {
                self.leave(app, &node.path, Some(node.stat.mod_revision)).await?;
                return Ok(claimed);
            }
        }
        Ok(Entry::from_node(node))
    }

    /// Takes over an older entry of the same lease by rewriting it: its `mod_revision`
    /// changes, so the request that created it, if it is being abandoned right now (its
    /// client hung up), can no longer delete it (that delete expects the old one). `None`
    /// if it is already gone or changed.
    async fn claim(&self, app: &App, entry: Entry) -> Result<Option<Entry>, ApiError> {
        let op = Op::Put {
            path: entry.path.clone(),
            value: entry.value.clone(),
            lease: entry.lease,
            parents: false,
            expect: Some(Expect::ModRevision(entry.mod_revision)),
        };
        match app.write(Command::Op(op)).await {
            Ok(applied) => {
                app.hub.wait_applied(applied.revision, APPLY_WAIT).await?;
                Ok(Some(Entry { mod_revision: applied.revision, ..entry }))
            }
            Err(e) if matches!(e.code, ErrorCode::NotFound | ErrorCode::VersionConflict) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Waits until `me` heads the queue. The local state is current for `me` (it was read
    /// or written through the leader just before), and each later listing follows a change
    /// this member has applied, so local reads suffice.
    pub async fn wait_head(&self, app: &App, me: &Entry, deadline: Option<Instant>) -> Result<(), WaitEnd> {
        loop {
            let (revision, entries) = {
                let view = app.store.read().map_err(ApiError::from)?;
                (view.revision(), self.entries(&view, None, false)?)
            };
            if !entries.iter().any(|e| e.create_revision == me.create_revision && e.path == me.path) {
                return Err(WaitEnd::Gone);
            }
            let Some(predecessor) = entries.iter().rev().find(|e| e.create_revision < me.create_revision)
            else {
                return Ok(());
            };
            let now = Instant::now();
            let wait = match deadline {
                Some(d) if d <= now => return Err(WaitEnd::TimedOut),
                Some(d) => (d - now).min(RECHECK),
                None => RECHECK,
            };
            let scopes = vec![Scope::Node(predecessor.path.clone()), Scope::Node(me.path.clone())];
            wait_for_change(&app.hub, scopes, revision, wait).await?;
        }
    }

    /// Removes the entry at `path`; with `expect_mod`, only if it was not rewritten since
    /// (a claimed entry is not its old owner's to remove).
    pub async fn leave(&self, app: &App, path: &str, expect_mod: Option<u64>) -> Result<u64, ApiError> {
        let op = Op::Delete {
            path: path.to_owned(),
            expect: expect_mod.map(Expect::ModRevision),
            recursive: false,
        };
        Ok(app.write(Command::Op(op)).await?.revision)
    }
}

/// Takes a queue entry back out if the request waiting on it goes away (the client hung
/// up, so axum dropped the handler) before it was handed to the client.
pub struct PendingEntry {
    app: Arc<App>,
    queue: Queue,
    pub entry: Entry,
    armed: bool,
}

impl PendingEntry {
    pub fn new(app: Arc<App>, queue: Queue, entry: Entry) -> Self {
        PendingEntry { app, queue, entry, armed: true }
    }

    /// The entry now belongs to the client.
    pub fn keep(mut self) -> Entry {
        self.armed = false;
        self.entry.clone()
    }

    /// Removes the entry now and reports whether that worked.
    pub async fn abandon(mut self) -> Result<(), ApiError> {
        self.armed = false;
        let entry = &self.entry;
        match self.queue.leave(&self.app, &entry.path, Some(entry.mod_revision)).await {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.code, ErrorCode::NotFound | ErrorCode::VersionConflict) => Ok(()),
            Err(e) => Err(ApiError::unavailable(format!(
                "could not remove queue entry {} ({}); it stays until lease {} ends",
                entry.path,
                e.message,
                entry.lease.unwrap_or_default()
            ))),
        }
    }
}

impl Drop for PendingEntry {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (app, queue, entry) = (self.app.clone(), self.queue.clone(), self.entry.clone());
        tokio::spawn(async move {
            if let Err(e) = queue.leave(&app, &entry.path, Some(entry.mod_revision)).await {
                tracing::debug!(path = entry.path, "abandoned queue entry not removed: {e}");
            }
        });
    }
}
