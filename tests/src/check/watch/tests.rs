use super::*;

fn ev(revision: u64, path: &str, kind: EventKind, value: Option<&str>) -> Event {
    Event { revision, path: path.to_string(), kind, value: value.map(str::to_string) }
}
fn create(revision: u64, path: &str, value: &str) -> Event {
    ev(revision, path, EventKind::Create, Some(value))
}
fn set(revision: u64, path: &str, value: &str) -> Event {
    ev(revision, path, EventKind::Set, Some(value))
}
fn delete(revision: u64, path: &str) -> Event {
    ev(revision, path, EventKind::Delete, None)
}

/// Revisions 1..=8 under /app, two events sharing revision 5 (one transaction), one
/// event outside /app.
fn committed() -> Vec<Event> {
    vec![
        create(1, "/app", "root"),
        create(2, "/app/a", "1"),
        create(3, "/other", "x"),
        set(4, "/app/a", "2"),
        create(5, "/app/b", "1"),
        create(5, "/app/b/c", "deep"),
        delete(6, "/app/a"),
        set(7, "/app/b", "2"),
        create(8, "/app/d", "1"),
    ]
}

fn stream(scope: Scope, start: u64, items: Vec<StreamItem>) -> WatchStream {
    WatchStream { name: "w1".to_string(), scope, start_revision: start, items, covered_through: None }
}
fn subtree() -> Scope {
    Scope::Subtree("/app".to_string())
}
fn events(list: &[Event]) -> Vec<StreamItem> {
    list.iter().cloned().map(StreamItem::Event).collect()
}
/// The committed events of `subtree()` with revision in `revs`.
fn owed(revs: std::ops::RangeInclusive<u64>) -> Vec<Event> {
    committed().into_iter().filter(|e| revs.contains(&e.revision) && e.path.starts_with("/app")).collect()
}
fn kinds(anomalies: &[WatchAnomaly]) -> Vec<(WatchAnomalyKind, Option<u64>)> {
    anomalies.iter().map(|a| (a.kind, a.revision)).collect()
}

#[test]
fn scopes_match_like_the_watch_api() {
    let node = Scope::Node("/a".to_string());
    let children = Scope::Children("/a".to_string());
    let sub = Scope::Subtree("/a".to_string());
    let root_children = Scope::Children("/".to_string());
    let root = Scope::Subtree("/".to_string());
    for (path, n, c, s, rc, r) in [
        ("/a", true, false, true, true, true),
        ("/a/b", false, true, true, false, true),
        ("/a/b/c", false, false, true, false, true),
        ("/ab", false, false, false, true, true),
        ("/", false, false, false, false, true),
    ] {
        assert_eq!((node.matches(path), children.matches(path), sub.matches(path)), (n, c, s), "{path}");
        assert_eq!((root_children.matches(path), root.matches(path)), (rc, r), "{path}");
    }
}

#[test]
fn complete_streams_pass_including_resume_and_progress() {
    let all = owed(1..=8);
    assert_eq!(check_stream(&committed(), &stream(subtree(), 1, events(&all))), []);
    // From revision 4, reconnecting after revision 5 (both its events arrived).
    let mut items = events(&owed(4..=5));
    items.push(StreamItem::Reconnect { last_event_id: Some(5) });
    items.extend(events(&owed(6..=8)));
    items.push(StreamItem::Progress { revision: 9 });
    assert_eq!(check_stream(&committed(), &stream(subtree(), 4, items)), []);
    // Children of /app: only direct children; /app/b/c is not one.
    let children: Vec<Event> = committed()
        .into_iter()
        .filter(|e| e.path.starts_with("/app/") && e.path.matches('/').count() == 2)
        .collect();
    let s = stream(Scope::Children("/app".to_string()), 1, events(&children));
    assert_eq!(check_stream(&committed(), &s), []);
    // Reconnecting without Last-Event-ID asks again from the start: replays are fine.
    let mut items = events(&owed(1..=4));
    items.push(StreamItem::Reconnect { last_event_id: None });
    items.extend(events(&all));
    assert_eq!(check_stream(&committed(), &stream(subtree(), 1, items)), []);
}

#[test]
fn skipped_event_is_missing() {
    let mut list = owed(1..=8);
    list.retain(|e| e.revision != 4);
    let anomalies = check_stream(&committed(), &stream(subtree(), 1, events(&list)));
    assert_eq!(kinds(&anomalies), [(WatchAnomalyKind::Missing, Some(4))]);
    let text = &anomalies[0].text;
    assert!(
        text.contains("w1: missing rev 4 set /app/a=\"2\"") && text.contains("went on from rev 2"),
        "{text}"
    );
}

#[test]
fn half_delivered_revision_is_missing_its_other_half() {
    let mut list = owed(1..=5);
    list.retain(|e| e.path != "/app/b/c");
    let anomalies = check_stream(&committed(), &stream(subtree(), 1, events(&list)));
    assert_eq!(kinds(&anomalies), [(WatchAnomalyKind::Missing, Some(5))]);
}

#[test]
fn events_up_to_covered_through_are_owed() {
    let mut s = stream(subtree(), 6, events(&owed(6..=6)));
    s.covered_through = Some(8);
    let anomalies = check_stream(&committed(), &s);
    assert_eq!(
        kinds(&anomalies),
        [(WatchAnomalyKind::Missing, Some(7)), (WatchAnomalyKind::Missing, Some(8))]
    );
    assert!(anomalies[0].text.contains("never delivered"), "{}", anomalies[0].text);
}

