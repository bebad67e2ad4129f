//! The API's wire types: every request body, query string and answer of the HTTP API, defined
//! once. The server parses and documents them (OpenAPI via utoipa); `garrison-client` sends
//! and reads the same types, so the CLI, the console's generated client and the server cannot
//! drift apart. Conversions from domain types live here too, next to the shape they produce.
//!
//! Modules follow the route groups of the server.

pub mod admin;
pub mod attachments;
pub mod audit;
pub mod detection;
pub mod error;
pub mod incidents;
pub mod indicators;
pub mod ingest;
pub mod ops;
pub mod playbooks;
pub mod triage;
