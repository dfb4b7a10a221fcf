//! Three-member clusters: forwarding, linearizable reads on every member, failover,
//! whole-cluster crash, and a learner catching up from a snapshot.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cairn_tests::{eventually, json, Cluster};
use reqwest::blocking::Client;
use reqwest::Method;

/// One acknowledged write.
#[derive(Debug, Clone)]
struct Ack {
    path: String,
    value: String,
    started: Instant,
    acked: Instant,
}

/// Writes `<dir>/<name>-<n>` = `v<n>` (each key once) to `base` until `stop`; returns the
/// writes that were acknowledged (2xx).
fn spawn_writer(
    http: Client,
    base: String,
    dir: &str,
    name: String,
    stop: Arc<AtomicBool>,
) -> JoinHandle<Vec<Ack>> {
    let dir = dir.to_owned();
    std::thread::spawn(move || {
        let mut acks = Vec::new();
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let path = format!("{dir}/{name}-{n:06}");
            let value = format!("v{n}");
            n += 1;
            let started = Instant::now();
            match http.put(format!("{base}/v1/nodes{path}?parents")).body(value.clone()).send() {
                Ok(r) if r.status().is_success() => {
                    acks.push(Ack { path, value, started, acked: Instant::now() })
                }
                // Refused or unknown outcome: not acknowledged. Do not spin.
                Ok(_) | Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        acks
    })
}

/// Every node below `dir` as member i sees it (linearizable unless `serializable`), following
/// `next` cursors; None if `dir` does not exist there.
fn subtree(c: &Cluster, i: usize, dir: &str, serializable: bool) -> Option<BTreeMap<String, String>> {
    let consistency = if serializable { "&consistency=serializable" } else { "" };
    let mut out = BTreeMap::new();
    let mut url = format!("/v1/nodes{dir}?recursive&limit=5000{consistency}");
    loop {
        let r = c.get(i, &url);
        if r.status == 404 {
            r.error(404, "not_found");
            return None;
        }
        let v = r.ok_json(200, c.id(i));
        for n in v["nodes"].as_array().unwrap() {
            out.insert(n["path"].as_str().unwrap().to_owned(), n["value"].as_str().unwrap().to_owned());
        }
        match v["next"].as_str() {
            Some(next) => url = format!("/v1/nodes{dir}?recursive&limit=5000{consistency}&after={next}"),
            None => return Some(out),
        }
    }
}

#[track_caller]
fn assert_all_present(acks: &[Ack], seen: &BTreeMap<String, String>, who: &str) {
    let missing: Vec<&Ack> = acks.iter().filter(|a| seen.get(&a.path) != Some(&a.value)).collect();
    assert!(
        missing.is_empty(),
        "{who}: {} of {} acknowledged writes are lost or wrong, e.g. {:?}",
        missing.len(),
        acks.len(),
        missing.iter().take(5).map(|a| (&a.path, &a.value, seen.get(&a.path))).collect::<Vec<_>>()
    );
}

fn followers(c: &mut Cluster, leader: usize) -> Vec<usize> {
    c.alive().into_iter().filter(|&i| i != leader).collect()
}

#[test]
fn writes_through_a_follower_are_readable_linearizably_from_every_member() {
    let mut c = Cluster::start(3);
    let l = c.leader();
    let fs = followers(&mut c, l);
    assert_eq!(fs.len(), 2);
    let leader_id = c.id(l);

    // Every member agrees on the membership and the leader.
    for i in 0..3 {
        let v = c.get(i, "/v1/cluster").ok_json(200, c.id(i));
        assert_eq!(v["cluster"]["leader"], leader_id, "member {}: {v}", c.id(i));
        assert_eq!(v["header"]["leader"], leader_id);
        let members = v["cluster"]["members"].as_array().unwrap();
        assert_eq!(members.len(), 3, "{v}");
        assert!(members.iter().all(|m| m["voter"] == true), "{v}");
        let roles: Vec<&str> = members.iter().map(|m| m["role"].as_str().unwrap()).collect();
        assert_eq!(roles.iter().filter(|r| **r == "leader").count(), 1, "{v}");
    }

    // A write sent to a follower is forwarded and answered by it.
    let f = fs[0];
    let v = c.put(f, "/v1/nodes/fw", "from-follower").ok_json(201, c.id(f));
    assert_eq!(v["header"]["leader"], leader_id);
    assert_eq!(v["node"]["value"], "from-follower");
    let rev = v["header"]["revision"].as_u64().unwrap();
    for i in 0..3 {
        let v = c.get(i, "/v1/nodes/fw").ok_json(200, c.id(i));
        assert_eq!(v["node"]["value"], "from-follower", "member {}", c.id(i));
        assert!(v["header"]["revision"].as_u64().unwrap() >= rev);
    }
    // POST, DELETE and txn through a follower too.
    let r = c.post(fs[1], "/v1/nodes/fw/seq-?sequential", "s");
    let v = r.ok_json(201, c.id(fs[1]));
    let seq = v["node"]["path"].as_str().unwrap().to_owned();
    assert_eq!(r.header("location"), Some(format!("/v1/nodes{seq}")));
    c.post(fs[1], "/v1/nodes/fw", "dup").error(409, "already_exists");
    c.put(fs[0], "/v1/nodes/fw?version=9", "x").error(409, "version_conflict");
    let txn = json!({"compare": [{"path": "/fw", "target": "value", "op": "==", "value": "from-follower"}],
                     "success": [{"op": "set", "path": "/fw", "value": "txn"}]});
    let v = c.post_json(fs[1], "/v1/txn", &txn).ok_json(200, c.id(fs[1]));
    assert_eq!(v["succeeded"], true, "{v}");
    c.delete(fs[0], &format!("/v1/nodes{seq}")).ok_json(200, c.id(fs[0]));
    for i in 0..3 {
        c.get(i, &format!("/v1/nodes{seq}")).error(404, "not_found");
        assert_eq!(c.get(i, "/v1/nodes/fw").ok_json(200, c.id(i))["node"]["value"], "txn");
    }

    // Write through one member, read at once through another: always the latest value.
    for k in 0..30usize {
        let writer = [fs[0], fs[1], l][k % 3];
        let v = c
            .put(writer, "/v1/nodes/lin", format!("{k}"))
            .ok_json(if k == 0 { 201 } else { 200 }, c.id(writer));
        let written = v["header"]["revision"].as_u64().unwrap();
        for reader in [fs[(k + 1) % 2], fs[k % 2], l] {
            let v = c.get(reader, "/v1/nodes/lin").ok_json(200, c.id(reader));
            assert_eq!(
                v["node"]["value"],
                format!("{k}"),
                "stale read on member {} after write {k}",
                c.id(reader)
            );
            assert!(v["header"]["revision"].as_u64().unwrap() >= written);
        }
    }
    // Serializable reads on every member converge to the same state.
    for i in 0..3 {
        eventually(Duration::from_secs(5), "serializable reads to converge", || {
            let v = c.get(i, "/v1/nodes/lin?consistency=serializable").ok_json(200, c.id(i));
            (v["node"]["value"] == "29").then_some(())
        });
    }
}

#[test]
fn killing_the_leader_elects_a_new_one_and_loses_no_acknowledged_write() {
    let mut c = Cluster::start(3);
    let old = c.leader();
    let old_id = c.id(old);
    let old_term = c.get(old, "/v1/cluster").ok_json(200, old_id)["cluster"]["term"].as_u64().unwrap();
    let fs = followers(&mut c, old);
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = fs
        .iter()
        .enumerate()
        .map(|(t, &f)| spawn_writer(c.http().clone(), c.url(f, ""), "/w", format!("t{t}"), stop.clone()))
        .collect();
    std::thread::sleep(Duration::from_millis(1500));

    let killed_at = Instant::now();
    c.kill(old);
    let new = c.leader();
    assert_ne!(new, old);
    let new_id = c.id(new);
    let elected_after = killed_at.elapsed();
    let v = c.get(new, "/v1/cluster").ok_json(200, new_id);
    assert!(v["cluster"]["term"].as_u64().unwrap() > old_term, "{v}");
    // Let the writers run on the new leader for a while.
    std::thread::sleep(Duration::from_millis(2000));
    stop.store(true, Ordering::Relaxed);
    let acks: Vec<Ack> = writers.into_iter().flat_map(|w| w.join().unwrap()).collect();

    let before: Vec<&Ack> = acks.iter().filter(|a| a.acked < killed_at).collect();
    let after: Vec<&Ack> = acks.iter().filter(|a| a.started > killed_at).collect();
    assert!(before.len() >= 10, "too few writes before the kill: {}", before.len());
    assert!(after.len() >= 10, "too few writes acknowledged after the leader was killed: {}", after.len());
    let first_after = after.iter().map(|a| a.acked.duration_since(killed_at)).min().unwrap();
    assert!(
        first_after < Duration::from_secs(8),
        "writes resumed {first_after:?} after the leader died (new leader known after {elected_after:?})"
    );

    // Nothing acknowledged is missing, on either survivor.
    for &i in &fs {
        let seen = subtree(&c, i, "/w", false).expect("/w exists");
        assert_all_present(&acks, &seen, &format!("member {}", c.id(i)));
    }
    // The old leader comes back as a follower with everything.
    c.restart(old);
    let v = c.get(old, "/v1/cluster").ok_json(200, old_id);
    assert_ne!(v["cluster"]["leader"], old_id, "{v}");
    let seen = subtree(&c, old, "/w", false).expect("/w exists");
    assert_all_present(&acks, &seen, "the restarted old leader");
    let seen = subtree(&c, old, "/w", true).expect("/w exists");
    assert_all_present(&acks, &seen, "the restarted old leader (serializable, after ready)");
    // And the cluster still takes writes through it.
    c.put(old, "/v1/nodes/after", "ok").ok_json(201, old_id);
}

#[test]
fn killing_every_member_at_once_loses_no_acknowledged_write() {
    let mut c = Cluster::start(3);
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|i| spawn_writer(c.http().clone(), c.url(i, ""), "/all", format!("m{i}"), stop.clone()))
        .collect();
    std::thread::sleep(Duration::from_millis(2000));
    // Writes are in flight on every member when they all die.
    c.kill_all();
    stop.store(true, Ordering::Relaxed);
    let acks: Vec<Ack> = writers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    assert!(acks.len() >= 30, "too few acknowledged writes before the crash: {}", acks.len());

    for i in 0..3 {
        c.start_member(i);
    }
    for i in 0..3 {
        c.wait_ready(i);
    }
    for i in 0..3 {
        let seen = subtree(&c, i, "/all", false).expect("/all exists");
        assert_all_present(&acks, &seen, &format!("member {} after the whole cluster crashed", c.id(i)));
    }
    let l = c.leader();
    c.put(l, "/v1/nodes/after", "ok").ok_json(201, c.id(l));
    // A second crash of everything, with no writes in flight.
    c.kill_all();
    for i in 0..3 {
        c.start_member(i);
    }
    for i in 0..3 {
        c.wait_ready(i);
    }
    for i in 0..3 {
        assert_eq!(c.get(i, "/v1/nodes/after").ok_json(200, c.id(i))["node"]["value"], "ok");
    }
}

