//! The vCenter inventory as one snapshot: every managed entity with its
//! name, parent, govc-style inventory path (`/DC0/host/DC0_C0`) and the
//! facts vkube shows or places on. Loaded with one container view and one
//! property retrieval, whatever the inventory's size. Path lookups name the
//! first missing segment.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use vim_rs::types::enums::{
    HostSystemConnectionStateEnum, HostSystemPowerStateEnum, VirtualMachinePowerStateEnum,
};
use vim_rs::types::structs::{DatastoreHostMount, ManagedObjectReference};

use crate::collect::{retrieve_inventory, ObjectProps, Wanted};
use crate::error::{Error, Result};
use crate::ids::ObjectRef;
use crate::session::Session;

/// What kind of object an entity is, with its kind-specific facts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Details {
    /// A folder (VM, host, datastore, network folders and plain folders).
    Folder {
        /// Types of children it may hold, e.g. `VirtualMachine`.
        child_types: Vec<String>,
    },
    /// A datacenter.
    Datacenter,
    /// A DRS/HA cluster.
    ComputeCluster {
        /// Ids of its hosts.
        hosts: Vec<String>,
    },
    /// The compute resource around a standalone host.
    StandaloneComputeResource {
        /// Ids of its host (one).
        hosts: Vec<String>,
    },
    /// An ESXi host.
    Host {
        /// `connected`, `disconnected`, `notResponding`.
        connection_state: String,
        /// `poweredOn`, `poweredOff`, `standBy`, `unknown`.
        power_state: String,
        /// Ids of datastores it mounts.
        datastores: Vec<String>,
        /// Ids of networks it is attached to.
        networks: Vec<String>,
    },
    /// A datastore.
    Datastore {
        /// `VMFS`, `NFS`, `vsan`, `OTHER`…
        datastore_type: String,
        /// Capacity in bytes.
        capacity_bytes: i64,
        /// Free space in bytes.
        free_bytes: i64,
        /// Whether it is accessible.
        accessible: bool,
        /// Its URL (`ds:///vmfs/volumes/<uuid>/`), as CSI's `datastoreurl` takes it.
        url: String,
        /// Ids of hosts mounting it.
        hosts: Vec<String>,
    },
    /// A datastore cluster (storage pod).
    DatastoreCluster {
        /// Capacity in bytes.
        capacity_bytes: i64,
        /// Free space in bytes.
        free_bytes: i64,
    },
    /// A standard, distributed or opaque network.
    Network {
        /// `Network`, `DistributedVirtualPortgroup` or `OpaqueNetwork`.
        network_type: String,
        /// Ids of hosts attached.
        hosts: Vec<String>,
    },
    /// A distributed switch.
    DistributedSwitch,
    /// A resource pool or vApp.
    ResourcePool {
        /// Id of the owning compute resource.
        owner: Option<String>,
    },
    /// A virtual machine or template.
    VirtualMachine {
        /// Whether it is a template.
        template: bool,
        /// `poweredOn`, `poweredOff`, `suspended`.
        power_state: String,
        /// Id of its resource pool (templates have none).
        resource_pool: Option<String>,
        /// Id of its host.
        host: Option<String>,
    },
}

/// One managed entity.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entity {
    /// Managed object id, e.g. `vm-42`.
    pub id: String,
    /// Managed object type, e.g. `VirtualMachine`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Display name.
    pub name: String,
    /// Inventory path, e.g. `/DC0/vm/web-1`.
    pub path: String,
    /// Parent id (none for the root folder).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Kind-specific facts.
    pub details: Details,
    #[serde(skip)]
    moref: ManagedObjectReference,
}

impl Entity {
    /// The reference to pass to `vim_rs` calls.
    pub fn moref(&self) -> &ManagedObjectReference {
        &self.moref
    }

    /// The entity as vkube names managed objects (its type and id).
    pub fn object(&self) -> ObjectRef {
        ObjectRef::new(self.type_name.clone(), self.id.clone())
    }
}

/// A snapshot of the whole inventory.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    entities: BTreeMap<String, Entity>,
    by_path: HashMap<String, String>,
    root: String,
}

const WANTED: &[Wanted<'static>] = &[
    Wanted {
        type_name: "Folder",
        paths: &["name", "parent", "childType"],
    },
    Wanted {
        type_name: "StoragePod",
        paths: &[
            "name",
            "parent",
            "childType",
            "summary.capacity",
            "summary.freeSpace",
        ],
    },
    Wanted {
        type_name: "Datacenter",
        paths: &["name", "parent"],
    },
    Wanted {
        type_name: "ComputeResource",
        paths: &["name", "parent", "host"],
    },
    Wanted {
        type_name: "HostSystem",
        paths: &[
            "name",
            "parent",
            "runtime.connectionState",
            "runtime.powerState",
            "datastore",
            "network",
        ],
    },
    Wanted {
        type_name: "Datastore",
        paths: &[
            "name",
            "parent",
            "summary.type",
            "summary.capacity",
            "summary.freeSpace",
            "summary.accessible",
            "summary.url",
            "host",
        ],
    },
    Wanted {
        type_name: "Network",
        paths: &["name", "parent", "host"],
    },
    Wanted {
        type_name: "DistributedVirtualSwitch",
        paths: &["name", "parent"],
    },
    Wanted {
        type_name: "ResourcePool",
        paths: &["name", "parent", "owner"],
    },
    Wanted {
        type_name: "VirtualMachine",
        paths: &[
            "name",
            "parent",
            "config.template",
            "runtime.powerState",
            "resourcePool",
            "runtime.host",
        ],
    },
];

