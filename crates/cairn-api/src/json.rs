//! The JSON side of the contract: how the typed model is shown to and read from users.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{json, Value};

use crate::{
    validate_path, ApiError, Child, Compare, CompareOp, CompareTarget, Expect, Header, Node, Op, OpResult,
    Stat, Txn, TxnResult, DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT,
};

/// How values are written into JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// UTF-8 text; a value that is not valid UTF-8 is sent as base64 and marked so.
    #[default]
    Utf8,
    Base64,
}

impl Encoding {
    pub fn parse(s: Option<&str>) -> Result<Self, ApiError> {
        match s {
            None | Some("") | Some("utf8") | Some("utf-8") => Ok(Encoding::Utf8),
            Some("base64") => Ok(Encoding::Base64),
            Some(other) => {
                Err(ApiError::invalid_request(format!("unknown encoding \"{other}\": use utf8 or base64")))
            }
        }
    }

    /// Reads a value given as a string in this encoding.
    pub fn decode(self, s: &str) -> Result<Vec<u8>, ApiError> {
        match self {
            Encoding::Utf8 => Ok(s.as_bytes().to_vec()),
            Encoding::Base64 => BASE64
                .decode(s.trim())
                .map_err(|e| ApiError::invalid_request(format!("value is not valid base64: {e}"))),
        }
    }
}

/// `{path, value, stat}`, plus `"encoding": "base64"` when the value is shown as base64.
pub fn node(node: &Node, encoding: Encoding) -> Value {
    serde_json::to_value(NodeJson { node, encoding }).unwrap_or(Value::Null)
}

/// A node written straight to JSON, with no `Value` tree in between: the answers to the
/// busiest calls (get, set, create) are built from these, and building a tree per answer
/// cost an allocation per key. Keys come in the sorted order a `Value` tree gives them, so
/// both ways print the same text.
pub struct NodeJson<'a> {
    pub node: &'a Node,
    pub encoding: Encoding,
}

impl Serialize for NodeJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let value = &self.node.value;
        let text = match self.encoding {
            Encoding::Utf8 => std::str::from_utf8(value).ok(),
            Encoding::Base64 => None,
        };
        let mut m = s.serialize_map(None)?;
        if text.is_none() {
            m.serialize_entry("encoding", "base64")?;
        }
        m.serialize_entry("path", &self.node.path)?;
        m.serialize_entry("stat", &StatJson(&self.node.stat))?;
        match text {
            Some(t) => m.serialize_entry("value", t)?,
            None => m.serialize_entry("value", &BASE64.encode(value))?,
        }
        m.end()
    }
}

/// A stat with its keys sorted, as in a `Value` tree.
pub struct StatJson<'a>(pub &'a Stat);

impl Serialize for StatJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let st = self.0;
        let mut m = s.serialize_map(Some(9))?;
        m.serialize_entry("create_revision", &st.create_revision)?;
        m.serialize_entry("ctime", &st.ctime)?;
        m.serialize_entry("cversion", &st.cversion)?;
        m.serialize_entry("data_length", &st.data_length)?;
        m.serialize_entry("lease", &st.lease)?;
        m.serialize_entry("mod_revision", &st.mod_revision)?;
        m.serialize_entry("mtime", &st.mtime)?;
        m.serialize_entry("num_children", &st.num_children)?;
        m.serialize_entry("version", &st.version)?;
        m.end()
    }
}

/// The response header with its keys sorted, as in a `Value` tree.
pub struct HeaderJson(pub Header);

impl Serialize for HeaderJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let h = &self.0;
        let mut m = s.serialize_map(Some(4))?;
        m.serialize_entry("leader", &h.leader)?;
        m.serialize_entry("member", &h.member)?;
        m.serialize_entry("raft_term", &h.raft_term)?;
        m.serialize_entry("revision", &h.revision)?;
        m.end()
    }
}

pub fn child(child: &Child) -> Value {
    json!({ "name": child.name, "stat": child.stat })
}

pub fn op_result(result: &OpResult, encoding: Encoding) -> Value {
    match result {
        OpResult::Created { node: n } => json!({ "op": "create", "node": node(n, encoding) }),
        OpResult::Put { node: n, prev } => json!({
            "op": "set",
            "node": node(n, encoding),
            "prev": prev.as_ref().map(|p| node(p, encoding)),
        }),
        OpResult::Deleted { node: n, deleted } => {
            json!({ "op": "delete", "node": node(n, encoding), "deleted": deleted })
        }
        OpResult::Got { node: n } => {
            json!({ "op": "get", "node": n.as_ref().map(|n| node(n, encoding)) })
        }
        OpResult::Listed { nodes, more } => json!({
            "op": "list",
            "nodes": nodes.iter().map(|n| node(n, encoding)).collect::<Vec<_>>(),
            "more": more,
        }),
    }
}

