//! One table of error codes behind every problem+json answer (RFC 9457).
//!
//! A code is stable: clients and scripts may match on it. The message says what and where.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use garrison_store::StoreError;

macro_rules! error_codes {
    ($($variant:ident => ($name:literal, $status:ident, $kind:literal, $doc:literal)),* $(,)?) => {
        /// Every error the API can answer with.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum ErrorCode { $($variant),* }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];
            pub fn name(self) -> &'static str { match self { $(ErrorCode::$variant => $name),* } }
            pub fn status(self) -> StatusCode { match self { $(ErrorCode::$variant => StatusCode::$status),* } }
            /// `auth`, `invalid_request` or `system`: what kind of fix it needs.
            pub fn kind(self) -> &'static str { match self { $(ErrorCode::$variant => $kind),* } }
            pub fn description(self) -> &'static str { match self { $(ErrorCode::$variant => $doc),* } }
        }
    };
}

error_codes! {
    MissingAuthorization => ("missing_authorization", UNAUTHORIZED, "auth", "No `Authorization: Bearer <token>` header was sent."),
    InvalidToken => ("invalid_token", UNAUTHORIZED, "auth", "The token is unknown, revoked or expired."),
    InvalidCredentials => ("invalid_credentials", UNAUTHORIZED, "auth", "The tenant, user name or password is wrong, or the account is disabled."),
    Forbidden => ("forbidden", FORBIDDEN, "auth", "The token is valid but its roles or kind do not allow this action."),
    NotFound => ("not_found", NOT_FOUND, "invalid_request", "No such object in this tenant."),
    Conflict => ("conflict", CONFLICT, "invalid_request", "An object with that name already exists."),
    InvalidRequest => ("invalid_request", BAD_REQUEST, "invalid_request", "A parameter or body field is missing or malformed."),
    InvalidEvents => ("invalid_events", BAD_REQUEST, "invalid_request", "No record of the batch could be decoded; `errors` lists each one."),
    EmptyBody => ("empty_body", BAD_REQUEST, "invalid_request", "The request had no data."),
    RequestTimeout => ("request_timeout", REQUEST_TIMEOUT, "invalid_request", "The request body stopped arriving for longer than `body_timeout`; nothing was done."),
    PayloadTooLarge => ("payload_too_large", PAYLOAD_TOO_LARGE, "invalid_request", "The body (after decompression) exceeds the size limit."),
    MethodNotAllowed => ("method_not_allowed", METHOD_NOT_ALLOWED, "invalid_request", "The path exists but does not take this method."),
    TooManyAttempts => ("too_many_attempts", TOO_MANY_REQUESTS, "auth", "Too many failed sign-ins for this account: it is locked for the `Retry-After` seconds."),
    Busy => ("busy", SERVICE_UNAVAILABLE, "system", "The write path is saturated. Nothing was stored; retry after the `Retry-After` seconds."),
    Unavailable => ("unavailable", SERVICE_UNAVAILABLE, "system", "Storage cannot take this now (the disk is full or below its free-space watermark, an I/O error, the database locked by another process). Nothing was changed; retry after the `Retry-After` seconds."),
    Internal => ("internal", INTERNAL_SERVER_ERROR, "system", "An unexpected error; the log has details."),
}

pub use garrison_api::error::Problem;

/// Whether a body read failed because the client paused past `body_timeout` (the listener's
/// `TimeoutBody`), looking through the framework's wrapping.
pub fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if e.downcast_ref::<tower_http::timeout::TimeoutError>()
            .is_some()
        {
            return true;
        }
        current = e.source();
    }
    false
}

/// `Retry-After` for storage faults: long enough not to hammer a full disk, short enough
/// that senders resume soon after it clears.
pub const UNAVAILABLE_RETRY_SECS: u64 = 5;

#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub detail: String,
    pub errors: Vec<serde_json::Value>,
    /// Seconds for `Retry-After`, when the client should come back later.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        ApiError {
            code,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, detail)
    }

    pub fn internal(error: impl std::fmt::Display) -> Self {
        // The detail stays generic: internals (paths, SQL) are for the log, not the client.
        tracing::error!(error = %error, "internal error");
        Self::new(ErrorCode::Internal, "internal error; see the service log")
    }

    /// 503 with `Retry-After`: a storage fault the client should wait out. The reason is
    /// generic ("the disk is full"); the caller logs the error itself.
    pub fn unavailable(reason: impl std::fmt::Display) -> Self {
        let mut answer = Self::new(ErrorCode::Unavailable, format!("{reason}; retry later"));
        answer.retry_after = Some(UNAVAILABLE_RETRY_SECS);
        answer
    }

    pub fn with_errors(mut self, errors: Vec<serde_json::Value>) -> Self {
        self.errors = errors;
        self
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound { what } => {
                ApiError::new(ErrorCode::NotFound, format!("{what} not found"))
            }
            StoreError::Conflict { what } => {
                ApiError::new(ErrorCode::Conflict, format!("{what} already exists"))
            }
            StoreError::Invalid { what, reason } => {
                ApiError::invalid(format!("invalid {what}: {reason}"))
            }
            other => match other.transient_reason() {
                Some(reason) => {
                    tracing::warn!(error = %other, "storage unavailable: {reason}");
                    ApiError::unavailable(reason)
                }
                None => ApiError::internal(other),
            },
        }
    }
}

