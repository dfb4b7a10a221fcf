//! Leader election on the server's election queue (`/v1/elections/{name}`), through a
//! [`Session`]: a candidacy is bound to the session's lease, so a leader that dies steps
//! down when its lease ends.
//!
//! As with locks, the server keeps one candidacy per lease and election: campaigning again
//! with the same session (after an unknown outcome, say) answers the same candidacy, and a
//! campaign whose request is dropped while it waits is withdrawn by the server.

use std::collections::VecDeque;
use std::time::Duration;

use cairn_api::Header;
use futures::stream::BoxStream;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::client::{encode_component, Call, Client, Wait};
use crate::error::{Error, Result};
use crate::lock::millis;
use crate::session::Session;
use crate::sse::SseEvent;
use crate::stream::{Decoder, Resuming, Step};
use crate::watch::{parse_data, parse_id, CancelledJson};

/// The current leader of an election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderInfo {
    pub key: String,
    pub path: String,
    /// Increases with every new leader: a fencing token for what the leader does.
    pub term: u64,
    /// `None` only for an entry someone made by hand through `/v1/nodes`.
    pub lease: Option<u64>,
    pub value: String,
}

/// Proof of having won a campaign: what `proclaim` and `resign` need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leadership {
    pub name: String,
    pub key: String,
    pub path: String,
    pub term: u64,
    pub lease: u64,
    pub value: String,
    /// The header of the campaign's answer.
    pub header: Header,
}

/// One item of an observer: the leader (or none) as of `revision`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderEvent {
    pub revision: u64,
    pub leader: Option<LeaderInfo>,
}

/// Leader changes (and changes of the leader's value), first the state when it opened.
pub type ObserveStream = BoxStream<'static, Result<LeaderEvent>>;

#[derive(Deserialize)]
struct LeaderJson {
    key: String,
    path: String,
    term: u64,
    #[serde(default)]
    lease: Option<u64>,
    #[serde(default)]
    value: Option<String>,
}

impl From<LeaderJson> for LeaderInfo {
    fn from(l: LeaderJson) -> LeaderInfo {
        LeaderInfo {
            key: l.key,
            path: l.path,
            term: l.term,
            lease: l.lease,
            value: l.value.unwrap_or_default(),
        }
    }
}

#[derive(Deserialize)]
struct CampaignAnswer {
    header: Header,
    name: String,
    key: String,
    path: String,
    term: u64,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Deserialize)]
struct LeaderAnswer {
    leader: Option<LeaderJson>,
}

#[derive(Deserialize)]
struct ResignAnswer {
    revision: u64,
}

#[derive(Deserialize)]
struct LeaderEventJson {
    #[serde(default)]
    revision: Option<u64>,
    leader: Option<LeaderJson>,
}

fn election_url(name: &str) -> Result<String> {
    if name.is_empty() {
        return Err(Error::InvalidArgument("an election name must not be empty".into()));
    }
    Ok(format!("/v1/elections/{}", encode_component(name)))
}

impl Client {
    /// The current leader of an election, if any.
    pub async fn election_leader(&self, name: &str) -> Result<Option<LeaderInfo>> {
        let a: LeaderAnswer = self.call_json(&Call::get(election_url(name)?)).await?;
        Ok(a.leader.map(LeaderInfo::from))
    }

    /// Follows an election's leader; resumes after lost connections like a watch. On
    /// return the server has registered the observer.
    pub async fn observe_election(&self, name: &str) -> Result<ObserveStream> {
        let decoder = ObserveDecoder::new(format!("{}/observe", election_url(name)?));
        Ok(Resuming::open(self.clone(), decoder).await?.into_stream())
    }
}

/// One election, campaigned in on behalf of a session.
#[derive(Debug, Clone)]
pub struct Election {
    session: Session,
    name: String,
}

