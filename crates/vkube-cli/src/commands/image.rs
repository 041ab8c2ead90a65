//! `vkube image`: import node images (OVA/OVF file or URL, qcow2/raw/vmdk
//! disks), check and prepare templates, list them. The work is
//! `vkube_runtime::images`'; this module maps flags, draws the transfer
//! progress and renders results. `check` exits 1 when something required
//! is missing and 2 on errors.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use vkube_core::cluster::{CloneMode, ClusterSpec, OsFamily};
use vkube_core::images::{rfc3339_utc, ClusterNeeds, Finding, ImageOs, Severity};
use vkube_runtime::images::{
    self, CheckReport, ImportReport, ImportRequest, ImportStatus, PrepareOptions,
};
use vkube_vsphere::images::TransferProgress;

use super::{connect, Connected, UsageError};
use crate::exit::Status;
use crate::output::{human_bytes, print_data, print_table, Format};
use crate::settings::ConnectionArgs;

/// `vkube image …`
#[derive(Debug, Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    command: ImageCommand,
}

impl ImageArgs {
    /// Whether this is `image check` (whose errors exit 2, findings 1).
    pub fn is_check(&self) -> bool {
        matches!(self.command, ImageCommand::Check { .. })
    }
}

#[derive(Debug, Subcommand)]
enum ImageCommand {
    /// Import an OVA/OVF (file or http(s) URL) or a qcow2/raw/vmdk disk as a VM or template
    Import(ImportArgs),
    /// Report what clusters need from a template: exit 1 if something required is missing
    Check {
        /// Template or VM: name or inventory path
        name: String,
        #[command(flatten)]
        needs: NeedsArgs,
    },
    /// Apply the fixable findings of `image check` (disk.enableUUID, snapshot, hardware, template flag)
    Prepare {
        /// Template or VM: name or inventory path
        name: String,
        /// Take a snapshot if there is none (linked clones need one)
        #[arg(long)]
        snapshot: bool,
        /// Upgrade the virtual hardware to this version if older (irreversible)
        #[arg(long, value_name = "N")]
        hardware_version: Option<u32>,
        /// Mark as template afterwards
        #[arg(long, conflicts_with = "vm")]
        template: bool,
        /// Mark as VM afterwards (KKP's machine-controller clones VMs)
        #[arg(long)]
        vm: bool,
        /// Only show what would change
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        needs: NeedsArgs,
    },
    /// List templates and vkube-imported images
    Ls,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OsArg {
    Ubuntu,
    Rocky,
    Flatcar,
}

impl OsArg {
    fn image_os(self) -> ImageOs {
        match self {
            OsArg::Ubuntu => ImageOs::Ubuntu,
            OsArg::Rocky => ImageOs::Rocky,
            OsArg::Flatcar => ImageOs::Flatcar,
        }
    }

