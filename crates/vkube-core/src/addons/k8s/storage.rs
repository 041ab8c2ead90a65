//! Storage objects: CSIDriver and StorageClass.

use std::collections::BTreeMap;

use serde::Serialize;

use super::meta::{Meta, Object, SpecBody};

const API_VERSION: &str = "storage.k8s.io/v1";

/// `spec` of a CSIDriver.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CsiDriverSpec {
    /// Volumes are attached (ControllerPublish) before they are mounted.
    pub attach_required: bool,
    /// The driver needs pod information on mount.
    pub pod_info_on_mount: bool,
}

/// A CSIDriver.
pub(crate) fn csi_driver(meta: Meta, spec: CsiDriverSpec) -> Object<SpecBody<CsiDriverSpec>> {
    Object::new(API_VERSION, "CSIDriver", meta, SpecBody { spec })
}

/// A StorageClass's fields (it has no `spec`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StorageClassBody {
    provisioner: &'static str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    parameters: BTreeMap<&'static str, String>,
    reclaim_policy: &'static str,
    volume_binding_mode: &'static str,
    allow_volume_expansion: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    allowed_topologies: Vec<TopologySelectorTerm>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TopologySelectorTerm {
    match_label_expressions: Vec<TopologyRequirement>,
}

#[derive(Debug, Serialize)]
struct TopologyRequirement {
    key: String,
    values: Vec<String>,
}

impl StorageClassBody {
    /// Expandable volumes of `provisioner`, deleted with their claim and
    /// bound once the pod is scheduled (`WaitForFirstConsumer`): the driver
    /// then picks storage the pod's node (and zone) can reach.
    pub(crate) fn bound_on_first_consumer(provisioner: &'static str) -> StorageClassBody {
        StorageClassBody {
            provisioner,
            parameters: BTreeMap::new(),
            reclaim_policy: "Delete",
            volume_binding_mode: "WaitForFirstConsumer",
            allow_volume_expansion: true,
            allowed_topologies: Vec::new(),
        }
    }

    /// With driver parameter `key` set to `value`.
    pub(crate) fn parameter(mut self, key: &'static str, value: &str) -> StorageClassBody {
        self.parameters.insert(key, value.to_owned());
        self
    }

    /// Volumes only where the nodes' labels match every `(key, value)`.
    pub(crate) fn only_where(mut self, labels: Vec<(String, String)>) -> StorageClassBody {
        let match_label_expressions = labels
            .into_iter()
            .map(|(key, value)| TopologyRequirement {
                key,
                values: vec![value],
            })
            .collect();
        self.allowed_topologies.push(TopologySelectorTerm {
            match_label_expressions,
        });
        self
    }
}

/// A StorageClass.
pub(crate) fn storage_class(meta: Meta, body: StorageClassBody) -> Object<StorageClassBody> {
    Object::new(API_VERSION, "StorageClass", meta, body)
}
