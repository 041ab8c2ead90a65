//! External programs tests run to check artefacts with the ecosystem's own parsers. A missing
//! tool skips the check with a note, unless its `VKUBE_REQUIRE_<TOOL>=1` variable is set
//! (scripts/test.sh sets them): then the test fails.

use std::process::Command;

/// An external program a test runs.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    /// The program name.
    pub program: &'static str,
    /// Arguments that make it print its version and exit 0.
    pub version_args: &'static [&'static str],
    /// The variable that makes a missing tool a failure.
    pub require_var: &'static str,
    /// How to install it.
    pub install: &'static str,
}

/// OpenSSL's command line.
pub const OPENSSL: Tool = Tool {
    program: "openssl",
    version_args: &["version"],
    require_var: "VKUBE_REQUIRE_OPENSSL",
    install: "apt-get install -y openssl",
};

/// kubectl.
pub const KUBECTL: Tool = Tool {
    program: "kubectl",
    version_args: &["version", "--client"],
    require_var: "VKUBE_REQUIRE_KUBECTL",
    install: "apt-get install -y kubectl",
};

/// etcd's server (Debian's `etcd-server`).
pub const ETCD: Tool = Tool {
    program: "etcd",
    version_args: &["--version"],
    require_var: "VKUBE_REQUIRE_ETCD",
    install: "apt-get install -y etcd-server",
};

/// kubernetes-validate: objects against the Kubernetes OpenAPI schemas.
pub const KUBERNETES_VALIDATE: Tool = Tool {
    program: "kubernetes-validate",
    version_args: &["--version"],
    require_var: "VKUBE_REQUIRE_KUBERNETES_VALIDATE",
    install: "python3 -m pip install kubernetes-validate",
};

impl Tool {
    /// Whether the tool runs. If not: a note and `false`, or a panic when its
    /// `VKUBE_REQUIRE_*` variable is `1`.
    pub fn available(&self) -> bool {
        let runs = Command::new(self.program)
            .args(self.version_args)
            .output()
            .is_ok_and(|out| out.status.success());
        if !runs {
            let required = std::env::var(self.require_var).is_ok_and(|v| v == "1");
            assert!(
                !required,
                "{}=1 but `{}` does not run ({})",
                self.require_var, self.program, self.install
            );
            eprintln!(
                "note: `{}` not installed, skipping its checks ({})",
                self.program, self.install
            );
        }
        runs
    }

    /// A command for the tool.
    pub fn command(&self) -> Command {
        Command::new(self.program)
    }
}
