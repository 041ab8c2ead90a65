//! `zones setup`: make vCenter's region and zone tags match a topology
//! file. Observe (inventory facts and the two categories), plan with
//! `vkube_core::topology`, refuse conflicts unless forced, then run the
//! steps in order through the port; every step is safe to run again, so
//! an interrupted setup is finished by running it again.

use vkube_core::topology::{
    plan_setup, Categories, Observed, PlanOptions, SetupPlan, Step, Topology,
};
use vkube_vsphere::VspherePort;

use crate::error::{Error, Result};

/// The inventory and the region and zone categories of `categories`, as
/// vCenter has them now.
pub async fn observe(vsphere: &dyn VspherePort, categories: &Categories) -> Result<Observed> {
    let inventory = vsphere.inventory().await?;
    let tags = vsphere
        .tags(&[categories.region.as_str(), categories.zone.as_str()])
        .await?;
    Ok(Observed {
        inventory: vkube_vsphere::topology::inventory_facts(&inventory),
        tags,
    })
}

/// The steps that make `observed` match `topology`; with `force`, tags in
/// the way are detached instead of reported as conflicts.
pub fn plan(topology: &Topology, observed: &Observed, force: bool) -> Result<SetupPlan> {
    Ok(plan_setup(topology, observed, PlanOptions { force })?)
}

/// Refuse a plan with conflicts unless `force` (then they were resolved by
/// detaching, or are only reported).
pub fn refuse_conflicts(plan: &SetupPlan, force: bool) -> Result<()> {
    if plan.conflicts.is_empty() || force {
        return Ok(());
    }
    Err(Error::ZoneConflicts {
        conflicts: plan.conflicts.clone(),
    })
}

/// Run the plan's steps in order, telling `done` after each; returns how
/// many ran. A failure names the step and how many were done before it.
pub async fn execute(
    vsphere: &dyn VspherePort,
    observed: &Observed,
    plan: &SetupPlan,
    done: &mut dyn FnMut(&Step),
) -> Result<usize> {
    let total = plan.steps.len();
    vsphere
        .apply_zone_steps(observed, &plan.steps, &mut |_, step| done(step))
        .await
        .map_err(|(index, source)| Error::ZoneStep {
            index,
            total,
            step: plan.steps[index].to_string(),
            source: Box::new(source),
        })?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeVsphere;

    const TOPOLOGY: &str = "
categories:
  region: k8s-region
  zone: k8s-zone
regions:
  - name: region-a
    datacenter: DC0
zones:
  - name: zone-a1
    region: region-a
    computeCluster: C0
    datastores: [DS0]
";

    fn topology() -> Topology {
        Topology::from_yaml(TOPOLOGY, "topology.yaml").expect("topology parses")
    }

    #[tokio::test]
    async fn setup_tags_regions_and_zones_once_and_then_has_nothing_to_do() {
        let vsphere = FakeVsphere::new(Vec::new());
        let topology = topology();
        let observed = observe(&vsphere, &topology.categories)
            .await
            .expect("observe");
        let plan = plan(&topology, &observed, false).expect("plan");
        refuse_conflicts(&plan, false).expect("no conflicts");
        let mut seen = Vec::new();
        let ran = execute(&vsphere, &observed, &plan, &mut |step| {
            seen.push(step.to_string())
        })
        .await
        .expect("setup");
        assert_eq!(ran, plan.steps.len());
        assert_eq!(seen.len(), ran);
        // Two categories, two tags, attached to the datacenter, the
        // compute cluster and the datastore.
        assert!(ran >= 7, "{seen:?}");
        let after = observe(&vsphere, &topology.categories)
            .await
            .expect("observe");
        assert_eq!(after.tags.attachments.len(), 3, "{:?}", after.tags);
        let again = super::plan(&topology, &after, false).expect("plan");
        assert!(again.steps.is_empty(), "{:?}", again.steps);
    }

    #[tokio::test]
    async fn a_zone_tag_in_the_way_is_a_conflict_unless_forced() {
        let vsphere = FakeVsphere::new(Vec::new());
        let topology = topology();
        let observed = observe(&vsphere, &topology.categories)
            .await
            .expect("observe");
        let first = plan(&topology, &observed, false).expect("plan");
        execute(&vsphere, &observed, &first, &mut |_| {})
            .await
            .expect("setup");
        // The same cluster now claimed by another zone.
        let moved = Topology::from_yaml(&TOPOLOGY.replace("zone-a1", "zone-a2"), "topology.yaml")
            .expect("topology parses");
        let observed = observe(&vsphere, &moved.categories).await.expect("observe");
        let conflicting = plan(&moved, &observed, false).expect("plan");
        let err = refuse_conflicts(&conflicting, false).expect_err("refused");
        assert!(matches!(err, Error::ZoneConflicts { .. }), "{err}");
        assert!(err.to_string().contains("--force"), "{err}");
        let forced = plan(&moved, &observed, true).expect("plan");
        refuse_conflicts(&forced, true).expect("forced");
        execute(&vsphere, &observed, &forced, &mut |_| {})
            .await
            .expect("forced setup");
        let after = observe(&vsphere, &moved.categories).await.expect("observe");
        assert!(super::plan(&moved, &after, false)
            .expect("plan")
            .steps
            .is_empty());
    }
}
