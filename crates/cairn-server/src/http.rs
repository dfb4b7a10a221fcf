//! The client API (DESIGN §8): JSON over HTTP, values raw in request bodies.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cairn_api::json::{self as wire, Encoding};
use cairn_api::{validate_path, ApiError, ErrorCode, Header, Op, OpResult};
use cairn_store::{Command, Output};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::forward::AdminOp;
use crate::node::App;
use crate::watch::{Scope, StreamOptions};

type AppState = State<Arc<App>>;

/// An error answer: the contract's status and `{code, message, ...}` body.
pub struct Fail(pub ApiError);

impl From<ApiError> for Fail {
    fn from(e: ApiError) -> Self {
        Fail(e)
    }
}

impl From<cairn_store::StoreError> for Fail {
    fn from(e: cairn_store::StoreError) -> Self {
        Fail(e.into())
    }
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut body = json!({ "code": e.code.as_str(), "message": e.message });
        if let Some(limit) = e.limit {
            body["limit"] = limit.into();
        }
        if let Some(c) = e.compact_revision {
            body["compact_revision"] = c.into();
        }
        (status, Json(body)).into_response()
    }
}

pub(crate) type Answer = Result<Response, Fail>;

pub(crate) fn reply(status: StatusCode, header: Header, mut body: Value) -> Response {
    body["header"] = json!(header);
    (status, Json(body)).into_response()
}

/// The answer to a get, set or create, written without a `Value` tree (see
/// [`wire::NodeJson`]); fields in sorted order, as [`reply`] prints them.
#[derive(serde::Serialize)]
struct NodeAnswer<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<bool>,
    header: wire::HeaderJson,
    node: wire::NodeJson<'a>,
    /// Present (possibly null) only in a set's answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    prev: Option<Option<wire::NodeJson<'a>>>,
}

impl NodeAnswer<'_> {
    fn into_response(self, status: StatusCode) -> Response {
        (status, Json(self)).into_response()
    }
}

/// Query parameters, with flags that may be bare (`?children`) and unknown names refused.
pub(crate) struct Params(HashMap<String, String>);

impl Params {
    pub(crate) fn parse(uri: &Uri, allowed: &[&str]) -> Result<Params, ApiError> {
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map_err(|e| ApiError::invalid_request(format!("query string is not valid: {e}")))?;
        let mut map = HashMap::new();
        for (k, v) in pairs {
            if !allowed.contains(&k.as_str()) {
                let takes = match allowed {
                    [] => "this call takes no parameters".to_owned(),
                    _ => format!("this call takes: {}", allowed.join(", ")),
                };
                return Err(ApiError::invalid_request(format!("unknown parameter \"{k}\" ({takes})")));
            }
            map.insert(k, v);
        }
        Ok(Params(map))
    }

    pub(crate) fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.0.get(name).map(String::as_str) {
            None | Some("false") | Some("0") => Ok(false),
            Some("") | Some("true") | Some("1") => Ok(true),
            Some(v) => Err(ApiError::invalid_request(format!("{name}={v}: expected true or false"))),
        }
    }

    fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, ApiError> {
        self.0
            .get(name)
            .map(|v| {
                v.parse().map_err(|_| {
                    ApiError::invalid_request(format!("{name}={v}: expected a non-negative integer"))
                })
            })
            .transpose()
    }

    fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn encoding(&self) -> Result<Encoding, ApiError> {
        Encoding::parse(self.text("encoding"))
    }
}

/// The path a route captured. Root routes capture nothing; a capture that is not UTF-8
/// once percent-decoded is a bad path, answered in JSON like every other.
pub(crate) type Captured = Result<Path<String>, PathRejection>;

