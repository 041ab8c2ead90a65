//! `vkube roles`: list and show role catalogs, export them as a govc script
//! or JSON, apply them to vCenter and check a principal's privileges.
//!
//! Catalog parsing, binding syntax, planning and the check comparison are
//! `vkube_core::roles`'; observing, refusing and applying are
//! `vkube_runtime::roles`', checking is `vkube_runtime::privileges`'.
//! This module reads the user's input first (catalog, `--bind`), connects
//! only for `apply` and `check`, resolves every binding from one inventory
//! snapshot and checks privileges with `vkube_runtime::privileges`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use vkube_core::roles::{
    self, Bindings, Catalog, CheckReport, ExportOptions, RolePlan, Step, Targets,
};
use vkube_runtime::privileges::{self, PrivilegeCheck};
use vkube_vsphere::Inventory;

use super::{connect, Connected, UsageError};
use crate::exit::Status;
use crate::output::{print_data, print_table, Format};
use crate::settings::ConnectionArgs;

/// `vkube roles …`
#[derive(Debug, Args)]
pub struct RolesArgs {
    #[command(subcommand)]
    pub command: RolesCommand,
}

/// The `roles` subcommands.
#[derive(Debug, Subcommand)]
pub enum RolesCommand {
    /// List the built-in role profiles
    #[command(alias = "ls")]
    List,
    /// Show a profile's roles, where each is granted and its privileges
    Show(CatalogArgs),
    /// Print a runnable govc script (or JSON) that creates the roles and grants them
    Export(ExportArgs),
    /// Create or update the roles in vCenter and grant them to a principal
    Apply(ApplyArgs),
    /// Compare effective privileges on every bound object with what the profile requires
    /// (exit 0: complete, 1: something missing, 2: error)
    Check(CheckArgs),
}

/// Which catalog: a built-in profile or a file.
#[derive(Debug, Args)]
pub struct CatalogArgs {
    /// Built-in profile (see `vkube roles list`)
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub profile: Option<String>,
    /// Role catalog YAML file instead of a built-in profile
    #[arg(short = 'f', long = "file", value_name = "CATALOG.yaml")]
    pub file: Option<PathBuf>,
}

/// Where the grants go.
#[derive(Debug, Args)]
pub struct BindArgs {
    /// Bind a slot to an inventory path, e.g. `vm-folder=/DC0/vm/k8s` (repeatable; `vcenter` is always `/`)
    #[arg(long = "bind", value_name = "SLOT=PATH")]
    pub bind: Vec<String>,
    /// Include roles marked optional (e.g. what `vkube roles apply` itself needs)
    #[arg(long)]
    pub include_optional: bool,
}

/// `vkube roles export`
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub catalog: CatalogArgs,
    #[command(flatten)]
    pub bindings: BindArgs,
    /// Who receives the permissions, e.g. `k8s-svc@vsphere.local`
    #[arg(long)]
    pub principal: String,
    /// Script or document
    #[arg(long, value_enum, default_value = "govc")]
    pub format: ExportFormat,
}

/// What `roles export` renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// A POSIX shell script of `govc role.create` / `govc permissions.set`.
    Govc,
    /// The catalog with each grant's path, as JSON.
    Json,
}

/// `vkube roles apply`
#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub catalog: CatalogArgs,
    #[command(flatten)]
    pub bindings: BindArgs,
    /// Who receives the permissions, e.g. `k8s-svc@vsphere.local`
    #[arg(long)]
    pub principal: String,
    /// Print the plan and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Create and update roles without the privilege ids this vCenter does not know
    #[arg(long)]
    pub skip_unknown: bool,
    /// Change the privileges of roles that exist already (vCenter cannot tell
    /// which roles vkube created: without this, vkube only creates roles)
    #[arg(long)]
    pub adopt_roles: bool,
}

/// `vkube roles check`
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub catalog: CatalogArgs,
    #[command(flatten)]
    pub bindings: BindArgs,
    /// Whose privileges to check; the logged-in user when omitted
    #[arg(long)]
    pub principal: Option<String>,
}

