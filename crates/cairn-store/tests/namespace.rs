#![allow(clippy::unwrap_used)]
//! The state machine's behaviour, driven through commands as the Raft layer drives it.

use cairn_api::{ApiError, Compare, CompareOp, CompareTarget, ErrorCode, Expect, Op, OpResult, Txn};
use cairn_store::{open_db, Command, Output, Request, Store};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path()).unwrap();
    (dir, Store::open(db).unwrap())
}

fn run(store: &Store, command: Command) -> Result<Output, ApiError> {
    let mut apply = store.begin_apply().unwrap();
    let mut results = apply.apply_request(&Request::new(1_000, vec![command])).unwrap();
    apply.commit().unwrap();
    results.pop().unwrap().map(|a| a.output)
}

fn put(path: &str, value: &str) -> Command {
    Command::Op(Op::Put { path: path.into(), value: value.into(), lease: None, parents: false, expect: None })
}

fn create(path: &str, sequential: bool, parents: bool) -> Command {
    Command::Op(Op::Create { path: path.into(), value: vec![], sequential, lease: None, parents })
}

fn delete(path: &str, recursive: bool, expect: Option<Expect>) -> Command {
    Command::Op(Op::Delete { path: path.into(), recursive, expect })
}

fn code(r: Result<Output, ApiError>) -> ErrorCode {
    r.unwrap_err().code
}

#[test]
fn create_needs_the_parent_unless_asked() {
    let (_d, s) = store();
    assert_eq!(code(run(&s, create("/a/b", false, false))), ErrorCode::NotFound);
    assert_eq!(s.revision(), 0, "a failed write takes no revision");
    run(&s, create("/a/b/c", false, true)).unwrap();
    assert_eq!(s.revision(), 1, "parents and child land in one revision");
    let view = s.read().unwrap();
    assert_eq!(view.get("/a", None).unwrap().stat.num_children, 1);
    assert_eq!(view.get("/a/b/c", None).unwrap().stat.create_revision, 1);
    assert_eq!(code(run(&s, create("/a/b/c", false, false))), ErrorCode::AlreadyExists);
}

