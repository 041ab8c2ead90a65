//! The node-side shell, run for real: `bash -n` and `shellcheck` on every
//! rendered script, and the library's functions executed by bash against
//! fake `/sys/class/net` trees, fake `ip`/`kubectl`/`vmware-rpctool`
//! commands and containerd config files (read back by containerd's own
//! config loader where containerd is installed, and by Python's TOML
//! parser).

use std::path::Path;
use std::process::Command;

use super::tests::{init_node, lease, node_variants, run, spec_with, tool, with_input, TempDir};
use super::*;
use crate::cluster::spec_tests::example;
use crate::cluster::RawRegistry;

/// Runs `body` in bash with the node library sourced; returns (status,
/// stdout, stderr).
fn bash(dir: &TempDir, body: &str) -> (i32, String, String) {
    let library = dir.write("lib.sh", &script::library());
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("set -u\n. {}\n{body}", library.display()))
        .current_dir(&dir.0)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every script a node can get.
fn scripts() -> Vec<(String, String)> {
    let dhcp = spec_with(|r| r.spec.ip_allocation = Some("dhcp".into()));
    let mirrored = spec_with(|r| {
        r.spec.registry = Some(RawRegistry {
            mirror: "harbor.example.com/k8s".into(),
            ca_bundle: None,
            insecure_skip_verify: true,
        })
    });
    let mut scripts = vec![("lib.sh".to_owned(), script::library())];
    scripts.extend(
        node_variants(
            &[
                ("static", &example(), true),
                ("dhcp", &dhcp, false),
                ("mirror", &mirrored, true),
            ],
            |i| script::bootstrap(i).unwrap(),
        )
        .into_iter()
        .map(|(name, text)| (format!("{name}.sh"), text)),
    );
    scripts
}

#[test]
fn scripts_pass_bash_n_and_shellcheck() {
    let dir = TempDir::new("scripts");
    let shellcheck = tool(
        "shellcheck",
        &["--version"],
        Some("VKUBE_REQUIRE_SHELLCHECK"),
        "apt-get install -y shellcheck",
    );
    for (name, text) in scripts() {
        let path = dir.write(&name, &text);
        run(Command::new("bash").arg("-n").arg(&path));
        if shellcheck {
            // SC1091: the library is sourced from its path on the node.
            run(Command::new("shellcheck")
                .args(["--shell=bash", "--severity=style", "--exclude=SC1091"])
                .arg(&path));
        }
    }
}

/// A fake `/sys/class/net`: `(name, mac, physical)`.
fn sys_net(dir: &TempDir, devices: &[(&str, &str, bool)]) -> String {
    for (name, mac, physical) in devices {
        dir.write(&format!("net/{name}/address"), &format!("{mac}\n"));
        if *physical {
            std::fs::create_dir_all(dir.0.join(format!("net/{name}/device"))).unwrap();
        }
    }
    dir.0.join("net").display().to_string()
}

#[test]
fn the_nic_is_found_by_mac_whatever_its_name() {
    let dir = TempDir::new("nic");
    let net = sys_net(
        &dir,
        &[
            ("lo", "00:00:00:00:00:00", false),
            // A VLAN on top shares the MAC but is not the NIC.
            ("a-vlan.10", "00:50:56:ab:cd:ef", false),
            ("enp11s0", "00:50:56:ab:cd:ef", true),
            ("enp12s0", "00:50:56:00:00:01", true),
        ],
    );
    let (status, out, _) = bash(
        &dir,
        &format!("VKUBE_SYS_NET={net} vkube_nic 00:50:56:AB:CD:EF 1"),
    );
    assert_eq!((status, out.as_str()), (0, "enp11s0\n"));
    let (status, out, _) = bash(
        &dir,
        &format!("VKUBE_SYS_NET={net} vkube_nic 00:50:56:ff:ff:ff 1"),
    );
    assert_eq!((status, out.as_str()), (1, ""));
}