impl RolesArgs {
    /// Whether this is `roles check`, whose errors exit 2 (1 means "missing").
    pub fn is_check(&self) -> bool {
        matches!(self.command, RolesCommand::Check(_))
    }
}

/// Run a `roles` subcommand. `list`, `show` and `export` work offline;
/// `apply` and `check` validate their input before connecting.
pub async fn run(
    args: &RolesArgs,
    connection: &ConnectionArgs,
    format: Format,
    stats: bool,
    out: &mut dyn Write,
) -> Result<Status> {
    match &args.command {
        RolesCommand::List => list(format, out).map(|()| Status::Success),
        RolesCommand::Show(catalog) => {
            show(&load_catalog(catalog)?, format, out).map(|()| Status::Success)
        }
        RolesCommand::Export(export_args) => export(export_args, out).map(|()| Status::Success),
        RolesCommand::Apply(apply_args) => {
            let input = Input::read(&apply_args.catalog, &apply_args.bindings)?;
            let connected = connect(connection).await?;
            let result = apply(&connected, &input, apply_args, format, out).await;
            finish(&connected, stats).await;
            result.map(|()| Status::Success)
        }
        RolesCommand::Check(check_args) => {
            let input = Input::read(&check_args.catalog, &check_args.bindings)?;
            let connected = connect(connection).await?;
            let result = check(
                &connected,
                &input,
                check_args.principal.as_deref(),
                format,
                out,
            )
            .await;
            finish(&connected, stats).await;
            result
        }
    }
}

async fn finish(connected: &Connected, stats: bool) {
    if stats {
        eprintln!("api-round-trips: {}", connected.session.round_trips());
    }
    connected.session.close().await;
}

/// The built-in profile or the `-f` file, parsed and validated.
fn load_catalog(args: &CatalogArgs) -> Result<Catalog> {
    match (&args.profile, &args.file) {
        (_, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                UsageError(format!(
                    "cannot read role catalog `{}`: {e}",
                    path.display()
                ))
            })?;
            Ok(Catalog::parse(&text, &path.display().to_string())?)
        }
        (Some(profile), None) => Ok(Catalog::builtin(profile)?),
        (None, None) => {
            Err(UsageError("name a profile or pass `--file CATALOG.yaml`".into()).into())
        }
    }
}

/// What `apply` and `check` read from the command line.
struct Input {
    catalog: Catalog,
    include_optional: bool,
    targets: Targets,
}

impl Input {
    fn read(catalog: &CatalogArgs, bindings: &BindArgs) -> Result<Input> {
        let catalog = load_catalog(catalog)?;
        let parsed = Bindings::parse_all(&bindings.bind)?;
        let targets = roles::targets(&catalog, &parsed, bindings.include_optional);
        Ok(Input {
            catalog,
            include_optional: bindings.include_optional,
            targets,
        })
    }

    /// One warning per unbound slot, naming the roles not granted there.
    fn warn_unbound(&self, what: &str) {
        for slot in &self.targets.unbound {
            let roles: Vec<String> = roles::selected_roles(&self.catalog, self.include_optional)
                .filter(|role| role.grants().iter().any(|grant| grant.slot == *slot))
                .map(|role| format!("`{}`", role.name()))
                .collect();
            eprintln!(
                "warning: slot `{slot}` is not bound; {what} {} there (add `--bind {slot}=PATH`)",
                roles.join(", ")
            );
        }
    }
}

fn list(format: Format, out: &mut dyn Write) -> Result<()> {
    #[derive(Serialize)]
    struct Profile {
        name: &'static str,
        description: String,
    }
    let profiles: Vec<Profile> = Catalog::builtin_profiles()
        .into_iter()
        .map(|p| Profile {
            name: p.name,
            description: p.description,
        })
        .collect();
    match format {
        Format::Table => print_table(
            out,
            &["PROFILE", "DESCRIPTION"],
            profiles
                .iter()
                .map(|p| vec![p.name.to_owned(), p.description.clone()]),
        ),
        _ => print_data(out, format, &profiles),
    }
}

