//! Placeholder: replaced by the cpi renderer.

use super::{AddonInput, Error, Manifest};

/// Renders the cpi add-on.
pub fn render(_input: &AddonInput<'_>) -> Result<Manifest, Error> {
    Err(Error::Invalid {
        component: "cpi".into(),
        reason: "not rendered yet".into(),
    })
}
