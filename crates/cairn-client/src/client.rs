//! The connection to a cluster: a list of members' base URLs and the one loop that sends a
//! request to them, moving on to the next member only when that cannot apply a write twice.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::Method;
use serde::de::DeserializeOwned;

use crate::error::{describe, Error, Result, ServerError};

const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Three times the server's SSE keep-alive comment interval (15 s): a stream silent for
/// this long is taken as dead.
const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(45);
const DEFAULT_STREAM_RETRY: Duration = Duration::from_secs(30);

/// A handle on a Cairn cluster. Cheap to clone: clones share connections and the choice of
/// member.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    http: reqwest::Client,
    pub(crate) endpoints: Endpoints,
    pub(crate) request_timeout: Duration,
    pub(crate) stream_idle_timeout: Duration,
    pub(crate) stream_retry: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("endpoints", &self.inner.endpoints.urls).finish()
    }
}

/// Settings of a [`Client`]; every one has a default.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    endpoints: Vec<String>,
    request_timeout: Duration,
    connect_timeout: Duration,
    stream_idle_timeout: Duration,
    stream_retry: Duration,
}

impl ClientBuilder {
    /// Longest wait for one request's answer (default 10 s, above the server's own 5 s
    /// wait for a leader). Blocking lock and campaign calls add their own timeout to it.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Longest wait for a TCP connection to one member (default 2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// A watch or observe stream that receives nothing (not even a keep-alive comment) for
    /// this long is dropped and resumed elsewhere (default 45 s).
    pub fn stream_idle_timeout(mut self, timeout: Duration) -> Self {
        self.stream_idle_timeout = timeout;
        self
    }

    /// How long a stream keeps trying to reconnect before it yields the error and ends
    /// (default 30 s).
    pub fn stream_retry(mut self, window: Duration) -> Self {
        self.stream_retry = window;
        self
    }

    pub fn build(self) -> Result<Client> {
        let urls: Vec<String> = self.endpoints.iter().map(|e| normalize(e)).collect();
        if urls.is_empty() || urls.iter().any(String::is_empty) {
            return Err(Error::InvalidArgument("at least one non-empty endpoint is needed".into()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| Error::InvalidArgument(format!("HTTP client: {}", describe(&e))))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                endpoints: Endpoints::new(urls),
                request_timeout: self.request_timeout,
                stream_idle_timeout: self.stream_idle_timeout,
                stream_retry: self.stream_retry,
            }),
        })
    }
}

/// `127.0.0.1:7379` and `http://127.0.0.1:7379/` both become `http://127.0.0.1:7379`.
fn normalize(endpoint: &str) -> String {
    let e = endpoint.trim().trim_end_matches('/');
    if e.is_empty() || e.contains("://") {
        e.to_owned()
    } else {
        format!("http://{e}")
    }
}

impl Client {
    /// A client with default settings for these members, e.g. `["http://127.0.0.1:7379"]`.
    pub fn new(endpoints: impl IntoIterator<Item = impl Into<String>>) -> Result<Client> {
        Self::builder(endpoints).build()
    }

    pub fn builder(endpoints: impl IntoIterator<Item = impl Into<String>>) -> ClientBuilder {
        ClientBuilder {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            stream_idle_timeout: DEFAULT_STREAM_IDLE_TIMEOUT,
            stream_retry: DEFAULT_STREAM_RETRY,
        }
    }

    /// The members' base URLs, as normalized.
    pub fn endpoints(&self) -> &[String] {
        &self.inner.endpoints.urls
    }

    /// The member requests go to first (the last one that answered).
    pub fn current_endpoint(&self) -> &str {
        let i = self.inner.endpoints.current();
        &self.inner.endpoints.urls[i]
    }

    pub fn request_timeout(&self) -> Duration {
        self.inner.request_timeout
    }

