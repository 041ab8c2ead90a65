//! Placeholder: replaced by the CNI renderers (Cilium, Calico).

use super::{AddonInput, Error, Manifest};

/// Renders the CNI add-on (`None` for `cni: none`).
pub fn render(_input: &AddonInput<'_>) -> Result<Option<Manifest>, Error> {
    Err(Error::Invalid {
        component: "cni".into(),
        reason: "not rendered yet".into(),
    })
}
