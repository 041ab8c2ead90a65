//! `vkube about`, `ls`, `inventory` and every connection failure, through the
//! binary against the simulator: exit codes, one clear error line, no panics.

mod common;

use common::{error_lines, vkube};
use vkube_test_support::{Simulator, SimulatorConfig};

fn env_with(sim: &Simulator, changes: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = sim.vkube_env();
    for (key, value) in changes {
        env.retain(|(k, _)| k != key);
        if !value.is_empty() {
            env.push((key.to_string(), value.to_string()));
        }
    }
    env
}

fn assert_one_clear_error(run: &common::Run, needle: &str) {
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    let lines = error_lines(run);
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(lines[0].contains(needle), "{:?} lacks {needle:?}", lines[0]);
    assert!(
        !run.stderr.contains("panicked") && !run.stderr.contains("<soapenv"),
        "{}",
        run.stderr
    );
}

#[test]
fn about_shows_product_transport_and_thumbprint() {
    let sim = Simulator::start_default();
    let run = vkube(&sim.vkube_env(), &["about", "-o", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let about: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(about["apiType"], "VirtualCenter");
    assert_eq!(about["transport"], "soap");
    assert!(about["instanceUuid"]
        .as_str()
        .is_some_and(|u| !u.is_empty()));
    // Insecure mode says so and shows the thumbprint to pin.
    assert!(
        run.stderr.contains("TLS verification is off")
            && run
                .stderr
                .contains(about["thumbprintSha256"].as_str().unwrap())
    );
}

#[test]
fn govc_environment_is_the_fallback() {
    let sim = Simulator::start_default();
    let url = sim.url().replace(
        "https://",
        &format!("https://{}:{}@", sim.username(), sim.password()),
    );
    let env = vec![
        ("GOVC_URL".to_string(), url),
        ("GOVC_INSECURE".to_string(), "1".to_string()),
    ];
    let run = vkube(&env, &["about"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("Transport:") && run.stdout.contains("soap"));
}

#[test]
fn password_file_is_read() {
    let sim = Simulator::start_default();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, format!("{}\n", sim.password())).unwrap();
    let env = env_with(&sim, &[("VKUBE_PASSWORD", "")]);
    let run = vkube(&env, &["about", "--password-file", file.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn wrong_password_is_one_line_and_exit_1() {
    let sim = Simulator::start_default();
    let run = vkube(&env_with(&sim, &[("VKUBE_PASSWORD", "nope")]), &["about"]);
    assert_one_clear_error(&run, "wrong user name or password");
    assert!(
        !run.stderr.contains("nope"),
        "the password must not be echoed"
    );
}

#[test]
fn untrusted_certificate_prints_thumbprints_and_the_flag() {
    let sim = Simulator::start_default();
    let run = vkube(&env_with(&sim, &[("VKUBE_INSECURE", "")]), &["about"]);
    assert_one_clear_error(&run, "is not trusted");
    assert!(
        run.stderr.contains("hint:") && run.stderr.contains("--thumbprint"),
        "{}",
        run.stderr
    );
    // The printed SHA-256 pins the server.
    let thumb = run
        .stderr
        .split("--thumbprint ")
        .nth(1)
        .unwrap()
        .split('`')
        .next()
        .unwrap()
        .to_string();
    let pinned = vkube(
        &env_with(&sim, &[("VKUBE_INSECURE", "")]),
        &["about", "--thumbprint", &thumb],
    );
    assert_eq!(pinned.code, 0, "{}", pinned.stderr);
    assert!(!pinned.stderr.contains("verification is off"));
}

#[test]
fn thumbprint_mismatch_is_refused() {
    let sim = Simulator::start_default();
    let wrong = "00:".repeat(31) + "00";
    let run = vkube(
        &env_with(&sim, &[("VKUBE_INSECURE", "")]),
        &["about", "--thumbprint", &wrong],
    );
    assert_one_clear_error(&run, "does not match the pinned thumbprint");
}

#[test]
fn ca_file_is_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let sim = Simulator::start(SimulatorConfig {
        extra_args: vec!["-ca-out".into(), ca.display().to_string()],
        ..Default::default()
    });
    let run = vkube(
        &env_with(&sim, &[("VKUBE_INSECURE", "")]),
        &["about", "--ca-file", ca.to_str().unwrap()],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn connection_refused_and_unknown_host() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sim = Simulator::start_default();
    let run = vkube(
        &env_with(&sim, &[("VKUBE_URL", &format!("127.0.0.1:{port}"))]),
        &["about"],
    );
    assert_one_clear_error(&run, "refused");
    let run = vkube(
        &env_with(&sim, &[("VKUBE_URL", "no-such-host.invalid")]),
        &["about"],
    );
    assert_one_clear_error(&run, "cannot resolve host `no-such-host.invalid`");
}

#[test]
fn a_server_that_is_not_a_vcenter() {
    let sim = Simulator::start(SimulatorConfig {
        extra_args: vec!["-not-vcenter".into()],
        ..Default::default()
    });
    let run = vkube(&sim.vkube_env(), &["about"]);
    assert_one_clear_error(&run, "is not a vCenter");
    let esx = Simulator::start(SimulatorConfig {
        extra_args: vec!["-esx".into()],
        ..Default::default()
    });
    let run = vkube(&esx.vkube_env(), &["about"]);
    assert_one_clear_error(&run, "HostAgent");
}

#[test]
fn no_url_is_a_usage_error() {
    let run = vkube(&[], &["about"]);
    assert_one_clear_error(&run, "no vCenter given");
}

#[test]
fn ls_lists_children_and_names_a_missing_segment() {
    let sim = Simulator::start_default();
    let run = vkube(&sim.vkube_env(), &["ls", "/DC0"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for child in ["/DC0/vm", "/DC0/host", "/DC0/datastore", "/DC0/network"] {
        assert!(run.stdout.contains(child), "{}", run.stdout);
    }
    let relative = vkube(
        &env_with(&sim, &[("GOVC_DATACENTER", "DC0")]),
        &["ls", "host", "-o", "json"],
    );
    let children: serde_json::Value = serde_json::from_str(&relative.stdout).unwrap();
    assert!(children
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["path"] == "/DC0/host/DC0_C0"));
    let missing = vkube(&sim.vkube_env(), &["ls", "/DC0/vm/k8s/prod"]);
    assert_one_clear_error(&missing, "`/DC0/vm` has no `k8s`");
}

#[test]
fn inventory_reports_every_section() {
    let sim = Simulator::start(SimulatorConfig {
        datastore_clusters: 1,
        ..Default::default()
    });
    for format in ["yaml", "json"] {
        let run = vkube(&sim.vkube_env(), &["inventory", "-o", format]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let report: serde_json::Value = if format == "json" {
            serde_json::from_str(&run.stdout).unwrap()
        } else {
            serde_yaml::from_str(&run.stdout).unwrap()
        };
        assert_eq!(report["datacenters"][0]["path"], "/DC0");
        assert_eq!(report["computeClusters"][0]["hosts"], 3);
        assert!(report["datastores"][0]["capacityBytes"].as_i64().unwrap() > 0);
        assert!(!report["datastoreClusters"].as_array().unwrap().is_empty());
        assert!(!report["networks"].as_array().unwrap().is_empty());
        assert!(!report["resourcePools"].as_array().unwrap().is_empty());
        assert!(report["vmFolders"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"] == "/DC0/vm"));
    }
    let table = vkube(&sim.vkube_env(), &["inventory"]);
    assert!(table.stdout.contains("DATASTORES") && table.stdout.contains("LocalDS_0"));
}

#[test]
fn wire_log_and_debug_logs_never_show_the_password() {
    let sim = Simulator::start_default();
    let run = vkube(
        &sim.vkube_env(),
        &["inventory", "--wire-log", "-vvv", "-o", "json"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("wire=soap"),
        "wire logging is on: {}",
        &run.stderr[..run.stderr.len().min(500)]
    );
    assert!(
        !run.stderr.contains(sim.password()) && !run.stdout.contains(sim.password()),
        "the password leaked"
    );
}

/// Every place a session cookie or id is logged shows `<redacted>`.
fn assert_no_session_secret(stderr: &str) {
    for marker in ["vmware_soap_session=", "vmware-api-session-id: "] {
        for (at, _) in stderr.match_indices(marker) {
            let rest = &stderr[at + marker.len()..];
            assert!(
                rest.starts_with("<redacted>"),
                "unredacted: {}",
                &stderr[at..(at + 80).min(stderr.len())]
            );
        }
    }
}

#[test]
fn the_session_cookie_never_reaches_the_log_at_any_verbosity() {
    let sim = Simulator::start_default();
    for (flag, log) in [
        ("-v", None),
        ("-vv", None),
        ("-vvv", None),
        ("-vvv", Some("trace")),
    ] {
        let mut env = sim.vkube_env();
        if let Some(filter) = log {
            env.push(("VKUBE_LOG".into(), filter.into()));
        }
        let run = vkube(&env, &[flag, "--wire-log", "ls", "/"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_no_session_secret(&run.stderr);
        if log == Some("trace") {
            // Every crate at trace: the cookie store logs the session, redacted.
            assert!(
                run.stderr.contains("vmware_soap_session=<redacted>"),
                "{}",
                run.stderr
            );
        }
    }
}
