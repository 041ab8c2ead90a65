//! `vkube zones`: regions and zones as vSphere tags — set them up from a
//! topology file, list them, validate them, and render the CSI driver's
//! `[Labels]` section and per-zone StorageClasses.
//!
//! The topology model, planning, checks and rendering are
//! `vkube_core::topology`'s; observing vCenter, refusing conflicts and
//! running plan steps are `vkube_runtime::zones`'. This module reads the user's
//! input first, connects only when vCenter is needed (`render --csi` and
//! `render -f` work offline), and renders results.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;
use vkube_core::topology::{
    self, render_csi, render_storage_classes, Categories, Conflict, Finding, SetupPlan, Severity,
    Step, Topology, TopologyView, ZoneLabel,
};

use super::{connect, Connected, UsageError};
use crate::exit::Status;
use crate::output::{print_data, print_table, Format};
use crate::settings::ConnectionArgs;

/// `vkube zones …`
#[derive(Debug, Args)]
pub struct ZonesArgs {
    #[command(subcommand)]
    pub command: ZonesCommand,
}

/// The `zones` subcommands.
#[derive(Debug, Subcommand)]
pub enum ZonesCommand {
    /// Create the region and zone categories and tags and attach them as a topology file says
    /// (never deletes; a re-run changes nothing)
    Setup(SetupArgs),
    /// Show regions, their zones, and each zone's compute clusters, hosts, datastores and networks
    #[command(alias = "list")]
    Ls(CategoryArgs),
    /// Check the region and zone tags (exit 0: valid, 1: findings, 2: error)
    Validate(ValidateArgs),
    /// Print the CSI driver's topology labels or one StorageClass per zone
    Render(RenderArgs),
}

impl ZonesArgs {
    /// Whether this is `validate`, whose exit 1 means "findings": its
    /// errors exit 2.
    pub fn is_check(&self) -> bool {
        matches!(self.command, ZonesCommand::Validate(_))
    }
}

/// Category names, when they are not the defaults.
#[derive(Debug, Args)]
pub struct CategoryArgs {
    /// Region tag category [default: k8s-region]
    #[arg(long = "category-region", value_name = "NAME")]
    pub region: Option<String>,
    /// Zone tag category [default: k8s-zone]
    #[arg(long = "category-zone", value_name = "NAME")]
    pub zone: Option<String>,
}

impl CategoryArgs {
    fn categories(&self) -> Result<Categories> {
        Ok(Categories::new(
            self.region.as_deref(),
            self.zone.as_deref(),
        )?)
    }
}

/// `vkube zones setup`
#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Topology file (see examples/topology.yaml)
    #[arg(short = 'f', long = "file", value_name = "TOPOLOGY.yaml")]
    pub file: PathBuf,
    /// Show what would change without changing anything
    #[arg(long)]
    pub dry_run: bool,
    /// Detach tags that conflict with the file instead of refusing
    #[arg(long)]
    pub force: bool,
}

/// `vkube zones validate`
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Also check that vCenter matches this topology file (its categories are used)
    #[arg(short = 'f', long = "file", value_name = "TOPOLOGY.yaml")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub categories: CategoryArgs,
}

/// `vkube zones render`
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["csi", "storage_classes"]))]
pub struct RenderArgs {
    /// The `[Labels]` section of csi-vsphere.conf
    #[arg(long)]
    pub csi: bool,
    /// One StorageClass per zone (provisioner csi.vsphere.vmware.com)
    #[arg(long)]
    pub storage_classes: bool,
    /// Render from this topology file instead of vCenter's tags (no connection needed)
    #[arg(short = 'f', long = "file", value_name = "TOPOLOGY.yaml")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub categories: CategoryArgs,
}

/// Whether an error from this module is the user's to fix.
pub fn is_user_error(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| cause.downcast_ref::<topology::Error>().is_some())
}

fn read_topology(path: &Path) -> Result<Topology> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading topology file `{}`", path.display()))?;
    Ok(Topology::from_yaml(&text, &path.display().to_string())?)
}

