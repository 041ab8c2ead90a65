//! The admin kubeconfig: the cluster's API endpoint, the cluster CA, and a
//! client certificate signed by it (see [`ClusterPki::admin_certificate`]).
//!
//! Renders a string only. Writing it with mode 0600 is the CLI's job
//! (`vkube cluster kubeconfig`).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Serialize;

use super::pki::{CertificateAndKey, ClusterPki};
use super::values::ClusterName;

/// kubeconfig v1 (`clientcmd/api/v1.Config`): `apiVersion` and `kind` in
/// camelCase like every Kubernetes object, its own fields in kebab-case.
#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Kubeconfig<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'a str,
    kind: &'a str,
    clusters: [Named<'a, ClusterEntry>; 1],
    users: [Named<'a, UserEntry>; 1],
    contexts: [Named<'a, ContextEntry<'a>>; 1],
    current_context: &'a str,
    preferences: std::collections::BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Named<'a, T> {
    name: &'a str,
    #[serde(flatten)]
    entry: T,
}

#[derive(Serialize)]
struct ClusterEntry {
    cluster: ClusterFields,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct ClusterFields {
    server: String,
    certificate_authority_data: String,
}

#[derive(Serialize)]
struct UserEntry {
    user: UserFields,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct UserFields {
    client_certificate_data: String,
    client_key_data: String,
}

#[derive(Serialize)]
struct ContextEntry<'a> {
    context: ContextFields<'a>,
}

#[derive(Serialize)]
struct ContextFields<'a> {
    cluster: &'a str,
    user: &'a str,
}

/// The admin kubeconfig for `cluster`: server `https://<endpoint>` (e.g.
/// `10.20.0.5:6443`), the cluster CA, and `client` (user `<cluster>-admin`,
/// context `<cluster>-admin@<cluster>`). Secret: write it 0600.
pub fn render_admin_kubeconfig(
    cluster: &ClusterName,
    endpoint: &str,
    pki: &ClusterPki,
    client: &CertificateAndKey,
) -> String {
    let user = format!("{cluster}-admin");
    let context = format!("{user}@{cluster}");
    let config = Kubeconfig {
        api_version: "v1",
        kind: "Config",
        clusters: [Named {
            name: cluster.as_str(),
            entry: ClusterEntry {
                cluster: ClusterFields {
                    server: format!("https://{endpoint}"),
                    certificate_authority_data: STANDARD.encode(&pki.ca.pair.cert_pem),
                },
            },
        }],
        users: [Named {
            name: &user,
            entry: UserEntry {
                user: UserFields {
                    client_certificate_data: STANDARD.encode(&client.cert_pem),
                    client_key_data: STANDARD.encode(&client.key_pem),
                },
            },
        }],
        contexts: [Named {
            name: &context,
            entry: ContextEntry {
                context: ContextFields {
                    cluster: cluster.as_str(),
                    user: &user,
                },
            },
        }],
        current_context: &context,
        preferences: Default::default(),
    };
    serde_yaml::to_string(&config).expect("plain structs serialize")
}

#[cfg(test)]
mod tests {
    use super::super::pki::tests::{now, pki, seeded, version};
    use super::super::pki::ADMIN_VALIDITY;
    use super::*;

    fn render() -> (String, ClusterPki, CertificateAndKey) {
        let pki = pki();
        let admin = pki
            .admin_certificate(
                "demo-admin",
                &version("v1.30.2"),
                now(),
                ADMIN_VALIDITY,
                &mut seeded(9),
            )
            .unwrap();
        let text = render_admin_kubeconfig(
            &ClusterName::new("demo").unwrap(),
            "10.20.0.5:6443",
            &pki,
            &admin,
        );
        (text, pki, admin)
    }

    #[test]
    fn kubeconfig_parses_back() {
        let (text, pki, admin) = render();
        let value: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(value["apiVersion"], "v1");
        assert_eq!(value["kind"], "Config");
        assert_eq!(value["current-context"], "demo-admin@demo");
        assert_eq!(
            value["clusters"][0]["cluster"]["server"],
            "https://10.20.0.5:6443"
        );
        let ca = value["clusters"][0]["cluster"]["certificate-authority-data"]
            .as_str()
            .unwrap();
        assert_eq!(
            STANDARD.decode(ca).unwrap(),
            pki.ca.pair.cert_pem.as_bytes()
        );
        let key = value["users"][0]["user"]["client-key-data"]
            .as_str()
            .unwrap();
        assert_eq!(STANDARD.decode(key).unwrap(), admin.key_pem.as_bytes());
        assert_eq!(value["contexts"][0]["context"]["user"], "demo-admin");
    }

    /// The field names of kubeconfig v1, exactly: camelCase `apiVersion`
    /// and `kind`, kebab-case for the rest.
    #[test]
    fn kubeconfig_uses_the_v1_field_names() {
        let (text, _, _) = render();
        let value: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let keys = |v: &serde_yaml::Value| -> Vec<String> {
            let map = v.as_mapping().unwrap();
            map.keys().map(|k| k.as_str().unwrap().to_owned()).collect()
        };
        assert_eq!(
            keys(&value),
            [
                "apiVersion",
                "kind",
                "clusters",
                "users",
                "contexts",
                "current-context",
                "preferences"
            ]
        );
        assert_eq!(keys(&value["clusters"][0]), ["name", "cluster"]);
        assert_eq!(
            keys(&value["clusters"][0]["cluster"]),
            ["server", "certificate-authority-data"]
        );
        assert_eq!(
            keys(&value["users"][0]["user"]),
            ["client-certificate-data", "client-key-data"]
        );
        assert_eq!(keys(&value["contexts"][0]["context"]), ["cluster", "user"]);
    }
}
