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

/// The whole document, as served at `/api/v1/openapi.json`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    crate::routes::documented().split_for_parts().1
}