#[test]
fn a_learner_added_after_the_log_was_purged_catches_up_from_a_snapshot_and_is_promoted() {
    let mut c = Cluster::start_with(3, &["--snapshot-logs", "20"]);
    let l = c.leader();
    let lid = c.id(l);
    // One write per log entry until the leader has purged the start of its log.
    let mut expected = BTreeMap::new();
    let started = Instant::now();
    let purged = loop {
        for _ in 0..50 {
            let n = expected.len();
            let path = format!("/s/k{n:05}");
            c.put(l, &format!("/v1/nodes{path}?parents"), format!("value-{n}")).ok_json(201, lid);
            expected.insert(path, format!("value-{n}"));
        }
        let v = c.get(l, "/v1/cluster").ok_json(200, lid);
        if let Some(p) = v["cluster"]["purged_index"].as_u64() {
            assert!(v["cluster"]["snapshot_index"].as_u64().unwrap() >= p, "{v}");
            break p;
        }
        assert!(
            expected.len() < 2000 && started.elapsed() < Duration::from_secs(40),
            "the leader never purged its log ({} writes, snapshot every 20): {v}",
            expected.len()
        );
    };
    assert!(purged > 0);

    let n = c.add_learner(&["--snapshot-logs", "20"]);
    let nid = c.id(n);
    // The learner is listed as such by the leader.
    let v = c.get(l, "/v1/cluster").ok_json(200, lid);
    let me = v["cluster"]["members"].as_array().unwrap().iter().find(|m| m["id"] == nid).cloned();
    let me = me.unwrap_or_else(|| panic!("learner {nid} not listed: {v}"));
    assert_eq!(me["role"], "learner", "{v}");
    assert_eq!(me["voter"], false, "{v}");

    // Its local (serializable) reads catch up with everything.
    let seen = eventually(Duration::from_secs(30), "the learner to catch up", || {
        let seen = subtree(&c, n, "/s", true)?;
        (seen.len() == expected.len()).then_some(seen)
    });
    assert_eq!(seen, expected);
    // It got there through a snapshot: the entries it needed were gone from the leader's log.
    let v = c.get(n, "/v1/cluster").ok_json(200, nid);
    let snap = v["cluster"]["snapshot_index"].as_u64();
    assert!(
        snap.is_some_and(|s| s >= purged),
        "learner snapshot_index {snap:?}, leader purged {purged}: {v}"
    );
    assert_eq!(v["cluster"]["leader"], lid, "{v}");
    let applied = v["cluster"]["members"].as_array().unwrap().iter().find(|m| m["id"] == nid).unwrap()
        ["applied_index"]
        .clone();
    assert!(applied.as_u64().unwrap() > purged, "{v}");
    // The snapshot carries the history: reads at past revisions agree with the leader's.
    let dir_created =
        c.get(l, "/v1/nodes/s").ok_json(200, lid)["node"]["stat"]["create_revision"].as_u64().unwrap();
    for (k, path) in expected.keys().enumerate().skip(1).step_by(97) {
        let created = c.get(l, &format!("/v1/nodes{path}")).ok_json(200, lid)["node"]["stat"]
            ["create_revision"]
            .as_u64()
            .unwrap();
        assert!(created > dir_created);
        for at in [created - 1, created, created + 3] {
            let q = format!("/v1/nodes/s?children&consistency=serializable&revision={at}");
            let mine = c.get(n, &q).ok_json(200, nid);
            let theirs = c.get(l, &q).ok_json(200, lid);
            assert_eq!(mine["children"], theirs["children"], "listing of /s at {at} (key {k})");
        }
        let q = format!("/v1/nodes{path}?consistency=serializable&revision={created}");
        assert_eq!(c.get(n, &q).ok_json(200, nid)["node"], c.get(l, &q).ok_json(200, lid)["node"]);
        let q = format!("/v1/nodes{path}?consistency=serializable&revision={}", created - 1);
        c.get(n, &q).error(404, "not_found");
    }
    // A learner answers linearizable reads too (through the leader's read index).
    c.put(l, "/v1/nodes/s/late", "late").ok_json(201, lid);
    assert_eq!(c.get(n, "/v1/nodes/s/late").ok_json(200, nid)["node"]["value"], "late");

    // Promotion makes it a voter.
    c.promote(n);
    let v = c.get(l, "/v1/cluster").ok_json(200, lid);
    let members = v["cluster"]["members"].as_array().unwrap();
    assert_eq!(members.len(), 4, "{v}");
    let me = members.iter().find(|m| m["id"] == nid).unwrap();
    assert_eq!(me["voter"], true, "{v}");
    assert_eq!(me["role"], "follower", "{v}");
    // It takes writes (forwarded) and serves them; with 4 voters, losing one still leaves
    // a quorum that includes the new member.
    c.put(n, "/v1/nodes/s/via-new", "new").ok_json(201, nid);
    let other = (0..3).find(|&i| i != l).unwrap();
    c.kill(other);
    let v = c.put(n, "/v1/nodes/s/with-one-down", "ok").ok_json(201, nid);
    assert_eq!(v["node"]["value"], "ok");
    for i in [l, n] {
        assert_eq!(c.get(i, "/v1/nodes/s/via-new").ok_json(200, c.id(i))["node"]["value"], "new");
        assert_eq!(c.get(i, "/v1/nodes/s/with-one-down").ok_json(200, c.id(i))["node"]["value"], "ok");
    }
    // It survives a restart with its snapshot.
    c.kill(n);
    c.restart(n);
    let seen = subtree(&c, n, "/s", false).unwrap();
    for (path, value) in &expected {
        assert_eq!(seen.get(path), Some(value), "{path} on the restarted new member");
    }
}

