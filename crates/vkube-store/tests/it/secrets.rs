//! Secrets at rest: sealed in the file, opened through the store, bound to
//! their row, credentials by name, key rotation, and state files written
//! before sealing existed.

use std::os::unix::fs::PermissionsExt;

use vkube_store::Error;

use crate::{at, create, Backend};

const SPEC: &str = "spec: {}\n";

/// Every value of every secret column, read around the store.
fn raw_values(b: &Backend) -> Vec<String> {
    let mut values = b.strings("SELECT value FROM cluster_secrets");
    values.extend(b.strings("SELECT password FROM cloud_credentials"));
    values
}

async fn cluster_secrets_are_sealed_at_rest(b: Backend) {
    let store = b.open().await;
    create(&store, "prod", "uid-1", SPEC, "h", at(1)).await;
    let pki = "-----BEGIN PRIVATE KEY-----\nvery secret key\n";
    assert_eq!(store.ensure_secret("prod", "pki", pki).await.unwrap(), pki);
    // First writer wins, also sealed.
    assert_eq!(
        store.ensure_secret("prod", "pki", "other").await.unwrap(),
        pki
    );
    assert_eq!(
        store.secret("prod", "pki").await.unwrap().as_deref(),
        Some(pki)
    );
    drop(store);
    let raw = raw_values(&b);
    assert_eq!(raw.len(), 1);
    assert!(raw[0].starts_with("sealed:v1:"), "{}", raw[0]);
    assert!(!b.stored_bytes_contain("very secret key"));
    let key = b.key_file();
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Reopened, the same key file opens it.
    assert_eq!(
        b.open()
            .await
            .secret("prod", "pki")
            .await
            .unwrap()
            .as_deref(),
        Some(pki)
    );
}

async fn without_the_key_file_secrets_do_not_open(b: Backend) {
    let store = b.open().await;
    create(&store, "prod", "uid-1", SPEC, "h", at(1)).await;
    store
        .ensure_secret("prod", "pki", "key material")
        .await
        .unwrap();
    drop(store);
    std::fs::remove_file(b.key_file()).unwrap();
    let err = b.open().await.secret("prod", "pki").await.unwrap_err();
    assert!(matches!(err, Error::Sealing { .. }), "{err}");
    assert!(err.to_string().contains("VKUBE_STATE_KEY"), "{err}");
}

async fn a_value_moved_to_another_row_does_not_open(b: Backend) {
    let store = b.open().await;
    for (name, uid) in [("a", "uid-a"), ("b", "uid-b")] {
        create(&store, name, uid, SPEC, "h", at(1)).await;
    }
    store
        .ensure_secret("a", "pki", "secret of a")
        .await
        .unwrap();
    store
        .ensure_secret("b", "pki", "secret of b")
        .await
        .unwrap();
    drop(store);
    b.execute(
        "UPDATE cluster_secrets SET value = (SELECT value FROM cluster_secrets WHERE cluster = 'a') WHERE cluster = 'b'",
    );
    let err = b.open().await.secret("b", "pki").await.unwrap_err();
    assert!(err.to_string().contains("does not open"), "{err}");
}

async fn replace_secret_is_compare_and_set(b: Backend) {
    let store = b.open().await;
    create(&store, "prod", "uid-1", SPEC, "h", at(1)).await;
    store.ensure_secret("prod", "token", "old").await.unwrap();
    assert_eq!(
        store
            .replace_secret("prod", "token", "old", "new")
            .await
            .unwrap(),
        "new"
    );
    // A second renewer that still expects "old" gets the winner's value.
    assert_eq!(
        store
            .replace_secret("prod", "token", "old", "newer")
            .await
            .unwrap(),
        "new"
    );
    assert_eq!(
        store.secret("prod", "token").await.unwrap().as_deref(),
        Some("new")
    );
    assert!(raw_values(&b).iter().all(|v| v.starts_with("sealed:v1:")));
    assert!(matches!(
        store.replace_secret("nope", "token", "a", "b").await,
        Err(Error::ClusterNotFound { .. })
    ));
}

