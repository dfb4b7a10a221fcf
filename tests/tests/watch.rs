#![allow(clippy::unwrap_used)]
//! Watches with real processes: SSE streams from any member, resumable with
//! `Last-Event-ID` on another member and across a leader kill, 410 below the history window,
//! slow consumers cut and resumed without loss, long-poll, and snapshot-then-stream.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use cairn_tests::sse::{open_watch, Watch};
use cairn_tests::{eventually, Cluster};
use serde_json::Value;

/// A change as a watcher saw it: (revision, type, path).
type Seen = (u64, String, String);

/// Reads change events until `done` says so, the stream ends, or the timeout; returns the
/// changes and the last SSE id seen.
fn read_changes(
    w: &Watch,
    timeout: Duration,
    mut done: impl FnMut(&[Seen]) -> bool,
) -> (Vec<Seen>, Option<u64>, bool) {
    let deadline = Instant::now() + timeout;
    let (mut seen, mut last_id) = (Vec::new(), None);
    while !done(&seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            panic!("timed out; saw {} changes, last {:?}", seen.len(), seen.last());
        }
        let Some(e) = w.next(left) else { return (seen, last_id, true) };
        if let Some(id) = e.id {
            last_id = Some(id);
        }
        match e.event.as_str() {
            "create" | "set" | "delete" => {
                let rev = e.data["revision"].as_u64().unwrap();
                seen.push((rev, e.event.clone(), e.data["node"]["path"].as_str().unwrap().to_owned()));
            }
            "progress" | "synced" => {}
            "cancelled" => return (seen, last_id, true),
            other => panic!("unexpected event {other}: {e:?}"),
        }
    }
    (seen, last_id, false)
}

fn assert_in_order(seen: &[Seen]) {
    for w in seen.windows(2) {
        assert!(w[0].0 <= w[1].0, "revisions go backwards: {:?} then {:?}", w[0], w[1]);
    }
}

/// Writers on every member; returns (path, revision) of every acknowledged write.
fn write_from_every_member(c: &Cluster, prefix: &str, per_member: usize) -> Vec<(String, u64)> {
    let mut handles = Vec::new();
    for m in 0..c.len() {
        let url = c.url(m, "");
        let prefix = prefix.to_owned();
        handles.push(thread::spawn(move || {
            let http = cairn_tests::http_client();
            let mut acked = Vec::new();
            for i in 0..per_member {
                let path = format!("{prefix}/m{m}-{i:04}");
                if let Ok(r) = http.put(format!("{url}/v1/nodes{path}?parents")).body(format!("v{i}")).send()
                {
                    if r.status().is_success() {
                        let v: Value = r.json().unwrap();
                        acked.push((path, v["header"]["revision"].as_u64().unwrap()));
                    }
                }
            }
            acked
        }));
    }
    handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
}

/// The committed history of `path`'s subtree from revision 1, as a fresh watch replays it.
fn history(c: &Cluster, i: usize, path: &str, up_to: u64) -> Vec<Seen> {
    let w = open_watch(c.client_addr(i), &format!("/v1/watch{path}?recursive&from_revision=1"), None, false)
        .unwrap();
    let (seen, _, _) = read_changes(&w, Duration::from_secs(20), |s| s.last().is_some_and(|l| l.0 >= up_to));
    seen
}

#[test]
fn follower_watch_sees_every_acknowledged_write_once_in_order() {
    let mut c = Cluster::start(3);
    let leader = c.leader();
    let follower = (leader + 1) % 3;
    c.put(leader, "/v1/nodes/w", "").expect_status(201);
    let w = open_watch(c.client_addr(follower), "/v1/watch/w?recursive", None, false).unwrap();
    let acked = write_from_every_member(&c, "/w", 60);
    assert_eq!(acked.len(), 180, "every write is acknowledged on a healthy cluster");
    let max = acked.iter().map(|a| a.1).max().unwrap();
    let (seen, _, ended) =
        read_changes(&w, Duration::from_secs(20), |s| s.last().is_some_and(|l| l.0 >= max));
    assert!(!ended);
    assert_in_order(&seen);
    let unique: HashSet<&Seen> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no event twice");
    for (path, rev) in &acked {
        assert_eq!(
            seen.iter().filter(|s| &s.2 == path && s.0 == *rev).count(),
            1,
            "{path}@{rev} exactly once"
        );
    }
    // Equal to the committed history as another member replays it.
    let replay = history(&c, leader, "/w", max);
    let from_start: Vec<Seen> = replay.into_iter().filter(|s| s.0 > seen[0].0 - 1).collect();
    assert_eq!(seen, from_start);
}

