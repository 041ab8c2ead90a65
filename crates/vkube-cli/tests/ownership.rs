//! Ownership end to end against one simulator: a second state file refuses
//! the cluster another state created (exit 1, no VM, no lease), `cluster
//! adopt` takes it over and the next apply is a no-op, a state file
//! truncated to 0 bytes is refused with the way out, a failed apply leaves
//! the cluster `Degraded` with its error in `cluster ls` and `describe`,
//! and after a scale-down `cluster ls` counts the VMs that exist.

mod common;

use common::cluster_env::{ok, repo_file, two_az_spec, Env, CLOUD_PASSWORD, CLOUD_USER};
use common::{vkube, Run};

/// `vkube args…` against the simulator with the state file `state`.
fn in_state(env: &Env, state: &str, args: &[&str]) -> Run {
    let mut vars = env.vars();
    for (key, value) in &mut vars {
        if key == "VKUBE_STATE" {
            *value = env.dir.path().join(state).display().to_string();
        }
    }
    vkube(&vars, args)
}

/// A new state file set up as the first: the pools and the cloud user's
/// credentials (its vCenter roles are granted already).
fn set_up_state(env: &Env, state: &str) {
    ok(&in_state(
        env,
        state,
        &[
            "ippool",
            "import",
            "-f",
            &repo_file("examples/ippools.yaml"),
        ],
    ));
    let password = env.spec_file("cloud.password", &format!("{CLOUD_PASSWORD}\n"));
    ok(&in_state(
        env,
        state,
        &[
            "cluster",
            "credentials",
            "set",
            "demo-cloud",
            "--username",
            CLOUD_USER,
            "--password-file",
            &password,
        ],
    ));
}

fn json(run: &Run) -> serde_json::Value {
    ok(run);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

/// `node address` of each lease of pool `nodes` in `state`.
fn leases(env: &Env, state: &str) -> Vec<String> {
    let allocations = json(&in_state(
        env,
        state,
        &["ippool", "allocations", "nodes", "-o", "json"],
    ));
    let mut lines: Vec<String> = allocations
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!("{} {}", a["node"], a["address"]))
        .collect();
    lines.sort();
    lines
}