fn node_path(captured: Captured) -> Result<String, ApiError> {
    let path = match captured {
        Ok(Path(p)) => format!("/{p}"),
        // Root routes (`/v1/nodes`, `/v1/nodes/`) capture no parameter.
        Err(PathRejection::FailedToDeserializePathParams(e))
            if matches!(e.kind(), ErrorKind::WrongNumberOfParameters { got: 0, .. }) =>
        {
            "/".to_owned()
        }
        Err(e) => {
            return Err(ApiError::new(ErrorCode::InvalidPath, format!("invalid path: {}", e.body_text())))
        }
    };
    validate_path(&path)?;
    Ok(path)
}

/// Reads a body up to the request limit, answering 413 with the limit past it.
pub(crate) async fn read_body(app: &App, body: Body) -> Result<Bytes, ApiError> {
    let limit = app.limits.max_request_bytes;
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::too_large("request body size in bytes", limit as u64))
}

fn check_value(app: &App, value: &[u8]) -> Result<(), ApiError> {
    if value.len() > app.limits.max_value_bytes {
        return Err(ApiError::too_large("value size in bytes", app.limits.max_value_bytes as u64));
    }
    Ok(())
}

async fn read_value(app: &App, body: Body, encoding: Encoding) -> Result<Vec<u8>, ApiError> {
    let bytes = read_body(app, body).await?;
    let value = match encoding {
        Encoding::Utf8 => bytes.to_vec(),
        Encoding::Base64 => encoding.decode(
            std::str::from_utf8(&bytes)
                .map_err(|_| ApiError::invalid_request("a base64 body must be ASCII text"))?,
        )?,
    };
    check_value(app, &value)?;
    Ok(value)
}

async fn write_op(app: &App, op: Op) -> Result<(u64, OpResult), ApiError> {
    let applied = app.write(Command::Op(op)).await?;
    match applied.output {
        Output::Op(result) => Ok((applied.revision, result)),
        other => Err(ApiError::internal(format!("unexpected answer {other:?}"))),
    }
}

const GET_PARAMS: &[&str] = &[
    "raw",
    "children",
    "recursive",
    "revision",
    "limit",
    "after",
    "consistency",
    "encoding",
    "wait_revision",
    "timeout",
];

/// `30s`, `500ms`, `2m` or plain seconds; at most five minutes.
fn parse_timeout(raw: Option<&str>) -> Result<Duration, ApiError> {
    let Some(raw) = raw else { return Ok(Duration::from_secs(30)) };
    let bad = || ApiError::invalid_request(format!("timeout={raw}: use a duration like 30s, 500ms or 2m"));
    let (num, unit) = raw.find(|c: char| !c.is_ascii_digit()).map(|i| raw.split_at(i)).unwrap_or((raw, "s"));
    let n: u64 = num.parse().map_err(|_| bad())?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        _ => return Err(bad()),
    };
    Ok(d.min(Duration::from_secs(300)))
}

fn scope(path: &str, children: bool, recursive: bool) -> Result<Scope, ApiError> {
    match (children, recursive) {
        (true, true) => Err(ApiError::invalid_request("choose children or recursive, not both")),
        (true, false) => Ok(Scope::Children(path.to_owned())),
        (false, true) => Ok(Scope::Subtree(path.to_owned())),
        (false, false) => Ok(Scope::Node(path.to_owned())),
    }
}