#[test]
fn sequential_names_count_up_per_parent() {
    let (_d, s) = store();
    run(&s, create("/q", false, false)).unwrap();
    let mut names = vec![];
    for _ in 0..3 {
        match run(&s, create("/q/item-", true, false)).unwrap() {
            Output::Op(OpResult::Created { node }) => names.push(node.path),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(names, ["/q/item-0000000000", "/q/item-0000000001", "/q/item-0000000002"]);
}

#[test]
fn set_and_delete_check_versions() {
    let (_d, s) = store();
    run(&s, put("/k", "v0")).unwrap();
    run(&s, put("/k", "v1")).unwrap();
    let cas = |v| {
        Command::Op(Op::Put {
            path: "/k".into(),
            value: b"v2".to_vec(),
            lease: None,
            parents: false,
            expect: Some(Expect::Version(v)),
        })
    };
    assert_eq!(code(run(&s, cas(0))), ErrorCode::VersionConflict);
    run(&s, cas(1)).unwrap();
    let node = s.read().unwrap().get("/k", None).unwrap();
    assert_eq!((node.value.as_slice(), node.stat.version, node.stat.mod_revision), (&b"v2"[..], 2, 3));
    assert_eq!(code(run(&s, delete("/k", false, Some(Expect::ModRevision(2))))), ErrorCode::VersionConflict);
    run(&s, delete("/k", false, Some(Expect::ModRevision(3)))).unwrap();
    assert_eq!(s.read().unwrap().get("/k", None).unwrap_err().code, ErrorCode::NotFound);
}

#[test]
fn recursive_delete_is_one_revision() {
    let (_d, s) = store();
    run(&s, create("/t/a/x", false, true)).unwrap();
    run(&s, create("/t/b", false, false)).unwrap();
    assert_eq!(code(run(&s, delete("/t", false, None))), ErrorCode::NotEmpty);
    let before = s.revision();
    match run(&s, delete("/t", true, None)).unwrap() {
        Output::Op(OpResult::Deleted { deleted, .. }) => assert_eq!(deleted, 4),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.revision(), before + 1);
    let view = s.read().unwrap();
    let events = view.events(before + 1, before + 1).unwrap();
    assert_eq!(events[0].1.len(), 4);
    assert_eq!(view.get("/", None).unwrap().stat.num_children, 0);
    // Still readable in the past.
    assert_eq!(view.get("/t/a/x", Some(before)).unwrap().stat.create_revision, 1);
}

#[test]
fn reads_at_past_revisions() {
    let (_d, s) = store();
    for i in 0..5 {
        run(&s, put("/k", &format!("v{i}"))).unwrap();
    }
    let view = s.read().unwrap();
    for rev in 1..=5u64 {
        assert_eq!(view.get("/k", Some(rev)).unwrap().value, format!("v{}", rev - 1).into_bytes());
    }
    assert_eq!(view.get("/k", Some(6)).unwrap_err().code, ErrorCode::FutureRevision);
    assert_eq!(view.get("/k", Some(0)).unwrap_err().code, ErrorCode::NotFound);
    drop(view);
    run(&s, Command::Compact { revision: 3 }).unwrap();
    s.purge_compacted().unwrap();
    let view = s.read().unwrap();
    let e = view.get("/k", Some(2)).unwrap_err();
    assert_eq!((e.code, e.compact_revision), (ErrorCode::Compacted, Some(3)));
    assert_eq!(view.get("/k", Some(3)).unwrap().value, b"v2");
    assert_eq!(view.get("/k", None).unwrap().value, b"v4");
    assert!(view.events(0, 2).unwrap().is_empty(), "history below the window is purged");
    assert_eq!(view.events(0, 10).unwrap().len(), 3);
}

#[test]
fn pages_are_consistent_at_the_first_page_revision() {
    let (_d, s) = store();
    run(&s, create("/d", false, false)).unwrap();
    for i in 0..25 {
        run(&s, create(&format!("/d/c{i:02}"), false, false)).unwrap();
        run(&s, create(&format!("/d/c{i:02}/grandchild"), false, false)).unwrap();
    }
    let first = s.read().unwrap().children("/d", None, None, 10).unwrap();
    assert_eq!(first.entries.len(), 10);
    let pinned = first.revision;
    let mut names: Vec<String> = first.entries.iter().map(|c| c.name.clone()).collect();
    let mut next = first.next;
    let mut round = 0;
    while let Some(cursor) = next {
        // Writers change the directory between pages.
        run(&s, create(&format!("/d/b{round:02}"), false, false)).unwrap();
        run(&s, delete("/d/c24", true, None)).ok();
        let page = s.read().unwrap().children("/d", None, Some(&cursor), 10).unwrap();
        assert_eq!(page.revision, pinned);
        names.extend(page.entries.iter().map(|c| c.name.clone()));
        next = page.next;
        round += 1;
    }
    let want: Vec<String> = (0..25).map(|i| format!("c{i:02}")).collect();
    assert_eq!(names, want);
    let sub = s.read().unwrap().subtree("/d", Some(pinned), None, 1000).unwrap();
    assert_eq!(sub.entries.len(), 50);
    assert!(sub.entries.windows(2).all(|w| w[0].path < w[1].path));
}

#[test]
fn transactions_are_atomic() {
    let (_d, s) = store();
    run(&s, put("/a", "x")).unwrap();
    let txn = |compare_value: &str, second: Op| {
        Command::Txn(Txn {
            compare: vec![Compare {
                path: "/a".into(),
                target: CompareTarget::Value(compare_value.as_bytes().to_vec()),
                op: CompareOp::Eq,
            }],
            success: vec![
                Op::Put {
                    path: "/a".into(),
                    value: b"y".to_vec(),
                    lease: None,
                    parents: false,
                    expect: None,
                },
                second,
            ],
            failure: vec![Op::Get { path: "/a".into() }],
        })
    };
    // The second op fails: nothing of the first stays.
    let failing = Op::Create {
        path: "/missing/child".into(),
        value: vec![],
        sequential: false,
        lease: None,
        parents: false,
    };
    assert_eq!(code(run(&s, txn("x", failing))), ErrorCode::NotFound);
    assert_eq!(s.read().unwrap().get("/a", None).unwrap().value, b"x");
    // Compare fails: the failure branch runs, no revision is taken.
    let rev = s.revision();
    match run(&s, txn("nope", Op::Get { path: "/a".into() })).unwrap() {
        Output::Txn(t) => assert!(!t.succeeded),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.revision(), rev);
    // Both succeed at one revision, the get sees the put.
    match run(&s, txn("x", Op::Get { path: "/a".into() })).unwrap() {
        Output::Txn(t) => {
            assert!(t.succeeded);
            match &t.results[1] {
                OpResult::Got { node: Some(n) } => assert_eq!(n.value, b"y"),
                other => panic!("{other:?}"),
            }
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.revision(), rev + 1);
}

#[test]
fn leases_that_do_not_exist_are_refused() {
    let (_d, s) = store();
    let c = Command::Op(Op::Create {
        path: "/e".into(),
        value: vec![],
        sequential: false,
        lease: Some(7),
        parents: false,
    });
    assert_eq!(code(run(&s, c)), ErrorCode::LeaseNotFound);
}

#[test]
fn state_survives_reopen_and_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(open_db(dir.path()).unwrap()).unwrap();
        run(&s, create("/p/q", false, true)).unwrap();
        run(&s, put("/p/q", "v")).unwrap();
    }
    let s = Store::open(open_db(dir.path()).unwrap()).unwrap();
    assert_eq!(s.revision(), 2);
    let mut image = Vec::new();
    s.write_snapshot(&mut image).unwrap();
    let (_d2, other) = store();
    run(&other, put("/junk", "x")).unwrap();
    other.install_snapshot(&mut image.as_slice()).unwrap();
    assert_eq!(other.revision(), 2);
    assert!(other.read().unwrap().get("/junk", None).is_err());
    assert_eq!(other.read().unwrap().get("/p/q", None).unwrap().value, b"v");
    assert!(other.install_snapshot(&mut &image[..image.len() - 3]).is_err());
    assert!(other.install_interrupted().unwrap(), "a truncated image leaves the mark");
}

/// Versions spread over several flushed files read the same as in memory, also listings at
/// a past revision, which seek among one path's versions and then go on across files.
#[test]
fn lookups_and_listings_agree_across_flushed_files() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open_db(dir.path()).unwrap();
        let s = Store::open(db.clone()).unwrap();
        run(&s, create("/d", false, false)).unwrap();
        let rounds: [&[&str]; 4] = [&["/d/a", "/d/c"], &["/d/b", "/d/e"], &["/d/a", "/d/e"], &["/d/aa"]];
        for (round, paths) in rounds.iter().enumerate() {
            for path in paths.iter() {
                run(&s, put(path, &format!("{path}@{round}"))).unwrap();
            }
            s.persist().unwrap();
        }
    }
    // Reopened, so nothing is answered from the newest state kept in memory.
    let s = Store::open(open_db(dir.path()).unwrap()).unwrap();
    let view = s.read().unwrap();
    assert_eq!(view.get("/d/a", None).unwrap().value, b"/d/a@2");
    assert_eq!(view.get("/d/a", Some(2)).unwrap().value, b"/d/a@0");
    assert_eq!(view.get("/d/c", None).unwrap().value, b"/d/c@0");
    assert_eq!(view.get("/d/e", Some(5)).unwrap().value, b"/d/e@1");
    assert_eq!(view.get("/d/b", Some(3)).unwrap_err().code, ErrorCode::NotFound);
    assert_eq!(view.get("/d/x", None).unwrap_err().code, ErrorCode::NotFound);
    let names = |at| -> Vec<String> {
        view.children("/d", at, None, 100).unwrap().entries.into_iter().map(|c| c.name).collect()
    };
    assert_eq!(names(None), ["a", "aa", "b", "c", "e"]);
    // At 5, /d/aa (made at 8) is passed over by a seek among its versions; the siblings
    // after it live in files without it.
    assert_eq!(names(Some(5)), ["a", "b", "c", "e"]);
    drop(view);
    assert_eq!(code(run(&s, create("/d/c", false, false))), ErrorCode::AlreadyExists);
    run(&s, create("/d/x", false, false)).unwrap();
    assert_eq!(s.read().unwrap().get("/d", None).unwrap().stat.num_children, 6);
}