impl From<garrison_app::AppError> for ApiError {
    fn from(error: garrison_app::AppError) -> Self {
        use garrison_app::AppError;
        match error {
            AppError::Forbidden(detail) => ApiError::forbidden(detail),
            AppError::NotFound(what) => {
                ApiError::new(ErrorCode::NotFound, format!("{what} not found"))
            }
            AppError::Conflict(detail) => ApiError::new(ErrorCode::Conflict, detail),
            AppError::Invalid(detail) => ApiError::invalid(detail),
            AppError::InvalidWithErrors { message, errors } => {
                ApiError::invalid(message).with_errors(errors)
            }
            AppError::Internal(detail) => ApiError::internal(detail),
            AppError::Unauthenticated(detail) => ApiError::new(ErrorCode::InvalidToken, detail),
            AppError::BadCredentials(detail) => {
                ApiError::new(ErrorCode::InvalidCredentials, detail)
            }
            AppError::Locked { retry_after } => {
                let mut error = ApiError::new(ErrorCode::TooManyAttempts, locked_text(retry_after));
                error.retry_after = Some(ceil_secs(retry_after));
                error
            }
            AppError::TooLarge(detail) => ApiError::new(ErrorCode::PayloadTooLarge, detail),
            AppError::Empty(detail) => ApiError::new(ErrorCode::EmptyBody, detail),
            AppError::Absent(detail) => ApiError::new(ErrorCode::NotFound, detail),
            AppError::Damaged(detail) => ApiError::new(ErrorCode::Internal, detail),
            AppError::Unavailable(reason) => ApiError::unavailable(reason),
        }
    }
}

impl From<garrison_pipeline::PipelineError> for ApiError {
    fn from(error: garrison_pipeline::PipelineError) -> Self {
        match error {
            garrison_pipeline::PipelineError::Busy { reason } => ApiError::new(
                ErrorCode::Busy,
                format!("service busy ({reason}); retry later"),
            ),
            garrison_pipeline::PipelineError::Unavailable { reason } => {
                ApiError::unavailable(reason)
            }
            garrison_pipeline::PipelineError::Store(store) => ApiError::from(store),
            other => ApiError::internal(other),
        }
    }
}

/// A problem+json answer with the status it is sent with (for errors the framework produced
/// with a status of its own, e.g. 415, which keep that status).
pub fn problem_with_status(status: StatusCode, code: ErrorCode, detail: String) -> Response {
    let body = Problem {
        kind: format!("urn:garrison:error:{}", code.name()),
        title: status.canonical_reason().unwrap_or("error").to_string(),
        status: status.as_u16(),
        detail,
        code: code.name().to_string(),
        errors: Vec::new(),
    };
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

fn locked_text(retry_after: std::time::Duration) -> String {
    format!(
        "too many failed sign-ins for this account; try again in {} s",
        ceil_secs(retry_after)
    )
}

/// Whole seconds, rounded up (at least 1): a client that waits `Retry-After` must find the
/// lock gone, not a few hundred milliseconds left of it.
fn ceil_secs(duration: std::time::Duration) -> u64 {
    duration.as_millis().div_ceil(1000).max(1) as u64
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.code.status();
        let body = Problem {
            kind: format!("urn:garrison:error:{}", self.code.name()),
            title: status.canonical_reason().unwrap_or("error").to_string(),
            status: status.as_u16(),
            detail: self.detail,
            code: self.code.name().to_string(),
            errors: self.errors,
        };
        let mut response = (status, axum::Json(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        let retry_after = match (self.retry_after, self.code) {
            (Some(seconds), _) => Some(seconds.max(1)),
            (None, ErrorCode::Busy) => Some(1),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if matches!(
            self.code,
            ErrorCode::MissingAuthorization | ErrorCode::InvalidToken
        ) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_unique_and_snake_case() {
        let mut names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.name()).collect();
        assert!(names
            .iter()
            .all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_')));
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }
}
