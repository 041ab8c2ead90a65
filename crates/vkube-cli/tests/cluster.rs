//! `vkube cluster` end to end against the simulator: plan, apply (read back
//! through the vSphere API), no-op re-apply, round-robin placement, static
//! addresses, scale, rolling replacement, delete, kill-and-rerun, bad specs.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::cluster_env::{decode, ok, repo_file, two_az_spec, Env};
use common::{vkube, vkube_command};
use vkube_test_support::{Simulator, SimulatorConfig};
use vkube_vsphere::collect::{retrieve_objects, Wanted};
use vkube_vsphere::vm::ObservedVm;
use vkube_vsphere::Inventory;

/// Input alone shows these: each is refused before any vCenter call (no
/// connection settings are given at all), with exit code 1.
#[test]
fn bad_input_is_refused_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let state = vec![(
        "VKUBE_STATE".to_owned(),
        dir.path().join("state.db").display().to_string(),
    )];
    let pools = dir.path().join("pools.yaml");
    std::fs::write(&pools, include_str!("../../../examples/ippools.yaml")).unwrap();
    assert_eq!(
        vkube(&state, &["ippool", "import", "-f", pools.to_str().unwrap()]).code,
        0
    );
    // A spec on standard input, validated without a vCenter.
    let huge = two_az_spec().replace("      replicas: 3\n", "      replicas: 1000000\n");
    let mut child = vkube_command()
        .args(["cluster", "plan", "-f", "-"])
        .envs(state.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), huge.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("spec.nodePools[0].replicas: 1000000 is more than the 500 nodes"),
        "{stderr}"
    );
    assert!(!stderr.contains("connect"), "{stderr}");
    // More nodes than the pool has addresses.
    let big = dir.path().join("big.yaml");
    std::fs::write(
        &big,
        two_az_spec().replace("      replicas: 3\n", "      replicas: 200\n"),
    )
    .unwrap();
    let run = vkube(&state, &["cluster", "apply", "-f", big.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("need 201 addresses from IP pool `nodes`, which has 191 left"),
        "{}",
        run.stderr
    );
    // Flags.
    let run = vkube(
        &state,
        &[
            "cluster",
            "apply",
            "-f",
            big.to_str().unwrap(),
            "--parallel",
            "0",
        ],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("--parallel"), "{}", run.stderr);
    let run = vkube(&state, &["cluster", "credentials", "set", "x"]);
    assert_eq!(
        run.code, 1,
        "a missing required flag is a usage error: {}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_places_nodes_round_robin_with_static_addresses_then_is_a_no_op() {
    let env = Env::start(&[]);
    let spec = env.spec_file("t1.yaml", &two_az_spec());

    let plan = env.vkube(&["cluster", "plan", "-f", &spec]);
    ok(&plan);
    assert!(
        plan.stdout.contains("(new)") && plan.stdout.contains("/DC0/vm/t1"),
        "{}",
        plan.stdout
    );
    for expected in ["createFolder", "allocateAddress", "createNode", "t1-cp-0"] {
        assert!(
            plan.stdout.contains(expected),
            "plan lacks {expected}: {}",
            plan.stdout
        );
    }
    assert!(env.vms("t1").await.is_empty(), "plan changes nothing");

    ok(&env.vkube(&["cluster", "apply", "-f", &spec]));
    let vms = env.vms("t1").await;
    let names: Vec<&str> = vms.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["t1-cp-0", "t1-workers-0", "t1-workers-1", "t1-workers-2"]
    );

    // Placement read back from vCenter: pool, datastore and network per domain, round robin.
    let session = env.session().await;
    let inventory = Inventory::load(&session).await.unwrap();
    let refs: Vec<_> = vms
        .values()
        .map(|v| vim_rs::types::structs::ManagedObjectReference {
            r#type: vim_rs::types::enums::MoTypesEnum::VirtualMachine,
            value: v.id.clone(),
        })
        .collect();
    let mut placed = BTreeMap::new();
    let paths = ["name", "resourcePool", "config.files.vmPathName", "network"];
    for mut props in retrieve_objects(
        &session,
        &refs,
        &[Wanted {
            type_name: "VirtualMachine",
            paths: &paths,
        }],
    )
    .await
    .unwrap()
    {
        let name = props.string("name").unwrap();
        let pool = inventory.path(
            &props
                .take::<vim_rs::types::structs::ManagedObjectReference>("resourcePool")
                .unwrap()
                .value,
        );
        // `[LocalDS_1] t1-workers-1/t1-workers-1.vmx`: where the VM's files live.
        let vmx = props.string("config.files.vmPathName").unwrap();
        let datastore = vmx
            .trim_start_matches('[')
            .split(']')
            .next()
            .unwrap()
            .to_string();
        let networks: Vec<String> = props
            .morefs("network")
            .iter()
            .map(|n| inventory.path(&n.value))
            .collect();
        placed.insert(name, (pool, datastore, networks));
    }
    session.close().await;
    let az1 = (
        "/DC0/host/DC0_C0/Resources".to_string(),
        "LocalDS_0".to_string(),
        vec!["/DC0/network/VM Network".to_string()],
    );
    let az2 = (
        "/DC0/host/DC0_C1/Resources".to_string(),
        "LocalDS_1".to_string(),
        vec!["/DC0/network/DC0_DVPG0".to_string()],
    );
    assert_eq!(placed["t1-cp-0"], az1);
    assert_eq!(placed["t1-workers-0"], az1);
    assert_eq!(placed["t1-workers-1"], az2);
    assert_eq!(placed["t1-workers-2"], az1);

    let worker = &vms["t1-workers-1"];
    assert_eq!(
        (worker.num_cpus, worker.memory_mib, worker.disk_kib),
        (4, 8192, 60 * 1024 * 1024)
    );
    assert!(worker.disk_uuid_enabled && worker.power_state == "poweredOn");
    assert_eq!(worker.extra_config["vkube.pool"], "workers");
    assert_eq!(worker.extra_config["vkube.domain"], "az2");
    assert_eq!(
        worker.extra_config["guestinfo.userdata.encoding"],
        "gzip+base64"
    );
    assert!(decode(worker, "guestinfo.userdata").starts_with("#cloud-config"));
    let uid = &worker.extra_config["vkube.cluster.uid"];
    assert!(vms
        .values()
        .all(|v| &v.extra_config["vkube.cluster.uid"] == uid));

    // Static addresses: one lease per node, and each node's metadata carries its own.
    let leases = env.allocations();
    assert_eq!(leases.len(), 4);
    for lease in &leases {
        let node = lease["node"].as_str().unwrap();
        let address = lease["address"].as_str().unwrap();
        let metadata = decode(&vms[node], "guestinfo.metadata");
        assert!(metadata.contains(address), "{node}: {metadata}");
        assert!(
            metadata.contains(vms[node].mac.as_deref().unwrap()),
            "netplan matches by MAC: {metadata}"
        );
    }

    let again = env.vkube(&["cluster", "apply", "-f", &spec]);
    ok(&again);
    assert!(again.stdout.contains("no changes"), "{}", again.stdout);
    let describe = env.vkube(&["cluster", "describe", "t1"]);
    ok(&describe);
    assert!(
        describe.stdout.contains("t1-workers-1") && describe.stdout.contains("az2"),
        "{}",
        describe.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn scale_and_delete_leave_nothing_behind() {
    let env = Env::start(&[]);
    let spec = env.spec_file("t1.yaml", &two_az_spec());
    ok(&env.vkube(&["cluster", "apply", "-f", &spec]));
    ok(&env.scale("workers", 5, &[]));
    assert_eq!(env.vms("t1").await.len(), 6);
    assert_eq!(env.allocations().len(), 6);
    ok(&env.scale("workers", 1, &[]));
    let names: Vec<String> = env.vms("t1").await.into_keys().collect();
    assert_eq!(
        names,
        ["t1-cp-0", "t1-workers-0"],
        "the newest nodes go first"
    );
    assert_eq!(env.allocations().len(), 2, "their addresses are released");

    let kubeconfig = env.dir.path().join("admin.conf");
    ok(&env.vkube(&[
        "cluster",
        "kubeconfig",
        "t1",
        "--out",
        kubeconfig.to_str().unwrap(),
    ]));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&kubeconfig).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(std::fs::read_to_string(&kubeconfig)
        .unwrap()
        .contains("https://10.20.0.5:6443"));

    let deleted = env.vkube(&["cluster", "delete", "t1", "--shutdown-timeout", "1"]);
    ok(&deleted);
    let session = env.session().await;
    let inventory = Inventory::load(&session).await.unwrap();
    session.close().await;
    assert!(
        inventory.resolve("/DC0/vm/t1", "folder").is_err(),
        "the folder is gone"
    );
    assert!(
        inventory.entities().all(|e| !e.name.starts_with("t1-")),
        "no VM is left"
    );
    assert!(env.allocations().is_empty());
    let ls = env.vkube(&["cluster", "ls", "-o", "json"]);
    assert_eq!(
        serde_json::from_str::<Vec<serde_json::Value>>(&ls.stdout)
            .unwrap()
            .len(),
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn template_change_rolls_nodes_control_plane_first() {
    let env = Env::start(&[]);
    let spec = env.spec_file("t1.yaml", &two_az_spec());
    ok(&env.vkube(&["cluster", "apply", "-f", &spec]));
    let before: Vec<String> = env.vms("t1").await.into_keys().collect();
    let changed = env.edited_spec("t1-new.yaml", "DC0_C0_RP0_VM0", "DC0_C0_RP0_VM1");
    ok(&env.vkube(&["cluster", "apply", "-f", &changed]));
    let after = env.vms("t1").await;
    assert_eq!(after.len(), before.len());
    assert!(
        before.iter().all(|old| !after.contains_key(old)),
        "every old node was replaced: {:?}",
        after.keys()
    );
    let events = env.vkube(&["cluster", "events", "t1", "-o", "json"]);
    let events: Vec<serde_json::Value> = serde_json::from_str(&events.stdout).unwrap();
    let deletions: Vec<&str> = events
        .iter()
        .filter(|e| e["kind"] == "DeleteNode" && e["level"] == "Info")
        .filter_map(|e| e["node"].as_str())
        .collect();
    assert_eq!(
        deletions.first(),
        Some(&"t1-cp-0"),
        "control plane first: {deletions:?}"
    );
    assert_eq!(deletions.len(), 4);
    assert_eq!(
        env.allocations().len(),
        4,
        "replaced nodes' addresses were released"
    );
}

fn spawn_apply(env: &Env, spec: &str) -> std::process::Child {
    vkube_command()
        .args(["cluster", "apply", "-f", spec, "--parallel", "4"])
        .envs(env.vars())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_applies_converge_without_duplicates_or_leaks() {
    let env = Env::start(&[
        ("CloneVM_Task", 1200),
        ("ReconfigVM_Task", 100),
        ("PowerOnVM_Task", 200),
    ]);
    let spec = env.edited_spec("t1.yaml", "replicas: 3", "replicas: 4");
    // Kill points: during the first clone, between clones and power-ons, during the workers.
    for after_ms in [400, 1700, 2600, 3300] {
        let mut child = spawn_apply(&env, &spec);
        std::thread::sleep(Duration::from_millis(after_ms));
        let _ = child.kill();
        let _ = child.wait();
        // The next run takes over a killed run's lock at once (its process is gone).
    }
    let last = env.vkube(&["cluster", "apply", "-f", &spec]);
    ok(&last);
    let all = env.vm_list("t1").await;
    let mut names: Vec<&str> = all.iter().map(|v| v.name.as_str()).collect();
    names.sort();
    assert_eq!(names.len(), 5, "no duplicate VMs: {names:?}");
    let vms = env.vms("t1").await;
    let names: Vec<&str> = vms.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "t1-cp-0",
            "t1-workers-0",
            "t1-workers-1",
            "t1-workers-2",
            "t1-workers-3"
        ]
    );
    assert!(vms
        .values()
        .all(|v| v.extra_config.contains_key("vkube.cluster.uid")
            && v.extra_config.contains_key("guestinfo.metadata")));
    assert!(vms.values().all(|v| v.power_state == "poweredOn"));
    let leases = env.allocations();
    assert_eq!(
        leases.len(),
        5,
        "one address per node, none leaked: {leases:?}"
    );
    let mut addresses: Vec<&str> = leases
        .iter()
        .map(|l| l["address"].as_str().unwrap())
        .collect();
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), 5, "no address given twice");
    let again = env.vkube(&["cluster", "apply", "-f", &spec]);
    assert!(again.stdout.contains("no changes"), "{}", again.stdout);
}

