//! What only the PostgreSQL store has: URLs, passwords from the URL or
//! `PGPASSWORD`, connection failures that name the database but never the
//! password, and a schema newer than this build.

use vkube_store::{BackendKind, Error, PgStore, StateBackend};

use crate::Backend;

fn database(b: &Backend) -> &vkube_test_support::postgres::PostgresDatabase {
    match b {
        Backend::Postgres { database, .. } => database,
        Backend::Sqlite(_) | Backend::Memory { .. } => unreachable!("PostgreSQL only"),
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

#[tokio::test]
async fn tls_is_verified_in_full() {
    use vkube_test_support::postgres::TLS_ONLY_USER;
    let Some(b) = Backend::postgres() else { return };
    let database = database(&b);
    let key = b.key_file();
    let ca = database.server().ca_file().display().to_string();

    // This user is refused without TLS, and loopback means no TLS by default.
    let plain = database.url_for(TLS_ONLY_USER, "");
    let error = PgStore::connect_with_key(&plain, &key).await.unwrap_err();
    assert!(matches!(error, Error::Database { .. }), "{error}");

    // With the test CA: encrypted (the server lets this user in) and verified.
    let verified = database.url_for(
        TLS_ONLY_USER,
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let store = PgStore::connect_with_key(&verified, &key)
        .await
        .unwrap_or_else(|e| panic!("{e}: {:?}", std::error::Error::source(&e)));
    assert_eq!(
        store.schema_version().await.unwrap(),
        PgStore::latest_schema_version()
    );

    // Another CA: the server is not trusted.
    let other = vkube_test_support::kube_api::TestCa::new("someone else");
    let other_file = b.key_dir().join("other-ca.pem");
    std::fs::write(&other_file, &other.cert_pem).unwrap();
    let wrong = database.url_for(
        TLS_ONLY_USER,
        &format!("sslmode=verify-full&sslrootcert={}", other_file.display()),
    );
    let error = PgStore::connect_with_key(&wrong, &key).await.unwrap_err();
    let chain = error_chain(&error);
    assert!(chain.contains("certificate"), "{chain}");

    // `require` verifies too: the system roots do not know the test CA.
    if std::env::var_os(vkube_store::ROOT_CERT_ENV).is_none() {
        let require = database.url_for(TLS_ONLY_USER, "sslmode=require");
        let error = PgStore::connect_with_key(&require, &key).await.unwrap_err();
        let chain = error_chain(&error);
        assert!(
            chain.contains("certificate") || chain.contains("root"),
            "{chain}"
        );
    }
}

/// An error and its sources, for messages.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}
