//! `csi-vsphere.conf`, the INI file (Go `gcfg` syntax) the vSphere CSI
//! controller and syncer read: `[Global]` with the cluster id,
//! `[VirtualCenter "<server>"]` with the cluster's vCenter user, and
//! `[Labels]` with the topology categories when the cluster uses zones.

use super::super::vsphere::{check_vcenter, CA_FILE_NAME, REDACTED};
use super::super::{AddonInput, Error};
use super::{COMPONENT, CONFIG_DIR};
use crate::topology::render_csi;

/// Longest cluster id the driver accepts (it checks the byte length).
pub const MAX_CLUSTER_ID_LEN: usize = 64;

/// Checks what the driver itself refuses at start-up: a cluster id of 1
/// to 64 bytes, a user name qualified with its domain (`user@domain` or
/// `domain\user`), plus the shared vCenter checks.
pub(super) fn check(input: &AddonInput<'_>) -> Result<(), Error> {
    check_vcenter(input, COMPONENT)?;
    let id = input.cluster_id;
    if id.is_empty() || id.len() > MAX_CLUSTER_ID_LEN || id.chars().any(char::is_control) {
        return Err(Error::invalid(
            COMPONENT,
            format!(
                "cluster-id `{id}` must be 1 to {MAX_CLUSTER_ID_LEN} characters (it is {})",
                id.len()
            ),
        ));
    }
    let user = &input.credentials.username;
    if !is_qualified_user(user) {
        return Err(Error::invalid(
            COMPONENT,
            format!("vCenter user `{user}` must name its domain: `user@domain` or `domain\\user`"),
        ));
    }
    Ok(())
}

/// `user@domain` or `domain\user`, with the characters the driver allows.
fn is_qualified_user(user: &str) -> bool {
    let name = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    let domain = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
    };
    match (user.split_once('@'), user.split_once('\\')) {
        (Some((user, dom)), None) => name(user) && domain(dom),
        (None, Some((dom, user))) => domain(dom) && name(user),
        _ => false,
    }
}

