//! Placeholder: replaced by the storage renderer.

use super::{AddonInput, Error, Manifest};

/// Renders the storage add-on.
pub fn render(_input: &AddonInput<'_>) -> Result<Manifest, Error> {
    Err(Error::Invalid {
        component: "storage".into(),
        reason: "not rendered yet".into(),
    })
}