    fn family(self) -> OsFamily {
        match self {
            OsArg::Ubuntu => OsFamily::Ubuntu,
            OsArg::Rocky => OsFamily::Rocky,
            OsArg::Flatcar => OsFamily::Flatcar,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CloneModeArg {
    Full,
    Linked,
}

/// What the check compares the template with: a cluster spec, or flags.
#[derive(Debug, Args)]
struct NeedsArgs {
    /// Cluster spec whose kubernetesVersion, osFamily, cloneMode and disableTunnelOffload to check against
    #[arg(short = 'f', long = "file", value_name = "SPEC")]
    spec: Option<PathBuf>,
    /// Kubernetes version the cluster runs
    #[arg(long, conflicts_with = "spec")]
    kubernetes_version: Option<String>,
    /// OS family the cluster bootstraps
    #[arg(long, value_enum, conflicts_with = "spec")]
    os_family: Option<OsArg>,
    /// How the cluster clones
    #[arg(long, value_enum, conflicts_with = "spec")]
    clone_mode: Option<CloneModeArg>,
}

impl NeedsArgs {
    fn needs(&self) -> Result<ClusterNeeds> {
        if let Some(file) = &self.spec {
            let text = std::fs::read_to_string(file).map_err(|e| {
                UsageError(format!(
                    "cannot read cluster spec `{}`: {e}",
                    file.display()
                ))
            })?;
            let spec = ClusterSpec::from_yaml(&text)?;
            return Ok(images::needs_of(&spec));
        }
        Ok(ClusterNeeds {
            kubernetes_version: self.kubernetes_version.clone(),
            os_family: self.os_family.map(OsArg::family),
            clone_mode: self.clone_mode.map(|m| match m {
                CloneModeArg::Full => CloneMode::Full,
                CloneModeArg::Linked => CloneMode::Linked,
            }),
            disable_tunnel_offload: None,
        })
    }
}

#[derive(Debug, Args)]
struct ImportArgs {
    /// .ova or .ovf file, http(s):// URL of an OVA (streamed; HTTP(S)_PROXY and NO_PROXY apply), or a .qcow2/.raw/.img/.vmdk disk image
    source: String,
    /// Name of the VM or template
    #[arg(long)]
    name: String,
    /// Datastore for its disks
    #[arg(long)]
    datastore: String,
    /// VM folder it goes into
    #[arg(long)]
    folder: String,
    /// Resource pool (default: the root pool of a cluster or host that mounts the datastore)
    #[arg(long)]
    pool: Option<String>,
    /// Network for the image's NIC(s)
    #[arg(long)]
    network: Option<String>,
    /// Mark it as a template
    #[arg(long)]
    template: bool,
    /// Take a snapshot (linked clones need one)
    #[arg(long)]
    snapshot: bool,
    /// OVF property value, e.g. guestinfo.hostname=node (repeatable)
    #[arg(long = "prop", value_name = "KEY=VALUE")]
    properties: Vec<String>,
    /// Replace an image of the same name with another checksum
    #[arg(long)]
    replace: bool,
    /// Expected SHA-256 of the source (also lets a URL import skip re-reading to compare)
    #[arg(long, value_name = "HEX")]
    sha256: Option<String>,
    /// OS family, when the image does not say (disk images)
    #[arg(long, value_enum)]
    os: Option<OsArg>,
    /// Kubernetes version the image carries, when it does not say
    #[arg(long)]
    kubernetes_version: Option<String>,
    /// vCPUs of a disk image's VM
    #[arg(long, default_value = "2")]
    cpus: u32,
    /// Memory in MiB of a disk image's VM
    #[arg(long, default_value = "4096")]
    memory_mib: u64,
    /// Hardware version of a disk image's VM (15 or later for the CSI driver)
    #[arg(long, default_value = "15")]
    hardware_version: u32,
    /// Directory for disk conversions (default: the system's temporary directory)
    #[arg(long, value_name = "DIR")]
    scratch_dir: Option<PathBuf>,
    /// Check everything, import nothing
    #[arg(long)]
    dry_run: bool,
}

/// Transfer progress: a bar with bytes, rate and ETA on a terminal, lines otherwise.
struct BarProgress {
    bar: std::sync::Mutex<Option<indicatif::ProgressBar>>,
    terminal: bool,
}

impl BarProgress {
    fn new() -> Self {
        BarProgress {
            bar: std::sync::Mutex::new(None),
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn finish(&self) {
        if let Some(bar) = self.bar.lock().expect("progress").take() {
            bar.finish_and_clear();
        }
    }
}

impl TransferProgress for BarProgress {
    fn begin(&self, label: &str, total: u64) {
        self.finish();
        if !self.terminal {
            eprintln!(
                "{label}{}",
                if total > 0 {
                    format!(" ({})", human_bytes(total as i64))
                } else {
                    String::new()
                }
            );
            return;
        }
        let bar = if total > 0 {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
                )
                .expect("progress template")
                .progress_chars("=> "),
            );
            bar
        } else {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {msg} {binary_bytes} {binary_bytes_per_sec}",
                )
                .expect("progress template"),
            );
            bar
        };
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        bar.set_message(label.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        *self.bar.lock().expect("progress") = Some(bar);
    }

    fn advance(&self, bytes: u64) {
        if let Some(bar) = self.bar.lock().expect("progress").as_ref() {
            bar.inc(bytes);
        }
    }

    fn note(&self, message: &str) {
        match self.bar.lock().expect("progress").as_ref() {
            Some(bar) => bar.println(message),
            None => eprintln!("{message}"),
        }
    }
}

fn parse_properties(raw: &[String]) -> Result<Vec<(String, String)>> {
    raw.iter()
        .map(|p| {
            p.split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| UsageError(format!("`--prop {p}`: expected KEY=VALUE")).into())
        })
        .collect()
}

/// Resolves to `()` on Ctrl-C (never, if the signal cannot be watched).
async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn import(
    connected: &Connected,
    args: &ImportArgs,
    format: Format,
    out: &mut dyn Write,
) -> Result<()> {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let request = ImportRequest {
        source: args.source.clone(),
        name: args.name.clone(),
        datastore: connected.absolute(&args.datastore)?,
        folder: connected.absolute(&args.folder)?,
        pool: args
            .pool
            .as_deref()
            .map(|p| connected.absolute(p))
            .transpose()?,
        network: args
            .network
            .as_deref()
            .map(|n| connected.absolute(n))
            .transpose()?,
        template: args.template,
        snapshot: args.snapshot,
        properties: parse_properties(&args.properties)?,
        replace: args.replace,
        sha256: args.sha256.clone(),
        os: args.os.map(OsArg::image_os),
        kubernetes_version: args.kubernetes_version.clone(),
        cpus: args.cpus,
        memory_mib: args.memory_mib,
        hardware_version: args.hardware_version,
        scratch_dir: args.scratch_dir.clone().unwrap_or_else(std::env::temp_dir),
        imported_at: rfc3339_utc(now),
        dry_run: args.dry_run,
        connect_timeout: connected.session.options().connect_timeout,
    };
    let progress = BarProgress::new();
    let result = images::import(&connected.session, &request, &progress, interrupted()).await;
    progress.finish();
    let report = result?;
    if format != Format::Table {
        return print_data(out, format, &report);
    }
    print_import(out, &report)
}

fn print_import(out: &mut dyn Write, report: &ImportReport) -> Result<()> {
    let what = if report.template { "template" } else { "VM" };
    let record = &report.record;
    match report.status {
        ImportStatus::AlreadyPresent => writeln!(
            out,
            "image `{}` is already imported from the same source (SHA-256 {}): nothing to do",
            report.path,
            record.sha256.as_deref().unwrap_or("?")
        )?,
        ImportStatus::WouldImport | ImportStatus::WouldReplace => {
            writeln!(
                out,
                "would {} `{}` as a {what} from {} ({}): {}",
                if report.status == ImportStatus::WouldReplace {
                    "replace"
                } else {
                    "import"
                },
                report.path,
                record.source.as_deref().unwrap_or("?"),
                report.source_kind,
                report.files.join(", ")
            )?;
        }
        ImportStatus::Imported | ImportStatus::Replaced => writeln!(
            out,
            "{} {what} `{}` ({}): {} uploaded{}",
            if report.status == ImportStatus::Replaced {
                "replaced"
            } else {
                "imported"
            },
            report.path,
            report.id.as_deref().unwrap_or("?"),
            human_bytes(report.uploaded_bytes as i64),
            if report.snapshot {
                ", snapshot taken"
            } else {
                ""
            }
        )?,
    }
    writeln!(
        out,
        "  os {}, Kubernetes {}, SHA-256 {}",
        record.os.map_or("unknown", |o| o.as_str()),
        record
            .kubernetes_version
            .as_deref()
            .unwrap_or("none recorded"),
        record.sha256.as_deref().unwrap_or("unknown")
    )?;
    for warning in &report.warnings {
        writeln!(out, "  vCenter warning: {warning}")?;
    }
    Ok(())
}

fn severity_word(severity: Severity) -> &'static str {
    match severity {
        Severity::Ok => "ok",
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Error => "MISSING",
    }
}

fn print_findings(out: &mut dyn Write, findings: &[Finding]) -> Result<()> {
    for f in findings {
        writeln!(out, "  {:<8} {}", severity_word(f.severity), f.message)?;
        if let Some(fix) = &f.fix {
            if f.severity >= Severity::Warning {
                writeln!(out, "           fix: {fix}")?;
            }
        }
    }
    Ok(())
}

fn print_check(out: &mut dyn Write, format: Format, report: &CheckReport) -> Result<()> {
    if format != Format::Table {
        return print_data(out, format, report);
    }
    writeln!(
        out,
        "{} `{}`:",
        if report.image.template {
            "template"
        } else {
            "VM"
        },
        report.image.path
    )?;
    print_findings(out, &report.findings)?;
    let missing = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    if missing == 0 {
        writeln!(out, "nothing required is missing")?;
    } else {
        writeln!(out, "{missing} requirement(s) missing")?;
    }
    Ok(())
}

fn print_ls(out: &mut dyn Write, format: Format, rows: &[images::ImageRow]) -> Result<()> {
    if format != Format::Table {
        return print_data(out, format, &rows);
    }
    print_table(
        out,
        &[
            "PATH",
            "KIND",
            "OS",
            "KUBERNETES",
            "SIZE",
            "SNAPSHOT",
            "UUID",
            "HW",
            "VKUBE",
        ],
        rows.iter().map(|r| {
            vec![
                r.path.clone(),
                if r.template { "template" } else { "vm" }.into(),
                r.os.clone(),
                r.kubernetes_version.clone().unwrap_or_else(|| "-".into()),
                human_bytes(r.size_bytes as i64),
                r.snapshot.clone().unwrap_or_else(|| "-".into()),
                if r.disk_uuid_enabled { "on" } else { "off" }.into(),
                r.hardware_version
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "?".into()),
                if r.imported_by_vkube { "yes" } else { "no" }.into(),
            ]
        }),
    )
}

