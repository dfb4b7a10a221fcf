#![allow(clippy::unwrap_used)]
//! Locks and elections with real processes on three members: contenders never overlap
//! (a guarded node refuses a lower fencing token than it has seen), also across a leader
//! kill; a lease that ends hands the lock over; a waiter that hangs up or times out leaves
//! no entry; observers see one leader at a time with increasing terms.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use cairn_tests::chaos::client::Answer;
use cairn_tests::sse::{open_watch, Watch};
use cairn_tests::{eventually, json, Cluster};
use reqwest::blocking::Client;
use serde_json::Value;

/// One call from a contender thread: `Err` for anything a retry on another member may fix
/// (connection refused or lost, a timeout, 503).
fn call(
    http: &Client,
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<(u16, Value), String> {
    match cairn_tests::chaos::client::call(http, addr, method, path, body.map(|b| b.to_string())) {
        Answer::Status(status, v) => Ok((status, v)),
        other => Err(format!("{other:?}")),
    }
}

/// Retries `f` on the members in turn until it answers (at most a minute).
fn on_any<T>(
    addrs: &[SocketAddr],
    start: &mut usize,
    mut f: impl FnMut(SocketAddr) -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match f(addrs[*start % addrs.len()]) {
            Ok(v) => return v,
            Err(e) => {
                assert!(Instant::now() < deadline, "no member answered for a minute: {e}");
                *start += 1;
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn grant(c: &Cluster, i: usize, ttl_ms: u64) -> u64 {
    c.post_json(i, "/v1/leases", &json!({ "ttl_ms": ttl_ms })).ok_json(201, c.id(i))["id"].as_u64().unwrap()
}

/// A guarded step: accepted only if no higher fencing token acted before it.
fn guarded(http: &Client, addr: SocketAddr, token: u64, step: u32) -> Result<bool, String> {
    let txn = json!({
        "compare": [{ "path": "/guard", "target": "value", "op": "<", "value": format!("{token:020}:~") }],
        "success": [{ "op": "set", "path": "/guard", "value": format!("{token:020}:{step}") }],
    });
    match call(http, addr, "POST", "/v1/txn", Some(txn))? {
        (200, v) => Ok(v["succeeded"].as_bool().unwrap()),
        (s, v) => panic!("txn answered {s}: {v}"),
    }
}

#[test]
fn contenders_never_overlap_across_a_leader_kill() {
    const CONTENDERS: usize = 8;
    const ROUNDS: usize = 50;
    let mut c = Cluster::start(3);
    c.put(0, "/v1/nodes/guard", format!("{:020}:0", 0)).expect_status(201);
    let addrs: Vec<SocketAddr> = (0..3).map(|i| c.client_addr(i)).collect();
    let leases: Vec<u64> = (0..CONTENDERS).map(|i| grant(&c, i % 3, 10_000)).collect();
    let http = Client::builder().timeout(Duration::from_secs(40)).build().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let keeper = {
        let (http, addrs, leases, stop) = (http.clone(), addrs.clone(), leases.clone(), stop.clone());
        thread::spawn(move || {
            let mut at = 0;
            while !stop.load(Ordering::Relaxed) {
                for id in &leases {
                    on_any(&addrs, &mut at, |a| {
                        call(&http, a, "POST", &format!("/v1/leases/{id}/keepalive"), None)
                    });
                }
                thread::sleep(Duration::from_millis(500));
            }
        })
    };
    let done = Arc::new(AtomicUsize::new(0));
    let rejected = Arc::new(AtomicUsize::new(0));
    let acquired: Arc<Mutex<Vec<(Instant, u64)>>> = Arc::default();
    let contenders: Vec<_> = (0..CONTENDERS)
        .map(|n| {
            let (http, addrs, lease) = (http.clone(), addrs.clone(), leases[n]);
            let (done, rejected, acquired) = (done.clone(), rejected.clone(), acquired.clone());
            thread::spawn(move || {
                let mut at = n;
                for _ in 0..ROUNDS {
                    let body = json!({ "lease": lease, "timeout_ms": 30_000 });
                    let v = on_any(&addrs, &mut at, |a| {
                        match call(&http, a, "POST", "/v1/locks/mtx", Some(body.clone()))? {
                            (200, v) => Ok(v),
                            (s, v) => panic!("lock answered {s}: {v}"),
                        }
                    });
                    let token = v["fencing_token"].as_u64().unwrap();
                    let key = v["key"].as_str().unwrap().to_owned();
                    acquired.lock().unwrap().push((Instant::now(), token));
                    for step in 1..=2 {
                        if !on_any(&addrs, &mut at, |a| guarded(&http, a, token, step)) {
                            rejected.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    on_any(&addrs, &mut at, |a| {
                        match call(&http, a, "DELETE", &format!("/v1/locks/mtx/{key}"), None)? {
                            (200 | 404, _) => Ok(()),
                            (s, v) => panic!("unlock answered {s}: {v}"),
                        }
                    });
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    eventually(Duration::from_secs(60), "a third of the rounds", || {
        (done.load(Ordering::Relaxed) >= CONTENDERS * ROUNDS / 3).then_some(())
    });
    let leader = c.leader();
    c.kill(leader);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !contenders.iter().all(|t| t.is_finished()) {
        assert!(Instant::now() < deadline, "contenders stuck: {} rounds done", done.load(Ordering::Relaxed));
        thread::sleep(Duration::from_millis(100));
    }
    for t in contenders {
        t.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    keeper.join().unwrap();
    assert_eq!(rejected.load(Ordering::Relaxed), 0, "a holder acted after a higher fencing token had");
    let mut acquired = acquired.lock().unwrap().clone();
    assert_eq!(acquired.len(), CONTENDERS * ROUNDS);
    acquired.sort();
    for w in acquired.windows(2) {
        assert!(w[0].1 < w[1].1, "fencing tokens out of order: {:?} then {:?}", w[0].1, w[1].1);
    }
}

#[test]
fn a_lease_that_ends_hands_the_lock_over_and_waiters_that_leave_leave_nothing() {
    let c = Cluster::start(3);
    // Taken before the grant is sent: the leader's countdown cannot start earlier.
    let granted = Instant::now();
    let short = grant(&c, 0, 2_000);
    let long = grant(&c, 1, 30_000);
    let held =
        c.post_json(0, "/v1/locks/job", &json!({ "lease": short, "value": "first" })).ok_json(200, c.id(0));
    assert_eq!(held["name"], "job");
    assert_eq!(held["lease"], short);
    let first = held["fencing_token"].as_u64().unwrap();

    // Try-lock and a short timeout: 408, and no entry stays behind.
    c.post_json(1, "/v1/locks/job", &json!({ "lease": long, "timeout_ms": 0 })).error(408, "timeout");
    c.post_json(2, "/v1/locks/job", &json!({ "lease": long, "timeout_ms": 300 })).error(408, "timeout");
    // A waiter that hangs up: its request is dropped, and so is its entry.
    let impatient = Client::builder().timeout(Duration::from_millis(500)).build().unwrap();
    let gone = impatient
        .post(format!("http://{}/v1/locks/job", c.client_addr(2)))
        .body(json!({ "lease": long }).to_string())
        .send();
    assert!(gone.is_err(), "the waiter should have timed out client-side");
    eventually(Duration::from_secs(5), "no waiter left", || {
        let v = c.get(1, "/v1/locks/job").ok_json(200, c.id(1));
        (v["waiters"].as_array().unwrap().is_empty() && v["holder"]["fencing_token"] == first).then_some(())
    });

    // The holder's lease is not kept alive: the waiter gets the lock once it ends.
    let v = c
        .post_json(1, "/v1/locks/job", &json!({ "lease": long, "timeout_ms": 10_000 }))
        .ok_json(200, c.id(1));
    assert!(granted.elapsed() >= Duration::from_millis(2_000), "handed over before the holder's TTL");
    let second = v["fencing_token"].as_u64().unwrap();
    assert!(second > first);
    let status = c.get(2, "/v1/locks/job").ok_json(200, c.id(2));
    assert_eq!(status["holder"]["key"], v["key"]);

    // Asking again with the same lease finds the same entry (a retry never queues twice).
    let again = c.post_json(2, "/v1/locks/job", &json!({ "lease": long })).ok_json(200, c.id(2));
    assert_eq!(again["key"], v["key"]);
    // Release, then a second release is 404.
    let key = v["key"].as_str().unwrap();
    c.delete(0, &format!("/v1/locks/job/{key}")).ok_json(200, c.id(0));
    c.delete(0, &format!("/v1/locks/job/{key}")).error(404, "not_found");
    let v = c.get(0, "/v1/locks/job").ok_json(200, c.id(0));
    assert_eq!(v["holder"], Value::Null);

    // Bad input.
    c.post_json(0, "/v1/locks/job", &json!({ "lease": 999_999 })).error(404, "lease_not_found");
    c.post(0, "/v1/locks/job", "not json").error(400, "invalid_request");
    c.post_json(0, "/v1/locks/job", &json!({ "lease": long, "extra": 1 })).error(400, "invalid_request");
    c.delete(0, "/v1/locks/job/lock-00000000zz").error(400, "invalid_request");
    c.delete(0, "/v1/locks/job/lock-12").error(400, "invalid_request");
    c.raw(0, "POST", "/v1/locks/a%00b", br#"{"lease":1}"#).error(400, "invalid_request");
}

fn leader_events(w: &Watch, n: usize) -> Vec<(u64, Value)> {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let e = w.next(left).unwrap_or_else(|| panic!("observe ended or stalled after {out:?}"));
        if e.event == "leader" {
            out.push((e.id.unwrap(), e.data["leader"].clone()));
        }
    }
    out
}

#[test]
fn elections_show_one_leader_at_a_time_with_increasing_terms() {
    let c = Cluster::start(3);
    let leases: Vec<u64> = (0..3).map(|i| grant(&c, i, 30_000)).collect();
    let observers: Vec<Watch> = (0..3)
        .map(|i| open_watch(c.client_addr(i), "/v1/elections/svc/observe", None, false).unwrap())
        .collect();
    for w in &observers {
        assert_eq!(leader_events(w, 1)[0].1, Value::Null, "no leader yet");
    }
    let a = c
        .post_json(0, "/v1/elections/svc/campaign", &json!({ "lease": leases[0], "value": "a1" }))
        .ok_json(200, c.id(0));
    // B and C wait behind A, from other members.
    let mut queued = 1;
    let waiting: Vec<_> = [(1, "b"), (2, "c")]
        .into_iter()
        .map(|(i, value)| {
            let (addr, lease) = (c.client_addr(i), leases[i]);
            let t = thread::spawn(move || {
                let http = Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
                call(
                    &http,
                    addr,
                    "POST",
                    "/v1/elections/svc/campaign",
                    Some(json!({ "lease": lease, "value": value })),
                )
                .unwrap()
            });
            // B must be queued before C is sent.
            queued += 1;
            eventually(Duration::from_secs(10), "the candidate in the queue", || {
                let v = c.get(0, "/v1/nodes/_cairn/elections/svc?children").ok_json(200, c.id(0));
                (v["children"].as_array().unwrap().len() == queued).then_some(())
            });
            t
        })
        .collect();
    let a_key = a["key"].as_str().unwrap();
    let v = c.get(2, "/v1/elections/svc").ok_json(200, c.id(2));
    assert_eq!(v["leader"]["key"], a_key);
    // Only the leader may proclaim.
    let proclaimed = c.request(
        1,
        reqwest::Method::PUT,
        "/v1/elections/svc/leader",
        json!({ "key": a_key, "value": "a2" }).to_string().into(),
    );
    assert_eq!(proclaimed.ok_json(200, c.id(1))["leader"]["value"], "a2");
    let v = c.get(0, "/v1/elections/svc").ok_json(200, c.id(0));
    assert_eq!((v["leader"]["key"].as_str(), v["leader"]["value"].as_str()), (Some(a_key), Some("a2")));
    // Resign hands over to B; revoking B's lease hands over to C; C resigns.
    c.post_json(2, "/v1/elections/svc/resign", &json!({ "key": a_key })).ok_json(200, c.id(2));
    let mut answers = waiting.into_iter().map(|t| t.join().unwrap());
    let (status, b) = answers.next().unwrap();
    assert_eq!(status, 200, "{b}");
    c.request(
        0,
        reqwest::Method::PUT,
        "/v1/elections/svc/leader",
        json!({ "key": a_key, "value": "late" }).to_string().into(),
    )
    .error(404, "not_found");
    c.delete(0, &format!("/v1/leases/{}", leases[1])).ok_json(200, c.id(0));
    let (status, cc) = answers.next().unwrap();
    assert_eq!(status, 200, "{cc}");
    let waiting_key = cc["key"].as_str().unwrap();
    c.post_json(1, "/v1/elections/svc/resign", &json!({ "key": waiting_key })).ok_json(200, c.id(1));

    let expected = [Some(("a1", &a)), Some(("a2", &a)), Some(("b", &b)), Some(("c", &cc)), None];
    let mut resume_from = 0;
    for (i, w) in observers.iter().enumerate() {
        let seen = leader_events(w, expected.len());
        for ((_, got), want) in seen.iter().zip(&expected) {
            match want {
                Some((value, who)) => {
                    assert_eq!(got["value"], *value, "observer on member {i}: {seen:?}");
                    assert_eq!(got["key"], who["key"]);
                    assert_eq!(got["term"], who["term"]);
                }
                None => assert_eq!(*got, Value::Null),
            }
        }
        let ids: Vec<u64> = seen.iter().map(|(id, _)| *id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids not increasing: {ids:?}");
        resume_from = ids[1];
    }
    let terms: Vec<u64> = [&a, &b, &cc].iter().map(|v| v["term"].as_u64().unwrap()).collect();
    assert!(terms.windows(2).all(|w| w[0] < w[1]), "terms not increasing: {terms:?}");

    // Resuming after the second event on another member replays exactly the rest.
    let w = open_watch(c.client_addr(2), "/v1/elections/svc/observe", Some(resume_from), false).unwrap();
    let rest = leader_events(&w, 3);
    assert_eq!(rest[0].1["value"], "b");
    assert_eq!(rest[1].1["value"], "c");
    assert_eq!(rest[2].1, Value::Null);
    // Bad input.
    c.request(
        0,
        reqwest::Method::PUT,
        "/v1/elections/svc/leader",
        json!({ "key": "nope", "value": "x" }).to_string().into(),
    )
    .error(400, "invalid_request");
    c.post_json(0, "/v1/elections/svc/campaign", &json!({ "value": "x" })).error(400, "invalid_request");
    c.get(0, "/v1/elections/svc?bogus").error(400, "invalid_request");
    c.post_json(0, "/v1/locks/job?wait", &json!({ "lease": 1 })).error(400, "invalid_request");
}

#[test]
fn a_retry_right_after_a_hang_up_keeps_its_entry() {
    let c = Cluster::start(3);
    let holder = grant(&c, 0, 30_000);
    let mine = grant(&c, 1, 30_000);
    let impatient = Client::builder().timeout(Duration::from_millis(300)).build().unwrap();
    for round in 0..10 {
        let held = c.post_json(0, "/v1/locks/retry", &json!({ "lease": holder })).ok_json(200, c.id(0));
        // Queue behind the holder, hang up, and retry at once with the same lease: the retry
        // may be handed the first request's entry, which the hang-up must not then delete.
        let member = 1 + round % 2;
        let gone = impatient
            .post(format!("http://{}/v1/locks/retry", c.client_addr(member)))
            .body(json!({ "lease": mine }).to_string())
            .send();
        assert!(gone.is_err());
        let retry = {
            let addr = c.client_addr(member);
            thread::spawn(move || {
                let http = Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
                call(
                    &http,
                    addr,
                    "POST",
                    "/v1/locks/retry",
                    Some(json!({ "lease": mine, "timeout_ms": 10_000 })),
                )
            })
        };
        thread::sleep(Duration::from_millis(200));
        let key = held["key"].as_str().unwrap();
        c.delete(0, &format!("/v1/locks/retry/{key}")).ok_json(200, c.id(0));
        let (status, v) = retry.join().unwrap().unwrap();
        assert_eq!(status, 200, "round {round}: {v}");
        thread::sleep(Duration::from_millis(300));
        let state = c.get(2, "/v1/locks/retry").ok_json(200, c.id(2));
        assert_eq!(state["holder"]["key"], v["key"], "round {round}: the retry's entry vanished: {state}");
        assert_eq!(state["waiters"], json!([]), "round {round}: {state}");
        c.delete(1, &format!("/v1/locks/retry/{}", v["key"].as_str().unwrap())).ok_json(200, c.id(1));
    }
}
