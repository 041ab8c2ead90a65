//! `vkube ippool` end to end: runs the built binary against a temp state
//! file and checks stdout, stderr and exit codes (0 ok, 1 user error, 2
//! unexpected or usage error).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use std::time::Duration;

use vkube_store::{ApplyLocks, SqliteStore, Store, Timestamp};

/// A private temp directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "vkube-cli-ippool-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn state(&self) -> PathBuf {
        self.0.join("state.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn vkube(state: &Path, args: &[&str]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_vkube"))
        .args(args)
        .env("VKUBE_STATE", state)
        .env_remove("XDG_DATA_HOME")
        .output()
        .expect("run vkube");
    Run {
        code: status.code().expect("exit code"),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

fn ok(state: &Path, args: &[&str]) -> String {
    let run = vkube(state, args);
    assert_eq!(run.code, 0, "vkube {args:?} failed: {}", run.stderr);
    run.stdout
}

const LAB: &[&str] = &[
    "ippool",
    "create",
    "lab",
    "--range",
    "10.0.0.10-10.0.0.20",
    "--prefix",
    "24",
    "--gateway",
    "10.0.0.1",
    "--name-servers",
    "10.0.0.53,10.0.0.54",
    "--search-domains",
    "lab.example.com",
    "--exclude",
    "10.0.0.15",
];

#[test]
fn create_ls_show() {
    let dir = TempDir::new();
    let state = dir.state();
    assert_eq!(
        ok(&state, LAB),
        "created IP pool `lab`: 10 address(es) in 10.0.0.10-10.0.0.20\n"
    );
    let ls = ok(&state, &["ippool", "ls"]);
    assert_eq!(
        ls,
        "NAME  ADDRESSES            PREFIX  GATEWAY   USED  CLUSTER\n\
         lab   10.0.0.10-10.0.0.20  /24     10.0.0.1  0/10  (shared)\n"
    );
    let show = ok(&state, &["ippool", "show", "lab"]);
    assert!(
        show.contains("Name servers:   10.0.0.53,10.0.0.54\n"),
        "{show}"
    );
    assert!(show.contains("Used:           0 of 10\n"), "{show}");

    let json: serde_json::Value =
        serde_json::from_str(&ok(&state, &["ippool", "show", "lab", "-o", "json"])).unwrap();
    assert_eq!(json["gateway"], "10.0.0.1");
    assert_eq!(json["range"]["end"], "10.0.0.20");
    assert_eq!(json["capacity"], 10);
    let yaml = ok(&state, &["-o", "yaml", "ippool", "ls"]);
    assert!(yaml.starts_with("- name: lab\n"), "{yaml}");
}

#[test]
fn validation_errors_exit_1_and_name_fields() {
    let dir = TempDir::new();
    let state = dir.state();
    let run = vkube(
        &state,
        &[
            "ippool",
            "create",
            "bad",
            "--subnet",
            "10.0.0.0/24",
            "--gateway",
            "10.0.1.1",
            "--name-servers",
            "x",
        ],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("gateway: 10.0.1.1 is outside subnet 10.0.0.0/24"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("nameServers[0]: `x` is not an IP address"),
        "{}",
        run.stderr
    );

    ok(&state, LAB);
    let run = vkube(
        &state,
        &[
            "ippool",
            "create",
            "ov",
            "--subnet",
            "10.0.0.0/28",
            "--gateway",
            "10.0.0.1",
            "--name-servers",
            "1.1.1.1",
        ],
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("pool `ov` overlaps pool `lab` at 10.0.0.10-10.0.0.15"),
        "{}",
        run.stderr
    );
    let mut allowed: Vec<&str> = vec![
        "ippool",
        "create",
        "ov",
        "--subnet",
        "10.0.0.0/28",
        "--gateway",
        "10.0.0.1",
        "--name-servers",
        "1.1.1.1",
    ];
    allowed.push("--allow-overlap");
    ok(&state, &allowed);

    let run = vkube(&state, &["ippool", "show", "nope"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("IP pool `nope` not found"),
        "{}",
        run.stderr
    );
    // A usage error is the user's to fix: exit code 1.
    assert_eq!(vkube(&state, &["ippool", "create", "x"]).code, 1);
}

#[tokio::test]
async fn allocations_and_delete_force() {
    let dir = TempDir::new();
    let state = dir.state();
    ok(&state, LAB);
    {
        // Leases are written under a cluster's apply lock, as an apply does.
        let store = SqliteStore::open(&state).await.unwrap();
        for (cluster, nodes) in [("prod", &["cp-0", "cp-1"][..]), ("dev", &["cp-0"][..])] {
            let lock = store
                .acquire_apply_lock(cluster, "test", Timestamp::now(), Duration::from_secs(60))
                .await
                .unwrap();
            for node in nodes {
                store.allocate(&lock.fence(), "lab", node).await.unwrap();
            }
        }
    }
    assert_eq!(
        ok(&state, &["ippool", "allocations", "lab"]),
        "ADDRESS       CLUSTER  NODE\n\
         10.0.0.10/24  prod     cp-0\n\
         10.0.0.11/24  prod     cp-1\n\
         10.0.0.12/24  dev      cp-0\n"
    );
    let leases: serde_json::Value = serde_json::from_str(&ok(
        &state,
        &[
            "ippool",
            "allocations",
            "lab",
            "--cluster",
            "dev",
            "-o",
            "json",
        ],
    ))
    .unwrap();
    assert_eq!(leases.as_array().unwrap().len(), 1);
    assert_eq!(leases[0]["address"], "10.0.0.12");
    assert_eq!(leases[0]["nameServers"][1], "10.0.0.54");

    let run = vkube(&state, &["ippool", "delete", "lab"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains(
            "pool `lab` has 3 allocated address(es); release them first or pass `--force`"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(
        ok(&state, &["ippool", "delete", "lab", "--force"]),
        "deleted IP pool `lab` and released 3 address(es)\n"
    );
    assert_eq!(
        ok(&state, &["ippool", "ls"]),
        "NAME  ADDRESSES  PREFIX  GATEWAY  USED  CLUSTER\n"
    );
}

#[test]
fn import_is_all_or_nothing() {
    let dir = TempDir::new();
    let state = dir.state();
    let file = dir.0.join("pools.yaml");
    std::fs::write(
        &file,
        "pools:
  - name: a
    subnet: 10.1.0.0/24
    gateway: 10.1.0.1
    nameServers: [10.1.0.53]
    exclude: [10.1.0.53]
    restrictToCluster: true
  - name: b
    range: { start: 2001:db8::10, end: 2001:db8::20 }
    prefix: 64
    gateway: 2001:db8::1
    nameServers: [2001:db8::53]
  - name: c
    subnet: 10.2.0.0/24
    gateway: 10.3.0.1
    nameServers: [10.1.0.53]
",
    )
    .unwrap();
    let run = vkube(&state, &["ippool", "import", "-f", file.to_str().unwrap()]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("pools[2].gateway: 10.3.0.1 is outside subnet 10.2.0.0/24"),
        "{}",
        run.stderr
    );
    assert_eq!(ok(&state, &["ippool", "ls", "-o", "json"]).trim(), "[]");

    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("gateway: 10.3.0.1", "gateway: 10.2.0.1");
    std::fs::write(&file, text).unwrap();
    assert_eq!(
        ok(&state, &["ippool", "import", "-f", file.to_str().unwrap()]),
        "created IP pool `a`: 252 address(es) in 10.1.0.0/24\n\
         created IP pool `b`: 17 address(es) in 2001:db8::10-2001:db8::20\n\
         created IP pool `c`: 253 address(es) in 10.2.0.0/24\n"
    );
    let run = vkube(&state, &["ippool", "import", "-f", file.to_str().unwrap()]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("IP pool `a` already exists"),
        "{}",
        run.stderr
    );

    let run = vkube(
        &state,
        &[
            "ippool",
            "import",
            "-f",
            dir.0.join("missing.yaml").to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    std::fs::write(&file, "pools:\n  - name: a\n    gatway: 10.0.0.1\n").unwrap();
    let run = vkube(&state, &["ippool", "import", "-f", file.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("unknown field `gatway`"),
        "{}",
        run.stderr
    );
}

#[test]
fn state_flag_overrides_environment() {
    let dir = TempDir::new();
    let flag_state = dir.0.join("flag.db");
    let mut args = LAB.to_vec();
    args.extend(["--state", flag_state.to_str().unwrap()]);
    ok(&dir.state(), &args);
    assert!(flag_state.exists());
    assert!(!dir.state().exists());
}