#[test]
fn duplicated_event_is_reported() {
    let mut list = owed(1..=8);
    list.insert(3, list[2].clone());
    let anomalies = check_stream(&committed(), &stream(subtree(), 1, events(&list)));
    assert_eq!(kinds(&anomalies), [(WatchAnomalyKind::Duplicate, Some(4))]);
}

#[test]
fn out_of_order_event_is_reported() {
    let mut list = owed(1..=8);
    list.swap(1, 2); // revision 4 before revision 2
    let anomalies = check_stream(&committed(), &stream(subtree(), 1, events(&list)));
    assert_eq!(kinds(&anomalies), [(WatchAnomalyKind::OutOfOrder, Some(2))]);
    // Within one revision, commit order counts too.
    let mut list = owed(1..=8);
    list.swap(3, 4);
    let anomalies = check_stream(&committed(), &stream(subtree(), 1, events(&list)));
    assert_eq!(kinds(&anomalies), [(WatchAnomalyKind::OutOfOrder, Some(5))]);
}

#[test]
fn resume_that_skips_is_reported_with_its_reconnect() {
    let mut items = events(&owed(1..=4));
    items.push(StreamItem::Reconnect { last_event_id: Some(4) });
    items.extend(events(&owed(6..=8))); // revision 5 lost across the reconnect
    let anomalies = check_stream(&committed(), &stream(subtree(), 1, items));
    assert_eq!(
        kinds(&anomalies),
        [(WatchAnomalyKind::Missing, Some(5)), (WatchAnomalyKind::Missing, Some(5))]
    );
    assert!(anomalies[0].text.contains("after reconnecting with Last-Event-ID 4"), "{}", anomalies[0].text);
}

#[test]
fn resume_that_replays_is_reported() {
    let mut items = events(&owed(1..=5));
    items.push(StreamItem::Reconnect { last_event_id: Some(5) });
    items.extend(events(&owed(4..=8))); // revisions 4 and 5 again
    let anomalies = check_stream(&committed(), &stream(subtree(), 1, items));
    assert_eq!(
        kinds(&anomalies),
        [
            (WatchAnomalyKind::ReplayAfterResume, Some(4)),
            (WatchAnomalyKind::ReplayAfterResume, Some(5)),
            (WatchAnomalyKind::ReplayAfterResume, Some(5)),
        ]
    );
}

#[test]
fn wrong_content_and_foreign_events_are_reported() {
    let mut list = owed(2..=8);
    list[1].value = Some("3".to_string()); // revision 4 set /app/a
    list.push(create(3, "/other", "x")); // committed, outside the scope
    list.push(create(9, "/app/z", "ghost")); // never committed
    list.push(set(8, "/app/d", "1")); // committed as a create
    let mut s = stream(subtree(), 2, events(&list));
    s.items.insert(0, StreamItem::Event(create(1, "/app", "root"))); // before the start
    let anomalies = check_stream(&committed(), &s);
    assert_eq!(
        kinds(&anomalies),
        [
            (WatchAnomalyKind::BeforeStart, Some(1)),
            (WatchAnomalyKind::Mismatch, Some(4)),
            (WatchAnomalyKind::OutOfScope, Some(3)),
            (WatchAnomalyKind::NotCommitted, Some(9)),
            (WatchAnomalyKind::Mismatch, Some(8)),
        ],
        "{anomalies:#?}"
    );
    assert!(
        anomalies[1].text.contains("expected value Some(\"2\"), got Some(\"3\")"),
        "{}",
        anomalies[1].text
    );
}

#[test]
fn acknowledged_writes_must_be_committed_at_their_revision() {
    let ack = |path: &str, revision, value: Option<&str>| AckedWrite {
        path: path.to_string(),
        revision,
        value: value.map(str::to_string),
    };
    let good = [ack("/app/a", 4, Some("2")), ack("/app/a", 6, None), ack("/app/b/c", 5, Some("deep"))];
    assert_eq!(check_acknowledged(&committed(), &good), []);
    let bad = [ack("/app/a", 4, Some("9")), ack("/app/x", 7, Some("1")), ack("/app/b", 7, None)];
    let anomalies = check_acknowledged(&committed(), &bad);
    assert_eq!(anomalies.len(), 3);
    assert!(anomalies.iter().all(|a| a.kind == WatchAnomalyKind::AckNotCommitted));
    assert!(anomalies[0].text.contains("it has rev 4 set /app/a=\"2\""), "{}", anomalies[0].text);
}

#[test]
fn streams_round_trip_as_json_lines() {
    let mut items = events(&owed(1..=2));
    items.push(StreamItem::Reconnect { last_event_id: Some(2) });
    items.push(StreamItem::Progress { revision: 3 });
    let streams = vec![stream(subtree(), 1, items)];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("watch.jsonl");
    crate::history::write_jsonl(&path, &streams).unwrap();
    let back: Vec<WatchStream> = crate::history::read_jsonl(&path).unwrap();
    assert_eq!(back, streams);
    assert_eq!(check_streams(&committed(), &back), []);
}
