//! `vkube cluster`: plan, apply, list, inspect, scale and delete clusters.
//! The reconcile loop is `vkube_runtime`'s; this module maps flags, shows
//! progress and renders results.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use serde::Serialize;
use std::sync::Arc;
use vkube_core::cluster::{ClusterSpec, Step, ADMIN_VALIDITY};
use vkube_runtime::addons::CloudConfig;
use vkube_runtime::{ApplyOptions, Context, DeleteOptions, Progress, StepKind, WaitFor};
use vkube_store::{ForceDelete, StateLocation, StateStore};

use super::{connect, UsageError};
use crate::exit::Status;
use crate::output::{print_data, print_table, Format};
use crate::settings::ConnectionArgs;

/// `vkube cluster …`
#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Show what apply would do (VMs to create, reconfigure, replace, delete; folders; addresses)
    Plan {
        /// Cluster spec (YAML; `-` for standard input)
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// Create or update a cluster to match its spec
    #[command(visible_alias = "create")]
    Apply {
        /// Cluster spec (YAML; `-` for standard input)
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        #[command(flatten)]
        run: ApplyRun,
    },
    /// Take a cluster over from its VMs into this state (a lost, emptied or new state file): uid, nodes, addresses and key material from the VMs' markers and bootstrap data; changes nothing in vCenter
    Adopt {
        /// Cluster spec (YAML; `-` for standard input)
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// The uid to adopt when VMs of several uids claim the cluster
        #[arg(long, value_name = "UID")]
        uid: Option<String>,
        /// Adopt even though no control-plane VM carries the key material any more: with a new PKI vkube can scale down, resize and delete the cluster, but not add nodes
        #[arg(long)]
        new_pki: bool,
    },
    /// List clusters
    #[command(alias = "list")]
    Ls,
    /// Print a cluster's spec and status
    Get {
        /// Cluster name
        name: String,
    },
    /// Show a cluster's nodes: VM, placement domain, IP, power state, phase
    Describe {
        /// Cluster name
        name: String,
    },
    /// Show a cluster's event log
    Events {
        /// Cluster name
        name: String,
        /// How many of the newest events
        #[arg(long, default_value = "100")]
        limit: usize,
    },
    /// Write the admin kubeconfig (0600), signed by the cluster CA
    Kubeconfig {
        /// Cluster name
        name: String,
        /// Output file (default: standard output)
        #[arg(long = "out", value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Change a node pool's replicas and apply
    Scale {
        /// Cluster name
        name: String,
        /// Node pool (`cp` for the control plane)
        #[arg(long)]
        pool: String,
        /// New replica count
        #[arg(long)]
        replicas: u32,
        #[command(flatten)]
        run: ApplyRun,
    },
    /// Store, list or remove the vCenter users clusters' CPI and CSI run as
    Credentials(super::credentials::CredentialsArgs),
    /// List the cluster's add-ons (CNI, CPI, CSI, StorageClasses): versions and how they were delivered
    Addons {
        /// Cluster name
        name: String,
    },
    /// Print the rendered vSphere cloud config (CPI `vsphere.conf`, CSI `csi-vsphere.conf`), secrets redacted
    CloudConfig {
        /// Cluster name
        name: String,
        /// Only the CPI's `vsphere.conf` (and its credentials Secret)
        #[arg(long, conflicts_with = "csi")]
        cpi: bool,
        /// Only the CSI driver's `csi-vsphere.conf`
        #[arg(long)]
        csi: bool,
        /// Print passwords instead of `<redacted>`
        #[arg(long)]
        show_secrets: bool,
    },
    /// Power off and destroy every VM, remove the folder, release addresses
    Delete {
        /// Cluster name
        name: String,
        /// Forget the cluster even if vCenter objects remain (after 15 minutes stuck, or with --now)
        #[arg(long)]
        force: bool,
        /// With --force: do not wait for the 15 minutes
        #[arg(long, requires = "force")]
        now: bool,
        /// Seconds a guest shutdown may take before a hard power-off
        #[arg(long, default_value = "60")]
        shutdown_timeout: u64,
        /// Only show what would be deleted
        #[arg(long)]
        dry_run: bool,
    },
}

/// Progress for people: one line per finished step (a spinner per node on a terminal).
struct CliProgress {
    bars: indicatif::MultiProgress,
    live: std::sync::Mutex<std::collections::HashMap<String, indicatif::ProgressBar>>,
    terminal: bool,
}

impl CliProgress {
    fn new() -> Self {
        CliProgress {
            bars: indicatif::MultiProgress::new(),
            live: Default::default(),
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn key(step: StepKind, node: Option<&str>) -> String {
        format!("{step} {}", node.unwrap_or(""))
    }

    fn line(&self, text: &str) {
        if self.terminal {
            let _ = self.bars.println(text);
        } else {
            eprintln!("{text}");
        }
    }
}

impl Progress for CliProgress {
    fn pass(&self, pass: usize, steps: &[Step]) {
        self.line(&format!("pass {pass}: {} step(s)", steps.len()));
    }

    fn started(&self, step: StepKind, node: Option<&str>) {
        if !self.terminal {
            return;
        }
        let bar = self.bars.add(indicatif::ProgressBar::new_spinner());
        bar.set_message(Self::key(step, node));
        bar.enable_steady_tick(Duration::from_millis(120));
        self.live
            .lock()
            .expect("progress")
            .insert(Self::key(step, node), bar);
    }

    fn finished(&self, step: StepKind, node: Option<&str>, error: Option<&str>) {
        if let Some(bar) = self
            .live
            .lock()
            .expect("progress")
            .remove(&Self::key(step, node))
        {
            bar.finish_and_clear();
        }
        match error {
            None => self.line(&format!("  ok      {step} {}", node.unwrap_or(""))),
            Some(e) => self.line(&format!("  FAILED  {step} {}: {e}", node.unwrap_or(""))),
        }
    }

    fn warn(&self, message: &str) {
        self.line(&format!("warning: {message}"));
    }
}

async fn open_store(state: &StateLocation) -> Result<Arc<dyn StateStore>> {
    super::open_state(state).await
}

/// The spec file's text; `-` reads standard input.
fn read_spec(file: &Path) -> Result<String> {
    if file == Path::new("-") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map_err(|e| {
            UsageError(format!(
                "cannot read the cluster spec from standard input: {e}"
            ))
        })?;
        return Ok(text);
    }
    std::fs::read_to_string(file).map_err(|e| {
        UsageError(format!(
            "cannot read cluster spec `{}`: {e}",
            file.display()
        ))
        .into()
    })
}

/// `--parallel`: at least one operation at a time.
fn parallelism(text: &str) -> std::result::Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn step_row(step: &Step) -> Vec<String> {
    let text = serde_json::to_value(step).unwrap_or_default();
    let kind = text["step"].as_str().unwrap_or("").to_string();
    let target = text
        .get("node")
        .or_else(|| text.get("path"))
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    let detail = match step {
        Step::CreateNode {
            pool,
            domain,
            role,
            cpu,
            memory_mib,
            disk_gib,
            ..
        } => format!(
            "pool {pool}, domain {domain}, {role:?}, {cpu} CPU, {memory_mib} MiB{}",
            disk_gib.map(|d| format!(", {d} GiB")).unwrap_or_default()
        ),
        Step::AllocateAddress { pool, .. } => format!("from pool {pool}"),
        Step::Reconfigure {
            cpu, memory_mib, ..
        } => format!("{cpu} CPU, {memory_mib} MiB"),
        Step::DeleteNode { reason, .. }
        | Step::DeleteNodeObject { reason, .. }
        | Step::RemoveEtcdMember { reason, .. } => reason.to_string(),
        Step::DrainNode {
            reason,
            kubelet_unresponsive,
            ..
        } => {
            let unresponsive = if *kubelet_unresponsive {
                " (kubelet unresponsive: evictions not waited for)"
            } else {
                ""
            };
            format!("{reason}{unresponsive}")
        }
        _ => String::new(),
    };
    vec![kind, target, detail]
}

fn print_plan(
    out: &mut dyn Write,
    format: Format,
    preview: &vkube_runtime::PlanPreview,
) -> Result<()> {
    if format != Format::Table {
        return print_data(out, format, preview);
    }
    if preview.steps.is_empty() && preview.unfinished.is_empty() && preview.holds.is_empty() {
        writeln!(
            out,
            "cluster `{}` matches its spec: no changes",
            preview.cluster
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "cluster `{}` ({}), folder {}:",
        preview.cluster,
        if preview.known { "known" } else { "new" },
        preview.folder
    )?;
    for node in &preview.unfinished {
        writeln!(out, "  finish half-created node {node}")?;
    }
    if !preview.steps.is_empty() {
        print_table(
            out,
            &["STEP", "TARGET", "DETAIL"],
            preview.steps.iter().map(step_row),
        )?;
    }
    for hold in &preview.holds {
        writeln!(out, "  waiting: {hold}")?;
    }
    writeln!(
        out,
        "(this is the next batch; apply repeats planning until nothing is left)"
    )?;
    Ok(())
}

/// How one apply runs: the flags `apply` and `scale` share.
#[derive(Debug, Args)]
struct ApplyRun {
    /// Only show the plan
    #[arg(long)]
    dry_run: bool,
    /// Node operations at once
    #[arg(long, default_value = "8", value_parser = parallelism)]
    parallel: usize,
    /// With DHCP: seconds a node may take to report its address
    #[arg(long, default_value = "600")]
    ip_timeout: u64,
    /// Lifetime in seconds of a new bootstrap token (default: 24 h, kubeadm's)
    #[arg(long, value_name = "SECONDS", hide = true)]
    token_ttl: Option<u64>,
    /// What to wait for once vCenter matches the spec: `ready` (every node registered with Kubernetes and Ready, add-ons delivered) or `created` (VMs created and powered on)
    #[arg(long, value_enum, default_value = "ready", env = "VKUBE_WAIT")]
    wait: WaitArg,
    /// How long the apply may wait, in all, for nodes to be Ready and for what a rolling change waits on (e.g. `30m`, `90s`)
    #[arg(long, default_value = "30m", value_parser = duration_arg)]
    timeout: Duration,
    /// How long one node's drain may take; then its removal fails naming the PodDisruptionBudget in the way
    #[arg(long, default_value = "5m", value_parser = duration_arg)]
    drain_timeout: Duration,
    /// At the drain timeout, delete the pods whose eviction a PodDisruptionBudget still refuses, and go on
    #[arg(long)]
    force_drain: bool,
    /// How often Kubernetes is looked at again while waiting
    #[arg(long, default_value = "5s", value_parser = duration_arg, hide = true)]
    poll_interval: Duration,
}

/// `--wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum WaitArg {
    /// Every node registered and Ready.
    Ready,
    /// Every VM created and powered on.
    Created,
}

fn duration_arg(text: &str) -> std::result::Result<Duration, String> {
    vkube_core::cluster::parse_duration(text)
}

async fn apply_text(
    text: &str,
    connection: &ConnectionArgs,
    state: &StateLocation,
    format: Format,
    run: &ApplyRun,
    stats: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let store = open_store(state).await?;
    // Everything the input alone shows is reported before connecting.
    let spec = vkube_runtime::parse_spec(store.as_ref(), text).await?;
    let connected = connect(connection).await?;
    let progress = CliProgress::new();
    let result = if run.dry_run {
        let preview = vkube_runtime::plan_only(
            &connected.session,
            store.as_ref(),
            &spec,
            &Context::system(),
            &progress,
        )
        .await;
        preview
            .map_err(anyhow::Error::from)
            .and_then(|p| print_plan(out, format, &p))
    } else {
        let options = ApplyOptions {
            parallel: run.parallel,
            ip_wait: Duration::from_secs(run.ip_timeout),
            token_ttl: run
                .token_ttl
                .map_or(vkube_runtime::token::DEFAULT_TOKEN_TTL, Duration::from_secs),
            wait: match run.wait {
                WaitArg::Ready => WaitFor::Ready,
                WaitArg::Created => WaitFor::Created,
            },
            timeout: run.timeout,
            drain_timeout: run.drain_timeout,
            force_drain: run.force_drain,
            kube_poll: run.poll_interval,
            ..Default::default()
        };
        let ctx = Context::system();
        match vkube_runtime::apply(
            &connected.session,
            store.as_ref(),
            &spec,
            &ctx,
            &options,
            &progress,
        )
        .await
        {
            Ok(report) if format != Format::Table => print_data(out, format, &report),
            Ok(report) if !report.changed && report.addons.is_empty() => {
                Ok(writeln!(out, "cluster `{}`: no changes", report.cluster)?)
            }
            Ok(report) => {
                writeln!(
                    out,
                    "cluster `{}` applied: {} step(s) in {} pass(es), {} API round trips",
                    report.cluster,
                    report.executed.len(),
                    report.passes,
                    report.round_trips
                )?;
                for line in &report.addons {
                    writeln!(out, "  add-on {line}")?;
                }
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    };
    if stats {
        eprintln!("api-round-trips: {}", connected.session.round_trips());
    }
    connected.session.close().await;
    result
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClusterRow {
    name: String,
    uid: String,
    phase: String,
    version: u64,
    nodes: usize,
    updated_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    vcenter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
}

/// The first line of `text`, cut to `max` characters, for a table cell.
fn cell(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() <= max && !text.contains('\n') {
        return line.to_owned();
    }
    let cut: String = line.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}

/// Run a `cluster` subcommand.
pub async fn run(
    args: &ClusterArgs,
    connection: &ConnectionArgs,
    state: &StateLocation,
    format: Format,
    stats: bool,
    out: &mut dyn Write,
) -> Result<Status> {
    match &args.command {
        ClusterCommand::Plan { file } => {
            let run = ApplyRun {
                dry_run: true,
                parallel: 1,
                ip_timeout: 0,
                token_ttl: None,
                wait: WaitArg::Created,
                timeout: Duration::ZERO,
                drain_timeout: Duration::ZERO,
                force_drain: false,
                poll_interval: Duration::ZERO,
            };
            apply_text(
                &read_spec(file)?,
                connection,
                state,
                format,
                &run,
                stats,
                out,
            )
            .await?;
        }
        ClusterCommand::Apply { file, run } => {
            apply_text(
                &read_spec(file)?,
                connection,
                state,
                format,
                run,
                stats,
                out,
            )
            .await?;
        }
        ClusterCommand::Scale {
            name,
            pool,
            replicas,
            run,
        } => {
            let store = open_store(state).await?;
            let record = store.cluster(name).await?;
            let spec = ClusterSpec::from_yaml(&record.spec_yaml)?;
            let scaled = vkube_runtime::scale::scaled(&spec, pool, *replicas)?;
            apply_text(
                &scaled.to_yaml(),
                connection,
                state,
                format,
                run,
                stats,
                out,
            )
            .await?;
        }
        ClusterCommand::Adopt { file, uid, new_pki } => {
            let options = vkube_runtime::AdoptOptions {
                uid: uid.clone(),
                new_pki: *new_pki,
                ..Default::default()
            };
            adopt(
                &read_spec(file)?,
                connection,
                state,
                &options,
                format,
                stats,
                out,
            )
            .await?;
        }
        ClusterCommand::Credentials(args) => {
            super::credentials::run(args, open_store(state).await?.as_ref(), format, out).await?;
        }
        ClusterCommand::Addons { name } => addons(name, state, format, out).await?,
        ClusterCommand::CloudConfig {
            name,
            cpi,
            csi,
            show_secrets,
        } => {
            let which: &[CloudConfig] = match (cpi, csi) {
                (true, _) => &[CloudConfig::Cpi],
                (_, true) => &[CloudConfig::Csi],
                _ => &[CloudConfig::Cpi, CloudConfig::Csi],
            };
            cloud_config(name, connection, state, which, *show_secrets, stats, out).await?;
        }
        ClusterCommand::Ls => {
            let store = open_store(state).await?;
            let mut rows: Vec<ClusterRow> = Vec::new();
            for c in store.clusters().await? {
                rows.push(ClusterRow {
                    nodes: store.nodes(&c.name).await.map(|n| n.len()).unwrap_or(0),
                    name: c.name,
                    uid: c.uid,
                    phase: c.phase.as_str().to_string(),
                    version: c.version,
                    updated_at: c.updated_at.unix_seconds(),
                    vcenter: c.vcenter_uuid,
                    last_error: c.last_error,
                });
            }
            match format {
                Format::Table => print_table(
                    out,
                    &["NAME", "PHASE", "NODES", "UID", "LAST ERROR"],
                    rows.iter().map(|r| {
                        vec![
                            r.name.clone(),
                            r.phase.clone(),
                            r.nodes.to_string(),
                            r.uid.clone(),
                            r.last_error
                                .as_deref()
                                .map(|e| cell(e, 80))
                                .unwrap_or_default(),
                        ]
                    }),
                )?,
                _ => print_data(out, format, &rows)?,
            }
        }
        ClusterCommand::Get { name } => {
            let store = open_store(state).await?;
            let record = store.cluster(name).await?;
            let spec: serde_yaml::Value = serde_yaml::from_str(&record.spec_yaml)?;
            let doc = serde_json::json!({
                "spec": spec,
                "status": { "uid": record.uid, "phase": record.phase.as_str(), "version": record.version,
                            "vcenter": record.vcenter_uuid, "lastError": record.last_error,
                            "createdAt": record.created_at.unix_seconds(), "updatedAt": record.updated_at.unix_seconds() }
            });
            print_data(
                out,
                if format == Format::Json {
                    Format::Json
                } else {
                    Format::Yaml
                },
                &doc,
            )?;
        }
        ClusterCommand::Describe { name } => {
            describe(name, connection, state, format, stats, out).await?
        }
        ClusterCommand::Events { name, limit } => {
            let store = open_store(state).await?;
            store.cluster(name).await?;
            let events = store.events(name, *limit).await?;
            match format {
                Format::Table => print_table(
                    out,
                    &["AT", "LEVEL", "KIND", "NODE", "MESSAGE"],
                    events.iter().map(|e| {
                        vec![
                            e.at.unix_seconds().to_string(),
                            format!("{:?}", e.level),
                            e.kind.clone(),
                            e.node.clone().unwrap_or_default(),
                            e.message.clone(),
                        ]
                    }),
                )?,
                _ => print_data(out, format, &events)?,
            }
        }
        ClusterCommand::Kubeconfig { name, out: file } => {
            kubeconfig(name, state, file.as_deref(), out).await?
        }
        ClusterCommand::Delete {
            name,
            force,
            now,
            shutdown_timeout,
            dry_run,
        } => {
            let store = open_store(state).await?;
            let record = store.cluster(name).await?;
            if *dry_run {
                let nodes = store.nodes(name).await?;
                writeln!(
                    out,
                    "would delete cluster `{name}` ({}): {} node(s) and its folder",
                    record.uid,
                    nodes.len()
                )?;
                for n in nodes {
                    writeln!(out, "  {}", n.node.name)?;
                }
                return Ok(Status::Success);
            }
            let force = match (force, now) {
                (false, _) => ForceDelete::No,
                (true, false) => ForceDelete::if_stuck(),
                (true, true) => ForceDelete::Now,
            };
            let options = DeleteOptions {
                force,
                power_off_grace: Duration::from_secs(*shutdown_timeout),
                parallel: 8,
                lock_ttl: Duration::from_secs(15 * 60),
            };
            // A forced delete proceeds without vCenter when it cannot be reached.
            let connected = match connect(connection).await {
                Ok(c) => Some(c),
                Err(e) if !matches!(force, ForceDelete::No) => {
                    eprintln!("warning: {e:#}; forgetting the cluster without touching vCenter");
                    None
                }
                Err(e) => return Err(e),
            };
            let progress = CliProgress::new();
            let report = vkube_runtime::delete(
                connected
                    .as_ref()
                    .map(|c| &c.session as &dyn vkube_vsphere::VspherePort),
                store.as_ref(),
                name,
                &Context::system(),
                &options,
                &progress,
            )
            .await;
            if let Some(c) = &connected {
                if stats {
                    eprintln!("api-round-trips: {}", c.session.round_trips());
                }
                c.session.close().await;
            }
            let report = report?;
            match format {
                Format::Table => {
                    writeln!(
                        out,
                        "deleted cluster `{name}`: {} VM(s) destroyed, {} address(es) released",
                        report.destroyed.len(),
                        report.released_addresses
                    )?;
                    for orphan in &report.orphans {
                        writeln!(out, "  left in vCenter: {orphan}")?;
                    }
                }
                _ => print_data(out, format, &report)?,
            }
        }
    }
    Ok(Status::Success)
}

async fn describe(
    name: &str,
    connection: &ConnectionArgs,
    state: &StateLocation,
    format: Format,
    stats: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let store = open_store(state).await?;
    // An unknown cluster is reported before connecting.
    store.cluster(name).await?;
    let connected = connect(connection).await?;
    let view = vkube_runtime::describe::describe(
        &connected.session,
        store.as_ref(),
        name,
        &Context::system(),
        ApplyOptions::default().api_timeout,
    )
    .await;
    if stats {
        eprintln!("api-round-trips: {}", connected.session.round_trips());
    }
    connected.session.close().await;
    let view = view?;
    if format != Format::Table {
        return print_data(out, format, &view);
    }
    writeln!(out, "Cluster:   {name} ({})", view.uid)?;
    writeln!(out, "Phase:     {}", view.phase)?;
    if let Some(error) = &view.last_error {
        writeln!(out, "Error:     {}", error.replace('\n', "\n           "))?;
    }
    writeln!(out, "Version:   {}", view.kubernetes_version)?;
    writeln!(out, "Endpoint:  {}:6443", view.control_plane_endpoint)?;
    writeln!(out, "API:       {}", view.api)?;
    if !view.nodes_without_vm.is_empty() {
        writeln!(
            out,
            "Orphans:   Node objects without a VM: {}",
            view.nodes_without_vm.join(", ")
        )?;
    }
    writeln!(out)?;
    let dash = || "-".to_string();
    print_table(
        out,
        &[
            "NODE",
            "POOL",
            "DOMAIN",
            "IP",
            "POWER",
            "PHASE",
            "K8S",
            "READY",
            "KUBELET",
            "TAINTS",
            "CONDITIONS",
            "VM",
        ],
        view.nodes.iter().map(|r| {
            let kube = r.kubernetes.as_ref();
            let registered = kube.map_or_else(dash, |k| {
                match (k.registered, k.cordoned) {
                    (false, _) => "absent",
                    (true, false) => "registered",
                    (true, true) => "cordoned",
                }
                .to_string()
            });
            let list = |items: &[String]| {
                if items.is_empty() {
                    dash()
                } else {
                    items.join(",")
                }
            };
            vec![
                r.name.clone(),
                r.pool.clone(),
                r.domain.clone(),
                r.ip.clone(),
                r.power_state.clone(),
                r.phase.clone(),
                registered,
                kube.filter(|k| k.registered)
                    .map_or_else(dash, |k| k.ready.clone()),
                kube.and_then(|k| k.kubelet_version.clone())
                    .unwrap_or_else(dash),
                kube.map_or_else(dash, |k| list(&k.taints)),
                kube.map_or_else(dash, |k| list(&k.conditions)),
                r.vm.clone(),
            ]
        }),
    )
}

/// `vkube cluster adopt -f FILE`: take the cluster over from its VMs.
async fn adopt(
    text: &str,
    connection: &ConnectionArgs,
    state: &StateLocation,
    options: &vkube_runtime::AdoptOptions,
    format: Format,
    stats: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let store = open_store(state).await?;
    let spec = vkube_runtime::parse_spec(store.as_ref(), text).await?;
    let connected = connect(connection).await?;
    let progress = CliProgress::new();
    let report = vkube_runtime::adopt(
        &connected.session,
        store.as_ref(),
        &spec,
        &Context::system(),
        options,
        &progress,
    )
    .await;
    if stats {
        eprintln!("api-round-trips: {}", connected.session.round_trips());
    }
    connected.session.close().await;
    let report = report?;
    if format != Format::Table {
        return print_data(out, format, &report);
    }
    writeln!(
        out,
        "adopted cluster `{}` (uid {}) from {} VM(s); key material from {}",
        report.cluster,
        report.uid,
        report.nodes.len(),
        report.pki
    )?;
    print_table(
        out,
        &["NODE", "GROUP", "VM", "POWER", "ADDRESS", "FROM"],
        report.nodes.iter().map(|n| {
            vec![
                n.name.clone(),
                n.group.clone(),
                n.vm.clone(),
                n.power_state.clone(),
                n.address.map(|a| a.to_string()).unwrap_or_default(),
                serde_json::to_value(n.address_from)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
            ]
        }),
    )?;
    if let Some(vip) = report.vip {
        writeln!(out, "  VIP {vip} leased again")?;
    }
    for line in &report.addons {
        writeln!(out, "  add-on {line}")?;
    }
    if report.pending.is_empty() {
        writeln!(
            out,
            "the cluster matches its spec: `vkube cluster apply` has nothing to do"
        )?;
    } else {
        writeln!(out, "`vkube cluster apply` would run next:")?;
        print_table(
            out,
            &["STEP", "TARGET", "DETAIL"],
            report.pending.iter().map(step_row),
        )?;
    }
    Ok(())
}

/// `vkube cluster addons NAME`: what vkube delivered, from the state.
async fn addons(
    name: &str,
    state: &StateLocation,
    format: Format,
    out: &mut dyn Write,
) -> Result<()> {
    let store = open_store(state).await?;
    let records = store.addons(name).await?;
    if format != Format::Table {
        return print_data(out, format, &records);
    }
    if records.is_empty() {
        writeln!(
            out,
            "cluster `{name}` has no add-ons yet: the first control-plane node gets them with its bootstrap data on `vkube cluster apply`"
        )?;
        return Ok(());
    }
    print_table(
        out,
        &[
            "ADDON",
            "COMPONENT",
            "VERSION",
            "DELIVERY",
            "NODE",
            "UPDATED",
            "MESSAGE",
        ],
        records.iter().map(|r| {
            vec![
                r.addon.clone(),
                r.component.clone(),
                r.version.clone(),
                r.delivery.as_str().to_lowercase(),
                r.node.clone().unwrap_or_default(),
                r.updated_at.to_string(),
                r.message.clone().unwrap_or_default(),
            ]
        }),
    )
}

/// `vkube cluster cloud-config NAME`: the configs as the cluster gets them.
async fn cloud_config(
    name: &str,
    connection: &ConnectionArgs,
    state: &StateLocation,
    which: &[CloudConfig],
    show_secrets: bool,
    stats: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let store = open_store(state).await?;
    let record = store.cluster(name).await?;
    let spec = ClusterSpec::from_yaml(&record.spec_yaml)?;
    let connected = connect(connection).await?;
    let session = &connected.session;
    let result = async {
        let inventory = vkube_vsphere::Inventory::load(session).await?;
        let facts =
            vkube_runtime::addons::gather(session, &inventory, store.as_ref(), &spec, &record.uid)
                .await?;
        let mut text = String::new();
        for config in which {
            let title = match config {
                CloudConfig::Cpi => "vSphere CPI: vsphere.conf",
                CloudConfig::Csi => "vSphere CSI: csi-vsphere.conf",
            };
            text.push_str(&format!("# {title}\n"));
            text.push_str(
                &vkube_runtime::addons::cloud_config(
                    store.as_ref(),
                    &spec,
                    &facts,
                    *config,
                    show_secrets,
                )
                .await?,
            );
            if !text.ends_with('\n') {
                text.push('\n');
            }
        }
        Ok::<_, anyhow::Error>(text)
    }
    .await;
    if stats {
        eprintln!("api-round-trips: {}", session.round_trips());
    }
    session.close().await;
    out.write_all(result?.as_bytes())?;
    Ok(())
}

async fn kubeconfig(
    name: &str,
    state: &StateLocation,
    file: Option<&Path>,
    out: &mut dyn Write,
) -> Result<()> {
    let store = open_store(state).await?;
    let record = store.cluster(name).await?;
    let spec = ClusterSpec::from_yaml(&record.spec_yaml)?;
    let ctx = Context::system();
    let mut random = |buf: &mut [u8]| ctx.random.fill(buf);
    let (access, pki) = vkube_runtime::access::issue_admin(
        store.as_ref(),
        &spec,
        &format!("{name}-admin"),
        ctx.clock.now(),
        ADMIN_VALIDITY,
        &mut random,
    )
    .await?;
    let text = access.kubeconfig(&spec, &pki);
    match file {
        None => out.write_all(text.as_bytes())?,
        Some(path) => {
            write_private(path, &text)?;
            eprintln!("wrote {} (mode 0600)", path.display());
        }
    }
    Ok(())
}

/// Write a file readable by its owner only, replacing any old one.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing `{}`", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}
