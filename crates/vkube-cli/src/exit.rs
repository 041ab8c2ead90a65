//! Exit codes and error rendering, in one place. 0: success; 1: the user can
//! fix it (bad input, missing privilege, wrong password, untrusted
//! certificate); 2: something unexpected — among them a vCenter that stopped
//! answering (`Error::NoAnswer`, `Error::TaskStalled`: nothing in the input
//! to fix, and running the command again is safe). A broken pipe exits 0.

use std::io::Write;
use std::process::ExitCode;

/// The meaning of each exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Everything worked.
    Success = 0,
    /// A problem the user can fix, or a check that found something missing.
    UserError = 1,
    /// Something unexpected.
    Failure = 2,
}

impl From<Status> for ExitCode {
    fn from(status: Status) -> Self {
        ExitCode::from(status as u8)
    }
}

/// Whether an error is the user's to fix.
pub fn is_user_error(err: &anyhow::Error) -> bool {
    use vkube_vsphere::Error as V;
    if crate::commands::ippool::is_user_error(err) || crate::commands::zones::is_user_error(err) {
        return true;
    }
    err.chain().any(|cause| {
        if cause
            .downcast_ref::<crate::settings::SettingsError>()
            .is_some()
            || cause
                .downcast_ref::<crate::commands::UsageError>()
                .is_some()
            || cause.downcast_ref::<vkube_core::roles::Error>().is_some()
            || cause.downcast_ref::<vkube_core::cluster::Error>().is_some()
            || cause
                .downcast_ref::<vkube_runtime::Error>()
                .is_some_and(vkube_runtime::Error::is_user_error)
        {
            return true;
        }
        matches!(
            cause.downcast_ref::<V>(),
            Some(
                V::InvalidUrl { .. }
                    | V::UnknownHost { .. }
                    | V::ConnectionRefused { .. }
                    | V::Unreachable { .. }
                    | V::UntrustedCertificate { .. }
                    | V::ThumbprintMismatch { .. }
                    | V::CaFile { .. }
                    | V::InvalidLogin { .. }
                    | V::NotVcenter { .. }
                    | V::NotFound { .. }
                    | V::PermissionDenied { .. }
                    | V::Invalid(_)
            )
        )
    })
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Print one `error:` line (the context, then each cause, joined by `: `)
/// and a `hint:` line when there is one; then pick the exit code.
pub fn report(err: &anyhow::Error) -> Status {
    if is_broken_pipe(err) {
        return Status::Success;
    }
    let mut stderr = std::io::stderr().lock();
    let line: Vec<String> = err.chain().map(|cause| cause.to_string()).collect();
    let _ = writeln!(stderr, "error: {}", line.join(": "));
    if let Some(hint) = err.chain().find_map(|c| {
        c.downcast_ref::<vkube_vsphere::Error>()
            .and_then(|e| e.hint())
    }) {
        let _ = writeln!(stderr, "hint: {hint}");
    }
    if is_user_error(err) {
        Status::UserError
    } else {
        Status::Failure
    }
}

/// Like [`report`], for check commands whose exit 1 means "something is
/// missing": every error, the user's to fix or not, exits 2 so scripts can
/// tell the two apart (a broken pipe still exits 0).
pub fn report_as_failure(err: &anyhow::Error) -> Status {
    match report(err) {
        Status::Success => Status::Success,
        _ => Status::Failure,
    }
}
