//! Event ingest: Garrison's own JSON/NDJSON route and the Splunk HEC-compatible routes.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use garrison_ingest::hec::{self, HecDecoded, RawParams};
use garrison_ingest::{decompress_body, BodyError, Record};
use garrison_model::{Role, Timestamp};
use garrison_pipeline::SourceContext;
use garrison_store::EventRow;
use garrison_store::TokenKind;

use crate::auth::authenticate;
use crate::error::{ApiError, ErrorCode, Problem};
use crate::routes::query::ApiQuery;
use crate::AppState;
pub use garrison_api::ingest::*;

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query.and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    })
}

/// The source context of an ingest request: an ingest token's own source, or for an API
/// token with a writing role, the `source` query parameter (default `api`).
async fn ingest_context(
    state: &AppState,
    headers: &HeaderMap,
    asked: Option<String>,
) -> Result<SourceContext, ApiError> {
    let token = authenticate(state, headers).await?;
    let source = match token.kind {
        TokenKind::Ingest => {
            let own = token.source.clone().unwrap_or_else(|| "ingest".into());
            // An ingest token sends for its own source only: a different `source` is refused,
            // not silently replaced (the sender would believe its events went elsewhere).
            if let Some(asked) = asked.filter(|a| *a != own) {
                return Err(ApiError::forbidden(format!(
                    "this ingest token sends events for source {own:?}, not {asked:?}; use a token of that source or leave source out"
                )));
            }
            own
        }
        TokenKind::Api | TokenKind::Session => {
            if !token
                .roles
                .iter()
                .any(|r| matches!(r, Role::Admin | Role::Analyst | Role::Responder))
            {
                return Err(ApiError::forbidden(
                    "sending events needs an ingest token or the admin, analyst or responder role",
                ));
            }
            asked.unwrap_or_else(|| "api".into())
        }
    };
    state.source_context(token.tenant_id, &source).await
}

fn body_error(error: BodyError) -> ApiError {
    match error {
        BodyError::TooLarge { .. } => ApiError::new(ErrorCode::PayloadTooLarge, error.to_string()),
        BodyError::Empty => ApiError::new(ErrorCode::EmptyBody, error.to_string()),
        other => ApiError::invalid(other.to_string()),
    }
}

fn content_encoding(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
}

/// Decoding is CPU work measured in milliseconds per batch: callers run it in
/// `spawn_blocking`, off the async workers.
fn to_rows(context: &SourceContext, records: Vec<Record>) -> Vec<EventRow> {
    let received = Timestamp::now();
    records
        .into_iter()
        .map(|record| context.row(record, received))
        .collect()
}

/// Bodies at least this large are decoded on several cores at once (the ack waits for the
/// decoding, so this is latency, not only throughput).
const PARALLEL_DECODE_BYTES: usize = 256 * 1024;

/// Decompresses and decodes a JSON body into rows, cutting a large body of many values at
/// safe points (`split_top_level`) and decoding the parts on the blocking pool at once.
/// Returns the rows, each bad record's error (index and line as in the whole body) and the
/// number of records seen.
async fn decode_in_parallel(
    body: Bytes,
    encoding: Option<String>,
    limits: garrison_ingest::Limits,
    context: SourceContext,
) -> Result<(Vec<EventRow>, Vec<RecordErrorView>, usize), ApiError> {
    let (body, cuts) = tokio::task::spawn_blocking(move || {
        let plain =
            match decompress_body(&body, encoding.as_deref(), &limits).map_err(body_error)? {
                std::borrow::Cow::Borrowed(_) => body,
                std::borrow::Cow::Owned(bytes) => Bytes::from(bytes),
            };
        let parts = if plain.len() >= PARALLEL_DECODE_BYTES {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(8)
        } else {
            1
        };
        let cuts = garrison_ingest::split_top_level(&plain, parts);
        Ok::<_, ApiError>((plain, cuts))
    })
    .await
    .map_err(ApiError::internal)??;
    let mut tasks = Vec::with_capacity(cuts.len());
    for (i, (start, first_line)) in cuts.iter().enumerate() {
        let end = cuts.get(i + 1).map_or(body.len(), |next| next.0);
        let part = body.slice(*start..end);
        let (context, first_line) = (context.clone(), *first_line);
        tasks.push(tokio::task::spawn_blocking(move || {
            match garrison_ingest::decode_json_from_line(&part, &limits, first_line) {
                Ok(decoded) => Ok((
                    to_rows(&context, decoded.records),
                    decoded.errors,
                    decoded.total,
                )),
                // A part of blanks only: nothing in it, which is no error for the whole.
                Err(BodyError::Empty) => Ok((Vec::new(), Vec::new(), 0)),
                Err(other) => Err(body_error(other)),
            }
        }));
    }
    let (mut rows, mut errors, mut total) = (Vec::new(), Vec::new(), 0usize);
    for task in tasks {
        let (part_rows, part_errors, part_total) = task.await.map_err(ApiError::internal)??;
        rows.extend(part_rows);
        errors.extend(part_errors.into_iter().map(|e| RecordErrorView {
            index: e.index + total,
            line: e.line,
            reason: e.reason,
        }));
        total += part_total;
    }
    if total == 0 {
        return Err(ApiError::new(
            ErrorCode::EmptyBody,
            "the body holds no events",
        ));
    }
    Ok((rows, errors, total))
}