async fn get_node(State(app): AppState, uri: Uri, path: Captured) -> Answer {
    let path = node_path(path)?;
    let p = Params::parse(&uri, GET_PARAMS)?;
    match p.text("consistency") {
        None | Some("linearizable") => app.linearize().await?,
        Some("serializable") => {}
        Some(other) => {
            return Err(ApiError::invalid_request(format!(
                "consistency={other}: use linearizable or serializable"
            ))
            .into())
        }
    }
    let encoding = p.encoding()?;
    let (children, recursive, raw) = (p.flag("children")?, p.flag("recursive")?, p.flag("raw")?);
    if [children, recursive, raw].iter().filter(|f| **f).count() > 1 {
        return Err(ApiError::invalid_request("choose one of raw, children and recursive").into());
    }
    if let Some(after) = p.number::<u64>("wait_revision")? {
        let timeout = parse_timeout(p.text("timeout"))?;
        crate::watch::wait_for_change(&app.hub, vec![scope(&path, children, recursive)?], after, timeout)
            .await?;
    } else if p.text("timeout").is_some() {
        return Err(ApiError::invalid_request("timeout goes with wait_revision").into());
    }
    let at = p.number::<u64>("revision")?;
    let limit = wire::page_limit(p.number("limit")?)?;
    let after = p.text("after");
    if at.is_none() && !children && !recursive {
        if let Some((node, revision)) = app.store.newest_in_memory(&path) {
            return Ok(node_answer(&app, node, revision, raw, encoding));
        }
    }
    let view = app.store.read()?;
    if children {
        let page = view.children(&path, at, after, limit)?;
        let entries: Vec<Value> = page.entries.iter().map(wire::child).collect();
        return Ok(reply(
            StatusCode::OK,
            app.header(view.revision()),
            json!({ "path": path, "revision": page.revision, "children": entries, "next": page.next }),
        ));
    }
    if recursive {
        let page = view.subtree(&path, at, after, limit)?;
        let entries: Vec<Value> = page.entries.iter().map(|n| wire::node(n, encoding)).collect();
        return Ok(reply(
            StatusCode::OK,
            app.header(view.revision()),
            json!({ "path": path, "revision": page.revision, "nodes": entries, "next": page.next }),
        ));
    }
    let node = view.get(&path, at)?;
    Ok(node_answer(&app, node, view.revision(), raw, encoding))
}

/// A get's answer: the node as JSON, or its bare value with `raw`; `revision` is the one
/// the read saw.
fn node_answer(app: &App, node: cairn_api::Node, revision: u64, raw: bool, encoding: Encoding) -> Response {
    if raw {
        let mod_revision = node.stat.mod_revision;
        let mut resp = (StatusCode::OK, node.value).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        resp.headers_mut().insert("x-cairn-revision", HeaderValue::from(revision));
        resp.headers_mut().insert("x-cairn-mod-revision", HeaderValue::from(mod_revision));
        return resp;
    }
    let header = wire::HeaderJson(app.header(revision));
    NodeAnswer { created: None, header, node: wire::NodeJson { node: &node, encoding }, prev: None }
        .into_response(StatusCode::OK)
}

async fn put_node(State(app): AppState, uri: Uri, path: Captured, body: Body) -> Answer {
    let path = node_path(path)?;
    let p = Params::parse(&uri, &["version", "mod_revision", "lease", "parents", "encoding"])?;
    let encoding = p.encoding()?;
    let op = Op::Put {
        expect: wire::expect_from(p.number("version")?, p.number("mod_revision")?)?,
        lease: p.number("lease")?,
        parents: p.flag("parents")?,
        value: read_value(&app, body, encoding).await?,
        path,
    };
    match write_op(&app, op).await? {
        (rev, OpResult::Put { node, prev }) => {
            let status = if prev.is_none() { StatusCode::CREATED } else { StatusCode::OK };
            Ok(NodeAnswer {
                created: Some(prev.is_none()),
                header: wire::HeaderJson(app.header(rev)),
                node: wire::NodeJson { node: &node, encoding },
                prev: Some(prev.as_ref().map(|node| wire::NodeJson { node, encoding })),
            }
            .into_response(status))
        }
        (_, other) => Err(ApiError::internal(format!("unexpected answer {other:?}")).into()),
    }
}