/// gcfg quoting: the value in double quotes, with `\`, `"`, newline and
/// tab escaped (so `;`, `#` and spaces are literal).
pub(super) fn quote(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
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

/// The file's text with `password` as the password (the real one for the
/// Secret, [`REDACTED`] for people).
pub(super) fn render(input: &AddonInput<'_>, password: &str) -> String {
    let vcenter = input.vcenter;
    let mut text = format!("[Global]\ncluster-id = {}\n", quote(input.cluster_id));
    text.push_str(&format!("\n[VirtualCenter {}]\n", quote(&vcenter.server)));
    let mut key = |name: &str, value: &str| {
        text.push_str(&format!("{name} = {}\n", quote(value)));
    };
    key("user", &input.credentials.username);
    key("password", password);
    key("port", &vcenter.port.to_string());
    key("datacenters", &input.datacenters.join(","));
    key(
        "insecure-flag",
        if vcenter.insecure { "true" } else { "false" },
    );
    if let Some(thumbprint) = &vcenter.thumbprint {
        key("thumbprint", thumbprint);
    }
    if vcenter.ca_pem.is_some() {
        key("ca-file", &format!("{CONFIG_DIR}/{CA_FILE_NAME}"));
    }
    if let Some(categories) = input.categories {
        text.push('\n');
        text.push_str(&render_csi(categories));
    }
    text
}

/// `csi-vsphere.conf` as deployed, with the password shown as
/// `<redacted>` unless `redact` is false (for `vkube cluster cloud-config
/// --csi [--show-secrets]`).
pub fn csi_config(input: &AddonInput<'_>, redact: bool) -> Result<String, Error> {
    super::release(input)?;
    check(input)?;
    let password = if redact {
        REDACTED
    } else {
        input.credentials.password.as_str()
    };
    Ok(render(input, password))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::addons::testing::{Fixture, PASSWORD};

    /// A gcfg reader for the subset vkube writes: `[section]` and
    /// `[section "sub"]` headers; `name = value` where the value is made of
    /// unquoted parts (trimmed, `;`/`#` start a comment) and quoted parts
    /// with `\\`, `\"`, `\n`, `\t` escapes. Keys are `section.sub.name`.
    pub(crate) fn read_gcfg(text: &str) -> BTreeMap<String, String> {
        let mut values = BTreeMap::new();
        let mut section = String::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
                continue;
            }
            if let Some(header) = line.strip_prefix('[') {
                let header = header.strip_suffix(']').expect("section header closes");
                section = match header.split_once(' ') {
                    Some((name, sub)) => {
                        let sub = unquote(sub.trim()).expect("quoted subsection");
                        format!("{name}.{sub}")
                    }
                    None => header.to_owned(),
                };
                continue;
            }
            let (name, raw) = line.split_once('=').expect("name = value");
            let value = unquote(raw.trim()).expect("value parses");
            let key = format!("{section}.{}", name.trim());
            assert!(values.insert(key.clone(), value).is_none(), "{key} twice");
        }
        values
    }

    /// Unquoted whitespace is kept only between parts (gcfg trims the
    /// value's ends); quoted text is kept as is.
    fn unquote(raw: &str) -> Option<String> {
        let mut value = String::new();
        let mut pending_space = String::new();
        let mut chars = raw.trim().chars();
        let mut quoted = false;
        while let Some(c) = chars.next() {
            let literal = match (quoted, c) {
                (false, ';' | '#') => break,
                (false, c) if c.is_whitespace() => {
                    pending_space.push(c);
                    continue;
                }
                (_, '"') => {
                    quoted = !quoted;
                    None
                }
                (true, '\\') => Some(match chars.next()? {
                    '\\' => '\\',
                    '"' => '"',
                    'n' => '\n',
                    't' => '\t',
                    _ => return None,
                }),
                (_, c) => Some(c),
            };
            value.push_str(&std::mem::take(&mut pending_space));
            value.extend(literal);
        }
        (!quoted).then_some(value)
    }

    #[test]
    fn conf_reads_back_key_by_key() {
        let fixture = Fixture::two_zones(33);
        let text = csi_config(&fixture.input(), false).unwrap();
        let values = read_gcfg(&text);
        let expected: BTreeMap<String, String> = [
            ("Global.cluster-id", "vkube-demo-6f1c2a"),
            (
                "VirtualCenter.vc.example.com.user",
                "k8s-demo@vsphere.local",
            ),
            ("VirtualCenter.vc.example.com.password", PASSWORD),
            ("VirtualCenter.vc.example.com.port", "443"),
            ("VirtualCenter.vc.example.com.datacenters", "DC0,on"),
            ("VirtualCenter.vc.example.com.insecure-flag", "false"),
            (
                "VirtualCenter.vc.example.com.thumbprint",
                fixture.vcenter.thumbprint.as_deref().unwrap(),
            ),
            ("Labels.topology-categories", "dc-region,az"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(values, expected, "{text}");

        let plain = Fixture::plain(28);
        let values = read_gcfg(&csi_config(&plain.input(), false).unwrap());
        assert_eq!(
            values["VirtualCenter.fd00:10::5.ca-file"],
            "/etc/cloud/vcenter-ca.pem"
        );
        assert_eq!(values["VirtualCenter.fd00:10::5.port"], "8443");
        assert!(!values.keys().any(|k| k.starts_with("Labels.")));
        assert!(!values.contains_key("VirtualCenter.fd00:10::5.thumbprint"));
    }

    #[test]
    fn gcfg_quoting_escapes_what_gcfg_interprets() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quote("x;y #z\n\t"), "\"x;y #z\\n\\t\"");
        for value in [PASSWORD, "  padded  ", "semi;colon", "hash#", "tab\there"] {
            let line = format!("[s]\nk = {}\n", quote(value));
            assert_eq!(read_gcfg(&line)["s.k"], value);
        }
    }

    #[test]
    fn redacted_config_has_no_password() {
        let fixture = Fixture::two_zones(30);
        let text = csi_config(&fixture.input(), true).unwrap();
        assert!(!text.contains(PASSWORD), "{text}");
        assert_eq!(
            read_gcfg(&text)["VirtualCenter.vc.example.com.password"],
            "<redacted>"
        );
    }

    #[test]
    fn cluster_id_longer_than_64_is_refused() {
        let mut fixture = Fixture::two_zones(31);
        fixture.cluster_id = "x".repeat(64);
        assert!(csi_config(&fixture.input(), true).is_ok());
        fixture.cluster_id = "x".repeat(65);
        let err = csi_config(&fixture.input(), true).unwrap_err();
        assert!(
            matches!(&err, Error::Invalid { reason, .. } if reason.contains("1 to 64")),
            "{err}"
        );
        assert!(super::super::render(&fixture.input()).is_err());
        fixture.cluster_id.clear();
        assert!(csi_config(&fixture.input(), true).is_err());
    }

    #[test]
    fn user_must_name_its_domain() {
        for good in [
            "k8s@vsphere.local",
            "CORP\\k8s-demo",
            "a.b_c-d@ad.example.com",
        ] {
            assert!(is_qualified_user(good), "{good}");
        }
        for bad in [
            "k8s",
            "@vsphere.local",
            "k8s@",
            "a@b@c",
            "CORP\\",
            "k 8s@x",
            "a@b\\c",
        ] {
            assert!(!is_qualified_user(bad), "{bad}");
        }
        let mut fixture = Fixture::two_zones(31);
        fixture.credentials.username = "administrator".into();
        let err = csi_config(&fixture.input(), true).unwrap_err();
        assert!(err.to_string().contains("must name its domain"), "{err}");
    }
}
