//! The order `cluster delete` destroys nodes in. Nothing is drained (the
//! cluster is going away), but the control plane is taken down last and one
//! node at a time, so that while anything of the cluster still runs it has
//! a working API server, and the oldest control-plane node (the init node,
//! index 0, unless a rolling change replaced it), whose etcd holds the
//! longest history, goes last.

use super::observed::ObservedNode;

/// Waves of node names: every wave starts once the one before it is done;
/// the nodes of one wave may go in parallel. All workers (of any pool, also
/// pools no longer in the spec) first, then the control-plane nodes one per
/// wave, newest first.
pub fn delete_order(nodes: &[ObservedNode]) -> Vec<Vec<String>> {
    let mut workers: Vec<&ObservedNode> = nodes.iter().filter(|n| !n.is_control_plane()).collect();
    workers.sort_by(|a, b| (&a.pool, a.index).cmp(&(&b.pool, b.index)));
    let mut control_plane: Vec<&ObservedNode> =
        nodes.iter().filter(|n| n.is_control_plane()).collect();
    control_plane.sort_by(|a, b| b.index.cmp(&a.index).then(a.name.cmp(&b.name)));
    let mut waves = Vec::new();
    if !workers.is_empty() {
        waves.push(workers.iter().map(|n| n.name.clone()).collect());
    }
    waves.extend(control_plane.iter().map(|n| vec![n.name.clone()]));
    waves
}