async fn create_node(State(app): AppState, uri: Uri, path: Captured, body: Body) -> Answer {
    let path = node_path(path)?;
    let p = Params::parse(&uri, &["sequential", "lease", "parents", "encoding"])?;
    let encoding = p.encoding()?;
    let op = Op::Create {
        sequential: p.flag("sequential")?,
        lease: p.number("lease")?,
        parents: p.flag("parents")?,
        value: read_value(&app, body, encoding).await?,
        path,
    };
    match write_op(&app, op).await? {
        (rev, OpResult::Created { node }) => {
            let mut resp = NodeAnswer {
                created: None,
                header: wire::HeaderJson(app.header(rev)),
                node: wire::NodeJson { node: &node, encoding },
                prev: None,
            }
            .into_response(StatusCode::CREATED);
            if let Ok(location) = HeaderValue::from_str(&format!("/v1/nodes{}", node.path)) {
                resp.headers_mut().insert(header::LOCATION, location);
            }
            Ok(resp)
        }
        (_, other) => Err(ApiError::internal(format!("unexpected answer {other:?}")).into()),
    }
}

async fn delete_node(State(app): AppState, uri: Uri, path: Captured) -> Answer {
    let path = node_path(path)?;
    let p = Params::parse(&uri, &["version", "mod_revision", "recursive", "encoding"])?;
    let encoding = p.encoding()?;
    let op = Op::Delete {
        expect: wire::expect_from(p.number("version")?, p.number("mod_revision")?)?,
        recursive: p.flag("recursive")?,
        path,
    };
    match write_op(&app, op).await? {
        (rev, OpResult::Deleted { node, deleted }) => Ok(reply(
            StatusCode::OK,
            app.header(rev),
            json!({ "node": wire::node(&node, encoding), "deleted": deleted }),
        )),
        (_, other) => Err(ApiError::internal(format!("unexpected answer {other:?}")).into()),
    }
}

async fn txn(State(app): AppState, uri: Uri, body: Body) -> Answer {
    let p = Params::parse(&uri, &["encoding"])?;
    let encoding = p.encoding()?;
    let body = read_body(&app, body).await?;
    let txn = wire::parse_txn(&body, app.limits.max_txn_ops)?;
    for op in txn.success.iter().chain(&txn.failure) {
        if let Op::Create { value, .. } | Op::Put { value, .. } = op {
            check_value(&app, value)?;
        }
    }
    let applied = app.write(Command::Txn(txn)).await?;
    match applied.output {
        Output::Txn(result) => {
            Ok(reply(StatusCode::OK, app.header(applied.revision), wire::txn_result(&result, encoding)))
        }
        other => Err(ApiError::internal(format!("unexpected answer {other:?}")).into()),
    }
}

/// The revision a reconnecting SSE client last saw.
pub(crate) fn last_event_id(headers: &axum::http::HeaderMap) -> Result<Option<u64>, ApiError> {
    headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::invalid_request("Last-Event-ID must be a revision number"))
        })
        .transpose()
}

