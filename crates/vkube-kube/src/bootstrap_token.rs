//! Bootstrap tokens: the kube-system Secret `bootstrap-token-<id>` that the API server's
//! bootstrap authenticator reads, shaped as `kubeadm token create` writes it, so that
//! `kubeadm join` with `<id>.<secret>` works until the expiration and the token cleaner
//! removes it afterwards.

use std::collections::BTreeMap;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;

use crate::apply::ApplyTarget;
use crate::client::KubeClient;
use crate::discovery::ServedResource;
use crate::error::{Error, Redactor, Result};

/// Field manager of the bootstrap token Secrets vkube applies.
pub const BOOTSTRAP_TOKEN_FIELD_MANAGER: &str = "vkube";

/// Secret type the bootstrap authenticator looks for.
const TOKEN_SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";

/// Group kubeadm's RBAC lets create CSRs and read the cluster-info ConfigMap for joining nodes.
const KUBEADM_NODE_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";

/// The Secret for the token `<token_id>.<token_secret>` valid until `expires`.
pub(crate) fn render_secret(
    token_id: &str,
    token_secret: &str,
    expires: SystemTime,
    description: &str,
) -> Result<Secret> {
    check_token(token_id, token_secret)?;
    let expiration = chrono::DateTime::<chrono::Utc>::from(expires)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut data: BTreeMap<String, ByteString> = [
        ("token-id", token_id),
        ("token-secret", token_secret),
        ("expiration", expiration.as_str()),
        ("usage-bootstrap-authentication", "true"),
        ("usage-bootstrap-signing", "true"),
        ("auth-extra-groups", KUBEADM_NODE_GROUP),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_string(), ByteString(value.as_bytes().to_vec())))
    .collect();
    if !description.is_empty() {
        data.insert(
            "description".into(),
            ByteString(description.as_bytes().to_vec()),
        );
    }
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(secret_name(token_id)),
            namespace: Some("kube-system".into()),
            ..ObjectMeta::default()
        },
        type_: Some(TOKEN_SECRET_TYPE.into()),
        data: Some(data),
        ..Secret::default()
    })
}

fn secret_name(token_id: &str) -> String {
    format!("bootstrap-token-{token_id}")
}

/// The formats the bootstrap authenticator accepts: `[a-z0-9]{6}` and `[a-z0-9]{16}`. The
/// secret itself is never part of the message.
fn check_token(token_id: &str, token_secret: &str) -> Result<()> {
    let well_formed = |text: &str, len: usize| {
        text.len() == len
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    if !well_formed(token_id, 6) {
        return Err(Error::InvalidInput(format!(
            "bootstrap token id `{token_id}` must be 6 characters of [a-z0-9]"
        )));
    }
    if !well_formed(token_secret, 16) {
        return Err(Error::InvalidInput(format!(
            "the secret of bootstrap token `{token_id}` must be 16 characters of [a-z0-9]"
        )));
    }
    Ok(())
}

impl KubeClient {
    pub(crate) async fn apply_bootstrap_token(
        &self,
        token_id: &str,
        token_secret: &str,
        expires: SystemTime,
        description: &str,
    ) -> Result<()> {
        let secret = render_secret(token_id, token_secret, expires, description)?;
        if expires <= SystemTime::now() {
            return Err(Error::InvalidInput(format!(
                "bootstrap token `{token_id}` would already be expired; the token cleaner \
                 deletes expired tokens"
            )));
        }
        let body = serde_json::to_value(&secret).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let name = secret_name(token_id);
        let what = format!("apply of Secret kube-system/{name} (bootstrap token)");
        let redactor = Redactor::new([
            token_secret.to_string(),
            format!("{token_id}.{token_secret}"),
        ]);
        let secrets = ServedResource {
            kind: "Secret".into(),
            plural: "secrets".into(),
            namespaced: true,
        };
        let target = ApplyTarget {
            api_version: "v1",
            resource: &secrets,
            namespace: Some("kube-system"),
            name: &name,
            body: &body,
        };
        let (outcome, _) = self
            .server_side_apply(&target, BOOTSTRAP_TOKEN_FIELD_MANAGER, &what, &redactor)
            .await?;
        tracing::debug!(token_id, ?outcome, "bootstrap token applied");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn expires() -> SystemTime {
        // 2031-05-04T03:02:01Z, with a fraction that must not show.
        UNIX_EPOCH + Duration::from_millis(1_935_630_121_250)
    }

    fn data(secret: &Secret) -> BTreeMap<String, String> {
        secret
            .data
            .as_ref()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), String::from_utf8(v.0.clone()).unwrap()))
            .collect()
    }

    #[test]
    fn secret_has_kubeadms_shape() {
        let secret = render_secret("abcdef", "0123456789abcdef", expires(), "vkube nodes").unwrap();
        assert_eq!(
            secret.metadata.name.as_deref(),
            Some("bootstrap-token-abcdef")
        );
        assert_eq!(secret.metadata.namespace.as_deref(), Some("kube-system"));
        assert_eq!(
            secret.type_.as_deref(),
            Some("bootstrap.kubernetes.io/token")
        );
        let expected: BTreeMap<String, String> = [
            (
                "auth-extra-groups",
                "system:bootstrappers:kubeadm:default-node-token",
            ),
            ("description", "vkube nodes"),
            ("expiration", "2031-05-04T03:02:01Z"),
            ("token-id", "abcdef"),
            ("token-secret", "0123456789abcdef"),
            ("usage-bootstrap-authentication", "true"),
            ("usage-bootstrap-signing", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(data(&secret), expected);

        let json = serde_json::to_value(&secret).unwrap();
        assert_eq!(json["apiVersion"], "v1");
        assert_eq!(json["kind"], "Secret");
        assert_eq!(
            json["data"]["token-id"], "YWJjZGVm",
            "data is base64 on the wire"
        );
    }

    #[test]
    fn empty_descriptions_are_left_out() {
        let secret = render_secret("abcdef", "0123456789abcdef", expires(), "").unwrap();
        assert!(!data(&secret).contains_key("description"));
    }

    #[test]
    fn malformed_tokens_are_refused_without_echoing_the_secret() {
        for (id, secret) in [
            ("abcde", "0123456789abcdef"),
            ("ABCDEF", "0123456789abcdef"),
            ("abcdef", "0123456789ABCDEF"),
            ("abcdef", "0123456789abcde"),
        ] {
            let err = render_secret(id, secret, expires(), "").unwrap_err();
            assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
            assert!(!err.to_string().contains(secret), "{err}");
        }
    }

    /// The Secret passes the Kubernetes OpenAPI schema of every supported minor.
    #[test]
    fn secret_passes_kubernetes_validate_strict() {
        let required = std::env::var("VKUBE_REQUIRE_KUBERNETES_VALIDATE").is_ok_and(|v| v == "1");
        if Command::new("kubernetes-validate")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(
                !required,
                "VKUBE_REQUIRE_KUBERNETES_VALIDATE=1 but `kubernetes-validate` is not installed"
            );
            eprintln!("note: `kubernetes-validate` not installed, skipping schema validation");
            return;
        }
        let secret = render_secret("abcdef", "0123456789abcdef", expires(), "vkube nodes").unwrap();
        let dir = tempfile_dir();
        let path = dir.join("bootstrap-token.yaml");
        std::fs::write(&path, serde_yaml::to_string(&secret).unwrap()).unwrap();
        for minor in 28..=33 {
            let out = Command::new("kubernetes-validate")
                .args(["--strict", "-k", &format!("1.{minor}.0")])
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "1.{minor}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("vkube-kube-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