/// Send events: one JSON object, a JSON array of objects, or NDJSON; gzip bodies welcome.
///
/// A 200 answer means the accepted records are on disk. Bad records are listed with their
/// index and reason; the good ones beside them are kept. Records with an `id` (or `event_id`)
/// are stored once however often the batch is retried.
#[utoipa::path(
    post,
    path = "/api/v1/ingest/events",
    tag = "ingest",
    params(IngestParams),
    request_body(
        description = "A JSON object, a JSON array of objects, or NDJSON (one object per line); Content-Encoding: gzip or deflate allowed",
        content(
            (serde_json::Value = "application/json"),
            (String = "application/x-ndjson"),
        )
    ),
    responses(
        (status = 200, description = "Stored (possibly with some records rejected)", body = IngestResponse),
        (status = 400, description = "Nothing decodable", body = Problem),
        (status = 401, description = "No or invalid token", body = Problem),
        (status = 403, description = "The token may not send events, or an ingest token named another source", body = Problem),
        (status = 413, description = "Body too large", body = Problem),
        (status = 503, description = "Busy; retry after Retry-After", body = Problem),
    ),
    security(("bearer" = []))
)]
pub async fn ingest_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<IngestParams>,
    body: Bytes,
) -> Result<Json<IngestResponse>, ApiError> {
    let context = ingest_context(&state, &headers, params.source).await?;
    let limits = *state.limits();
    let encoding = content_encoding(&headers).map(str::to_string);
    let (mut events, errors, total) = decode_in_parallel(body, encoding, limits, context).await?;
    garrison_pipeline::telemetry::events_received("http", total as u64);
    let duplicates = garrison_pipeline::drop_duplicates(&mut events, "http");
    if !errors.is_empty() {
        garrison_pipeline::telemetry::events_rejected("http", "invalid", errors.len() as u64);
    }
    if events.is_empty() {
        if errors.is_empty() {
            return Err(ApiError::new(
                ErrorCode::EmptyBody,
                "the body holds no events",
            ));
        }
        let detail = format!("none of the {} records could be decoded", errors.len());
        let listed = errors
            .iter()
            .map(|e| serde_json::to_value(e).unwrap_or_default())
            .collect();
        return Err(ApiError::new(ErrorCode::InvalidEvents, detail).with_errors(listed));
    }
    let log_position = state.ingestor().accept(&events, "http").await?;
    tracing::debug!(tenant = %events[0].tenant_id, events = events.len(), log_position, first_event = %events[0].id, "events acknowledged");
    if duplicates > 0 {
        // Counted in the source's health beside the resends the store drops.
        use garrison_store::SourceRepo;
        let first = &events[0];
        if let Err(e) = state
            .store()
            .add_source_duplicates(
                first.tenant_id,
                &first.source,
                first.received,
                duplicates as u64,
            )
            .await
        {
            tracing::warn!(error = %e, "duplicates not counted in source health");
        }
    }
    Ok(Json(IngestResponse {
        accepted: events.len(),
        rejected: errors.len(),
        duplicates,
        errors,
    }))
}

/// The channel of a HEC request (`X-Splunk-Request-Channel` or `?channel=`), for indexer
/// acknowledgement. A channel that is not a GUID is refused as Splunk does (code 11).
fn hec_channel(headers: &HeaderMap, query: Option<&str>) -> Result<Option<String>, InvalidChannel> {
    let channel = headers
        .get("x-splunk-request-channel")
        .map(|v| v.to_str().unwrap_or("").to_string())
        .or_else(|| query_param(query, "channel"));
    match channel {
        None => Ok(None),
        Some(c) if hec::is_valid_channel(&c) => Ok(Some(c)),
        Some(_) => Err(InvalidChannel),
    }
}

/// A request channel that is not a GUID.
struct InvalidChannel;

