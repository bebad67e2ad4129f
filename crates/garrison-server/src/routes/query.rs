//! Typed query strings. A handler names its parameters as a struct that serde reads and utoipa
//! documents (`#[into_params(parameter_in = Query)]`), so the document and the behaviour cannot
//! drift apart. Unknown parameters are refused (`#[serde(deny_unknown_fields)]` on the struct)
//! with a problem+json 400 that names the parameter, never ignored silently.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The query string parsed into `T`.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

/// Parses a query string into `T`; errors name the parameter.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let pairs = form_urlencoded::parse(query.as_bytes());
    let deserializer = serde_urlencoded::Deserializer::new(pairs);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            ApiError::invalid(format!("query string: {inner}"))
        } else {
            ApiError::invalid(format!("parameter {path}: {inner}"))
        }
    })
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or_default()).map(ApiQuery)
    }
}

/// A query string with typed parameters plus `field.NAME=VALUE` filters (event search).
#[derive(Debug)]
pub struct ApiQueryWithFields<T> {
    pub params: T,
    /// `(NAME, VALUE)` of each `field.NAME` parameter, in order.
    pub fields: Vec<(String, String)>,
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQueryWithFields<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let mut fields = Vec::new();
        let mut rest = form_urlencoded::Serializer::new(String::new());
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.strip_prefix("field.") {
                Some("") => {
                    return Err(ApiError::invalid(
                        "parameter field.: name the field, as field.NAME=VALUE",
                    ))
                }
                Some(name) => fields.push((name.to_string(), value.into_owned())),
                None => {
                    rest.append_pair(&key, &value);
                }
            }
        }
        let params = parse_query(&rest.finish())?;
        Ok(ApiQueryWithFields { params, fields })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use garrison_model::{PageLimit, TimeBound};

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Params {
        from: Option<TimeBound>,
        limit: Option<PageLimit>,
        open: Option<bool>,
    }

    proptest::proptest! {
        /// Any query string is answered, never a panic: typed parameters or a 400 that names
        /// what was wrong.
        #[test]
        fn any_query_string_parses_or_is_refused(query in "\\PC{0,200}") {
            match parse_query::<Params>(&query) {
                Ok(_) => {}
                Err(e) => proptest::prop_assert!(
                    e.detail.starts_with("parameter ") || e.detail.starts_with("query string:"),
                    "{}", e.detail
                ),
            }
        }

        /// Every page size from 1 to 1000 is taken as given; everything else is refused.
        #[test]
        fn page_limits_round_trip(limit in 0usize..3000) {
            let parsed = parse_query::<Params>(&format!("limit={limit}"));
            if (1..=1000).contains(&limit) {
                proptest::prop_assert_eq!(parsed.expect("in range").limit, Some(PageLimit(limit)));
            } else {
                proptest::prop_assert!(parsed.is_err());
            }
        }
    }

    #[test]
    fn typed_parameters_and_clear_errors() {
        let p: Params = parse_query("from=1700000000&limit=5&open=true").expect("parses");
        assert_eq!(p.limit, Some(PageLimit(5)));
        assert_eq!(p.open, Some(true));
        let e = parse_query::<Params>("limit=0").expect_err("out of range");
        assert!(e.detail.starts_with("parameter limit:"), "{}", e.detail);
        let e = parse_query::<Params>("from=yesterday").expect_err("bad time");
        assert!(e.detail.contains("from"), "{}", e.detail);
        let e = parse_query::<Params>("sort=asc").expect_err("unknown");
        assert!(e.detail.contains("unknown field `sort`"), "{}", e.detail);
        let e = parse_query::<Params>("open=maybe").expect_err("bad bool");
        assert!(e.detail.starts_with("parameter open:"), "{}", e.detail);
    }
}
