//! Opening, migrations, permissions and persistence across reopen.

use std::os::unix::fs::PermissionsExt;

use vkube_store::{SqliteStore, Store};

use crate::{range_pool, TestState};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn creates_private_directory_and_files() {
    let state = TestState::new();
    let path = state
        .dir
        .path()
        .join("nested")
        .join("vkube")
        .join("state.db");
    let store = SqliteStore::open(&path).unwrap();
    store
        .create_pools(&[range_pool("a", 0, 10, 20)], false)
        .unwrap();
    store.allocate("a", "c", "n").unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    assert_eq!(mode(path.parent().unwrap().parent().unwrap()), 0o700);
    for suffix in ["-wal", "-shm"] {
        let side = path.with_file_name(format!("state.db{suffix}"));
        assert!(side.exists(), "{suffix} missing (WAL mode)");
        assert_eq!(mode(&side), 0o600, "{suffix}");
    }
}

#[test]
fn migrations_are_versioned_and_reapplied_never() {
    let state = TestState::new();
    let store = state.open();
    assert_eq!(
        store.schema_version().unwrap(),
        SqliteStore::latest_schema_version()
    );
    drop(store);
    let store = state.open();
    assert_eq!(
        store.schema_version().unwrap(),
        SqliteStore::latest_schema_version()
    );
    drop(store);
    let connection = rusqlite::Connection::open(state.path()).unwrap();
    let rows: u32 = connection
        .query_row("SELECT COUNT(*) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, SqliteStore::latest_schema_version());
}

#[test]
fn refuses_a_newer_schema() {
    let state = TestState::new();
    drop(state.open());
    let connection = rusqlite::Connection::open(state.path()).unwrap();
    connection
        .execute(
            "INSERT INTO schema_version (version, description) VALUES (999, 'future')",
            [],
        )
        .unwrap();
    drop(connection);
    let error = SqliteStore::open(state.path()).unwrap_err();
    let expected = format!(
        "has schema version 999, but this vkube only knows up to {}; upgrade vkube",
        SqliteStore::latest_schema_version()
    );
    assert!(error.to_string().contains(&expected), "{error}");
}

#[test]
fn state_persists_across_reopen() {
    let state = TestState::new();
    let first = {
        let store = state.open();
        store
            .create_pools(&[range_pool("a", 0, 10, 20)], false)
            .unwrap();
        store.allocate("a", "prod", "cp-0").unwrap()
    };
    let store = state.open();
    assert_eq!(store.pool("a").unwrap().allocated, 1);
    assert_eq!(store.allocate("a", "prod", "cp-0").unwrap(), first);
    assert_ne!(
        store.allocate("a", "prod", "cp-1").unwrap().address,
        first.address
    );
}

#[test]
fn resolves_state_path() {
    let explicit = std::path::PathBuf::from("/tmp/explicit.db");
    assert_eq!(
        vkube_store::resolve_state_path(Some(explicit.clone())).unwrap(),
        explicit
    );
    let default = vkube_store::default_state_path().unwrap();
    assert!(default.ends_with("vkube/state.db"), "{}", default.display());
}
