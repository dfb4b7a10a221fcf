#![allow(clippy::unwrap_used)]
//! Property: the same commands give the same state and history, however they are batched
//! into log entries, whether or not a snapshot is taken and installed midway, and whether
//! or not the store's in-memory cache of the newest state is warm.

use cairn_api::{Expect, Op};
use cairn_store::{open_db, Command, CommandResult, Request, Store};
use proptest::prelude::*;

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 1..4)
        .prop_map(|segs| format!("/{}", segs.join("/")))
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (path(), any::<u8>(), any::<bool>()).prop_map(|(p, v, parents)| Command::Op(Op::Put {
            path: p,
            value: vec![v],
            lease: None,
            parents,
            expect: None,
        })),
        (path(), any::<bool>()).prop_map(|(p, seq)| Command::Op(Op::Create {
            path: p,
            value: b"c".to_vec(),
            sequential: seq,
            lease: None,
            parents: true,
        })),
        (path(), any::<bool>(), prop::option::of(0u64..3)).prop_map(|(p, r, v)| Command::Op(Op::Delete {
            path: p,
            recursive: r,
            expect: v.map(Expect::Version),
        })),
        (0u64..20).prop_map(|revision| Command::Compact { revision }),
        Just(Command::LeaseGrant { ttl_ms: 5_000 }),
        (1u64..4).prop_map(|id| Command::LeaseRevoke { id }),
        (path(), 1u64..4).prop_map(|(p, id)| Command::Op(Op::Create {
            path: p,
            value: b"e".to_vec(),
            sequential: false,
            lease: Some(id),
            parents: true,
        })),
    ]
}

/// An event without its time stamps: (kind, path, version).
type EventSummary = (cairn_store::EventKind, String, u64);

fn fresh() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path()).unwrap();
    (dir, Store::open(db).unwrap())
}

fn apply(store: &Store, commands: &[Command], chunk: usize) -> Vec<CommandResult> {
    apply_answering(store, commands, chunk, true)
}

/// Like [`apply`]; `values` off is how a member applies entries another member proposed.
fn apply_answering(store: &Store, commands: &[Command], chunk: usize, values: bool) -> Vec<CommandResult> {
    let mut out = vec![];
    for (i, batch) in commands.chunks(chunk.max(1)).enumerate() {
        let mut a = store.begin_apply().unwrap();
        a.answer_values(values);
        let request = Request::new(1000 + i as u64, batch.to_vec());
        out.extend(a.apply_request(&request).unwrap());
        a.set_applied(vec![i as u8]);
        a.commit().unwrap();
    }
    out
}

/// Like [`apply`], but every log entry is applied by a freshly opened store, so nothing
/// that apply keeps in memory carries over from one entry to the next.
fn apply_cold(dir: &std::path::Path, commands: &[Command], chunk: usize) -> Vec<CommandResult> {
    let mut out = vec![];
    for (i, batch) in commands.chunks(chunk.max(1)).enumerate() {
        let store = Store::open(open_db(dir).unwrap()).unwrap();
        let mut a = store.begin_apply().unwrap();
        let request = Request::new(1000 + i as u64, batch.to_vec());
        out.extend(a.apply_request(&request).unwrap());
        a.set_applied(vec![i as u8]);
        a.commit().unwrap();
    }
    out
}

fn image(store: &Store) -> Vec<u8> {
    let mut out = vec![];
    store.write_snapshot(&mut out).unwrap();
    out
}

/// Results without the time stamps, which depend on batching.
fn outcome(results: &[CommandResult]) -> Vec<String> {
    results
        .iter()
        .map(|r| match r {
            Ok(a) => format!("ok@{}", a.revision),
            Err(e) => format!("{:?}", e.code),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn replay_is_deterministic(commands in prop::collection::vec(command(), 1..40), chunk in 1usize..8, cut in 0usize..40) {
        // Same batching twice: byte-identical images.
        let (_a, a) = fresh();
        let (_b, b) = fresh();
        let ra = apply(&a, &commands, chunk);
        let rb = apply(&b, &commands, chunk);
        prop_assert_eq!(&ra, &rb);
        prop_assert_eq!(image(&a), image(&b));

        // The in-memory cache of the newest state changes nothing: a store reopened for
        // every entry answers and stores exactly the same.
        let cold_dir = tempfile::tempdir().unwrap();
        let rcold = apply_cold(cold_dir.path(), &commands, chunk);
        prop_assert_eq!(&ra, &rcold);
        let cold = Store::open(open_db(cold_dir.path()).unwrap()).unwrap();
        prop_assert_eq!(image(&a), image(&cold));

        // Answers without values (a follower's) change nothing stored, nor any outcome.
        let (_q, q) = fresh();
        let rq = apply_answering(&q, &commands, chunk, false);
        prop_assert_eq!(outcome(&ra), outcome(&rq));
        prop_assert_eq!(image(&a), image(&q));

        // Other batching: same outcomes and the same history and namespace.
        let (_c, c) = fresh();
        let rc = apply(&c, &commands, 1);
        prop_assert_eq!(outcome(&ra), outcome(&rc));
        prop_assert_eq!(a.revision(), c.revision());
        let (va, vc) = (a.read().unwrap(), c.read().unwrap());
        let from = va.compact_revision();
        let strip = |evs: Vec<(u64, Vec<cairn_store::Event>)>| -> Vec<(u64, Vec<EventSummary>)> {
            evs.into_iter().map(|(r, es)| (r, es.into_iter().map(|e| (e.kind, e.path, e.stat.version)).collect())).collect()
        };
        prop_assert_eq!(strip(va.events(from, u64::MAX).unwrap()), strip(vc.events(from, u64::MAX).unwrap()));
        let ta = va.subtree("/", None, None, 10_000).unwrap();
        let tc = vc.subtree("/", None, None, 10_000).unwrap();
        let key = |p: &cairn_api::Page<cairn_api::Node>| p.entries.iter().map(|n| (n.path.clone(), n.value.clone(), n.stat.version, n.stat.num_children)).collect::<Vec<_>>();
        prop_assert_eq!(key(&ta), key(&tc));

        // Children at the newest revision come from the live column, at an older one from
        // the stat column. After a write elsewhere (/p), the state before it is older, and
        // both ways must list the same children of every node.
        let before = a.revision();
        let mut dirs: Vec<String> = ta.entries.iter().map(|n| n.path.clone()).collect();
        dirs.push("/".into());
        drop(va);
        apply(&a, &[Command::Op(Op::Put { path: "/p".into(), value: vec![], lease: None, parents: false, expect: None })], 1);
        let v = a.read().unwrap();
        for dir in &dirs {
            let names = |at: Option<u64>| -> Vec<(String, u64)> {
                v.children(dir, at, None, 10_000).unwrap().entries.into_iter()
                    .filter(|c| !(dir == "/" && c.name == "p"))
                    .map(|c| (c.name, c.stat.mod_revision)).collect()
            };
            prop_assert_eq!(names(None), names(Some(before)), "children of {}", dir);
        }

        // A snapshot installed midway, then the rest applied: same state as straight through.
        let cut = cut.min(commands.len());
        let (_d, d) = fresh();
        let (_e, e) = fresh();
        apply(&d, &commands[..cut], chunk);
        e.install_snapshot(&mut image(&d).as_slice()).unwrap();
        let rd = apply(&d, &commands[cut..], chunk);
        let re = apply(&e, &commands[cut..], chunk);
        prop_assert_eq!(rd, re);
        prop_assert_eq!(image(&d), image(&e));
    }
}
