//! Running the `vkube` binary in tests: isolated environment, captured output.

#![allow(dead_code)]

pub mod cluster_env;

use std::process::Command;

/// What one run of `vkube` produced.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A `vkube` command with a clean environment (no VKUBE_*/GOVC_* leaks from the caller).
pub fn vkube_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vkube"));
    for (key, _) in std::env::vars() {
        if key.starts_with("VKUBE_") || key.starts_with("GOVC_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Run `vkube args…` with extra environment variables.
pub fn vkube(env: &[(String, String)], args: &[&str]) -> Run {
    let out = vkube_command()
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("run vkube");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The lines of stderr that start with `error:`.
pub fn error_lines(run: &Run) -> Vec<&str> {
    run.stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect()
}