    /// Sends a call, trying members in turn as [`verdict`] allows; answers the 2xx body.
    pub(crate) async fn call(&self, call: &Call) -> Result<Bytes> {
        let endpoints = &self.inner.endpoints;
        let mut last = None;
        for i in endpoints.order() {
            match self.attempt(i, call).await {
                Ok(body) => {
                    endpoints.succeeded(i);
                    return Ok(body);
                }
                Err(failure) => match verdict(call.kind, &failure) {
                    Verdict::TryNext => {
                        endpoints.failed(i);
                        last = Some(failure);
                    }
                    Verdict::Return => {
                        if matches!(failure, Failure::Status(_)) {
                            // The member answered: a good one to keep asking.
                            endpoints.succeeded(i);
                        }
                        return Err(failure.into_error(call.kind));
                    }
                },
            }
        }
        Err(last.map_or_else(|| Error::InvalidArgument("no endpoints".into()), |f| f.into_error(call.kind)))
    }

    /// [`Client::call`] and decode the JSON answer.
    pub(crate) async fn call_json<T: DeserializeOwned>(&self, call: &Call) -> Result<T> {
        let body = self.call(call).await?;
        decode_json(&body)
    }

    async fn attempt(&self, i: usize, call: &Call) -> Result<Bytes, Failure> {
        let url = format!("{}{}", self.inner.endpoints.urls[i], call.path);
        let mut req = self.inner.http.request(call.method.clone(), url);
        if let Some(body) = &call.body {
            let kind = if call.json { "application/json" } else { "application/octet-stream" };
            req = req.header(CONTENT_TYPE, HeaderValue::from_static(kind)).body(body.clone());
        }
        match call.wait {
            Wait::Default => req = req.timeout(self.inner.request_timeout),
            Wait::Extra(extra) => req = req.timeout(self.inner.request_timeout.saturating_add(extra)),
            Wait::Exactly(d) => req = req.timeout(d),
            Wait::Unbounded => {}
        }
        let resp = req.send().await.map_err(Failure::from_send)?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| Failure::AfterSend(describe(&e)))?;
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err(Failure::Status(ServerError::from_body(status, &body)))
        }
    }

    /// Opens an SSE stream on the first member that serves it; answers the member's index
    /// too, so a stream that dies there can move on.
    pub(crate) async fn open_stream(
        &self,
        path: &str,
        last_event_id: Option<u64>,
    ) -> Result<(usize, reqwest::Response)> {
        let endpoints = &self.inner.endpoints;
        let mut last = None;
        for i in endpoints.order() {
            let url = format!("{}{}", endpoints.urls[i], path);
            let mut req =
                self.inner.http.get(url).header(ACCEPT, HeaderValue::from_static("text/event-stream"));
            if let Some(id) = last_event_id {
                req = req.header("Last-Event-ID", id.to_string());
            }
            // No reqwest timeout: it would bound the whole stream. Only the answer's head
            // (and an error body) must come in time.
            let failure = match tokio::time::timeout(self.inner.request_timeout, req.send()).await {
                Err(_) => Failure::AfterSend("no answer in time".into()),
                Ok(Err(e)) => Failure::from_send(e),
                Ok(Ok(resp)) if resp.status().is_success() => {
                    let is_sse = resp
                        .headers()
                        .get(CONTENT_TYPE)
                        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
                    if !is_sse {
                        return Err(Error::Protocol("a stream answered without text/event-stream".into()));
                    }
                    endpoints.succeeded(i);
                    return Ok((i, resp));
                }
                Ok(Ok(resp)) => {
                    let status = resp.status().as_u16();
                    match tokio::time::timeout(self.inner.request_timeout, resp.bytes()).await {
                        Ok(Ok(body)) => Failure::Status(ServerError::from_body(status, &body)),
                        Ok(Err(e)) => Failure::AfterSend(describe(&e)),
                        Err(_) => Failure::AfterSend("no error body in time".into()),
                    }
                }
            };
            match verdict(Kind::Read, &failure) {
                Verdict::TryNext => {
                    endpoints.failed(i);
                    last = Some(failure);
                }
                Verdict::Return => {
                    endpoints.succeeded(i);
                    return Err(failure.into_error(Kind::Read));
                }
            }
        }
        Err(last.map_or_else(|| Error::InvalidArgument("no endpoints".into()), |f| f.into_error(Kind::Read)))
    }
}

pub(crate) fn decode_json<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| Error::Protocol(format!("cannot read the answer: {e}")))
}

/// Whether a call may be sent again after it may have reached a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Changes nothing (or nothing twice): safe to resend anywhere.
    Read,
    /// Must not be resent once it may have arrived.
    Write,
}