#[test]
fn a_follower_that_missed_purged_entries_catches_up_from_a_snapshot_after_restart() {
    let mut c = Cluster::start_with(3, &["--snapshot-logs", "20"]);
    let l = c.leader();
    let lid = c.id(l);
    let f = followers(&mut c, l)[0];
    let fid = c.id(f);
    c.put(l, "/v1/nodes/before", "down").ok_json(201, lid);
    c.kill(f);
    let mut expected = BTreeMap::new();
    let started = Instant::now();
    loop {
        for _ in 0..50 {
            let n = expected.len();
            let path = format!("/f/k{n:05}");
            c.put(l, &format!("/v1/nodes{path}?parents"), format!("value-{n}")).ok_json(201, lid);
            expected.insert(path, format!("value-{n}"));
        }
        let v = c.get(l, "/v1/cluster").ok_json(200, lid);
        let member =
            v["cluster"]["members"].as_array().unwrap().iter().find(|m| m["id"] == fid).cloned().unwrap();
        let matched = member["matched_index"].as_u64().unwrap_or(0);
        if v["cluster"]["purged_index"].as_u64().is_some_and(|p| p > matched) {
            break;
        }
        assert!(
            expected.len() < 2000 && started.elapsed() < Duration::from_secs(40),
            "the leader never purged past the stopped follower ({} writes): {v}",
            expected.len()
        );
    }
    c.restart(f);
    let seen = eventually(Duration::from_secs(20), "the follower to catch up", || {
        let seen = subtree(&c, f, "/f", true)?;
        (seen.len() == expected.len()).then_some(seen)
    });
    assert_eq!(seen, expected);
    let v = c.get(f, "/v1/cluster").ok_json(200, fid);
    assert!(v["cluster"]["snapshot_index"].as_u64().is_some(), "{v}");
    assert_eq!(c.get(f, "/v1/nodes/before").ok_json(200, fid)["node"]["value"], "down");
    // It serves as a voter again: with the other follower down, it forms the quorum.
    let other = (0..3).find(|&i| i != l && i != f).unwrap();
    c.kill(other);
    c.put(f, "/v1/nodes/f/quorum", "ok").ok_json(201, fid);
    assert_eq!(c.get(l, "/v1/nodes/f/quorum").ok_json(200, lid)["node"]["value"], "ok");
}