/// The newest state kept in memory answers like the disk, with the revision it is current at.
#[test]
fn newest_in_memory_agrees_with_the_disk() {
    let (_d, s) = store();
    run(&s, put("/a", "1")).unwrap();
    run(&s, put("/b", "2")).unwrap();
    let (node, revision) = s.newest_in_memory("/a").unwrap();
    assert_eq!(revision, 2);
    assert_eq!(node, s.read().unwrap().get("/a", None).unwrap());
    run(&s, delete("/a", false, None)).unwrap();
    assert_eq!(s.newest_in_memory("/a"), None, "a deleted node is not kept");
    let (node, revision) = s.newest_in_memory("/b").unwrap();
    assert_eq!((node.value.as_slice(), revision), (&b"2"[..], 3), "current at the newest revision");
    assert_eq!(s.newest_in_memory("/never"), None);
}

/// State written with another key layout is refused at open, not misread.
#[test]
fn a_state_of_another_key_layout_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(open_db(dir.path()).unwrap()).unwrap();
        run(&s, put("/a", "1")).unwrap();
        let meta = s.db().cf_handle("sm_meta").unwrap();
        s.db().delete_cf(meta, b"layout").unwrap();
    }
    let err = Store::open(open_db(dir.path()).unwrap()).err().unwrap();
    assert!(matches!(err, cairn_store::StoreError::Layout { found: 1, ours: 3 }), "{err}");
    assert!(err.to_string().contains("empty data directory"), "{err}");
}

