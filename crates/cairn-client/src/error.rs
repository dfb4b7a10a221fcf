//! One error type for every call. What a caller most needs to know is whether a failed
//! write may still have happened: [`Error::is_outcome_unknown`] says so, and every other
//! variant is a definite failure (nothing was applied).

use cairn_api::{ErrorCode, Header};
use serde::Deserialize;

/// Every error code of the contract, so a code string can be turned back into [`ErrorCode`].
const KNOWN_CODES: [ErrorCode; 16] = [
    ErrorCode::InvalidPath,
    ErrorCode::InvalidRequest,
    ErrorCode::NotFound,
    ErrorCode::AlreadyExists,
    ErrorCode::VersionConflict,
    ErrorCode::NotLeader,
    ErrorCode::NotEmpty,
    ErrorCode::EphemeralParent,
    ErrorCode::LeaseNotFound,
    ErrorCode::TooLarge,
    ErrorCode::Compacted,
    ErrorCode::FutureRevision,
    ErrorCode::Timeout,
    ErrorCode::TooManyRequests,
    ErrorCode::Unavailable,
    ErrorCode::Internal,
];

/// What a 503 says when a write reached the leader but no answer came back.
const UNKNOWN_OUTCOME_MARK: &str = "may or may not have been applied";

/// An error answer of the server: `{code, message, ...}` with its HTTP status.
///
/// `code` stays a string because the server may grow codes this client does not know yet;
/// [`ServerError::error_code`] types the known ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    pub status: u16,
    pub code: String,
    pub message: String,
    /// For `too_large`: the limit that was exceeded.
    pub limit: Option<u64>,
    /// For `compacted`: the oldest revision still readable.
    pub compact_revision: Option<u64>,
    /// The answering member's header (every JSON answer carries one).
    pub header: Option<Header>,
}

impl ServerError {
    /// The code as the contract's enum, if it is one of its codes.
    pub fn error_code(&self) -> Option<ErrorCode> {
        KNOWN_CODES.into_iter().find(|c| c.as_str() == self.code)
    }

    /// Reads an error body; a body that is not the contract's JSON still gives an error
    /// that keeps the status and (the start of) the text.
    pub(crate) fn from_body(status: u16, body: &[u8]) -> ServerError {
        #[derive(Deserialize)]
        struct Body {
            code: String,
            #[serde(default)]
            message: String,
            #[serde(default)]
            limit: Option<u64>,
            #[serde(default)]
            compact_revision: Option<u64>,
            #[serde(default)]
            header: Option<Header>,
        }
        match serde_json::from_slice::<Body>(body) {
            Ok(b) => ServerError {
                status,
                code: b.code,
                message: b.message,
                limit: b.limit,
                compact_revision: b.compact_revision,
                header: b.header,
            },
            Err(_) => {
                let text: String = String::from_utf8_lossy(body).chars().take(200).collect();
                ServerError {
                    status,
                    code: format!("http_{status}"),
                    message: text,
                    limit: None,
                    compact_revision: None,
                    header: None,
                }
            }
        }
    }

