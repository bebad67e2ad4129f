//! Integration tests of garrison-hunt: readers over the shared corpus, SigmaHQ regression data,
//! output writers, and property tests of the readers.
//!
//! Corpus tests find the corpus at `../shared/corpus` from the workspace root (`GARRISON_CORPUS`
//! overrides) and skip, saying why, when it is absent.

#[path = "integration/common.rs"]
mod common;
#[path = "integration/corpus.rs"]
mod corpus;
#[path = "integration/hunt.rs"]
mod hunt;
#[path = "integration/output.rs"]
mod output;
#[path = "integration/props.rs"]
mod props;
#[path = "integration/regression.rs"]
mod regression;
