//! Conformance tests: SigmaHQ corpus, regression data, specification examples, modifiers, properties.

mod integration {
    pub mod common;
    pub mod corpus;
    pub mod correlation;
    pub mod modifiers;
    pub mod props;
    pub mod regression;
    pub mod spec;
    pub mod upstream_miscounts;
}
