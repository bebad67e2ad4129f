//! The CLI's door to a running service: the typed client, aimed by the same configuration
//! the service reads, and the conversions from flag text to the API's typed parameters.

use anyhow::{Context, Result};
use garrison_client::Client;
use serde::de::{DeserializeOwned, IntoDeserializer};

/// A client of the service at `url` (default: the configured `http_addr`).
pub fn connect(url: &Option<String>, token: &str) -> Result<Client> {
    Ok(Client::new(&crate::config::service_url(url), token)?)
}

/// A flag's text read as the API reads the same query parameter, so the CLI refuses what the
/// service would refuse, with the flag's name.
pub fn param<T: DeserializeOwned>(flag: &str, text: Option<String>) -> Result<Option<T>> {
    text.map(|t| {
        T::deserialize(IntoDeserializer::<serde::de::value::Error>::into_deserializer(t))
            .with_context(|| format!("--{flag}"))
    })
    .transpose()
}

/// Reads a `--limit`: a page size from 1 to 1000, as the API takes it (refused, not clamped,
/// so the CLI and the API agree).
pub fn page_size(text: &str) -> Result<usize, String> {
    text.parse::<garrison_model::PageLimit>().map(|l| l.0)
}

/// A page size flag, bounded as the API bounds it.
pub fn limit(limit: usize) -> Option<garrison_model::PageLimit> {
    Some(garrison_model::PageLimit(
        limit.clamp(1, garrison_model::PageLimit::MAX),
    ))
}

/// Prints each item as a JSON line.
pub fn print_lines<T: serde::Serialize>(items: &[T]) -> Result<()> {
    for item in items {
        println!("{}", serde_json::to_string(item)?);
    }
    Ok(())
}