fn show(catalog: &Catalog, format: Format, out: &mut dyn Write) -> Result<()> {
    if format != Format::Table {
        return print_data(out, format, catalog);
    }
    writeln!(out, "profile:     {}", catalog.profile())?;
    writeln!(out, "description: {}", catalog.description())?;
    writeln!(out, "source:      {}", catalog.source())?;
    writeln!(out)?;
    let rows = catalog.roles().iter().map(|role| {
        let grants: Vec<String> = role
            .grants()
            .iter()
            .map(|g| {
                if g.propagate {
                    format!("{} (propagate)", g.slot)
                } else {
                    g.slot.to_string()
                }
            })
            .collect();
        let mut name = role.name().to_owned();
        if role.is_optional() {
            name.push_str(" (optional)");
        }
        let privileges = if role.is_builtin() {
            "predefined".to_owned()
        } else {
            role.privileges().len().to_string()
        };
        vec![name, grants.join(", "), privileges]
    });
    print_table(out, &["ROLE", "GRANTED ON", "PRIVILEGES"], rows)?;
    for role in catalog.roles().iter().filter(|role| !role.is_builtin()) {
        writeln!(out, "\n{}:", role.name())?;
        for privilege in role.privileges() {
            writeln!(out, "  {}", privilege.id)?;
        }
    }
    Ok(())
}

fn export(args: &ExportArgs, out: &mut dyn Write) -> Result<()> {
    let catalog = load_catalog(&args.catalog)?;
    let bindings = Bindings::parse_all(&args.bindings.bind)?;
    let options = ExportOptions {
        include_optional: args.bindings.include_optional,
    };
    let text = match args.format {
        ExportFormat::Govc => roles::render_govc(&catalog, &args.principal, &bindings, options),
        ExportFormat::Json => roles::render_json(&catalog, &args.principal, &bindings, options)?,
    };
    out.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        writeln!(out)?;
    }
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApplyReport<'a> {
    dry_run: bool,
    changed: bool,
    #[serde(flatten)]
    plan: &'a RolePlan,
}

