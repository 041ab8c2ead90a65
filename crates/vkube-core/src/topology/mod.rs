//! Regions and zones on vSphere, which has neither: like Deckhouse, Palette
//! and the vSphere CSI driver, vkube expresses them as tags — a region
//! category (default `k8s-region`) on datacenters and a zone category
//! (default `k8s-zone`) on compute clusters and datastores.
//!
//! This module owns the topology file ([`RawTopology`] → [`Topology`]), the
//! observed state ([`Observed`]: inventory facts plus tags, handed in by the
//! vSphere layer), the setup plan ([`plan_setup`]), the checks
//! ([`validate`]), the region → zone → cluster view ([`TopologyView`]) with
//! its zone resolver ([`TopologyView::placement`]), and rendering (CSI
//! config, StorageClasses). Pure: it performs no I/O; talking to vCenter's
//! tagging API is `vkube-vsphere`'s job.

mod error;
mod name;
mod observed;
mod plan;
mod render;
mod spec;
mod validate;
mod view;

pub use error::{Error, Problem};
pub use name::TopologyName;
pub use observed::{
    Attachment, Cardinality, CategoryFacts, ClusterFacts, DatacenterFacts, DatastoreFacts,
    HostFacts, InventoryFacts, NetworkFacts, ObjectRef, Observed, TagFact, TagFacts,
};
pub use plan::{plan_setup, Conflict, PlanOptions, SetupPlan, Step};
pub use render::{
    render_csi, render_storage_classes, storage_class_name, ZoneLabel, CSI_PROVISIONER,
    CSI_TOPOLOGY_PREFIX,
};
pub use spec::{
    Categories, RawCategories, RawRegion, RawTopology, RawZone, Region, Topology, Zone,
    DEFAULT_REGION_CATEGORY, DEFAULT_ZONE_CATEGORY,
};
pub use validate::{validate, Finding, Severity};
pub use view::{
    ClusterView, DatastoreAccess, DatastoreView, Placement, RegionView, TopologyView, ZoneView,
};

/// The marker vkube writes into the description of every category and tag
/// it creates, so that what vkube created can be told from what it found.
pub const MANAGED_MARKER: &str = "managed-by=vkube";

/// vAPI object type of datacenters.
pub const TYPE_DATACENTER: &str = "Datacenter";
/// vAPI object type of compute clusters.
pub const TYPE_CLUSTER: &str = "ClusterComputeResource";
/// vAPI object type of datastores.
pub const TYPE_DATASTORE: &str = "Datastore";

/// Object types the region category must be associable with.
pub const REGION_TYPES: &[&str] = &[TYPE_DATACENTER];
/// Object types the zone category must be associable with.
pub const ZONE_TYPES: &[&str] = &[TYPE_CLUSTER, TYPE_DATASTORE];
