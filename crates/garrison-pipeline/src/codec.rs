//! The event log's payload: a batch of [`EventRow`]s in a compact binary layout.
//!
//! JSON is rendered once at ingest; the indexer copies bytes. The search words are not carried:
//! decoding derives them from the fields' JSON text with a linear scan, so that work (and its
//! bytes through compression) stays off the acknowledgement path. Layout (little endian):
//! `GEV2 | u32 count | rows`, each row `str id | i64 tenant | i64 time_us | i64 received_us |
//! str source | opt product | opt service | opt category | str fields | str normalized |
//! opt raw`, where `str` is `u32 length + UTF-8` and `opt` uses length `u32::MAX` for none.

use garrison_model::{from_micros, to_micros, LogSource, TenantId};
use garrison_store::{searchable_text_from_json, EventRow};

const MAGIC: &[u8; 4] = b"GEV2";
const NONE: u32 = u32::MAX;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("undecodable event batch at byte {at}: {reason}")]
pub struct CodecError {
    pub at: usize,
    pub reason: &'static str,
}

pub fn encode(rows: &[EventRow]) -> Vec<u8> {
    let size: usize = rows
        .iter()
        .map(|r| {
            64 + r.id.len()
                + r.source.len()
                + r.fields_json.len()
                + r.normalized_json.len()
                + r.search_text.len()
                + r.raw.as_ref().map_or(0, String::len)
        })
        .sum();
    let mut out = Vec::with_capacity(size + 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(rows.len() as u32).to_le_bytes());
    for row in rows {
        put_str(&mut out, &row.id);
        out.extend_from_slice(&row.tenant_id.0.to_le_bytes());
        out.extend_from_slice(&to_micros(row.time).to_le_bytes());
        out.extend_from_slice(&to_micros(row.received).to_le_bytes());
        put_str(&mut out, &row.source);
        put_opt(&mut out, row.logsource.product.as_deref());
        put_opt(&mut out, row.logsource.service.as_deref());
        put_opt(&mut out, row.logsource.category.as_deref());
        put_str(&mut out, &row.fields_json);
        put_str(&mut out, &row.normalized_json);
        put_opt(&mut out, row.raw.as_deref());
    }
    out
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Strings here are bounded by the ingest limits, far below 4 GiB.
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_opt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_str(out, s),
        None => out.extend_from_slice(&NONE.to_le_bytes()),
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], CodecError> {
        let slice = self
            .at
            .checked_add(n)
            .and_then(|end| self.bytes.get(self.at..end))
            .ok_or(CodecError {
                at: self.at,
                reason: "truncated",
            })?;
        self.at += n;
        Ok(slice)
    }
    fn u32(&mut self) -> Result<u32, CodecError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i64(&mut self) -> Result<i64, CodecError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_le_bytes(a))
    }
    fn str_of_len(&mut self, len: u32) -> Result<String, CodecError> {
        let at = self.at;
        let bytes = self.take(len as usize)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| CodecError {
            at,
            reason: "invalid UTF-8",
        })
    }
    fn string(&mut self) -> Result<String, CodecError> {
        let len = self.u32()?;
        if len == NONE {
            return Err(CodecError {
                at: self.at,
                reason: "missing required string",
            });
        }
        self.str_of_len(len)
    }
    fn opt(&mut self) -> Result<Option<String>, CodecError> {
        match self.u32()? {
            NONE => Ok(None),
            len => self.str_of_len(len).map(Some),
        }
    }
}

pub fn decode(bytes: &[u8]) -> Result<Vec<EventRow>, CodecError> {
    decode_rows(bytes, true)
}

/// [`decode`] without deriving the search words (`search_text` stays empty): for consumers
/// that do not index text, such as the detector.
pub fn decode_without_search_text(bytes: &[u8]) -> Result<Vec<EventRow>, CodecError> {
    decode_rows(bytes, false)
}

fn decode_rows(bytes: &[u8], search_text: bool) -> Result<Vec<EventRow>, CodecError> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(4)? != MAGIC {
        return Err(CodecError {
            at: 0,
            reason: "not an event batch",
        });
    }
    let count = r.u32()? as usize;
    // Each row takes at least 40 bytes: a count beyond that is corruption, not a reason to
    // reserve gigabytes.
    let mut rows = Vec::with_capacity(count.min(bytes.len() / 40));
    for _ in 0..count {
        let mut row = EventRow {
            id: r.string()?,
            tenant_id: TenantId(r.i64()?),
            time: from_micros(r.i64()?),
            received: from_micros(r.i64()?),
            source: r.string()?,
            logsource: LogSource {
                product: r.opt()?,
                service: r.opt()?,
                category: r.opt()?,
            },
            fields_json: r.string()?,
            normalized_json: r.string()?,
            raw: r.opt()?,
            search_text: String::new(),
        };
        if search_text {
            row.search_text = searchable_text_from_json(&row.fields_json, row.raw.as_deref());
        }
        rows.push(row);
    }
    if r.at != bytes.len() {
        return Err(CodecError {
            at: r.at,
            reason: "trailing bytes",
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use garrison_model::Timestamp;
    use proptest::prelude::*;

    fn row(id: String, text: String, raw: Option<String>, product: Option<String>) -> EventRow {
        EventRow {
            id,
            tenant_id: TenantId(7),
            time: Timestamp::from_second(1_700_000_000).expect("time"),
            received: Timestamp::from_microsecond(1_700_000_000_123_456).expect("time"),
            source: "fw".into(),
            logsource: LogSource {
                product,
                service: None,
                category: Some("c".into()),
            },
            fields_json: "{\"a\":1}".into(),
            normalized_json: "{}".into(),
            raw,
            search_text: text,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn batches_round_trip(items in proptest::collection::vec((".*", ".*", proptest::option::of(".*"), proptest::option::of(".*")), 0..20)) {
            let rows: Vec<EventRow> = items.into_iter().map(|(a, b, c, d)| row(a, b, c, d)).collect();
            let expected: Vec<EventRow> = rows
                .into_iter()
                .map(|mut r| {
                    r.search_text = searchable_text_from_json(&r.fields_json, r.raw.as_deref());
                    r
                })
                .collect();
            prop_assert_eq!(decode(&encode(&expected)), Ok(expected));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn truncation_is_an_error_not_a_panic(cut in 0usize..200) {
            let encoded = encode(&[row("id".into(), "words".into(), Some("raw".into()), None)]);
            let cut = cut.min(encoded.len().saturating_sub(1));
            prop_assert!(decode(&encoded[..cut]).is_err());
        }
    }
}
