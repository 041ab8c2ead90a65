//! `vkube cluster credentials`: the named vCenter users that clusters' CPI
//! and CSI run as (`spec.cloudCredentials`). Stored sealed in the state;
//! passwords are read from a file or standard input, never from a flag,
//! and never printed.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use vkube_core::cluster::ClusterSpec;
use vkube_store::{StateStore, Timestamp};

use super::UsageError;
use crate::output::{print_data, print_table, Format};

/// `vkube cluster credentials …`
#[derive(Debug, Args)]
pub struct CredentialsArgs {
    #[command(subcommand)]
    command: CredentialsCommand,
}

#[derive(Debug, Subcommand)]
enum CredentialsCommand {
    /// Store (or replace) credentials under a name clusters refer to
    Set {
        /// Name, as in `spec.cloudCredentials`
        name: String,
        /// vCenter user, `user@domain`
        #[arg(long)]
        username: String,
        /// File holding the password (a trailing newline is ignored)
        #[arg(long, value_name = "FILE", required_unless_present = "password_stdin")]
        password_file: Option<PathBuf>,
        /// Read the password from standard input
        #[arg(long, conflicts_with = "password_file")]
        password_stdin: bool,
    },
    /// List stored credentials (names and users, never passwords)
    #[command(alias = "list")]
    Ls,
    /// Remove stored credentials
    #[command(alias = "delete")]
    Rm {
        /// Name
        name: String,
        /// Remove even if a cluster's spec names them
        #[arg(long)]
        force: bool,
    },
}

fn read_password(file: Option<&PathBuf>) -> Result<String> {
    let mut text = String::new();
    match file {
        Some(path) => {
            text = std::fs::read_to_string(path).map_err(|e| {
                UsageError(format!(
                    "cannot read password file `{}`: {e}",
                    path.display()
                ))
            })?;
        }
        None => {
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the password from standard input")?;
        }
    }
    let password = text.strip_suffix('\n').unwrap_or(&text);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return Err(UsageError("the password is empty".into()).into());
    }
    Ok(password.to_owned())
}

/// Clusters whose spec names credentials `name`.
async fn users_of(store: &dyn StateStore, name: &str) -> Result<Vec<String>> {
    Ok(store
        .clusters()
        .await?
        .into_iter()
        .filter(|c| {
            ClusterSpec::from_yaml(&c.spec_yaml)
                .is_ok_and(|spec| spec.cloud_credentials().as_str() == name)
        })
        .map(|c| c.name)
        .collect())
}

/// Run a `credentials` subcommand.
pub async fn run(
    args: &CredentialsArgs,
    store: &dyn StateStore,
    format: Format,
    out: &mut dyn Write,
) -> Result<()> {
    match &args.command {
        CredentialsCommand::Set {
            name,
            username,
            password_file,
            ..
        } => {
            let password = read_password(password_file.as_ref())?;
            let changed = store
                .set_credentials(name, username, &password, Timestamp::now())
                .await?;
            let users = users_of(store, name).await?;
            match (changed, users.is_empty()) {
                (false, _) => writeln!(out, "credentials `{name}` unchanged")?,
                (true, true) => writeln!(out, "stored credentials `{name}` ({username})")?,
                (true, false) => writeln!(
                    out,
                    "stored credentials `{name}` ({username}); `vkube cluster apply` updates the CPI/CSI secrets of: {}",
                    users.join(", ")
                )?,
            }
        }
        CredentialsCommand::Ls => {
            let list = store.list_credentials().await?;
            match format {
                Format::Table => print_table(
                    out,
                    &["NAME", "USERNAME", "UPDATED"],
                    list.iter().map(|c| {
                        vec![c.name.clone(), c.username.clone(), c.updated_at.to_string()]
                    }),
                )?,
                _ => print_data(out, format, &list)?,
            }
        }
        CredentialsCommand::Rm { name, force } => {
            let users = users_of(store, name).await?;
            if !users.is_empty() && !force {
                return Err(UsageError(format!(
                    "credentials `{name}` are used by cluster(s) {}; pass `--force` to remove them anyway",
                    users.join(", ")
                ))
                .into());
            }
            if store.delete_credentials(name).await? {
                writeln!(out, "removed credentials `{name}`")?;
            } else {
                return Err(UsageError(format!("no credentials named `{name}`")).into());
            }
        }
    }
    Ok(())
}
