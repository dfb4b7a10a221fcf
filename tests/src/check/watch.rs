//! Watch streams against the committed history.
//!
//! A watch promises every committed change in its scope from its start revision on,
//! exactly once, in commit order, with the committed content — also across reconnects:
//! resuming with `Last-Event-ID: N` must continue with the first change after revision N.
//! The checker replays each stream against the committed history (what a full read of
//! the history returns after the run) with a cursor: the next event the stream owes.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Create,
    Set,
    Delete,
}

/// One committed change, or one change as a watcher received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub revision: u64,
    pub path: String,
    pub kind: EventKind,
    /// The value as text (base64 if binary). Not compared for deletes: whether a delete
    /// carries the old value is presentation.
    pub value: Option<String>,
}

impl Event {
    fn describe(&self) -> String {
        let value = match (&self.kind, &self.value) {
            (EventKind::Delete, _) | (_, None) => String::new(),
            (_, Some(v)) => format!("={v:?}"),
        };
        let kind = match self.kind {
            EventKind::Create => "create",
            EventKind::Set => "set",
            EventKind::Delete => "delete",
        };
        format!("rev {} {kind} {}{value}", self.revision, self.path)
    }
}

/// What a watch covers, as in the watch API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "path", rename_all = "snake_case")]
pub enum Scope {
    /// Exactly this path.
    Node(String),
    /// The direct children of this path (not the path itself).
    Children(String),
    /// This path and everything below it.
    Subtree(String),
}

impl Scope {
    pub fn matches(&self, path: &str) -> bool {
        match self {
            Scope::Node(p) => path == p,
            Scope::Children(p) => parent(path) == Some(p.as_str()),
            Scope::Subtree(p) => {
                path == p || p == "/" || (path.starts_with(p.as_str()) && path[p.len()..].starts_with('/'))
            }
        }
    }
}

/// `/a/b` -> `/a`, `/a` -> `/`, `/` -> none.
fn parent(path: &str) -> Option<&str> {
    match path.rfind('/')? {
        0 if path.len() > 1 => Some("/"),
        0 => None,
        i => Some(&path[..i]),
    }
}

/// What a watcher saw, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamItem {
    Event(Event),
    /// The connection dropped and the watcher reconnected, resuming after `last_event_id`
    /// (`None`: it asked again from the stream's start revision).
    Reconnect {
        last_event_id: Option<u64>,
    },
    /// The server said the stream is complete through `revision` (e.g. a progress event).
    Progress {
        revision: u64,
    },
}

/// One watch as a client kept it, across reconnects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchStream {
    /// Names the stream in anomalies.
    pub name: String,
    pub scope: Scope,
    /// First revision the watch asked for (`from_revision`).
    pub start_revision: u64,
    pub items: Vec<StreamItem>,
    /// The stream is known to be complete through this revision even if its last events
    /// came earlier (e.g. the watcher kept listening until the history had reached it).
    pub covered_through: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WatchAnomalyKind {
    /// A committed event in scope was never received.
    Missing,
    /// Received twice within one connection.
    Duplicate,
    /// Received after an event that was committed later.
    OutOfOrder,
    /// After `Last-Event-ID: N`, an event of revision <= N.
    ReplayAfterResume,
    /// Received content differs from the committed event.
    Mismatch,
    /// Received an event the committed history does not have.
    NotCommitted,
    /// Received a committed event outside the stream's scope.
    OutOfScope,
    /// Received an event before the stream's start revision.
    BeforeStart,
    /// An acknowledged write is not in the committed history.
    AckNotCommitted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchAnomaly {
    /// The stream's name, or `acks` for [`check_acknowledged`].
    pub stream: String,
    pub kind: WatchAnomalyKind,
    pub revision: Option<u64>,
    pub text: String,
}

impl fmt::Display for WatchAnomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Checks every stream; see [`check_stream`].
pub fn check_streams(committed: &[Event], streams: &[WatchStream]) -> Vec<WatchAnomaly> {
    streams.iter().flat_map(|s| check_stream(committed, s)).collect()
}

/// Checks one stream against the committed history (ordered by revision; events of one
/// revision in commit order). Every committed event in scope from the start revision
/// through the last revision the stream reached (its latest event or progress, or
/// `covered_through`) must arrive exactly once per connection, in order, unchanged; a
/// revision the stream reached is owed completely.
pub fn check_stream(committed: &[Event], stream: &WatchStream) -> Vec<WatchAnomaly> {
    Replay::new(committed, stream).run()
}

/// A write the cluster acknowledged, with the revision its response reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckedWrite {
    pub path: String,
    pub revision: u64,
    /// `None` for a delete.
    pub value: Option<String>,
}

