//! `vkube state`: the state file itself — where it is, and rotating the
//! key that seals its secrets.

use std::io::Write;

use anyhow::Result;
use clap::{Args, Subcommand};
use vkube_store::StateLocation;

use crate::output::{print_data, Format};

/// `vkube state …`
#[derive(Debug, Args)]
pub struct StateArgs {
    #[command(subcommand)]
    command: StateCommand,
}

#[derive(Debug, Subcommand)]
enum StateCommand {
    /// Show the state file, its key file and schema version
    Show,
    /// Re-seal every secret under a new key and replace the key file
    RotateKey,
}

/// Run a `state` subcommand.
pub async fn run(
    args: &StateArgs,
    state: &StateLocation,
    format: Format,
    out: &mut dyn Write,
) -> Result<()> {
    let store = super::open_state(state).await?;
    match args.command {
        StateCommand::Show => {
            let doc = serde_json::json!({
                "state": store.location(),
                "backend": format!("{:?}", store.kind()),
                "keyFile": store.key_file(),
                "keyFileExists": store.key_file().exists(),
                "schemaVersion": store.schema_version().await?,
            });
            match format {
                Format::Table => {
                    writeln!(
                        out,
                        "State:       {} ({:?})",
                        store.location(),
                        store.kind()
                    )?;
                    writeln!(
                        out,
                        "Key file:    {}{}",
                        store.key_file().display(),
                        if store.key_file().exists() {
                            ""
                        } else {
                            " (not created yet: no secrets stored)"
                        }
                    )?;
                    writeln!(out, "Schema:      {}", store.schema_version().await?)?;
                }
                _ => print_data(out, format, &doc)?,
            }
        }
        StateCommand::RotateKey => {
            let rotation = store.rotate_key().await?;
            match format {
                Format::Table => writeln!(
                    out,
                    "re-sealed {} secret(s): key {} replaced by {} in `{}` (0600); keep a backup of the new key file with the state",
                    rotation.resealed,
                    rotation.old_key,
                    rotation.new_key,
                    rotation.key_file.display()
                )?,
                _ => print_data(out, format, &rotation)?,
            }
        }
    }
    Ok(())
}
