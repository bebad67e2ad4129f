//! Incident attachments: evidence files stored on disk by their SHA-256 (`garrison-blobs`),
//! with their metadata and timeline entries in the store.
//!
//! The rules (roles, checks, the records, the audit log) are operations of
//! `garrison_app::attachments`; these routes translate HTTP. An upload's body is handed to
//! the operation as a stream, so it goes to disk chunk by chunk and is never held in memory;
//! a refusal before it is read drains it first. A download is always sent as an opaque
//! download (never rendered by a browser), with its hash in `ETag` and `Repr-Digest`.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;

use super::query::ApiQuery;
use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::routes::extract::ApiPath;
use crate::AppState;
pub use garrison_api::attachments::*;

/// Most bytes of a refused upload read (and dropped) so the client can read the refusal.
const DRAIN_BYTES: usize = 64 * 1024 * 1024;

/// Reads and drops the body, up to [`DRAIN_BYTES`] or 10 seconds.
async fn drain(body: Body) {
    let mut stream = body.into_data_stream();
    let mut read = 0usize;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Some(Ok(chunk)) = stream.next().await {
            read += chunk.len();
            if read > DRAIN_BYTES {
                break;
            }
        }
    })
    .await;
}

/// Attach a file to an incident: the request body is the file (any media type), `name` its
/// name. The same content on the same incident is one attachment (200 with the first one);
/// new content answers 201.
#[utoipa::path(
    post,
    path = "/api/v1/incidents/{id}/attachments",
    tag = "incidents",
    params(("id" = String, Path, description = "Incident id"), UploadParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file"),
    responses(
        (status = 201, body = AttachmentView), (status = 200, body = AttachmentView),
        (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 413, body = Problem)),
    security(("bearer" = []))
)]
pub async fn upload(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    query: Result<ApiQuery<UploadParams>, ApiError>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // Every refusal before the upload is read drains (a bounded part of) the body first: a
    // client still sending its file then reads the answer, instead of a broken pipe.
    let checked = async {
        let ApiQuery(UploadParams { name }) = query?;
        // A header that is not text is no media type (the operation refuses it as such).
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or_default());
        Ok::<_, ApiError>(
            state
                .app()
                .check_upload(&principal.actor, &id, name, content_type)
                .await?,
        )
    }
    .await;
    let ticket = match checked {
        Ok(ticket) => ticket,
        Err(error) => {
            drain(body).await;
            return Err(error);
        }
    };
    let uploaded = state
        .app()
        .upload_attachment(&principal.actor, ticket, body.into_data_stream())
        .await?;
    let status = if uploaded.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(uploaded.attachment)).into_response())
}

/// The incident's attachments, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/incidents/{id}/attachments",
    tag = "incidents",
    params(("id" = String, Path, description = "Incident id")),
    responses((status = 200, body = AttachmentList), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<AttachmentList>, ApiError> {
    Ok(Json(
        state.app().list_attachments(&principal.actor, &id).await?,
    ))
}

/// Everything but RFC 5987's `attr-char` is percent-encoded in `filename*`.
const ATTR_CHAR: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `Content-Disposition` for a download: an ASCII fallback and the UTF-8 name (RFC 6266).
fn disposition(name: &str) -> HeaderValue {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._- ()[]".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded = percent_encoding::utf8_percent_encode(name, ATTR_CHAR).to_string();
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// Download an attachment. Its content is checked against its SHA-256 first: altered evidence
/// answers 500 and is not sent. The `Repr-Digest` header carries the hash (RFC 9530).
#[utoipa::path(
    get,
    path = "/api/v1/incidents/{id}/attachments/{sha256}",
    tag = "incidents",
    params(("id" = String, Path, description = "Incident id"), ("sha256" = String, Path, description = "The attachment's SHA-256")),
    responses(
        (status = 200, description = "The file", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, body = Problem), (status = 404, body = Problem), (status = 500, body = Problem)),
    security(("bearer" = []))
)]
pub async fn download(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, sha256)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let download = state
        .app()
        .open_attachment(&principal.actor, &id, &sha256)
        .await?;
    let sha = download.sha256;
    let digest = hex::decode(&sha).map_err(ApiError::internal)?;
    let repr_digest = format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(digest)
    );
    let chunks = futures_util::stream::unfold(download.file, |mut file| async move {
        let mut buffer = vec![0u8; 64 * 1024];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buffer)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    let mut response = Response::new(Body::from_stream(chunks));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(download.size));
    headers.insert(header::CONTENT_DISPOSITION, disposition(&download.name));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{sha}\"")) {
        headers.insert(header::ETAG, etag);
    }
    if let Ok(value) = HeaderValue::from_str(&repr_digest) {
        headers.insert("repr-digest", value);
    }
    Ok(response)
}

/// Remove an attachment from an incident (admins only). The file itself goes once no other
/// incident of the tenant holds the same content.
#[utoipa::path(
    delete,
    path = "/api/v1/incidents/{id}/attachments/{sha256}",
    tag = "incidents",
    params(("id" = String, Path, description = "Incident id"), ("sha256" = String, Path, description = "The attachment's SHA-256")),
    responses((status = 204, description = "Removed"), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn remove(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, sha256)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .app()
        .remove_attachment(&principal.actor, &id, &sha256)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The name parameter as a request gives it: parsed, then checked.
    fn named(query: Option<String>) -> Result<String, ApiError> {
        let params: UploadParams =
            crate::routes::query::parse_query(query.as_deref().unwrap_or_default())?;
        Ok(garrison_app::attachments::attachment_name(params.name)?)
    }
    use proptest::prelude::*;

    fn query(name: &str) -> Option<String> {
        Some(
            form_urlencoded::Serializer::new(String::new())
                .append_pair("name", name)
                .finish(),
        )
    }

    #[test]
    fn names_with_paths_or_controls_are_refused_with_the_reason() {
        for bad in ["", "  ", "../x", "a/b", "a\\b", "a\nb", "a\u{7f}b"] {
            let error = named(query(bad)).expect_err(bad);
            assert!(error.detail.contains("name"), "{bad:?}: {}", error.detail);
        }
        assert!(named(query(&"é".repeat(256))).is_err());
        assert!(named(None).is_err());
        assert!(named(Some("name=a&x=1".into())).is_err());
        assert_eq!(named(query("mail (1).eml")).expect("good"), "mail (1).eml");
    }

    proptest! {
        /// Any accepted name gives a valid `Content-Disposition` whose UTF-8 form decodes
        /// back to the name and whose ASCII fallback cannot break out of its quotes.
        #[test]
        fn accepted_names_give_a_faithful_disposition(name in "\\PC{1,80}") {
            if let Ok(name) = named(query(&name)) {
                let value = disposition(&name);
                let text = value.to_str().expect("visible ASCII");
                let (fallback, encoded) = text
                    .strip_prefix("attachment; filename=\"")
                    .and_then(|rest| rest.split_once("\"; filename*=UTF-8''"))
                    .expect("both forms");
                prop_assert!(!fallback.contains('"') && !fallback.contains('\\'));
                let decoded = percent_encoding::percent_decode_str(encoded)
                    .decode_utf8_lossy()
                    .into_owned();
                prop_assert_eq!(decoded, name);
            }
        }
    }
}
