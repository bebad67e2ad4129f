//! The built-in `core.*` actions that do I/O (`core.http`) or transform data, executed by the
//! service. `core.sleep` never reaches an executor: the engine turns it into a stored timer.

use std::sync::OnceLock;

use async_trait::async_trait;
use garrison_playbook::{ActionExecutor, ActionFailure, ActionOutcome, ActionRequest, Duration};
use serde_json::{json, Value as Json};

/// The built-in `core.*` actions. `core.sleep` never reaches an executor: the engine turns it
/// into a stored timer.
#[derive(Default)]
pub struct CoreActions {
    client: OnceLock<Result<reqwest::Client, String>>,
}

impl CoreActions {
    /// The built-ins.
    pub fn new() -> Self {
        Self::default()
    }

    /// True for the names this executor handles.
    pub fn handles(action: &str) -> bool {
        action.starts_with("core.")
    }

    fn client(&self) -> Result<&reqwest::Client, ActionFailure> {
        self.client
            .get_or_init(|| {
                reqwest::Client::builder()
                    .build()
                    .map_err(|e| format!("HTTP client: {e} (is a TLS crypto provider installed?)"))
            })
            .as_ref()
            .map_err(|e| ActionFailure::permanent(e.clone()))
    }

    async fn http(&self, req: &ActionRequest) -> Result<Json, ActionFailure> {
        let input = &req.input;
        let url = input
            .get("url")
            .and_then(Json::as_str)
            .ok_or_else(|| ActionFailure::permanent("core.http: `url` is required"))?;
        let method = input.get("method").and_then(Json::as_str).unwrap_or("GET");
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|_| {
            ActionFailure::permanent(format!("core.http: invalid method `{method}`"))
        })?;
        let timeout = match input.get("timeout").and_then(Json::as_str) {
            Some(t) => t.parse::<Duration>().map_err(ActionFailure::permanent)?,
            None => Duration(30_000),
        };
        let mut parsed = reqwest::Url::parse(url).map_err(|e| {
            ActionFailure::permanent(format!("core.http: invalid url `{url}`: {e}"))
        })?;
        if let Some(Json::Object(q)) = input.get("query") {
            let mut pairs = parsed.query_pairs_mut();
            for (k, v) in q {
                let v = v
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string());
                pairs.append_pair(k, &v);
            }
        }
        let mut builder = self
            .client()?
            .request(method, parsed)
            .timeout(std::time::Duration::from_millis(timeout.as_millis()))
            .header("Idempotency-Key", &req.idempotency_key)
            // The key is the same for every attempt of a step; which attempt this is.
            .header("X-Garrison-Attempt", req.attempt.to_string());
        if let Some(Json::Object(h)) = input.get("headers") {
            for (k, v) in h {
                let v = match v {
                    Json::String(s) => s.clone(),
                    other => other.to_string(),
                };
                builder = builder.header(k.as_str(), v);
            }
        }
        if let Some(j) = input.get("json") {
            builder = builder
                .header("content-type", "application/json")
                .body(j.to_string());
        } else if let Some(b) = input.get("body").and_then(Json::as_str) {
            builder = builder.body(b.to_owned());
        }
        let response = builder
            .send()
            .await
            .map_err(|e| ActionFailure::retryable(format!("core.http: {e}")))?;
        let status = response.status().as_u16();
        let wait = retry_after(response.headers());
        let mut headers = serde_json::Map::new();
        for (k, v) in response.headers() {
            if let Ok(v) = v.to_str() {
                headers.insert(k.as_str().to_owned(), Json::String(v.to_owned()));
            }
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ActionFailure::retryable(format!("core.http: reading body: {e}")))?;
        if bytes.len() > 8 * 1024 * 1024 {
            return Err(ActionFailure::permanent(
                "core.http: response body larger than 8 MiB",
            ));
        }
        let body = serde_json::from_slice::<Json>(&bytes)
            .unwrap_or_else(|_| Json::String(String::from_utf8_lossy(&bytes).into_owned()));
        let ok_status: Vec<u64> = input
            .get("ok_status")
            .and_then(Json::as_array)
            .map(|a| a.iter().filter_map(Json::as_u64).collect())
            .unwrap_or_default();
        let output = json!({"status": status, "headers": headers, "body": body});
        let accepted = if ok_status.is_empty() {
            (200..300).contains(&status)
        } else {
            ok_status.contains(&u64::from(status))
        };
        if accepted {
            Ok(output)
        } else if status >= 500 || status == 429 || status == 408 {
            let failure = ActionFailure::retryable(format!("core.http: status {status}"));
            Err(match wait {
                Some(w) => failure.retry_after(w),
                None => failure,
            })
        } else {
            Err(ActionFailure::permanent(format!(
                "core.http: status {status}"
            )))
        }
    }
}

/// How long a target asks to be left alone (`Retry-After`: seconds, or an HTTP date).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<std::time::Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(std::time::Duration::from_secs(secs));
    }
    let when = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    std::time::Duration::try_from(when.duration_since(jiff::Timestamp::now())).ok()
}

#[async_trait]
impl ActionExecutor for CoreActions {
    async fn execute(&self, req: ActionRequest) -> ActionOutcome {
        let input = &req.input;
        match req.action.as_str() {
            "core.http" => ActionOutcome {
                result: self.http(&req).await,
                logs: Vec::new(),
            },
            "core.transform" => {
                let Some(query) = input.get("query").and_then(Json::as_str) else {
                    return ActionOutcome::err(ActionFailure::permanent(
                        "core.transform: `query` is required",
                    ));
                };
                let data = input.get("input").cloned().unwrap_or(Json::Null);
                let result = garrison_expr::JqQuery::compile(
                    &format!("steps.{}.with.query", req.step),
                    query,
                )
                .and_then(|q| q.run_one(&data))
                .map_err(|e| ActionFailure::permanent(e.to_string()));
                ActionOutcome {
                    result,
                    logs: Vec::new(),
                }
            }
            "core.set" => ActionOutcome::ok(input.clone()),
            "core.log" => {
                let message = match input.get("message") {
                    Some(Json::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                let level = input
                    .get("level")
                    .and_then(Json::as_str)
                    .unwrap_or("info")
                    .to_owned();
                ActionOutcome {
                    result: Ok(json!({"logged": true, "level": level})),
                    logs: vec![format!("[{level}] {message}")],
                }
            }
            "core.sleep" => ActionOutcome::err(ActionFailure::permanent(
                "core.sleep is handled by the engine as a timer",
            )),
            other => ActionOutcome::err(ActionFailure::permanent(format!(
                "no executor for action `{other}`"
            ))),
        }
    }
}