impl IntoResponse for InvalidChannel {
    fn into_response(self) -> Response {
        hec_answer(
            StatusCode::BAD_REQUEST,
            hec::INVALID_CHANNEL.0,
            hec::INVALID_CHANNEL.1,
            None,
        )
    }
}

fn hec_answer(status: StatusCode, code: u32, text: &str, invalid: Option<usize>) -> Response {
    (
        status,
        Json(HecAnswer {
            text: text.to_string(),
            code,
            invalid_event_number: invalid,
            ack_id: None,
        }),
    )
        .into_response()
}

/// Maps an API error to HEC's codes, so HEC clients react as they would with Splunk.
fn hec_error(error: ApiError) -> Response {
    match error.code {
        ErrorCode::MissingAuthorization => {
            hec_answer(StatusCode::UNAUTHORIZED, 2, "Token is required", None)
        }
        ErrorCode::InvalidToken => hec_answer(StatusCode::FORBIDDEN, 4, "Invalid token", None),
        ErrorCode::Forbidden => hec_answer(StatusCode::FORBIDDEN, 4, "Invalid token", None),
        ErrorCode::EmptyBody => hec_answer(StatusCode::BAD_REQUEST, 5, "No data", None),
        ErrorCode::Busy | ErrorCode::Unavailable => {
            let mut response =
                hec_answer(StatusCode::SERVICE_UNAVAILABLE, 9, "Server is busy", None);
            let seconds = error.retry_after.unwrap_or(1);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
            response
        }
        ErrorCode::PayloadTooLarge => hec_answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            6,
            "Invalid data format",
            None,
        ),
        ErrorCode::InvalidRequest | ErrorCode::InvalidEvents => {
            hec_answer(StatusCode::BAD_REQUEST, 6, "Invalid data format", None)
        }
        _ => hec_answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            8,
            "Internal server error",
            None,
        ),
    }
}

async fn hec_ingest(
    state: AppState,
    headers: HeaderMap,
    query: Option<String>,
    body: Bytes,
    raw: bool,
) -> Response {
    let context = match ingest_context(&state, &headers, None).await {
        Ok(context) => context,
        Err(e) => return hec_error(e),
    };
    let channel = match hec_channel(&headers, query.as_deref()) {
        Ok(channel) => channel,
        Err(invalid) => return invalid.into_response(),
    };
    let raw_time = query_param(query.as_deref(), "time");
    if raw
        && raw_time
            .as_deref()
            .is_some_and(|t| garrison_ingest::time::parse_str(t).is_none())
    {
        return hec_answer(
            StatusCode::BAD_REQUEST,
            hec::INVALID_DATA_FORMAT.0,
            hec::INVALID_DATA_FORMAT.1,
            None,
        );
    }
    let tenant = context.tenant;
    let limits = *state.limits();
    let encoding = content_encoding(&headers).map(str::to_string);
    let decoded = tokio::task::spawn_blocking(move || {
        let body = decompress_body(&body, encoding.as_deref(), &limits).map_err(body_error)?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::new(ErrorCode::EmptyBody, "no data"));
        }
        let decoded: HecDecoded = if raw {
            let params = RawParams {
                host: query_param(query.as_deref(), "host"),
                source: query_param(query.as_deref(), "source"),
                sourcetype: query_param(query.as_deref(), "sourcetype"),
                index: query_param(query.as_deref(), "index"),
                time: raw_time,
            };
            hec::decode_raw(&body, &params, &limits).map_err(body_error)?
        } else {
            hec::decode_events(&body, &limits).map_err(body_error)?
        };
        let first_error = decoded
            .errors
            .first()
            .map(|e| (e.code, e.text, e.event_index));
        let rejected = decoded.errors.len();
        Ok::<_, ApiError>((to_rows(&context, decoded.records), first_error, rejected))
    })
    .await;
    let (events, first_error, rejected) = match decoded {
        Ok(Ok(decoded)) => decoded,
        Ok(Err(e)) => return hec_error(e),
        Err(e) => return hec_error(ApiError::internal(e)),
    };
    let protocol = if raw { "hec_raw" } else { "hec" };
    garrison_pipeline::telemetry::events_received(protocol, (events.len() + rejected) as u64);
    if !events.is_empty() {
        match state.ingestor().accept(&events, protocol).await {
            Ok(_) => {}
            Err(e) => return hec_error(ApiError::from(e)),
        }
    }
    match first_error {
        // Like Splunk: the events before the bad one are indexed; the answer names the bad one.
        Some((code, text, index)) => {
            garrison_pipeline::telemetry::events_rejected(protocol, "invalid", rejected as u64);
            hec_answer(StatusCode::BAD_REQUEST, code, text, Some(index))
        }
        None if events.is_empty() => hec_answer(StatusCode::BAD_REQUEST, 5, "No data", None),
        None => {
            // Our success already means durable, so an ack id is true as soon as it is issued.
            let ack_id = channel.map(|c| state.hec_acks().issue(tenant, &c));
            (
                StatusCode::OK,
                Json(HecAnswer {
                    text: "Success".into(),
                    code: 0,
                    invalid_event_number: None,
                    ack_id,
                }),
            )
                .into_response()
        }
    }
}

