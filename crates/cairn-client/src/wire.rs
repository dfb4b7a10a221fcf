//! JSON shapes of answers and of transaction bodies, turned into and out of `cairn-api`'s
//! typed model. Values come as UTF-8 text or base64 (marked `"encoding": "base64"`).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use cairn_api::json::Encoding;
use cairn_api::{Compare, CompareOp, CompareTarget, Expect, Node, Op, OpResult, Stat, Txn};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};

/// A node as answers show it.
#[derive(Debug, Deserialize)]
pub(crate) struct NodeJson {
    path: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    encoding: Option<String>,
    stat: Stat,
}

impl NodeJson {
    pub(crate) fn into_node(self) -> Result<Node> {
        let value = Encoding::parse(self.encoding.as_deref())
            .and_then(|e| e.decode(&self.value))
            .map_err(|e| Error::Protocol(format!("value of {}: {}", self.path, e.message)))?;
        Ok(Node { path: self.path, value, stat: self.stat })
    }
}

pub(crate) fn node_opt(n: Option<NodeJson>) -> Result<Option<Node>> {
    n.map(NodeJson::into_node).transpose()
}

pub(crate) fn nodes(list: Vec<NodeJson>) -> Result<Vec<Node>> {
    list.into_iter().map(NodeJson::into_node).collect()
}

/// Puts a value into a JSON object: as text when it is UTF-8, else as base64 and marked.
fn put_value(obj: &mut Map<String, Value>, value: &[u8]) {
    match std::str::from_utf8(value) {
        Ok(text) => {
            obj.insert("value".into(), Value::String(text.to_owned()));
        }
        Err(_) => {
            obj.insert("value".into(), Value::String(BASE64.encode(value)));
            obj.insert("encoding".into(), Value::String("base64".into()));
        }
    }
}

fn put_expect(obj: &mut Map<String, Value>, expect: &Option<Expect>) {
    match expect {
        Some(Expect::Version(v)) => obj.insert("version".into(), json!(v)),
        Some(Expect::ModRevision(r)) => obj.insert("mod_revision".into(), json!(r)),
        None => None,
    };
}

fn op_json(op: &Op) -> Value {
    let mut o = Map::new();
    match op {
        Op::Create { path, value, sequential, lease, parents } => {
            o.insert("op".into(), json!("create"));
            o.insert("path".into(), json!(path));
            put_value(&mut o, value);
            o.insert("sequential".into(), json!(sequential));
            o.insert("lease".into(), json!(lease));
            o.insert("parents".into(), json!(parents));
        }
        Op::Put { path, value, lease, parents, expect } => {
            o.insert("op".into(), json!("set"));
            o.insert("path".into(), json!(path));
            put_value(&mut o, value);
            o.insert("lease".into(), json!(lease));
            o.insert("parents".into(), json!(parents));
            put_expect(&mut o, expect);
        }
        Op::Delete { path, recursive, expect } => {
            o.insert("op".into(), json!("delete"));
            o.insert("path".into(), json!(path));
            o.insert("recursive".into(), json!(recursive));
            put_expect(&mut o, expect);
        }
        Op::Get { path } => {
            o.insert("op".into(), json!("get"));
            o.insert("path".into(), json!(path));
        }
        Op::List { path, recursive, limit } => {
            o.insert("op".into(), json!("list"));
            o.insert("path".into(), json!(path));
            o.insert("recursive".into(), json!(recursive));
            o.insert("limit".into(), json!(limit));
        }
    }
    Value::Object(o)
}

fn compare_json(c: &Compare) -> Value {
    let mut o = Map::new();
    o.insert("path".into(), json!(c.path));
    let op = match c.op {
        CompareOp::Eq => "==",
        CompareOp::Ne => "!=",
        CompareOp::Lt => "<",
        CompareOp::Gt => ">",
    };
    o.insert("op".into(), json!(op));
    let target = match &c.target {
        CompareTarget::Value(v) => {
            put_value(&mut o, v);
            "value"
        }
        CompareTarget::Version(v) => {
            o.insert("value".into(), json!(v));
            "version"
        }
        CompareTarget::ModRevision(v) => {
            o.insert("value".into(), json!(v));
            "mod_revision"
        }
        CompareTarget::CreateRevision(v) => {
            o.insert("value".into(), json!(v));
            "create_revision"
        }
        CompareTarget::Exists(b) => {
            o.insert("value".into(), json!(b));
            "exists"
        }
    };
    o.insert("target".into(), json!(target));
    Value::Object(o)
}

/// The body of `POST /v1/txn`.
pub(crate) fn txn_json(txn: &Txn) -> Value {
    json!({
        "compare": txn.compare.iter().map(compare_json).collect::<Vec<_>>(),
        "success": txn.success.iter().map(op_json).collect::<Vec<_>>(),
        "failure": txn.failure.iter().map(op_json).collect::<Vec<_>>(),
    })
}

