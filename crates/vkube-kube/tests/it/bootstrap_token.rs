//! Bootstrap token Secrets through the stand-in: the request kubeadm's authenticator relies on,
//! create then update (a later apply extends or replaces the expiration), and errors that never
//! contain the token secret.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use base64::Engine;
use vkube_kube::{ClusterApi, Error, BOOTSTRAP_TOKEN_FIELD_MANAGER};

use crate::stand_in_with_client;
use vkube_test_support::kube_api::fixtures::STATUS_403_FORBIDDEN;
use vkube_test_support::kube_api::Reply;

const PATH: &str = "/api/v1/namespaces/kube-system/secrets/bootstrap-token-7h3k9q";

fn decoded_data(secret: &serde_json::Value) -> BTreeMap<String, String> {
    secret["data"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap())
                .unwrap();
            (k.clone(), String::from_utf8(bytes).unwrap())
        })
        .collect()
}

fn rfc3339(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[tokio::test]
async fn bootstrap_token_secret_applied_to_stand_in_has_kubeadms_shape() {
    let (_pki, stand_in, client) = stand_in_with_client().await;
    let expires = SystemTime::now() + Duration::from_secs(24 * 3600);
    client
        .ensure_bootstrap_token(
            "7h3k9q",
            "x2v8m4p0a7c1d9f6",
            expires,
            "joins for cluster demo",
        )
        .await
        .unwrap();

    let requests = stand_in.requests_matching("PATCH", PATH);
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(
        request.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    let mut query = request.query_pairs();
    query.sort();
    assert_eq!(
        query,
        [
            (
                "fieldManager".to_string(),
                BOOTSTRAP_TOKEN_FIELD_MANAGER.to_string()
            ),
            ("force".to_string(), "true".to_string())
        ]
    );
    let body = request.json();
    assert_eq!(body["apiVersion"], "v1");
    assert_eq!(body["kind"], "Secret");
    assert_eq!(body["type"], "bootstrap.kubernetes.io/token");
    assert_eq!(body["metadata"]["name"], "bootstrap-token-7h3k9q");
    assert_eq!(body["metadata"]["namespace"], "kube-system");
    let data = decoded_data(&body);
    let expected: BTreeMap<String, String> = [
        (
            "auth-extra-groups",
            "system:bootstrappers:kubeadm:default-node-token".to_string(),
        ),
        ("description", "joins for cluster demo".to_string()),
        ("expiration", rfc3339(expires)),
        ("token-id", "7h3k9q".to_string()),
        ("token-secret", "x2v8m4p0a7c1d9f6".to_string()),
        ("usage-bootstrap-authentication", "true".to_string()),
        ("usage-bootstrap-signing", "true".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(data, expected);

    // A later apply for the same token updates the stored Secret in place.
    let later = expires + Duration::from_secs(3600);
    client
        .ensure_bootstrap_token(
            "7h3k9q",
            "x2v8m4p0a7c1d9f6",
            later,
            "joins for cluster demo",
        )
        .await
        .unwrap();
    let stored = stand_in.object(PATH).unwrap();
    assert_eq!(decoded_data(&stored)["expiration"], rfc3339(later));
    assert_eq!(stored["metadata"]["managedFields"][0]["manager"], "vkube");
    assert_eq!(stand_in.requests_matching("PATCH", PATH).len(), 2);
}

#[tokio::test]
async fn expired_or_malformed_tokens_are_refused_without_contacting_stand_in() {
    let (_pki, stand_in, client) = stand_in_with_client().await;
    let past = SystemTime::now() - Duration::from_secs(1);
    let err = client
        .ensure_bootstrap_token("7h3k9q", "x2v8m4p0a7c1d9f6", past, "")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("would already be expired"),
        "{err}"
    );
    let future = SystemTime::now() + Duration::from_secs(600);
    let err = client
        .ensure_bootstrap_token("7h3k9q", "X2V8M4P0A7C1D9F6", future, "")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    assert!(!err.to_string().contains("X2V8M4P0A7C1D9F6"), "{err}");
    assert!(stand_in.requests().is_empty());
}

#[tokio::test]
async fn recorded_403_for_the_token_secret_names_it_and_hides_the_secret() {
    let (_pki, stand_in, client) = stand_in_with_client().await;
    // The recorded RBAC refusal, with the token echoed to prove it would be scrubbed.
    let echo = STATUS_403_FORBIDDEN.replace(
        "at the cluster scope",
        "at the cluster scope (token 7h3k9q.x2v8m4p0a7c1d9f6)",
    );
    stand_in.respond("PATCH", PATH, Reply::json(403, echo));
    let future = SystemTime::now() + Duration::from_secs(600);
    let err = client
        .ensure_bootstrap_token("7h3k9q", "x2v8m4p0a7c1d9f6", future, "")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Forbidden { .. }), "{err:?}");
    assert!(
        text.contains("apply of Secret kube-system/bootstrap-token-7h3k9q (bootstrap token)"),
        "{text}"
    );
    assert!(!text.contains("x2v8m4p0a7c1d9f6"), "{text}");
}
