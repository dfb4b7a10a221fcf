//! Nodes and transactions: `/v1/nodes/{path}` and `/v1/txn`.

use cairn_api::{validate_path, Child, Header, Node, OpResult, Txn};
use reqwest::Method;
use serde::Deserialize;

use crate::client::{encode_path, query, Call, Client, Kind};
use crate::error::{Error, Result};
use crate::wire::{self, NodeJson, OpResultJson};

/// Options of a read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetOptions {
    /// Read the answering member's state without asking the leader (faster, maybe stale).
    pub serializable: bool,
    /// Read the namespace as it was right after this revision.
    pub revision: Option<u64>,
}

/// Options of a listing (`children`, `subtree`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    pub serializable: bool,
    pub revision: Option<u64>,
    /// Entries per page (server default 1,000); every page is fetched either way.
    pub page_limit: Option<usize>,
}

/// Options of a create-or-set. `version` and `mod_revision` (at most one) make it a
/// compare-and-set, which never creates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOptions {
    /// Binds a node this call creates to the lease (an ephemeral node).
    pub lease: Option<u64>,
    pub version: Option<u64>,
    pub mod_revision: Option<u64>,
    /// Create missing parents (mkdir -p).
    pub parents: bool,
}

/// Options of a create-only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateOptions {
    /// Append a zero-padded 10-digit counter taken from the parent.
    pub sequential: bool,
    pub lease: Option<u64>,
    pub parents: bool,
}