/// Checks that every acknowledged write is in the committed history at its revision.
pub fn check_acknowledged(committed: &[Event], acks: &[AckedWrite]) -> Vec<WatchAnomaly> {
    let mut at: HashMap<(u64, &str), Vec<&Event>> = HashMap::new();
    for e in committed {
        at.entry((e.revision, e.path.as_str())).or_default().push(e);
    }
    let mut anomalies = Vec::new();
    for ack in acks {
        let found = at.get(&(ack.revision, ack.path.as_str())).map(Vec::as_slice).unwrap_or_default();
        let matches = |e: &&&Event| match &ack.value {
            None => e.kind == EventKind::Delete,
            Some(v) => e.kind != EventKind::Delete && e.value.as_ref() == Some(v),
        };
        if found.iter().any(|e| matches(&e)) {
            continue;
        }
        let what = ack.value.as_ref().map_or_else(|| "delete".to_string(), |v| format!("write {v:?}"));
        let there: Vec<String> = found.iter().map(|e| e.describe()).collect();
        let there = if there.is_empty() { "nothing for that path".to_string() } else { there.join(", ") };
        anomalies.push(WatchAnomaly {
            stream: "acks".to_string(),
            kind: WatchAnomalyKind::AckNotCommitted,
            revision: Some(ack.revision),
            text: format!(
                "acknowledged {what} of {} at revision {} is not in the committed history (it has {there})",
                ack.path, ack.revision
            ),
        });
    }
    anomalies
}

/// The state of replaying one stream.
struct Replay<'a> {
    stream: &'a WatchStream,
    /// Committed events the stream owes, in order.
    owed: Vec<&'a Event>,
    committed: &'a [Event],
    by_identity: HashMap<(u64, &'a str, EventKind), Vec<usize>>,
    /// Times each owed event was received, over all connections.
    received: Vec<u32>,
    /// Owed events received on the current connection.
    this_connection: HashSet<usize>,
    /// Index in `owed` of the next event the stream should deliver.
    next: usize,
    /// `Last-Event-ID` of the current connection.
    resumed_after: Option<u64>,
    /// The owed event the current connection delivered last in order.
    last: Option<usize>,
    /// Highest revision the stream reached.
    reached: u64,
    /// Why an owed event was passed over, for the report if it never arrives.
    passed_over: HashMap<usize, String>,
    anomalies: Vec<WatchAnomaly>,
}