/// Splunk HEC indexer acknowledgement: which ack ids of this channel are durable.
#[utoipa::path(
    post,
    path = "/services/collector/ack",
    tag = "splunk-hec",
    params(HecParams),
    request_body = HecAckRequest,
    responses(
        (status = 200, description = "Status of each ack id", body = HecAckAnswer),
        (status = 400, description = "No channel, a channel that is not a GUID, or a malformed body (code 10/11/6)", body = HecAnswer),
        (status = 401, description = "Token is required (code 2)", body = HecAnswer),
    ),
    security(("splunk" = []))
)]
pub async fn hec_ack(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let context = match ingest_context(&state, &headers, None).await {
        Ok(context) => context,
        Err(e) => return hec_error(e),
    };
    let channel = match hec_channel(&headers, query.as_deref()) {
        Ok(Some(channel)) => channel,
        Ok(None) => {
            return hec_answer(StatusCode::BAD_REQUEST, 10, "Data channel is missing", None)
        }
        Err(invalid) => return invalid.into_response(),
    };
    let Ok(request) = serde_json::from_slice::<HecAckRequest>(&body) else {
        return hec_answer(StatusCode::BAD_REQUEST, 6, "Invalid data format", None);
    };
    let acks = request
        .acks
        .into_iter()
        .map(|id| {
            (
                id.to_string(),
                state.hec_acks().is_acked(context.tenant, &channel, id),
            )
        })
        .collect();
    (StatusCode::OK, Json(HecAckAnswer { acks })).into_response()
}

macro_rules! hec_route {
    ($name:ident, $path:literal, $raw:expr, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(
            post,
            path = $path,
            tag = "splunk-hec",
            params(HecParams),
            request_body(content = String, description = "HEC event envelopes (or raw lines)"),
            responses(
                (status = 200, description = "Success: the events are durable", body = HecAnswer),
                (status = 400, description = "No data, invalid data format (an unreadable time too), a missing or blank event, nested indexed fields, or a channel that is not a GUID (code 5, 6, 11, 12, 13, 15)", body = HecAnswer),
                (status = 401, description = "Token is required (code 2)", body = HecAnswer),
                (status = 403, description = "Invalid token (code 4)", body = HecAnswer),
                (status = 503, description = "Server is busy (code 9)", body = HecAnswer),
            ),
            security(("splunk" = []))
        )]
        pub async fn $name(
            State(state): State<AppState>,
            headers: HeaderMap,
            RawQuery(query): RawQuery,
            body: Bytes,
        ) -> Response {
            hec_ingest(state, headers, query, body, $raw).await
        }
    };
}

hec_route!(
    hec_event,
    "/services/collector/event",
    false,
    "Splunk HEC: JSON event envelopes (`Authorization: Splunk <ingest token>`)."
);
hec_route!(
    hec_collector,
    "/services/collector",
    false,
    "Splunk HEC: same as `/services/collector/event`."
);
hec_route!(
    hec_event_v1,
    "/services/collector/event/1.0",
    false,
    "Splunk HEC: same as `/services/collector/event`."
);
hec_route!(hec_raw, "/services/collector/raw", true, "Splunk HEC raw: one event per line; `host`, `source`, `sourcetype`, `index`, `time` from the query.");
hec_route!(
    hec_raw_v1,
    "/services/collector/raw/1.0",
    true,
    "Splunk HEC raw: same as `/services/collector/raw`."
);

/// Splunk HEC health check.
#[utoipa::path(
    get,
    path = "/services/collector/health",
    tag = "splunk-hec",
    responses((status = 200, description = "HEC is healthy (code 17)", body = HecAnswer),
              (status = 503, description = "HEC is unhealthy: the write path is saturated", body = HecAnswer))
)]
pub async fn hec_health(State(state): State<AppState>) -> Response {
    if state.is_saturated() {
        return hec_answer(StatusCode::SERVICE_UNAVAILABLE, 9, "Server is busy", None);
    }
    hec_answer(StatusCode::OK, 17, "HEC is healthy", None)
}
