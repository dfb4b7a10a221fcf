use serde::{Deserialize, Serialize};

/// The machine-readable error codes of the HTTP contract; each maps to one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    InvalidPath,
    InvalidRequest,
    NotFound,
    AlreadyExists,
    VersionConflict,
    /// Proclaim or similar by an election candidate that does not lead.
    NotLeader,
    NotEmpty,
    EphemeralParent,
    LeaseNotFound,
    TooLarge,
    Compacted,
    FutureRevision,
    Timeout,
    TooManyRequests,
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidPath => "invalid_path",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::NotFound => "not_found",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::VersionConflict => "version_conflict",
            ErrorCode::NotLeader => "not_leader",
            ErrorCode::NotEmpty => "not_empty",
            ErrorCode::EphemeralParent => "ephemeral_parent",
            ErrorCode::LeaseNotFound => "lease_not_found",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Compacted => "compacted",
            ErrorCode::FutureRevision => "future_revision",
            ErrorCode::Timeout => "timeout",
            ErrorCode::TooManyRequests => "too_many_requests",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// The HTTP status of DESIGN §6 for this code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidPath
            | ErrorCode::InvalidRequest
            | ErrorCode::EphemeralParent
            | ErrorCode::FutureRevision => 400,
            ErrorCode::NotFound | ErrorCode::LeaseNotFound => 404,
            ErrorCode::Timeout => 408,
            ErrorCode::AlreadyExists
            | ErrorCode::VersionConflict
            | ErrorCode::NotLeader
            | ErrorCode::NotEmpty => 409,
            ErrorCode::Compacted => 410,
            ErrorCode::TooLarge => 413,
            ErrorCode::TooManyRequests => 429,
            ErrorCode::Internal => 500,
            ErrorCode::Unavailable => 503,
        }
    }
}

/// An error as the contract reports it: `{code, message}` plus the fields that make it
/// actionable (the limit that was exceeded, the oldest revision still available).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// For `too_large`: the limit that was exceeded.
    pub limit: Option<u64>,
    /// For `compacted`: the oldest revision still readable.
    pub compact_revision: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into(), limit: None, compact_revision: None }
    }
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }
    pub fn not_found(path: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("node {path} does not exist"))
    }
    pub fn lease_not_found(id: u64) -> Self {
        Self::new(
            ErrorCode::LeaseNotFound,
            format!("lease {id} does not exist (it expired, was revoked, or was never granted)"),
        )
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }
    pub fn too_large(what: &str, limit: u64) -> Self {
        ApiError {
            limit: Some(limit),
            ..Self::new(ErrorCode::TooLarge, format!("{what} exceeds the limit of {limit}"))
        }
    }
    pub fn compacted(requested: u64, compact_revision: u64) -> Self {
        ApiError {
            compact_revision: Some(compact_revision),
            ..Self::new(
                ErrorCode::Compacted,
                format!(
                    "revision {requested} has been compacted; the oldest available revision is \
                     {compact_revision}"
                ),
            )
        }
    }
    pub fn http_status(&self) -> u16 {
        self.code.http_status()
    }
}