/// Run a `zones` subcommand.
pub async fn run(
    args: &ZonesArgs,
    connection: &ConnectionArgs,
    format: Format,
    stats: bool,
    out: &mut dyn Write,
) -> Result<Status> {
    // Read and check the user's input before connecting.
    let (categories, file) = match &args.command {
        ZonesCommand::Setup(setup) => {
            let topology = read_topology(&setup.file)?;
            (topology.categories.clone(), Some(topology))
        }
        ZonesCommand::Ls(categories) => (categories.categories()?, None),
        ZonesCommand::Validate(validate) => match &validate.file {
            Some(path) => {
                let topology = read_topology(path)?;
                (topology.categories.clone(), Some(topology))
            }
            None => (validate.categories.categories()?, None),
        },
        ZonesCommand::Render(render) => {
            let (categories, file) = match &render.file {
                Some(path) => {
                    let topology = read_topology(path)?;
                    (topology.categories.clone(), Some(topology))
                }
                None => (render.categories.categories()?, None),
            };
            if render.csi {
                out.write_all(render_csi(&categories).as_bytes())?;
                return Ok(Status::Success);
            }
            if let Some(topology) = file {
                let labels: Vec<ZoneLabel> = topology
                    .zones
                    .iter()
                    .map(|z| ZoneLabel {
                        region: Some(z.region.to_string()),
                        zone: z.name.to_string(),
                    })
                    .collect();
                out.write_all(render_storage_classes(&labels, &categories)?.as_bytes())?;
                return Ok(Status::Success);
            }
            (categories, None)
        }
    };
    let connected = connect(connection).await?;
    let result = observed_then(
        &connected,
        args,
        &categories,
        file.as_ref(),
        format,
        stats,
        out,
    )
    .await;
    connected.session.close().await;
    result
}

async fn observed_then(
    connected: &Connected,
    args: &ZonesArgs,
    categories: &Categories,
    file: Option<&Topology>,
    format: Format,
    stats: bool,
    out: &mut dyn Write,
) -> Result<Status> {
    let session = &connected.session;
    let observed = vkube_runtime::zones::observe(session, categories)
        .await
        .context("reading regions and zones from vCenter");
    let result = match observed {
        Err(e) => Err(e),
        Ok(observed) => match &args.command {
            ZonesCommand::Setup(setup) => {
                let topology = file.expect("setup reads its file first");
                run_setup(connected, topology, &observed, setup, format, out).await
            }
            ZonesCommand::Ls(_) => {
                list(&observed, categories, format, out).map(|()| Status::Success)
            }
            ZonesCommand::Validate(_) => run_validate(&observed, categories, file, format, out),
            ZonesCommand::Render(_) => {
                render_observed(&observed, categories, out).map(|()| Status::Success)
            }
        },
    };
    if stats {
        eprintln!("api-round-trips: {}", session.round_trips());
    }
    result
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SetupReport<'a> {
    dry_run: bool,
    applied: usize,
    steps: &'a [Step],
    conflicts: &'a [Conflict],
}

async fn run_setup(
    connected: &Connected,
    topology: &Topology,
    observed: &topology::Observed,
    args: &SetupArgs,
    format: Format,
    out: &mut dyn Write,
) -> Result<Status> {
    let plan: SetupPlan = vkube_runtime::zones::plan(topology, observed, args.force)?;
    if !plan.conflicts.is_empty() && !args.force {
        if format != Format::Table {
            print_data(
                out,
                format,
                &SetupReport {
                    dry_run: args.dry_run,
                    applied: 0,
                    steps: &plan.steps,
                    conflicts: &plan.conflicts,
                },
            )?;
        }
        vkube_runtime::zones::refuse_conflicts(&plan, args.force)?;
    }
    for conflict in &plan.conflicts {
        eprintln!("warning: overriding a conflict (--force): {conflict}");
    }
    let table = format == Format::Table;
    if plan.steps.is_empty() {
        if table {
            writeln!(
                out,
                "no changes: vCenter already matches `{}`",
                args.file.display()
            )?;
        } else {
            print_data(
                out,
                format,
                &SetupReport {
                    dry_run: args.dry_run,
                    applied: 0,
                    steps: &[],
                    conflicts: &plan.conflicts,
                },
            )?;
        }
        return Ok(Status::Success);
    }
    if args.dry_run {
        if table {
            for step in &plan.steps {
                writeln!(out, "would {step}")?;
            }
            writeln!(out, "dry run: {} changes not applied", plan.steps.len())?;
        } else {
            print_data(
                out,
                format,
                &SetupReport {
                    dry_run: true,
                    applied: 0,
                    steps: &plan.steps,
                    conflicts: &plan.conflicts,
                },
            )?;
        }
        return Ok(Status::Success);
    }
    let mut written = Ok(());
    let total = vkube_runtime::zones::execute(&connected.session, observed, &plan, &mut |step| {
        if table && written.is_ok() {
            written = writeln!(out, "{step}").and_then(|()| out.flush());
        }
    })
    .await?;
    written?;
    if table {
        writeln!(out, "applied {total} changes")?;
    } else {
        print_data(
            out,
            format,
            &SetupReport {
                dry_run: false,
                applied: total,
                steps: &plan.steps,
                conflicts: &plan.conflicts,
            },
        )?;
    }
    Ok(Status::Success)
}

