//! Property collection: fetch chosen properties of many objects in one
//! `RetrievePropertiesEx` call (plus continuations when vCenter pages), and
//! hand them out typed. Every multi-object read in vkube goes through here,
//! so round trips stay constant as the inventory grows.
//!
//! Each read runs through [`Session::read_retrying`]: container views and
//! continuation tokens belong to the session that made them, so a read the
//! end of a session spoiled runs again whole, with a new view, after the
//! new login — never with a partial answer.

use std::collections::HashMap;

use vim_rs::mo::{PropertyCollector, ViewManager};
use vim_rs::types::structs::{
    ManagedObjectReference, ObjectSpec, PropertyFilterSpec, PropertySpec, RetrieveOptions,
    SelectionSpec, TraversalSpec,
};
use vim_rs::types::vim_any::VimAny;

use crate::error::{Error, Result};
use crate::session::Session;

/// The properties retrieved for one object.
pub struct ObjectProps {
    /// The object.
    pub obj: ManagedObjectReference,
    props: HashMap<String, VimAny>,
}

impl ObjectProps {
    /// Take a property as `T` (e.g. `String`, `i64`, `bool`,
    /// `ManagedObjectReference`, `Vec<ManagedObjectReference>`, a generated
    /// enum or struct). `None` when unset or of another type.
    pub fn take<T: 'static>(&mut self, path: &str) -> Option<T> {
        let value = self.props.remove(path)?;
        value.into_any().downcast::<T>().ok().map(|b| *b)
    }

    /// Take a string property.
    pub fn string(&mut self, path: &str) -> Option<String> {
        self.take::<String>(path)
    }

    /// Take a property holding a list of references (empty when unset).
    pub fn morefs(&mut self, path: &str) -> Vec<ManagedObjectReference> {
        self.take::<Vec<ManagedObjectReference>>(path)
            .unwrap_or_default()
    }

    /// The object's managed-object type name, e.g. `VirtualMachine`.
    pub fn type_name(&self) -> &str {
        self.obj.r#type.as_str()
    }
}

/// Properties to collect for one managed-object type.
pub struct Wanted<'a> {
    /// Type name, e.g. `Datastore`.
    pub type_name: &'a str,
    /// Property paths, e.g. `summary.capacity`.
    pub paths: &'a [&'a str],
}