#[test]
fn without_a_quorum_writes_and_linearizable_reads_are_503_but_serializable_reads_answer() {
    let mut c = Cluster::start(3);
    let l = c.leader();
    c.put(l, "/v1/nodes/k", "committed").ok_json(201, c.id(l));
    let fs = followers(&mut c, l);
    let (survivor, other) = (fs[0], fs[1]);
    let sid = c.id(survivor);
    // Make sure the survivor has applied the write before the others die.
    assert_eq!(c.get(survivor, "/v1/nodes/k").ok_json(200, sid)["node"]["value"], "committed");
    c.kill(l);
    c.kill(other);

    let t = Instant::now();
    let e = c.put(survivor, "/v1/nodes/k", "lost").error(503, "unavailable");
    assert!(t.elapsed() < Duration::from_secs(10), "503 took {:?}: {e}", t.elapsed());
    c.post_json(survivor, "/v1/txn", &json!({"success": [{"op": "set", "path": "/k", "value": "lost"}]}))
        .error(503, "unavailable");
    c.get(survivor, "/v1/nodes/k").error(503, "unavailable");
    c.get(survivor, "/ready").error(503, "unavailable");
    c.get(survivor, "/health").ok_json(200, sid);
    let v = c.get(survivor, "/v1/nodes/k?consistency=serializable").ok_json(200, sid);
    assert_eq!(v["node"]["value"], "committed");

    // The quorum comes back and so does service.
    c.start_member(l);
    c.start_member(other);
    for i in 0..3 {
        c.wait_ready(i);
    }
    let v = c.get(survivor, "/v1/nodes/k").ok_json(200, sid);
    assert_eq!(
        v["node"]["value"], "committed",
        "a write answered 503 without a quorum must not have been applied"
    );
    c.put(survivor, "/v1/nodes/k", "back").ok_json(200, sid);
}

