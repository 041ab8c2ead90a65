//! Turning a lone disk image (qcow2, raw, any VMDK) into the one VMDK
//! subformat an OVF import accepts, with `qemu-img`, in a scratch
//! directory that goes away with the [`Converted`] value.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use vkube_core::images::{qemu_convert_args, qemu_virtual_size, DiskFormat};
use vkube_vsphere::{Error, Result};

/// The converter vkube runs.
pub const QEMU_IMG: &str = "qemu-img";

/// A converted disk in a scratch directory (removed on drop).
#[derive(Debug)]
pub struct Converted {
    /// The scratch directory.
    pub dir: PathBuf,
    /// The streamOptimized VMDK inside it.
    pub vmdk: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// The disk's virtual capacity in bytes.
    pub capacity: u64,
}

impl Drop for Converted {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!("removing `{}` failed: {e}", self.dir.display());
        }
    }
}

fn missing_tool() -> Error {
    Error::Invalid(format!(
        "`{QEMU_IMG}` is needed to convert disk images and was not found: install the `qemu-utils` package (Debian, Ubuntu) or `qemu-img` (Fedora, RHEL, Rocky)"
    ))
}

async fn run(args: &[String]) -> Result<String> {
    let output = tokio::process::Command::new(QEMU_IMG)
        .args(args)
        .stdin(Stdio::null())
        // An interrupted import stops the conversion too.
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => missing_tool(),
            _ => Error::Invalid(format!("cannot run `{QEMU_IMG}`: {e}")),
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(Error::Invalid(format!(
            "`{QEMU_IMG} {}` failed: {}",
            args.first().map(String::as_str).unwrap_or(""),
            stderr.trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Whether `qemu-img` can be run.
pub async fn available() -> Result<()> {
    run(&["--version".to_string()]).await.map(|_| ())
}

/// Convert `input` (of `format`) to a streamOptimized VMDK named
/// `file_name` in a new scratch directory under `scratch_root`.
pub async fn to_stream_vmdk(
    input: &Path,
    format: DiskFormat,
    scratch_root: &Path,
    file_name: &str,
) -> Result<Converted> {
    available().await?;
    let input_text = input.display().to_string();
    let info = run(&[
        "info".into(),
        "-f".into(),
        format.qemu_name().into(),
        "--output=json".into(),
        input_text.clone(),
    ])
    .await?;
    let capacity =
        qemu_virtual_size(&info).map_err(|e| Error::Invalid(format!("`{input_text}`: {e}")))?;
    let dir = scratch_root.join(format!("vkube-image-{}", scratch_id()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::Invalid(format!("cannot create `{}`: {e}", dir.display())))?;
    let vmdk = dir.join(file_name);
    let mut converted = Converted {
        dir,
        vmdk,
        size: 0,
        capacity,
    };
    run(&qemu_convert_args(
        &input_text,
        format,
        &converted.vmdk.display().to_string(),
    ))
    .await?;
    converted.size = std::fs::metadata(&converted.vmdk)
        .map(|m| m.len())
        .map_err(|e| Error::Invalid(format!("the converted disk is missing: {e}")))?;
    Ok(converted)
}

/// A random name part for a scratch directory (the OS's randomness: the
/// directory only has to be unique among concurrent imports).
fn scratch_id() -> String {
    let mut raw = [0u8; 6];
    getrandom::getrandom(&mut raw).expect("OS random generator");
    raw.iter().map(|b| format!("{b:02x}")).collect()
}
