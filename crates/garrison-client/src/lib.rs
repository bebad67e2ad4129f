//! A typed client of Garrison's HTTP API.
//!
//! Every request and answer is a type of `garrison-api`, the crate the server parses and
//! documents them with, so the client cannot drift from the contract. Errors keep the
//! service's problem+json answer (status, stable `code`, `detail`, per-record `errors`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), garrison_client::ClientError> {
//! let api = garrison_client::Client::new("http://127.0.0.1:8080", "gar_...")?;
//! let page = api.incidents(&Default::default()).await?;
//! # Ok(()) }
//! ```

use std::time::Duration;

pub use garrison_api as types;
use garrison_api::admin::{EventSearchParams, EventsPage};
use garrison_api::attachments::{AttachmentList, AttachmentView};
use garrison_api::detection::{
    AlertParams, AlertsPage, ImportParams as RuleImportParams, ImportRequest, ImportResult,
    ListRulesParams, RuleView, TestRequest, TestResult,
};
use garrison_api::error::Problem;
use garrison_api::incidents::{CommentBody, IncidentDetail, IncidentParams, IncidentsPage};
use garrison_api::indicators::{
    ImportParams as IndicatorImportParams, IndicatorImportResult, IndicatorsPage, ListParams,
};
use garrison_api::ingest::{IngestParams, IngestResponse};
use garrison_api::playbooks::{
    ApproveBody, CancelRequested, ImportBody, PlaybookBody, PlaybookDetail, PlaybookVersionView,
    ReplayBody, ReplayView, RunDetail, RunListParams, RunSummary, StartRunBody, SyncBody,
    SyncReport, ValidationReport,
};
use garrison_cases::SocMetrics;
use garrison_playbook::RunState;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use reqwest::Body;

/// What went wrong talking to the service.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0} is not a usable service address: {1}")]
    BadUrl(String, String),
    /// No answer: the cause in a few words (kept whole in `error`, not as a `source`, so an
    /// error chain printed on one line does not repeat it).
    #[error("cannot reach {url}: {}", reason(error))]
    Unreachable { url: String, error: reqwest::Error },
    /// The service answered with an error (problem+json).
    #[error("{}", problem_text(*.status, .problem))]
    Api {
        status: StatusCode,
        problem: Box<Problem>,
    },
    /// The write path is saturated: nothing was stored; send the same request again after
    /// `retry_after`.
    #[error("the service is busy; retry after {retry_after:?}")]
    Busy { retry_after: Duration },
    #[error("{url}: the answer is not what the API documents: {reason}")]
    Decode { url: String, reason: String },
}

/// What went wrong on the wire, in a few words (reqwest's own text repeats the URL and nests
/// the causes).
fn reason(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "no HTTP answer in time (is this the service's HTTP address?)".into();
    }
    // The innermost cause names the real problem: "Connection refused", "failed to lookup
    // address", "received corrupt message" (TLS to a plain-HTTP port).
    let mut cause: &dyn std::error::Error = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let text = cause.to_string();
    if error.is_connect() && text.contains("corrupt message") {
        return format!("{text} (https:// to a plain-HTTP port?)");
    }
    text
}

