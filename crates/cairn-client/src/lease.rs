//! Leases: `/v1/leases`. A lease is a countdown on the leader; nodes bound to it go when it
//! ends. [`crate::Session`] keeps one alive in the background.

use std::time::Duration;

use cairn_api::Header;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::client::{Call, Client, Kind, Wait};
use crate::error::{Error, Result};

/// A granted (or renewed) lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub id: u64,
    pub ttl: Duration,
}

/// What `GET /v1/leases/{id}` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    pub header: Header,
    pub id: u64,
    pub ttl: Duration,
    /// Time left on the leader's countdown.
    pub remaining: Duration,
    /// Paths of the nodes bound to the lease.
    pub nodes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevokeResponse {
    /// The revoke's revision when it deleted nodes.
    pub header: Header,
    /// Nodes deleted with the lease.
    pub deleted: u64,
}

#[derive(Deserialize)]
struct LeaseAnswer {
    id: u64,
    ttl_ms: u64,
}

#[derive(Deserialize)]
struct LeaseInfoAnswer {
    header: Header,
    id: u64,
    ttl_ms: u64,
    remaining_ms: u64,
    #[serde(default)]
    nodes: Vec<String>,
}

#[derive(Deserialize)]
struct RevokeAnswer {
    header: Header,
    deleted: u64,
}

#[derive(Deserialize)]
struct ListAnswer {
    leases: Vec<LeaseAnswer>,
}

impl From<LeaseAnswer> for Lease {
    fn from(a: LeaseAnswer) -> Lease {
        Lease { id: a.id, ttl: Duration::from_millis(a.ttl_ms) }
    }
}

fn ttl_ms(ttl: Duration) -> Result<u64> {
    u64::try_from(ttl.as_millis()).map_err(|_| Error::InvalidArgument("lease TTL too long".into()))
}

impl Client {
    /// Grants a lease of `ttl` (2 s to one day; the server refuses others).
    pub async fn grant(&self, ttl: Duration) -> Result<Lease> {
        let call =
            Call::write(Method::POST, "/v1/leases".into()).json_body(&json!({ "ttl_ms": ttl_ms(ttl)? }));
        Ok(self.call_json::<LeaseAnswer>(&call).await?.into())
    }

    /// Restarts the lease's countdown at its full TTL; 404 `lease_not_found` once it ended.
    pub async fn keep_alive(&self, id: u64) -> Result<Lease> {
        self.keep_alive_within(id, Wait::Default).await
    }

    /// A keep-alive resets a countdown and nothing else: sending it twice is harmless, so it
    /// is retried on other members like a read.
    pub(crate) async fn keep_alive_within(&self, id: u64, wait: Wait) -> Result<Lease> {
        let call =
            Call::write(Method::POST, format!("/v1/leases/{id}/keepalive")).kind(Kind::Read).wait(wait);
        Ok(self.call_json::<LeaseAnswer>(&call).await?.into())
    }

    /// Revokes a lease now, deleting its nodes in one revision.
    pub async fn revoke(&self, id: u64) -> Result<RevokeResponse> {
        let a: RevokeAnswer =
            self.call_json(&Call::write(Method::DELETE, format!("/v1/leases/{id}"))).await?;
        Ok(RevokeResponse { header: a.header, deleted: a.deleted })
    }

    pub async fn lease_info(&self, id: u64) -> Result<LeaseInfo> {
        let a: LeaseInfoAnswer = self.call_json(&Call::get(format!("/v1/leases/{id}"))).await?;
        Ok(LeaseInfo {
            header: a.header,
            id: a.id,
            ttl: Duration::from_millis(a.ttl_ms),
            remaining: Duration::from_millis(a.remaining_ms),
            nodes: a.nodes,
        })
    }

    /// Every lease, in id order.
    pub async fn leases(&self) -> Result<Vec<Lease>> {
        let a: ListAnswer = self.call_json(&Call::get("/v1/leases".into())).await?;
        Ok(a.leases.into_iter().map(Lease::from).collect())
    }
}