async fn watch(State(app): AppState, uri: Uri, headers: axum::http::HeaderMap, path: Captured) -> Answer {
    let path = node_path(path)?;
    let p = Params::parse(&uri, &["children", "recursive", "from_revision", "prev", "snapshot", "encoding"])?;
    let last_event_id = last_event_id(&headers)?;
    // Last-Event-ID resumes after that revision; from_revision=N starts at N.
    let after = last_event_id.or(p.number::<u64>("from_revision")?.map(|n| n.saturating_sub(1)));
    let opts = StreamOptions {
        scope: scope(&path, p.flag("children")?, p.flag("recursive")?)?,
        after,
        prev: p.flag("prev")?,
        snapshot: p.flag("snapshot")?,
        encoding: p.encoding()?,
    };
    Ok(crate::watch::open(&app.hub, opts)?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantLease {
    ttl_ms: u64,
}

/// A numeric id captured from the URL; `what` names it in the error ("lease", "member").
fn id_param(raw: Captured, what: &str) -> Result<u64, ApiError> {
    let Ok(Path(raw)) = raw else {
        return Err(ApiError::invalid_request(format!("the {what} id is not valid")));
    };
    raw.parse().map_err(|_| ApiError::invalid_request(format!("\"{raw}\" is not a {what} id")))
}

async fn grant_lease(State(app): AppState, body: Body) -> Answer {
    let body = read_body(&app, body).await?;
    let req: GrantLease = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid_request(format!("expected {{\"ttl_ms\": N}}: {e}")))?;
    if !(cairn_api::MIN_LEASE_TTL_MS..=cairn_api::MAX_LEASE_TTL_MS).contains(&req.ttl_ms) {
        return Err(ApiError::invalid_request(format!(
            "ttl_ms must be between {} and {}",
            cairn_api::MIN_LEASE_TTL_MS,
            cairn_api::MAX_LEASE_TTL_MS
        ))
        .into());
    }
    let applied = app.write(Command::LeaseGrant { ttl_ms: req.ttl_ms }).await?;
    match applied.output {
        Output::LeaseGranted { id, ttl_ms } => Ok(reply(
            StatusCode::CREATED,
            app.header(applied.revision),
            json!({ "id": id, "ttl_ms": ttl_ms }),
        )),
        other => Err(ApiError::internal(format!("unexpected answer {other:?}")).into()),
    }
}

async fn list_leases(State(app): AppState) -> Answer {
    app.linearize().await?;
    let view = app.store.read()?;
    let leases: Vec<Value> =
        view.leases()?.iter().map(|l| json!({ "id": l.id, "ttl_ms": l.ttl_ms })).collect();
    Ok(reply(StatusCode::OK, app.header(view.revision()), json!({ "leases": leases })))
}

async fn get_lease(State(app): AppState, id: Captured) -> Answer {
    let id = id_param(id, "lease")?;
    app.linearize().await?;
    let (lease, nodes, revision) = {
        let view = app.store.read()?;
        let (lease, nodes) = view.lease(id)?.ok_or_else(|| ApiError::lease_not_found(id))?;
        (lease, nodes, view.revision())
    };
    let remaining = app.lease(crate::lease::LeaseOp::Remaining(id)).await?;
    let body = json!({ "id": id, "ttl_ms": lease.ttl_ms, "remaining_ms": remaining, "nodes": nodes });
    Ok(reply(StatusCode::OK, app.header(revision), body))
}

async fn keep_alive(State(app): AppState, id: Captured) -> Answer {
    let id = id_param(id, "lease")?;
    let ttl_ms = app.lease(crate::lease::LeaseOp::KeepAlive(id)).await?;
    Ok(reply(StatusCode::OK, app.header(app.store.revision()), json!({ "id": id, "ttl_ms": ttl_ms })))
}

async fn revoke_lease(State(app): AppState, id: Captured) -> Answer {
    let id = id_param(id, "lease")?;
    let applied = app.write(Command::LeaseRevoke { id }).await?;
    match applied.output {
        Output::LeaseRevoked { id, deleted } => {
            Ok(reply(StatusCode::OK, app.header(applied.revision), json!({ "id": id, "deleted": deleted })))
        }
        other => Err(ApiError::internal(format!("unexpected answer {other:?}")).into()),
    }
}

async fn health(State(app): AppState) -> Response {
    reply(StatusCode::OK, app.header(app.store.revision()), json!({ "status": "ok" }))
}

/// Ready = a leader exists and this member has applied everything it has committed.
async fn ready(State(app): AppState) -> Answer {
    match tokio::time::timeout(Duration::from_secs(2), app.linearize()).await {
        Ok(Ok(())) => Ok(reply(StatusCode::OK, app.header(app.store.revision()), json!({ "ready": true }))),
        Ok(Err(e)) => Err(ApiError::unavailable(format!("not ready: {}", e.message)).into()),
        Err(_) => Err(ApiError::unavailable("not ready: not caught up with the leader").into()),
    }
}

async fn metrics(State(app): AppState) -> Response {
    app.metrics.revision.set(app.store.revision() as i64);
    let applied = app.raft.metrics().borrow().last_applied.map_or(0, |l| l.index);
    app.metrics.applied_index.set(applied as i64);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], app.metrics.render()).into_response()
}

