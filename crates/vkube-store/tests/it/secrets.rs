//! Secrets at rest: sealed in the file, opened through the store, bound to
//! their row, credentials by name, key rotation, and state files written
//! before sealing existed.

use std::os::unix::fs::PermissionsExt;

use vkube_store::{ClusterStore, CredentialStore, Error, SqliteStore};

use crate::{at, TestState};

const SPEC: &str = "spec: {}\n";

/// Every value of every secret column, read with SQLite directly.
fn raw_values(state: &TestState) -> Vec<String> {
    let connection = rusqlite::Connection::open(state.path()).unwrap();
    let mut values = Vec::new();
    for sql in [
        "SELECT value FROM cluster_secrets",
        "SELECT password FROM cloud_credentials",
    ] {
        let mut statement = connection.prepare(sql).unwrap();
        let rows = statement
            .query_map([], |row| row.get::<_, String>(0))
            .unwrap();
        values.extend(rows.map(Result::unwrap));
    }
    values
}

fn database_bytes(state: &TestState) -> String {
    // The WAL holds recent pages: checkpoint so the main file has them.
    let connection = rusqlite::Connection::open(state.path()).unwrap();
    connection
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    String::from_utf8_lossy(&std::fs::read(state.path()).unwrap()).into_owned()
}

#[test]
fn cluster_secrets_are_sealed_in_the_file() {
    let state = TestState::new();
    let store = state.open();
    store
        .create_cluster("prod", "uid-1", SPEC, "h", at(1))
        .unwrap();
    let pki = "-----BEGIN PRIVATE KEY-----\nvery secret key\n";
    assert_eq!(store.ensure_secret("prod", "pki", pki).unwrap(), pki);
    // First writer wins, also sealed.
    assert_eq!(store.ensure_secret("prod", "pki", "other").unwrap(), pki);
    assert_eq!(store.secret("prod", "pki").unwrap().as_deref(), Some(pki));
    drop(store);
    let raw = raw_values(&state);
    assert_eq!(raw.len(), 1);
    assert!(raw[0].starts_with("sealed:v1:"), "{}", raw[0]);
    assert!(!database_bytes(&state).contains("very secret key"));
    let key = state.dir.path().join("state.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Reopened, the same key file opens it.
    assert_eq!(
        state.open().secret("prod", "pki").unwrap().as_deref(),
        Some(pki)
    );
}

#[test]
fn without_the_key_file_secrets_do_not_open() {
    let state = TestState::new();
    let store = state.open();
    store
        .create_cluster("prod", "uid-1", SPEC, "h", at(1))
        .unwrap();
    store.ensure_secret("prod", "pki", "key material").unwrap();
    drop(store);
    std::fs::remove_file(state.dir.path().join("state.key")).unwrap();
    let err = state.open().secret("prod", "pki").unwrap_err();
    assert!(matches!(err, Error::Sealing { .. }), "{err}");
    assert!(err.to_string().contains("VKUBE_STATE_KEY"), "{err}");
}

#[test]
fn a_value_moved_to_another_row_does_not_open() {
    let state = TestState::new();
    let store = state.open();
    for (name, uid) in [("a", "uid-a"), ("b", "uid-b")] {
        store.create_cluster(name, uid, SPEC, "h", at(1)).unwrap();
    }
    store.ensure_secret("a", "pki", "secret of a").unwrap();
    store.ensure_secret("b", "pki", "secret of b").unwrap();
    drop(store);
    let connection = rusqlite::Connection::open(state.path()).unwrap();
    connection
        .execute(
            "UPDATE cluster_secrets SET value = (SELECT value FROM cluster_secrets WHERE cluster = 'a') WHERE cluster = 'b'",
            [],
        )
        .unwrap();
    drop(connection);
    let err = state.open().secret("b", "pki").unwrap_err();
    assert!(err.to_string().contains("does not open"), "{err}");
}

#[test]
fn replace_secret_is_compare_and_set() {
    let state = TestState::new();
    let store = state.open();
    store
        .create_cluster("prod", "uid-1", SPEC, "h", at(1))
        .unwrap();
    store.ensure_secret("prod", "token", "old").unwrap();
    assert_eq!(
        store.replace_secret("prod", "token", "old", "new").unwrap(),
        "new"
    );
    // A second renewer that still expects "old" gets the winner's value.
    assert_eq!(
        store
            .replace_secret("prod", "token", "old", "newer")
            .unwrap(),
        "new"
    );
    assert_eq!(
        store.secret("prod", "token").unwrap().as_deref(),
        Some("new")
    );
    assert!(matches!(
        store.replace_secret("nope", "token", "a", "b"),
        Err(Error::ClusterNotFound { .. })
    ));
}

#[test]
fn credentials_by_name() {
    let state = TestState::new();
    let store = state.open();
    let err = store.credentials("demo-cloud").unwrap_err();
    assert!(
        err.to_string()
            .contains("vkube cluster credentials set demo-cloud"),
        "{err}"
    );
    assert!(store
        .set_credentials("demo-cloud", "k8s-demo@vsphere.local", "s3cret!", at(10))
        .unwrap());
    assert!(!store
        .set_credentials("demo-cloud", "k8s-demo@vsphere.local", "s3cret!", at(20))
        .unwrap());
    let stored = store.credentials("demo-cloud").unwrap();
    assert_eq!(stored.username, "k8s-demo@vsphere.local");
    assert_eq!(stored.password, "s3cret!");
    assert_eq!(stored.updated_at, at(10));
    assert!(!format!("{stored:?}").contains("s3cret"));
    assert!(store
        .set_credentials("demo-cloud", "k8s-demo@vsphere.local", "rotated", at(30))
        .unwrap());
    let stored = store.credentials("demo-cloud").unwrap();
    assert_eq!(
        (
            stored.password.as_str(),
            stored.created_at,
            stored.updated_at
        ),
        ("rotated", at(10), at(30))
    );
    let listed = store.list_credentials().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].username, "k8s-demo@vsphere.local");
    assert!(raw_values(&state)
        .iter()
        .all(|v| v.starts_with("sealed:v1:")));
    assert!(!database_bytes(&state).contains("rotated"));
    for (user, password, field) in [("", "x", "username"), ("u@d", "", "password")] {
        match store.set_credentials("bad", user, password, at(1)) {
            Err(Error::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{other:?}"),
        }
    }
    assert!(store.delete_credentials("demo-cloud").unwrap());
    assert!(!store.delete_credentials("demo-cloud").unwrap());
}

