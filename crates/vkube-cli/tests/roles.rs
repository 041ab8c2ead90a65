//! `vkube roles` end to end (issue 3): the binary against the simulator,
//! with every change read back through the vSphere API, not through vkube's
//! own output.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{error_lines, vkube, Run};
use vkube_core::roles::{Catalog, IMPLIED_SYSTEM_PRIVILEGES};
use vkube_test_support::Simulator;
use vkube_vsphere::{
    Authorization, ConnectOptions, Endpoint, Inventory, Secret, Session, TlsPolicy, TransportChoice,
};

const PRINCIPAL: &str = "k8s-svc@vsphere.local";

/// Bindings for the simulator's default inventory; `template-folder` and
/// `datastore-cluster` stay unbound on purpose.
const BINDS: &[&str] = &[
    "--bind",
    "datacenter=/DC0",
    "--bind",
    "compute-cluster=/DC0/host/DC0_C0",
    "--bind",
    "datastore=/DC0/datastore/LocalDS_0",
    "--bind",
    "network=/DC0/network/DC0_DVPG0",
    "--bind",
    "vm-folder=/DC0/vm",
];

fn args<'a>(head: &[&'a str], tail: &[&'a str]) -> Vec<&'a str> {
    head.iter().chain(BINDS).chain(tail).copied().collect()
}

fn assert_one_error(run: &Run, code: i32, needle: &str) {
    assert_eq!(
        run.code, code,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    let lines = error_lines(run);
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(lines[0].contains(needle), "{:?} lacks {needle:?}", lines[0]);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

/// Reads and changes vCenter state directly, to verify what vkube did.
struct Api {
    runtime: tokio::runtime::Runtime,
    session: Session,
    inventory: Inventory,
}

impl Api {
    fn connect(sim: &Simulator) -> Api {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let options = ConnectOptions {
            endpoint: Endpoint::parse(sim.url()).unwrap(),
            username: sim.username().to_owned(),
            password: Secret::new(sim.password()),
            tls: TlsPolicy::Insecure,
            transport: TransportChoice::Auto,
            wire_log: false,
            connect_timeout: Duration::from_secs(5),
            timeouts: Default::default(),
        };
        let session = runtime.block_on(Session::connect(options)).unwrap();
        let inventory = runtime.block_on(Inventory::load(&session)).unwrap();
        Api {
            runtime,
            session,
            inventory,
        }
    }

    fn authz(&self) -> Authorization<'_> {
        Authorization::new(&self.session).unwrap()
    }

    fn role_privileges(&self, name: &str) -> Option<BTreeSet<String>> {
        let roles = self.runtime.block_on(self.authz().roles()).unwrap();
        roles
            .into_iter()
            .find(|r| r.name == name)
            .map(|r| r.privileges)
    }

    /// The principal's own permission on `path`: (role name, propagate).
    fn permission(&self, path: &str, principal: &str) -> Option<(String, bool)> {
        let entity = self
            .inventory
            .resolve(path, "object")
            .unwrap()
            .moref()
            .clone();
        let authz = self.authz();
        let roles = self.runtime.block_on(authz.roles()).unwrap();
        let permissions = self
            .runtime
            .block_on(authz.entity_permissions(&entity, false))
            .unwrap();
        let mine: Vec<_> = permissions
            .iter()
            .filter(|p| p.principal.eq_ignore_ascii_case(principal) && !p.group)
            .collect();
        assert!(mine.len() <= 1, "{mine:?}");
        mine.first().map(|p| {
            (
                roles
                    .iter()
                    .find(|r| r.id == p.role_id)
                    .unwrap()
                    .name
                    .clone(),
                p.propagate,
            )
        })
    }

    fn update_role(&self, name: &str, privileges: &BTreeSet<String>) {
        let authz = self.authz();
        let roles = self.runtime.block_on(authz.roles()).unwrap();
        let id = roles.iter().find(|r| r.name == name).unwrap().id;
        let list: Vec<String> = privileges.iter().cloned().collect();
        self.runtime
            .block_on(authz.update_role(id, name, &list))
            .unwrap();
    }

    fn set_permission(&self, path: &str, principal: &str, role: &str, propagate: bool) {
        let entity = self
            .inventory
            .resolve(path, "object")
            .unwrap()
            .moref()
            .clone();
        let authz = self.authz();
        let roles = self.runtime.block_on(authz.roles()).unwrap();
        let id = match roles.iter().find(|r| r.name == role) {
            Some(r) => r.id,
            None => self
                .runtime
                .block_on(authz.create_role(role, &["Folder.Create".to_owned()]))
                .unwrap(),
        };
        self.runtime
            .block_on(authz.set_permission(&entity, principal, false, id, propagate))
            .unwrap();
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        self.runtime.block_on(self.session.close());
    }
}

fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

fn missing_on<'a>(report: &'a serde_json::Value, path: &str) -> Vec<(&'a str, &'a str)> {
    let object = report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["path"] == path)
        .unwrap_or_else(|| panic!("{path} not probed: {report}"));
    object["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["privilege"].as_str().unwrap(),
                m["reason"].as_str().unwrap(),
            )
        })
        .collect()
}