/// Every member's role and progress. Each member reports its own log and applied index
/// (asked over the peer port, 500 ms at most); the leader's log end gives each one's lag.
async fn cluster(State(app): AppState) -> Answer {
    let m = app.raft.metrics().borrow().clone();
    let membership = m.membership_config.membership().clone();
    let nodes: Vec<(u64, String)> = membership.nodes().map(|(id, n)| (*id, n.addr.clone())).collect();
    let statuses = futures::future::join_all(nodes.iter().map(|(id, addr)| {
        let app = app.clone();
        let addr = addr.clone();
        let id = *id;
        async move {
            if id == app.id {
                Some(app.own_status())
            } else {
                app.forwarder.status(id, &addr).await.ok()
            }
        }
    }))
    .await;
    let leader_log = m
        .current_leader
        .and_then(|l| nodes.iter().position(|(id, _)| *id == l))
        .and_then(|i| statuses[i].as_ref())
        .map(|s| s.last_log_index);
    let members: Vec<Value> = nodes
        .iter()
        .zip(&statuses)
        .map(|((id, addr), status)| {
            let voter = membership.voter_ids().any(|v| v == *id);
            let role = if m.current_leader == Some(*id) {
                "leader"
            } else if voter {
                "follower"
            } else {
                "learner"
            };
            let mut member = json!({ "id": id, "peer_addr": addr, "role": role, "voter": voter, "reachable": status.is_some() });
            if let Some(s) = status {
                member["state"] = json!(s.state);
                member["term"] = json!(s.term);
                member["last_log_index"] = json!(s.last_log_index);
                member["applied_index"] = json!(s.applied_index);
                member["revision"] = json!(s.revision);
                member["snapshot_index"] = json!(s.snapshot_index);
                if let Some(leader_log) = leader_log {
                    member["lag"] = json!(leader_log.saturating_sub(s.applied_index));
                }
            }
            // Only the leader knows how far it has replicated to each member.
            if let Some(matched) = m.replication.as_ref().and_then(|r| r.get(id)) {
                member["matched_index"] = json!(matched.as_ref().map(|l| l.index).unwrap_or(0));
            }
            member
        })
        .collect();
    let body = json!({
        "cluster": {
            "member": app.id,
            "leader": m.current_leader,
            "term": m.current_term,
            "state": format!("{:?}", m.state).to_lowercase(),
            "members": members,
            "revision": app.store.revision(),
            "compact_revision": app.store.compact_revision(),
            "snapshot_index": m.snapshot.map(|l| l.index),
            "purged_index": m.purged.map(|l| l.index),
        },
        "limits": app.limits,
    });
    Ok(reply(StatusCode::OK, app.header(app.store.revision()), body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddMember {
    id: u64,
    peer_addr: String,
}

async fn add_member(State(app): AppState, body: Body) -> Answer {
    let body = read_body(&app, body).await?;
    let req: AddMember = serde_json::from_slice(&body).map_err(|e| {
        ApiError::invalid_request(format!("expected {{\"id\": N, \"peer_addr\": \"host:port\"}}: {e}"))
    })?;
    if req.id == 0 {
        return Err(ApiError::invalid_request("member ids start at 1").into());
    }
    req.peer_addr.parse::<std::net::SocketAddr>().map_err(|_| {
        ApiError::invalid_request(format!("peer_addr \"{}\" is not host:port", req.peer_addr))
    })?;
    app.admin(AdminOp::AddLearner { id: req.id, addr: req.peer_addr.clone() }).await?;
    let member = json!({ "id": req.id, "peer_addr": req.peer_addr, "role": "learner" });
    Ok(reply(StatusCode::CREATED, app.header(app.store.revision()), json!({ "member": member })))
}

async fn promote_member(State(app): AppState, id: Captured) -> Answer {
    let id = id_param(id, "member")?;
    app.admin(AdminOp::Promote { id }).await?;
    Ok(reply(
        StatusCode::OK,
        app.header(app.store.revision()),
        json!({ "member": { "id": id, "role": "voter" } }),
    ))
}

async fn remove_member(State(app): AppState, id: Captured) -> Answer {
    let id = id_param(id, "member")?;
    app.admin(AdminOp::Remove { id }).await?;
    Ok(reply(StatusCode::OK, app.header(app.store.revision()), json!({ "removed": id })))
}

async fn not_found(method: Method, uri: Uri) -> Fail {
    Fail(ApiError::new(
        ErrorCode::NotFound,
        format!("no such call: {method} {} (see the API reference in README.md)", uri.path()),
    ))
}

async fn wrong_method(method: Method, uri: Uri) -> Response {
    let mut resp =
        Fail(ApiError::invalid_request(format!("{} does not take {method}", uri.path()))).into_response();
    *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    resp
}

/// Counts requests, and gives error answers the `header` every JSON answer carries (errors
/// are built where no member state is at hand, so it is added here). A tower layer of its
/// own rather than `middleware::from_fn`, which clones the inner service and boxes twice per
/// request: in paired runs that cost puts a few percent.
#[derive(Clone)]
struct CountRequests(Arc<App>);

impl<S> tower::Layer<S> for CountRequests {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted { inner, app: self.0.clone() }
    }
}

#[derive(Clone)]
struct Counted<S> {
    inner: S,
    app: Arc<App>,
}

impl<S> tower::Service<Request> for Counted<S>
where
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Response, std::convert::Infallible>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let method = req.method().clone();
        let answer = self.inner.call(req);
        let app = self.app.clone();
        Box::pin(async move {
            let resp = answer.await?;
            app.metrics.count_request(&method, resp.status());
            Ok(with_header(&app, resp).await)
        })
    }
}