#[test]
fn the_node_address_comes_from_the_route_to_the_vip_never_the_vip() {
    let dir = TempDir::new("node-ip");
    // `ip` as the node would answer: $ROUTE for `route get`, $ADDRS for
    // `addr show`.
    let fake_ip = r#"ip() {
  case "$*" in
    *"route get"*) [ -n "$ROUTE" ] && echo "$ROUTE" ;;
    *"addr show dev ens192"*) printf '%s\n' "${ADDRS[@]}" ;;
    *) return 1 ;;
  esac
}
"#;
    let cases = [
        (
            "route through the NIC",
            "ROUTE='10.20.0.5 dev ens192 src 10.20.0.33 uid 0'; ADDRS=()",
            "10.20.0.5",
            "10.20.0.33\n",
        ),
        (
            // kube-vip holds the VIP on this node: the route is local.
            "VIP is local",
            "ROUTE='local 10.20.0.5 dev lo table local src 10.20.0.5 uid 0'; ADDRS=('2: ens192    inet 10.20.0.5/32 scope global ens192' '2: ens192    inet 10.20.0.34/24 brd 10.20.0.255 scope global dynamic ens192')",
            "10.20.0.5",
            "10.20.0.34\n",
        ),
        (
            "IPv6",
            "ROUTE='fd00::5 from :: dev ens192 proto kernel src fd00::21 metric 256 pref medium'; ADDRS=()",
            "fd00::5",
            "fd00::21\n",
        ),
    ];
    for (name, setup, vip, expected) in cases {
        let (status, out, err) = bash(
            &dir,
            &format!("{fake_ip}{setup}\nvkube_node_ip ens192 {vip} 1"),
        );
        assert_eq!((status, out.as_str()), (0, expected), "{name}: {err}");
    }
    let (status, out, _) = bash(
        &dir,
        &format!("{fake_ip}ROUTE=; ADDRS=()\nsleep() {{ :; }}\nvkube_node_ip ens192 10.20.0.5 2"),
    );
    assert_eq!((status, out.as_str()), (1, ""), "no address yet");
}

#[test]
fn templates_are_rendered_with_mode_and_checked_values() {
    let dir = TempDir::new("render");
    dir.write(
        "kubeadm.yaml.in",
        "advertiseAddress: '@VKUBE_NODE_IP@'\nnode-ip: '@VKUBE_NODE_IP@'\nother: '@OTHER@'\n",
    );
    let (status, _, err) = bash(
        &dir,
        "vkube_render kubeadm.yaml.in kubeadm.yaml 0600 VKUBE_NODE_IP=10.20.0.33 && stat -c %a kubeadm.yaml >&2",
    );
    assert_eq!(status, 0, "{err}");
    assert_eq!(err, "600\n");
    assert_eq!(
        std::fs::read_to_string(dir.0.join("kubeadm.yaml")).unwrap(),
        "advertiseAddress: '10.20.0.33'\nnode-ip: '10.20.0.33'\nother: '@OTHER@'\n"
    );
    let (status, _, err) = bash(
        &dir,
        "vkube_render kubeadm.yaml.in evil.yaml 0600 'VKUBE_NODE_IP=1|e rm'",
    );
    assert_eq!(status, 1);
    assert!(err.contains("refusing to substitute"), "{err}");
    assert!(!dir.0.join("evil.yaml").exists());
    // Without substitutions it copies.
    let (status, _, _) = bash(&dir, "vkube_render kubeadm.yaml.in copy.yaml 0644");
    assert_eq!(status, 0);
    assert_eq!(
        std::fs::read_to_string(dir.0.join("copy.yaml")).unwrap(),
        std::fs::read_to_string(dir.0.join("kubeadm.yaml.in")).unwrap()
    );
}

