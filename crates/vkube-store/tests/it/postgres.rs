//! What only the PostgreSQL store has: URLs, passwords from the URL or
//! `PGPASSWORD`, connection failures that name the database but never the
//! password, and a schema newer than this build.

use vkube_store::{BackendKind, Error, PgStore, StateBackend};

use crate::Backend;

fn database(b: &Backend) -> &vkube_test_support::postgres::PostgresDatabase {
    match b {
        Backend::Postgres { database, .. } => database,
        Backend::Sqlite(_) => unreachable!("PostgreSQL only"),
    }
}

#[tokio::test]
async fn password_from_the_url_or_pgpassword_and_never_in_messages() {
    let Some(b) = Backend::postgres() else { return };
    let database = database(&b);
    let key = b.key_file();
    let store = PgStore::connect_with_key(&database.url(), &key)
        .await
        .unwrap();
    assert_eq!(store.kind(), BackendKind::Postgres);
    assert_eq!(store.location(), database.url_without_password());
    assert!(!format!("{store:?}").contains(database.server().password()));

    // A wrong password: refused, naming the database, not the password.
    let wrong = database
        .url()
        .replace(database.server().password(), "not-the-password");
    let error = PgStore::connect_with_key(&wrong, &key).await.unwrap_err();
    assert!(matches!(error, Error::Database { .. }), "{error:?}");
    let message = format!("{error} {error:?}");
    assert!(
        message.contains(&database.url_without_password()),
        "{message}"
    );
    assert!(!message.contains("not-the-password"), "{message}");

    // No password in the URL: PGPASSWORD supplies it (libpq's convention).
    // Set for this test binary only, and no other test leaves its URL
    // without a password.
    std::env::set_var(vkube_store::PASSWORD_ENV, database.server().password());
    let store = vkube_store::open(&database.url_without_password()).await;
    std::env::remove_var(vkube_store::PASSWORD_ENV);
    let store = store.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(store.location(), database.url_without_password());
}

#[tokio::test]
async fn refuses_a_newer_schema() {
    let Some(b) = Backend::postgres() else { return };
    drop(b.open().await);
    b.execute("INSERT INTO schema_version (version, description) VALUES (999, 'future')");
    let error = PgStore::connect_with_key(&database(&b).url(), b.key_file())
        .await
        .unwrap_err();
    let expected = format!(
        "state `{}` has schema version 999, but this vkube only knows up to {}; upgrade vkube",
        database(&b).url_without_password(),
        PgStore::latest_schema_version()
    );
    assert_eq!(error.to_string(), expected);
}

#[tokio::test]
async fn migrations_are_recorded_once_each() {
    let Some(b) = Backend::postgres() else { return };
    for _ in 0..2 {
        let store = b.open().await;
        assert_eq!(
            store.schema_version().await.unwrap(),
            PgStore::latest_schema_version()
        );
    }
    let versions = b.strings("SELECT version FROM schema_version ORDER BY version");
    let expected: Vec<String> = (1..=PgStore::latest_schema_version())
        .map(|v| v.to_string())
        .collect();
    assert_eq!(versions, expected);
    // Ids never reused, intent detail queryable as JSON.
    assert_eq!(
        b.strings(
            "SELECT data_type FROM information_schema.columns \
             WHERE table_name = 'cluster_intents' AND column_name = 'detail'"
        ),
        ["jsonb"]
    );
    assert_eq!(
        b.strings(
            "SELECT is_identity FROM information_schema.columns \
             WHERE table_name = 'cluster_events' AND column_name = 'id'"
        ),
        ["YES"]
    );
}