/// One entry of a transaction's `results`.
#[derive(Debug, Deserialize)]
pub(crate) struct OpResultJson {
    op: String,
    #[serde(default)]
    node: Option<NodeJson>,
    #[serde(default)]
    prev: Option<NodeJson>,
    #[serde(default)]
    deleted: Option<u64>,
    #[serde(default)]
    nodes: Option<Vec<NodeJson>>,
    #[serde(default)]
    more: Option<bool>,
}

impl OpResultJson {
    pub(crate) fn into_result(self) -> Result<OpResult> {
        let missing = |what: &str| Error::Protocol(format!("a {} result without {what}", self.op));
        Ok(match self.op.as_str() {
            "create" => OpResult::Created { node: node_opt(self.node)?.ok_or_else(|| missing("node"))? },
            "set" => OpResult::Put {
                node: node_opt(self.node)?.ok_or_else(|| missing("node"))?,
                prev: node_opt(self.prev)?,
            },
            "delete" => OpResult::Deleted {
                node: node_opt(self.node)?.ok_or_else(|| missing("node"))?,
                deleted: self.deleted.ok_or_else(|| missing("deleted"))?,
            },
            "get" => OpResult::Got { node: node_opt(self.node)? },
            "list" => OpResult::Listed {
                nodes: nodes(self.nodes.ok_or_else(|| missing("nodes"))?)?,
                more: self.more.unwrap_or(false),
            },
            other => return Err(Error::Protocol(format!("unknown transaction result op \"{other}\""))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_bodies_are_what_the_server_parses() {
        let txn = Txn {
            compare: vec![
                Compare { path: "/a".into(), target: CompareTarget::Value(b"x".to_vec()), op: CompareOp::Eq },
                Compare { path: "/b".into(), target: CompareTarget::Version(3), op: CompareOp::Gt },
                Compare { path: "/c".into(), target: CompareTarget::Exists(false), op: CompareOp::Eq },
                Compare { path: "/d".into(), target: CompareTarget::Value(vec![0xff]), op: CompareOp::Ne },
            ],
            success: vec![
                Op::Put {
                    path: "/a".into(),
                    value: b"y".to_vec(),
                    lease: None,
                    parents: false,
                    expect: Some(Expect::ModRevision(4)),
                },
                Op::Create {
                    path: "/q/item-".into(),
                    value: vec![0, 0xff],
                    sequential: true,
                    lease: Some(7),
                    parents: true,
                },
                Op::Delete { path: "/b".into(), recursive: true, expect: Some(Expect::Version(2)) },
                Op::Get { path: "/e".into() },
            ],
            failure: vec![Op::List { path: "/q".into(), recursive: false, limit: 10 }],
        };
        let body = txn_json(&txn).to_string();
        // The server's own parser reads back exactly the transaction that was sent.
        let parsed = cairn_api::json::parse_txn(body.as_bytes(), 1024).unwrap();
        assert_eq!(parsed, txn);
    }

    #[test]
    fn results_and_binary_values_are_read() {
        let stat = json!({"create_revision":1,"mod_revision":2,"version":1,"cversion":0,"num_children":0,
            "lease":null,"ctime":5,"mtime":6,"data_length":2});
        let raw = json!([
            {"op":"set","node":{"path":"/a","stat":stat,"value":"y"},"prev":{"path":"/a","stat":stat,"value":"x"}},
            {"op":"create","node":{"path":"/q/item-0000000000","stat":stat,"value":"AP8=","encoding":"base64"}},
            {"op":"delete","node":{"path":"/b","stat":stat,"value":""},"deleted":3},
            {"op":"get","node":null},
            {"op":"list","nodes":[{"path":"/q/x","stat":stat,"value":"z"}],"more":true}
        ]);
        let list: Vec<OpResultJson> = serde_json::from_value(raw).unwrap();
        let results: Vec<OpResult> = list.into_iter().map(|r| r.into_result().unwrap()).collect();
        assert!(
            matches!(&results[0], OpResult::Put { node, prev: Some(p) } if node.value == b"y" && p.value == b"x")
        );
        assert!(matches!(&results[1], OpResult::Created { node } if node.value == [0, 0xff]));
        assert!(matches!(&results[2], OpResult::Deleted { deleted: 3, .. }));
        assert_eq!(results[3], OpResult::Got { node: None });
        assert!(matches!(&results[4], OpResult::Listed { nodes, more: true } if nodes.len() == 1));

        let bad: OpResultJson = serde_json::from_value(json!({"op":"frob"})).unwrap();
        assert!(matches!(bad.into_result(), Err(Error::Protocol(_))));
        let bad: NodeJson =
            serde_json::from_value(json!({"path":"/a","stat":stat,"value":"!!","encoding":"base64"}))
                .unwrap();
        assert!(matches!(bad.into_node(), Err(Error::Protocol(_))));
    }
}