/// Followers that answer late are slow, not gone. Both followers freeze for 200 ms, longer
/// than the 100 ms an append may take, so the leader's appends to both time out; the first
/// write after they thaw must commit at once. Were the late answers reported to openraft as
/// an unreachable member, it would send that member nothing for 500 ms, heartbeats included:
/// every such write waited 400-500 ms, and the followers' election timers ran meanwhile.
#[test]
fn followers_that_answered_late_get_the_next_write_at_once() {
    let mut c = Cluster::start(3);
    let l = c.leader();
    let id = c.id(l);
    c.put(l, "/v1/nodes/warm", "x").ok_json(201, id);
    let fs = followers(&mut c, l);
    let mut waits = Vec::new();
    for round in 0..5 {
        for &f in &fs {
            c.pause(f);
        }
        std::thread::sleep(Duration::from_millis(200));
        for &f in &fs {
            c.resume(f);
        }
        let t = Instant::now();
        c.put(l, &format!("/v1/nodes/after-{round}"), "x").ok_json(201, id);
        waits.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(500));
    }
    waits.sort();
    // The median of five: a write or two slowed by the machine do not decide.
    assert!(waits[2] < Duration::from_millis(300), "writes after the followers thawed took {waits:?}");
}

/// A CAS counter incremented concurrently through every member: no lost update, no
/// version granted twice, and no member's linearizable read ever goes back in time.
#[test]
fn compare_and_set_through_every_member_is_atomic() {
    let c = Cluster::start(3);
    c.put(0, "/v1/nodes/ctr", "0").ok_json(201, 1);
    const PER_THREAD: u64 = 20;
    let threads: Vec<_> = (0..3)
        .map(|i| {
            let (http, base) = (c.http().clone(), c.url(i, "/v1/nodes/ctr"));
            std::thread::spawn(move || {
                let mut granted = Vec::new();
                let mut last_seen = 0u64;
                while (granted.len() as u64) < PER_THREAD {
                    let g: serde_json::Value = http.get(&base).send().unwrap().json().unwrap();
                    let version = g["node"]["stat"]["version"].as_u64().unwrap();
                    let n: u64 = g["node"]["value"].as_str().unwrap().parse().unwrap();
                    assert_eq!(n, version, "value and version move together: {g}");
                    assert!(
                        version >= last_seen,
                        "member {} read version {version} after {last_seen}",
                        i + 1
                    );
                    last_seen = version;
                    let r = http
                        .put(format!("{base}?version={version}"))
                        .body(format!("{}", n + 1))
                        .send()
                        .unwrap();
                    match r.status().as_u16() {
                        200 => {
                            granted.push(version);
                            last_seen = version + 1;
                        }
                        409 => {}
                        s => panic!("CAS through member {}: {s} {}", i + 1, r.text().unwrap_or_default()),
                    }
                }
                granted
            })
        })
        .collect();
    let mut granted: Vec<u64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    granted.sort_unstable();
    let want: Vec<u64> = (0..3 * PER_THREAD).collect();
    assert_eq!(granted, want, "each version is granted to exactly one CAS");
    for i in 0..3 {
        let v = c.get(i, "/v1/nodes/ctr").ok_json(200, c.id(i));
        assert_eq!(v["node"]["value"], (3 * PER_THREAD).to_string());
    }
}

