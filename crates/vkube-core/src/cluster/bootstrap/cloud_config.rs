//! The vSphere cloud provider config (`vsphere.conf`, INI form) read by the
//! out-of-tree CPI and the CSI driver: cluster id, one vCenter with the
//! cluster's own credentials, and optional region/zone tag categories.
//!
//! Renders a string; deploying it as a Secret is the add-on installer's
//! job. Use per-cluster credentials: every node-side component that reads
//! this file can act as that user.

use super::super::values::ClusterName;

/// How the CPI reaches vCenter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VcenterAccess<'a> {
    /// Host name or address.
    pub server: &'a str,
    /// Port, normally 443.
    pub port: u16,
    /// The cluster's own vCenter user.
    pub user: &'a str,
    /// Its password.
    pub password: &'a str,
    /// SHA-1 thumbprint to pin instead of CA verification, if any.
    pub thumbprint: Option<&'a str>,
    /// Skip TLS verification (labs only).
    pub insecure: bool,
}

/// Tag categories marking regions (datacenters) and zones (clusters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZoneLabels<'a> {
    /// Category of region tags, e.g. `k8s-region`.
    pub region: &'a str,
    /// Category of zone tags, e.g. `k8s-zone`.
    pub zone: &'a str,
}

/// gcfg quoting: backslash and double quote escaped, value in quotes.
fn quote(value: &str) -> String {
    let mut quoted = String::from("\"");
    for c in value.chars() {
        match c {
            '\\' => quoted.push_str("\\\\"),
            '"' => quoted.push_str("\\\""),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// `vsphere.conf` for `cluster` in `datacenters`. Secret (password).
pub fn render_vsphere_conf(
    cluster: &ClusterName,
    datacenters: &[&str],
    access: &VcenterAccess<'_>,
    labels: Option<ZoneLabels<'_>>,
) -> String {
    let mut text = format!("[Global]\ncluster-id = {}\n", quote(cluster.as_str()));
    text.push_str(&format!("\n[VirtualCenter {}]\n", quote(access.server)));
    text.push_str(&format!("port = {}\n", quote(&access.port.to_string())));
    text.push_str(&format!("user = {}\n", quote(access.user)));
    text.push_str(&format!("password = {}\n", quote(access.password)));
    text.push_str(&format!(
        "datacenters = {}\n",
        quote(&datacenters.join(","))
    ));
    if access.insecure {
        text.push_str("insecure-flag = \"1\"\n");
    }
    if let Some(thumbprint) = access.thumbprint {
        text.push_str(&format!("thumbprint = {}\n", quote(thumbprint)));
    }
    if let Some(labels) = labels {
        text.push_str(&format!(
            "\n[Labels]\nregion = {}\nzone = {}\n",
            quote(labels.region),
            quote(labels.zone)
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_ini_with_escaping() {
        let access = VcenterAccess {
            server: "vc.example.com",
            port: 443,
            user: "svc-demo@vsphere.local",
            password: "p\"a\\ss",
            thumbprint: None,
            insecure: true,
        };
        let text = render_vsphere_conf(
            &ClusterName::new("demo").unwrap(),
            &["DC0"],
            &access,
            Some(ZoneLabels {
                region: "k8s-region",
                zone: "k8s-zone",
            }),
        );
        assert_eq!(
            text,
            r#"[Global]
cluster-id = "demo"

[VirtualCenter "vc.example.com"]
port = "443"
user = "svc-demo@vsphere.local"
password = "p\"a\\ss"
datacenters = "DC0"
insecure-flag = "1"

[Labels]
region = "k8s-region"
zone = "k8s-zone"
"#
        );
        let plain = render_vsphere_conf(
            &ClusterName::new("demo").unwrap(),
            &["DC0", "DC1"],
            &VcenterAccess {
                insecure: false,
                thumbprint: Some("AA:BB"),
                ..access
            },
            None,
        );
        assert!(
            plain.contains("datacenters = \"DC0,DC1\"\nthumbprint = \"AA:BB\"\n")
                && !plain.contains("[Labels]"),
            "{plain}"
        );
    }
}