pub fn txn_result(result: &TxnResult, encoding: Encoding) -> Value {
    json!({
        "succeeded": result.succeeded,
        "results": result.results.iter().map(|r| op_result(r, encoding)).collect::<Vec<_>>(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TxnJson {
    #[serde(default)]
    compare: Vec<CompareJson>,
    #[serde(default)]
    success: Vec<OpJson>,
    #[serde(default)]
    failure: Vec<OpJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompareJson {
    path: String,
    target: String,
    op: String,
    value: Value,
    #[serde(default)]
    encoding: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpJson {
    op: String,
    path: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    encoding: Option<String>,
    #[serde(default)]
    sequential: bool,
    #[serde(default)]
    lease: Option<u64>,
    #[serde(default)]
    parents: bool,
    #[serde(default)]
    recursive: bool,
    #[serde(default)]
    version: Option<u64>,
    #[serde(default)]
    mod_revision: Option<u64>,
    #[serde(default)]
    limit: Option<usize>,
}

/// Parses and checks a transaction body; `max_ops` bounds compares plus operations.
pub fn parse_txn(body: &[u8], max_ops: usize) -> Result<Txn, ApiError> {
    let parsed: TxnJson = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_request(format!("transaction body is not valid: {e}")))?;
    let count = parsed.compare.len() + parsed.success.len() + parsed.failure.len();
    if count > max_ops {
        return Err(ApiError::too_large("transaction operation count", max_ops as u64));
    }
    let compare = parsed
        .compare
        .into_iter()
        .enumerate()
        .map(|(i, c)| parse_compare(c).map_err(|e| at("compare", i, e)))
        .collect::<Result<_, _>>()?;
    let ops = |list: Vec<OpJson>, branch: &str| -> Result<Vec<Op>, ApiError> {
        list.into_iter().enumerate().map(|(i, o)| parse_op(o).map_err(|e| at(branch, i, e))).collect()
    };
    Ok(Txn { compare, success: ops(parsed.success, "success")?, failure: ops(parsed.failure, "failure")? })
}

fn at(branch: &str, index: usize, mut e: ApiError) -> ApiError {
    e.message = format!("{branch}[{index}]: {}", e.message);
    e
}

fn parse_compare(c: CompareJson) -> Result<Compare, ApiError> {
    validate_path(&c.path)?;
    let op = match c.op.as_str() {
        "==" | "=" => CompareOp::Eq,
        "!=" => CompareOp::Ne,
        "<" => CompareOp::Lt,
        ">" => CompareOp::Gt,
        other => {
            return Err(ApiError::invalid_request(format!(
                "unknown operator \"{other}\": use ==, !=, < or >"
            )))
        }
    };
    let number = || {
        c.value.as_u64().ok_or_else(|| {
            ApiError::invalid_request(format!("target {} needs a non-negative integer value", c.target))
        })
    };
    let target = match c.target.as_str() {
        "value" => {
            let s = c
                .value
                .as_str()
                .ok_or_else(|| ApiError::invalid_request("target value needs a string value"))?;
            CompareTarget::Value(Encoding::parse(c.encoding.as_deref())?.decode(s)?)
        }
        "version" => CompareTarget::Version(number()?),
        "mod_revision" => CompareTarget::ModRevision(number()?),
        "create_revision" => CompareTarget::CreateRevision(number()?),
        "exists" => CompareTarget::Exists(
            c.value
                .as_bool()
                .ok_or_else(|| ApiError::invalid_request("target exists needs a boolean value"))?,
        ),
        other => {
            return Err(ApiError::invalid_request(format!(
                "unknown compare target \"{other}\": use value, version, mod_revision, \
                 create_revision or exists"
            )))
        }
    };
    if matches!(target, CompareTarget::Exists(_)) && !matches!(op, CompareOp::Eq | CompareOp::Ne) {
        return Err(ApiError::invalid_request("target exists takes only == or !="));
    }
    Ok(Compare { path: c.path, target, op })
}

/// A CAS condition from optional `version` / `mod_revision` fields (at most one).
pub fn expect_from(version: Option<u64>, mod_revision: Option<u64>) -> Result<Option<Expect>, ApiError> {
    match (version, mod_revision) {
        (Some(_), Some(_)) => Err(ApiError::invalid_request("give either version or mod_revision, not both")),
        (Some(v), None) => Ok(Some(Expect::Version(v))),
        (None, Some(r)) => Ok(Some(Expect::ModRevision(r))),
        (None, None) => Ok(None),
    }
}

/// A listing limit: default when absent, refused when zero or above the maximum.
pub fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE_LIMIT),
        Some(0) => Err(ApiError::invalid_request("limit must be at least 1")),
        Some(n) if n > MAX_PAGE_LIMIT => Err(ApiError::too_large("limit", MAX_PAGE_LIMIT as u64)),
        Some(n) => Ok(n),
    }
}

fn parse_op(o: OpJson) -> Result<Op, ApiError> {
    validate_path(&o.path)?;
    let encoding = Encoding::parse(o.encoding.as_deref())?;
    let value = || -> Result<Vec<u8>, ApiError> { encoding.decode(o.value.as_deref().unwrap_or_default()) };
    Ok(match o.op.as_str() {
        "create" => Op::Create {
            value: value()?,
            sequential: o.sequential,
            lease: o.lease,
            parents: o.parents,
            path: o.path,
        },
        "set" | "put" => Op::Put {
            value: value()?,
            lease: o.lease,
            parents: o.parents,
            expect: expect_from(o.version, o.mod_revision)?,
            path: o.path,
        },
        "delete" => Op::Delete {
            recursive: o.recursive,
            expect: expect_from(o.version, o.mod_revision)?,
            path: o.path,
        },
        "get" => Op::Get { path: o.path },
        "list" => Op::List { recursive: o.recursive, limit: page_limit(o.limit)?, path: o.path },
        other => {
            return Err(ApiError::invalid_request(format!(
                "unknown op \"{other}\": use create, set, delete, get or list"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorCode, Stat};

    #[test]
    fn parses_the_design_example() {
        let body = br#"{"compare": [{"path": "/a", "target": "value", "op": "==", "value": "x"},
             {"path": "/b", "target": "version", "op": ">", "value": 3},
             {"path": "/c", "target": "exists", "op": "==", "value": false}],
 "success": [{"op": "set", "path": "/a", "value": "y"},
             {"op": "create", "path": "/q/item-", "value": "z", "sequential": true, "lease": null},
             {"op": "delete", "path": "/b", "recursive": false},
             {"op": "get", "path": "/e"}],
 "failure": [{"op": "get", "path": "/a"}]}"#;
        let txn = parse_txn(body, 1024).unwrap();
        assert_eq!(txn.compare.len(), 3);
        assert_eq!(txn.compare[1].target, CompareTarget::Version(3));
        assert_eq!(txn.success.len(), 4);
        assert!(matches!(&txn.success[1], Op::Create { sequential: true, .. }));
        assert_eq!(txn.failure, vec![Op::Get { path: "/a".into() }]);
    }

    #[test]
    fn refuses_bad_transactions_with_a_reason() {
        let bad: [(&[u8], &str); 6] = [
            (b"{", "not valid"),
            (br#"{"success":[{"op":"frob","path":"/a"}]}"#, "unknown op"),
            (br#"{"success":[{"op":"get","path":"a"}]}"#, "start with '/'"),
            (br#"{"compare":[{"path":"/a","target":"version","op":"==","value":"x"}]}"#, "integer"),
            (br#"{"compare":[{"path":"/a","target":"exists","op":"<","value":true}]}"#, "only =="),
            (br#"{"success":[{"op":"set","path":"/a","version":1,"mod_revision":2}]}"#, "either"),
        ];
        for (body, want) in bad {
            let e = parse_txn(body, 1024).unwrap_err();
            assert!(e.message.contains(want), "{}", e.message);
        }
        let e =
            parse_txn(br#"{"success":[{"op":"get","path":"/a"},{"op":"get","path":"/b"}]}"#, 1).unwrap_err();
        assert_eq!((e.code, e.limit), (ErrorCode::TooLarge, Some(1)));
    }

    #[test]
    fn values_that_are_not_utf8_are_shown_as_base64() {
        let n = Node { path: "/a".into(), value: vec![0xff, 0x00], stat: Stat::default() };
        let v = node(&n, Encoding::Utf8);
        assert_eq!(v["encoding"], "base64");
        assert_eq!(Encoding::Base64.decode(v["value"].as_str().unwrap()).unwrap(), vec![0xff, 0]);
        let n = Node { value: b"hi".to_vec(), ..n };
        assert_eq!(node(&n, Encoding::Utf8)["value"], "hi");
        assert!(node(&n, Encoding::Utf8).get("encoding").is_none());
    }

    #[test]
    fn compare_semantics() {
        let stat = Stat { version: 3, ..Stat::default() };
        let c = |target, op| Compare { path: "/a".into(), target, op };
        assert!(c(CompareTarget::Version(3), CompareOp::Eq).holds(Some((&stat, b"x"))));
        assert!(c(CompareTarget::Version(2), CompareOp::Gt).holds(Some((&stat, b"x"))));
        assert!(!c(CompareTarget::Version(3), CompareOp::Eq).holds(None));
        assert!(c(CompareTarget::Exists(false), CompareOp::Eq).holds(None));
        assert!(c(CompareTarget::Value(b"x".to_vec()), CompareOp::Eq).holds(Some((&stat, b"x"))));
    }
}