fn property_specs(wanted: &[Wanted<'_>]) -> Vec<PropertySpec> {
    wanted
        .iter()
        .map(|w| PropertySpec {
            r#type: w.type_name.to_string(),
            all: Some(false),
            path_set: Some(w.paths.iter().map(|p| p.to_string()).collect()),
        })
        .collect()
}

/// Retrieve `wanted` properties for explicit objects, in one call per page.
pub async fn retrieve_objects(
    session: &Session,
    objects: &[ManagedObjectReference],
    wanted: &[Wanted<'_>],
) -> Result<Vec<ObjectProps>> {
    if objects.is_empty() {
        return Ok(Vec::new());
    }
    session
        .read_retrying(|_| {
            let object_set = objects
                .iter()
                .map(|obj| ObjectSpec {
                    obj: obj.clone(),
                    skip: Some(false),
                    select_set: None,
                })
                .collect();
            retrieve(session, object_set, property_specs(wanted))
        })
        .await
}

/// Retrieve `wanted` properties for every object of those types below
/// `container` (recursively): a container view, one retrieval, and the
/// view's removal — three round trips whatever the inventory's size.
pub async fn retrieve_container(
    session: &Session,
    container: &ManagedObjectReference,
    wanted: &[Wanted<'_>],
) -> Result<Vec<ObjectProps>> {
    session
        .read_retrying(|generation| read_through_view(session, generation, container, wanted))
        .await
}

/// Retrieve `wanted` properties of `folder`'s direct children in one
/// round trip (a traversal of `Folder.childEntity`, no view to create and
/// remove). An answer that does not parse (an object caught mid-change)
/// is read again through a view, object by object.
pub async fn retrieve_children(
    session: &Session,
    folder: &ManagedObjectReference,
    wanted: &[Wanted<'_>],
) -> Result<Vec<ObjectProps>> {
    let children = || {
        vec![ObjectSpec {
            obj: folder.clone(),
            skip: Some(true),
            select_set: Some(vec![Box::new(TraversalSpec {
                selection_spec_: SelectionSpec {
                    name: Some("children".into()),
                },
                r#type: "Folder".into(),
                path: "childEntity".into(),
                skip: Some(false),
                select_set: None,
            })]),
        }]
    };
    let read = session
        .read_retrying(|_| retrieve(session, children(), property_specs(wanted)))
        .await;
    match read {
        Err(Error::Protocol { .. }) => retrieve_container(session, folder, wanted).await,
        other => other,
    }
}

/// A traversal step: from objects of `type_name` along `path`, then on
/// with the named selections `next`.
fn step(name: &str, type_name: &str, path: &str, next: &[&str]) -> Box<TraversalSpec> {
    Box::new(TraversalSpec {
        selection_spec_: SelectionSpec {
            name: Some(name.into()),
        },
        r#type: type_name.into(),
        path: path.into(),
        skip: Some(false),
        select_set: Some(
            next.iter()
                .map(|n| {
                    Box::new(SelectionSpec {
                        name: Some((*n).into()),
                    }) as Box<dyn vim_rs::types::traits::SelectionSpecTrait>
                })
                .collect(),
        ),
    })
}

/// The walk from the root folder to every inventory object: folders'
/// children, a datacenter's four folders, a compute resource's hosts and
/// root resource pool, resource pools' children (vApps included).
fn inventory_walk() -> Vec<Box<dyn vim_rs::types::traits::SelectionSpecTrait>> {
    const ALL: &[&str] = &[
        "folder",
        "datacenter-vm",
        "datacenter-host",
        "datacenter-datastore",
        "datacenter-network",
        "compute-host",
        "compute-pool",
        "pool-pool",
    ];
    vec![
        step("folder", "Folder", "childEntity", ALL),
        step("datacenter-vm", "Datacenter", "vmFolder", ALL),
        step("datacenter-host", "Datacenter", "hostFolder", ALL),
        step("datacenter-datastore", "Datacenter", "datastoreFolder", ALL),
        step("datacenter-network", "Datacenter", "networkFolder", ALL),
        step("compute-host", "ComputeResource", "host", &[]),
        step("compute-pool", "ComputeResource", "resourcePool", ALL),
        step("pool-pool", "ResourcePool", "resourcePool", ALL),
    ]
}

/// Retrieve `wanted` properties for every object below the root folder
/// `root` in one round trip, walking the inventory with traversal specs
/// instead of a container view (which costs a call to create and one to
/// remove). An answer that does not parse is read again through a view,
/// object by object.
pub async fn retrieve_inventory(
    session: &Session,
    root: &ManagedObjectReference,
    wanted: &[Wanted<'_>],
) -> Result<Vec<ObjectProps>> {
    let walk = || {
        vec![ObjectSpec {
            obj: root.clone(),
            skip: Some(true),
            select_set: Some(inventory_walk()),
        }]
    };
    let read = session
        .read_retrying(|_| retrieve(session, walk(), property_specs(wanted)))
        .await;
    match read {
        Err(Error::Protocol { .. }) => retrieve_container(session, root, wanted).await,
        other => other,
    }
}

/// One attempt of [`retrieve_container`], in the login `generation`.
async fn read_through_view(
    session: &Session,
    generation: u64,
    container: &ManagedObjectReference,
    wanted: &[Wanted<'_>],
) -> Result<Vec<ObjectProps>> {
    let client = session.client();
    let view_manager_ref =
        session
            .content()
            .view_manager
            .as_ref()
            .ok_or_else(|| Error::Protocol {
                operation: "listing the inventory".into(),
                detail: "no ViewManager".into(),
            })?;
    let view_manager = ViewManager::new(client.clone(), &view_manager_ref.value);
    let types: Vec<String> = wanted.iter().map(|w| w.type_name.to_string()).collect();
    let view = view_manager
        .create_container_view(container, Some(&types), true)
        .await
        .map_err(|e| Error::from_client("creating a container view", e))?;
    let object_set = ViewSpec(vec![ObjectSpec {
        obj: view.clone(),
        skip: Some(true),
        select_set: Some(vec![Box::new(TraversalSpec {
            selection_spec_: SelectionSpec {
                name: Some("view".into()),
            },
            r#type: "ContainerView".into(),
            path: "view".into(),
            skip: Some(false),
            select_set: None,
        })]),
    }]);
    let mut result = retrieve(session, object_set.clone_specs(), property_specs(wanted)).await;
    // An answer that does not parse is either an object caught mid-change
    // (the simulator then sends a per-property fault `vim_rs` cannot read)
    // or a session that ended: only the first is worth reading object by
    // object; the second runs again whole.
    if matches!(result, Err(Error::Protocol { .. })) && !session.lost_since(generation).await {
        result = retrieve_one_by_one(session, generation, &view, wanted).await;
    }
    // A leftover view only costs server memory until logout; don't fail the read for it.
    if let Err(e) = vim_rs::mo::ContainerView::new(client, &view.value)
        .destroy_view()
        .await
    {
        tracing::debug!("destroying container view failed: {e}");
    }
    result
}

/// A view's object set; rebuilt rather than cloned (generated specs are not `Clone`).
struct ViewSpec(Vec<ObjectSpec>);

impl ViewSpec {
    fn clone_specs(&self) -> Vec<ObjectSpec> {
        self.0
            .iter()
            .map(|spec| ObjectSpec {
                obj: spec.obj.clone(),
                skip: spec.skip,
                select_set: Some(vec![Box::new(TraversalSpec {
                    selection_spec_: SelectionSpec {
                        name: Some("view".into()),
                    },
                    r#type: "ContainerView".into(),
                    path: "view".into(),
                    skip: Some(false),
                    select_set: None,
                })]),
            })
            .collect()
    }
}

/// The fallback read: the view's members, then each member alone; members
/// that still cannot be read are left out (and logged) — unless the session
/// ended meanwhile, which fails the read so that it runs again whole.
async fn retrieve_one_by_one(
    session: &Session,
    generation: u64,
    view: &ManagedObjectReference,
    wanted: &[Wanted<'_>],
) -> Result<Vec<ObjectProps>> {
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut members = retrieve_objects(
        session,
        std::slice::from_ref(view),
        &[Wanted {
            type_name: "ContainerView",
            paths: &["view"],
        }],
    )
    .await?;
    let members = members
        .first_mut()
        .map(|m| m.morefs("view"))
        .unwrap_or_default();
    let mut out = Vec::with_capacity(members.len());
    for member in members {
        let specs: Vec<Wanted<'_>> = wanted
            .iter()
            .filter(|w| w.type_name == member.r#type.as_str())
            .map(|w| Wanted {
                type_name: w.type_name,
                paths: w.paths,
            })
            .collect();
        let specs = if specs.is_empty() {
            wanted
                .iter()
                .map(|w| Wanted {
                    type_name: w.type_name,
                    paths: w.paths,
                })
                .collect()
        } else {
            specs
        };
        match retrieve_objects(session, std::slice::from_ref(&member), &specs).await {
            Ok(found) => out.extend(found),
            Err(e) if e.is_no_answer() || session.lost_since(generation).await => return Err(e),
            Err(e) => tracing::warn!(
                "skipping `{}` that cannot be read right now: {e}",
                member.value
            ),
        }
    }
    Ok(out)
}

async fn retrieve(
    session: &Session,
    object_set: Vec<ObjectSpec>,
    prop_set: Vec<PropertySpec>,
) -> Result<Vec<ObjectProps>> {
    let collector = PropertyCollector::new(
        session.client(),
        &session.content().property_collector.value,
    );
    let spec = [PropertyFilterSpec {
        object_set,
        prop_set,
        report_missing_objects_in_results: Some(false),
    }];
    // No maxObjects: vCenter picks its page size; continuations follow below.
    let options = RetrieveOptions { max_objects: None };
    let op = "retrieving properties";
    let mut out = Vec::new();
    let mut page = collector
        .retrieve_properties_ex(&spec, &options)
        .await
        .map_err(|e| Error::from_client(op, e))?;
    while let Some(result) = page {
        for content in result.objects {
            let props = content
                .prop_set
                .unwrap_or_default()
                .into_iter()
                .map(|p| (p.name, p.val))
                .collect();
            out.push(ObjectProps {
                obj: content.obj,
                props,
            });
        }
        page = match result.token {
            Some(token) => collector
                .continue_retrieve_properties_ex(&token)
                .await
                .map(Some)
                .map_err(|e| Error::from_client(op, e))?,
            None => None,
        };
    }
    Ok(out)
}