fn ids(refs: Vec<ManagedObjectReference>) -> Vec<String> {
    refs.into_iter().map(|r| r.value).collect()
}

fn details_of(props: &mut ObjectProps) -> Details {
    match props.type_name() {
        "Folder" => Details::Folder {
            child_types: props.take::<Vec<String>>("childType").unwrap_or_default(),
        },
        "StoragePod" => Details::DatastoreCluster {
            capacity_bytes: props.take("summary.capacity").unwrap_or(0),
            free_bytes: props.take("summary.freeSpace").unwrap_or(0),
        },
        "Datacenter" => Details::Datacenter,
        "ClusterComputeResource" => Details::ComputeCluster {
            hosts: ids(props.morefs("host")),
        },
        "ComputeResource" => Details::StandaloneComputeResource {
            hosts: ids(props.morefs("host")),
        },
        "HostSystem" => Details::Host {
            connection_state: props
                .take::<HostSystemConnectionStateEnum>("runtime.connectionState")
                .map(|s| s.to_string())
                .unwrap_or_default(),
            power_state: props
                .take::<HostSystemPowerStateEnum>("runtime.powerState")
                .map(|s| s.to_string())
                .unwrap_or_default(),
            datastores: ids(props.morefs("datastore")),
            networks: ids(props.morefs("network")),
        },
        "Datastore" => Details::Datastore {
            datastore_type: props.string("summary.type").unwrap_or_default(),
            capacity_bytes: props.take("summary.capacity").unwrap_or(0),
            free_bytes: props.take("summary.freeSpace").unwrap_or(0),
            accessible: props.take("summary.accessible").unwrap_or(false),
            url: props.string("summary.url").unwrap_or_default(),
            hosts: props
                .take::<Vec<DatastoreHostMount>>("host")
                .unwrap_or_default()
                .into_iter()
                .map(|m| m.key.value)
                .collect(),
        },
        "Network" | "DistributedVirtualPortgroup" | "OpaqueNetwork" => Details::Network {
            network_type: props.type_name().to_string(),
            hosts: ids(props.morefs("host")),
        },
        "VmwareDistributedVirtualSwitch" | "DistributedVirtualSwitch" => Details::DistributedSwitch,
        "ResourcePool" | "VirtualApp" => Details::ResourcePool {
            owner: props
                .take::<ManagedObjectReference>("owner")
                .map(|r| r.value),
        },
        "VirtualMachine" => Details::VirtualMachine {
            template: props.take("config.template").unwrap_or(false),
            power_state: props
                .take::<VirtualMachinePowerStateEnum>("runtime.powerState")
                .map(|s| s.to_string())
                .unwrap_or_default(),
            resource_pool: props
                .take::<ManagedObjectReference>("resourcePool")
                .map(|r| r.value),
            host: props
                .take::<ManagedObjectReference>("runtime.host")
                .map(|r| r.value),
        },
        _ => Details::Folder {
            child_types: Vec::new(),
        },
    }
}

impl Inventory {
    /// Load the whole inventory in one round trip (a traversal from the
    /// root folder).
    pub async fn load(session: &Session) -> Result<Inventory> {
        let root = session.content().root_folder.clone();
        let objects = retrieve_inventory(session, &root, WANTED).await?;
        let mut entities = BTreeMap::new();
        // The walk skips the root folder itself.
        entities.insert(
            root.value.clone(),
            Entity {
                id: root.value.clone(),
                type_name: "Folder".into(),
                name: String::new(),
                path: "/".into(),
                parent: None,
                details: Details::Folder {
                    child_types: vec!["Datacenter".into(), "Folder".into()],
                },
                moref: root.clone(),
            },
        );
        for mut props in objects {
            let details = details_of(&mut props);
            let name = props.string("name").unwrap_or_default();
            let parent = props
                .take::<ManagedObjectReference>("parent")
                .map(|r| r.value);
            entities.insert(
                props.obj.value.clone(),
                Entity {
                    id: props.obj.value.clone(),
                    type_name: props.type_name().to_string(),
                    name,
                    path: String::new(),
                    parent,
                    details,
                    moref: props.obj,
                },
            );
        }
        Ok(Inventory::from_entities(entities, root.value))
    }