impl<'a> Replay<'a> {
    fn new(committed: &'a [Event], stream: &'a WatchStream) -> Replay<'a> {
        let mut sorted: Vec<&Event> = committed.iter().collect();
        sorted.sort_by_key(|e| e.revision); // stable: keeps commit order within a revision
        let owed: Vec<&Event> = sorted
            .into_iter()
            .filter(|e| e.revision >= stream.start_revision && stream.scope.matches(&e.path))
            .collect();
        let mut by_identity: HashMap<(u64, &str, EventKind), Vec<usize>> = HashMap::new();
        for (i, e) in owed.iter().enumerate() {
            by_identity.entry((e.revision, e.path.as_str(), e.kind)).or_default().push(i);
        }
        Replay {
            stream,
            received: vec![0; owed.len()],
            owed,
            committed,
            by_identity,
            this_connection: HashSet::new(),
            next: 0,
            resumed_after: None,
            last: None,
            reached: 0,
            passed_over: HashMap::new(),
            anomalies: Vec::new(),
        }
    }

    fn run(mut self) -> Vec<WatchAnomaly> {
        for item in &self.stream.items {
            match item {
                StreamItem::Event(e) => self.event(e),
                StreamItem::Reconnect { last_event_id } => {
                    self.this_connection.clear();
                    self.resumed_after = *last_event_id;
                    self.last = None;
                    let after = last_event_id.map_or(0, |n| n + 1).max(self.stream.start_revision);
                    self.next = self.owed.partition_point(|e| e.revision < after);
                }
                StreamItem::Progress { revision } => {
                    let through = self.owed.partition_point(|e| e.revision <= *revision);
                    let why = format!("progress through revision {revision} came first");
                    self.pass_over(through, &why);
                    self.reached = self.reached.max(*revision);
                }
            }
        }
        let covered = self.reached.max(self.stream.covered_through.unwrap_or(0));
        let owed = std::mem::take(&mut self.owed);
        for (i, e) in owed.iter().enumerate() {
            if e.revision > covered || self.received[i] > 0 {
                continue;
            }
            let why = self.passed_over.get(&i).cloned().unwrap_or_else(|| {
                format!("never delivered, though the stream covered revisions through {covered}")
            });
            let text = format!("{}: missing {}: {why}", self.stream.name, e.describe());
            self.report(WatchAnomalyKind::Missing, e.revision, text);
        }
        self.anomalies
    }

    fn event(&mut self, e: &Event) {
        let name = &self.stream.name;
        if e.revision < self.stream.start_revision {
            let text = format!(
                "{name}: received {} before start revision {}",
                e.describe(),
                self.stream.start_revision
            );
            return self.report(WatchAnomalyKind::BeforeStart, e.revision, text);
        }
        if let Some(n) = self.resumed_after.filter(|&n| e.revision <= n) {
            let text =
                format!("{name}: after reconnecting with Last-Event-ID {n}, received {} again", e.describe());
            return self.report(WatchAnomalyKind::ReplayAfterResume, e.revision, text);
        }
        let candidates = self.by_identity.get(&(e.revision, e.path.as_str(), e.kind));
        let unused = candidates.and_then(|c| c.iter().copied().find(|i| !self.this_connection.contains(i)));
        let Some(i) = unused else {
            return match candidates {
                Some(_) => {
                    let text = format!("{name}: received {} twice on one connection", e.describe());
                    self.report(WatchAnomalyKind::Duplicate, e.revision, text)
                }
                None => self.unknown_event(e),
            };
        };
        let owed = self.owed[i];
        if owed.kind != EventKind::Delete && owed.value != e.value {
            let text =
                format!("{name}: {}: expected value {:?}, got {:?}", owed.describe(), owed.value, e.value);
            self.report(WatchAnomalyKind::Mismatch, e.revision, text);
        }
        if i < self.next {
            let text = format!(
                "{name}: received {} after {}, which was committed later",
                e.describe(),
                self.owed[self.next - 1].describe()
            );
            self.report(WatchAnomalyKind::OutOfOrder, e.revision, text);
        } else {
            let why = match (self.last, self.resumed_after) {
                (Some(last), _) => {
                    format!("the stream went on from {} to {}", self.owed[last].describe(), e.describe())
                }
                (None, Some(n)) => {
                    format!(
                        "after reconnecting with Last-Event-ID {n}, the stream resumed at {}",
                        e.describe()
                    )
                }
                (None, None) => format!("the stream started at {}", e.describe()),
            };
            self.pass_over(i, &why);
            self.next = i + 1;
            self.last = Some(i);
        }
        self.this_connection.insert(i);
        self.received[i] += 1;
        self.reached = self.reached.max(e.revision);
    }

    /// Notes why owed events from `next` up to `to` were passed over, and moves past them.
    fn pass_over(&mut self, to: usize, why: &str) {
        for j in self.next..to {
            if self.received[j] == 0 {
                self.passed_over.entry(j).or_insert_with(|| why.to_string());
            }
        }
        self.next = self.next.max(to);
    }

    /// An event that is not owed: outside the scope, or not committed as received.
    fn unknown_event(&mut self, e: &Event) {
        let name = &self.stream.name;
        let same_place: Vec<&Event> =
            self.committed.iter().filter(|c| c.revision == e.revision && c.path == e.path).collect();
        let (kind, text) = if same_place.iter().any(|c| c.kind == e.kind) {
            (
                WatchAnomalyKind::OutOfScope,
                format!("{name}: received {}, outside scope {:?}", e.describe(), self.stream.scope),
            )
        } else if let Some(c) = same_place.first() {
            (WatchAnomalyKind::Mismatch, format!("{name}: expected {}, got {}", c.describe(), e.describe()))
        } else {
            (
                WatchAnomalyKind::NotCommitted,
                format!("{name}: received {}, which was never committed", e.describe()),
            )
        };
        self.report(kind, e.revision, text);
    }

    fn report(&mut self, kind: WatchAnomalyKind, revision: u64, text: String) {
        self.anomalies.push(WatchAnomaly {
            stream: self.stream.name.clone(),
            kind,
            revision: Some(revision),
            text,
        });
    }
}

#[cfg(test)]
mod tests;
