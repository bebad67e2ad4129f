//! Incident attachments: evidence files stored on disk by their SHA-256 (`garrison-blobs`),
//! with their metadata and timeline entries in the store.
//!
//! An upload is streamed to disk while it is hashed, never held in memory, and refused beyond
//! `max_attachment_bytes`; it is acknowledged only once both the file and its record are
//! durable. A download checks the file against its hash first, so evidence altered on disk
//! is reported rather than served, and it is always sent as an opaque download (never rendered
//! by a browser). Uploads, downloads and removals go to the audit log: chain of custody.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use futures_util::StreamExt;
use garrison_blobs::BlobError;
use garrison_model::{Role, Timestamp};
use garrison_store::{Attachment, IncidentRepo};
use tokio::io::AsyncReadExt;

use super::query::ApiQuery;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorCode, Problem};
use crate::routes::audit::record;
use crate::routes::extract::ApiPath;
use crate::routes::incidents::actor;
use crate::AppState;
pub use garrison_api::attachments::*;

/// Roles that add attachments (viewers only read; only admins remove).
const UPLOADERS: &[Role] = &[Role::Admin, Role::Analyst, Role::Responder];

fn blob_error(error: BlobError) -> ApiError {
    match error {
        BlobError::TooLarge { limit } => ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the attachment exceeds the limit of {limit} bytes"),
        ),
        BlobError::InvalidHash(_) => ApiError::invalid(error.to_string()),
        BlobError::Corrupt { .. } => {
            tracing::error!(error = %error, "attachment failed its integrity check");
            crate::telemetry::attachment_integrity_error();
            ApiError::new(ErrorCode::Internal, error.to_string())
        }
        BlobError::NotFound(sha) => ApiError::new(
            ErrorCode::Internal,
            format!("the content of attachment {sha} is missing from disk"),
        ),
        BlobError::Io { .. } => ApiError::internal(error),
    }
}

/// The `name` parameter, checked.
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

fn attachment_name(name: String) -> Result<String, ApiError> {
    let chars = name.chars().count();
    if name.trim().is_empty() || chars > 255 {
        return Err(ApiError::invalid(
            "parameter name: must have 1 to 255 characters",
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_control() || *c == '/' || *c == '\\')
    {
        return Err(ApiError::invalid(format!(
            "parameter name: {c:?} is not allowed in a file name"
        )));
    }
    Ok(name)
}

/// The declared media type, if it is a plausible one.
fn declared_type(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .ok()
        .filter(|t| t.len() <= 255 && t.contains('/') && !t.trim().is_empty())
        .ok_or_else(|| ApiError::invalid("header Content-Type: not a media type"))?;
    Ok(Some(text.trim().to_string()))
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
        principal.require_any(UPLOADERS)?;
        let name = attachment_name(name)?;
        let content_type = declared_type(&headers)?;
        // Before any byte is stored: the incident must exist here and still take changes.
        let incident = state
            .store()
            .incident(principal.tenant, &id)
            .await?
            .ok_or_else(|| {
                ApiError::new(ErrorCode::NotFound, format!("incident {id:?} not found"))
            })?;
        if let Some(into) = &incident.merged_into {
            return Err(ApiError::invalid(format!(
                "incident {id:?} was merged into {into:?}; attach to that one"
            )));
        }
        Ok((name, content_type))
    }
    .await;
    let (name, content_type) = match checked {
        Ok(checked) => checked,
        Err(error) => {
            drain(body).await;
            return Err(error);
        }
    };
    let store = state.store();
    let blobs = state.blobs();
    let mut writer = blobs
        .writer(principal.tenant, state.max_attachment_bytes())
        .await
        .map_err(blob_error)?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::invalid(format!(
                "the upload broke off after {} bytes: {e}",
                writer.size()
            ))
        })?;
        writer.write(&chunk).await.map_err(blob_error)?;
    }
    if writer.size() == 0 {
        return Err(ApiError::new(ErrorCode::EmptyBody, "the file is empty"));
    }
    // Storing the file and recording it are one step for removers (see remove).
    let guard = blobs.lock().await;
    let size = writer.size();
    let blob = writer.finish().await.map_err(blob_error)?;
    let attachment = Attachment {
        incident_id: id.clone(),
        sha256: blob.sha256.clone(),
        name,
        size: i64::try_from(size).unwrap_or(i64::MAX),
        content_type,
        uploaded_by: actor(&principal).user,
        created: Timestamp::now(),
    };
    let (stored, created) = match store.add_attachment(principal.tenant, &attachment).await {
        Ok(result) => result,
        Err(e) => {
            // Not recorded: the file goes unless a record holds the same content.
            let held = store
                .attachment_holders(principal.tenant, &blob.sha256)
                .await
                .unwrap_or(1);
            if held == 0 {
                let _ = blobs.remove(principal.tenant, &blob.sha256).await;
            }
            return Err(e.into());
        }
    };
    drop(guard);
    record(
        &state,
        &principal,
        "incident.attachment.add",
        &id,
        serde_json::json!({"sha256": stored.sha256, "name": stored.name, "size": stored.size, "new": created}),
    )
    .await;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(AttachmentView::of(&stored))).into_response())
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
    let store = state.store();
    if store.incident(principal.tenant, &id).await?.is_none() {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("incident {id:?} not found"),
        ));
    }
    let attachments = store.attachments(principal.tenant, &id).await?;
    Ok(Json(AttachmentList {
        attachments: attachments.iter().map(AttachmentView::of).collect(),
    }))
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
    let sha = garrison_blobs::normalize_hash(&sha256).map_err(blob_error)?;
    let attachment = state
        .store()
        .attachment(principal.tenant, &id, &sha)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotFound,
                format!("incident {id:?} has no attachment {sha}"),
            )
        })?;
    let (file, size) = state
        .blobs()
        .open_verified(principal.tenant, &sha)
        .await
        .map_err(blob_error)?;
    record(
        &state,
        &principal,
        "incident.attachment.download",
        &id,
        serde_json::json!({"sha256": sha, "name": attachment.name}),
    )
    .await;
    let digest = hex::decode(&sha).map_err(ApiError::internal)?;
    let repr_digest = format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(digest)
    );
    let chunks = futures_util::stream::unfold(file, |mut file| async move {
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
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    headers.insert(header::CONTENT_DISPOSITION, disposition(&attachment.name));
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
    principal.require_admin()?;
    let sha = garrison_blobs::normalize_hash(&sha256).map_err(blob_error)?;
    let blobs = state.blobs();
    let guard = blobs.lock().await;
    let still_held = state
        .store()
        .remove_attachment(
            principal.tenant,
            &id,
            &sha,
            &actor(&principal).user,
            Timestamp::now(),
        )
        .await?;
    if !still_held {
        blobs
            .remove(principal.tenant, &sha)
            .await
            .map_err(blob_error)?;
    }
    drop(guard);
    record(
        &state,
        &principal,
        "incident.attachment.remove",
        &id,
        serde_json::json!({"sha256": sha, "file_removed": !still_held}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The name parameter as a request gives it: parsed, then checked.
    fn named(query: Option<String>) -> Result<String, ApiError> {
        let params: UploadParams =
            crate::routes::query::parse_query(query.as_deref().unwrap_or_default())?;
        attachment_name(params.name)
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
