//! A Rust client for Cairn.
//!
//! - [`Client`]: nodes (`get`, `children`, `subtree`, `put`, `create`, `delete`), `txn`,
//!   leases (`grant`, `keep_alive`, `revoke`, `lease_info`) and [`Client::watch`], over a list
//!   of members. A call goes to the last member that answered; on failure a read moves on to
//!   the next member, a write only when it surely was not applied (never sent, or a 503
//!   saying nothing was written).
//! - [`Error::is_outcome_unknown`] marks the writes that may or may not have been applied
//!   (timeout, connection lost after sending, the server's "may or may not have been
//!   applied" 503): record those as unknown, and read before retrying them.
//! - Watches and election observers are streams that resume by revision (`Last-Event-ID`)
//!   after a lost connection or a `cancelled` cut, on another member if need be, with no
//!   gap and no duplicate; `compacted` ends them with an error item.
//! - [`Session`] keeps a lease alive in the background; [`Mutex`] and [`Election`] are
//!   recipes on top of it, using the server's lock and election queues.
//!
//! ```no_run
//! use std::time::Duration;
//! use cairn_client::{Client, Mutex, PutOptions, Session, WatchEvent, WatchOptions, Scope};
//! use futures::StreamExt;
//!
//! # async fn demo() -> Result<(), cairn_client::Error> {
//! let client = Client::builder(["http://127.0.0.1:7379", "http://127.0.0.1:7389"])
//!     .request_timeout(Duration::from_secs(5))
//!     .build()?;
//!
//! let put = client.put("/config/app", "v1", PutOptions { parents: true, ..Default::default() }).await?;
//! println!("written at revision {}", put.header.revision);
//! let got = client.get("/config/app").await?;
//! assert_eq!(got.node.map(|n| n.value), Some(b"v1".to_vec()));
//!
//! let mut watch = client
//!     .watch("/config", WatchOptions { scope: Scope::Recursive, ..Default::default() })
//!     .await?;
//! tokio::spawn(async move {
//!     while let Some(event) = watch.next().await {
//!         match event {
//!             Ok(WatchEvent::Progress { .. }) => {}
//!             Ok(e) => println!("{e:?}"),
//!             Err(e) => eprintln!("watch ended: {e}"),
//!         }
//!     }
//! });
//!
//! let session = Session::new(&client, Duration::from_secs(10)).await?;
//! let guard = Mutex::new(&session, "jobs").lock(Some(Duration::from_secs(30))).await?;
//! println!("holding the lock with fencing token {}", guard.fencing_token());
//! guard.unlock().await?;
//! session.close().await?;
//! # Ok(())
//! # }
//! ```

mod client;
mod election;
mod error;
mod kv;
mod lease;
mod lock;
mod session;
mod sse;
mod stream;
mod watch;
mod wire;

pub use cairn_api::{
    Child, Compare, CompareOp, CompareTarget, ErrorCode, Expect, Header, Node, Op, OpResult, Stat, Txn,
};
pub use client::{Client, ClientBuilder};
pub use election::{Election, LeaderEvent, LeaderInfo, Leadership, ObserveStream};
pub use error::{Error, Result, ServerError};
pub use kv::{
    ChildrenResponse, CreateOptions, CreateResponse, DeleteOptions, DeleteResponse, GetOptions, GetResponse,
    ListOptions, PutOptions, PutResponse, SubtreeResponse, TxnResponse,
};
pub use lease::{Lease, LeaseInfo, RevokeResponse};
pub use lock::{LockEntry, LockState, Mutex, MutexGuard};
pub use session::Session;
pub use watch::{NodeEvent, Scope, WatchEvent, WatchOptions, WatchStream};
