//! Docker's `filters` query parameter: JSON in either the map form `{"label":{"a=b":true}}`
//! (docker CLI) or the list form `{"label":["a=b"]}` (docker-py). Filtering is server-side.

use std::collections::BTreeMap;

use crate::api::error::ApiError;
use crate::error::ErrorKind;

/// Parsed filters: each key with the values given for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters(BTreeMap<String, Vec<String>>);

impl Filters {
    /// Parse the raw (already URL-decoded) `filters` value; empty means no filter.
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<Filters, ApiError> {
        let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
            return Ok(Filters::default());
        };
        let value: serde_json::Value = serde_json::from_str(raw).map_err(|e| {
            ApiError::new(ErrorKind::Invalid, format!("invalid filters {raw:?}: {e}"))
        })?;
        let object = value
            .as_object()
            .ok_or_else(|| ApiError::new(ErrorKind::Invalid, "filters must be a JSON object"))?;
        let mut out = BTreeMap::new();
        for (key, values) in object {
            if !allowed.contains(&key.as_str()) {
                return Err(ApiError::new(
                    ErrorKind::Invalid,
                    format!("invalid filter '{key}'"),
                ));
            }
            let list: Vec<String> = match values {
                serde_json::Value::Array(items) => items
                    .iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect(),
                serde_json::Value::Object(map) => map
                    .iter()
                    .filter(|(_, on)| on.as_bool().unwrap_or(true))
                    .map(|(k, _)| k.clone())
                    .collect(),
                serde_json::Value::String(s) => vec![s.clone()],
                _ => {
                    return Err(ApiError::new(
                        ErrorKind::Invalid,
                        format!("invalid value for filter '{key}'"),
                    ))
                }
            };
            out.insert(key.clone(), list);
        }
        Ok(Filters(out))
    }

    /// Values given for `key` (empty when the filter is absent).
    pub fn values(&self, key: &str) -> &[String] {
        self.0.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// True when `key` is absent or any of its values satisfies `matches`.
    pub fn any(&self, key: &str, matches: impl Fn(&str) -> bool) -> bool {
        match self.0.get(key) {
            None => true,
            Some(values) => values.iter().any(|v| matches(v)),
        }
    }

    /// Docker's label filter: every `key` or `key=value` given must be present.
    pub fn labels_match(&self, labels: &BTreeMap<String, String>) -> bool {
        self.values("label")
            .iter()
            .all(|want| match want.split_once('=') {
                Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
                None => labels.contains_key(want.as_str()),
            })
    }
}

/// Docker's boolean query values: "", 0, no, false, none (any case) are false.
pub fn query_bool(value: Option<&str>) -> bool {
    match value {
        None => false,
        Some(v) => !matches!(
            v.to_ascii_lowercase().as_str(),
            "" | "0" | "no" | "false" | "none"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_and_list_forms_are_equal() {
        let a = Filters::parse(
            Some(r#"{"label":{"a=b":true},"driver":{"bridge":true}}"#),
            &["label", "driver"],
        )
        .unwrap();
        let b = Filters::parse(
            Some(r#"{"label":["a=b"],"driver":["bridge"]}"#),
            &["label", "driver"],
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.values("driver"), ["bridge"]);
    }

    #[test]
    fn unknown_filter_and_garbage_are_refused() {
        assert!(Filters::parse(Some(r#"{"colour":["red"]}"#), &["name"]).is_err());
        assert!(Filters::parse(Some("{not json"), &["name"]).is_err());
        assert!(Filters::parse(Some("[1]"), &["name"]).is_err());
        assert_eq!(Filters::parse(Some(""), &[]).unwrap(), Filters::default());
    }

    #[test]
    fn labels_match_key_and_key_value() {
        let f = Filters::parse(Some(r#"{"label":["team=a","env"]}"#), &["label"]).unwrap();
        let mut labels = BTreeMap::from([("team".to_string(), "a".to_string())]);
        assert!(!f.labels_match(&labels));
        labels.insert("env".into(), "x".into());
        assert!(f.labels_match(&labels));
        labels.insert("team".into(), "b".into());
        assert!(!f.labels_match(&labels));
    }

    #[test]
    fn docker_booleans() {
        for t in ["1", "true", "True", "yes"] {
            assert!(query_bool(Some(t)), "{t}");
        }
        for f in ["", "0", "no", "FALSE", "none"] {
            assert!(!query_bool(Some(f)), "{f}");
        }
        assert!(!query_bool(None));
    }
}
