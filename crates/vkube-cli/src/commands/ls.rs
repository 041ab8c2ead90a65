//! `vkube ls [PATH]`: the children of an inventory path, govc style.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;
use vkube_vsphere::Inventory;

use super::Connected;

use crate::output::{print_data, print_table, Format};

#[derive(Serialize)]
struct Child<'a> {
    path: &'a str,
    #[serde(rename = "type")]
    type_name: &'a str,
    id: &'a str,
}

/// List what is inside `path` (the root when absent).
pub async fn run(
    connected: &Connected,
    path: Option<&str>,
    format: Format,
    out: &mut dyn Write,
) -> Result<()> {
    let inventory = Inventory::load(&connected.session).await?;
    let path = connected.absolute(path.unwrap_or("/"))?;
    let parent = inventory.resolve(&path, "inventory path")?;
    let children: Vec<Child> = inventory
        .children(&parent.id)
        .into_iter()
        .map(|e| Child {
            path: &e.path,
            type_name: &e.type_name,
            id: &e.id,
        })
        .collect();
    match format {
        Format::Table => print_table(
            out,
            &["PATH", "TYPE"],
            children
                .iter()
                .map(|c| vec![c.path.to_string(), c.type_name.to_string()]),
        ),
        _ => print_data(out, format, &children),
    }
}
