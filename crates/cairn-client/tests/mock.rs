//! The client against a scripted HTTP server on loopback (raw tokio TCP, one request per
//! connection): member failover, what counts as an unknown outcome, watch resumption, and
//! the session and lock recipes. The black-box tests against real `cairn` processes live
//! in the workspace's `tests/` crate.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use cairn_client::{Client, CreateOptions, Mutex, PutOptions, Session, WatchEvent, WatchOptions};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone)]
struct Req {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

enum Reply {
    Json(u16, String),
    /// An event stream: these pieces, then the connection closes.
    Sse(Vec<String>),
    /// Read the request, then hang up without answering.
    HangUp,
}

type Handler = Arc<dyn Fn(&Req) -> Reply + Send + Sync>;

struct Mock {
    url: String,
    log: Arc<StdMutex<Vec<Req>>>,
}

impl Mock {
    fn requests(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }
}

async fn mock(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Mock {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(StdMutex::new(Vec::new()));
    let handler: Handler = Arc::new(handler);
    let shared = log.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(serve(conn, handler.clone(), shared.clone()));
        }
    });
    Mock { url, log }
}

async fn read_request(conn: &mut TcpStream) -> Option<Req> {
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, target) = (first.next()?.to_owned(), first.next()?.to_owned());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':').map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned())))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Req { method, target, headers, body: String::from_utf8_lossy(&body).into_owned() })
}

async fn serve(mut conn: TcpStream, handler: Handler, log: Arc<StdMutex<Vec<Req>>>) {
    let Some(req) = read_request(&mut conn).await else { return };
    log.lock().unwrap().push(req.clone());
    match handler(&req) {
        Reply::Json(status, body) => {
            let head = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes()).await;
            let _ = conn.write_all(body.as_bytes()).await;
        }
        Reply::Sse(pieces) => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
            let _ = conn.write_all(head.as_bytes()).await;
            for piece in pieces {
                let _ = conn.write_all(piece.as_bytes()).await;
                let _ = conn.flush().await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        Reply::HangUp => {}
    }
    let _ = conn.shutdown().await;
}

/// A loopback address where nothing listens.
async fn dead_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

const HEADER: &str = r#"{"revision":7,"raft_term":1,"leader":1,"member":1}"#;
const STAT: &str = r#"{"create_revision":1,"mod_revision":7,"version":0,"cversion":0,"num_children":0,"lease":null,"ctime":0,"mtime":0,"data_length":1}"#;