/// A queue's turns leave deleted entries behind in the history; listing the queue at the
/// newest revision skips them through the live column and agrees with the history's view.
#[test]
fn listings_skip_deleted_children_and_agree_with_history() {
    let (_dir, s) = store();
    run(&s, create("/q", false, false)).unwrap();
    for _ in 0..50 {
        let Output::Op(OpResult::Created { node }) = run(&s, create("/q/e-", true, false)).unwrap() else {
            panic!("not a create")
        };
        run(&s, delete(&node.path, false, None)).unwrap();
    }
    run(&s, create("/q/e-", true, false)).unwrap();
    run(&s, create("/q/sub/deep", false, true)).unwrap();
    let before = s.revision();
    run(&s, put("/other", "x")).unwrap();
    let view = s.read().unwrap();
    let names = |at| {
        view.children("/q", at, None, 100).unwrap().entries.into_iter().map(|c| c.name).collect::<Vec<_>>()
    };
    assert_eq!(names(None), ["e-0000000100", "sub"]);
    assert_eq!(names(None), names(Some(before)));
    // Paged, one child per page, at the newest revision.
    let first = view.children("/q", None, None, 1).unwrap();
    assert_eq!(first.entries[0].name, "e-0000000100");
    let second = view.children("/q", None, first.next.as_deref(), 1).unwrap();
    assert_eq!((second.entries[0].name.as_str(), second.next), ("sub", None));
}

/// A state of layout 2 (before the live column) is brought up to date when opened.
#[test]
fn a_state_without_the_live_column_gets_one_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(open_db(dir.path()).unwrap()).unwrap();
        run(&s, create("/a/b", false, true)).unwrap();
        run(&s, create("/a/c", false, true)).unwrap();
        run(&s, delete("/a/b", false, None)).unwrap();
        let (live, meta) = (s.db().cf_handle("sm_live").unwrap(), s.db().cf_handle("sm_meta").unwrap());
        s.db().delete_range_cf(live, b"".as_slice(), b"\xff".as_slice()).unwrap();
        s.db().put_cf(meta, b"layout", 2u64.to_be_bytes()).unwrap();
    }
    let s = Store::open(open_db(dir.path()).unwrap()).unwrap();
    let view = s.read().unwrap();
    let names = |p| {
        view.children(p, None, None, 100).unwrap().entries.into_iter().map(|c| c.name).collect::<Vec<_>>()
    };
    assert_eq!(names("/"), ["a"]);
    assert_eq!(names("/a"), ["c"]);
}

/// A checkpoint freezes the state at the moment it is taken, writes made without the WAL
/// included; its image is the live image of that moment, however the state moved on.
#[test]
fn a_checkpoint_keeps_the_state_it_was_taken_at() {
    let (dir, s) = store();
    run(&s, put("/a", "1")).unwrap();
    let mut apply = s.begin_apply().unwrap();
    apply.apply_request(&Request::new(1_000, vec![put("/b", "2")])).unwrap();
    apply.set_applied(b"marker".to_vec());
    apply.commit().unwrap();
    let mut live = Vec::new();
    s.write_snapshot(&mut live).unwrap();
    let frozen = dir.path().join("ckpt-1");
    assert_eq!(s.checkpoint(&frozen).unwrap().as_deref(), Some(&b"marker"[..]));
    run(&s, put("/a", "changed")).unwrap();
    run(&s, put("/c", "3")).unwrap();
    let mut image = Vec::new();
    let applied = cairn_store::write_checkpoint_image(&frozen, &mut image).unwrap();
    assert_eq!(applied.as_deref(), Some(&b"marker"[..]));
    assert_eq!(image, live, "the checkpoint's image is the state when it was taken");
    let (_d2, other) = store();
    other.install_snapshot(&mut image.as_slice()).unwrap();
    assert_eq!(other.revision(), 2);
    assert_eq!(other.read().unwrap().get("/a", None).unwrap().value, b"1");
    assert!(other.read().unwrap().get("/c", None).is_err());
}

