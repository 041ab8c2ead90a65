//! What the CPI and the CSI driver share: the checks on how vCenter is
//! reached and who logs in, version-pin lookup, the files of their config
//! volumes (with the CA bundle) and the redaction marker.

use std::collections::BTreeMap;

use super::{AddonInput, Error};

/// Replaces secrets in configs printed for people.
pub(crate) const REDACTED: &str = "<redacted>";

/// File name of the vCenter CA bundle inside the config volume.
pub(crate) const CA_FILE_NAME: &str = "vcenter-ca.pem";

/// The entry of `pins` (one per Kubernetes minor) for the minor of
/// `input`, or [`Error::UnsupportedVersion`] for `component`.
pub(crate) fn pinned<'t, T>(
    pins: &'t [(u64, T)],
    input: &AddonInput<'_>,
    component: &str,
) -> Result<&'t T, Error> {
    super::pinned(pins, |(minor, _)| *minor..=*minor, input, component).map(|(_, pin)| pin)
}

/// Checks what both vSphere components need: a server name, at least one
/// datacenter (none containing the `,` the CSI config lists them with), a
/// well-formed thumbprint and CA bundle when given, and a user with a
/// password.
pub(crate) fn check_vcenter(input: &AddonInput<'_>, component: &str) -> Result<(), Error> {
    let vcenter = input.vcenter;
    if vcenter.server.is_empty()
        || vcenter
            .server
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\\')
    {
        return Err(Error::invalid(
            component,
            format!(
                "vCenter server `{}` is not a host name or address",
                vcenter.server
            ),
        ));
    }
    if vcenter.port == 0 {
        return Err(Error::invalid(component, "vCenter port must not be 0"));
    }
    if input.datacenters.is_empty() {
        return Err(Error::invalid(
            component,
            "no datacenter given for the nodes",
        ));
    }
    if let Some(bad) = input
        .datacenters
        .iter()
        .find(|dc| dc.trim().is_empty() || dc.contains(',') || dc.chars().any(char::is_control))
    {
        return Err(Error::invalid(
            component,
            format!("datacenter `{bad}` cannot be listed (empty, or contains `,`)"),
        ));
    }
    if let Some(thumbprint) = &vcenter.thumbprint {
        if !is_thumbprint(thumbprint) {
            return Err(Error::invalid(
                component,
                format!("thumbprint `{thumbprint}` is not hex byte pairs joined by `:`"),
            ));
        }
    }
    if let Some(pem) = &vcenter.ca_pem {
        if !pem.contains("-----BEGIN CERTIFICATE-----")
            || !pem.contains("-----END CERTIFICATE-----")
        {
            return Err(Error::invalid(
                component,
                "the vCenter CA bundle holds no PEM certificate",
            ));
        }
    }
    let credentials = input.credentials;
    if credentials.username.trim().is_empty() || credentials.username.chars().any(char::is_control)
    {
        return Err(Error::invalid(
            component,
            "the cluster's vCenter user name is empty",
        ));
    }
    if credentials.password.is_empty() {
        return Err(Error::invalid(
            component,
            format!(
                "the password of vCenter user `{}` is empty",
                credentials.username
            ),
        ));
    }
    Ok(())
}

/// `AA:BB:…`: hex byte pairs separated by colons (SHA-1 or SHA-256).
fn is_thumbprint(text: &str) -> bool {
    let pairs: Vec<&str> = text.split(':').collect();
    pairs.len() >= 2
        && pairs
            .iter()
            .all(|pair| pair.len() == 2 && pair.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The files of a config volume: `name` holding `content`, and the vCenter
/// CA bundle (if any) as [`CA_FILE_NAME`], ending with a newline.
pub(crate) fn config_files(
    input: &AddonInput<'_>,
    name: &str,
    content: String,
) -> BTreeMap<String, String> {
    let mut files = BTreeMap::from([(name.to_owned(), content)]);
    if let Some(pem) = &input.vcenter.ca_pem {
        files.insert(CA_FILE_NAME.to_owned(), format!("{}\n", pem.trim()));
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addons::testing::Fixture;

    #[test]
    fn endpoint_checks_name_the_problem() {
        let reason = |change: fn(&mut Fixture)| {
            let mut fixture = Fixture::two_zones(30);
            change(&mut fixture);
            match check_vcenter(&fixture.input(), "cpi") {
                Err(Error::Invalid { reason, .. }) => reason,
                other => panic!("{other:?}"),
            }
        };
        assert!(reason(|f| f.vcenter.server.clear()).contains("not a host name"));
        assert!(reason(|f| f.datacenters.clear()).contains("no datacenter"));
        assert!(reason(|f| f.datacenters[0] = "a,b".into()).contains("`a,b`"));
        assert!(reason(|f| f.vcenter.thumbprint = Some("AABB".into())).contains("thumbprint"));
        assert!(reason(|f| f.vcenter.ca_pem = Some("junk".into())).contains("PEM"));
        assert!(reason(|f| f.credentials.password.clear()).contains("password"));
        assert!(check_vcenter(&Fixture::two_zones(30).input(), "cpi").is_ok());
    }

    #[test]
    fn pins_cover_exactly_the_supported_minors() {
        let pins = [(28, "a"), (29, "b")];
        assert_eq!(
            pinned(&pins, &Fixture::two_zones(29).input(), "x"),
            Ok(&"b")
        );
        assert_eq!(
            pinned(&pins, &Fixture::two_zones(27).input(), "x"),
            Err(Error::UnsupportedVersion {
                component: "x".into(),
                version: "v1.27.4".into()
            })
        );
    }
}