fn problem_text(status: StatusCode, problem: &Problem) -> String {
    let mut text = format!("{status}: {}", problem.detail);
    for e in &problem.errors {
        // Playbook problems carry `text`; batch records carry `reason` (with `index`/`at`).
        let line = e
            .get("text")
            .or_else(|| e.get("reason"))
            .and_then(|t| t.as_str());
        if let Some(line) = line {
            text.push_str("\n  ");
            text.push_str(line);
        }
    }
    text
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// The answer to a cancellation: done now, or stored until the running action call returns.
#[derive(Debug)]
pub enum CancelAnswer {
    Cancelled(RunState),
    Requested(CancelRequested),
}

/// One service and the token every request carries.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// An answer's body as the type the API documents for it.
async fn read_json<T: DeserializeOwned>(response: reqwest::Response) -> Result<T> {
    let url = response.url().to_string();
    let decode = |reason: String| ClientError::Decode {
        url: url.clone(),
        reason,
    };
    let bytes = response.bytes().await.map_err(|e| decode(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| decode(e.to_string()))
}

/// Percent-encodes one path segment (ids and names may hold `/`, `?` or spaces).
fn seg(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// How long to wait for a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for the next bytes of an answer (a rule test or an import may take a
/// while in total, but the service never goes this long without sending anything).
pub const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// No query string.
const NO_QUERY: &[(&str, &str)] = &[];

impl Client {
    /// A client of the service at `base_url` (`http://host:port`), authenticating with `token`.
    pub fn new(base_url: &str, token: &str) -> Result<Client> {
        let given = base_url.trim();
        let rest = given
            .strip_prefix("http://")
            .or_else(|| given.strip_prefix("https://"))
            .ok_or_else(|| {
                ClientError::BadUrl(
                    given.to_string(),
                    "it must start with http:// or https://".into(),
                )
            })?;
        if rest.trim_matches('/').is_empty() {
            return Err(ClientError::BadUrl(
                given.to_string(),
                "it names no host".into(),
            ));
        }
        let base = given.trim_end_matches('/').to_string();
        // reqwest is built without a default TLS provider; the process's own wins when it has
        // installed one (the CLI does), else ring's is installed once here.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            // A port that accepts but never answers HTTP (a syslog listener, a stuck proxy)
            // ends in an error, not a hang.
            .read_timeout(READ_TIMEOUT)
            .build()
            .map_err(|e| ClientError::BadUrl(base.clone(), e.to_string()))?;
        Ok(Client {
            http,
            base,
            token: token.to_string(),
        })
    }

    /// The service address, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.token)
    }

    /// Sends and checks the status: a problem+json answer becomes [`ClientError::Api`], a 503
    /// with `Retry-After` [`ClientError::Busy`].
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let response = request
            .send()
            .await
            .map_err(|error| ClientError::Unreachable {
                url: self.base.clone(),
                error,
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let url = response.url().to_string();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // Nothing was stored; the service says when to come back (1 s when it does not).
            let seconds = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(1);
            return Err(ClientError::Busy {
                retry_after: Duration::from_secs(seconds),
            });
        }
        let text = response.text().await.unwrap_or_default();
        let problem = serde_json::from_str::<Problem>(&text).unwrap_or_else(|_| Problem {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("error").into(),
            status: status.as_u16(),
            detail: if text.trim().is_empty() {
                format!("{url} answered without a problem body")
            } else {
                text.trim().chars().take(500).collect()
            },
            code: String::new(),
            errors: Vec::new(),
        });
        Err(ClientError::Api {
            status,
            problem: Box::new(problem),
        })
    }

    async fn json<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<T> {
        read_json(self.send(request).await?).await
    }

    async fn get<Q: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        query: &Q,
    ) -> Result<T> {
        self.json(self.request(Method::GET, path).query(query))
            .await
    }

    async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        self.json(self.request(Method::POST, path).json(body)).await
    }

    // ------------------------------------------------------------ events and ingest

    /// One page of the event search; `fields` are `field.NAME=VALUE` filters.
    pub async fn events(
        &self,
        params: &EventSearchParams,
        fields: &[(String, String)],
    ) -> Result<EventsPage> {
        let extra: Vec<(String, &str)> = fields
            .iter()
            .map(|(k, v)| (format!("field.{k}"), v.as_str()))
            .collect();
        self.json(
            self.request(Method::GET, "/events")
                .query(params)
                .query(&extra),
        )
        .await
    }

    /// Sends a batch of NDJSON events. A busy service answers [`ClientError::Busy`]: nothing
    /// was stored, the same batch may be sent again.
    pub async fn ingest_ndjson(
        &self,
        params: &IngestParams,
        body: impl Into<Body>,
    ) -> Result<IngestResponse> {
        self.json(
            self.request(Method::POST, "/ingest/events")
                .query(params)
                .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
                .body(body),
        )
        .await
    }

    // ------------------------------------------------------------ detection

    pub async fn rules(&self, params: &ListRulesParams) -> Result<Vec<RuleView>> {
        self.get("/rules", params).await
    }

    /// Imports rule texts (YAML files read by the caller).
    pub async fn import_rules(&self, request: &ImportRequest) -> Result<ImportResult> {
        self.post("/rules/import", request).await
    }

    /// Imports a zip archive of rules.
    pub async fn import_rules_zip(
        &self,
        params: &RuleImportParams,
        zip: Vec<u8>,
    ) -> Result<ImportResult> {
        self.json(
            self.request(Method::POST, "/rules/import")
                .query(params)
                .header(reqwest::header::CONTENT_TYPE, "application/zip")
                .body(zip),
        )
        .await
    }

    pub async fn set_rule_enabled(&self, id: &str, enabled: bool) -> Result<RuleView> {
        let verb = if enabled { "enable" } else { "disable" };
        self.post(
            &format!("/rules/{}/{verb}", seg(id)),
            &serde_json::json!({}),
        )
        .await
    }

    pub async fn test_rule(&self, id: &str, request: &TestRequest) -> Result<TestResult> {
        self.post(&format!("/rules/{}/test", seg(id)), request)
            .await
    }

    pub async fn alerts(&self, params: &AlertParams) -> Result<AlertsPage> {
        self.get("/alerts", params).await
    }

    pub async fn soc_metrics(
        &self,
        params: &garrison_api::incidents::MetricsParams,
    ) -> Result<SocMetrics> {
        self.get("/metrics/soc", params).await
    }

    // ------------------------------------------------------------ incidents

    pub async fn incidents(&self, params: &IncidentParams) -> Result<IncidentsPage> {
        self.get("/incidents", params).await
    }

    pub async fn incident(&self, id: &str) -> Result<IncidentDetail> {
        self.get(&format!("/incidents/{}", seg(id)), NO_QUERY).await
    }

    pub async fn comment(
        &self,
        id: &str,
        text: &str,
    ) -> Result<garrison_api::incidents::ActionResult> {
        self.post(
            &format!("/incidents/{}/comments", seg(id)),
            &CommentBody {
                text: text.to_string(),
            },
        )
        .await
    }

    /// Uploads an attachment; `size` is sent as `Content-Length` so the service can refuse an
    /// oversized file before reading it.
    pub async fn upload_attachment(
        &self,
        id: &str,
        name: &str,
        content_type: &str,
        size: u64,
        body: impl Into<Body>,
    ) -> Result<AttachmentView> {
        self.json(
            self.request(Method::POST, &format!("/incidents/{}/attachments", seg(id)))
                .query(&[("name", name)])
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .header(reqwest::header::CONTENT_LENGTH, size)
                .body(body),
        )
        .await
    }

    pub async fn attachments(&self, id: &str) -> Result<AttachmentList> {
        self.get(&format!("/incidents/{}/attachments", seg(id)), NO_QUERY)
            .await
    }

    /// Starts a download; read the content from the response as a stream.
    pub async fn download_attachment(&self, id: &str, sha256: &str) -> Result<reqwest::Response> {
        self.send(self.request(
            Method::GET,
            &format!("/incidents/{}/attachments/{}", seg(id), seg(sha256)),
        ))
        .await
    }

    // ------------------------------------------------------------ threat intel

    pub async fn import_indicators(
        &self,
        params: &IndicatorImportParams,
        bytes: Vec<u8>,
    ) -> Result<IndicatorImportResult> {
        self.json(
            self.request(Method::POST, "/indicators/import")
                .query(params)
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(bytes),
        )
        .await
    }

    pub async fn retro_hunt(
        &self,
        request: &garrison_api::indicators::RetroHuntRequest,
    ) -> Result<garrison_api::indicators::RetroHuntResult> {
        self.post("/indicators/retro-hunt", request).await
    }

    pub async fn indicators(&self, params: &ListParams) -> Result<IndicatorsPage> {
        self.get("/indicators", params).await
    }

    // ------------------------------------------------------------ playbooks and runs

    pub async fn validate_playbook(&self, body: &PlaybookBody) -> Result<ValidationReport> {
        self.post("/playbooks/validate", body).await
    }

    pub async fn save_playbook(&self, body: &PlaybookBody) -> Result<PlaybookVersionView> {
        self.post("/playbooks", body).await
    }

    pub async fn playbook(&self, name: &str) -> Result<PlaybookDetail> {
        self.get(&format!("/playbooks/{}", seg(name)), NO_QUERY)
            .await
    }

    pub async fn import_playbooks(&self, body: &ImportBody) -> Result<Vec<PlaybookVersionView>> {
        self.post("/playbooks/import", body).await
    }

    pub async fn sync_playbooks(&self, body: &SyncBody) -> Result<SyncReport> {
        self.post("/playbooks/sync", body).await
    }

    pub async fn start_run(&self, playbook: &str, body: &StartRunBody) -> Result<RunState> {
        self.post(&format!("/playbooks/{}/runs", seg(playbook)), body)
            .await
    }

    pub async fn runs(&self, params: &RunListParams) -> Result<Vec<RunSummary>> {
        self.get("/runs", params).await
    }

    pub async fn run(&self, id: &str) -> Result<RunDetail> {
        self.get(&format!("/runs/{}", seg(id)), NO_QUERY).await
    }

    pub async fn approve(&self, id: &str, body: &ApproveBody) -> Result<RunState> {
        self.post(&format!("/runs/{}/approve", seg(id)), body).await
    }

    pub async fn rerun(&self, id: &str) -> Result<RunState> {
        self.post(&format!("/runs/{}/rerun", seg(id)), &serde_json::json!({}))
            .await
    }

    /// Cancels a run: done now (200) or stored until its running action call returns (202).
    pub async fn cancel(&self, id: &str) -> Result<CancelAnswer> {
        let response = self
            .send(self.request(Method::POST, &format!("/runs/{}/cancel", seg(id))))
            .await?;
        if response.status() == StatusCode::ACCEPTED {
            read_json(response).await.map(CancelAnswer::Requested)
        } else {
            read_json(response).await.map(CancelAnswer::Cancelled)
        }
    }

    pub async fn replay(&self, id: &str, body: &ReplayBody) -> Result<ReplayView> {
        self.post(&format!("/runs/{}/replay", seg(id)), body).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(seg("a/b c?"), "a%2Fb%20c%3F");
        assert_eq!(seg("run-1_x.y~"), "run-1_x.y~");
    }

    #[test]
    fn addresses_need_a_scheme() {
        assert!(matches!(
            Client::new("127.0.0.1:8080", "t"),
            Err(ClientError::BadUrl(..))
        ));
        assert!(matches!(
            Client::new("http://", "t"),
            Err(ClientError::BadUrl(url, _)) if url == "http://"
        ));
        let client = Client::new("http://127.0.0.1:8080/", "t").expect("valid");
        assert_eq!(client.url("/runs"), "http://127.0.0.1:8080/api/v1/runs");
    }

    #[test]
    fn problems_read_as_one_message_with_each_record() {
        let problem = Problem {
            kind: "urn:garrison:error:invalid_request".into(),
            title: "Bad Request".into(),
            status: 400,
            detail: "the playbook is invalid".into(),
            code: "invalid_request".into(),
            errors: vec![
                serde_json::json!({"text": "steps.a: unknown action"}),
                serde_json::json!({"index": 3, "reason": "not JSON"}),
            ],
        };
        assert_eq!(
            problem_text(StatusCode::BAD_REQUEST, &problem),
            "400 Bad Request: the playbook is invalid\n  steps.a: unknown action\n  not JSON"
        );
    }
}