async fn with_header(app: &App, resp: Response) -> Response {
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !resp.status().is_client_error() && !resp.status().is_server_error() || !is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return (parts.status, Json(json!({ "code": "internal", "message": "error body too large" })))
            .into_response();
    };
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(mut v) if v.get("header").is_none() && v.is_object() => {
            v["header"] = json!(app.header(app.store.revision()));
            let mut resp = (parts.status, Json(v)).into_response();
            for (name, value) in parts.headers.iter().filter(|(n, _)| *n != header::CONTENT_LENGTH) {
                resp.headers_mut().insert(name.clone(), value.clone());
            }
            resp
        }
        _ => Response::from_parts(parts, Body::from(bytes)),
    }
}

pub fn router(app: Arc<App>) -> Router {
    let nodes = get(get_node).put(put_node).post(create_node).delete(delete_node);
    Router::new()
        .route("/v1/nodes", nodes.clone())
        .route("/v1/nodes/", nodes.clone())
        .route("/v1/nodes/{*path}", nodes)
        .route("/v1/txn", post(txn))
        .route("/v1/watch", get(watch))
        .route("/v1/watch/", get(watch))
        .route("/v1/watch/{*path}", get(watch))
        .route("/v1/leases", post(grant_lease).get(list_leases))
        .route("/v1/leases/{id}", get(get_lease).delete(revoke_lease))
        .route("/v1/leases/{id}/keepalive", post(keep_alive))
        .route("/v1/cluster", get(cluster))
        .route("/v1/cluster/members", post(add_member))
        .route("/v1/cluster/members/{id}/promote", post(promote_member))
        .route("/v1/cluster/members/{id}", axum::routing::delete(remove_member))
        .merge(crate::coord::routes())
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(wrong_method)
        .layer(CountRequests(app.clone()))
        .with_state(app)
}
