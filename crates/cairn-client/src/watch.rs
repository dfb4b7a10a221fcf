//! Watches: `GET /v1/watch/{path}` as a stream that survives lost connections and members.
//!
//! No gap, no duplicate: the server puts `id: R` only on the last event of revision R, so
//! events are held until their revision's id arrives and only then handed out; a stream
//! resumed with `Last-Event-ID: R` continues right after R. A connection lost halfway
//! through a revision (or a snapshot) is thus resent whole, and nothing was handed out twice.

use std::collections::VecDeque;

use cairn_api::{validate_path, Header, Node};
use futures::stream::BoxStream;
use serde::Deserialize;

use crate::client::{encode_path, query, Call, Client};
use crate::error::{Error, Result, ServerError};
use crate::sse::SseEvent;
use crate::stream::{Decoder, Resuming, Step};
use crate::wire::NodeJson;

/// What a watch sees of the namespace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Scope {
    /// The node itself.
    #[default]
    Node,
    /// Its direct children.
    Children,
    /// The node and its whole subtree.
    Recursive,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchOptions {
    pub scope: Scope,
    /// Start at this revision (replayed from history); `None` starts now.
    pub from_revision: Option<u64>,
    /// Add the node as it was before each set or delete.
    pub prev: bool,
    /// Without `from_revision`: first the current state as `Create` events, then `Synced`.
    pub snapshot: bool,
}

/// A change of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEvent {
    /// The change's revision (for snapshot events, the snapshot's revision).
    pub revision: u64,
    /// The node after the change; for a delete, as it was when deleted.
    pub node: Node,
    /// With `prev`: the node before a set or delete.
    pub prev: Option<Node>,
}

/// An item of a watch stream. `Synced` and `Progress` carry no change: skip them unless
/// you want to know how far the stream has reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// A node was created (also each node of a snapshot, before `Synced`).
    Create(NodeEvent),
    Set(NodeEvent),
    Delete(NodeEvent),
    /// The snapshot is complete at `revision`; changes after it follow.
    Synced {
        revision: u64,
    },
    /// A bookmark: every change up to `revision` has been delivered.
    Progress {
        revision: u64,
    },
}

impl WatchEvent {
    pub fn revision(&self) -> u64 {
        match self {
            WatchEvent::Create(e) | WatchEvent::Set(e) | WatchEvent::Delete(e) => e.revision,
            WatchEvent::Synced { revision } | WatchEvent::Progress { revision } => *revision,
        }
    }

    /// The node change, for `Create`, `Set` and `Delete`.
    pub fn change(&self) -> Option<&NodeEvent> {
        match self {
            WatchEvent::Create(e) | WatchEvent::Set(e) | WatchEvent::Delete(e) => Some(e),
            _ => None,
        }
    }
}

/// A watch: changes in revision order, each once, until an error item (`compacted`, or a
/// cluster unreachable for the client's stream retry window) ends it.
pub type WatchStream = BoxStream<'static, Result<WatchEvent>>;

#[derive(Deserialize)]
struct ChangeJson {
    revision: u64,
    node: NodeJson,
    #[serde(default)]
    prev: Option<NodeJson>,
}

#[derive(Deserialize)]
struct RevisionJson {
    revision: u64,
}

/// `data` of `event: cancelled`: the revision delivered last, and why.
#[derive(Deserialize, Default)]
pub(crate) struct CancelledJson {
    #[serde(default)]
    pub revision: Option<u64>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

impl CancelledJson {
    /// A `compacted` cut ends the stream: what it would resume from is gone.
    pub(crate) fn terminal_error(&self) -> Option<Error> {
        (self.code.as_deref() == Some("compacted")).then(|| {
            Error::Server(Box::new(ServerError {
                status: 410,
                code: "compacted".into(),
                message: self.message.clone().or_else(|| self.reason.clone()).unwrap_or_default(),
                limit: None,
                compact_revision: None,
                header: None,
            }))
        })
    }
}

pub(crate) fn parse_id(event: &SseEvent) -> Result<Option<u64>> {
    event
        .id
        .as_deref()
        .map(|id| {
            id.trim().parse().map_err(|_| Error::Protocol(format!("event id \"{id}\" is not a revision")))
        })
        .transpose()
}

pub(crate) fn parse_data<T: serde::de::DeserializeOwned>(event: &SseEvent) -> Result<T> {
    serde_json::from_str(&event.data)
        .map_err(|e| Error::Protocol(format!("cannot read a \"{}\" event: {e}", event.event)))
}

pub(crate) struct WatchDecoder {
    base: String,
    opts: WatchOptions,
    /// Every event up to this revision has been handed out (or was before the start).
    last: Option<u64>,
    /// Events of a revision (or snapshot) whose closing id has not come yet.
    pending: Vec<WatchEvent>,
    ready: VecDeque<WatchEvent>,
}

impl WatchDecoder {
    pub(crate) fn new(path: &str, opts: WatchOptions, start_after: Option<u64>) -> WatchDecoder {
        WatchDecoder {
            base: format!("/v1/watch{}", encode_path(path)),
            opts,
            last: start_after,
            pending: Vec::new(),
            ready: VecDeque::new(),
        }
    }

