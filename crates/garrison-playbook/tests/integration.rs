//! garrison-playbook integration tests: one binary (linking is the slow part).

mod common;
mod engine;
mod validation;
