//! Start-up settings, from flags or a TOML file (flags win).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use serde::Deserialize;

#[derive(Debug, Clone, Parser, Default)]
#[command(
    name = "cairn",
    version,
    about = "Cairn: a cluster coordination service (Raft + RocksDB, HTTP/JSON)"
)]
pub struct Args {
    /// TOML file with any of the settings below (flags given on the command line win).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// This member's id (a positive integer, stable for the member's life).
    #[arg(long)]
    pub id: Option<u64>,
    /// Where this member keeps its data.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Address of the client API (HTTP/JSON).
    #[arg(long)]
    pub listen_client: Option<SocketAddr>,
    /// Address of the peer (Raft) listener.
    #[arg(long)]
    pub listen_peer: Option<SocketAddr>,
    /// The founding members as `id=host:port` of their peer listeners, comma separated.
    #[arg(long)]
    pub initial_cluster: Option<String>,
    /// Addresses to dial instead of the ones members advertise, as `id=host:port`, comma
    /// separated: for NAT or a proxy in between (the fault-injection tests put one on
    /// every directed link this way).
    #[arg(long)]
    pub peer_routes: Option<String>,
    /// Start empty and wait to be added as a learner by an existing cluster.
    #[arg(long)]
    pub join: bool,
    /// Log entries between snapshots (the log is purged behind each snapshot).
    #[arg(long)]
    pub snapshot_logs: Option<u64>,
    /// Revisions of history kept for watches and past reads before compaction.
    #[arg(long)]
    pub history_revisions: Option<u64>,
    /// Seconds of history kept for watches and past reads before compaction.
    #[arg(long)]
    pub history_age_secs: Option<u64>,
    /// Largest number of compares plus operations in one transaction.
    #[arg(long)]
    pub max_txn_ops: Option<usize>,
    /// Most watch streams and long-polls this member serves at once.
    #[arg(long)]
    pub max_watchers: Option<usize>,
    /// Milliseconds between progress events (bookmarks) on idle watch streams.
    #[arg(long)]
    pub watch_progress_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    id: Option<u64>,
    data_dir: Option<PathBuf>,
    listen_client: Option<SocketAddr>,
    listen_peer: Option<SocketAddr>,
    initial_cluster: Option<String>,
    peer_routes: Option<String>,
    join: Option<bool>,
    snapshot_logs: Option<u64>,
    history_revisions: Option<u64>,
    history_age_secs: Option<u64>,
    max_txn_ops: Option<usize>,
    max_watchers: Option<usize>,
    watch_progress_ms: Option<u64>,
}

/// Settings in force.
#[derive(Debug, Clone)]
pub struct Config {
    pub id: u64,
    pub data_dir: PathBuf,
    pub listen_client: SocketAddr,
    pub listen_peer: SocketAddr,
    pub initial_cluster: BTreeMap<u64, String>,
    /// Where to dial a member instead of its advertised peer address.
    pub peer_routes: BTreeMap<u64, String>,
    pub join: bool,
    pub snapshot_logs: u64,
    pub history_revisions: u64,
    /// History older than this is compacted too, whichever bound removes more.
    pub history_age: std::time::Duration,
    pub watch_progress_ms: u64,
    pub limits: Limits,
}

/// Limits enforced before anything enters the Raft log; listed by `GET /v1/cluster`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Limits {
    pub max_value_bytes: usize,
    pub max_request_bytes: usize,
    pub max_txn_ops: usize,
    pub max_path_bytes: usize,
    pub default_page_limit: usize,
    pub max_page_limit: usize,
    pub page_byte_budget: usize,
    /// Proposals waiting on the leader's batcher: one write, lease grant or revoke each,
    /// or a follower's forwarded batch (at most 512 writes, two in flight per follower).
    pub max_pending_writes: usize,
    pub max_watchers: usize,
    pub min_lease_ttl_ms: u64,
    pub max_lease_ttl_ms: u64,
    /// Watches per HTTP connection: an SSE stream holds its HTTP/1.1 connection.
    pub max_watchers_per_connection: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_value_bytes: cairn_api::MAX_VALUE_BYTES,
            // A value shown as base64 plus room for a transaction's JSON.
            max_request_bytes: 4 * 1024 * 1024,
            max_txn_ops: cairn_api::DEFAULT_MAX_TXN_OPS,
            max_path_bytes: cairn_api::MAX_PATH_BYTES,
            default_page_limit: cairn_api::DEFAULT_PAGE_LIMIT,
            max_page_limit: cairn_api::MAX_PAGE_LIMIT,
            page_byte_budget: cairn_api::PAGE_BYTE_BUDGET,
            max_pending_writes: 16_384,
            max_watchers: 100_000,
            min_lease_ttl_ms: cairn_api::MIN_LEASE_TTL_MS,
            max_lease_ttl_ms: cairn_api::MAX_LEASE_TTL_MS,
            max_watchers_per_connection: 1,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("config file {0} is not valid: {1}")]
    Parse(PathBuf, toml::de::Error),
    #[error("--initial-cluster: {0} (expected id=host:port,id=host:port,...)")]
    InitialCluster(String),
    #[error("--peer-routes: {0} (expected id=host:port,id=host:port,...)")]
    PeerRoutes(String),
    #[error("{0}")]
    Invalid(String),
}