/// How long to wait for one call's answer.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    Default,
    /// The request timeout plus this much (a call the server holds on purpose).
    Extra(Duration),
    Exactly(Duration),
    /// Until the server answers or the connection breaks (a lock without a timeout).
    Unbounded,
}

/// One HTTP call: method, path with query (after the base URL), body.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub method: Method,
    pub path: String,
    pub body: Option<Bytes>,
    pub json: bool,
    pub kind: Kind,
    pub wait: Wait,
}

impl Call {
    pub fn get(path: String) -> Call {
        Call { method: Method::GET, path, body: None, json: false, kind: Kind::Read, wait: Wait::Default }
    }

    pub fn write(method: Method, path: String) -> Call {
        Call { method, path, body: None, json: false, kind: Kind::Write, wait: Wait::Default }
    }

    pub fn raw_body(mut self, body: Vec<u8>) -> Call {
        self.body = Some(Bytes::from(body));
        self.json = false;
        self
    }

    pub fn json_body(mut self, value: &serde_json::Value) -> Call {
        self.body = Some(Bytes::from(value.to_string()));
        self.json = true;
        self
    }

    pub fn kind(mut self, kind: Kind) -> Call {
        self.kind = kind;
        self
    }

    pub fn wait(mut self, wait: Wait) -> Call {
        self.wait = wait;
        self
    }
}

/// Why one attempt on one member failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Nothing left this client (no connection, or the request could not be built).
    NotSent(String),
    /// The request may have arrived: the connection broke or no answer came in time.
    AfterSend(String),
    /// The member answered with an error.
    Status(ServerError),
}

impl Failure {
    fn from_send(e: reqwest::Error) -> Failure {
        if e.is_connect() || e.is_builder() {
            Failure::NotSent(describe(&e))
        } else {
            Failure::AfterSend(describe(&e))
        }
    }