    /// A 503 that says the write reached the leader and may have been applied.
    pub(crate) fn says_outcome_unknown(&self) -> bool {
        self.status == 503 && self.message.contains(UNKNOWN_OUTCOME_MARK)
    }
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an error; definite unless it is the 503 of an unknown
    /// outcome, which is reported as [`Error::Unknown`] instead.
    #[error("server error {0}")]
    Server(Box<ServerError>),
    /// The request was sent but no answer came (timeout, connection lost, or the server said
    /// so): a write may or may not have been applied. Read before retrying it.
    #[error("outcome unknown: {reason}")]
    Unknown { reason: String },
    /// No member could be reached and nothing was sent (or, for a read, every attempt
    /// failed). Nothing was applied.
    #[error("no member could be reached: {reason}")]
    Unreachable { reason: String },
    /// An answer that does not follow the contract.
    #[error("unexpected answer: {0}")]
    Protocol(String),
    /// An argument refused before anything was sent (a bad path, an empty endpoint list).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The session's lease is gone (expired, revoked, or not kept alive in time).
    #[error("session lost: lease {lease} is no longer kept alive")]
    SessionLost { lease: u64 },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True when a write may or may not have been applied: record the outcome as unknown.
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, Error::Unknown { .. })
    }

    /// The server's error, if the server answered with one.
    pub fn server(&self) -> Option<&ServerError> {
        match self {
            Error::Server(e) => Some(e),
            _ => None,
        }
    }

    /// The server's error code string (`"not_found"`, `"not_leader"`, ...).
    pub fn code(&self) -> Option<&str> {
        self.server().map(|e| e.code.as_str())
    }

    /// The HTTP status of a server error.
    pub fn status(&self) -> Option<u16> {
        self.server().map(|e| e.status)
    }

    pub fn is_code(&self, code: ErrorCode) -> bool {
        self.code() == Some(code.as_str())
    }

    pub fn is_not_found(&self) -> bool {
        self.is_code(ErrorCode::NotFound)
    }

    pub fn is_lease_not_found(&self) -> bool {
        self.is_code(ErrorCode::LeaseNotFound)
    }

    /// A blocking call (lock, campaign) gave up: the wait is over and nothing is held.
    pub fn is_timeout(&self) -> bool {
        self.is_code(ErrorCode::Timeout)
    }

    pub fn is_compacted(&self) -> bool {
        self.is_code(ErrorCode::Compacted)
    }

    pub fn is_version_conflict(&self) -> bool {
        self.is_code(ErrorCode::VersionConflict)
    }

    pub fn is_already_exists(&self) -> bool {
        self.is_code(ErrorCode::AlreadyExists)
    }

    /// `proclaim` with a key that no longer leads.
    pub fn is_not_leader(&self) -> bool {
        self.is_code(ErrorCode::NotLeader)
    }

    /// For `compacted`: the oldest revision still readable.
    pub fn compact_revision(&self) -> Option<u64> {
        self.server().and_then(|e| e.compact_revision)
    }

    pub(crate) fn server_error(e: ServerError) -> Error {
        if e.says_outcome_unknown() {
            Error::Unknown { reason: e.to_string() }
        } else {
            Error::Server(Box::new(e))
        }
    }
}

/// A transport error with its causes, which `reqwest::Error`'s own `Display` leaves out.
pub(crate) fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_contract_error_body() {
        let body = br#"{"code":"compacted","message":"revision 3 has been compacted","compact_revision":20,
            "header":{"revision":30,"raft_term":2,"leader":1,"member":3}}"#;
        let e = ServerError::from_body(410, body);
        assert_eq!(e.error_code(), Some(ErrorCode::Compacted));
        assert_eq!(e.compact_revision, Some(20));
        assert_eq!(e.header.map(|h| (h.revision, h.member)), Some((30, 3)));
        let err = Error::server_error(e);
        assert!(err.is_compacted());
        assert_eq!(err.status(), Some(410));
        assert_eq!(err.compact_revision(), Some(20));
        assert!(!err.is_outcome_unknown());
    }

    #[test]
    fn unknown_codes_are_kept_as_strings() {
        let e =
            ServerError::from_body(409, br#"{"code":"brand_new","message":"a code from a newer server"}"#);
        assert_eq!(e.error_code(), None);
        let err = Error::server_error(e);
        assert_eq!(err.code(), Some("brand_new"));
        assert!(err.to_string().contains("409 brand_new"));
        let err = Error::server_error(ServerError::from_body(409, br#"{"code":"not_leader","message":"x"}"#));
        assert!(err.is_not_leader());
    }

    #[test]
    fn a_body_that_is_not_json_keeps_status_and_text() {
        let e = ServerError::from_body(502, b"Bad Gateway");
        assert_eq!((e.status, e.code.as_str(), e.message.as_str()), (502, "http_502", "Bad Gateway"));
    }

    #[test]
    fn only_the_unknown_outcome_503_is_unknown() {
        let unknown = ServerError::from_body(
            503,
            br#"{"code":"unavailable","message":"the leader did not answer (timeout): the write may or may not have been applied; read before retrying"}"#,
        );
        assert!(Error::server_error(unknown).is_outcome_unknown());
        let definite = ServerError::from_body(
            503,
            br#"{"code":"unavailable","message":"no leader is available (an election may be under way); retry shortly"}"#,
        );
        let err = Error::server_error(definite);
        assert!(!err.is_outcome_unknown());
        assert!(err.is_code(ErrorCode::Unavailable));
    }

    #[test]
    fn every_known_code_round_trips() {
        for c in KNOWN_CODES {
            let e =
                ServerError::from_body(c.http_status(), format!(r#"{{"code":"{}"}}"#, c.as_str()).as_bytes());
            assert_eq!(e.error_code(), Some(c));
        }
    }
}
