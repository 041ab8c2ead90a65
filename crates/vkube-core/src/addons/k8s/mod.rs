//! The Kubernetes objects every add-on is made of, as typed structs, and
//! [`Stream`], the multi-document YAML they are written into. Only the
//! fields vkube sets exist; everything optional is left out of the output
//! when unset, so the rendered objects are small and pass
//! `kubernetes-validate --strict`. Generic on purpose: nothing here knows
//! a CNI or vSphere.
//!
//! - [`meta`]: labels, `metadata` and the object envelope;
//! - [`v1`]: Namespace, ServiceAccount, ConfigMap, Secret;
//! - [`rbac`]: rules, (Cluster)Roles and their bindings;
//! - [`crd`]: CustomResourceDefinitions with open schemas;
//! - [`storage`]: CSIDriver and StorageClass;
//! - [`pod`] and [`container`]: pod specs and their containers;
//! - [`workload`]: DaemonSets, Deployments, PodDisruptionBudgets;
//! - [`stream`]: the YAML stream (YAML 1.1-safe, see [`crate::yaml`]) and
//!   the [`Manifest`](super::Manifest) made from it.

mod container;
mod crd;
mod meta;
mod pod;
mod rbac;
mod storage;
mod stream;
mod v1;
mod workload;

pub(crate) use container::{Container, EnvVar, HttpGet, Port, Probe};
pub(crate) use crd::{open_crd, CrdSpec, Scope};
pub(crate) use meta::{Labels, Meta, Object, NAME_LABEL, PART_OF_LABEL};
pub(crate) use pod::{
    linux_nodes, Affinity, Capabilities, PodSpec, PodTemplate, Profile, SeLinuxOptions,
    SecurityContext, Toleration, Volume,
};
pub(crate) use rbac::{
    binding, cluster_role, named_rule, role, rule, RoleRef, Rule, Subject, READ,
};
pub(crate) use storage::{csi_driver, storage_class, CsiDriverSpec, StorageClassBody};
pub(crate) use stream::Stream;
pub(crate) use v1::{config_map, namespace, secret, service_account};
pub(crate) use workload::{daemon_set, deployment, pod_disruption_budget, Amount, Strategy};

#[cfg(test)]
mod tests;