#[test]
fn bad_specs_name_every_field_before_any_change() {
    let env = Env::start(&[]);
    let unknown_domain = env.edited_spec(
        "a.yaml",
        "placementDomains: [az1, az2]",
        "placementDomains: [az1, az3]",
    );
    let run = env.vkube(&["cluster", "apply", "-f", &unknown_domain]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("spec.nodePools[0].placementDomains[1]") && run.stderr.contains("az3"),
        "{}",
        run.stderr
    );

    let bad_paths = env.spec_file(
        "b.yaml",
        &two_az_spec()
            .replace("/DC0/datastore/LocalDS_1", "/DC0/datastore/nope")
            .replace("/DC0/vm/DC0_C0_RP0_VM0", "/DC0/vm/missing-template")
            .replace("/DC0/network/DC0_DVPG0", "/DC0/network/missing-net"),
    );
    let run = env.vkube(&["cluster", "apply", "-f", &bad_paths]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    for field in [
        "spec.template",
        "spec.placementDomains[1].datastore",
        "spec.placementDomains[1].network",
    ] {
        assert!(
            run.stderr.contains(field),
            "one report names {field}: {}",
            run.stderr
        );
    }
    assert!(
        run.stderr.contains("has no `missing-template`"),
        "{}",
        run.stderr
    );

    let wrong_kind = env.edited_spec(
        "c.yaml",
        "resourcePool: /DC0/host/DC0_C1/Resources",
        "resourcePool: /DC0/host/DC0_C0/Resources",
    );
    let run = env.vkube(&["cluster", "apply", "-f", &wrong_kind]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("spec.placementDomains[1].resourcePool")
            && run.stderr.contains("belongs to"),
        "{}",
        run.stderr
    );

    let no_pool = env.edited_spec("d.yaml", "ipPool: nodes", "ipPool: elsewhere");
    let run = env.vkube(&["cluster", "apply", "-f", &no_pool]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("elsewhere"), "{}", run.stderr);

    let not_yaml = env.spec_file("e.yaml", "spec: [unclosed");
    assert_eq!(env.vkube(&["cluster", "apply", "-f", &not_yaml]).code, 1);
    assert_eq!(
        env.vkube(&["cluster", "apply", "-f", "/nonexistent.yaml"])
            .code,
        1
    );
    assert!(!Path::new(&env.dir.path().join("x")).exists());

    let session_free = env.vkube(&["ls", "/DC0/vm"]);
    assert!(
        !session_free.stdout.contains("t1"),
        "nothing was created: {}",
        session_free.stdout
    );
}

async fn set_guest_ip(env: &Env, vm: &ObservedVm, ip: &str) {
    let session = env.session().await;
    let moref = vim_rs::types::structs::ManagedObjectReference {
        r#type: vim_rs::types::enums::MoTypesEnum::VirtualMachine,
        value: vm.id.clone(),
    };
    let settings = vkube_vsphere::vm::VmSettings {
        extra_config: BTreeMap::from([("SET.guest.ipAddress".to_string(), ip.to_string())]),
        ..Default::default()
    };
    vkube_vsphere::vm::ensure_settings(&session, &moref, &settings)
        .await
        .unwrap();
    session.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dhcp_nodes_are_waited_for_until_they_report_an_address() {
    let env = Env::start(&[]);
    let dhcp = two_az_spec()
        .replace("ipAllocation: static", "ipAllocation: dhcp")
        .replace("      ipPool: nodes\n", "");
    let spec = env.spec_file("dhcp.yaml", &dhcp);
    // Nobody answers: the wait times out and names the cause.
    let silent = env.vkube(&["cluster", "apply", "-f", &spec, "--ip-timeout", "1"]);
    assert_eq!(silent.code, 1, "{}", silent.stderr);
    assert!(
        silent.stderr.contains("no IP address reported within 1s"),
        "{}",
        silent.stderr
    );

    // Play the guests' DHCP clients: give each powered-on VM an address while apply waits.
    let mut child = vkube_command()
        .args(["cluster", "apply", "-f", &spec, "--ip-timeout", "60"])
        .envs(env.vars())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut next = 20;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        for vm in env.vm_list("t1").await {
            if vm.power_state == "poweredOn" && vm.ip.is_none() {
                next += 1;
                set_guest_ip(&env, &vm, &format!("10.30.0.{next}")).await;
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(status.success());
    let described = env.vkube(&["cluster", "describe", "t1", "-o", "json"]);
    ok(&described);
    let doc: serde_json::Value = serde_json::from_str(&described.stdout).unwrap();
    let ips: Vec<&str> = doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["ip"].as_str().unwrap())
        .collect();
    assert_eq!(ips.len(), 4);
    assert!(ips.iter().all(|ip| ip.starts_with("10.30.0.")), "{ips:?}");
    assert!(
        env.allocations().is_empty(),
        "DHCP takes nothing from the pool"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn force_delete_forgets_a_cluster_whose_vcenter_is_gone_and_lists_orphans() {
    let env = Env::start(&[]);
    let spec = env.spec_file("t1.yaml", &two_az_spec());
    ok(&env.vkube(&["cluster", "apply", "-f", &spec]));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut unreachable = env.vars();
    unreachable.retain(|(k, _)| k != "VKUBE_URL");
    unreachable.push(("VKUBE_URL".into(), format!("127.0.0.1:{port}")));
    let plain = vkube(&unreachable, &["cluster", "delete", "t1"]);
    assert_eq!(
        plain.code, 1,
        "without --force vCenter must be reachable: {}",
        plain.stderr
    );
    let early = vkube(&unreachable, &["cluster", "delete", "t1", "--force"]);
    assert_eq!(early.code, 1);
    assert!(
        early.stderr.contains("15m"),
        "the 15-minute rule is named: {}",
        early.stderr
    );
    let forced = vkube(
        &unreachable,
        &["cluster", "delete", "t1", "--force", "--now"],
    );
    ok(&forced);
    assert!(
        forced.stdout.contains("left in vCenter: VM `t1-cp-0`"),
        "{}",
        forced.stdout
    );
    assert!(env.allocations().is_empty());
    assert_eq!(
        env.vms("t1").await.len(),
        4,
        "vCenter objects stay (they are orphans now)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn datastore_clusters_place_through_storage_drs() {
    let sim = Simulator::start(SimulatorConfig {
        clusters: 2,
        datastores: 2,
        datastore_clusters: 1,
        ..Default::default()
    });
    let env = Env::on(sim, None);
    ok(&env.vkube(&[
        "ippool",
        "import",
        "-f",
        &repo_file("examples/ippools.yaml"),
    ]));
    // The simulator creates the pod empty: put LocalDS_1 in it, as an admin would.
    let session = env.session().await;
    let inventory = Inventory::load(&session).await.unwrap();
    let pod = inventory.resolve("/DC0/datastore/DC0_POD0", "pod").unwrap();
    let ds = inventory
        .resolve("/DC0/datastore/LocalDS_1", "datastore")
        .unwrap();
    let task = vim_rs::mo::StoragePod::new(session.client(), &pod.id)
        .move_into_folder_task(std::slice::from_ref(ds.moref()))
        .await
        .unwrap();
    session
        .wait_task("moving a datastore into the pod", task)
        .await
        .unwrap();
    session.close().await;
    env.set_up_cloud_user(&[
        "datacenter=/DC0",
        "compute-cluster=/DC0/host/DC0_C0",
        "compute-cluster=/DC0/host/DC0_C1",
        "datastore=/DC0/datastore/LocalDS_0",
        "datastore=/DC0/datastore/DC0_POD0/LocalDS_1",
        "vm-folder=/DC0/vm",
    ]);
    let spec = env.edited_spec(
        "pod.yaml",
        "datastore: /DC0/datastore/LocalDS_1",
        "datastoreCluster: /DC0/datastore/DC0_POD0",
    );
    ok(&env.vkube(&["cluster", "apply", "-f", &spec]));
    let session = env.session().await;
    let vms = env.vms("t1").await;
    let worker = &vms["t1-workers-1"];
    let moref = vim_rs::types::structs::ManagedObjectReference {
        r#type: vim_rs::types::enums::MoTypesEnum::VirtualMachine,
        value: worker.id.clone(),
    };
    let mut props = retrieve_objects(
        &session,
        &[moref],
        &[Wanted {
            type_name: "VirtualMachine",
            paths: &["config.files.vmPathName"],
        }],
    )
    .await
    .unwrap();
    let vmx = props[0].string("config.files.vmPathName").unwrap();
    session.close().await;
    assert!(
        vmx.starts_with("[LocalDS_1]"),
        "Storage DRS placed az2's node in the pod's datastore: {vmx}"
    );
}

#[test]
fn linked_clones_fall_back_with_a_warning_and_refuse_a_disk_resize() {
    let env = Env::start(&[]);
    let resize = env.edited_spec("linked-resize.yaml", "cloneMode: full", "cloneMode: linked");
    let refused = env.vkube(&["cluster", "apply", "-f", &resize]);
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("diskGiB"), "{}", refused.stderr);
    let linked = env.spec_file(
        "linked.yaml",
        &two_az_spec()
            .replace("cloneMode: full", "cloneMode: linked")
            .replace("      diskGiB: 60\n", "")
            .replace("    diskGiB: 40\n", ""),
    );
    let run = env.vkube(&["cluster", "apply", "-f", &linked]);
    ok(&run);
    assert!(
        run.stderr.contains("has no snapshot") && run.stderr.contains("full clones"),
        "{}",
        run.stderr
    );
}

/// The round trips a command reported with `--stats`.
fn round_trips(run: &common::Run) -> u64 {
    run.stderr
        .lines()
        .find_map(|l| l.strip_prefix("api-round-trips: "))
        .unwrap_or_else(|| panic!("no --stats line: {}", run.stderr))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_no_op_apply_costs_the_same_few_round_trips_for_4_or_100_nodes() {
    let env = Env::start(&[]);
    env.set_up_cloud_user(common::cluster_env::CLOUD_BINDS);
    let spec = env.spec_file("t1.yaml", &two_az_spec());
    ok(&env.vkube(&["cluster", "apply", "-f", &spec]));
    let small = env.vkube(&["--stats", "cluster", "apply", "-f", &spec]);
    ok(&small);
    assert!(small.stdout.contains("no changes"), "{}", small.stdout);

    let big = env.spec_file(
        "t1-big.yaml",
        &two_az_spec().replace("      replicas: 3\n", "      replicas: 99\n"),
    );
    ok(&env.vkube(&["cluster", "apply", "-f", &big, "--parallel", "16"]));
    assert_eq!(env.vms("t1").await.len(), 100);
    let large = env.vkube(&[
        "--stats",
        "--wire-log",
        "-v",
        "cluster",
        "apply",
        "-f",
        &big,
    ]);
    eprintln!("WIRE {}", large.stderr);
    ok(&large);
    assert!(large.stdout.contains("no changes"), "{}", large.stdout);
    let (small, large) = (round_trips(&small), round_trips(&large));
    eprintln!("no-op apply: {small} round trips for 4 nodes, {large} for 100");
    assert_eq!(small, large, "constant in the cluster's size");
    assert!(large <= 11, "{large} round trips");
    let described = env.vkube(&["--stats", "cluster", "describe", "t1"]);
    ok(&described);
    assert!(round_trips(&described) <= large, "{}", described.stderr);
}
