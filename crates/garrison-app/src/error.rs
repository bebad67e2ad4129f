//! The errors of an operation. Each door maps them to its own form (problem+json, exit codes);
//! the wording says what and where, and never leaks internals.

use garrison_store::StoreError;

pub type Result<T, E = AppError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The actor's roles or kind do not allow this.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A parameter or field is missing or malformed.
    #[error("{0}")]
    Invalid(String),
    /// Something below failed; the detail is for the log.
    #[error("internal error: {0}")]
    Internal(String),
    /// A credential carried by the request itself (an approval link, a webhook secret) is
    /// unknown, used, expired or wrong; one wording for all, so nothing can be probed.
    #[error("{0}")]
    Unauthenticated(String),
    /// A login's tenant, user name or password is wrong, or the account is disabled.
    #[error("{0}")]
    BadCredentials(String),
    /// Too many failed sign-ins: the account is locked for `retry_after`.
    #[error("too many failed sign-ins; try again in {} s", retry_after.as_millis().div_ceil(1000).max(1))]
    Locked { retry_after: std::time::Duration },
    /// The data sent exceeds its size limit.
    #[error("{0}")]
    TooLarge(String),
    /// The data sent is empty where content is required.
    #[error("{0}")]
    Empty(String),
    /// Something absent, when "{what} not found" would not say it (`incident "x" has no
    /// attachment ...`).
    #[error("{0}")]
    Absent(String),
    /// Stored evidence no longer matches its hash or is missing: unlike `Internal`, the detail
    /// is shown, since it names no internals and the caller must know the evidence is bad.
    #[error("{0}")]
    Damaged(String),
    /// Storage cannot take this now (the database busy or locked by another process, a full
    /// disk, an I/O error): nothing was changed; the caller should retry later.
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
    /// A rule or playbook that does not compile, with one error per place.
    #[error("{message}")]
    InvalidWithErrors {
        message: String,
        errors: Vec<serde_json::Value>,
    },
}

impl AppError {
    pub fn invalid(detail: impl Into<String>) -> AppError {
        AppError::Invalid(detail.into())
    }

    pub fn forbidden(detail: impl Into<String>) -> AppError {
        AppError::Forbidden(detail.into())
    }

    pub fn internal(error: impl std::fmt::Display) -> AppError {
        AppError::Internal(error.to_string())
    }
}

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound { what } => AppError::NotFound(what),
            StoreError::Conflict { what } => AppError::Conflict(format!("{what} already exists")),
            StoreError::Invalid { what, reason } => {
                AppError::Invalid(format!("invalid {what}: {reason}"))
            }
            other => match other.transient_reason() {
                Some(reason) => {
                    tracing::warn!(error = %other, "storage unavailable");
                    AppError::Unavailable(reason.to_string())
                }
                None => AppError::Internal(other.to_string()),
            },
        }
    }
}
