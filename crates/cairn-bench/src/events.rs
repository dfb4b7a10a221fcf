//! Reading a watch stream of either system: Cairn's Server-Sent Events or the
//! newline-delimited JSON of etcd's `/v3/watch` gateway.

use std::time::Instant;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};

use crate::cluster::System;

/// What a stream said.
pub enum Message {
    /// The server has registered the watch (etcd says so in-band; Cairn before its headers).
    Ready,
    Change {
        delete: bool,
        key: String,
        value: String,
    },
}

/// Opens a watch of `key` (or, with `prefix`, everything below `key/`).
pub async fn open(
    http: &reqwest::Client,
    system: System,
    endpoint: &str,
    key: &str,
    prefix: bool,
) -> anyhow::Result<reqwest::Response> {
    let resp = match system {
        System::Cairn => {
            let q = if prefix { "?recursive" } else { "" };
            http.get(format!("http://{endpoint}/v1/watch{key}{q}")).send().await?
        }
        System::Etcd => {
            let mut create =
                json!({ "key": B64.encode(if prefix { format!("{key}/") } else { key.to_owned() }) });
            if prefix {
                create["range_end"] = json!(B64.encode(format!("{key}0")));
            }
            http.post(format!("http://{endpoint}/v3/watch"))
                .body(json!({ "create_request": create }).to_string())
                .send()
                .await?
        }
    };
    anyhow::ensure!(resp.status().is_success(), "watch {key}: {}", resp.status());
    Ok(resp)
}

/// Calls `on` with each message and the time its bytes arrived, until the stream ends.
pub async fn follow(
    system: System,
    resp: reqwest::Response,
    mut on: impl FnMut(Message, Instant),
) -> anyhow::Result<()> {
    if system == System::Cairn {
        on(Message::Ready, Instant::now());
    }
    blocks(system, resp, |text, now| {
        match system {
            System::Cairn => {
                let kind = text.lines().find_map(|l| l.strip_prefix("event: ")).unwrap_or("");
                let Some(data) = text.lines().find_map(|l| l.strip_prefix("data: ")) else { return true };
                let v: Value = serde_json::from_str(data).unwrap_or(Value::Null);
                if let (Some(k), Some(val)) = (v["node"]["path"].as_str(), v["node"]["value"].as_str()) {
                    on(
                        Message::Change {
                            delete: kind == "delete",
                            key: k.to_owned(),
                            value: val.to_owned(),
                        },
                        now,
                    );
                }
            }
            System::Etcd => {
                let v: Value = serde_json::from_str(text.trim()).unwrap_or(Value::Null);
                if v["result"]["created"] == true {
                    on(Message::Ready, now);
                }
                for e in v["result"]["events"].as_array().into_iter().flatten() {
                    let dec = |f: &str| {
                        e["kv"][f]
                            .as_str()
                            .and_then(|s| B64.decode(s).ok())
                            .map(|b| String::from_utf8_lossy(&b).into_owned())
                    };
                    if let Some(key) = dec("key") {
                        let delete = e["type"] == "DELETE";
                        on(Message::Change { delete, key, value: dec("value").unwrap_or_default() }, now);
                    }
                }
            }
        }
        true
    })
    .await
}

/// Splits a stream into its messages (an SSE event for Cairn, a JSON line for etcd) and
/// calls `on` with each one's text and the time its bytes arrived, until the stream ends
/// or `on` says stop.
pub async fn blocks(
    system: System,
    mut resp: reqwest::Response,
    mut on: impl FnMut(&str, Instant) -> bool,
) -> anyhow::Result<()> {
    let sep: &[u8] = if system == System::Cairn { b"\n\n" } else { b"\n" };
    let mut buf: Vec<u8> = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let now = Instant::now();
        buf.extend_from_slice(&chunk);
        while let Some(pos) = buf.windows(sep.len()).position(|w| w == sep) {
            let block: Vec<u8> = buf.drain(..pos + sep.len()).collect();
            if !on(&String::from_utf8_lossy(&block), now) {
                return Ok(());
            }
        }
    }
    Ok(())
}
