//! The resuming SSE stream under watches and election observers: it reads events, hands
//! them to a decoder that knows what they mean, and reconnects (to the next member when
//! this one failed) with the `Last-Event-ID` the decoder has proven delivered.

use std::collections::VecDeque;
use std::time::Duration;

use futures::stream::{BoxStream, StreamExt};
use tokio::time::Instant;

use crate::client::Client;
use crate::error::{describe, Error, Result};
use crate::sse::{SseEvent, SseParser};

/// What the stream does after an event.
#[derive(Debug)]
pub(crate) enum Step {
    Continue,
    /// The server ended this stream on purpose (`cancelled`): resume on the same member.
    Reconnect,
    /// A terminal error (e.g. `compacted`): yield it after what is ready, then end.
    Fail(Error),
}

/// The meaning of one kind of stream's events, and where it resumes.
pub(crate) trait Decoder: Send + 'static {
    type Item: Send + 'static;
    /// Path with query of the next connection, and the `Last-Event-ID` to send.
    fn request(&self) -> (String, Option<u64>);
    fn on_event(&mut self, event: SseEvent) -> Step;
    /// The connection is gone: forget whatever was not proven complete.
    fn on_disconnect(&mut self);
    /// The next item ready for the caller.
    fn pop(&mut self) -> Option<Self::Item>;
}

struct Conn {
    endpoint: usize,
    resp: reqwest::Response,
    parser: SseParser,
    events: VecDeque<SseEvent>,
}

impl Conn {
    /// The next event; `Ok(None)` when the server closed the stream.
    async fn next(&mut self, idle: Duration) -> Result<Option<SseEvent>, String> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Ok(Some(e));
            }
            let chunk = match tokio::time::timeout(idle, self.resp.chunk()).await {
                Err(_) => return Err(format!("nothing received for {idle:?}")),
                Ok(Err(e)) => return Err(describe(&e)),
                Ok(Ok(None)) => return Ok(None),
                Ok(Ok(Some(chunk))) => chunk,
            };
            let mut out = Vec::new();
            self.parser.feed(&chunk, &mut out).map_err(|e| e.to_string())?;
            self.events.extend(out);
        }
    }
}

pub(crate) struct Resuming<D: Decoder> {
    client: Client,
    decoder: D,
    conn: Option<Conn>,
    failed: Option<Error>,
    done: bool,
}

/// Errors worth another connection attempt: no answer, or a member that is overloaded or
/// without a leader. Anything else (a bad request, `compacted`) will not get better.
fn retriable(e: &Error) -> bool {
    match e {
        Error::Unreachable { .. } | Error::Unknown { .. } => true,
        Error::Server(s) => matches!(s.status, 429 | 500 | 502 | 503 | 504),
        _ => false,
    }
}

impl<D: Decoder> Resuming<D> {
    /// Opens the first connection (one try on each member), so errors that the request
    /// itself causes come back here, and the server has registered the stream on return.
    pub(crate) async fn open(client: Client, decoder: D) -> Result<Self> {
        let (path, last) = decoder.request();
        let (endpoint, resp) = client.open_stream(&path, last).await?;
        let conn = Conn { endpoint, resp, parser: SseParser::new(), events: VecDeque::new() };
        Ok(Resuming { client, decoder, conn: Some(conn), failed: None, done: false })
    }

    pub(crate) fn into_stream(self) -> BoxStream<'static, Result<D::Item>> {
        futures::stream::unfold(self, |mut s| async move {
            let item = s.next_item().await?;
            Some((item, s))
        })
        .boxed()
    }

    async fn reconnect(&mut self) -> Result<Conn> {
        let deadline = Instant::now() + self.client.inner.stream_retry;
        let mut backoff = Duration::from_millis(50);
        loop {
            let (path, last) = self.decoder.request();
            match self.client.open_stream(&path, last).await {
                Ok((endpoint, resp)) => {
                    return Ok(Conn { endpoint, resp, parser: SseParser::new(), events: VecDeque::new() })
                }
                Err(e) if !retriable(&e) || Instant::now() >= deadline => return Err(e),
                Err(_) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    async fn next_item(&mut self) -> Option<Result<D::Item>> {
        loop {
            if let Some(item) = self.decoder.pop() {
                return Some(Ok(item));
            }
            if let Some(e) = self.failed.take() {
                self.done = true;
                return Some(Err(e));
            }
            if self.done {
                return None;
            }
            if self.conn.is_none() {
                match self.reconnect().await {
                    Ok(conn) => self.conn = Some(conn),
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                }
            }
            let Some(conn) = self.conn.as_mut() else { continue };
            let endpoint = conn.endpoint;
            match conn.next(self.client.inner.stream_idle_timeout).await {
                Ok(Some(event)) => match self.decoder.on_event(event) {
                    Step::Continue => {}
                    Step::Reconnect => {
                        self.conn = None;
                        self.decoder.on_disconnect();
                    }
                    Step::Fail(e) => {
                        self.conn = None;
                        self.failed = Some(e);
                    }
                },
                Ok(None) | Err(_) => {
                    // A member that hangs up or goes silent is likely going away.
                    self.client.inner.endpoints.failed(endpoint);
                    self.conn = None;
                    self.decoder.on_disconnect();
                }
            }
        }
    }
}
