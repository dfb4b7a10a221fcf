#![allow(clippy::unwrap_used)]
//! Leases and ephemeral nodes with real processes: expiry no earlier than the TTL and
//! soon after it, keep-alives through a follower, revoke, a leader kill, a full restart.

use std::thread;
use std::time::{Duration, Instant};

use cairn_tests::{eventually, json, Cluster};

const TTL_MS: u64 = 2_000;

/// Grants a lease through member `i`; returns its id and when the request was sent (the
/// leader's countdown cannot start before that).
fn grant(c: &Cluster, i: usize, ttl_ms: u64) -> (u64, Instant) {
    let sent = Instant::now();
    let v = c.post_json(i, "/v1/leases", &json!({ "ttl_ms": ttl_ms })).ok_json(201, c.id(i));
    assert_eq!(v["ttl_ms"].as_u64(), Some(ttl_ms));
    (v["id"].as_u64().unwrap(), sent)
}

fn exists(c: &Cluster, i: usize, path: &str) -> bool {
    let r = c.get(i, &format!("/v1/nodes{path}"));
    match r.status {
        200 => true,
        404 => false,
        s => panic!("unexpected {s}: {}", r.text()),
    }
}

#[test]
fn an_ephemeral_node_ends_with_its_lease_not_before_the_ttl() {
    let c = Cluster::start(1);
    let (id, sent) = grant(&c, 0, TTL_MS);
    let granted = Instant::now();
    c.put(0, &format!("/v1/nodes/svc/a?parents&lease={id}"), "up").expect_status(201);
    let v = c.get(0, &format!("/v1/leases/{id}")).ok_json(200, 1);
    assert_eq!(v["nodes"], json!(["/svc/a"]));
    assert!(v["remaining_ms"].as_u64().unwrap() <= TTL_MS);
    // Ephemeral nodes cannot have children.
    c.put(0, "/v1/nodes/svc/a/child", "x").error(400, "ephemeral_parent");
    while exists(&c, 0, "/svc/a") {
        assert!(granted.elapsed() < Duration::from_millis(TTL_MS + 1_000), "still there 1 s after the TTL");
        thread::sleep(Duration::from_millis(20));
    }
    let gone = sent.elapsed();
    assert!(gone >= Duration::from_millis(TTL_MS), "ended after {gone:?}, before the TTL");
    c.get(0, &format!("/v1/leases/{id}")).error(404, "lease_not_found");
    c.post(0, &format!("/v1/leases/{id}/keepalive"), "").error(404, "lease_not_found");
    c.put(0, &format!("/v1/nodes/svc/b?lease={id}"), "x").error(404, "lease_not_found");
}

#[test]
fn keep_alives_through_a_follower_hold_a_lease_and_revoke_ends_it_at_once() {
    let mut c = Cluster::start(3);
    let leader = c.leader();
    let follower = (leader + 1) % 3;
    let (id, _) = grant(&c, follower, TTL_MS);
    c.post(follower, &format!("/v1/nodes/svc/e?parents&lease={id}"), "up").expect_status(201);
    let until = Instant::now() + Duration::from_millis(3 * TTL_MS);
    while Instant::now() < until {
        c.post(follower, &format!("/v1/leases/{id}/keepalive"), "").ok_json(200, c.id(follower));
        assert!(exists(&c, follower, "/svc/e"), "ended while kept alive");
        thread::sleep(Duration::from_millis(TTL_MS / 3));
    }
    let v = c.get(follower, "/v1/leases").ok_json(200, c.id(follower));
    assert!(v["leases"].as_array().unwrap().iter().any(|l| l["id"].as_u64() == Some(id)));
    let v = c.delete(follower, &format!("/v1/leases/{id}")).ok_json(200, c.id(follower));
    assert_eq!(v["deleted"].as_u64(), Some(1));
    for i in 0..3 {
        assert!(!exists(&c, i, "/svc/e"), "revoke deleted it everywhere at once");
    }
    c.delete(follower, &format!("/v1/leases/{id}")).error(404, "lease_not_found");
    c.post_json(0, "/v1/leases", &json!({ "ttl_ms": 1 })).error(400, "invalid_request");
    c.post(0, "/v1/leases", "{").error(400, "invalid_request");
}