/// Options of a delete: a compare-and-set condition, and whether to take the subtree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    pub version: Option<u64>,
    pub mod_revision: Option<u64>,
    pub recursive: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetResponse {
    pub header: Header,
    /// `None` when the node does not exist (the server's 404 `not_found`).
    pub node: Option<Node>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutResponse {
    pub header: Header,
    pub node: Node,
    /// The node as it was before a set; `None` when this call created it.
    pub prev: Option<Node>,
    pub created: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateResponse {
    pub header: Header,
    pub node: Node,
}

impl CreateResponse {
    /// The created path (with its counter, for a sequential create).
    pub fn path(&self) -> &str {
        &self.node.path
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteResponse {
    pub header: Header,
    /// The node as it was when deleted.
    pub node: Node,
    /// Nodes removed: the node and its whole subtree.
    pub deleted: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnResponse {
    /// `header.revision` is the transaction's revision when it wrote something.
    pub header: Header,
    pub succeeded: bool,
    pub results: Vec<OpResult>,
}

/// Every child of a node, read page by page at one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildrenResponse {
    /// The header of the last page.
    pub header: Header,
    /// The revision every page was read at.
    pub revision: u64,
    pub children: Vec<Child>,
}

/// Every node below a path (not the node itself), read page by page at one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubtreeResponse {
    pub header: Header,
    pub revision: u64,
    pub nodes: Vec<Node>,
}

fn checked(path: &str) -> Result<String> {
    validate_path(path).map_err(|e| Error::InvalidArgument(e.message))?;
    Ok(format!("/v1/nodes{}", encode_path(path)))
}

fn flag(on: bool, name: &'static str) -> Option<(&'static str, Option<String>)> {
    on.then_some((name, None))
}

fn number(name: &'static str, n: Option<impl ToString>) -> Option<(&'static str, Option<String>)> {
    n.map(|n| (name, Some(n.to_string())))
}

fn read_params(serializable: bool, revision: Option<u64>) -> Vec<(&'static str, Option<String>)> {
    let mut params = Vec::new();
    if serializable {
        params.push(("consistency", Some("serializable".to_owned())));
    }
    params.extend(number("revision", revision));
    params
}

#[derive(Deserialize)]
struct NodeAnswer {
    header: Header,
    node: NodeJson,
}

#[derive(Deserialize)]
struct PutAnswer {
    header: Header,
    node: NodeJson,
    #[serde(default)]
    prev: Option<NodeJson>,
    created: bool,
}

#[derive(Deserialize)]
struct DeleteAnswer {
    header: Header,
    node: NodeJson,
    deleted: u64,
}

#[derive(Deserialize)]
struct TxnAnswer {
    header: Header,
    succeeded: bool,
    results: Vec<OpResultJson>,
}

#[derive(Deserialize)]
struct ChildrenPage {
    header: Header,
    revision: u64,
    children: Vec<Child>,
    next: Option<String>,
}

#[derive(Deserialize)]
struct SubtreePage {
    header: Header,
    revision: u64,
    nodes: Vec<NodeJson>,
    next: Option<String>,
}

impl Client {
    /// Reads a node (linearizable).
    pub async fn get(&self, path: &str) -> Result<GetResponse> {
        self.get_with(path, &GetOptions::default()).await
    }

    pub async fn get_with(&self, path: &str, opts: &GetOptions) -> Result<GetResponse> {
        let url = checked(path)? + &query(&read_params(opts.serializable, opts.revision));
        match self.call_json::<NodeAnswer>(&Call::get(url)).await {
            Ok(a) => Ok(GetResponse { header: a.header, node: Some(a.node.into_node()?) }),
            Err(Error::Server(e)) if e.code == "not_found" => {
                Ok(GetResponse { header: e.header.unwrap_or_default(), node: None })
            }
            Err(e) => Err(e),
        }
    }

    /// Lists every child of a node (name and stat), following the paging cursor.
    pub async fn children(&self, path: &str) -> Result<ChildrenResponse> {
        self.children_with(path, &ListOptions::default()).await
    }

    pub async fn children_with(&self, path: &str, opts: &ListOptions) -> Result<ChildrenResponse> {
        let base = checked(path)?;
        let mut out = ChildrenResponse { header: Header::default(), revision: 0, children: Vec::new() };
        let mut after: Option<String> = None;
        loop {
            let page: ChildrenPage =
                self.call_json(&Call::get(page_url(&base, "children", opts, &after))).await?;
            out.header = page.header;
            out.revision = page.revision;
            out.children.extend(page.children);
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(out),
            }
        }
    }

    /// Lists every node below a path with its value, following the paging cursor.
    pub async fn subtree(&self, path: &str) -> Result<SubtreeResponse> {
        self.subtree_with(path, &ListOptions::default()).await
    }

    pub async fn subtree_with(&self, path: &str, opts: &ListOptions) -> Result<SubtreeResponse> {
        let base = checked(path)?;
        let mut out = SubtreeResponse { header: Header::default(), revision: 0, nodes: Vec::new() };
        let mut after: Option<String> = None;
        loop {
            let page: SubtreePage =
                self.call_json(&Call::get(page_url(&base, "recursive", opts, &after))).await?;
            out.header = page.header;
            out.revision = page.revision;
            out.nodes.extend(wire::nodes(page.nodes)?);
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(out),
            }
        }
    }

    /// Creates the node or sets its value.
    pub async fn put(&self, path: &str, value: impl Into<Vec<u8>>, opts: PutOptions) -> Result<PutResponse> {
        let mut params = vec![];
        params.extend(flag(opts.parents, "parents"));
        params.extend(number("lease", opts.lease));
        params.extend(number("version", opts.version));
        params.extend(number("mod_revision", opts.mod_revision));
        let url = checked(path)? + &query(&params);
        let a: PutAnswer = self.call_json(&Call::write(Method::PUT, url).raw_body(value.into())).await?;
        Ok(PutResponse {
            header: a.header,
            node: a.node.into_node()?,
            prev: wire::node_opt(a.prev)?,
            created: a.created,
        })
    }

    /// Creates a node that must not exist yet (409 `already_exists` otherwise).
    pub async fn create(
        &self,
        path: &str,
        value: impl Into<Vec<u8>>,
        opts: CreateOptions,
    ) -> Result<CreateResponse> {
        let mut params = vec![];
        params.extend(flag(opts.sequential, "sequential"));
        params.extend(flag(opts.parents, "parents"));
        params.extend(number("lease", opts.lease));
        let url = checked(path)? + &query(&params);
        let a: NodeAnswer = self.call_json(&Call::write(Method::POST, url).raw_body(value.into())).await?;
        Ok(CreateResponse { header: a.header, node: a.node.into_node()? })
    }

    pub async fn delete(&self, path: &str, opts: DeleteOptions) -> Result<DeleteResponse> {
        let mut params = vec![];
        params.extend(flag(opts.recursive, "recursive"));
        params.extend(number("version", opts.version));
        params.extend(number("mod_revision", opts.mod_revision));
        let url = checked(path)? + &query(&params);
        let a: DeleteAnswer = self.call_json(&Call::write(Method::DELETE, url)).await?;
        Ok(DeleteResponse { header: a.header, node: a.node.into_node()?, deleted: a.deleted })
    }

    /// Runs a transaction. One that only reads is retried on another member like any read.
    pub async fn txn(&self, txn: &Txn) -> Result<TxnResponse> {
        let reads_only = txn.success.iter().chain(&txn.failure).all(|op| !op.is_write());
        let kind = if reads_only { Kind::Read } else { Kind::Write };
        let call = Call::write(Method::POST, "/v1/txn".into()).json_body(&wire::txn_json(txn)).kind(kind);
        let a: TxnAnswer = self.call_json(&call).await?;
        let results = a.results.into_iter().map(OpResultJson::into_result).collect::<Result<_>>()?;
        Ok(TxnResponse { header: a.header, succeeded: a.succeeded, results })
    }
}

fn page_url(base: &str, listing: &'static str, opts: &ListOptions, after: &Option<String>) -> String {
    let mut params = vec![(listing, None)];
    params.extend(read_params(opts.serializable, opts.revision));
    params.extend(number("limit", opts.page_limit));
    params.extend(after.clone().map(|a| ("after", Some(a))));
    format!("{base}{}", query(&params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_the_options() {
        assert_eq!(checked("/").unwrap(), "/v1/nodes/");
        assert_eq!(checked("/a b/c").unwrap(), "/v1/nodes/a%20b/c");
        assert!(matches!(checked("a/b"), Err(Error::InvalidArgument(m)) if m.contains("start with '/'")));
        let opts = ListOptions { serializable: true, revision: Some(4), page_limit: Some(2) };
        assert_eq!(
            page_url("/v1/nodes/q", "children", &opts, &Some("AAE_x".into())),
            "/v1/nodes/q?children&consistency=serializable&revision=4&limit=2&after=AAE_x"
        );
        assert_eq!(
            page_url("/v1/nodes/q", "recursive", &ListOptions::default(), &None),
            "/v1/nodes/q?recursive"
        );
    }
}
