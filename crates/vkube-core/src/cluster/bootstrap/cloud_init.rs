//! `#cloud-config` user-data for Ubuntu and Rocky nodes: the `vkube` user
//! with the SSH keys, chrony through cloud-init's `ntp` module, the files
//! and units of [`NodeContent`](super::content::NodeContent), and a
//! `runcmd` that enables and starts the units, the bootstrap unit last
//! (without waiting for it, so cloud-init finishes). As on Flatcar, the
//! bootstrap then runs from its unit, at every boot until it is done.

use serde::Serialize;

use super::content::{self, BOOTSTRAP_UNIT};
use super::NodeBootstrap;
use crate::cluster::error::Error;

#[derive(Serialize)]
struct CloudConfig {
    hostname: String,
    manage_etc_hosts: bool,
    users: Vec<User>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ntp: Option<Ntp>,
    write_files: Vec<WriteFile>,
    runcmd: Vec<Vec<String>>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum User {
    Default(&'static str),
    Named {
        name: String,
        gecos: String,
        sudo: String,
        shell: String,
        lock_passwd: bool,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        ssh_authorized_keys: Vec<String>,
    },
}

#[derive(Serialize)]
struct Ntp {
    enabled: bool,
    ntp_client: String,
    servers: Vec<String>,
}

#[derive(Serialize)]
struct WriteFile {
    path: String,
    owner: String,
    permissions: String,
    content: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    append: bool,
}

/// The user-data document, starting with `#cloud-config`. Secret on
/// control-plane nodes (CA keys) and everywhere (bootstrap token).
pub fn render(input: &NodeBootstrap<'_>) -> Result<String, Error> {
    let node = content::render(input)?;
    let mut write_files: Vec<WriteFile> = node
        .files
        .iter()
        .map(|f| WriteFile {
            path: f.path.clone(),
            owner: "root:root".into(),
            permissions: format!("{:04o}", f.mode),
            content: f.content.clone(),
            append: f.append,
        })
        .collect();
    for unit in &node.units {
        write_files.push(WriteFile {
            path: format!("/etc/systemd/system/{}", unit.name),
            owner: "root:root".into(),
            permissions: "0644".into(),
            content: unit.content.clone(),
            append: false,
        });
    }
    let config = CloudConfig {
        hostname: input.node.to_owned(),
        manage_etc_hosts: true,
        users: vec![
            User::Default("default"),
            User::Named {
                name: "vkube".into(),
                gecos: "vkube node administrator".into(),
                sudo: "ALL=(ALL) NOPASSWD:ALL".into(),
                shell: "/bin/bash".into(),
                lock_passwd: true,
                ssh_authorized_keys: node.ssh_authorized_keys.clone(),
            },
        ],
        ntp: (!node.ntp_servers.is_empty()).then(|| Ntp {
            enabled: true,
            ntp_client: "chrony".into(),
            servers: node.ntp_servers.clone(),
        }),
        write_files,
        runcmd: runcmd(&node.units),
    };
    let body = serde_yaml::to_string(&config).expect("plain structs serialize");
    Ok(format!("#cloud-config\n{body}"))
}

/// `systemctl daemon-reload` (cloud-init wrote the units after systemd
/// started), then `enable --now` of every enabled unit, the bootstrap unit
/// with `--no-block`.
fn runcmd(units: &[content::Unit]) -> Vec<Vec<String>> {
    let command = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    let mut commands = vec![command(&["systemctl", "daemon-reload"])];
    for unit in units
        .iter()
        .filter(|u| u.enabled && u.name != BOOTSTRAP_UNIT)
    {
        commands.push(command(&["systemctl", "enable", "--now", &unit.name]));
    }
    commands.push(command(&[
        "systemctl",
        "enable",
        "--now",
        "--no-block",
        BOOTSTRAP_UNIT,
    ]));
    commands
}
