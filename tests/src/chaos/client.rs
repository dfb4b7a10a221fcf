//! How a chaos client calls a member and classifies the answer: what it learned about
//! whether the call took effect is what the histories record.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::Value;

use crate::history::Outcome;

/// Timeout of one client call during a run: long enough for a failover (the server retries
/// a forwarded call for a few seconds), short enough to keep operations flowing.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(4);

pub fn client() -> Client {
    Client::builder()
        .timeout(CALL_TIMEOUT)
        .connect_timeout(Duration::from_millis(300))
        .pool_max_idle_per_host(2)
        .build()
        .expect("http client")
}

/// One answer.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Any HTTP answer other than 503.
    Status(u16, Value),
    /// Not connected: nothing was sent.
    Refused,
    /// 503, a timeout, or a connection lost after sending: it may or may not take effect.
    Unknown(String),
}

impl Answer {
    /// The outcome of a write that answered `answer`, when `ok` says which statuses mean
    /// it took effect (any other status is a definite refusal).
    pub fn write_outcome(&self, ok: &[u16]) -> Outcome {
        match self {
            Answer::Status(s, _) if ok.contains(s) => Outcome::Ok,
            Answer::Status(..) | Answer::Refused => Outcome::Fail,
            Answer::Unknown(_) => Outcome::Unknown,
        }
    }
}

/// Clock of a run: nanoseconds since its start.
#[derive(Debug, Clone, Copy)]
pub struct RunClock(pub Instant);

impl RunClock {
    pub fn now(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
}

pub fn call(http: &Client, addr: SocketAddr, method: &str, path: &str, body: Option<String>) -> Answer {
    let Ok(method) = method.parse::<reqwest::Method>() else {
        return Answer::Refused;
    };
    let mut req = http.request(method, format!("http://{addr}{path}"));
    if let Some(b) = body {
        req = req.body(b);
    }
    match req.send() {
        Ok(resp) => {
            let status = resp.status().as_u16();
            match resp.bytes() {
                Ok(bytes) => {
                    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                    if status == 503 {
                        Answer::Unknown(v.to_string())
                    } else {
                        Answer::Status(status, v)
                    }
                }
                Err(e) => Answer::Unknown(e.to_string()),
            }
        }
        Err(e) if e.is_connect() => Answer::Refused,
        Err(e) => Answer::Unknown(e.to_string()),
    }
}
