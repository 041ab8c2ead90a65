//! `vkube zones` end to end (issue 4) against a simulator with 2
//! datacenters × 2 clusters, using `examples/topology.yaml`. What setup did
//! is read back over the tagging REST API, not through vkube's own output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use vkube_test_support::{repo_root, Simulator, SimulatorConfig};
use vkube_vsphere::tagging::DynamicId;
use vkube_vsphere::{
    ConnectOptions, Endpoint, Inventory, Secret, Session, TaggingClient, TlsPolicy, TransportChoice,
};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Run the binary with only the given environment for vCenter settings.
fn vkube(env: &[(String, String)], args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vkube"));
    for var in [
        "VKUBE_URL",
        "VKUBE_USERNAME",
        "VKUBE_PASSWORD",
        "VKUBE_INSECURE",
        "VKUBE_DATACENTER",
        "GOVC_URL",
        "GOVC_USERNAME",
        "GOVC_PASSWORD",
        "GOVC_INSECURE",
        "GOVC_DATACENTER",
    ] {
        cmd.env_remove(var);
    }
    let output = cmd
        .args(args)
        .envs(env.iter().cloned())
        .output()
        .expect("run vkube");
    Run {
        code: output.status.code().expect("exit code"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

fn ok(env: &[(String, String)], args: &[&str]) -> String {
    let run = vkube(env, args);
    assert_eq!(
        run.code, 0,
        "vkube {args:?} failed:\n{}\n{}",
        run.stdout, run.stderr
    );
    run.stdout
}

fn example() -> String {
    repo_root()
        .join("examples/topology.yaml")
        .display()
        .to_string()
}

fn start() -> Simulator {
    Simulator::start(SimulatorConfig {
        datacenters: 2,
        clusters: 2,
        ..Default::default()
    })
}

async fn session(sim: &Simulator) -> Session {
    Session::connect(ConnectOptions {
        endpoint: Endpoint::parse(sim.url()).unwrap(),
        username: sim.username().into(),
        password: Secret::new(sim.password()),
        tls: TlsPolicy::Insecure,
        transport: TransportChoice::Auto,
        wire_log: false,
        connect_timeout: std::time::Duration::from_secs(5),
        timeouts: Default::default(),
    })
    .await
    .unwrap()
}

/// What vCenter's tags say, read over REST: category name → (cardinality,
/// associable types, managed marker), and `category/tag` → attached paths.
#[derive(Debug, PartialEq)]
struct ReadBack {
    categories: BTreeMap<String, (String, Vec<String>, bool)>,
    attachments: BTreeMap<String, Vec<String>>,
}

async fn read_back(sim: &Simulator) -> ReadBack {
    let session = session(sim).await;
    let inventory = Inventory::load(&session).await.unwrap();
    let tagging = TaggingClient::login(&session).await.unwrap();
    let mut categories = BTreeMap::new();
    let mut attachments = BTreeMap::new();
    for category in tagging.categories().await.unwrap() {
        categories.insert(
            category.name.clone(),
            (
                category.cardinality.clone(),
                category.associable_types.clone(),
                category.description.contains("managed-by=vkube"),
            ),
        );
        for tag in tagging.tags_for_category(&category.id).await.unwrap() {
            let mut paths: Vec<String> = tagging
                .attached_objects(&tag.id)
                .await
                .unwrap()
                .iter()
                .map(|o| inventory.path(&o.id))
                .collect();
            paths.sort();
            assert!(tag.description.contains("managed-by=vkube"), "{tag:?}");
            attachments.insert(format!("{}/{}", category.name, tag.name), paths);
        }
    }
    tagging.close().await;
    session.close().await;
    ReadBack {
        categories,
        attachments,
    }
}

fn expected() -> ReadBack {
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    ReadBack {
        categories: BTreeMap::from([
            (
                "k8s-region".into(),
                ("SINGLE".into(), strings(&["Datacenter"]), true),
            ),
            (
                "k8s-zone".into(),
                (
                    "SINGLE".into(),
                    strings(&["ClusterComputeResource", "Datastore"]),
                    true,
                ),
            ),
        ]),
        attachments: BTreeMap::from([
            ("k8s-region/region-dc0".into(), strings(&["/DC0"])),
            ("k8s-region/region-dc1".into(), strings(&["/DC1"])),
            (
                "k8s-zone/zone-dc0-c0".into(),
                strings(&["/DC0/datastore/LocalDS_0", "/DC0/host/DC0_C0"]),
            ),
            (
                "k8s-zone/zone-dc0-c1".into(),
                strings(&["/DC0/host/DC0_C1"]),
            ),
            (
                "k8s-zone/zone-dc1-c0".into(),
                strings(&["/DC1/datastore/LocalDS_0", "/DC1/host/DC1_C0"]),
            ),
            (
                "k8s-zone/zone-dc1-c1".into(),
                strings(&["/DC1/host/DC1_C1"]),
            ),
        ]),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn setup_creates_exactly_the_file_and_a_rerun_is_a_no_op() {
    let sim = start();
    let env = sim.vkube_env();
    let file = example();

    let dry = ok(&env, &["zones", "setup", "-f", &file, "--dry-run"]);
    assert!(dry.ends_with("dry run: 16 changes not applied\n"), "{dry}");
    assert!(
        read_back(&sim).await.categories.is_empty(),
        "a dry run changes nothing"
    );

    let applied = ok(&env, &["zones", "setup", "-f", &file]);
    assert!(
        applied.contains("attach `k8s-zone/zone-dc0-c0` to `/DC0/datastore/LocalDS_0`\n"),
        "{applied}"
    );
    assert!(applied.ends_with("applied 16 changes\n"), "{applied}");
    assert_eq!(read_back(&sim).await, expected());

    let again = ok(&env, &["zones", "setup", "-f", &file]);
    assert_eq!(
        again,
        format!("no changes: vCenter already matches `{file}`\n")
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&env, &["zones", "setup", "-f", &file, "-o", "json"])).unwrap();
    assert_eq!(json["steps"], serde_json::json!([]));
    assert_eq!(read_back(&sim).await, expected());
}

#[tokio::test(flavor = "multi_thread")]
async fn ls_shows_region_zone_cluster_hosts_datastores_networks() {
    let sim = start();
    let env = sim.vkube_env();
    // Before setup: nothing tagged, and a note says why.
    let empty = vkube(&env, &["zones", "ls"]);
    assert_eq!(empty.code, 0);
    assert!(
        empty
            .stderr
            .contains("lacks the `k8s-region` or `k8s-zone` tag category"),
        "{}",
        empty.stderr
    );

    ok(&env, &["zones", "setup", "-f", &example()]);
    let table = ok(&env, &["zones", "ls"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 5, "{table}");
    assert!(lines[0].starts_with("REGION"), "{table}");
    assert!(lines[1].starts_with("region-dc0 (/DC0)  zone-dc0-c0  /DC0/host/DC0_C0  DC0_C0_H0, DC0_C0_H1, DC0_C0_H2  LocalDS_0 (shared, zone-dc0-c0)"), "{table}");
    assert!(
        lines[4].contains("zone-dc1-c1  /DC1/host/DC1_C1"),
        "{table}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&ok(&env, &["zones", "ls", "-o", "json"])).unwrap();
    let regions = json["regions"].as_array().unwrap();
    assert_eq!(regions.len(), 2);
    assert_eq!(regions[1]["name"], "region-dc1");
    assert_eq!(regions[1]["datacenters"], serde_json::json!(["/DC1"]));
    let zone = &regions[1]["zones"][1];
    assert_eq!(zone["name"], "zone-dc1-c1");
    let cluster = &zone["computeClusters"][0];
    assert_eq!(cluster["path"], "/DC1/host/DC1_C1");
    assert_eq!(cluster["hosts"].as_array().unwrap().len(), 3);
    assert_eq!(
        cluster["datastores"][0],
        serde_json::json!({"path": "/DC1/datastore/LocalDS_0", "access": "shared", "zone": "zone-dc1-c0"})
    );
    assert!(
        cluster["networks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "/DC1/network/VM Network"),
        "{cluster}"
    );
    assert_eq!(
        zone["sharedDatastores"],
        serde_json::json!(["/DC1/datastore/LocalDS_0"])
    );

    // Works with categories vkube did not create, under other names.
    let yaml = ok(
        &env,
        &["zones", "ls", "-o", "yaml", "--category-zone", "other-zone"],
    );
    assert!(
        yaml.contains("zoneCategory: other-zone") && yaml.contains("categoriesFound: false"),
        "{yaml}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn validate_catches_a_missing_zone_tag_and_a_foreign_zone_on_a_datastore() {
    let sim = start();
    let env = sim.vkube_env();
    let file = example();
    ok(&env, &["zones", "setup", "-f", &file]);
    assert_eq!(
        ok(&env, &["zones", "validate"]),
        "valid: 2 regions, 4 zones\n"
    );

    // Break it behind vkube's back, over REST.
    let session = session(&sim).await;
    let inventory = Inventory::load(&session).await.unwrap();
    let tagging = TaggingClient::login(&session).await.unwrap();
    let zone_category = tagging
        .categories()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.name == "k8s-zone")
        .unwrap();
    let tags: BTreeMap<String, String> = tagging
        .tags_for_category(&zone_category.id)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.name, t.id))
        .collect();
    let object = |path: &str, type_name: &str| DynamicId {
        type_name: type_name.into(),
        id: inventory.resolve(path, "object").unwrap().id.clone(),
    };
    let dc0_c1 = object("/DC0/host/DC0_C1", "ClusterComputeResource");
    let dc0_ds = object("/DC0/datastore/LocalDS_0", "Datastore");
    tagging.detach(&tags["zone-dc0-c1"], &dc0_c1).await.unwrap();
    tagging.detach(&tags["zone-dc0-c0"], &dc0_ds).await.unwrap();
    tagging.attach(&tags["zone-dc1-c0"], &dc0_ds).await.unwrap();
    tagging.close().await;
    session.close().await;

    let run = vkube(&env, &["zones", "validate"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.starts_with("SEVERITY"), "{}", run.stdout);
    let missing = run
        .stdout
        .lines()
        .find(|l| l.contains("cluster-zone-missing"))
        .expect(&run.stdout);
    assert!(
        missing.contains("/DC0/host/DC0_C1") && missing.contains("has no `k8s-zone` tag"),
        "{missing}"
    );
    let foreign = run
        .stdout
        .lines()
        .find(|l| l.contains("datastore-foreign-zone"))
        .expect(&run.stdout);
    assert!(
        foreign.contains("/DC0/datastore/LocalDS_0") && foreign.contains("`k8s-zone/zone-dc1-c0`"),
        "{foreign}"
    );
    assert!(
        run.stderr.contains("error: 2 problems found"),
        "{}",
        run.stderr
    );

    let json = vkube(&env, &["zones", "validate", "-o", "json"]);
    assert_eq!(json.code, 1);
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["valid"], false);
    let codes: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    // zone-dc0-c1 now tags nothing: a warning, not an error.
    assert_eq!(
        codes,
        [
            "cluster-zone-missing",
            "zone-empty",
            "datastore-foreign-zone"
        ]
    );
    assert_eq!(report["findings"][1]["severity"], "warning");

    // With the file, validate also says what setup would change.
    let with_file = vkube(&env, &["zones", "validate", "-f", &file]);
    assert_eq!(with_file.code, 1);
    assert!(
        with_file.stdout.contains("file-conflict"),
        "{}",
        with_file.stdout
    );

    // setup refuses to overwrite the foreign tag, naming both objects' tags…
    let refused = vkube(&env, &["zones", "setup", "-f", &file]);
    assert_eq!(refused.code, 1, "{}\n{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("`/DC0/datastore/LocalDS_0` already carries `k8s-zone/zone-dc1-c0`; the file gives it `k8s-zone/zone-dc0-c0`"),
        "{}",
        refused.stderr
    );
    assert!(
        refused
            .stderr
            .contains("nothing was changed; pass `--force`"),
        "{}",
        refused.stderr
    );
    // …and --force repairs everything.
    let forced = ok(&env, &["zones", "setup", "-f", &file, "--force"]);
    assert!(
        forced.contains("detach `k8s-zone/zone-dc1-c0` from `/DC0/datastore/LocalDS_0`"),
        "{forced}"
    );
    assert_eq!(read_back(&sim).await, expected());
    assert_eq!(
        ok(&env, &["zones", "validate"]),
        "valid: 2 regions, 4 zones\n"
    );
}

/// Run `kubernetes-validate --strict` on a file. Missing tool: skipped,
/// unless `VKUBE_REQUIRE_KUBERNETES_VALIDATE=1` (scripts/test.sh) makes it
/// a failure.
fn kubernetes_validate(path: &Path) {
    let required = std::env::var("VKUBE_REQUIRE_KUBERNETES_VALIDATE").is_ok_and(|v| v == "1");
    match Command::new("kubernetes-validate")
        .arg("--strict")
        .arg(path)
        .output()
    {
        Ok(output) => assert!(
            output.status.success(),
            "kubernetes-validate rejected the StorageClasses:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            eprintln!(
                "skipped: `kubernetes-validate` is not on PATH (pip install kubernetes-validate)"
            );
        }
        Err(e) => panic!("cannot run `kubernetes-validate` (pip install kubernetes-validate): {e}"),
    }
}

struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn temp_file(name: &str, text: &str) -> TempFile {
    let path = std::env::temp_dir().join(format!("vkube-zones-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    TempFile(path)
}

#[tokio::test(flavor = "multi_thread")]
async fn rendered_storage_classes_pass_kubernetes_validate() {
    let sim = start();
    let env = sim.vkube_env();
    let file = example();
    ok(&env, &["zones", "setup", "-f", &file]);
    let from_vcenter = ok(&env, &["zones", "render", "--storage-classes"]);
    let from_file = ok(&[], &["zones", "render", "--storage-classes", "-f", &file]);
    assert_eq!(
        from_vcenter, from_file,
        "vCenter's tags and the file describe the same zones"
    );
    assert_eq!(from_vcenter.matches("kind: StorageClass").count(), 4);
    assert!(from_vcenter.contains("provisioner: csi.vsphere.vmware.com"));
    assert!(
        from_vcenter.contains(
            "  - key: topology.csi.vmware.com/k8s-zone\n    values:\n    - zone-dc1-c1\n"
        ),
        "{from_vcenter}"
    );
    assert!(
        from_vcenter.contains(
            "  - key: topology.csi.vmware.com/k8s-region\n    values:\n    - region-dc1\n"
        ),
        "{from_vcenter}"
    );
    let manifests = temp_file("storage-classes.yaml", &from_vcenter);
    kubernetes_validate(&manifests.0);
}

#[test]
fn csi_labels_and_file_errors_need_no_vcenter() {
    assert_eq!(
        ok(&[], &["zones", "render", "--csi"]),
        "[Labels]\ntopology-categories = \"k8s-region,k8s-zone\"\n"
    );
    assert_eq!(
        ok(
            &[],
            &[
                "zones",
                "render",
                "--csi",
                "--category-region",
                "dc",
                "--category-zone",
                "az"
            ]
        ),
        "[Labels]\ntopology-categories = \"dc,az\"\n"
    );
    let bad = temp_file(
        "bad.yaml",
        "regions: [{name: r, datacenter: DC0}]\nzones:\n  - {name: z, region: q, computeCluster: C}\n  - {name: 'a b', region: r, computeCluster: D}\n",
    );
    let run = vkube(&[], &["zones", "setup", "-f", &bad.0.display().to_string()]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("invalid topology: 2 problems"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("zones[0].region: unknown region `q`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("zones[1].name: `a b` contains ` `"),
        "{}",
        run.stderr
    );
    let run = vkube(&[], &["zones", "render"]);
    assert_eq!(run.code, 1, "clap usage error: {}", run.stderr);
}
