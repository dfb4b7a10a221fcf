//! A blocking reader of server-sent events (watch and observe streams), one background
//! thread per stream.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use serde_json::Value;

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct Sse {
    pub event: String,
    pub id: Option<u64>,
    pub data: Value,
}

/// A watch stream read by a background thread; `None` marks the end of the stream.
pub struct Watch {
    rx: mpsc::Receiver<Option<Sse>>,
    resume: Option<mpsc::Sender<()>>,
}

/// Opens `target` (e.g. `/v1/watch/a?recursive`) on `addr`; with `paused`, nothing is read
/// from the socket until [`Watch::resume`], so the server sees a slow consumer.
pub fn open_watch(
    addr: SocketAddr,
    target: &str,
    last_event_id: Option<u64>,
    paused: bool,
) -> Result<Watch, (u16, Value)> {
    let client = reqwest::blocking::Client::builder()
        .timeout(None::<Duration>)
        .build()
        .map_err(|e| (0, Value::String(e.to_string())))?;
    let mut req = client.get(format!("http://{addr}{target}"));
    if let Some(id) = last_event_id {
        req = req.header("Last-Event-ID", id.to_string());
    }
    let resp = req.send().map_err(|e| (0, Value::String(e.to_string())))?;
    if resp.status().as_u16() != 200 {
        let status = resp.status().as_u16();
        return Err((status, resp.json().unwrap_or(Value::Null)));
    }
    let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(content_type.starts_with("text/event-stream"), "not an SSE stream: {content_type}");
    let (tx, rx) = mpsc::channel();
    let (resume_tx, resume_rx) = mpsc::channel::<()>();
    thread::spawn(move || {
        if paused {
            let _ = resume_rx.recv();
        }
        let mut reader = BufReader::new(resp);
        let (mut event, mut id, mut data) = (String::new(), None, String::new());
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let l = line.trim_end_matches(['\r', '\n']);
            if l.is_empty() {
                if !data.is_empty() || !event.is_empty() {
                    let parsed = serde_json::from_str(&data).unwrap_or(Value::Null);
                    let e = Sse { event: std::mem::take(&mut event), id: id.take(), data: parsed };
                    data.clear();
                    if tx.send(Some(e)).is_err() {
                        return;
                    }
                }
            } else if let Some(v) = l.strip_prefix("event:") {
                event = v.trim().to_owned();
            } else if let Some(v) = l.strip_prefix("id:") {
                id = v.trim().parse().ok();
            } else if let Some(v) = l.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
        let _ = tx.send(None);
    });
    Ok(Watch { rx, resume: paused.then_some(resume_tx) })
}

impl Watch {
    pub fn next(&self, timeout: Duration) -> Option<Sse> {
        self.rx.recv_timeout(timeout).ok().flatten()
    }

    pub fn resume(&mut self) {
        if let Some(tx) = self.resume.take() {
            let _ = tx.send(());
        }
    }
}
