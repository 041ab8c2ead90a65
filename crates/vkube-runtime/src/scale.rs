//! Changing a node group's replica count: the spec edit behind
//! `vkube cluster scale`, shared by every front end. Pure: the result is
//! validated like any spec and applied by the caller.

use vkube_core::cluster::ClusterSpec;

use crate::error::{Error, Result};

/// The group name that means the control plane.
pub const CONTROL_PLANE: &str = "cp";

/// `spec` with `replicas` nodes in group `group` ([`CONTROL_PLANE`] or a
/// node pool's name), validated.
pub fn scaled(spec: &ClusterSpec, group: &str, replicas: u32) -> Result<ClusterSpec> {
    let mut raw = spec.to_raw();
    if group == CONTROL_PLANE {
        raw.spec.control_plane.replicas = replicas;
    } else {
        let pool = raw
            .spec
            .node_pools
            .iter_mut()
            .find(|p| p.name == group)
            .ok_or_else(|| Error::NoSuchGroup {
                cluster: spec.name().to_string(),
                group: group.to_owned(),
            })?;
        pool.replicas = replicas;
    }
    Ok(raw.validate()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_edits_one_group_and_validates() {
        let text = include_str!("../../../examples/cluster-two-az.yaml");
        let spec = ClusterSpec::from_yaml(text).unwrap();
        let bigger = scaled(&spec, "workers", 5).unwrap();
        let replicas = |s: &ClusterSpec, name: &str| {
            s.groups()
                .iter()
                .find(|g| g.name() == name)
                .unwrap()
                .replicas()
        };
        assert_eq!(replicas(&bigger, "workers"), 5);
        assert_eq!(replicas(&bigger, "cp"), replicas(&spec, "cp"));
        let err = scaled(&spec, "gpu", 1).unwrap_err();
        assert_eq!(err.to_string(), "cluster `two-az` has no node pool `gpu`");
        assert!(err.is_user_error());
        // An even control plane is refused like in any spec.
        assert!(matches!(
            scaled(&spec, CONTROL_PLANE, 2),
            Err(Error::Spec(_))
        ));
    }
}