#[test]
fn resume_on_another_member_and_across_a_leader_kill_has_no_gap_or_duplicate() {
    let mut c = Cluster::start(3);
    c.put(0, "/v1/nodes/r", "").expect_status(201);
    let start_rev = c.get(0, "/v1/nodes/r").json()["header"]["revision"].as_u64().unwrap();
    let leader = c.leader();
    let mut member = (leader + 1) % 3;
    let mut all: Vec<Seen> = Vec::new();
    let mut last_id = Some(start_rev);
    let mut total_acked: Vec<(String, u64)> = Vec::new();
    // Round 1 kills the watched follower; round 2 kills the leader.
    for round in 0..2 {
        let w = open_watch(c.client_addr(member), "/v1/watch/r?recursive", last_id, false).unwrap();
        let acked = write_from_every_member(&c, &format!("/r/round{round}"), 20);
        let max = acked.iter().map(|a| a.1).max().unwrap();
        total_acked.extend(acked);
        // Read part of the stream, then kill the member that serves it (or the leader).
        let (seen, id, _) = read_changes(&w, Duration::from_secs(20), |s| {
            s.len() >= 10 || s.last().is_some_and(|l| l.0 >= max)
        });
        all.extend(seen);
        last_id = id.or(last_id);
        let victim = if round == 0 { member } else { c.leader() };
        c.kill(victim);
        // Drain what was already on the wire before the kill; the stream then ends.
        let (rest, id, _) = read_changes(&w, Duration::from_secs(10), |_| false);
        all.extend(rest);
        last_id = id.or(last_id);
        member = (0..3).find(|m| *m != victim && c.is_alive(*m)).unwrap();
        eventually(Duration::from_secs(15), "a leader among the living", || {
            c.cluster_info(member).and_then(|v| v["cluster"]["leader"].as_u64())
        });
        let w2 = open_watch(c.client_addr(member), "/v1/watch/r?recursive", last_id, false).unwrap();
        let reached = all.last().map(|l| l.0);
        let (seen, id, _) = read_changes(&w2, Duration::from_secs(20), |s| {
            s.last().map(|l| l.0).or(reached).is_some_and(|r| r >= max)
        });
        all.extend(seen);
        last_id = id.or(last_id);
        c.restart(victim);
    }
    assert_in_order(&all);
    let unique: HashSet<&Seen> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "no event twice across reconnects");
    let max = all.last().unwrap().0;
    let replay: Vec<Seen> = history(&c, member, "/r", max).into_iter().filter(|s| s.0 > start_rev).collect();
    assert_eq!(all, replay, "the resumed streams together equal the committed history");
    for (path, rev) in &total_acked {
        assert!(all.iter().any(|s| &s.2 == path && s.0 == *rev), "acknowledged {path}@{rev} was delivered");
    }
}

#[test]
fn compacted_revisions_answer_410() {
    let c = Cluster::start_with(1, &["--history-revisions", "10"]);
    c.put(0, "/v1/nodes/h", "").expect_status(201);
    for i in 0..40 {
        c.put(0, &format!("/v1/nodes/h/k{i}"), "x").expect_status(201);
    }
    // The leader compacts in the background (every few seconds).
    let compact = eventually(Duration::from_secs(20), "compaction", || {
        let r = c.get(0, "/v1/nodes/h?revision=1");
        (r.status == 410).then(|| r.json()["compact_revision"].as_u64().unwrap())
    });
    assert!(compact > 1);
    let (status, body) =
        open_watch(c.client_addr(0), "/v1/watch/h?recursive&from_revision=1", None, false).err().unwrap();
    assert_eq!(status, 410);
    assert_eq!(body["code"], "compacted");
    assert_eq!(body["compact_revision"].as_u64(), Some(compact));
    let w =
        open_watch(c.client_addr(0), &format!("/v1/watch/h?recursive&from_revision={compact}"), None, false)
            .unwrap();
    let (seen, _, _) = read_changes(&w, Duration::from_secs(10), |s| s.last().is_some_and(|l| l.0 >= 41));
    assert_eq!(seen.first().unwrap().0, compact);
}

#[test]
fn history_older_than_the_age_bound_is_compacted() {
    // A large revision window, a 2 s age window: only age can compact here.
    let c = Cluster::start_with(1, &["--history-revisions", "1000000", "--history-age-secs", "2"]);
    for i in 0..5 {
        c.put(0, &format!("/v1/nodes/aged{i}"), "x").expect_status(201);
    }
    let written = Instant::now();
    let compact = eventually(Duration::from_secs(30), "age-based compaction", || {
        let r = c.get(0, "/v1/nodes/aged0?revision=1");
        (r.status == 410).then(|| r.json()["compact_revision"].as_u64().unwrap())
    });
    assert!(written.elapsed() >= Duration::from_secs(2), "compacted before the age bound");
    assert!((2..=5).contains(&compact), "compacted up to {compact}");
    // The state at the compact revision stays readable.
    c.get(0, &format!("/v1/nodes/aged0?revision={compact}")).expect_status(200);
}

