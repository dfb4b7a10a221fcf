//! Cairn's server: the HTTP/JSON API, transparent forwarding to the leader, the proposal
//! batcher (group commit above openraft), batched ReadIndex, metrics and start-up.

pub mod batcher;
pub mod config;
pub mod coord;
pub mod forward;
pub mod http;
pub mod lease;
pub mod metrics;
pub mod node;
pub mod queue;
pub mod reads;
pub mod watch;

pub use config::Config;
pub use node::{start, Running};