#[test]
fn revoking_a_lease_deletes_its_nodes_in_one_revision() {
    let (_d, s) = store();
    let id = match run(&s, Command::LeaseGrant { ttl_ms: 5_000 }).unwrap() {
        Output::LeaseGranted { id, ttl_ms } => {
            assert_eq!(ttl_ms, 5_000);
            id
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(s.revision(), 0, "a grant changes no node");
    let eph = |path: &str| {
        Command::Op(Op::Create {
            path: path.into(),
            value: vec![],
            sequential: false,
            lease: Some(id),
            parents: true,
        })
    };
    run(&s, eph("/svc/a")).unwrap();
    run(&s, eph("/svc/b")).unwrap();
    run(&s, put("/svc/keep", "x")).unwrap();
    assert_eq!(code(run(&s, create("/svc/a/child", false, false))), ErrorCode::EphemeralParent);
    let (lease, paths) = s.read().unwrap().lease(id).unwrap().unwrap();
    assert_eq!((lease.ttl_ms, paths), (5_000, vec!["/svc/a".to_owned(), "/svc/b".to_owned()]));
    // Deleting one by hand unbinds it.
    run(&s, delete("/svc/b", false, None)).unwrap();
    assert_eq!(s.read().unwrap().lease(id).unwrap().unwrap().1, vec!["/svc/a".to_owned()]);
    run(&s, eph("/svc/c")).unwrap();
    let before = s.revision();
    match run(&s, Command::LeaseRevoke { id }).unwrap() {
        Output::LeaseRevoked { deleted, .. } => assert_eq!(deleted, 2),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.revision(), before + 1);
    let view = s.read().unwrap();
    assert_eq!(view.events(before + 1, before + 1).unwrap()[0].1.len(), 2);
    assert!(view.lease(id).unwrap().is_none());
    assert_eq!(view.get("/svc", None).unwrap().stat.num_children, 1);
    assert_eq!(code(run(&s, Command::LeaseRevoke { id })), ErrorCode::LeaseNotFound);
    assert_eq!(code(run(&s, eph("/svc/d"))), ErrorCode::LeaseNotFound);
}

#[test]
fn lease_ids_are_unique_and_ttls_bounded() {
    let (_d, s) = store();
    let grant = |ttl| run(&s, Command::LeaseGrant { ttl_ms: ttl });
    let ids: Vec<u64> = (0..3)
        .map(|_| match grant(3_000).unwrap() {
            Output::LeaseGranted { id, .. } => id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids, [1, 2, 3]);
    assert_eq!(code(grant(10)), ErrorCode::InvalidRequest);
    assert_eq!(code(grant(u64::MAX)), ErrorCode::InvalidRequest);
    assert_eq!(s.read().unwrap().leases().unwrap().len(), 3);
}

#[test]
fn answers_without_values_still_write_them() {
    let (_dir, store) = store();
    run(&store, put("/a", "v1")).unwrap();
    let mut apply = store.begin_apply().unwrap();
    apply.answer_values(false);
    let mut results = apply.apply_request(&Request::new(1_000, vec![put("/a", "v2")])).unwrap();
    apply.commit().unwrap();
    let Ok(Output::Op(OpResult::Put { node, prev: Some(prev) })) = results.pop().unwrap().map(|a| a.output)
    else {
        panic!("a set answers with the node and its previous version");
    };
    assert!(node.value.is_empty() && prev.value.is_empty(), "{node:?} {prev:?}");
    assert_eq!((node.stat.version, prev.stat.version), (1, 0));
    // What is stored is whole: the next answer with values shows both.
    let Ok(Output::Op(OpResult::Put { node, prev: Some(prev) })) = run(&store, put("/a", "v3")) else {
        panic!("a set answers with the node and its previous version");
    };
    assert_eq!((node.value.as_slice(), prev.value.as_slice()), (&b"v3"[..], &b"v2"[..]));
}