    fn into_error(self, kind: Kind) -> Error {
        match (self, kind) {
            (Failure::NotSent(reason), _) | (Failure::AfterSend(reason), Kind::Read) => {
                Error::Unreachable { reason }
            }
            (Failure::AfterSend(reason), Kind::Write) => Error::Unknown { reason },
            (Failure::Status(e), _) => Error::server_error(e),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    TryNext,
    Return,
}

/// The retry rule: a read goes to the next member after any failure of the member (no
/// answer, overloaded, unavailable); a write only when it surely did not apply: never sent,
/// or a 503 that says nothing was written (no leader, leader unreachable, not ready).
pub(crate) fn verdict(kind: Kind, failure: &Failure) -> Verdict {
    match (failure, kind) {
        (Failure::NotSent(_), _) => Verdict::TryNext,
        (Failure::AfterSend(_), Kind::Read) => Verdict::TryNext,
        (Failure::AfterSend(_), Kind::Write) => Verdict::Return,
        (Failure::Status(e), _) if e.says_outcome_unknown() => Verdict::Return,
        (Failure::Status(e), _) if e.status == 503 => Verdict::TryNext,
        (Failure::Status(e), Kind::Read) if matches!(e.status, 429 | 500 | 502 | 504) => Verdict::TryNext,
        (Failure::Status(_), _) => Verdict::Return,
    }
}

/// The members and which one to try first: the last that answered. Sticky, so a healthy
/// member keeps its connections warm; a failed one hands the lead to the next.
pub(crate) struct Endpoints {
    pub(crate) urls: Vec<String>,
    current: AtomicUsize,
}

impl Endpoints {
    pub(crate) fn new(urls: Vec<String>) -> Endpoints {
        Endpoints { urls, current: AtomicUsize::new(0) }
    }

    pub(crate) fn current(&self) -> usize {
        self.current.load(Ordering::Relaxed) % self.urls.len().max(1)
    }

    /// Every member once, starting with the current one.
    pub(crate) fn order(&self) -> impl Iterator<Item = usize> {
        let n = self.urls.len();
        let start = self.current();
        (0..n).map(move |step| (start + step) % n)
    }

    pub(crate) fn succeeded(&self, i: usize) {
        self.current.store(i, Ordering::Relaxed);
    }

    /// Moves past `i`, unless another call already moved on.
    pub(crate) fn failed(&self, i: usize) {
        let n = self.urls.len().max(1);
        let _ = self.current.compare_exchange(i, (i + 1) % n, Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// Percent-encodes a node path for a URL, keeping its slashes.
pub(crate) fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for part in path.split('/').enumerate() {
        if part.0 > 0 {
            out.push('/');
        }
        out.push_str(&encode_component(part.1));
    }
    out
}

/// Percent-encodes one URL path segment or query value: everything but RFC 3986's
/// unreserved characters.
pub(crate) fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A query string from name/value pairs (`None` = a bare flag); empty when there are none.
pub(crate) fn query(params: &[(&str, Option<String>)]) -> String {
    let mut out = String::new();
    for (name, value) in params {
        out.push(if out.is_empty() { '?' } else { '&' });
        out.push_str(name);
        if let Some(v) = value {
            out.push('=');
            out.push_str(&encode_component(v));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, message: &str) -> Failure {
        Failure::Status(ServerError {
            status: code,
            code: "unavailable".into(),
            message: message.into(),
            limit: None,
            compact_revision: None,
            header: None,
        })
    }

    #[test]
    fn rotation_starts_at_the_last_good_member() {
        let e = Endpoints::new(vec!["a".into(), "b".into(), "c".into()]);
        assert_eq!(e.order().collect::<Vec<_>>(), [0, 1, 2]);
        e.failed(0);
        assert_eq!(e.order().collect::<Vec<_>>(), [1, 2, 0]);
        // A stale failure report (someone already moved on) does not move again.
        e.failed(0);
        assert_eq!(e.current(), 1);
        e.failed(1);
        e.failed(2);
        assert_eq!(e.current(), 0);
        e.succeeded(2);
        assert_eq!(e.order().collect::<Vec<_>>(), [2, 0, 1]);
    }

    #[test]
    fn writes_move_on_only_when_surely_not_applied() {
        let not_sent = Failure::NotSent("connection refused".into());
        let after = Failure::AfterSend("timed out".into());
        let no_leader = status(503, "no leader is available (an election may be under way); retry shortly");
        let unknown = status(503, "the leader did not answer: the write may or may not have been applied");
        let busy = status(429, "too many pending writes");
        assert_eq!(verdict(Kind::Write, &not_sent), Verdict::TryNext);
        assert_eq!(verdict(Kind::Write, &after), Verdict::Return);
        assert_eq!(verdict(Kind::Write, &no_leader), Verdict::TryNext);
        assert_eq!(verdict(Kind::Write, &unknown), Verdict::Return);
        assert_eq!(verdict(Kind::Write, &busy), Verdict::Return);
        assert_eq!(verdict(Kind::Read, &after), Verdict::TryNext);
        assert_eq!(verdict(Kind::Read, &busy), Verdict::TryNext);
        assert_eq!(verdict(Kind::Read, &status(404, "gone")), Verdict::Return);

        assert!(after.into_error(Kind::Write).is_outcome_unknown());
        assert!(unknown.into_error(Kind::Write).is_outcome_unknown());
        assert!(matches!(not_sent.into_error(Kind::Write), Error::Unreachable { .. }));
        assert!(matches!(
            Failure::AfterSend("reset".into()).into_error(Kind::Read),
            Error::Unreachable { .. }
        ));
    }

    #[test]
    fn endpoints_are_normalized() {
        assert_eq!(normalize("127.0.0.1:7379"), "http://127.0.0.1:7379");
        assert_eq!(normalize("http://h:1/ "), "http://h:1");
        assert_eq!(normalize("https://h"), "https://h");
        assert!(Client::new(Vec::<String>::new()).is_err());
        assert!(Client::new([""]).is_err());
    }

    #[test]
    fn paths_and_queries_are_encoded() {
        assert_eq!(encode_path("/a/b c/é?#%"), "/a/b%20c/%C3%A9%3F%23%25");
        assert_eq!(encode_path("/"), "/");
        assert_eq!(encode_component("jobs/x"), "jobs%2Fx");
        assert_eq!(query(&[]), "");
        assert_eq!(
            query(&[("children", None), ("after", Some("AA+/=".into())), ("limit", Some("5".into()))]),
            "?children&after=AA%2B%2F%3D&limit=5"
        );
    }
}