/// `id=host:port,...`; errors name what is wrong, the caller names the flag.
fn parse_members(spec: &str) -> Result<BTreeMap<u64, String>, String> {
    let mut out = BTreeMap::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part.split_once('=').ok_or_else(|| format!("'{part}' has no '='"))?;
        let id: u64 = id.trim().parse().map_err(|_| format!("'{id}' is not a member id"))?;
        if id == 0 {
            return Err("member ids start at 1".into());
        }
        let addr = addr.trim();
        addr.parse::<SocketAddr>().map_err(|_| format!("'{addr}' is not host:port"))?;
        if out.insert(id, addr.to_owned()).is_some() {
            return Err(format!("member {id} is listed twice"));
        }
    }
    Ok(out)
}

impl Config {
    pub fn from_args(args: Args) -> Result<Config, ConfigError> {
        let file = match &args.config {
            None => FileConfig::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.clone(), e))?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse(path.clone(), e))?
            }
        };
        let id = args.id.or(file.id).unwrap_or(1);
        if id == 0 {
            return Err(ConfigError::Invalid("--id must be at least 1".into()));
        }
        let listen_peer = args.listen_peer.or(file.listen_peer).unwrap_or(([127, 0, 0, 1], 7380).into());
        let initial_cluster = match args.initial_cluster.or(file.initial_cluster) {
            Some(spec) => parse_members(&spec).map_err(ConfigError::InitialCluster)?,
            None => BTreeMap::from([(id, listen_peer.to_string())]),
        };
        let peer_routes = match args.peer_routes.or(file.peer_routes) {
            Some(spec) => parse_members(&spec).map_err(ConfigError::PeerRoutes)?,
            None => BTreeMap::new(),
        };
        let join = args.join || file.join.unwrap_or(false);
        if !join && !initial_cluster.contains_key(&id) {
            return Err(ConfigError::InitialCluster(format!("it does not list this member (id {id})")));
        }
        let mut limits = Limits::default();
        if let Some(n) = args.max_txn_ops.or(file.max_txn_ops) {
            limits.max_txn_ops = n.max(1);
        }
        if let Some(n) = args.max_watchers.or(file.max_watchers) {
            limits.max_watchers = n;
        }
        Ok(Config {
            id,
            data_dir: args.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from("cairn-data")),
            listen_client: args.listen_client.or(file.listen_client).unwrap_or(([127, 0, 0, 1], 7379).into()),
            listen_peer,
            initial_cluster,
            peer_routes,
            join,
            snapshot_logs: args.snapshot_logs.or(file.snapshot_logs).unwrap_or(10_000).max(10),
            history_revisions: args.history_revisions.or(file.history_revisions).unwrap_or(100_000).max(1),
            history_age: std::time::Duration::from_secs(
                args.history_age_secs.or(file.history_age_secs).unwrap_or(3_600).max(1),
            ),
            watch_progress_ms: args.watch_progress_ms.or(file.watch_progress_ms).unwrap_or(5_000).max(10),
            limits,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_start_is_a_one_member_cluster() {
        let c = Config::from_args(Args::default()).unwrap();
        assert_eq!(c.id, 1);
        assert_eq!(c.initial_cluster, BTreeMap::from([(1, "127.0.0.1:7380".to_owned())]));
        assert_eq!(c.listen_client.to_string(), "127.0.0.1:7379");
        assert_eq!(c.data_dir, PathBuf::from("cairn-data"));
    }

    #[test]
    fn initial_cluster_errors_say_what_is_wrong() {
        for (spec, want) in [
            ("1=x", "host:port"),
            ("a=127.0.0.1:1", "member id"),
            ("1", "no '='"),
            ("2=127.0.0.1:1", "does not list"),
        ] {
            let args = Args { initial_cluster: Some(spec.into()), ..Args::default() };
            let e = Config::from_args(args).unwrap_err().to_string();
            assert!(e.contains(want), "{spec}: {e}");
        }
    }
}
