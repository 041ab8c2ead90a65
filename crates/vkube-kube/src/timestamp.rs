//! Timestamps of the typed results: `SystemTime` in Rust, RFC 3339 in UTC with whole seconds
//! when serialized (`2024-09-03T10:41:12Z`), as the API server writes them.

use std::time::SystemTime;

use serde::{Deserialize, Deserializer, Serializer};

/// The API server's time as a `SystemTime`.
pub(crate) fn from_kubernetes(
    time: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
) -> SystemTime {
    SystemTime::from(time.0)
}

/// `serde(with = "crate::timestamp::optional")` for `Option<SystemTime>`.
pub(crate) mod optional {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        time: &Option<SystemTime>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match time {
            Some(time) => serializer.serialize_some(&format(*time)),
            None => serializer.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<SystemTime>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| parse(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

fn format(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn parse(text: &str) -> Result<SystemTime, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(SystemTime::from)
        .map_err(|e| format!("`{text}` is not an RFC 3339 time: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Stamped {
        #[serde(with = "optional", default)]
        at: Option<SystemTime>,
    }

    #[test]
    fn times_round_trip_as_rfc_3339() {
        let at = parse("2024-09-03T10:41:12Z").unwrap();
        let json = serde_json::to_string(&Stamped { at: Some(at) }).unwrap();
        assert_eq!(json, r#"{"at":"2024-09-03T10:41:12Z"}"#);
        assert_eq!(serde_json::from_str::<Stamped>(&json).unwrap().at, Some(at));
        assert_eq!(serde_json::from_str::<Stamped>("{}").unwrap().at, None);
        assert!(serde_json::from_str::<Stamped>(r#"{"at":"yesterday"}"#).is_err());
    }
}
