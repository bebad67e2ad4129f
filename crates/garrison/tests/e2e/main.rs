//! End-to-end tests: the real `garrison` binary on free ports and a temporary data directory.
//! One test binary for all of them (linking is the slow part on 2 cores).

mod app_layer;
mod attachments;
mod contract;
mod decoders;
mod detection;
mod docs;
mod durability;
mod faults;
mod hardening;
mod harness;
mod incidents;
mod indicators;
mod ingest;
mod intel_alerts;
mod playbooks;
mod security;
mod tls_and_postgres;
mod triage;
mod triggers;
mod trust;
