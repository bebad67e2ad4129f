//! Threat-intelligence indicators (IOCs) for Garrison: IPs, CIDRs, domains, URLs, file hashes
//! and email addresses.
//!
//! - [`Indicator`]: a canonical [`IndicatorValue`] with its source, confidence (0 to 100), first
//!   seen and expiry times, tags and description.
//! - Parsers for feeds: [`parse_csv`], [`parse_stix`] (STIX 2.1), [`parse_misp`] (MISP event
//!   JSON), or [`Format::parse`]. Each returns a [`ParseOutput`]: every good indicator, plus a
//!   [`ParseError`] with its place ([`Location`]: CSV line and column, JSON pointer and object
//!   id) for every bad record. A bad record never costs the good ones beside it, and no input
//!   makes a parser panic.
//! - [`decayed_score`] / [`DecayModel`]: confidence halved every half-life of age, 0 once
//!   expired.
//! - [`IndicatorSet`]: indicators indexed for matching an event's normalised (ECS) fields, by a
//!   documented, overridable [`FieldTable`].
//!
//! **Invariant:** this crate does no I/O; it parses the bytes it is given.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod canonical;
mod csv_feed;
mod decay;
mod indicator;
mod matcher;
mod misp;
mod parse;
mod stix;

pub use csv_feed::parse_csv;
pub use decay::{decayed_score, DecayModel};
pub use indicator::{
    HashAlgorithm, Indicator, IndicatorKind, IndicatorRecord, IndicatorValue, InvalidRecord,
    InvalidValue, ParseNamedError, UnknownKind, DEFAULT_CONFIDENCE,
};
pub use matcher::{FieldTable, FieldType, IndicatorSet, Match, ECS_FIELDS};
pub use misp::parse_misp;
pub use parse::{Format, ImportOptions, Location, ParseError, ParseOutput};
pub use stix::parse_stix;