/// config.toml variants an image can ship, and the table `config_path`
/// must end up in.
fn containerd_configs() -> Vec<(&'static str, String, &'static [&'static str])> {
    const V2: &[&str] = &["plugins", "io.containerd.grpc.v1.cri", "registry"];
    const V3: &[&str] = &["plugins", "io.containerd.cri.v1.images", "registry"];
    const V1: &[&str] = &["plugins", "cri", "registry"];
    let mut configs = vec![
        (
            "image-builder style, no registry table",
            "version = 2\nimports = [\"/etc/containerd/conf.d/*.toml\"]\n\n[plugins]\n  [plugins.\"io.containerd.grpc.v1.cri\"]\n    sandbox_image = \"registry.k8s.io/pause:3.9\"\n  [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n    runtime_type = \"io.containerd.runc.v2\"\n  [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n    SystemdCgroup = true\n".to_owned(),
            V2,
        ),
        (
            "registry table without config_path",
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  [plugins.\"io.containerd.grpc.v1.cri\".registry.configs]\n".to_owned(),
            V2,
        ),
        (
            "config_path elsewhere",
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/docker/certs.d\"\n".to_owned(),
            V2,
        ),
        (
            "already set",
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n".to_owned(),
            V2,
        ),
        (
            "containerd 2",
            "version = 3\n\n[plugins.'io.containerd.cri.v1.images'.registry]\n  config_path = ''\n".to_owned(),
            V3,
        ),
        (
            "containerd 2 without registry table",
            "version = 3\n[plugins.'io.containerd.cri.v1.runtime']\n  enable_selinux = false\n".to_owned(),
            V3,
        ),
        (
            "version 1 (no header)",
            "[plugins.cri]\n  sandbox_image = \"registry.k8s.io/pause:3.9\"\n".to_owned(),
            V1,
        ),
    ];
    // What containerd 1.x writes itself (`config_path = ""`).
    if let Ok(out) = Command::new("containerd")
        .args(["config", "default"])
        .output()
    {
        if out.status.success() {
            configs.push((
                "containerd config default",
                String::from_utf8(out.stdout).unwrap(),
                V2,
            ));
        }
    }
    configs
}

#[test]
fn containerd_reads_certs_d_whatever_config_the_image_ships() {
    let python = tool("python3", &["--version"], None, "apt-get install python3");
    let containerd = tool(
        "containerd",
        &["--version"],
        Some("VKUBE_REQUIRE_CONTAINERD"),
        "apt-get install -y containerd",
    );
    let dir = TempDir::new("containerd");
    for (index, (name, text, table)) in containerd_configs().into_iter().enumerate() {
        let path = dir.write(&format!("config-{index}.toml"), &text);
        let call = format!("vkube_containerd_config_path {}", path.display());
        let (status, _, err) = bash(&dir, &call);
        assert_eq!(status, 0, "{name}: {err}");
        let once = std::fs::read_to_string(&path).unwrap();
        let (status, out, _) = bash(&dir, &call);
        assert_eq!(status, 0);
        assert!(
            out.contains("already lists"),
            "{name}: not idempotent: {out}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), once, "{name}");
        if python {
            let value = run(Command::new("python3")
                .arg("-c")
                .arg("import sys, tomllib\nv = tomllib.load(open(sys.argv[1], 'rb'))\nfor k in sys.argv[2:]: v = v[k]\nprint(v['config_path'])")
                .arg(&path)
                .args(table));
            let paths: Vec<&str> = value.trim().split(':').collect();
            assert_eq!(paths[0], "/etc/containerd/certs.d", "{name}:\n{once}");
            if name == "config_path elsewhere" {
                assert_eq!(paths, ["/etc/containerd/certs.d", "/etc/docker/certs.d"]);
            }
        }
        // containerd 1.x reads versions 1 and 2; its loader must accept
        // the file and see the setting.
        if containerd && table[1] != "io.containerd.cri.v1.images" {
            let dump = run(Command::new("containerd")
                .arg("--config")
                .arg(&path)
                .args(["config", "dump"]));
            assert!(
                dump.contains("config_path = \"/etc/containerd/certs.d"),
                "{name}: containerd sees no config_path:\n{dump}"
            );
        }
    }
    // No file at all: containerd 1.x gets one, containerd 2 needs none.
    let missing = dir.0.join("missing/config.toml");
    let v1 = format!(
        "containerd() {{ echo 'containerd github.com/containerd/containerd v1.7.22 7f7fdf5'; }}\nvkube_containerd_config_path {}",
        missing.display()
    );
    assert_eq!(bash(&dir, &v1).0, 0);
    let written = std::fs::read_to_string(&missing).unwrap();
    assert!(
        written.contains("[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n"),
        "{written}"
    );
    let v2_missing = dir.0.join("missing2/config.toml");
    let v2 = format!(
        "containerd() {{ echo 'containerd github.com/containerd/containerd/v2 v2.0.2 c507a0257'; }}\nvkube_containerd_config_path {}",
        v2_missing.display()
    );
    assert_eq!(bash(&dir, &v2).0, 0);
    assert!(!v2_missing.exists());
}

#[test]
fn containerd_config_file_is_the_one_the_unit_uses() {
    let dir = TempDir::new("containerd-unit");
    // `systemctl show` as Ubuntu's and Flatcar's containerd.service answer.
    let ubuntu = r#"systemctl() {
  case "$*" in
    *ExecStart*) echo 'ExecStart={ path=/usr/bin/containerd ; argv[]=/usr/bin/containerd ; ignore_errors=no }' ;;
    *Environment*) echo 'Environment=' ;;
  esac
}
"#;
    let flatcar = r#"systemctl() {
  case "$*" in
    *ExecStart*) echo 'ExecStart={ path=/usr/bin/containerd ; argv[]=/usr/bin/containerd --config ${CONTAINERD_CONFIG} ; ignore_errors=no }' ;;
    *Environment*) echo 'Environment=TORCX=no CONTAINERD_CONFIG=/usr/share/containerd/config.toml' ;;
    daemon-reload) echo reloaded >>systemctl.log ;;
  esac
}
"#;
    let (_, out, _) = bash(&dir, &format!("{ubuntu}vkube_containerd_config_file"));
    assert_eq!(out, "/etc/containerd/config.toml\n");
    let literal = ubuntu.replace(
        "argv[]=/usr/bin/containerd ;",
        "argv[]=/usr/bin/containerd --config /opt/containerd.toml ;",
    );
    let (_, out, _) = bash(&dir, &format!("{literal}vkube_containerd_config_file"));
    assert_eq!(out, "/opt/containerd.toml\n");
    let (_, out, _) = bash(&dir, &format!("{flatcar}vkube_containerd_config_file"));
    assert_eq!(out, "/usr/share/containerd/config.toml\n");

    // Flatcar: the read-only default is copied to /etc and used from there
    // (`cp` reads the test's stand-in for the /usr file).
    let usr = dir.write(
        "usr-config.toml",
        "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"registry.k8s.io/pause:3.9\"\n",
    );
    let etc = dir.0.join("etc");
    let body = format!(
        "{flatcar}cp() {{ command cp {usr} \"$2\"; }}\nVKUBE_ETC={etc} vkube_containerd_certs_d",
        usr = usr.display(),
        etc = etc.display()
    );
    let (status, _, err) = bash(&dir, &body);
    assert_eq!(status, 0, "{err}");
    let copy = std::fs::read_to_string(etc.join("containerd/config.toml")).unwrap();
    assert!(
        copy.contains("sandbox_image")
            && copy.contains("  config_path = \"/etc/containerd/certs.d\"\n"),
        "{copy}"
    );
    assert_eq!(
        std::fs::read_to_string(
            etc.join("systemd/system/containerd.service.d/10-vkube-config.conf")
        )
        .unwrap(),
        "[Service]\nEnvironment=CONTAINERD_CONFIG=/etc/containerd/config.toml\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.0.join("systemctl.log")).unwrap(),
        "reloaded\n"
    );
}

