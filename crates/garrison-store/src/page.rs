//! One way to list: a page of items with the cursor of the next one, a keyset cursor codec, and
//! a filter builder that numbers bound values as both backends expect (`$1`, `$2`, ...).
//!
//! Every cursor-paged listing (events, alerts, incidents, indicators) builds its `WHERE` with
//! [`Filter`], fetches one row more than the page, and lets [`Page::from_rows`] cut the page and
//! write the cursor, so a listing cannot get the "is there more?" rule or the cursor wrong.

use serde::Serialize;
use sqlx::any::AnyRow;

use crate::{Result, StoreError};

/// A page of a listing, newest (or best) first; pass `next_cursor` back for the next page.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Absent on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// The page of `rows`, fetched with `LIMIT limit + 1`: the extra row, when present, says
    /// there is more, and the cursor is written from the last row kept.
    pub fn from_rows(
        rows: &[AnyRow],
        limit: usize,
        item: impl Fn(&AnyRow) -> Result<T>,
        cursor: impl Fn(&AnyRow) -> Result<String>,
    ) -> Result<Page<T>> {
        let kept = &rows[..rows.len().min(limit)];
        let items = kept.iter().map(item).collect::<Result<Vec<T>>>()?;
        let next_cursor = match kept.last() {
            Some(last) if rows.len() > limit => Some(cursor(last)?),
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }

    /// The same page with each item changed.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

/// A keyset cursor: a tag naming the listing (and its order), then the key's integers, e.g.
/// `s1200.57`. Opaque to clients; a cursor of another listing or order is refused.
pub(crate) fn encode_cursor(tag: &str, keys: &[i64]) -> String {
    let keys: Vec<String> = keys.iter().map(i64::to_string).collect();
    format!("{tag}{}", keys.join("."))
}

/// Reads a cursor written by [`encode_cursor`] with the same tag and number of keys.
pub(crate) fn decode_cursor<const N: usize>(tag: &str, cursor: &str) -> Result<[i64; N]> {
    let invalid = || StoreError::Invalid {
        what: "cursor".into(),
        reason: format!("{cursor:?} is not a cursor returned by a previous page of this listing"),
    };
    let body = cursor.strip_prefix(tag).ok_or_else(invalid)?;
    let mut keys = [0i64; N];
    let mut parts = body.split('.');
    for key in &mut keys {
        *key = parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(invalid)?;
    }
    if parts.next().is_some() {
        return Err(invalid());
    }
    Ok(keys)
}

/// A value bound to a dynamically built query.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Int(i64),
    Text(String),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}

/// Conditions ANDed into a `WHERE`, each with its bound values. The first is always the tenant,
/// so no listing can forget it.
#[derive(Debug)]
pub(crate) struct Filter {
    conditions: Vec<String>,
    values: Vec<Value>,
}

impl Filter {
    /// `column = <tenant>`: the condition every tenant-scoped listing starts from.
    pub(crate) fn tenant(column: &str, tenant: garrison_model::TenantId) -> Filter {
        Filter {
            conditions: vec![format!("{column} = $1")],
            values: vec![Value::Int(tenant.0)],
        }
    }

    /// Binds a value; returns its placeholder (`$n`) to use in a condition.
    pub(crate) fn bind(&mut self, value: impl Into<Value>) -> String {
        self.values.push(value.into());
        format!("${}", self.values.len())
    }

    /// Adds a condition written with placeholders from [`Filter::bind`].
    pub(crate) fn and(&mut self, condition: impl Into<String>) {
        self.conditions.push(condition.into());
    }

    /// `column <op> value`.
    pub(crate) fn cmp(&mut self, column: &str, op: &str, value: impl Into<Value>) {
        let n = self.bind(value);
        self.and(format!("{column} {op} {n}"));
    }

    /// `column = value` when a value is given.
    pub(crate) fn eq_opt(&mut self, column: &str, value: Option<impl Into<Value>>) {
        if let Some(value) = value {
            self.cmp(column, "=", value);
        }
    }

    /// The conditions, ANDed.
    pub(crate) fn where_sql(&self) -> String {
        self.conditions.join(" AND ")
    }

    /// `sql` with every value bound in order.
    pub(crate) fn query(
        self,
        sql: String,
    ) -> sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments> {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for value in self.values {
            q = match value {
                Value::Int(i) => q.bind(i),
                Value::Text(s) => q.bind(s),
            };
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn placeholders_follow_the_tenant() {
        let mut f = Filter::tenant("tenant_id", garrison_model::TenantId(7));
        f.cmp("level", "=", "high");
        f.eq_opt("rule_id", None::<String>);
        let n = f.bind(5i64);
        f.and(format!("(score < {n} OR seq < {n})"));
        assert_eq!(
            f.where_sql(),
            "tenant_id = $1 AND level = $2 AND (score < $3 OR seq < $3)"
        );
        assert_eq!(
            f.values,
            vec![Value::Int(7), Value::Text("high".into()), Value::Int(5)]
        );
    }

    #[test]
    fn cursors_of_another_listing_are_refused() {
        assert_eq!(encode_cursor("s", &[1200, 57]), "s1200.57");
        assert_eq!(decode_cursor::<2>("s", "s1200.57").ok(), Some([1200, 57]));
        assert!(decode_cursor::<1>("n", "s1200.57").is_err());
        assert!(decode_cursor::<1>("s", "s1200.57").is_err());
        assert!(decode_cursor::<2>("s", "s1200").is_err());
        assert!(decode_cursor::<1>("a", "a").is_err());
    }

    proptest! {
        #[test]
        fn cursors_round_trip(tag in "[a-z]{0,2}", keys in proptest::collection::vec(any::<i64>(), 3)) {
            let text = encode_cursor(&tag, &keys);
            let read = decode_cursor::<3>(&tag, &text).expect("own cursor");
            prop_assert_eq!(read.to_vec(), keys);
        }

        #[test]
        fn any_text_decodes_or_is_refused_without_panic(text in "\\PC{0,40}") {
            let _ = decode_cursor::<2>("s", &text);
        }
    }
}