async fn apply(
    connected: &Connected,
    input: &Input,
    args: &ApplyArgs,
    format: Format,
    out: &mut dyn Write,
) -> Result<()> {
    let session = &connected.session;
    let context = || {
        format!(
            "applying role profile `{}` for `{}`",
            input.catalog.profile(),
            args.principal
        )
    };
    let inventory = Inventory::load(session).await.with_context(context)?;
    let request = vkube_runtime::roles::RolesRequest {
        catalog: &input.catalog,
        include_optional: input.include_optional,
        principal: &args.principal,
        targets: &input.targets,
    };
    let planned = match vkube_runtime::roles::plan(session, &inventory, request).await {
        Err(
            e @ (vkube_runtime::Error::Binding { .. } | vkube_runtime::Error::SlotMismatch { .. }),
        ) => return Err(UsageError(e.to_string()).into()),
        other => other.with_context(context)?,
    };
    let plan = &planned.plan;
    // Unknown ids first, before anything changes.
    for unknown in &plan.unknown_privileges {
        eprintln!(
            "{}: role `{}`: this vCenter does not know {}",
            if args.skip_unknown {
                "warning"
            } else {
                "error"
            },
            unknown.role,
            unknown
                .privileges
                .iter()
                .map(|id| format!("`{id}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    vkube_runtime::roles::refuse_unasked(
        &planned,
        vkube_runtime::roles::RolesOptions {
            skip_unknown: args.skip_unknown,
            adopt_roles: args.adopt_roles,
            dry_run: args.dry_run,
        },
    )?;
    input.warn_unbound("not granting");

    if format == Format::Table {
        print_plan(plan, args.dry_run, out)?;
    }
    if !args.dry_run {
        let applied = vkube_runtime::roles::execute(session, &planned)
            .await
            .with_context(context)?;
        if format == Format::Table && applied > 0 {
            writeln!(out, "applied {applied} changes")?;
        }
    }
    if format != Format::Table {
        print_data(
            out,
            format,
            &ApplyReport {
                dry_run: args.dry_run,
                changed: !args.dry_run && !plan.is_empty(),
                plan,
            },
        )?;
    }
    Ok(())
}

fn print_plan(plan: &RolePlan, dry_run: bool, out: &mut dyn Write) -> Result<()> {
    if plan.is_empty() {
        writeln!(
            out,
            "no changes: the roles and permissions of profile `{}` for `{}` are up to date",
            plan.profile, plan.principal
        )?;
        return Ok(());
    }
    if dry_run {
        writeln!(out, "plan (dry run, nothing is changed):")?;
    }
    for step in &plan.steps {
        match step {
            Step::CreateRole { name, privileges } => {
                let noun = if privileges.len() == 1 {
                    "privilege"
                } else {
                    "privileges"
                };
                writeln!(out, "create role `{name}` with {} {noun}", privileges.len())?;
            }
            Step::UpdateRole {
                name,
                added,
                removed,
                ..
            } => {
                writeln!(out, "update role `{name}`")?;
                for id in added {
                    writeln!(out, "  + {id}")?;
                }
                for id in removed {
                    writeln!(out, "  - {id}")?;
                }
            }
            Step::SetPermission {
                path,
                role,
                propagate,
                principal,
                replaces,
                ..
            } => {
                let replacing = replaces
                    .as_ref()
                    .map(|r| format!(" (replaces `{}` propagate={})", r.role, r.propagate))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "grant `{role}` on `{path}` to `{principal}` propagate={propagate}{replacing}"
                )?;
            }
        }
    }
    Ok(())
}

async fn check(
    connected: &Connected,
    input: &Input,
    principal: Option<&str>,
    format: Format,
    out: &mut dyn Write,
) -> Result<Status> {
    let session = &connected.session;
    let inventory = Inventory::load(session).await?;
    let request = PrivilegeCheck {
        catalog: &input.catalog,
        targets: &input.targets,
        include_optional: input.include_optional,
        principal,
    };
    let report = privileges::check(session, &inventory, &request)
        .await
        .map_err(|e| match e {
            vkube_runtime::Error::Binding { .. } | vkube_runtime::Error::SlotMismatch { .. } => {
                UsageError(e.to_string()).into()
            }
            e => anyhow::Error::from(e).context(match principal {
                Some(user) => format!("checking the privileges of `{user}`"),
                None => "checking this session's privileges".to_owned(),
            }),
        })?;
    input.warn_unbound("not checking");
    match format {
        Format::Table => print_report(&report, out)?,
        _ => print_data(out, format, &report)?,
    }
    Ok(if report.complete {
        Status::Success
    } else {
        Status::UserError
    })
}

fn print_report(report: &CheckReport, out: &mut dyn Write) -> Result<()> {
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let paint = |code: &str, text: &str| {
        if color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    };
    let mut rows = Vec::new();
    for object in &report.objects {
        let slot = match &object.child_of {
            Some(_) => format!("{} child", object.slot),
            None => object.slot.to_string(),
        };
        if object.missing.is_empty() {
            let status = if object.required == 0 {
                "nothing required".to_owned()
            } else {
                paint("32", "all present")
            };
            rows.push(vec![object.path.clone(), slot, status]);
            continue;
        }
        for (index, missing) in object.missing.iter().enumerate() {
            let (path, slot) = if index == 0 {
                (object.path.clone(), slot.clone())
            } else {
                (String::new(), String::new())
            };
            rows.push(vec![
                path,
                slot,
                paint("31", &missing.privilege),
                missing.role.clone(),
                missing.reason.clone(),
            ]);
        }
    }
    print_table(out, &["OBJECT", "SLOT", "MISSING", "ROLE", "REASON"], rows)?;
    let missing = report.missing_count();
    if report.complete {
        writeln!(
            out,
            "`{}` holds every privilege profile `{}` requires on {} objects",
            report.principal,
            report.profile,
            report.objects.len()
        )?;
    } else {
        let objects = report
            .objects
            .iter()
            .filter(|o| !o.missing.is_empty())
            .count();
        writeln!(
            out,
            "`{}` lacks {missing} privileges on {objects} of {} objects",
            report.principal,
            report.objects.len()
        )?;
    }
    Ok(())
}