#[test]
fn slow_consumer_is_cut_then_resumes_without_loss() {
    let c = Cluster::start(1);
    c.put(0, "/v1/nodes/s", "").expect_status(201);
    let start = c.get(0, "/v1/nodes/s").json()["header"]["revision"].as_u64().unwrap();
    let mut w = open_watch(c.client_addr(0), "/v1/watch/s?recursive", None, true).unwrap();
    // Enough large events to overflow the socket buffers and the stream's queue.
    let value = "x".repeat(8 * 1024);
    let writers: Vec<_> = (0..8)
        .map(|t| {
            let url = c.url(0, "");
            let value = value.clone();
            thread::spawn(move || {
                let http = cairn_tests::http_client();
                for i in 0..600 {
                    let r =
                        http.put(format!("{url}/v1/nodes/s/t{t}-{i}")).body(value.clone()).send().unwrap();
                    assert!(r.status().is_success());
                }
            })
        })
        .collect();
    for h in writers {
        h.join().unwrap();
    }
    let last = c.get(0, "/v1/nodes/s").json()["header"]["revision"].as_u64().unwrap();
    w.resume();
    let (mut seen, _, ended) =
        read_changes(&w, Duration::from_secs(30), |s| s.last().is_some_and(|l| l.0 >= last));
    assert!(ended, "the stream was cut before delivering everything");
    let metrics = c.get(0, "/metrics").text();
    assert!(
        metrics.lines().any(|l| l.starts_with("cairn_watch_streams_cut_total") && !l.ends_with(" 0")),
        "{metrics}"
    );
    let resume_at = seen.last().map(|s| s.0).unwrap_or(start);
    let w2 = open_watch(c.client_addr(0), "/v1/watch/s?recursive", Some(resume_at), false).unwrap();
    let (more, _, _) = read_changes(&w2, Duration::from_secs(30), |s| s.last().is_some_and(|l| l.0 >= last));
    seen.extend(more);
    assert_in_order(&seen);
    let revs: Vec<u64> = seen.iter().map(|s| s.0).collect();
    let want: Vec<u64> = (start + 1..=last).collect();
    assert_eq!(revs, want, "every revision exactly once across the cut");
}

/// History read back for a watch or a long-poll holds only the changes in its scope, among
/// many more elsewhere.
#[test]
fn history_replays_only_the_watched_scope() {
    let c = Cluster::start(1);
    let mut mine = Vec::new();
    for i in 0..40 {
        for j in 0..3 {
            c.put(0, &format!("/v1/nodes/elsewhere/x{i}-{j}?parents"), "o").expect_status(201);
        }
        let path = format!("/mix/a{}", i % 4);
        let v = c.put(0, &format!("/v1/nodes{path}?parents"), format!("v{i}")).json();
        mine.push((v["header"]["revision"].as_u64().unwrap(), path));
    }
    let last_mine = mine.last().unwrap().0;
    for i in 0..20 {
        c.put(0, &format!("/v1/nodes/elsewhere/late{i}?parents"), "o").expect_status(201);
    }
    let w = open_watch(c.client_addr(0), "/v1/watch/mix?recursive&from_revision=1", None, false).unwrap();
    let (seen, _, ended) =
        read_changes(&w, Duration::from_secs(20), |s| s.last().is_some_and(|l| l.0 >= last_mine));
    assert!(!ended);
    let seen: Vec<(u64, String)> = seen.into_iter().filter(|s| s.2 != "/mix").map(|s| (s.0, s.2)).collect();
    assert_eq!(seen, mine, "every change under /mix, in order, and nothing else");
    // A long-poll on /mix/a3 after its last change: the writes since are elsewhere, so it
    // waits out its timeout.
    let a3 = mine.iter().rev().find(|m| m.1 == "/mix/a3").unwrap().0;
    let t = Instant::now();
    let v = c.get(0, &format!("/v1/nodes/mix/a3?wait_revision={a3}&timeout=700ms")).json();
    assert!(t.elapsed() >= Duration::from_millis(650), "woke for another path: {:?}", t.elapsed());
    assert_eq!(v["node"]["value"], "v39");
}