/// A fake `kubectl` that fails `$FAILS` times, logging its arguments.
const FAKE_KUBECTL: &str = r#"kubectl() {
  echo "$*" >>kubectl.log
  local count
  count=$(cat kubectl.count 2>/dev/null || echo 0)
  echo $((count + 1)) >kubectl.count
  [ "$count" -ge "$FAILS" ]
}
"#;

#[test]
fn add_ons_are_applied_with_retries_and_secret_files_removed() {
    let dir = TempDir::new("addons");
    let secret = dir.write("30-cpi.yaml", "kind: Secret\n");
    let plain = dir.write("20-cni.yaml", "kind: ConfigMap\n");
    let (status, _, err) = bash(
        &dir,
        &format!(
            "{FAKE_KUBECTL}FAILS=2\nvkube_apply_addon {} 1 5 0",
            secret.display()
        ),
    );
    assert_eq!(status, 0, "{err}");
    assert!(!secret.exists(), "the secret-bearing manifest is deleted");
    let log = std::fs::read_to_string(dir.0.join("kubectl.log")).unwrap();
    assert_eq!(log.lines().count(), 3, "{log}");
    assert!(
        log.lines().all(|line| line
            == format!("--kubeconfig /etc/kubernetes/admin.conf --request-timeout=30s apply --server-side --force-conflicts --field-manager=vkube -f {}", secret.display())),
        "{log}"
    );
    assert!(err.contains("applied 30-cpi.yaml (attempt 3)"), "{err}");
    // Not secret: kept for inspection, never applied again.
    std::fs::remove_file(dir.0.join("kubectl.count")).unwrap();
    let (status, _, _) = bash(
        &dir,
        &format!(
            "{FAKE_KUBECTL}FAILS=0\nvkube_apply_addon {} 0 5 0",
            plain.display()
        ),
    );
    assert_eq!(status, 0);
    assert!(!plain.exists() && dir.0.join("20-cni.yaml.applied").exists());
    let (status, _, err) = bash(
        &dir,
        &format!(
            "{FAKE_KUBECTL}FAILS=0\nvkube_apply_addon {} 0 5 0",
            plain.display()
        ),
    );
    assert_eq!(status, 0);
    assert!(err.contains("was applied before"), "{err}");
    // The API never answers: bounded, the file stays for the next boot.
    std::fs::remove_file(dir.0.join("kubectl.count")).unwrap();
    let stuck = dir.write("40-csi.yaml", "kind: Secret\n");
    let (status, _, err) = bash(
        &dir,
        &format!(
            "{FAKE_KUBECTL}FAILS=99\nvkube_apply_addon {} 1 3 0",
            stuck.display()
        ),
    );
    assert_eq!(status, 1);
    assert!(stuck.exists());
    assert!(
        err.contains("could not apply 40-csi.yaml in 3 attempts"),
        "{err}"
    );
}

