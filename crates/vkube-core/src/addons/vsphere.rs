//! What the CPI and the CSI driver share: the checks on how vCenter is
//! reached and who logs in, version-pin lookup, and the names of the files
//! the CA bundle and the redaction marker use.

use super::{AddonInput, Error};

/// Replaces secrets in configs printed for people.
pub(crate) const REDACTED: &str = "<redacted>";

/// File name of the vCenter CA bundle inside the config volume.
pub(crate) const CA_FILE_NAME: &str = "vcenter-ca.pem";

/// An [`Error::Invalid`] for `component`.
pub(crate) fn invalid(component: &str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        component: component.to_owned(),
        reason: reason.into(),
    }
}

/// The entry of `pins` for the Kubernetes minor of `input`, or
/// [`Error::UnsupportedVersion`] for `component`.
pub(crate) fn pinned<'t, T>(
    pins: &'t [(u64, T)],
    input: &AddonInput<'_>,
    component: &str,
) -> Result<&'t T, Error> {
    let minor = input.kubernetes.minor();
    pins.iter()
        .find(|(pinned, _)| input.kubernetes.major() == 1 && *pinned == minor)
        .map(|(_, pin)| pin)
        .ok_or_else(|| Error::UnsupportedVersion {
            component: component.to_owned(),
            version: input.kubernetes.to_string(),
        })
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
        return Err(invalid(
            component,
            format!(
                "vCenter server `{}` is not a host name or address",
                vcenter.server
            ),
        ));
    }
    if vcenter.port == 0 {
        return Err(invalid(component, "vCenter port must not be 0"));
    }
    if input.datacenters.is_empty() {
        return Err(invalid(component, "no datacenter given for the nodes"));
    }
    if let Some(bad) = input
        .datacenters
        .iter()
        .find(|dc| dc.trim().is_empty() || dc.contains(',') || dc.chars().any(char::is_control))
    {
        return Err(invalid(
            component,
            format!("datacenter `{bad}` cannot be listed (empty, or contains `,`)"),
        ));
    }
    if let Some(thumbprint) = &vcenter.thumbprint {
        if !is_thumbprint(thumbprint) {
            return Err(invalid(
                component,
                format!("thumbprint `{thumbprint}` is not hex byte pairs joined by `:`"),
            ));
        }
    }
    if let Some(pem) = &vcenter.ca_pem {
        if !pem.contains("-----BEGIN CERTIFICATE-----")
            || !pem.contains("-----END CERTIFICATE-----")
        {
            return Err(invalid(
                component,
                "the vCenter CA bundle holds no PEM certificate",
            ));
        }
    }
    let credentials = input.credentials;
    if credentials.username.trim().is_empty() || credentials.username.chars().any(char::is_control)
    {
        return Err(invalid(
            component,
            "the cluster's vCenter user name is empty",
        ));
    }
    if credentials.password.is_empty() {
        return Err(invalid(
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

/// The PEM bundle as a file's content, ending with a newline.
pub(crate) fn ca_file_content(pem: &str) -> String {
    let mut content = pem.trim().to_owned();
    content.push('\n');
    content
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