    fn delivered(&self, revision: u64) -> bool {
        self.last.is_some_and(|l| revision <= l)
    }

    fn close_revision(&mut self, revision: u64) {
        self.ready.extend(self.pending.drain(..));
        self.last = Some(self.last.map_or(revision, |l| l.max(revision)));
    }

    fn step(&mut self, event: SseEvent) -> Result<Step> {
        let id = parse_id(&event)?;
        match event.event.as_str() {
            kind @ ("create" | "set" | "delete") => {
                let c: ChangeJson = parse_data(&event)?;
                if self.delivered(c.revision) {
                    return Ok(Step::Continue);
                }
                let e = NodeEvent {
                    revision: c.revision,
                    node: c.node.into_node()?,
                    prev: c.prev.map(NodeJson::into_node).transpose()?,
                };
                self.pending.push(match kind {
                    "create" => WatchEvent::Create(e),
                    "set" => WatchEvent::Set(e),
                    _ => WatchEvent::Delete(e),
                });
                if let Some(r) = id {
                    self.close_revision(r);
                }
            }
            "synced" => {
                let revision = match id {
                    Some(r) => r,
                    None => parse_data::<RevisionJson>(&event)?.revision,
                };
                self.close_revision(revision);
                self.ready.push_back(WatchEvent::Synced { revision });
            }
            "progress" => {
                let revision = match id {
                    Some(r) => r,
                    None => parse_data::<RevisionJson>(&event)?.revision,
                };
                if !self.delivered(revision) || self.last == Some(revision) {
                    self.close_revision(revision);
                    self.ready.push_back(WatchEvent::Progress { revision });
                }
            }
            "cancelled" => {
                let c: CancelledJson = serde_json::from_str(&event.data).unwrap_or_default();
                if let Some(e) = c.terminal_error() {
                    return Ok(Step::Fail(e));
                }
                // The server names the revision it delivered last; adopt it only when the
                // stream already had a resume point (never halfway through a snapshot).
                if let (Some(l), Some(r)) = (self.last, c.revision) {
                    self.last = Some(l.max(r));
                }
                return Ok(Step::Reconnect);
            }
            _ => {} // an event kind this client does not know yet
        }
        Ok(Step::Continue)
    }
}

impl Decoder for WatchDecoder {
    type Item = WatchEvent;

    fn request(&self) -> (String, Option<u64>) {
        let mut params = vec![];
        match self.opts.scope {
            Scope::Node => {}
            Scope::Children => params.push(("children", None)),
            Scope::Recursive => params.push(("recursive", None)),
        }
        if self.opts.prev {
            params.push(("prev", None));
        }
        if self.last.is_none() {
            if let Some(from) = self.opts.from_revision {
                params.push(("from_revision", Some(from.to_string())));
            } else if self.opts.snapshot {
                params.push(("snapshot", None));
            }
        }
        (format!("{}{}", self.base, query(&params)), self.last)
    }

    fn on_event(&mut self, event: SseEvent) -> Step {
        self.step(event).unwrap_or_else(Step::Fail)
    }

    fn on_disconnect(&mut self) {
        self.pending.clear();
    }