/// Run an `image` subcommand.
pub async fn run(
    args: &ImageArgs,
    connection: &ConnectionArgs,
    format: Format,
    stats: bool,
    out: &mut dyn Write,
) -> Result<Status> {
    // Flags that need no vCenter are checked before connecting.
    let needs = match &args.command {
        ImageCommand::Check { needs, .. } | ImageCommand::Prepare { needs, .. } => {
            Some(needs.needs()?)
        }
        _ => None,
    };
    if let ImageCommand::Import(import_args) = &args.command {
        parse_properties(&import_args.properties)?;
    }
    let connected = connect(connection).await?;
    let session = &connected.session;
    let result = match &args.command {
        ImageCommand::Import(import_args) => import(&connected, import_args, format, out)
            .await
            .map(|()| Status::Success),
        ImageCommand::Check { name, .. } => {
            let needs = needs.unwrap_or_default();
            match images::check(session, name, &needs).await {
                Ok(report) => print_check(out, format, &report).map(|()| {
                    if report.ok {
                        Status::Success
                    } else {
                        Status::UserError
                    }
                }),
                Err(e) => Err(e.into()),
            }
        }
        ImageCommand::Prepare {
            name,
            snapshot,
            hardware_version,
            template,
            vm,
            dry_run,
            ..
        } => {
            let options = PrepareOptions {
                snapshot: *snapshot,
                hardware_version: *hardware_version,
                template: match (template, vm) {
                    (true, _) => Some(true),
                    (_, true) => Some(false),
                    _ => None,
                },
                dry_run: *dry_run,
            };
            let needs = needs.unwrap_or_default();
            match images::prepare(session, name, &options, &needs).await {
                Ok(report) if format != Format::Table => {
                    print_data(out, format, &report).map(|()| Status::Success)
                }
                Ok(report) => {
                    if report.changes.is_empty() {
                        writeln!(out, "`{}`: nothing to change", report.path)?;
                    }
                    for change in &report.changes {
                        writeln!(
                            out,
                            "{} {change}",
                            if report.dry_run { "would" } else { "done:" }
                        )?;
                    }
                    print_check(out, format, &report.check).map(|()| Status::Success)
                }
                Err(e) => Err(e.into()),
            }
        }
        ImageCommand::Ls => match images::list(session).await {
            Ok(rows) => print_ls(out, format, &rows).map(|()| Status::Success),
            Err(e) => Err(e.into()),
        },
    };
    if stats {
        eprintln!("api-round-trips: {}", session.round_trips());
    }
    session.close().await;
    result
}