#[test]
fn long_poll_wakes_on_change_and_returns_at_timeout() {
    let c = Cluster::start(1);
    let r = c.put(0, "/v1/nodes/lp", "a").json();
    let rev = r["header"]["revision"].as_u64().unwrap();
    // Times out with the current state.
    let t = Instant::now();
    let v = c.get(0, &format!("/v1/nodes/lp?wait_revision={rev}&timeout=700ms")).json();
    assert!(t.elapsed() >= Duration::from_millis(650), "returned early: {:?}", t.elapsed());
    assert_eq!(v["node"]["value"], "a");
    // Wakes on a change.
    let url = c.url(0, "/v1/nodes/lp");
    let writer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(300));
        cairn_tests::http_client().put(url).body("b").send().unwrap();
    });
    let t = Instant::now();
    let v = c.get(0, &format!("/v1/nodes/lp?wait_revision={rev}&timeout=20s")).json();
    writer.join().unwrap();
    assert!(t.elapsed() < Duration::from_secs(10), "did not wake: {:?}", t.elapsed());
    assert_eq!(v["node"]["value"], "b");
    // A change already in history answers at once; bad timeouts are refused.
    let t = Instant::now();
    let v = c.get(0, &format!("/v1/nodes/lp?wait_revision={}&timeout=20s", rev - 1)).json();
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(v["node"]["value"], "b");
    c.get(0, "/v1/nodes/lp?wait_revision=1&timeout=soon").error(400, "invalid_request");
    c.get(0, "/v1/nodes/lp?timeout=1s").error(400, "invalid_request");
}

#[test]
fn snapshot_then_stream_delivers_each_write_exactly_once() {
    let c = Cluster::start(1);
    c.put(0, "/v1/nodes/cfg", "").expect_status(201);
    for i in 0..50 {
        c.put(0, &format!("/v1/nodes/cfg/k{i:03}"), "v0").expect_status(201);
    }
    // Writers race the snapshot.
    let barrier = Arc::new(Barrier::new(2));
    let (url, b) = (c.url(0, ""), barrier.clone());
    let writer = thread::spawn(move || {
        let http = cairn_tests::http_client();
        b.wait();
        let mut acked = BTreeMap::new();
        for i in 0..200 {
            let path = format!("/cfg/k{:03}", i % 80);
            let r = http.put(format!("{url}/v1/nodes{path}")).body(format!("w{i}")).send().unwrap();
            let v: Value = r.json().unwrap();
            acked.insert(path, (format!("w{i}"), v["header"]["revision"].as_u64().unwrap()));
        }
        acked
    });
    barrier.wait();
    let w = open_watch(c.client_addr(0), "/v1/watch/cfg?children&snapshot", None, false).unwrap();
    let acked = writer.join().unwrap();
    let last = acked.values().map(|a| a.1).max().unwrap();
    // Apply the stream to a map: the snapshot, `synced`, then changes after it.
    let mut state: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let mut synced = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let e = w.next(deadline.saturating_duration_since(Instant::now())).expect("stream goes on");
        match e.event.as_str() {
            "create" if synced.is_none() => {
                assert!(e.id.is_none(), "snapshot events carry no id");
                let node = &e.data["node"];
                let path = node["path"].as_str().unwrap().to_owned();
                let prev = state.insert(
                    path.clone(),
                    (node["value"].as_str().unwrap().into(), node["stat"]["mod_revision"].as_u64().unwrap()),
                );
                assert!(prev.is_none(), "{path} twice in the snapshot");
            }
            "synced" => {
                let r = e.data["revision"].as_u64().unwrap();
                assert_eq!(e.id, Some(r));
                assert!(state.values().all(|(_, m)| *m <= r), "snapshot is at its revision");
                synced = Some(r);
            }
            "create" | "set" => {
                let r = synced.expect("changes come after synced");
                let rev = e.data["revision"].as_u64().unwrap();
                assert!(rev > r, "change {rev} is not after the snapshot at {r}");
                let node = &e.data["node"];
                state.insert(
                    node["path"].as_str().unwrap().into(),
                    (node["value"].as_str().unwrap().into(), rev),
                );
                if rev >= last {
                    break;
                }
            }
            "progress" => {
                if synced.is_some() && e.data["revision"].as_u64().unwrap() >= last {
                    break;
                }
            }
            other => panic!("unexpected {other}: {e:?}"),
        }
    }
    for (path, (value, rev)) in &acked {
        assert_eq!(
            state.get(path),
            Some(&(value.clone(), *rev)),
            "{path}: the last write is seen once, in snapshot or stream"
        );
    }
    let current = c.get(0, "/v1/nodes/cfg?children").json();
    assert_eq!(current["children"].as_array().unwrap().len(), state.len());
    // Reconnecting after `synced` resumes without a new snapshot.
    let w2 = open_watch(c.client_addr(0), "/v1/watch/cfg?children&snapshot", Some(last), false).unwrap();
    c.put(0, "/v1/nodes/cfg/after", "z").expect_status(201);
    let e = w2.next(Duration::from_secs(10)).unwrap();
    let e = if e.event == "progress" { w2.next(Duration::from_secs(10)).unwrap() } else { e };
    assert_eq!(e.event, "create");
    assert_eq!(e.data["node"]["path"], "/cfg/after");
}
