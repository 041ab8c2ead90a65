//! `vkube cluster` with its state in a real PostgreSQL (Debian's server,
//! started by the test harness on a loopback port): apply, a no-op
//! re-apply, scale and delete behave as with a state file, and what is
//! written is in the database, secrets sealed.

mod common;

use common::cluster_env::{ok, two_az_spec, Env};
use vkube_test_support::postgres::PostgresServer;

#[tokio::test(flavor = "multi_thread")]
async fn cluster_apply_scale_and_delete_with_a_postgresql_state() {
    let Some(server) = PostgresServer::shared() else {
        return;
    };
    let database = server.database();
    let env = Env::start_with_state(&[], Some(database.url()));
    let spec = env.spec_file("t1.yaml", &two_az_spec());

    ok(&env.vkube(&["cluster", "apply", "-f", &spec]));
    let names: Vec<String> = env.vms("t1").await.into_keys().collect();
    assert_eq!(
        names,
        ["t1-cp-0", "t1-workers-0", "t1-workers-1", "t1-workers-2"]
    );
    // The rows are in PostgreSQL: the cluster, its nodes and their leases.
    let rows = |sql: &str| database.psql(sql).trim().to_owned();
    assert_eq!(rows("SELECT name FROM clusters"), "t1");
    assert_eq!(rows("SELECT count(*) FROM cluster_nodes"), "4");
    assert_eq!(
        rows("SELECT count(*) FROM ip_leases WHERE cluster = 't1'"),
        "4"
    );
    // Secrets at rest are sealed: no key material in any column.
    let secrets = rows("SELECT value FROM cluster_secrets");
    assert!(
        !secrets.is_empty(),
        "the cluster's PKI and token are stored"
    );
    assert!(
        !secrets.contains("PRIVATE KEY") && !secrets.contains("BEGIN CERTIFICATE"),
        "{secrets}"
    );

    let again = env.vkube(&["cluster", "apply", "-f", &spec]);
    ok(&again);
    assert!(again.stdout.contains("no changes"), "{}", again.stdout);

    ok(&env.scale("workers", 1, &[]));
    assert_eq!(env.vms("t1").await.len(), 2);
    assert_eq!(rows("SELECT count(*) FROM cluster_nodes"), "2");

    ok(&env.vkube(&["cluster", "delete", "t1"]));
    assert!(env.vms("t1").await.is_empty());
    assert_eq!(rows("SELECT count(*) FROM clusters"), "0");
    assert_eq!(rows("SELECT count(*) FROM ip_leases"), "0");
}
