//! What vkube records about an image it imported, in the VM's extraConfig
//! (`vkube.image.*`, readable through the API by any later run) and, for
//! people, in its annotation.

use std::collections::BTreeMap;

use serde::Serialize;

use super::ImageOs;

/// extraConfig key prefix of the image record.
pub const PREFIX: &str = "vkube.image.";
const OS: &str = "vkube.image.os";
const KUBERNETES: &str = "vkube.image.kubernetesVersion";
const SOURCE: &str = "vkube.image.source";
const SHA256: &str = "vkube.image.sha256";
const PRODUCT: &str = "vkube.image.product";
const IMPORTED: &str = "vkube.image.importedAt";

/// What vkube knows about an imported image.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRecord {
    /// Guest OS family.
    pub os: Option<ImageOs>,
    /// Kubernetes version the image carries (image-builder images pin one).
    pub kubernetes_version: Option<String>,
    /// Where it came from: a file name or a URL without credentials or query.
    pub source: Option<String>,
    /// SHA-256 of the source as read (the OVA, the descriptor, or the disk image).
    pub sha256: Option<String>,
    /// Product name and version from the descriptor.
    pub product: Option<String>,
    /// When it was imported (RFC 3339, UTC), as the caller's clock said.
    pub imported_at: Option<String>,
}

impl ImageRecord {
    /// Whether vkube recorded anything (the VM was imported by vkube).
    pub fn is_recorded(&self) -> bool {
        self.sha256.is_some() || self.source.is_some()
    }

    /// The extraConfig pairs.
    pub fn to_extra_config(&self) -> Vec<(String, String)> {
        [
            (OS, self.os.map(|o| o.as_str().to_string())),
            (KUBERNETES, self.kubernetes_version.clone()),
            (SOURCE, self.source.clone()),
            (SHA256, self.sha256.clone()),
            (PRODUCT, self.product.clone()),
            (IMPORTED, self.imported_at.clone()),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
        .collect()
    }

    /// Read the record back from a VM's extraConfig.
    pub fn from_extra_config(extra: &BTreeMap<String, String>) -> ImageRecord {
        let get = |k: &str| extra.get(k).filter(|v| !v.is_empty()).cloned();
        ImageRecord {
            os: get(OS).map(|o| ImageOs::parse(&o)),
            kubernetes_version: get(KUBERNETES),
            source: get(SOURCE),
            sha256: get(SHA256),
            product: get(PRODUCT),
            imported_at: get(IMPORTED),
        }
    }

    /// The annotation (VM notes) vCenter's UI shows.
    pub fn annotation(&self) -> String {
        let mut lines = vec![format!(
            "Imported by vkube from {}",
            self.source.as_deref().unwrap_or("an unknown source")
        )];
        if let Some(product) = &self.product {
            lines.push(format!("Product: {product}"));
        }
        lines.push(format!(
            "OS: {}; Kubernetes: {}",
            self.os.map_or("unknown", |o| o.as_str()),
            self.kubernetes_version
                .as_deref()
                .unwrap_or("none recorded")
        ));
        if let Some(sha) = &self.sha256 {
            lines.push(format!("SHA-256: {sha}"));
        }
        if let Some(at) = &self.imported_at {
            lines.push(format!("Imported at: {at}"));
        }
        lines.join("\n")
    }
}

/// A source as it may be recorded and shown: URLs lose their user info
/// (credentials) and query (pre-signed tokens); file paths are kept.
pub fn displayable_source(source: &str) -> String {
    let Some((scheme, rest)) = source.split_once("://") else {
        return source.to_string();
    };
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{scheme}://{host}{path}")
}

/// `unix_seconds` as RFC 3339 in UTC (`2024-05-01T10:00:00Z`), for
/// [`ImageRecord::imported_at`]; the caller reads the clock.
pub fn rfc3339_utc(unix_seconds: i64) -> String {
    let days = unix_seconds.div_euclid(86_400);
    let secs = unix_seconds.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_as_rfc3339_utc() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_714_557_600), "2024-05-01T10:00:00Z");
        assert_eq!(rfc3339_utc(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn records_round_trip_through_extra_config() {
        let record = ImageRecord {
            os: Some(ImageOs::Flatcar),
            kubernetes_version: Some("v1.30.2".into()),
            source: Some("https://images.example/flatcar.ova".into()),
            sha256: Some("ab".repeat(32)),
            product: Some("Flatcar Container Linux 3815.2.5".into()),
            imported_at: Some("2024-05-01T10:00:00Z".into()),
        };
        let extra: BTreeMap<String, String> = record.to_extra_config().into_iter().collect();
        assert!(extra.keys().all(|k| k.starts_with(PREFIX)));
        assert_eq!(ImageRecord::from_extra_config(&extra), record);
        assert!(record.is_recorded());
        let note = record.annotation();
        assert!(
            note.contains("flatcar") && note.contains("v1.30.2"),
            "{note}"
        );
        let unknown = ImageRecord::from_extra_config(&BTreeMap::new());
        assert!(!unknown.is_recorded());
        assert!(unknown.to_extra_config().is_empty());
    }

    #[test]
    fn sources_lose_credentials_and_queries() {
        assert_eq!(
            displayable_source("https://u:secret@host:8443/a/b.ova?X-Amz-Signature=abc#f"),
            "https://host:8443/a/b.ova"
        );
        assert_eq!(displayable_source("/tmp/x.ova"), "/tmp/x.ova");
        assert_eq!(displayable_source("http://host"), "http://host");
    }
}