#[test]
fn rotation_reseals_everything_under_a_new_key() {
    let state = TestState::new();
    let store = state.open();
    store
        .create_cluster("prod", "uid-1", SPEC, "h", at(1))
        .unwrap();
    store.ensure_secret("prod", "pki", "pki text").unwrap();
    store.ensure_secret("prod", "token", "token text").unwrap();
    store
        .set_credentials("cloud", "u@vsphere.local", "pw", at(1))
        .unwrap();
    let before = raw_values(&state);
    let old_key = std::fs::read(state.dir.path().join("state.key")).unwrap();
    let rotation = store.rotate_key().unwrap();
    assert_eq!(rotation.resealed, 3);
    assert_ne!(rotation.old_key, rotation.new_key);
    let after = raw_values(&state);
    for value in &after {
        assert!(
            value.starts_with(&format!("sealed:v1:{}:", rotation.new_key)),
            "{value}"
        );
        assert!(!before.contains(value));
    }
    assert_ne!(
        std::fs::read(state.dir.path().join("state.key")).unwrap(),
        old_key
    );
    assert!(!state.dir.path().join("state.key.next").exists());
    drop(store);
    let store = state.open();
    assert_eq!(
        store.secret("prod", "pki").unwrap().as_deref(),
        Some("pki text")
    );
    assert_eq!(store.credentials("cloud").unwrap().password, "pw");
    // The old key no longer opens anything.
    std::fs::write(state.dir.path().join("old.key"), &old_key).unwrap();
    let with_old =
        SqliteStore::open_with_key(state.path(), state.dir.path().join("old.key")).unwrap();
    assert!(with_old.secret("prod", "pki").is_err());
}

#[test]
fn plain_secrets_of_older_state_files_are_sealed_on_open() {
    let state = TestState::new();
    let store = state.open();
    store
        .create_cluster("prod", "uid-1", SPEC, "h", at(1))
        .unwrap();
    drop(store);
    // What schema 3 wrote: the value as is.
    let connection = rusqlite::Connection::open(state.path()).unwrap();
    connection
        .execute(
            "INSERT INTO cluster_secrets (cluster, name, value) VALUES ('prod', 'pki', 'legacy plain pki')",
            [],
        )
        .unwrap();
    drop(connection);
    let store = state.open();
    assert!(raw_values(&state)[0].starts_with("sealed:v1:"));
    assert_eq!(
        store.secret("prod", "pki").unwrap().as_deref(),
        Some("legacy plain pki")
    );
    assert!(!database_bytes(&state).contains("legacy plain pki"));
}

#[test]
fn opening_without_secrets_creates_no_key() {
    let state = TestState::new();
    let store = state.open();
    store
        .create_cluster("prod", "uid-1", SPEC, "h", at(1))
        .unwrap();
    assert!(!state.dir.path().join("state.key").exists());
}