async fn credentials_by_name(b: Backend) {
    let store = b.open().await;
    let err = store.credentials("demo-cloud").await.unwrap_err();
    assert!(
        err.to_string()
            .contains("vkube cluster credentials set demo-cloud"),
        "{err}"
    );
    assert!(store
        .set_credentials("demo-cloud", "k8s-demo@vsphere.local", "s3cret!", at(10))
        .await
        .unwrap());
    assert!(!store
        .set_credentials("demo-cloud", "k8s-demo@vsphere.local", "s3cret!", at(20))
        .await
        .unwrap());
    let stored = store.credentials("demo-cloud").await.unwrap();
    assert_eq!(stored.username, "k8s-demo@vsphere.local");
    assert_eq!(stored.password, "s3cret!");
    assert_eq!(stored.updated_at, at(10));
    assert!(!format!("{stored:?}").contains("s3cret"));
    assert!(store
        .set_credentials("demo-cloud", "k8s-demo@vsphere.local", "rotated", at(30))
        .await
        .unwrap());
    let stored = store.credentials("demo-cloud").await.unwrap();
    assert_eq!(
        (
            stored.password.as_str(),
            stored.created_at,
            stored.updated_at
        ),
        ("rotated", at(10), at(30))
    );
    let listed = store.list_credentials().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].username, "k8s-demo@vsphere.local");
    assert!(raw_values(&b).iter().all(|v| v.starts_with("sealed:v1:")));
    assert!(!b.stored_bytes_contain("rotated"));
    for (user, password, field) in [("", "x", "username"), ("u@d", "", "password")] {
        match store.set_credentials("bad", user, password, at(1)).await {
            Err(Error::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{other:?}"),
        }
    }
    assert!(store.delete_credentials("demo-cloud").await.unwrap());
    assert!(!store.delete_credentials("demo-cloud").await.unwrap());
}

async fn rotation_reseals_everything_under_a_new_key(b: Backend) {
    let store = b.open().await;
    create(&store, "prod", "uid-1", SPEC, "h", at(1)).await;
    store
        .ensure_secret("prod", "pki", "pki text")
        .await
        .unwrap();
    store
        .ensure_secret("prod", "token", "token text")
        .await
        .unwrap();
    store
        .set_credentials("cloud", "u@vsphere.local", "pw", at(1))
        .await
        .unwrap();
    let before = raw_values(&b);
    let old_key = std::fs::read(b.key_file()).unwrap();
    let rotation = store.rotate_key().await.unwrap();
    assert_eq!(rotation.resealed, 3);
    assert_ne!(rotation.old_key, rotation.new_key);
    let after = raw_values(&b);
    for value in &after {
        assert!(
            value.starts_with(&format!("sealed:v1:{}:", rotation.new_key)),
            "{value}"
        );
        assert!(!before.contains(value));
    }
    assert_ne!(std::fs::read(b.key_file()).unwrap(), old_key);
    assert!(!b.key_dir().join("state.key.next").exists());
    drop(store);
    let store = b.open().await;
    assert_eq!(
        store.secret("prod", "pki").await.unwrap().as_deref(),
        Some("pki text")
    );
    assert_eq!(store.credentials("cloud").await.unwrap().password, "pw");
    // The old key no longer opens anything.
    std::fs::write(b.key_dir().join("old.key"), &old_key).unwrap();
    let with_old = b.open_with_key(&b.key_dir().join("old.key")).await;
    assert!(with_old.secret("prod", "pki").await.is_err());
}

async fn plain_secrets_written_around_the_store_are_sealed_on_open(b: Backend) {
    let store = b.open().await;
    create(&store, "prod", "uid-1", SPEC, "h", at(1)).await;
    drop(store);
    // What schema 3 wrote: the value as is.
    b.execute(
        "INSERT INTO cluster_secrets (cluster, name, value) VALUES ('prod', 'pki', 'legacy plain pki')",
    );
    let store = b.open().await;
    assert!(raw_values(&b)[0].starts_with("sealed:v1:"));
    assert_eq!(
        store.secret("prod", "pki").await.unwrap().as_deref(),
        Some("legacy plain pki")
    );
    // PostgreSQL keeps what the test itself wrote in plain text in its WAL
    // and, until vacuumed, in the dead row version: only SQLite's file
    // (checkpointed, rewritten in place) can show it gone.
    if !b.is_postgres() {
        assert!(!b.stored_bytes_contain("legacy plain pki"));
    }
}

async fn opening_without_secrets_creates_no_key(b: Backend) {
    let store = b.open().await;
    create(&store, "prod", "uid-1", SPEC, "h", at(1)).await;
    assert!(!b.key_file().exists());
}

conformance!(
    cluster_secrets_are_sealed_at_rest,
    without_the_key_file_secrets_do_not_open,
    a_value_moved_to_another_row_does_not_open,
    replace_secret_is_compare_and_set,
    credentials_by_name,
    rotation_reseals_everything_under_a_new_key,
    plain_secrets_written_around_the_store_are_sealed_on_open,
    opening_without_secrets_creates_no_key
);
