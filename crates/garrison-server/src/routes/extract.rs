//! Extractors whose refusal is a problem+json 400 that says what and where, like every other
//! error: JSON bodies ([`ApiJson`]) and path parameters ([`ApiPath`]). axum's own `Json` and
//! `Path` answer 415/422/400 in plain text.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The body parsed as JSON into `T`.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(refusal(rejection)),
        }
    }
}

fn refusal(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::invalid("body: send JSON with `Content-Type: application/json`")
        }
        // `body_text` names the field and the place (line and column).
        JsonRejection::JsonDataError(e) => ApiError::invalid(format!("body: {}", e.body_text())),
        JsonRejection::JsonSyntaxError(e) => ApiError::invalid(format!("body: {}", e.body_text())),
        // Over the body limit: 413, as for every other body.
        JsonRejection::BytesRejection(e)
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
        {
            ApiError::new(
                crate::error::ErrorCode::PayloadTooLarge,
                format!("body: {}", e.body_text()),
            )
        }
        JsonRejection::BytesRejection(e)
            if crate::error::is_body_timeout(&e)
                || e.body_text().contains("within the designated timeout") =>
        {
            ApiError::new(
                crate::error::ErrorCode::RequestTimeout,
                format!("body: {}", e.body_text()),
            )
        }
        JsonRejection::BytesRejection(e) => ApiError::invalid(format!("body: {}", e.body_text())),
        other => ApiError::invalid(format!("body: {}", other.body_text())),
    }
}

/// The path parameters parsed into `T`.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(ApiError::invalid(format!(
                "path: {}",
                rejection.body_text()
            ))),
        }
    }
}
