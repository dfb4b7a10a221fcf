#![allow(clippy::unwrap_used)]
//! The Rust client's recipes against real members: `Mutex` guards carry increasing fencing
//! tokens and never overlap, also across a leader kill; `Election` observers see every
//! change; a `Session` whose lease is revoked reports itself lost and its lock moves on.

use std::sync::Arc;
use std::time::Duration;

use cairn_client::{Client, Election, Mutex, Session};
use cairn_tests::Cluster;
use futures::StreamExt;

fn client_for(c: &Cluster) -> Client {
    let endpoints: Vec<String> = (0..c.len()).map(|i| format!("http://{}", c.client_addr(i))).collect();
    Client::builder(endpoints).request_timeout(Duration::from_secs(5)).build().unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

#[test]
fn mutex_guards_never_overlap_and_tokens_increase_across_a_leader_kill() {
    let mut c = Cluster::start(3);
    let client = client_for(&c);
    let rt = runtime();
    // Four sessions contend; a shared counter checks mutual exclusion in this process and
    // the tokens' order checks it as the cluster saw it.
    let inside = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tokens = Arc::new(std::sync::Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (client, inside, tokens) = (client.clone(), inside.clone(), tokens.clone());
            rt.spawn(async move {
                let session = Session::new(&client, Duration::from_secs(10)).await.unwrap();
                let mutex = Mutex::new(&session, "jobs");
                for _ in 0..30 {
                    let guard = loop {
                        match mutex.lock(Some(Duration::from_secs(20))).await {
                            Ok(g) => break g,
                            Err(e) if e.is_outcome_unknown() || e.status() == Some(503) || e.is_timeout() => {
                                tokio::time::sleep(Duration::from_millis(100)).await
                            }
                            Err(e) => panic!("lock: {e}"),
                        }
                    };
                    assert_eq!(inside.fetch_add(1, std::sync::atomic::Ordering::SeqCst), 0, "two holders");
                    tokens.lock().unwrap().push(guard.fencing_token());
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    inside.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    while let Err(e) = client.release_lock("jobs", guard.key()).await {
                        assert!(
                            e.is_outcome_unknown() || e.status() == Some(503) || e.is_not_found(),
                            "unlock: {e}"
                        );
                        if e.is_not_found() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    drop(guard);
                }
            })
        })
        .collect();
    cairn_tests::eventually(Duration::from_secs(30), "a third of the rounds", || {
        (tokens.lock().unwrap().len() >= 20).then_some(())
    });
    let leader = c.leader();
    c.kill(leader);
    rt.block_on(async {
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(90), t).await.expect("contenders finish").unwrap();
        }
    });
    let tokens = tokens.lock().unwrap().clone();
    assert_eq!(tokens.len(), 120);
    assert!(tokens.windows(2).all(|w| w[0] < w[1]), "tokens out of order: {tokens:?}");
}

#[test]
fn election_observers_see_every_leader_and_a_lost_session_hands_over() {
    let c = Cluster::start(3);
    let client = client_for(&c);
    let rt = runtime();
    rt.block_on(async {
        let mut observe = client.observe_election("svc").await.unwrap();
        let first = observe.next().await.unwrap().unwrap();
        assert!(first.leader.is_none());

        let a = Session::new(&client, Duration::from_secs(10)).await.unwrap();
        let b = Session::new(&client, Duration::from_secs(10)).await.unwrap();
        let ea = Election::new(&a, "svc");
        let eb = Election::new(&b, "svc");
        let lead_a = ea.campaign("a", Some(Duration::from_secs(5))).await.unwrap();
        let waiting = tokio::spawn(async move { eb.campaign("b", Some(Duration::from_secs(20))).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        ea.proclaim(&lead_a, "a2").await.unwrap();
        // A's session ends (its lease is revoked): A is lost, B leads.
        let lost = a.lost();
        client.revoke(a.lease_id()).await.unwrap();
        let lead_b = waiting.await.unwrap().unwrap();
        tokio::time::timeout(Duration::from_secs(15), lost).await.expect("session reports its loss");
        assert!(lead_b.term > lead_a.term);

        let mut seen = Vec::new();
        while seen.len() < 3 {
            let e = tokio::time::timeout(Duration::from_secs(10), observe.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            seen.push(e.leader.map(|l| (l.term, l.value)));
        }
        assert_eq!(
            seen,
            vec![
                Some((lead_a.term, "a".to_owned())),
                Some((lead_a.term, "a2".to_owned())),
                Some((lead_b.term, "b".to_owned()))
            ]
        );
        let term_b = lead_b.term;
        Election::new(&b, "svc").resign(lead_b).await.unwrap();
        let e =
            tokio::time::timeout(Duration::from_secs(10), observe.next()).await.unwrap().unwrap().unwrap();
        assert!(e.leader.is_none(), "after B resigned nobody leads (B had term {term_b})");
        b.close().await.unwrap();
    });
}