impl Election {
    pub fn new(session: &Session, name: impl Into<String>) -> Election {
        Election { session: session.clone(), name: name.into() }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits to become leader with `value`: at most `timeout` (then an error with
    /// [`Error::is_timeout`], and the candidacy is withdrawn), or with `None` until elected
    /// or the session is lost. A session that already has a candidacy here gets it back,
    /// with the value it was made with.
    pub async fn campaign(&self, value: impl Into<String>, timeout: Option<Duration>) -> Result<Leadership> {
        let lease = self.session.lease_id();
        if self.session.is_lost() {
            return Err(Error::SessionLost { lease });
        }
        let mut body = json!({ "lease": lease, "value": value.into() });
        let wait = match timeout {
            Some(t) => {
                body["timeout_ms"] = json!(millis(t));
                Wait::Extra(t)
            }
            None => Wait::Unbounded,
        };
        let url = format!("{}/campaign", election_url(&self.name)?);
        let call = Call::write(Method::POST, url).json_body(&body).wait(wait);
        let a: CampaignAnswer = tokio::select! {
            r = self.session.client().call_json(&call) => r?,
            () = self.session.lost() => return Err(Error::SessionLost { lease }),
        };
        Ok(Leadership {
            name: a.name,
            key: a.key,
            path: a.path,
            term: a.term,
            lease,
            value: a.value.unwrap_or_default(),
            header: a.header,
        })
    }

    /// Changes the leader's value; 409 `not_leader` (see [`Error::is_not_leader`]) when
    /// this leadership is over.
    pub async fn proclaim(&self, leadership: &Leadership, value: impl Into<String>) -> Result<LeaderInfo> {
        let url = format!("{}/leader", election_url(&self.name)?);
        let body = json!({ "key": leadership.key, "value": value.into() });
        let a: LeaderAnswer =
            self.session.client().call_json(&Call::write(Method::PUT, url).json_body(&body)).await?;
        a.leader.map(LeaderInfo::from).ok_or_else(|| Error::Protocol("proclaim answered no leader".into()))
    }

    pub async fn leader(&self) -> Result<Option<LeaderInfo>> {
        self.session.client().election_leader(&self.name).await
    }

    pub async fn observe(&self) -> Result<ObserveStream> {
        self.session.client().observe_election(&self.name).await
    }

    /// Steps down (or withdraws); answers the revision of the change.
    pub async fn resign(&self, leadership: Leadership) -> Result<u64> {
        let url = format!("{}/resign", election_url(&self.name)?);
        let body = json!({ "key": leadership.key });
        let a: ResignAnswer =
            self.session.client().call_json(&Call::write(Method::POST, url).json_body(&body)).await?;
        Ok(a.revision)
    }
}

/// Leader events, resumed by revision. A server that starts a resumed stream with the
/// current state may repeat the last state delivered; that repeat is dropped.
pub(crate) struct ObserveDecoder {
    url: String,
    last: Option<u64>,
    last_leader: Option<Option<LeaderInfo>>,
    resumed: bool,
    ready: VecDeque<LeaderEvent>,
}

impl ObserveDecoder {
    pub(crate) fn new(url: String) -> ObserveDecoder {
        ObserveDecoder { url, last: None, last_leader: None, resumed: false, ready: VecDeque::new() }
    }

    fn advance(&mut self, revision: u64) {
        self.last = Some(self.last.map_or(revision, |l| l.max(revision)));
    }

    fn step(&mut self, event: SseEvent) -> Result<Step> {
        let id = parse_id(&event)?;
        match event.event.as_str() {
            "leader" => {
                let e: LeaderEventJson = parse_data(&event)?;
                let revision = id
                    .or(e.revision)
                    .ok_or_else(|| Error::Protocol("a leader event without a revision".into()))?;
                if self.last.is_some_and(|l| revision <= l) {
                    return Ok(Step::Continue);
                }
                let leader = e.leader.map(LeaderInfo::from);
                let repeat = self.resumed && self.last_leader.as_ref() == Some(&leader);
                self.resumed = false;
                self.advance(revision);
                if !repeat {
                    self.last_leader = Some(leader.clone());
                    self.ready.push_back(LeaderEvent { revision, leader });
                }
            }
            "progress" => {
                if let Some(r) = id {
                    self.advance(r);
                }
            }
            "cancelled" => {
                let c: CancelledJson = serde_json::from_str(&event.data).unwrap_or_default();
                if let Some(e) = c.terminal_error() {
                    return Ok(Step::Fail(e));
                }
                if let (Some(_), Some(r)) = (self.last, c.revision) {
                    self.advance(r);
                }
                return Ok(Step::Reconnect);
            }
            _ => {}
        }
        Ok(Step::Continue)
    }
}

impl Decoder for ObserveDecoder {
    type Item = LeaderEvent;

    fn request(&self) -> (String, Option<u64>) {
        (self.url.clone(), self.last)
    }

    fn on_event(&mut self, event: SseEvent) -> Step {
        self.step(event).unwrap_or_else(Step::Fail)
    }

    fn on_disconnect(&mut self) {
        self.resumed = true;
    }

    fn pop(&mut self) -> Option<LeaderEvent> {
        self.ready.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader_event(revision: u64, key: Option<&str>, value: &str) -> SseEvent {
        let leader = match key {
            Some(k) => format!(
                r#"{{"key":"{k}","path":"/_cairn/elections/e/{k}","term":3,"lease":7,"value":"{value}"}}"#
            ),
            None => "null".into(),
        };
        SseEvent {
            event: "leader".into(),
            data: format!(r#"{{"name":"e","revision":{revision},"leader":{leader}}}"#),
            id: Some(revision.to_string()),
        }
    }

    fn drain(d: &mut ObserveDecoder) -> Vec<(u64, Option<String>)> {
        std::iter::from_fn(|| d.pop()).map(|e| (e.revision, e.leader.map(|l| l.value))).collect()
    }

    #[test]
    fn observes_resumes_and_drops_repeats() {
        let mut d = ObserveDecoder::new("/v1/elections/e/observe".into());
        assert_eq!(d.request(), ("/v1/elections/e/observe".into(), None));
        d.on_event(leader_event(4, Some("01"), "a"));
        d.on_event(leader_event(6, Some("01"), "b"));
        assert_eq!(drain(&mut d), [(4, Some("a".into())), (6, Some("b".into()))]);
        d.on_event(SseEvent {
            event: "progress".into(),
            data: r#"{"revision":9}"#.into(),
            id: Some("9".into()),
        });
        d.on_disconnect();
        assert_eq!(d.request().1, Some(9));
        // The resumed stream opens with the unchanged state at a newer revision: dropped.
        d.on_event(leader_event(11, Some("01"), "b"));
        assert!(drain(&mut d).is_empty());
        d.on_event(leader_event(12, None, ""));
        d.on_event(leader_event(12, None, ""));
        assert_eq!(drain(&mut d), [(12, None)]);
        assert!(matches!(
            d.on_event(SseEvent { event: "leader".into(), data: "{".into(), id: Some("13".into()) }),
            Step::Fail(Error::Protocol(_))
        ));
    }

    #[test]
    fn reads_the_answers() {
        let a: CampaignAnswer = serde_json::from_str(
            r#"{"header":{"revision":5,"raft_term":1,"leader":1,"member":2},"name":"e","key":"0000000001",
                "path":"/_cairn/elections/e/0000000001","term":2,"lease":7,"value":"me"}"#,
        )
        .unwrap();
        assert_eq!((a.term, a.value.as_deref()), (2, Some("me")));
        let l: LeaderAnswer = serde_json::from_str(
            r#"{"header":{"revision":5,"raft_term":1,"leader":null,"member":2},"name":"e","leader":null}"#,
        )
        .unwrap();
        assert!(l.leader.is_none());
        assert_eq!(election_url("a/b").unwrap(), "/v1/elections/a%2Fb");
    }
}