/// The last segment of an inventory path.
fn name_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn list(
    observed: &topology::Observed,
    categories: &Categories,
    format: Format,
    out: &mut dyn Write,
) -> Result<()> {
    let view = TopologyView::build(observed, categories);
    if format != Format::Table {
        return print_data(out, format, &view);
    }
    if !view.categories_found {
        eprintln!(
            "note: this vCenter lacks the `{}` or `{}` tag category; create them with `vkube zones setup`, or name yours with `--category-region`/`--category-zone`",
            view.region_category, view.zone_category
        );
    }
    let mut rows = Vec::new();
    for region in &view.regions {
        let region_name = match &region.name {
            Some(name) => format!("{name} ({})", region.datacenters.join(", ")),
            None => "(no region tag)".to_string(),
        };
        if region.zones.is_empty() {
            rows.push(vec![
                region_name.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]);
        }
        for zone in &region.zones {
            if zone.compute_clusters.is_empty() {
                rows.push(vec![
                    region_name.clone(),
                    zone.name.clone(),
                    "-".into(),
                    "-".into(),
                    zone.tagged_datastores.join(", "),
                    "-".into(),
                ]);
            }
            for cluster in &zone.compute_clusters {
                let datastores: Vec<String> = cluster
                    .datastores
                    .iter()
                    .map(|d| match &d.zone {
                        Some(z) => format!("{} ({}, {z})", name_of(&d.path), d.access.as_str()),
                        None => format!("{} ({})", name_of(&d.path), d.access.as_str()),
                    })
                    .collect();
                let networks: Vec<&str> = cluster.networks.iter().map(|n| name_of(n)).collect();
                rows.push(vec![
                    region_name.clone(),
                    zone.name.clone(),
                    cluster.path.clone(),
                    cluster
                        .hosts
                        .iter()
                        .map(|h| name_of(h))
                        .collect::<Vec<_>>()
                        .join(", "),
                    datastores.join(", "),
                    networks.join(", "),
                ]);
            }
        }
    }
    print_table(
        out,
        &[
            "REGION",
            "ZONE",
            "COMPUTE CLUSTER",
            "HOSTS",
            "DATASTORES",
            "NETWORKS",
        ],
        rows,
    )
}

#[derive(Serialize)]
struct ValidateReport<'a> {
    valid: bool,
    findings: &'a [Finding],
}

fn run_validate(
    observed: &topology::Observed,
    categories: &Categories,
    file: Option<&Topology>,
    format: Format,
    out: &mut dyn Write,
) -> Result<Status> {
    let findings = topology::validate(observed, categories, file);
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    if format != Format::Table {
        print_data(
            out,
            format,
            &ValidateReport {
                valid: errors == 0,
                findings: &findings,
            },
        )?;
    } else if findings.is_empty() {
        let view = TopologyView::build(observed, categories);
        let zones = view.zone_names().len();
        let regions = view.regions.iter().filter(|r| r.name.is_some()).count();
        writeln!(out, "valid: {regions} regions, {zones} zones")?;
    } else {
        print_table(
            out,
            &["SEVERITY", "CODE", "OBJECT", "PROBLEM"],
            findings.iter().map(|f| {
                vec![
                    match f.severity {
                        Severity::Error => "error".to_string(),
                        Severity::Warning => "warning".to_string(),
                    },
                    f.code.to_string(),
                    f.object.clone(),
                    f.message.clone(),
                ]
            }),
        )?;
    }
    if errors > 0 {
        out.flush()?;
        eprintln!("error: {errors} problems found in the region and zone tags");
        return Ok(Status::UserError);
    }
    Ok(Status::Success)
}

fn render_observed(
    observed: &topology::Observed,
    categories: &Categories,
    out: &mut dyn Write,
) -> Result<()> {
    let view = TopologyView::build(observed, categories);
    let labels: Vec<ZoneLabel> = view
        .regions
        .iter()
        .flat_map(|r| {
            r.zones.iter().map(|z| ZoneLabel {
                region: r.name.clone(),
                zone: z.name.clone(),
            })
        })
        .collect();
    if labels.is_empty() {
        return Err(UsageError(format!(
            "no `{}` tags in this vCenter: set zones up with `vkube zones setup -f FILE`, or render from a file with `-f`",
            categories.zone
        ))
        .into());
    }
    out.write_all(render_storage_classes(&labels, categories)?.as_bytes())?;
    Ok(())
}