    fn pop(&mut self) -> Option<WatchEvent> {
        self.ready.pop_front()
    }
}

#[derive(Deserialize)]
struct HealthAnswer {
    header: Header,
}

impl Client {
    /// Opens a watch. On return the server has registered it, so every change after this
    /// call is in the stream. A watch that starts now first learns the current revision
    /// (linearizable through `/ready`, or failing that a member's applied revision from
    /// `/health`) and starts right after it, so that even its first connection can be
    /// resumed without a gap.
    pub async fn watch(&self, path: &str, opts: WatchOptions) -> Result<WatchStream> {
        validate_path(path).map_err(|e| Error::InvalidArgument(e.message))?;
        let start_after = if opts.from_revision.is_none() && !opts.snapshot {
            let now = match self.call_json::<HealthAnswer>(&Call::get("/ready".into())).await {
                Ok(a) => a.header.revision,
                // No member can confirm with a leader; a watch is served from a member's
                // own state anyway.
                Err(_) => self.call_json::<HealthAnswer>(&Call::get("/health".into())).await?.header.revision,
            };
            Some(now)
        } else {
            None
        };
        let decoder = WatchDecoder::new(path, opts, start_after);
        Ok(Resuming::open(self.clone(), decoder).await?.into_stream())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sse(event: &str, id: Option<u64>, data: &str) -> SseEvent {
        SseEvent { event: event.into(), data: data.into(), id: id.map(|i| i.to_string()) }
    }

    fn change(kind: &str, revision: u64, path: &str) -> String {
        format!(
            r#"{{"type":"{kind}","revision":{revision},"node":{{"path":"{path}","value":"v","stat":{{"create_revision":1,"mod_revision":{revision},"version":0,"cversion":0,"num_children":0,"lease":null,"ctime":0,"mtime":0,"data_length":1}}}},"prev":null}}"#
        )
    }

    fn drain(d: &mut WatchDecoder) -> Vec<(String, u64)> {
        std::iter::from_fn(|| d.pop())
            .map(|e| {
                let path = e.change().map(|c| c.node.path.clone()).unwrap_or_else(|| format!("{e:?}"));
                (path, e.revision())
            })
            .collect()
    }

    #[test]
    fn a_revision_is_handed_out_only_once_its_id_came() {
        let mut d =
            WatchDecoder::new("/a", WatchOptions { scope: Scope::Recursive, ..Default::default() }, Some(2));
        assert_eq!(d.request(), ("/v1/watch/a?recursive".into(), Some(2)));
        d.on_event(sse("create", None, &change("create", 3, "/a/x")));
        assert!(drain(&mut d).is_empty());
        d.on_event(sse("create", Some(3), &change("create", 3, "/a/y")));
        assert_eq!(drain(&mut d), [("/a/x".into(), 3), ("/a/y".into(), 3)]);
        // The connection drops halfway through revision 4: its first event is forgotten,
        // and the resumed stream (after 3) sends revision 4 whole, once.
        d.on_event(sse("delete", None, &change("delete", 4, "/a/x")));
        d.on_disconnect();
        assert_eq!(d.request().1, Some(3));
        d.on_event(sse("delete", None, &change("delete", 4, "/a/x")));
        d.on_event(sse("delete", Some(4), &change("delete", 4, "/a/y")));
        assert_eq!(drain(&mut d), [("/a/x".into(), 4), ("/a/y".into(), 4)]);
        // A replayed revision is dropped.
        d.on_event(sse("set", Some(4), &change("set", 4, "/a/y")));
        assert!(drain(&mut d).is_empty());
    }

    #[test]
    fn snapshot_then_synced_then_resume_without_snapshot() {
        let opts = WatchOptions { scope: Scope::Children, snapshot: true, prev: true, ..Default::default() };
        let mut d = WatchDecoder::new("/q", opts, None);
        assert_eq!(d.request(), ("/v1/watch/q?children&prev&snapshot".into(), None));
        d.on_event(sse("create", None, &change("create", 7, "/q/a")));
        // Lost before `synced`: start over with a fresh snapshot, nothing handed out twice.
        d.on_disconnect();
        assert_eq!(d.request(), ("/v1/watch/q?children&prev&snapshot".into(), None));
        d.on_event(sse("create", None, &change("create", 8, "/q/a")));
        d.on_event(sse("create", None, &change("create", 8, "/q/b")));
        d.on_event(sse("synced", Some(8), r#"{"revision":8}"#));
        let got = drain(&mut d);
        assert_eq!(got.len(), 3);
        assert_eq!(got[2].1, 8);
        assert_eq!(d.request(), ("/v1/watch/q?children&prev".into(), Some(8)));
    }

    #[test]
    fn progress_moves_the_resume_point_and_cancelled_reconnects() {
        let opts = WatchOptions { from_revision: Some(5), ..Default::default() };
        let mut d = WatchDecoder::new("/", opts, None);
        assert_eq!(d.request(), ("/v1/watch/?from_revision=5".into(), None));
        d.on_event(sse("progress", Some(9), r#"{"revision":9}"#));
        assert_eq!(drain(&mut d), [("Progress { revision: 9 }".into(), 9)]);
        assert_eq!(d.request(), ("/v1/watch/".into(), Some(9)));
        let step = d.on_event(sse("cancelled", None, r#"{"reason":"fell behind","revision":12}"#));
        assert!(matches!(step, Step::Reconnect));
        assert_eq!(d.request().1, Some(12));
        // An older bookmark changes nothing.
        d.on_event(sse("progress", Some(10), r#"{"revision":10}"#));
        assert!(drain(&mut d).is_empty());
        d.on_event(sse("something-new", Some(99), "{}"));
        assert_eq!(d.request().1, Some(12));
    }

    #[test]
    fn compacted_ends_the_stream_and_bad_frames_are_errors() {
        let mut d = WatchDecoder::new("/a", WatchOptions::default(), Some(1));
        let step = d.on_event(sse(
            "cancelled",
            None,
            r#"{"code":"compacted","message":"revision 2 has been compacted","revision":1}"#,
        ));
        assert!(matches!(step, Step::Fail(e) if e.is_compacted()));
        assert!(matches!(d.on_event(sse("set", Some(3), "not json")), Step::Fail(Error::Protocol(_))));
        assert!(matches!(d.on_event(sse("progress", Some(0), "x")), Step::Continue));
        let bad_id = SseEvent { event: "set".into(), data: change("set", 3, "/a"), id: Some("x".into()) };
        assert!(matches!(d.on_event(bad_id), Step::Fail(Error::Protocol(_))));
    }
}