    fn from_entities(mut entities: BTreeMap<String, Entity>, root: String) -> Inventory {
        let ids: Vec<String> = entities.keys().cloned().collect();
        let mut paths = HashMap::new();
        for id in &ids {
            let path = path_of(&entities, &root, id, &mut paths);
            if let Some(e) = entities.get_mut(id) {
                e.path = path;
            }
        }
        let by_path = entities
            .values()
            .map(|e| (e.path.clone(), e.id.clone()))
            .collect();
        Inventory {
            entities,
            by_path,
            root,
        }
    }

    /// Every entity, ordered by id.
    pub fn entities(&self) -> impl Iterator<Item = &Entity> {
        self.entities.values()
    }

    /// An entity by managed object id.
    pub fn get(&self, id: &str) -> Option<&Entity> {
        self.entities.get(id)
    }

    /// The root folder.
    pub fn root(&self) -> &Entity {
        &self.entities[&self.root]
    }

    /// Children of an entity (by parent link), sorted by name.
    pub fn children(&self, id: &str) -> Vec<&Entity> {
        let mut out: Vec<&Entity> = self
            .entities
            .values()
            .filter(|e| e.parent.as_deref() == Some(id))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Resolve a govc-style inventory path. `kind` names what is looked for in
    /// the error (e.g. "datastore"). The error names the first missing segment.
    pub fn resolve(&self, path: &str, kind: &str) -> Result<&Entity> {
        let normalized = normalize(path);
        if let Some(id) = self.by_path.get(&normalized) {
            return Ok(&self.entities[id]);
        }
        let mut parent = "/".to_string();
        for segment in normalized.split('/').filter(|s| !s.is_empty()) {
            let candidate = if parent == "/" {
                format!("/{segment}")
            } else {
                format!("{parent}/{segment}")
            };
            if !self.by_path.contains_key(&candidate) {
                return Err(Error::NotFound {
                    kind: kind.to_string(),
                    path: path.to_string(),
                    parent,
                    missing: segment.to_string(),
                });
            }
            parent = candidate;
        }
        Err(Error::NotFound {
            kind: kind.to_string(),
            path: path.to_string(),
            parent,
            missing: String::new(),
        })
    }

    /// The datacenter an entity belongs to.
    pub fn datacenter_of(&self, id: &str) -> Option<&Entity> {
        let mut current = self.entities.get(id)?;
        loop {
            if matches!(current.details, Details::Datacenter) {
                return Some(current);
            }
            current = self.entities.get(current.parent.as_deref()?)?;
        }
    }

    /// Entities whose details match `pred`, sorted by path.
    pub fn select(&self, pred: impl Fn(&Details) -> bool) -> Vec<&Entity> {
        let mut out: Vec<&Entity> = self
            .entities
            .values()
            .filter(|e| pred(&e.details))
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }

    /// Path of an entity by id, or the id itself when unknown.
    pub fn path(&self, id: &str) -> String {
        self.entities
            .get(id)
            .map(|e| e.path.clone())
            .unwrap_or_else(|| id.to_string())
    }

    /// Build a snapshot from entities — `(object, name, parent id, details)`
    /// — and the root folder's id: for fakes and tests of code that
    /// consumes one.
    pub fn from_parts(
        entities: Vec<(ObjectRef, String, Option<String>, Details)>,
        root: &str,
    ) -> Inventory {
        let mut map = BTreeMap::new();
        for (object, name, parent, details) in entities {
            map.insert(
                object.id.clone(),
                Entity {
                    id: object.id.clone(),
                    type_name: object.type_name.clone(),
                    name,
                    path: String::new(),
                    parent,
                    details,
                    moref: object.moref(),
                },
            );
        }
        Inventory::from_entities(map, root.to_owned())
    }
}

fn normalize(path: &str) -> String {
    let joined: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    format!("/{}", joined.join("/"))
}

/// Inventory paths escape `/` inside names as `%2f`, as vCenter does.
fn escape(name: &str) -> String {
    name.replace('%', "%25").replace('/', "%2f")
}

fn path_of(
    entities: &BTreeMap<String, Entity>,
    root: &str,
    id: &str,
    memo: &mut HashMap<String, String>,
) -> String {
    if let Some(p) = memo.get(id) {
        return p.clone();
    }
    let path = if id == root {
        "/".to_string()
    } else {
        match entities.get(id) {
            None => String::new(),
            Some(e) => match e.parent.as_deref() {
                // Orphans (parent outside the view) are shown under the root.
                None => format!("/{}", escape(&e.name)),
                Some(p) if !entities.contains_key(p) => format!("/{}", escape(&e.name)),
                Some(p) => {
                    let parent = path_of(entities, root, p, memo);
                    if parent == "/" {
                        format!("/{}", escape(&e.name))
                    } else {
                        format!("{parent}/{}", escape(&e.name))
                    }
                }
            },
        }
    };
    memo.insert(id.to_string(), path.clone());
    path
}