fn node(path: &str, value: &str) -> String {
    format!(r#"{{"path":"{path}","value":"{value}","stat":{STAT}}}"#)
}

fn put_answer() -> Reply {
    Reply::Json(
        201,
        format!(r#"{{"header":{HEADER},"created":true,"node":{},"prev":null}}"#, node("/a", "x")),
    )
}

fn client(urls: &[&str]) -> Client {
    Client::builder(urls.iter().copied()).request_timeout(Duration::from_secs(2)).build().unwrap()
}

#[tokio::test]
async fn moves_to_the_next_member_when_one_is_down() {
    let dead = dead_endpoint().await;
    let live = mock(|_| put_answer()).await;
    let c = client(&[&dead, &live.url]);
    let r =
        c.put("/a", "x", PutOptions { parents: true, lease: Some(3), ..Default::default() }).await.unwrap();
    assert_eq!((r.header.revision, r.created, r.node.value.as_slice()), (7, true, &b"x"[..]));
    assert_eq!(c.current_endpoint(), live.url);
    let reqs = live.requests();
    assert_eq!((reqs[0].method.as_str(), reqs[0].target.as_str()), ("PUT", "/v1/nodes/a?parents&lease=3"));
    assert_eq!(reqs[0].body, "x");
}

#[tokio::test]
async fn a_write_that_may_have_arrived_is_not_resent() {
    let hangs = mock(|_| Reply::HangUp).await;
    let live = mock(|req| match req.method.as_str() {
        "GET" => Reply::Json(200, format!(r#"{{"header":{HEADER},"node":{}}}"#, node("/a", "x"))),
        _ => put_answer(),
    })
    .await;
    let c = client(&[&hangs.url, &live.url]);
    let e = c.create("/a", "x", CreateOptions::default()).await.unwrap_err();
    assert!(e.is_outcome_unknown(), "{e}");
    assert!(live.requests().is_empty(), "the write went to a second member");
    // A read may go on to the next member.
    let got = c.get("/a").await.unwrap();
    assert_eq!(got.node.map(|n| n.path), Some("/a".to_owned()));
}

#[tokio::test]
async fn a_503_is_unknown_only_when_it_says_so() {
    let unknown = mock(|_| {
        Reply::Json(
            503,
            r#"{"code":"unavailable","message":"the leader did not answer (x): the write may or may not have been applied; read before retrying"}"#.into(),
        )
    })
    .await;
    let no_leader = mock(|_| {
        Reply::Json(503, r#"{"code":"unavailable","message":"no leader is available; retry shortly"}"#.into())
    })
    .await;
    let live = mock(|_| put_answer()).await;

    let c = client(&[&unknown.url, &live.url]);
    assert!(c.put("/a", "x", PutOptions::default()).await.unwrap_err().is_outcome_unknown());
    assert!(live.requests().is_empty());

    let c = client(&[&no_leader.url, &live.url]);
    assert!(c.put("/a", "x", PutOptions::default()).await.is_ok());
    assert_eq!(live.requests().len(), 1);
}

#[tokio::test]
async fn server_errors_keep_code_status_and_message() {
    let m = mock(|req| match req.method.as_str() {
        "GET" => Reply::Json(404, r#"{"code":"not_found","message":"node /a does not exist","header":{"revision":9,"raft_term":1,"leader":1,"member":1}}"#.into()),
        _ => Reply::Json(409, r#"{"code":"version_conflict","message":"node /a has version 1, expected 0"}"#.into()),
    })
    .await;
    let c = client(&[&m.url]);
    let e = c.put("/a", "x", PutOptions { version: Some(0), ..Default::default() }).await.unwrap_err();
    assert!(e.is_version_conflict());
    assert_eq!(e.status(), Some(409));
    assert!(e.to_string().contains("expected 0"));
    // A missing node reads as `None`, with the header of the error answer.
    let got = c.get("/a").await.unwrap();
    assert_eq!((got.node, got.header.revision), (None, 9));
}

fn change(kind: &str, revision: u64, path: &str, id: bool) -> String {
    let data = format!(r#"{{"type":"{kind}","revision":{revision},"node":{},"prev":null}}"#, node(path, "v"));
    if id {
        format!("event: {kind}\ndata: {data}\nid: {revision}\n\n")
    } else {
        format!("event: {kind}\ndata: {data}\n\n")
    }
}

#[tokio::test]
async fn a_watch_resumes_without_gap_or_duplicate_and_ends_on_compacted() {
    let m = mock(|req| {
        if req.target == "/ready" {
            return Reply::Json(
                200,
                r#"{"header":{"revision":2,"raft_term":1,"leader":1,"member":1},"ready":true}"#.into(),
            );
        }
        match req.header("last-event-id") {
            // First connection: revision 3 whole, then half of revision 4 and a hang-up.
            Some("2") => Reply::Sse(vec![
                ": hello\n\n".into(),
                change("create", 3, "/a/x", false),
                change("create", 3, "/a/y", true),
                change("delete", 4, "/a/x", false),
            ]),
            // Resumed after 3: revision 4 whole, then cut for being slow.
            Some("3") => Reply::Sse(vec![
                change("delete", 4, "/a/x", false),
                change("delete", 4, "/a/y", true),
                "event: progress\ndata: {\"revision\":6}\nid: 6\n\n".into(),
                "event: cancelled\ndata: {\"reason\":\"fell behind\",\"revision\":6}\n\n".into(),
            ]),
            _ => Reply::Json(
                410,
                r#"{"code":"compacted","message":"revision 7 has been compacted","compact_revision":9}"#
                    .into(),
            ),
        }
    })
    .await;
    let c = client(&[&m.url]);
    let opts = WatchOptions { scope: cairn_client::Scope::Recursive, ..Default::default() };
    let events: Vec<_> = c.watch("/a", opts).await.unwrap().collect().await;
    let seen: Vec<String> = events
        .iter()
        .map(|e| match e {
            Ok(WatchEvent::Create(n)) => format!("create {} {}", n.node.path, n.revision),
            Ok(WatchEvent::Delete(n)) => format!("delete {} {}", n.node.path, n.revision),
            Ok(other) => format!("{other:?}"),
            Err(e) => format!("error {:?} {:?}", e.code(), e.compact_revision()),
        })
        .collect();
    assert_eq!(
        seen,
        [
            "create /a/x 3",
            "create /a/y 3",
            "delete /a/x 4",
            "delete /a/y 4",
            "Progress { revision: 6 }",
            "error Some(\"compacted\") Some(9)"
        ]
    );
    let targets: Vec<_> = m
        .requests()
        .iter()
        .map(|r| (r.target.clone(), r.header("last-event-id").map(String::from)))
        .collect();
    assert_eq!(targets[1], ("/v1/watch/a?recursive".to_owned(), Some("2".to_owned())));
    assert_eq!(targets[3].1.as_deref(), Some("6"));
}

#[tokio::test]
async fn a_session_is_lost_when_the_lease_is_gone() {
    let m = mock(|req| match (req.method.as_str(), req.target.as_str()) {
        ("POST", "/v1/leases") => Reply::Json(201, format!(r#"{{"header":{HEADER},"id":5,"ttl_ms":2000}}"#)),
        _ => Reply::Json(404, r#"{"code":"lease_not_found","message":"lease 5 does not exist"}"#.into()),
    })
    .await;
    let c = client(&[&m.url]);
    let session = Session::new(&c, Duration::from_secs(2)).await.unwrap();
    assert_eq!(session.lease_id(), 5);
    assert!(!session.is_lost());
    tokio::time::timeout(Duration::from_secs(2), session.lost())
        .await
        .expect("the session was not declared lost");
    assert!(session.is_lost());
    let reqs = m.requests();
    assert_eq!(reqs[0].body, r#"{"ttl_ms":2000}"#);
    assert_eq!(reqs[1].target, "/v1/leases/5/keepalive");
    // Locking on a lost session fails at once.
    let e = Mutex::new(&session, "jobs").lock(None).await.unwrap_err();
    assert!(matches!(e, cairn_client::Error::SessionLost { lease: 5 }));
}

#[tokio::test]
async fn a_session_is_lost_when_no_keep_alive_succeeds_within_the_ttl() {
    let m = mock(|req| match (req.method.as_str(), req.target.as_str()) {
        ("POST", "/v1/leases") => Reply::Json(201, format!(r#"{{"header":{HEADER},"id":5,"ttl_ms":2000}}"#)),
        _ => Reply::Json(503, r#"{"code":"unavailable","message":"no leader is available"}"#.into()),
    })
    .await;
    let c = client(&[&m.url]);
    let start = tokio::time::Instant::now();
    let session = Session::new(&c, Duration::from_secs(2)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(3), session.lost())
        .await
        .expect("the session was not declared lost");
    // Lost once the TTL has passed since the grant was sent, not before.
    assert!(start.elapsed() >= Duration::from_secs(2));
    let keep_alives = m.requests().iter().filter(|r| r.target.ends_with("/keepalive")).count();
    assert!(keep_alives >= 2, "only {keep_alives} keep-alive attempts");
}

#[tokio::test]
async fn a_lock_is_taken_tried_and_released() {
    let m = mock(|req| match (req.method.as_str(), req.target.as_str()) {
        ("POST", "/v1/leases") => Reply::Json(201, format!(r#"{{"header":{HEADER},"id":5,"ttl_ms":30000}}"#)),
        ("POST", "/v1/locks/jobs") if req.body.contains("\"timeout_ms\":0") => {
            Reply::Json(408, r#"{"code":"timeout","message":"not held in time"}"#.into())
        }
        ("POST", "/v1/locks/jobs") => Reply::Json(
            200,
            format!(
                r#"{{"header":{HEADER},"name":"jobs","key":"0000000003","path":"/_cairn/locks/jobs/0000000003","fencing_token":57,"lease":5}}"#
            ),
        ),
        ("DELETE", "/v1/locks/jobs/0000000003") => Reply::Json(
            200,
            format!(r#"{{"header":{HEADER},"path":"/_cairn/locks/jobs/0000000003","revision":8}}"#),
        ),
        ("DELETE", "/v1/leases/5") => Reply::Json(200, format!(r#"{{"header":{HEADER},"id":5,"deleted":0}}"#)),
        _ => Reply::Json(404, r#"{"code":"not_found","message":"no such call"}"#.into()),
    })
    .await;
    let c = client(&[&m.url]);
    let session = Session::new(&c, Duration::from_secs(30)).await.unwrap();
    let mutex = Mutex::new(&session, "jobs");
    assert!(mutex.try_lock().await.unwrap().is_none());
    let guard = mutex.lock(None).await.unwrap();
    assert_eq!((guard.key(), guard.fencing_token(), guard.lease()), ("0000000003", 57, 5));
    assert_eq!(guard.path(), "/_cairn/locks/jobs/0000000003");
    guard.unlock().await.unwrap();
    let reqs = m.requests();
    let lock_body: serde_json::Value = serde_json::from_str(&reqs[2].body).unwrap();
    assert_eq!(lock_body["lease"], 5);
    assert!(lock_body.get("timeout_ms").is_none());
    assert_eq!(reqs[3].method, "DELETE");
    session.close().await.unwrap();
}

#[tokio::test]
async fn an_acquire_with_unknown_outcome_is_retried_by_the_caller() {
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = calls.clone();
    let m = mock(move |req| match (req.method.as_str(), req.target.as_str()) {
        ("POST", "/v1/leases") => Reply::Json(201, format!(r#"{{"header":{HEADER},"id":5,"ttl_ms":30000}}"#)),
        ("POST", "/v1/locks/jobs") if counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 => {
            Reply::HangUp
        }
        ("POST", "/v1/locks/jobs") => Reply::Json(
            200,
            format!(
                r#"{{"header":{HEADER},"name":"jobs","key":"lock-0000000004","path":"/_cairn/locks/jobs/lock-0000000004","fencing_token":4,"lease":5,"value":"worker-1"}}"#
            ),
        ),
        _ => Reply::Json(404, r#"{"code":"not_found","message":"no such call"}"#.into()),
    })
    .await;
    let c = client(&[&m.url]);
    let session = Session::new(&c, Duration::from_secs(30)).await.unwrap();
    let mutex = Mutex::new(&session, "jobs").with_value("worker-1");
    let e = mutex.lock(Some(Duration::from_secs(1))).await.unwrap_err();
    assert!(e.is_outcome_unknown(), "{e}");
    // The server hands the same session its own entry back.
    let guard = mutex.lock(Some(Duration::from_secs(1))).await.unwrap();
    assert_eq!((guard.key(), guard.fencing_token()), ("lock-0000000004", 4));
    let bodies: Vec<serde_json::Value> = m
        .requests()
        .iter()
        .filter(|r| r.target == "/v1/locks/jobs")
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[1], serde_json::json!({"lease": 5, "value": "worker-1", "timeout_ms": 1000}));
}
