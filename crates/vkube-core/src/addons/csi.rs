//! Placeholder: replaced by the csi renderer.

use super::{AddonInput, Error, Manifest};

/// Renders the csi add-on.
pub fn render(_input: &AddonInput<'_>) -> Result<Manifest, Error> {
    Err(Error::Invalid {
        component: "csi".into(),
        reason: "not rendered yet".into(),
    })
}