/// Sends `writes` (method, path, body) to member `f` all at once while the leader `l` is
/// paused, so that they queue up at the follower and it forwards them together; the answer
/// to each (status and body), in order.
fn forwarded_together(
    c: &mut Cluster,
    l: usize,
    f: usize,
    writes: Vec<(Method, String, String)>,
) -> Vec<(u16, String)> {
    c.pause(l);
    let senders: Vec<_> = writes
        .into_iter()
        .map(|(method, path, body)| {
            let (http, url) = (c.http().clone(), c.url(f, &path));
            std::thread::spawn(move || {
                let r = http.request(method, url).body(body).send().unwrap();
                (r.status().as_u16(), r.text().unwrap_or_default())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    c.resume(l);
    senders.into_iter().map(|s| s.join().unwrap()).collect()
}

/// Writes a follower forwards together, every other one bound to fail, each get their own
/// answer. They travel in forwarded batches, each of which the leader proposes as one log
/// entry.
#[test]
fn writes_forwarded_together_each_get_their_own_answer() {
    let mut c = Cluster::start(3);
    let l = c.leader();
    let f = followers(&mut c, l)[0];
    const WRITES: usize = 24;
    for n in (0..WRITES).step_by(2) {
        c.put(l, &format!("/v1/nodes/fwd/n{n}?parents"), "old").ok_json(201, c.id(l));
    }
    let writes =
        (0..WRITES).map(|n| (Method::POST, format!("/v1/nodes/fwd/n{n}"), format!("new{n}"))).collect();
    for (n, (status, text)) in forwarded_together(&mut c, l, f, writes).into_iter().enumerate() {
        let body: serde_json::Value = serde_json::from_str(&text).unwrap();
        if n % 2 == 0 {
            assert_eq!((status, &body["code"]), (409, &json!("already_exists")), "create of n{n}: {body}");
        } else {
            assert_eq!(status, 201, "create of n{n}: {body}");
            assert_eq!(body["node"]["path"], format!("/fwd/n{n}"), "{body}");
            assert_eq!(body["node"]["value"], format!("new{n}"), "{body}");
        }
    }
    for n in 0..WRITES {
        let want = if n % 2 == 0 { "old".to_owned() } else { format!("new{n}") };
        let v = c.get(f, &format!("/v1/nodes/fwd/n{n}")).ok_json(200, c.id(f));
        assert_eq!(v["node"]["value"], want, "n{n}");
    }
}

/// Large writes a follower forwards together all succeed: a forwarded request stays within
/// what the leader accepts. A dozen values of 1 MB queued behind a paused leader used to
/// travel as one request over the leader's limit, and every write in it failed with 503.
#[test]
fn large_writes_forwarded_together_all_succeed() {
    let mut c = Cluster::start(3);
    let l = c.leader();
    let f = followers(&mut c, l)[0];
    let value = "v".repeat(1_000_000);
    let writes =
        (0..12).map(|n| (Method::PUT, format!("/v1/nodes/big/n{n}?parents"), value.clone())).collect();
    for (n, (status, body)) in forwarded_together(&mut c, l, f, writes).into_iter().enumerate() {
        assert_eq!(status, 201, "write of n{n}: {}", &body[..body.len().min(300)]);
    }
    let listing = c.get(f, "/v1/nodes/big?children").ok_json(200, c.id(f));
    assert_eq!(listing["children"].as_array().map(Vec::len), Some(12), "{listing}");
}

#[test]
fn cluster_status_shows_every_members_progress_from_any_member() {
    let mut c = Cluster::start(3);
    let leader = c.leader();
    let follower = (leader + 1) % 3;
    c.put(leader, "/v1/nodes/status", "x").expect_status(201);
    let v = c.get(follower, "/v1/cluster").ok_json(200, c.id(follower));
    let members = v["cluster"]["members"].as_array().unwrap().clone();
    assert_eq!(members.len(), 3);
    for m in &members {
        assert_eq!(m["reachable"], true, "{m}");
        assert!(m["applied_index"].as_u64().unwrap() >= 1, "{m}");
        assert!(m["last_log_index"].as_u64().is_some(), "{m}");
        assert!(m["lag"].as_u64().is_some(), "{m}");
    }
    assert_eq!(members.iter().filter(|m| m["role"] == "leader").count(), 1);
    // The leader also knows how far it replicated to each member.
    let v = c.get(leader, "/v1/cluster").ok_json(200, c.id(leader));
    assert!(v["cluster"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["matched_index"].as_u64().is_some()));
    let down = (leader + 2) % 3;
    c.kill(down);
    let v = c.get(follower, "/v1/cluster").ok_json(200, c.id(follower));
    let gone = v["cluster"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"].as_u64() == Some(c.id(down)))
        .cloned();
    assert_eq!(gone.unwrap()["reachable"], false);
}
