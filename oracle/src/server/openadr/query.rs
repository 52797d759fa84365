//! The query parameters of OpenADR 3.0.1 searches: filters, `targetType`/`targetValues`
//! (values repeated as `targetValues=a&targetValues=b`) and `skip`/`limit` paging. A
//! parameter a search does not take is refused (400), never ignored: a client asking for
//! one page or one target must not get everything and believe it is what it asked for.

use axum::http::StatusCode;
use serde_json::Value;

use crate::server::ApiError;

/// Most objects one page holds (the spec's maximum `limit`), and the default.
pub const MAX_LIMIT: usize = 50;

#[derive(Debug, Default)]
pub struct Search {
    pub skip: usize,
    pub limit: usize,
    pub target_type: Option<String>,
    pub target_values: Vec<String>,
    pub program_id: Option<String>,
    pub event_id: Option<String>,
    pub client_name: Option<String>,
    pub ven_name: Option<String>,
    pub resource_name: Option<String>,
    pub objects: Vec<String>,
}

fn bad(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_query", message)
}

impl Search {
    /// Parses `raw`, refusing any parameter not in `takes`.
    pub fn parse(raw: Option<&str>, takes: &[&str]) -> Result<Self, ApiError> {
        let mut search = Search { limit: MAX_LIMIT, ..Search::default() };
        let mut seen: Vec<String> = Vec::new();
        for (key, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            if !takes.contains(&key.as_ref()) {
                return Err(bad(format!("this search takes no parameter {key:?} (it takes: {})", takes.join(", "))));
            }
            let repeatable = matches!(key.as_ref(), "targetValues" | "objects");
            if !repeatable && seen.contains(&key.to_string()) {
                return Err(bad(format!("{key} is given twice")));
            }
            seen.push(key.to_string());
            let value = value.into_owned();
            let count = |v: &str| v.parse::<usize>().map_err(|_| bad(format!("{key}={v:?} is not a whole number ≥ 0")));
            match key.as_ref() {
                "skip" => search.skip = count(&value)?,
                "limit" => {
                    search.limit = count(&value)?;
                    if search.limit > MAX_LIMIT {
                        return Err(bad(format!("limit={value}: at most {MAX_LIMIT}")));
                    }
                }
                "targetType" => search.target_type = Some(value),
                "targetValues" => search.target_values.push(value),
                "programID" => search.program_id = Some(value),
                "eventID" => search.event_id = Some(value),
                "clientName" => search.client_name = Some(value),
                "venName" => search.ven_name = Some(value),
                "resourceName" => search.resource_name = Some(value),
                "objects" => search.objects.push(value),
                _ => unreachable!("every parameter in `takes` is handled"),
            }
        }
        if search.target_type.is_some() == search.target_values.is_empty() {
            return Err(bad("targetType and targetValues go together".into()));
        }
        Ok(search)
    }

    /// Whether an object's `targets` (a list of valuesMaps) has the searched type with one of
    /// the searched values; true when the search names no target.
    pub fn targets_match(&self, object: &Value) -> bool {
        let Some(wanted) = &self.target_type else { return true };
        object["targets"].as_array().is_some_and(|targets| {
            targets.iter().any(|t| {
                t["type"].as_str() == Some(wanted.as_str())
                    && t["values"]
                        .as_array()
                        .is_some_and(|vs| vs.iter().any(|v| v.as_str().is_some_and(|v| self.target_values.iter().any(|w| w == v))))
            })
        })
    }

    /// One page of `items`.
    pub fn page<T>(&self, items: impl IntoIterator<Item = T>) -> Vec<T> {
        items.into_iter().skip(self.skip).take(self.limit).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TAKES: &[&str] = &["programID", "targetType", "targetValues", "skip", "limit"];

    #[test]
    fn searches_parse_and_refuse_what_they_do_not_take() {
        let s = Search::parse(Some("programID=p&targetType=REGION&targetValues=DE-BY&targetValues=DE-NW&skip=2&limit=3"), TAKES).unwrap();
        assert_eq!((s.skip, s.limit, s.program_id.as_deref()), (2, 3, Some("p")));
        assert_eq!(s.target_values, ["DE-BY", "DE-NW"]);
        assert_eq!(Search::parse(None, TAKES).unwrap().limit, MAX_LIMIT);
        for bad in ["eventID=e", "limit=51", "skip=-1", "limit=x", "targetType=REGION", "targetValues=DE-BY", "skip=1&skip=2"] {
            assert!(Search::parse(Some(bad), TAKES).is_err(), "{bad}");
        }
    }

    #[test]
    fn targets_match_by_type_and_any_value() {
        let s = Search::parse(Some("targetType=REGION&targetValues=DE-BY&targetValues=DE-NW"), TAKES).unwrap();
        assert!(s.targets_match(&json!({"targets": [{"type": "REGION", "values": ["DE-NW"]}]})));
        assert!(!s.targets_match(&json!({"targets": [{"type": "GROUP", "values": ["DE-NW"]}]})));
        assert!(!s.targets_match(&json!({"targets": null})));
        assert!(Search::default().targets_match(&json!({})));
        assert_eq!(Search { skip: 2, limit: 3, ..Search::default() }.page(0..10), vec![2, 3, 4]);
    }
}
