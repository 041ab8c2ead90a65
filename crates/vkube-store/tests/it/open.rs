//! Opening, migrations, permissions and persistence across reopen.

use std::os::unix::fs::PermissionsExt;

use vkube_store::{SqliteStore, StateBackend, Store};

use crate::{fence, range_pool, AnyStore, TestState};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn creates_private_directory_and_files() {
    let state = TestState::new();
    let path = state
        .dir
        .path()
        .join("nested")
        .join("vkube")
        .join("state.db");
    let store: AnyStore = std::sync::Arc::new(SqliteStore::open(&path).await.unwrap());
    store
        .create_pools(&[range_pool("a", 0, 10, 20)], false)
        .await
        .unwrap();
    store
        .allocate(&fence(&store, "c").await, "a", "n")
        .await
        .unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    assert_eq!(mode(path.parent().unwrap().parent().unwrap()), 0o700);
    for suffix in ["-wal", "-shm"] {
        let side = path.with_file_name(format!("state.db{suffix}"));
        assert!(side.exists(), "{suffix} missing (WAL mode)");
        assert_eq!(mode(&side), 0o600, "{suffix}");
    }
}

#[tokio::test]
async fn migrations_are_versioned_and_reapplied_never() {
    let state = TestState::new();
    let store = state.open().await;
    assert_eq!(
        store.schema_version().await.unwrap(),
        SqliteStore::latest_schema_version()
    );
    drop(store);
    let store = state.open().await;
    assert_eq!(
        store.schema_version().await.unwrap(),
        SqliteStore::latest_schema_version()
    );
    drop(store);
    let connection = rusqlite::Connection::open(state.path()).unwrap();
    let rows: u32 = connection
        .query_row("SELECT COUNT(*) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, SqliteStore::latest_schema_version());
}

#[tokio::test]
async fn refuses_a_newer_schema() {
    let state = TestState::new();
    drop(state.open().await);
    let connection = rusqlite::Connection::open(state.path()).unwrap();
    connection
        .execute(
            "INSERT INTO schema_version (version, description) VALUES (999, 'future')",
            [],
        )
        .unwrap();
    drop(connection);
    let error = SqliteStore::open(state.path()).await.unwrap_err();
    let expected = format!(
        "has schema version 999, but this vkube only knows up to {}; upgrade vkube",
        SqliteStore::latest_schema_version()
    );
    assert!(error.to_string().contains(&expected), "{error}");
}

#[tokio::test]
async fn state_persists_across_reopen() {
    let state = TestState::new();
    let first = {
        let store: AnyStore = std::sync::Arc::new(state.open().await);
        store
            .create_pools(&[range_pool("a", 0, 10, 20)], false)
            .await
            .unwrap();
        let prod = fence(&store, "prod").await;
        store.allocate(&prod, "a", "cp-0").await.unwrap()
    };
    let store: AnyStore = std::sync::Arc::new(state.open().await);
    let prod = fence(&store, "prod").await;
    assert_eq!(store.pool("a").await.unwrap().allocated, 1);
    assert_eq!(store.allocate(&prod, "a", "cp-0").await.unwrap(), first);
    assert_ne!(
        store.allocate(&prod, "a", "cp-1").await.unwrap().address,
        first.address
    );
}

#[tokio::test]
async fn resolves_state_path() {
    let explicit = std::path::PathBuf::from("/tmp/explicit.db");
    assert_eq!(
        vkube_store::resolve_state_path(Some(explicit.clone())).unwrap(),
        explicit
    );
    let default = vkube_store::default_state_path().unwrap();
    assert!(default.ends_with("vkube/state.db"), "{}", default.display());
}

#[tokio::test]
async fn open_picks_the_backend_from_the_state_string() {
    let state = TestState::new();
    let path = state.path().display().to_string();
    let store = vkube_store::open(&path).await.unwrap();
    assert_eq!(store.kind(), vkube_store::BackendKind::Sqlite);
    assert_eq!(store.location(), path);
    assert_eq!(store.key_file(), state.dir.path().join("state.key"));
    assert_eq!(
        store.schema_version().await.unwrap(),
        SqliteStore::latest_schema_version()
    );
    let Err(error) = vkube_store::open("postgres://nobody@127.0.0.1:1/state").await else {
        panic!("connected to a closed port");
    };
    assert!(
        error
            .to_string()
            .contains("postgres://nobody@127.0.0.1:1/state"),
        "{error}"
    );
}

/// A state file that exists without vkube's schema is refused, naming the
/// file and the way out, and left as it was: truncated to 0 bytes (what a
/// full disk or a bad copy leaves), or another SQLite database. Only a
/// missing file becomes a fresh state, and it appears complete: no
/// temporary file stays beside it.
#[tokio::test]
async fn an_emptied_state_file_is_refused_not_made_fresh() {
    let state = TestState::new();
    let store = state.open().await;
    store
        .create_pools(&[range_pool("a", 0, 10, 20)], false)
        .await
        .unwrap();
    drop(store);
    let names: Vec<String> = std::fs::read_dir(state.dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".new-"))
        .collect();
    assert!(names.is_empty(), "staging files left: {names:?}");
    std::fs::File::create(state.path()).unwrap();
    let error = SqliteStore::open(state.path()).await.unwrap_err();
    assert!(
        matches!(error, vkube_store::Error::StateWithoutSchema { .. }),
        "{error:?}"
    );
    let text = error.to_string();
    for expected in [
        state.path().display().to_string().as_str(),
        "is empty (0 bytes)",
        "restore it from a backup",
        "vkube cluster adopt",
    ] {
        assert!(text.contains(expected), "{text}");
    }
    assert_eq!(
        std::fs::metadata(state.path()).unwrap().len(),
        0,
        "untouched"
    );

    let other = state.dir.path().join("other.db");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE notes (text TEXT)")
        .unwrap();
    let error = SqliteStore::open(&other).await.unwrap_err();
    assert!(
        error.to_string().contains("holds no vkube schema"),
        "{error}"
    );
    let tables: Vec<String> = rusqlite::Connection::open(&other)
        .unwrap()
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(tables, ["notes"], "nothing was migrated into it");
}