#[test]
fn guestinfo_is_cleared_with_vmware_rpctool() {
    let dir = TempDir::new("rpctool");
    let bin = dir.0.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let tool_path = bin.join("vmware-rpctool");
    std::fs::write(
        &tool_path,
        format!("#!/bin/sh\necho \"$1\" >>{}/rpctool.log\n", dir.0.display()),
    )
    .unwrap();
    make_executable(&tool_path);
    let (status, _, err) = bash(
        &dir,
        &format!(
            "PATH={}:$PATH vkube_clear_guestinfo guestinfo.ignition.config.data",
            bin.display()
        ),
    );
    assert_eq!(status, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.0.join("rpctool.log")).unwrap(),
        "info-set guestinfo.ignition.config.data ---\ninfo-set guestinfo.ignition.config.data.encoding  \n"
    );
    // Without the tool: a note, not a failure.
    let (status, _, err) = bash(
        &dir,
        "command() { return 1; }\nvkube_clear_guestinfo guestinfo.ignition.config.data",
    );
    assert_eq!(status, 0);
    assert!(err.contains("vmware-rpctool not found"), "{err}");
    // The library as a command refuses what it does not know.
    let library = dir.write("lib.sh", &script::library());
    let out = Command::new("bash")
        .arg(&library)
        .arg("bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut permissions = std::fs::metadata(path).unwrap().permissions();
    permissions.set_mode(0o755);
    std::fs::set_permissions(path, permissions).unwrap();
}

#[test]
fn init_node_script_applies_add_ons_in_file_name_order() {
    let lease = lease("demo-cp-0", 10);
    let script = with_input(&example(), init_node(Some(&lease)), |i| {
        script::bootstrap(i).unwrap()
    });
    let applies: Vec<&str> = script
        .lines()
        .filter(|line| line.starts_with("vkube_apply_addon"))
        .collect();
    assert_eq!(
        applies,
        [
            "vkube_apply_addon '/etc/kubernetes/vkube/addons/20-cni-cilium.yaml' 0 || addons_applied=",
            "vkube_apply_addon '/etc/kubernetes/vkube/addons/30-cpi.yaml' 1 || addons_applied=",
        ]
    );
    assert!(
        script.contains("if [ -z \"$addons_applied\" ]; then\n  vkube_log 'some add-ons are not applied yet; the next boot retries them'\n  exit 1\nfi\ntouch /etc/kubernetes/vkube/bootstrap.done\n"),
        "{script}"
    );
}
