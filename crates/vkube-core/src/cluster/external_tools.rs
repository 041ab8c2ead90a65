//! Test support: running the ecosystem's own tools (Go's `crypto/x509` via
//! `tools/x509check`, OpenSSL, kubectl) over rendered files.
//!
//! A missing tool skips the check with a note, unless its
//! `VKUBE_REQUIRE_<TOOL>=1` variable is set (scripts/test.sh sets them):
//! then the test fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// An external program a test runs.
pub(crate) struct Tool {
    program: &'static str,
    version_args: &'static [&'static str],
    require_var: &'static str,
    install: &'static str,
}

/// Go, to build and run `tools/x509check`.
pub(crate) const GO: Tool = Tool {
    program: "go",
    version_args: &["version"],
    require_var: "VKUBE_REQUIRE_GO",
    install: "apt-get install -y golang-go",
};

/// OpenSSL's command line.
pub(crate) const OPENSSL: Tool = Tool {
    program: "openssl",
    version_args: &["version"],
    require_var: "VKUBE_REQUIRE_OPENSSL",
    install: "apt-get install -y openssl",
};

/// kubectl.
pub(crate) const KUBECTL: Tool = Tool {
    program: "kubectl",
    version_args: &["version", "--client"],
    require_var: "VKUBE_REQUIRE_KUBECTL",
    install: "apt-get install -y kubectl",
};

impl Tool {
    /// Whether the tool runs. If not: a note and `false`, or a panic when
    /// its `VKUBE_REQUIRE_*` variable is `1`.
    pub(crate) fn available(&self) -> bool {
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
    pub(crate) fn command(&self) -> Command {
        Command::new(self.program)
    }
}

/// What a finished command said.
pub(crate) struct Outcome {
    /// Exit status 0.
    pub(crate) success: bool,
    /// stdout then stderr.
    pub(crate) output: String,
}

/// Runs `command` to the end.
pub(crate) fn run(command: &mut Command) -> Outcome {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"));
    Outcome {
        success: out.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Runs `command` and returns its output; panics with it on failure.
pub(crate) fn run_ok(command: &mut Command) -> String {
    let outcome = run(command);
    assert!(outcome.success, "{command:?} failed:\n{}", outcome.output);
    outcome.output
}

/// A fresh directory under the system temp dir, removed on drop.
pub(crate) struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// A new empty directory; `label` shows in its name.
    pub(crate) fn new(label: &str) -> ScratchDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "vkube-{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        ScratchDir { path }
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `text` to `relative` (creating parent directories).
    pub(crate) fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.path.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// `tools/x509check` of this repository.
fn x509check_source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/x509check")
}

/// The `tools/x509check` binary, built once per test process into the
/// target directory under a name with a hash of its source (so runs share
/// it and a changed source rebuilds), or `None` when Go is missing (see
/// [`Tool::available`]).
/// Offline: Go's standard library only, no module download.
pub(crate) fn x509check() -> Option<PathBuf> {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    if let Some(path) = BUILT.get() {
        return Some(path.clone());
    }
    if !GO.available() {
        return None;
    }
    Some(BUILT.get_or_init(build_x509check).clone())
}

fn build_x509check() -> PathBuf {
    let source = x509check_source();
    let mut hash = Sha256::new();
    for file in ["go.mod", "main.go"] {
        hash.update(std::fs::read(source.join(file)).unwrap());
    }
    // Next to the test binary (`<target>/<profile>/deps/..`): the user's
    // own directory, unlike a shared temp dir, and gone with `cargo clean`.
    let test_binary = std::env::current_exe().unwrap();
    let dir = test_binary
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join(format!(
            "x509check-{}",
            super::spec::hex(&hash.finalize()[..8])
        ));
    let binary = dir.join("x509check");
    if binary.exists() {
        return binary;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let partial = dir.join(format!("x509check.{}.partial", std::process::id()));
    run_ok(
        GO.command()
            .current_dir(&source)
            .args(["build", "-o"])
            .arg(&partial)
            .arg(".")
            .env("GOFLAGS", "-mod=mod")
            .env("GOPROXY", "off")
            .env("GOTOOLCHAIN", "local")
            .env("CGO_ENABLED", "0"),
    );
    // A rename is atomic: parallel test processes never run a half-written file.
    std::fs::rename(&partial, &binary).unwrap();
    binary
}
