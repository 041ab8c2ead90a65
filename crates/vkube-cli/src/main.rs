//! `vkube`: Kubernetes clusters on VMware vSphere from one binary.
//! `main` only parses arguments, runs the command and turns the outcome
//! into an exit code; errors are rendered once, in `exit::report`.

mod commands;
mod exit;
mod logging;
mod output;
mod settings;

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::exit::Status;
use crate::output::Format;
use crate::settings::ConnectionArgs;

/// Kubernetes clusters on VMware vSphere.
#[derive(Debug, Parser)]
#[command(name = "vkube", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Output format
    #[arg(
        short = 'o',
        long = "output",
        global = true,
        value_enum,
        default_value = "table"
    )]
    output: Format,
    /// State file (IP pools, clusters) [env: VKUBE_STATE; default: ~/.local/share/vkube/state.db]
    #[arg(long, global = true, value_name = "FILE")]
    state: Option<String>,
    /// More log output (-v info, -vv debug, -vvv trace)
    #[arg(short = 'v', long = "verbose", global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Print the number of vCenter API round trips since login on exit (stderr)
    #[arg(long, global = true)]
    stats: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show what the vCenter is and how vkube connects to it
    About,
    /// List the children of an inventory path (govc style, e.g. /DC0/vm)
    Ls {
        /// Inventory path; the root when omitted
        path: Option<String>,
    },
    /// Show datacenters, clusters, hosts, datastores, networks, pools, folders and templates
    Inventory,
    /// Manage static IP pools and their allocations
    Ippool(commands::ippool::IpPoolArgs),
    /// Plan, apply, inspect, scale and delete clusters
    Cluster(commands::cluster::ClusterArgs),
    /// vCenter roles and permissions: list, show, export, apply, check
    Roles(commands::roles::RolesArgs),
    /// Regions and zones as vSphere tags: setup, ls, validate, render
    Zones(commands::zones::ZonesArgs),
    /// The state file: where it is, and rotating the key that seals its secrets
    State(commands::state::StateArgs),
    /// Node images: import OVA/OVF/qcow2, check and prepare templates, list them
    Image(commands::image::ImageArgs),
}

async fn run(cli: Cli) -> Result<Status> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match &cli.command {
        Command::Ippool(args) => {
            let state = vkube_store::StateLocation::resolve(cli.state.as_deref())?;
            commands::ippool::run(args, &state, cli.output, &mut out).await?;
            return Ok(Status::Success);
        }
        Command::Cluster(args) => {
            let state = vkube_store::StateLocation::resolve(cli.state.as_deref())?;
            let status = commands::cluster::run(
                args,
                &cli.connection,
                &state,
                cli.output,
                cli.stats,
                &mut out,
            )
            .await;
            out.flush()?;
            return status;
        }
        Command::Roles(args) => {
            let status =
                commands::roles::run(args, &cli.connection, cli.output, cli.stats, &mut out).await;
            out.flush()?;
            return status;
        }
        Command::Zones(args) => {
            let status =
                commands::zones::run(args, &cli.connection, cli.output, cli.stats, &mut out).await;
            out.flush()?;
            return status;
        }
        Command::Image(args) => {
            let status =
                commands::image::run(args, &cli.connection, cli.output, cli.stats, &mut out).await;
            out.flush()?;
            return status;
        }
        Command::State(args) => {
            let state = vkube_store::StateLocation::resolve(cli.state.as_deref())?;
            commands::state::run(args, &state, cli.output, &mut out).await?;
            out.flush()?;
            return Ok(Status::Success);
        }
        Command::About | Command::Ls { .. } | Command::Inventory => {}
    }
    let connected = commands::connect(&cli.connection).await?;
    let session = &connected.session;
    let result = match &cli.command {
        Command::About => commands::about::run(session, cli.output, &mut out),
        Command::Ls { path } => {
            commands::ls::run(&connected, path.as_deref(), cli.output, &mut out).await
        }
        Command::Inventory => commands::inventory::run(session, cli.output, &mut out).await,
        Command::Ippool(_)
        | Command::Cluster(_)
        | Command::Roles(_)
        | Command::Zones(_)
        | Command::Image(_)
        | Command::State(_) => {
            unreachable!("handled above")
        }
    };
    out.flush()?;
    if cli.stats {
        eprintln!("api-round-trips: {}", session.round_trips());
    }
    session.close().await;
    result.map(|()| Status::Success)
}

fn main() -> ExitCode {
    // Usage errors are the user's to fix: exit 1, as the README says
    // (clap's default would be 2, which vkube keeps for the unexpected).
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                Status::UserError.into()
            } else {
                Status::Success.into()
            };
        }
    };
    logging::init(cli.verbose, cli.connection.wire_log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Status::Failure.into();
        }
    };
    let errors_exit_2 = matches!(&cli.command, Command::Roles(args) if args.is_check())
        || matches!(&cli.command, Command::Zones(args) if args.is_check())
        || matches!(&cli.command, Command::Image(args) if args.is_check());
    match runtime.block_on(run(cli)) {
        Ok(status) => status.into(),
        Err(err) if errors_exit_2 => exit::report_as_failure(&err).into(),
        Err(err) => exit::report(&err).into(),
    }
}
