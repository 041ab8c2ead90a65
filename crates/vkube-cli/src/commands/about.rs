//! `vkube about`: what the server is and how vkube talks to it.

use std::io::Write;

use anyhow::Result;
use vkube_vsphere::Session;

use crate::output::{print_data, Format};

/// Print product, version, API, instance UUID, transport and thumbprints.
pub fn run(session: &Session, format: Format, out: &mut dyn Write) -> Result<()> {
    let about = session.about();
    if format != Format::Table {
        return print_data(out, format, &about);
    }
    let rows = [
        ("Product", about.full_name.clone()),
        (
            "Version",
            format!("{} (build {})", about.version, about.build),
        ),
        ("API", format!("{} {}", about.api_type, about.api_version)),
        (
            "Instance UUID",
            about.instance_uuid.clone().unwrap_or_else(|| "-".into()),
        ),
        ("URL", about.url.clone()),
        ("Transport", about.transport.clone()),
        ("SHA-256", about.thumbprint_sha256.clone()),
        ("SHA-1", about.thumbprint_sha1.clone()),
    ];
    for (label, value) in rows {
        writeln!(out, "{:<14} {value}", format!("{label}:"))?;
    }
    Ok(())
}
