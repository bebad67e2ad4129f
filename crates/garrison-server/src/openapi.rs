//! The OpenAPI document, generated from the route annotations.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Garrison API",
        description = "Security operations: ingest, search and manage. Errors are problem+json with a stable `code`.",
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "ingest", description = "Send events"),
        (name = "splunk-hec", description = "Splunk HTTP Event Collector compatible routes"),
        (name = "events", description = "Search stored events"),
        (name = "auth", description = "Sessions and identity"),
        (name = "tenants"), (name = "users"), (name = "tokens"), (name = "sources"),
        (name = "rules", description = "Sigma detection rules: import, enable, test"),
        (name = "alerts", description = "Alerts of the live detector"),
        (name = "audit", description = "The tenant's hash-chained audit log"),
        (name = "incidents", description = "Incidents: the queue, workflow actions, tasks, merge/split, similar cases, SOC metrics"),
        (name = "indicators", description = "Threat-intel indicators: feed import (CSV, STIX 2.1, MISP), list, expire, delete"),
        (name = "operations", description = "Health, readiness, metrics"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "splunk",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`Splunk <ingest token>`",
            ))),
        );
    }
}

/// The routes' document as utoipa builds it, before [`openapi_json`] completes it.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    crate::routes::documented().split_for_parts().1
}

/// The whole document, as served at `/api/v1/openapi.json` and committed as
/// `docs/openapi.json`: the routes' own description, completed by rules that hold for every
/// route, so no handler can forget them:
/// - an error body (`Problem`) is `application/problem+json`, as it is sent;
/// - every authenticated operation documents 401 (`missing_authorization`, `invalid_token`)
///   and 403 (`forbidden`); every operation with parameters or a body documents 400
///   (`invalid_request`); every operation documents 500 (`internal`);
/// - `Problem.code` lists the stable codes.
pub fn openapi_json() -> serde_json::Value {
    let mut doc = match serde_json::to_value(openapi_document()) {
        Ok(doc) => doc,
        // Serialising utoipa's own types cannot fail; an empty document would show it.
        Err(_) => return serde_json::json!({}),
    };
    complete(&mut doc);
    doc
}

const PROBLEM_REF: &str = "#/components/schemas/Problem";
const PROBLEM_TYPE: &str = "application/problem+json";

fn problem_response(description: &str) -> serde_json::Value {
    serde_json::json!({
        "description": description,
        "content": {PROBLEM_TYPE: {"schema": {"$ref": PROBLEM_REF}}}
    })
}

fn codes_of(status: u16) -> Vec<&'static str> {
    crate::error::ErrorCode::ALL
        .iter()
        .filter(|c| c.status().as_u16() == status)
        .map(|c| c.name())
        .collect()
}

fn complete(doc: &mut serde_json::Value) {
    use serde_json::Value;
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            if !matches!(
                method.as_str(),
                "get" | "put" | "post" | "delete" | "patch" | "head" | "options"
            ) {
                continue;
            }
            let Some(operation) = operation.as_object_mut() else {
                continue;
            };
            let secured = operation
                .get("security")
                .and_then(Value::as_array)
                .is_some_and(|s| {
                    s.iter().any(|r| {
                        r.as_object()
                            .is_some_and(|r| r.contains_key("bearer") || r.contains_key("splunk"))
                    })
                });
            let is_hec = secured
                && operation
                    .get("security")
                    .and_then(Value::as_array)
                    .is_some_and(|s| s.iter().any(|r| r.get("splunk").is_some()));
            let takes_input = operation
                .get("parameters")
                .and_then(Value::as_array)
                .is_some_and(|p| !p.is_empty())
                || operation.contains_key("requestBody");
            let responses = operation
                .entry("responses")
                .or_insert_with(|| Value::Object(Default::default()));
            let Some(responses) = responses.as_object_mut() else {
                continue;
            };
            for response in responses.values_mut() {
                let Some(content) = response.get_mut("content").and_then(Value::as_object_mut)
                else {
                    continue;
                };
                let is_problem = content
                    .get("application/json")
                    .and_then(|c| c.pointer("/schema/$ref"))
                    .and_then(Value::as_str)
                    == Some(PROBLEM_REF);
                if is_problem {
                    if let Some(json) = content.remove("application/json") {
                        content.insert(PROBLEM_TYPE.to_string(), json);
                    }
                }
            }
            if is_hec {
                // HEC routes answer in Splunk's own shape (code 8 for an internal error).
                responses.entry("500").or_insert_with(|| {
                    serde_json::json!({
                        "description": "Internal server error (code 8)",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HecAnswer"}}}
                    })
                });
                continue;
            }
            let mut add = |status: u16, what: &str| {
                let key = status.to_string();
                if !responses.contains_key(&key) {
                    let codes = codes_of(status).join(", ");
                    responses.insert(key, problem_response(&format!("{what} (code: {codes})")));
                }
            };
            if secured {
                add(401, "No, or an invalid, token");
                add(403, "The token's roles or kind do not allow this");
            }
            if takes_input {
                add(400, "A parameter or the body is malformed");
            }
            add(500, "An unexpected error; the service log has details");
        }
    }
    if let Some(code) = doc.pointer_mut("/components/schemas/Problem/properties/code") {
        if let Some(code) = code.as_object_mut() {
            let names: Vec<serde_json::Value> = crate::error::ErrorCode::ALL
                .iter()
                .map(|c| c.name().into())
                .collect();
            code.insert("enum".into(), names.into());
        }
    }
}

#[cfg(test)]
mod tests {
    /// The committed document is the one the code generates: a change to the contract shows
    /// in review as a change to `docs/openapi.json`. Regenerate with
    /// `GARRISON_WRITE_OPENAPI=1 cargo test -p garrison-server openapi`.
    #[test]
    fn committed_openapi_document_matches_the_code() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
        let generated =
            serde_json::to_string_pretty(&super::openapi_json()).expect("serialises") + "\n";
        if std::env::var_os("GARRISON_WRITE_OPENAPI").is_some() {
            std::fs::write(&path, &generated).expect("writes docs/openapi.json");
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/openapi.json differs from the code's document: regenerate it with \
             `GARRISON_WRITE_OPENAPI=1 cargo test -p garrison-server openapi` and review the diff"
        );
    }

    #[test]
    fn errors_are_problem_json_and_every_operation_documents_its_failures() {
        let doc = super::openapi_json();
        let text = doc.to_string();
        assert!(!text.contains(
            r##""application/json":{"schema":{"$ref":"#/components/schemas/Problem"}}"##
        ));
        let paths = doc["paths"].as_object().expect("paths");
        for (path, item) in paths {
            for (method, op) in item.as_object().expect("item") {
                let responses = op["responses"].as_object().expect("responses");
                assert!(responses.contains_key("500"), "{method} {path}");
                // No query parameter is documented as a path parameter.
                for p in op["parameters"].as_array().into_iter().flatten() {
                    if p["in"] == "path" {
                        let name = p["name"].as_str().expect("name");
                        assert!(
                            path.contains(&format!("{{{name}}}")),
                            "{method} {path}: {name} is not in the path"
                        );
                    }
                }
            }
        }
    }
}