/// The cluster `t1` as `cluster ls -o json` shows it in `state`.
fn listed(env: &Env, state: &str) -> serde_json::Value {
    let clusters = json(&in_state(env, state, &["cluster", "ls", "-o", "json"]));
    clusters
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "t1")
        .cloned()
        .unwrap_or_else(|| panic!("t1 not listed: {clusters}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_belongs_to_one_state_and_is_adopted_deliberately() {
    let env = Env::start(&[]);
    let spec = env.spec_file("t1.yaml", &two_az_spec());
    ok(&env.vkube(&["cluster", "apply", "-f", &spec]));
    let first = listed(&env, "state.db");
    let uid = first["uid"].as_str().unwrap().to_owned();
    assert_eq!(first["phase"], "Ready");
    assert!(
        first["vcenter"].as_str().is_some_and(|v| !v.is_empty()),
        "{first}"
    );
    let vms = env.vm_list("t1").await.len();
    assert_eq!(vms, 4);

    // A second state file (a colleague's, or a lost one's replacement).
    set_up_state(&env, "second.db");
    let refused = in_state(&env, "second.db", &["cluster", "apply", "-f", &spec]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    for expected in [
        uid.as_str(),
        "t1-cp-0",
        "does not know cluster `t1`",
        "vkube cluster adopt -f SPEC",
    ] {
        assert!(
            refused.stderr.contains(expected),
            "lacks {expected:?}: {}",
            refused.stderr
        );
    }
    assert_eq!(env.vm_list("t1").await.len(), vms, "no VM was cloned");
    assert!(
        leases(&env, "second.db").is_empty(),
        "no address was leased"
    );
    let plan = in_state(&env, "second.db", &["cluster", "plan", "-f", &spec]);
    assert_eq!(plan.code, 1, "{}", plan.stderr);

    // Adopting takes it over; the next apply has nothing to do.
    let adopted = in_state(&env, "second.db", &["cluster", "adopt", "-f", &spec]);
    ok(&adopted);
    assert!(
        adopted
            .stdout
            .contains(&format!("adopted cluster `t1` (uid {uid}) from 4 VM(s)"))
            && adopted.stdout.contains("nothing to do"),
        "{}",
        adopted.stdout
    );
    assert_eq!(leases(&env, "second.db"), leases(&env, "state.db"));
    let again = in_state(&env, "second.db", &["cluster", "apply", "-f", &spec]);
    ok(&again);
    assert!(
        again.stdout.contains("cluster `t1`: no changes"),
        "{}",
        again.stdout
    );
    assert_eq!(env.vm_list("t1").await.len(), vms);
    let second = listed(&env, "second.db");
    assert_eq!(
        (&second["uid"], &second["phase"], second["nodes"].as_u64()),
        (&first["uid"], &first["phase"], Some(4))
    );

    // Truncated to 0 bytes, the state is refused, not made fresh.
    let path = env.dir.path().join("second.db");
    std::fs::File::create(&path).unwrap();
    for args in [
        &["cluster", "ls"][..],
        &["cluster", "apply", "-f", &spec][..],
    ] {
        let run = in_state(&env, "second.db", args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("is empty (0 bytes)")
                && run.stderr.contains("restore it from a backup")
                && run.stderr.contains("vkube cluster adopt"),
            "{args:?}: {}",
            run.stderr
        );
    }
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "left as it was");
    assert_eq!(env.vm_list("t1").await.len(), vms);

    // A state recorded against another vCenter (rebuilt, or another at the
    // same address) is refused, naming both; nothing is touched.
    let vcenter = first["vcenter"].as_str().unwrap().to_owned();
    let record_vcenter = |uuid: &str| {
        rusqlite::Connection::open(env.dir.path().join("state.db"))
            .unwrap()
            .execute(
                "UPDATE clusters SET vcenter_uuid = ?1 WHERE name = 't1'",
                [uuid],
            )
            .unwrap();
    };
    let elsewhere = "0badc0de-0000-4000-8000-000000000000";
    record_vcenter(elsewhere);
    for args in [
        &["cluster", "apply", "-f", &spec][..],
        &["cluster", "describe", "t1"][..],
        &["cluster", "delete", "t1"][..],
    ] {
        let run = env.vkube(args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr
                .contains(&format!("lives in vCenter {elsewhere}"))
                && run
                    .stderr
                    .contains(&format!("this connection is to vCenter {vcenter}")),
            "{args:?}: {}",
            run.stderr
        );
    }
    assert_eq!(env.vm_list("t1").await.len(), vms);
    assert_eq!(
        listed(&env, "state.db")["phase"],
        "Ready",
        "a refusal changes nothing"
    );
    record_vcenter(&vcenter);

    // An apply that stops with an error leaves the cluster degraded,
    // saying why; the next successful apply clears it.
    env.set_credentials("demo-cloud", "nobody@vsphere.local", "Wr0ng-Pa55!");
    let failed = env.scale("workers", 4, &[]);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    let degraded = listed(&env, "state.db");
    assert_eq!(degraded["phase"], "Degraded", "{degraded}");
    assert!(
        degraded["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("nobody@vsphere.local")),
        "{degraded}"
    );
    let table = env.vkube(&["cluster", "ls"]);
    ok(&table);
    assert!(
        table.stdout.contains("LAST ERROR") && table.stdout.contains("Degraded"),
        "{}",
        table.stdout
    );
    let describe = env.vkube(&["cluster", "describe", "t1"]);
    ok(&describe);
    assert!(
        describe.stdout.contains("Error:") && describe.stdout.contains("nobody@vsphere.local"),
        "{}",
        describe.stdout
    );
    env.set_credentials("demo-cloud", CLOUD_USER, CLOUD_PASSWORD);

    // After a scale-down, `cluster ls` counts the VMs that exist.
    ok(&env.scale("workers", 1, &[]));
    let scaled = listed(&env, "state.db");
    assert_eq!(
        (
            scaled["phase"].as_str(),
            scaled["nodes"].as_u64(),
            &scaled["lastError"]
        ),
        (Some("Ready"), Some(2), &serde_json::Value::Null),
        "{scaled}"
    );
    assert_eq!(env.vm_list("t1").await.len(), 2);
}
