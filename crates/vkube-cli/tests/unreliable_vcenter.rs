//! `vkube` against a vCenter that misbehaves: sessions that end every second
//! in the middle of a 13-node apply, and a vCenter that freezes (SIGSTOP)
//! in the middle of a command or before it starts.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::cluster_env::{decode, ok, two_az_spec, Env};
use common::{vkube, vkube_command, Run};
use vkube_test_support::{Simulator, SimulatorConfig};

/// The two-domain example with 3 control-plane nodes and 10 workers.
fn thirteen_node_spec() -> String {
    let base = two_az_spec();
    let spec = base
        .replacen(
            "  controlPlane:\n    replicas: 1\n",
            "  controlPlane:\n    replicas: 3\n",
            1,
        )
        .replacen("      replicas: 3\n", "      replicas: 10\n", 1);
    assert_eq!(
        spec.matches("replicas: 3\n").count() + spec.matches("replicas: 10\n").count(),
        2,
        "the example spec changed shape"
    );
    spec
}

/// How often the simulator has ended sessions so far (it logs each round).
fn expiry_rounds(sim: &Simulator) -> usize {
    sim.log_text()
        .lines()
        .filter(|l| l.starts_with("vcsim: expired "))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_converges_while_every_session_ends_each_second() {
    let env = Env::start_with(SimulatorConfig {
        expire_sessions_every: Some(Duration::from_secs(1)),
        // Long enough for the apply (one pass, four waves of clones on
        // four slots) to span several expiries.
        method_delays: vec![
            ("CloneVM_Task".into(), 1000),
            ("ReconfigVM_Task".into(), 100),
            ("PowerOnVM_Task".into(), 100),
        ],
        ..Default::default()
    });
    let spec = env.spec_file("t1.yaml", &thirteen_node_spec());
    let before = expiry_rounds(&env.sim);
    let apply = env.vkube(&["cluster", "apply", "-f", &spec, "--parallel", "4", "-v"]);
    ok(&apply);
    let rounds = expiry_rounds(&env.sim) - before;
    assert!(rounds >= 3, "the apply spanned only {rounds} expiries");
    let relogins = apply
        .stderr
        .matches("the vCenter session ended; logging in again")
        .count();
    assert!(relogins >= 2, "{relogins} re-logins:\n{}", apply.stderr);

    // Every node VM exists once, with its markers and bootstrap data.
    let vms = env.vm_list("t1").await;
    let mut names: Vec<&str> = vms.iter().map(|v| v.name.as_str()).collect();
    names.sort();
    let mut expected: Vec<String> = (0..3)
        .map(|i| format!("t1-cp-{i}"))
        .chain((0..10).map(|i| format!("t1-workers-{i}")))
        .collect();
    expected.sort();
    assert_eq!(names, expected, "each node VM exactly once");
    for vm in &vms {
        assert!(
            decode(vm, "guestinfo.userdata").starts_with("#cloud-config"),
            "{} has no user-data",
            vm.name
        );
        assert!(
            vm.extra_config.contains_key("guestinfo.metadata"),
            "{}",
            vm.name
        );
        assert!(
            vm.extra_config.contains_key("vkube.cluster.uid"),
            "{}",
            vm.name
        );
        assert_eq!(vm.power_state, "poweredOn", "{}", vm.name);
    }

    // Every node recorded, and its address leased once.
    let described = env.vkube(&["cluster", "describe", "t1", "-o", "json"]);
    ok(&described);
    let doc: serde_json::Value = serde_json::from_str(&described.stdout).unwrap();
    let nodes = doc["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 13, "{}", described.stdout);
    let unrecorded: Vec<&serde_json::Value> = nodes
        .iter()
        .filter(|n| n["phase"] == "Unrecorded")
        .collect();
    assert!(unrecorded.is_empty(), "nodes without a row: {unrecorded:?}");
    let listed = env.vkube(&["cluster", "ls", "-o", "json"]);
    ok(&listed);
    let clusters: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(clusters[0]["nodes"], 13, "{}", listed.stdout);
    assert_eq!(env.allocations().len(), 13);

    let again = env.vkube(&["cluster", "apply", "-f", &spec]);
    ok(&again);
    assert!(again.stdout.contains("no changes"), "{}", again.stdout);
}

/// Run `vkube args…` with `env`, reading its stderr as it comes: calls
/// `on_line` for each line until it returns true, then waits (at most
/// `bound`) for the process to end. Returns the run and how long that wait
/// took.
fn run_watching(
    env: &[(String, String)],
    args: &[&str],
    on_line: impl Fn(&str) -> bool,
    bound: Duration,
) -> (Run, Duration) {
    let mut child = vkube_command()
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let mut seen = Vec::new();
    loop {
        match received.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => {
                let done = on_line(&line);
                seen.push(line);
                if done {
                    break;
                }
            }
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "vkube never printed the awaited line; stderr:\n{}",
                    seen.join("\n")
                );
            }
        }
    }
    let waiting = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if waiting.elapsed() > bound {
            let _ = child.kill();
            panic!(
                "vkube did not end within {bound:?}; stderr so far:\n{}",
                seen.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let waited = waiting.elapsed();
    seen.extend(received.iter());
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr: seen.join("\n"),
    };
    (run, waited)
}

#[test]
fn a_frozen_vcenter_ends_the_command_naming_what_it_waited_for() {
    // Listing the inventory is one property retrieval that takes 2.5 s:
    // shorter than the 3 s deadline, so only the freeze makes it fail.
    let sim = Simulator::start(SimulatorConfig {
        method_delays: vec![("RetrievePropertiesEx".into(), 2500)],
        ..Default::default()
    });
    let mut env = sim.vkube_env();
    env.push(("VKUBE_REQUEST_TIMEOUT".into(), "3s".into()));
    let waiting_line = format!(
        "waiting for vCenter `{}`: `RetrievePropertiesEx` on `propertyCollector`",
        sim.address()
    );
    // At half the deadline vkube says what it waits for (at the default
    // verbosity); the simulator freezes right then.
    let (run, after_freeze) = run_watching(
        &env,
        &["inventory"],
        |line| {
            let awaited = line.contains(&waiting_line);
            if awaited {
                sim.pause();
            }
            awaited
        },
        Duration::from_secs(20),
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        after_freeze < Duration::from_secs(10),
        "took {after_freeze:?} after the freeze"
    );
    let message = format!(
        "vCenter `{}` did not answer `RetrievePropertiesEx` on `propertyCollector` within 3 s",
        sim.address()
    );
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert!(
        errors.len() == 1 && errors[0].contains(&message),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint:") && run.stderr.contains("--request-timeout"));

    // Frozen before vkube starts: the TLS handshake is bounded as well.
    let started = Instant::now();
    let run = vkube(&env, &["about", "--connect-timeout", "1"]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "TLS handshake with `{}` failed: timed out: no answer within 1 s",
            sim.address()
        )),
        "{}",
        run.stderr
    );

    // Thawed, the same vCenter serves again.
    sim.resume();
    ok(&vkube(&env, &["about"]));
}