#[test]
fn after_a_leader_kill_kept_leases_survive_and_unkept_ones_end() {
    let mut c = Cluster::start(3);
    let leader = c.leader();
    let survivor = (leader + 1) % 3;
    let (kept, _) = grant(&c, survivor, TTL_MS);
    let (unkept, _) = grant(&c, survivor, TTL_MS);
    c.put(survivor, &format!("/v1/nodes/k?lease={kept}"), "").expect_status(201);
    c.put(survivor, &format!("/v1/nodes/u?lease={unkept}"), "").expect_status(201);
    c.kill(leader);
    let started = Instant::now();
    // Keep one alive through the failover; keep-alives retry while there is no leader.
    while started.elapsed() < Duration::from_millis(4 * TTL_MS) {
        let r = c.post(survivor, &format!("/v1/leases/{kept}/keepalive"), "");
        assert!(r.status == 200 || r.status == 503, "keep-alive answered {}: {}", r.status, r.text());
        assert!(exists(&c, survivor, "/k"), "a kept lease ended during the failover");
        thread::sleep(Duration::from_millis(TTL_MS / 4));
    }
    eventually(Duration::from_secs(10), "the unkept lease ends", || {
        (!exists(&c, survivor, "/u")).then_some(())
    });
    assert!(exists(&c, survivor, "/k"));
    c.restart(leader);
}

#[test]
fn a_full_restart_keeps_leases_and_restarts_their_countdown() {
    let mut c = Cluster::start(3);
    let (id, _) = grant(&c, 0, 4_000);
    c.put(0, &format!("/v1/nodes/r?lease={id}"), "").expect_status(201);
    c.kill_all();
    for i in 0..3 {
        c.start_member(i);
    }
    for i in 0..3 {
        c.wait_ready(i);
    }
    let back = Instant::now();
    let v = c.get(0, &format!("/v1/leases/{id}")).ok_json(200, c.id(0));
    assert_eq!(v["nodes"], json!(["/r"]));
    assert!(exists(&c, 0, "/r"));
    eventually(Duration::from_secs(10), "the lease ends after its restarted TTL", || {
        (!exists(&c, 0, "/r")).then_some(())
    });
    assert!(back.elapsed() >= Duration::from_millis(3_000), "ended {:?} after the restart", back.elapsed());
}

#[test]
fn an_isolated_leader_does_not_acknowledge_keep_alives() {
    use cairn_tests::chaos::net::Network;
    let net = std::cell::RefCell::new(Network::default());
    let mut c = Cluster::start_routed(3, &[], |i, j, peer| net.borrow_mut().add_link(i, j, peer));
    let net = net.into_inner();
    let leader = c.leader();
    let (id, _) = grant(&c, leader, 10_000);
    let keepalive = format!("/v1/leases/{id}/keepalive");
    c.post(leader, &keepalive, "").ok_json(200, c.id(leader));
    net.isolate(leader, 3);
    // Cut off, it cannot have its leadership confirmed after the renewal, so it must not
    // acknowledge it: the others may already count the lease down under a new leader.
    let sent = Instant::now();
    match c.try_request(leader, reqwest::Method::POST, &keepalive, Vec::new()) {
        Ok(r) => assert_ne!(r.status, 200, "an isolated leader acknowledged a keep-alive: {}", r.text()),
        Err(e) => assert!(e.is_timeout(), "{e}"),
    }
    eprintln!("refused after {:?}", sent.elapsed());
    net.heal();
    let v = eventually(Duration::from_secs(20), "a keep-alive after healing", || {
        let r = c.post(leader, &keepalive, "");
        (r.status == 200).then(|| r.json())
    });
    assert_eq!(v["id"], id);
}
