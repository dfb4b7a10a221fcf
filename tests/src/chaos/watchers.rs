//! Watch streams during a run: each watcher follows `/chaos` recursively, hops to another
//! member every few seconds or when its stream breaks or stalls, and resumes with
//! `Last-Event-ID`. What it received is checked against the committed history, read
//! after the run by one fresh stream from the first revision.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::workload::Ctx;
use crate::check::watch::{Event, EventKind, StreamItem};
use crate::sse::{open_watch, Watch};
use rand::Rng;

/// How long a member may take to start a stream before the watcher tries another.
const OPEN_TIMEOUT: Duration = Duration::from_secs(2);
/// A stream with nothing (not even a bookmark) for this long counts as stalled.
const STALL: Duration = Duration::from_secs(3);

/// Opens a stream without blocking on a member that is paused: the attempt runs on its
/// own thread and is abandoned after [`OPEN_TIMEOUT`].
fn open(addr: std::net::SocketAddr, target: String, last_event_id: Option<u64>) -> Option<Watch> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(open_watch(addr, &target, last_event_id, false).ok());
    });
    rx.recv_timeout(OPEN_TIMEOUT).ok().flatten()
}

fn target(from_revision: u64) -> String {
    format!("/v1/watch/chaos?recursive&from_revision={from_revision}")
}

/// Reads one stream into `seen` until `until` says stop, it breaks or stalls; returns the
/// last SSE id.
fn drain(
    w: &Watch,
    seen: &mut Vec<StreamItem>,
    mut last: Option<u64>,
    until: impl Fn(Option<u64>) -> bool,
) -> Option<u64> {
    while !until(last) {
        let Some(e) = w.next(STALL) else { break };
        let kind = match e.event.as_str() {
            "create" => Some(EventKind::Create),
            "set" => Some(EventKind::Set),
            "delete" => Some(EventKind::Delete),
            "progress" => {
                if let Some(id) = e.id {
                    seen.push(StreamItem::Progress { revision: id });
                }
                None
            }
            "cancelled" => break,
            _ => None,
        };
        if let Some(kind) = kind {
            seen.push(StreamItem::Event(Event {
                revision: e.data["revision"].as_u64().unwrap_or(0),
                path: e.data["node"]["path"].as_str().unwrap_or_default().to_owned(),
                kind,
                value: e.data["node"]["value"].as_str().map(str::to_owned),
            }));
        }
        if e.id.is_some() {
            last = e.id;
        }
    }
    last
}

/// One watcher for the whole run, starting at `from_revision`.
pub fn watcher(ctx: &Ctx, worker: u64, from_revision: u64) -> (Vec<StreamItem>, Option<u64>) {
    let mut rng = ctx.rng_for(60_000 + worker);
    let mut seen = Vec::new();
    let mut last: Option<u64> = None;
    while ctx.running() {
        let addr = ctx.member_for(&mut rng);
        let Some(w) = open(addr, target(from_revision), last) else {
            thread::sleep(Duration::from_millis(200));
            continue;
        };
        seen.push(StreamItem::Reconnect { last_event_id: last });
        let hop = Instant::now() + Duration::from_millis(rng.gen_range(2_000..5_000));
        last = drain(&w, &mut seen, last, |_| Instant::now() >= hop || !ctx.running());
    }
    (seen, last)
}

/// After the run: resumes a watcher until it has reached `revision` (any member); returns
/// the last SSE id it got.
pub fn catch_up(
    ctx: &Ctx,
    seen: &mut Vec<StreamItem>,
    mut last: Option<u64>,
    from_revision: u64,
    revision: u64,
) -> Option<u64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut member = 0;
    while Instant::now() < deadline {
        if last.is_some_and(|l| l >= revision) {
            return last;
        }
        let addr = ctx.addrs[member % ctx.addrs.len()];
        member += 1;
        let Some(w) = open(addr, target(from_revision), last) else { continue };
        seen.push(StreamItem::Reconnect { last_event_id: last });
        last = drain(&w, seen, last, |l| l.is_some_and(|l| l >= revision));
    }
    last
}

/// The committed history of `/chaos` from `from_revision` through `revision`, as one
/// fresh stream from any member sees it.
pub fn committed(ctx: &Ctx, from_revision: u64, revision: u64) -> Option<Vec<Event>> {
    for addr in ctx.addrs.iter().cycle().take(ctx.addrs.len() * 3) {
        let Some(w) = open(*addr, target(from_revision), None) else { continue };
        let mut seen = Vec::new();
        let last = drain(&w, &mut seen, None, |l| l.is_some_and(|l| l >= revision));
        if last.is_some_and(|l| l >= revision) {
            return Some(
                seen.into_iter()
                    .filter_map(|s| match s {
                        StreamItem::Event(e) => Some(e),
                        _ => None,
                    })
                    .collect(),
            );
        }
    }
    None
}
