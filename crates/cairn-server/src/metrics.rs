//! Prometheus metrics.

use axum::http::{Method, StatusCode};
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    /// `requests` resolved for the usual answers, each a plain atomic counter: resolving
    /// labels takes a hash and a shared lock on every request.
    usual_requests: [[IntCounter; USUAL_STATUSES.len()]; USUAL_METHODS.len()],
    pub writes: IntCounter,
    pub write_batches: IntCounter,
    pub batch_size: Histogram,
    pub read_index_rounds: IntCounter,
    pub revision: IntGauge,
    pub term: IntGauge,
    pub is_leader: IntGauge,
    pub applied_index: IntGauge,
    pub watchers: IntGauge,
    pub events_sent: IntCounter,
    pub streams_cut: IntCounter,
}

const USUAL_METHODS: [Method; 4] = [Method::GET, Method::PUT, Method::POST, Method::DELETE];
const USUAL_STATUSES: [StatusCode; 2] = [StatusCode::OK, StatusCode::CREATED];

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new_custom(Some("cairn".into()), None)?;
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by method and status"),
            &["method", "status"],
        )?;
        let writes = IntCounter::new("writes_total", "Write commands proposed by this member")?;
        let write_batches = IntCounter::new("write_batches_total", "Log entries proposed by the batcher")?;
        let batch_size = Histogram::with_opts(
            HistogramOpts::new("write_batch_size", "Commands per proposed log entry")
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0]),
        )?;
        let read_index_rounds =
            IntCounter::new("read_index_rounds_total", "Leadership confirmations for linearizable reads")?;
        let revision = IntGauge::new("revision", "Revision of the last applied write")?;
        let term = IntGauge::new("raft_term", "Current Raft term")?;
        let is_leader = IntGauge::new("is_leader", "1 if this member leads")?;
        let applied_index = IntGauge::new("applied_index", "Last applied Raft log index")?;
        let watchers = IntGauge::new("watchers", "Watch streams and long-polls open on this member")?;
        let events_sent = IntCounter::new("watch_events_sent_total", "Watch events queued to streams")?;
        let streams_cut = IntCounter::new("watch_streams_cut_total", "Watch streams cut for falling behind")?;
        registry.register(Box::new(watchers.clone()))?;
        registry.register(Box::new(events_sent.clone()))?;
        registry.register(Box::new(streams_cut.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(writes.clone()))?;
        registry.register(Box::new(write_batches.clone()))?;
        registry.register(Box::new(batch_size.clone()))?;
        registry.register(Box::new(read_index_rounds.clone()))?;
        registry.register(Box::new(revision.clone()))?;
        registry.register(Box::new(term.clone()))?;
        registry.register(Box::new(is_leader.clone()))?;
        registry.register(Box::new(applied_index.clone()))?;
        let usual_requests = USUAL_METHODS.each_ref().map(|method| {
            USUAL_STATUSES.map(|status| requests.with_label_values(&[method.as_str(), status.as_str()]))
        });
        Ok(Metrics {
            registry,
            requests,
            usual_requests,
            writes,
            write_batches,
            batch_size,
            read_index_rounds,
            revision,
            term,
            is_leader,
            applied_index,
            watchers,
            events_sent,
            streams_cut,
        })
    }

    /// Counts one answered HTTP request.
    pub fn count_request(&self, method: &Method, status: StatusCode) {
        let m = USUAL_METHODS.iter().position(|m| m == method);
        let s = USUAL_STATUSES.iter().position(|s| *s == status);
        match (m, s) {
            (Some(m), Some(s)) => self.usual_requests[m][s].inc(),
            _ => self.requests.with_label_values(&[method.as_str(), status.as_str()]).inc(),
        }
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
