//! The asset table: how much each host matters, imported from CSV.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::triage::Criticality;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Asset {
    /// Host name, lowercase: what alerts name the host by.
    pub name: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub ip: Option<IpAddr>,
    pub criticality: Criticality,
    #[serde(default)]
    pub owner: Option<String>,
}

/// A CSV line that was not imported, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize, thiserror::Error)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[error("line {line}: {reason}")]
pub struct CsvError {
    pub line: usize,
    pub reason: String,
}

/// Reads assets from CSV with a header naming `name` and `criticality` (required) and `ip`,
/// `owner` (optional), in any order; other columns are ignored. A bad line does not fail the
/// file: the good assets come back with an error per bad line. Quoted fields (`"a, b"`, `""`)
/// are understood; a quoted field cannot span lines.
pub fn parse_assets_csv(text: &str) -> (Vec<Asset>, Vec<CsvError>) {
    let mut assets = Vec::new();
    let mut errors = Vec::new();
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((header_line, header)) = lines.next() else {
        return (assets, errors);
    };
    let header: Vec<String> = match split_csv(header) {
        Ok(cells) => cells
            .into_iter()
            .map(|c| c.trim().trim_start_matches('\u{feff}').to_ascii_lowercase())
            .collect(),
        Err(reason) => {
            errors.push(CsvError {
                line: header_line,
                reason,
            });
            return (assets, errors);
        }
    };
    let column = |name: &str| header.iter().position(|h| h == name);
    let (Some(name_col), Some(crit_col)) = (column("name"), column("criticality")) else {
        errors.push(CsvError {
            line: header_line,
            reason: "the header must name the columns `name` and `criticality`".into(),
        });
        return (assets, errors);
    };
    let (ip_col, owner_col) = (column("ip"), column("owner"));
    let mut seen = BTreeSet::new();
    for (line, text) in lines {
        let cells = match split_csv(text) {
            Ok(cells) => cells,
            Err(reason) => {
                errors.push(CsvError { line, reason });
                continue;
            }
        };
        let cell = |i: Option<usize>| {
            i.and_then(|i| cells.get(i))
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
        };
        let Some(name) = cell(Some(name_col)).map(|n| n.to_lowercase()) else {
            errors.push(CsvError {
                line,
                reason: "the name is empty".into(),
            });
            continue;
        };
        let Some(criticality) = cell(Some(crit_col)).and_then(|c| Criticality::parse(&c)) else {
            errors.push(CsvError {
                line,
                reason: "criticality must be low, medium, high or critical (or 1 to 4)".into(),
            });
            continue;
        };
        let ip = match cell(ip_col).map(|ip| ip.parse::<IpAddr>()) {
            None => None,
            Some(Ok(ip)) => Some(ip),
            Some(Err(_)) => {
                errors.push(CsvError {
                    line,
                    reason: format!(
                        "{:?} is not an IP address",
                        cell(ip_col).unwrap_or_default()
                    ),
                });
                continue;
            }
        };
        if !seen.insert(name.clone()) {
            errors.push(CsvError {
                line,
                reason: format!("asset {name:?} is listed again"),
            });
            continue;
        }
        assets.push(Asset {
            name,
            ip,
            criticality,
            owner: cell(owner_col),
        });
    }
    (assets, errors)
}

fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') if cell.trim().is_empty() && !was_quoted => {
                cell.clear();
                quoted = true;
                was_quoted = true;
            }
            (false, ',') => {
                cells.push(std::mem::take(&mut cell));
                was_quoted = false;
            }
            (false, c) => cell.push(c),
        }
    }
    if quoted {
        return Err("a quoted field is not closed".into());
    }
    cells.push(cell);
    Ok(cells)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_read_with_an_error_per_bad_line() {
        let csv = "\u{feff}Name,Owner,IP,Criticality,notes\r\n\
                   WS1,\"Doe, Jane\",10.0.0.1,high,x\n\
                   \n\
                   dc01,,,4,\n\
                   bad,,not-an-ip,low,\n\
                   ws1,,,low,\n\
                   nameless ,,,extreme,\n\
                   ,,,low,\n\
                   \"open,,,low\n";
        let (assets, errors) = parse_assets_csv(csv);
        assert_eq!(
            assets,
            vec![
                Asset {
                    name: "ws1".into(),
                    ip: "10.0.0.1".parse().ok(),
                    criticality: Criticality::High,
                    owner: Some("Doe, Jane".into()),
                },
                Asset {
                    name: "dc01".into(),
                    ip: None,
                    criticality: Criticality::Critical,
                    owner: None,
                },
            ]
        );
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [5, 6, 7, 8, 9]);
        assert!(errors[1].reason.contains("listed again"), "{}", errors[1]);
    }

    #[test]
    fn a_header_without_the_required_columns_is_one_error() {
        let (assets, errors) = parse_assets_csv("host,level\nws1,high\n");
        assert!(assets.is_empty());
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, 1);
        assert_eq!(parse_assets_csv(""), (vec![], vec![]));
    }
}