/// The first probed child of `parent` in a check report.
fn child_of<'a>(report: &'a serde_json::Value, parent: &str) -> &'a str {
    report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["childOf"] == parent)
        .expect("a child probe")["path"]
        .as_str()
        .unwrap()
}

#[test]
fn apply_creates_exactly_the_catalog_roles_and_permissions_then_no_changes() {
    let sim = Simulator::start_default();
    let env = sim.vkube_env();
    let run = vkube(
        &env,
        &args(
            &["roles", "apply", "kkp-user", "--principal", PRINCIPAL],
            &[],
        ),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("create role `k8c-user-vcenter`"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr
            .contains("warning: slot `template-folder` is not bound"),
        "{}",
        run.stderr
    );

    let api = Api::connect(&sim);
    let catalog = Catalog::builtin("kkp-user").unwrap();
    let paths = [
        ("vcenter", "/"),
        ("datacenter", "/DC0"),
        ("compute-cluster", "/DC0/host/DC0_C0"),
        ("datastore", "/DC0/datastore/LocalDS_0"),
        ("network", "/DC0/network/DC0_DVPG0"),
        ("vm-folder", "/DC0/vm"),
    ];
    for role in catalog.roles().iter().filter(|r| !r.is_optional()) {
        if !role.is_builtin() {
            let mut expected: BTreeSet<String> =
                role.privileges().iter().map(|p| p.id.to_string()).collect();
            expected.extend(IMPLIED_SYSTEM_PRIVILEGES.iter().map(|id| (*id).to_owned()));
            assert_eq!(
                api.role_privileges(role.name()).as_ref(),
                Some(&expected),
                "role {}",
                role.name()
            );
        }
        for grant in role.grants() {
            let Some((_, path)) = paths.iter().find(|(slot, _)| *slot == grant.slot.as_str())
            else {
                continue;
            };
            assert_eq!(
                api.permission(path, PRINCIPAL),
                Some((role.name().to_owned(), grant.propagate)),
                "{} on {path}",
                role.name()
            );
        }
    }

    // Second run, with the other spelling of the same principal: nothing to do.
    let run = vkube(
        &env,
        &args(
            &[
                "roles",
                "apply",
                "kkp-user",
                "--principal",
                "VSPHERE.LOCAL\\k8s-svc",
            ],
            &[],
        ),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.starts_with("no changes"), "{}", run.stdout);

    let run = vkube(
        &env,
        &args(
            &["roles", "check", "kkp-user", "--principal", PRINCIPAL],
            &[],
        ),
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("all present"), "{}", run.stdout);
    assert!(
        run.stdout.contains("holds every privilege"),
        "{}",
        run.stdout
    );
}

#[test]
fn dry_run_changes_nothing() {
    let sim = Simulator::start_default();
    let env = sim.vkube_env();
    let run = vkube(
        &env,
        &args(
            &[
                "roles",
                "apply",
                "vkube",
                "--principal",
                PRINCIPAL,
                "--dry-run",
            ],
            &[],
        ),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.starts_with("plan (dry run"), "{}", run.stdout);
    assert!(
        run.stdout.contains(
            "grant `vkube-folder` on `/DC0/vm` to `k8s-svc@vsphere.local` propagate=true"
        ),
        "{}",
        run.stdout
    );
    let run = vkube(
        &env,
        &args(
            &[
                "roles",
                "apply",
                "vkube",
                "--principal",
                PRINCIPAL,
                "--dry-run",
                "-o",
                "json",
            ],
            &[],
        ),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let plan = json(&run);
    assert_eq!(
        (plan["dryRun"].as_bool(), plan["changed"].as_bool()),
        (Some(true), Some(false))
    );
    assert!(plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["step"] == "createRole" && s["name"] == "vkube-folder"));

    let api = Api::connect(&sim);
    assert_eq!(api.role_privileges("vkube-folder"), None);
    assert_eq!(api.role_privileges("vkube-vcenter"), None);
    for path in ["/", "/DC0", "/DC0/vm", "/DC0/host/DC0_C0"] {
        assert_eq!(api.permission(path, PRINCIPAL), None, "{path}");
    }
}

#[test]
fn check_names_a_privilege_removed_from_a_role() {
    let sim = Simulator::start_default();
    let env = sim.vkube_env();
    let run = vkube(
        &env,
        &args(&["roles", "apply", "vkube", "--principal", PRINCIPAL], &[]),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);

    let api = Api::connect(&sim);
    let mut privileges = api.role_privileges("vkube-folder").unwrap();
    assert!(privileges.remove("Folder.Delete"));
    api.update_role("vkube-folder", &privileges);

    let run = vkube(
        &env,
        &args(
            &[
                "roles",
                "check",
                "vkube",
                "--principal",
                PRINCIPAL,
                "-o",
                "json",
            ],
            &[],
        ),
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = json(&run);
    assert_eq!(report["complete"], false);
    assert_eq!(
        missing_on(&report, "/DC0/vm"),
        [("Folder.Delete", "granted here")]
    );
    let child = child_of(&report, "/DC0/vm");
    assert_eq!(
        missing_on(&report, child),
        [("Folder.Delete", "must be inherited from vm-folder")]
    );
    let total: usize = report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["missing"].as_array().unwrap().len())
        .sum();
    assert_eq!(total, 2, "{report}");

    let table = vkube(
        &env,
        &args(&["roles", "check", "vkube", "--principal", PRINCIPAL], &[]),
    );
    assert_eq!(table.code, 1);
    assert!(
        table.stdout.contains("Folder.Delete") && table.stdout.contains("granted here"),
        "{}",
        table.stdout
    );
    assert!(error_lines(&table).is_empty(), "{}", table.stderr);

    // Applying again does not silently rewrite a role that exists (vCenter
    // cannot tell who made it); `--adopt-roles` does.
    let apply = |extra: &[&'static str]| {
        let mut head = vec!["roles", "apply", "vkube", "--principal", PRINCIPAL];
        head.extend_from_slice(extra);
        vkube(&env, &args(&head, &[]))
    };
    let refused = apply(&[]);
    assert_one_error(
        &refused,
        1,
        "refusing to change existing role(s) `vkube-folder`",
    );
    assert!(!api
        .role_privileges("vkube-folder")
        .unwrap()
        .contains("Folder.Delete"));
    // Adopting puts it back, naming the difference.
    let adopted = apply(&["--adopt-roles"]);
    assert_eq!(adopted.code, 0, "{}", adopted.stderr);
    assert!(
        adopted
            .stdout
            .contains("update role `vkube-folder`\n  + Folder.Delete\n"),
        "{}",
        adopted.stdout
    );
    assert!(api
        .role_privileges("vkube-folder")
        .unwrap()
        .contains("Folder.Delete"));

    let run = vkube(
        &env,
        &args(&["roles", "check", "vkube", "--principal", PRINCIPAL], &[]),
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
}

#[test]
fn check_catches_a_grant_that_does_not_propagate() {
    let sim = Simulator::start_default();
    let env = sim.vkube_env();
    let run = vkube(
        &env,
        &args(
            &["roles", "apply", "kkp-user", "--principal", PRINCIPAL],
            &[],
        ),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let api = Api::connect(&sim);
    api.set_permission("/DC0/vm", PRINCIPAL, "k8c-user-folder-propagate", false);

    let run = vkube(
        &env,
        &args(
            &[
                "roles",
                "check",
                "kkp-user",
                "--principal",
                PRINCIPAL,
                "-o",
                "json",
            ],
            &[],
        ),
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = json(&run);
    assert!(missing_on(&report, "/DC0/vm").is_empty(), "{report}");
    let child = child_of(&report, "/DC0/vm");
    assert!(child.starts_with("/DC0/vm/"), "{child}");
    let missing = missing_on(&report, child);
    let catalog = Catalog::builtin("kkp-user").unwrap();
    let expected: BTreeSet<&str> = catalog
        .role("k8c-user-folder-propagate")
        .unwrap()
        .privileges()
        .iter()
        .map(|p| p.id.as_str())
        .filter(|id| !id.starts_with("System."))
        .collect();
    assert_eq!(
        missing.iter().map(|(id, _)| *id).collect::<BTreeSet<_>>(),
        expected
    );
    assert!(missing
        .iter()
        .all(|(_, reason)| *reason == "must be inherited from vm-folder"));

    let run = vkube(
        &env,
        &args(
            &["roles", "apply", "kkp-user", "--principal", PRINCIPAL],
            &[],
        ),
    );
    assert!(
        run.stdout.contains("grant `k8c-user-folder-propagate` on `/DC0/vm` to `k8s-svc@vsphere.local` propagate=true (replaces `k8c-user-folder-propagate` propagate=false)"),
        "{}",
        run.stdout
    );
    assert_eq!(
        api.permission("/DC0/vm", PRINCIPAL),
        Some(("k8c-user-folder-propagate".to_owned(), true))
    );
    let run = vkube(
        &env,
        &args(
            &["roles", "check", "kkp-user", "--principal", PRINCIPAL],
            &[],
        ),
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
}

#[test]
fn check_without_principal_uses_the_own_session() {
    let sim = Simulator::start_default();
    let env = sim.vkube_env();
    // The simulator's user holds Admin on the root: everything present.
    let run = vkube(&env, &args(&["roles", "check", "vkube", "-o", "json"], &[]));
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = json(&run);
    assert_eq!(report["complete"], true);
    assert!(
        report["principal"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case(sim.username()),
        "{report}"
    );

    // Narrow the own permission on the VM folder (nearest entity wins).
    let api = Api::connect(&sim);
    api.set_permission("/DC0/vm", sim.username(), "only-folder-create", true);
    let run = vkube(&env, &args(&["roles", "check", "vkube", "-o", "json"], &[]));
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = json(&run);
    let missing = missing_on(&report, "/DC0/vm");
    assert!(
        missing.contains(&("Folder.Delete", "granted here")),
        "{missing:?}"
    );
    assert!(
        !missing.iter().any(|(id, _)| *id == "Folder.Create"),
        "{missing:?}"
    );
    assert!(missing_on(&report, "/DC0").is_empty());
}

#[test]
fn bad_inputs_give_one_clear_error_each() {
    // Offline: no vCenter is contacted before the input is valid.
    let none: Vec<(String, String)> = Vec::new();
    let run = vkube(&none, &["roles", "show", "kkp-usr"]);
    assert_one_error(
        &run,
        1,
        "unknown role profile `kkp-usr`; profiles are `vkube`",
    );
    let run = vkube(
        &none,
        &["roles", "apply", "kkp-usr", "--principal", PRINCIPAL],
    );
    assert_one_error(&run, 1, "unknown role profile `kkp-usr`");
    let run = vkube(
        &none,
        &[
            "roles",
            "apply",
            "kkp-user",
            "--principal",
            PRINCIPAL,
            "--bind",
            "vm_folder=/DC0/vm",
        ],
    );
    assert_one_error(&run, 1, "invalid slot binding `vm_folder=/DC0/vm`: unknown slot `vm_folder`; did you mean `vm-folder`?");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "profile: mine\ndescription: d\nsource: s\nroles:\n  - name: r\n    purpose: p\n    grants:\n      - slot: vm-folder\n        propagate: true\n    privileges:\n      - id: Folder.Creat\n",
    )
    .unwrap();
    let file = bad.to_str().unwrap();
    let run = vkube(
        &none,
        &["roles", "apply", "-f", file, "--principal", PRINCIPAL],
    );
    assert_one_error(
        &run,
        1,
        &format!(
            "unknown privilege `Folder.Creat` in `{file}` line 11; did you mean `Folder.Create`?"
        ),
    );
    let run = vkube(
        &none,
        &[
            "roles",
            "show",
            "-f",
            &dir.path().join("absent.yaml").display().to_string(),
        ],
    );
    assert_one_error(&run, 1, "cannot read role catalog");

    // Against vCenter.
    let sim = Simulator::start_default();
    let env = sim.vkube_env();
    let run = vkube(
        &env,
        &[
            "roles",
            "apply",
            "kkp-user",
            "--principal",
            PRINCIPAL,
            "--bind",
            "vm-folder=/DC0/vm/k8s",
        ],
    );
    assert_one_error(
        &run,
        1,
        "binding slot `vm-folder`: VM folder `/DC0/vm/k8s` not found: `/DC0/vm` has no `k8s`",
    );
    let run = vkube(
        &env,
        &[
            "roles",
            "apply",
            "kkp-user",
            "--principal",
            PRINCIPAL,
            "--bind",
            "datastore=/DC0/vm",
        ],
    );
    assert_one_error(
        &run,
        1,
        "slot `datastore` is bound to `/DC0/vm`, which is a Folder, not a datastore",
    );
    let run = vkube(
        &env,
        &[
            "roles",
            "apply",
            "vkube",
            "--principal",
            PRINCIPAL,
            "--include-optional",
        ],
    );
    assert_one_error(
        &run,
        1,
        "are both granted on `/`; vCenter keeps one permission per principal and object",
    );
    // `check` reserves exit 1 for missing privileges: its errors exit 2.
    let run = vkube(
        &env,
        &[
            "roles",
            "check",
            "kkp-user",
            "--principal",
            PRINCIPAL,
            "--bind",
            "vm-folder=/DC0/vm/k8s",
        ],
    );
    assert_one_error(&run, 2, "VM folder `/DC0/vm/k8s` not found");
    let run = vkube(&none, &["roles", "check", "kkp-usr"]);
    assert_one_error(&run, 2, "unknown role profile `kkp-usr`");
    let api = Api::connect(&sim);
    assert_eq!(
        api.role_privileges("k8c-user-vcenter"),
        None,
        "nothing was created"
    );
}

#[test]
fn list_show_and_export_work_offline() {
    let none: Vec<(String, String)> = Vec::new();
    let run = vkube(&none, &["roles", "list"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.starts_with("PROFILE"));
    assert!(
        run.stdout.lines().any(|l| l.starts_with("kkp-user ")),
        "{}",
        run.stdout
    );

    let run = vkube(&none, &["roles", "show", "kkp-user", "-o", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let catalog = json(&run);
    assert_eq!(catalog["profile"], "kkp-user");
    assert!(catalog["roles"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "k8c-user-folder-propagate"));
    let run = vkube(&none, &["roles", "show", "vkube"]);
    assert!(
        run.stdout.contains("vkube-roles-admin (optional)")
            && run.stdout.contains("vm-folder (propagate)"),
        "{}",
        run.stdout
    );

    let run = vkube(
        &none,
        &[
            "roles",
            "export",
            "vkube",
            "--principal",
            PRINCIPAL,
            "--format",
            "govc",
            "--bind",
            "vm-folder=/DC0/vm",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.starts_with("#!/bin/sh\n"));
    assert!(run.stdout.contains("govc role.create vkube-folder \\\n"));
    assert!(run.stdout.contains("govc permissions.set -principal k8s-svc@vsphere.local -role vkube-folder -propagate=true /DC0/vm\n"));
    assert!(!run.stdout.contains("vkube-roles-admin"));
    let run = vkube(
        &none,
        &[
            "roles",
            "export",
            "kkp-user",
            "--principal",
            PRINCIPAL,
            "--format",
            "json",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(json(&run)["principal"], PRINCIPAL);
}

#[test]
fn privileges_an_older_vcenter_does_not_know_are_listed_and_refused() {
    // Without vkube's vSphere 7/8 ids the simulator knows only vSphere 6.5's.
    let sim = Simulator::start(vkube_test_support::SimulatorConfig {
        modern_privileges: false,
        ..Default::default()
    });
    let env = sim.vkube_env();
    let refused = vkube(
        &env,
        &args(
            &["roles", "apply", "kkp-user", "--principal", PRINCIPAL],
            &[],
        ),
    );
    assert_eq!(
        refused.code, 1,
        "stdout: {}\nstderr: {}",
        refused.stdout, refused.stderr
    );
    let all = format!("{}{}", refused.stdout, refused.stderr);
    assert!(
        all.contains("Cns.Searchable"),
        "the unknown id is named: {all}"
    );
    assert!(
        all.contains("--skip-unknown"),
        "the way out is named: {all}"
    );
    let api = Api::connect(&sim);
    assert!(
        api.role_privileges("k8c-user-vcenter").is_none(),
        "nothing was created before refusing"
    );
    let skipped = vkube(
        &env,
        &args(
            &["roles", "apply", "kkp-user", "--principal", PRINCIPAL],
            &["--skip-unknown"],
        ),
    );
    assert_eq!(skipped.code, 0, "{}", skipped.stderr);
    let api = Api::connect(&sim);
    let created = api
        .role_privileges("k8c-user-vcenter")
        .expect("created without the unknown ids");
    assert!(!created.contains("Cns.Searchable"));
}
