//! Integration and property tests of garrison-ingest, in one test binary to keep links few.

mod integration {
    pub mod corpus;
    pub mod props;
}
