//! AuthorizationManager wrapper against the simulator: every write is read
//! back through the API.

use vkube_test_support::Simulator;
use vkube_vsphere::{Authorization, Error, Fault, Inventory};

use crate::support::connect;

const USER: &str = "k8s-svc@vsphere.local";

fn strings(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|id| (*id).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn lists_roles_and_known_privileges() {
    let sim = Simulator::start_default();
    let session = connect(&sim).await;
    let authz = Authorization::new(&session).unwrap();
    let roles = authz.roles().await.unwrap();
    let admin = roles
        .iter()
        .find(|r| r.name == "Admin")
        .expect("Admin role");
    assert_eq!(admin.id, -1);
    assert!(admin.system);
    assert!(roles.iter().any(|r| r.name == "ReadOnly" && r.system));
    let known = authz.privileges().await.unwrap();
    for id in [
        "Folder.Create",
        "Cns.Searchable",
        "InventoryService.Tagging.ObjectAttachable",
        "System.Read",
    ] {
        assert!(known.contains(id), "{id} not in privilegeList");
    }
    session.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn creates_and_updates_roles() {
    let sim = Simulator::start_default();
    let session = connect(&sim).await;
    let authz = Authorization::new(&session).unwrap();
    let id = authz
        .create_role("vkube-test", &strings(&["Folder.Create", "Folder.Delete"]))
        .await
        .unwrap();
    assert!(id > 0);
    let role = authz
        .roles()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.name == "vkube-test")
        .unwrap();
    assert_eq!(role.id, id);
    assert!(!role.system);
    let expected = [
        "Folder.Create",
        "Folder.Delete",
        "System.Anonymous",
        "System.Read",
        "System.View",
    ];
    assert_eq!(
        role.privileges
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        expected
    );

    authz
        .update_role(
            id,
            "vkube-test",
            &strings(&["Folder.Create", "Network.Assign"]),
        )
        .await
        .unwrap();
    let role = authz
        .roles()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.id == id)
        .unwrap();
    assert!(role.privileges.contains("Network.Assign"));
    assert!(!role.privileges.contains("Folder.Delete"));

    let err = authz
        .create_role("vkube-test", &strings(&["Folder.Create"]))
        .await
        .unwrap_err();
    assert_eq!(err.fault(), Some(Fault::AlreadyExists), "{err}");
    let err = authz
        .create_role("vkube-other", &strings(&["Folder.NoSuchThing"]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Fault {
                fault: Fault::InvalidArgument,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().starts_with("creating role `vkube-other`"),
        "{err}"
    );
    session.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn permissions_and_effective_privileges() {
    let sim = Simulator::start_default();
    let session = connect(&sim).await;
    let authz = Authorization::new(&session).unwrap();
    let inventory = Inventory::load(&session).await.unwrap();
    let folder = inventory
        .resolve("/DC0/vm", "VM folder")
        .unwrap()
        .moref()
        .clone();
    let vm = inventory
        .resolve("/DC0/vm/DC0_C0_RP0_VM0", "VM")
        .unwrap()
        .moref()
        .clone();
    let datacenter = inventory
        .resolve("/DC0", "datacenter")
        .unwrap()
        .moref()
        .clone();
    let role = authz
        .create_role("vkube-folder-test", &strings(&["Folder.Create"]))
        .await
        .unwrap();

    authz
        .set_permission(&folder, USER, false, role, true)
        .await
        .unwrap();
    let permissions = authz.entity_permissions(&folder, false).await.unwrap();
    let mine: Vec<_> = permissions.iter().filter(|p| p.principal == USER).collect();
    assert_eq!(mine.len(), 1, "{permissions:?}");
    assert_eq!(
        (
            mine[0].entity.as_str(),
            mine[0].role_id,
            mine[0].propagate,
            mine[0].group
        ),
        (folder.value.as_str(), role, true, false)
    );
    // Inherited permissions include the admin's on the root folder.
    let inherited = authz.entity_permissions(&vm, true).await.unwrap();
    assert!(inherited
        .iter()
        .any(|p| p.principal == USER && p.entity == folder.value));
    assert!(inherited
        .iter()
        .any(|p| p.principal == sim.username() && p.role_id == -1));

    // One round trip for all entities.
    let before = session.round_trips();
    let effective = authz
        .user_privileges(&[folder.clone(), vm.clone(), datacenter.clone()], USER)
        .await
        .unwrap();
    assert_eq!(session.round_trips() - before, 1);
    assert!(effective[&folder.value].contains("Folder.Create"));
    assert!(effective[&vm.value].contains("Folder.Create"));
    assert!(effective[&datacenter.value].is_empty());

    // Setting again replaces the principal's permission: no longer propagating.
    authz
        .set_permission(&folder, USER, false, role, false)
        .await
        .unwrap();
    let permissions = authz.entity_permissions(&folder, false).await.unwrap();
    assert_eq!(
        permissions.iter().filter(|p| p.principal == USER).count(),
        1
    );
    let effective = authz
        .user_privileges(&[folder.clone(), vm.clone()], USER)
        .await
        .unwrap();
    assert!(effective[&folder.value].contains("Folder.Create"));
    assert!(effective[&vm.value].is_empty());
    session.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn own_session_privileges() {
    let sim = Simulator::start_default();
    let session = connect(&sim).await;
    let authz = Authorization::new(&session).unwrap();
    let (key, user) = authz.current_session().await.unwrap();
    assert!(!key.is_empty());
    assert_eq!(user.to_lowercase(), sim.username().to_lowercase());
    let inventory = Inventory::load(&session).await.unwrap();
    let folder = inventory
        .resolve("/DC0/vm", "VM folder")
        .unwrap()
        .moref()
        .clone();
    let root = inventory.root().moref().clone();
    let wanted = strings(&["Folder.Create", "Authorization.ModifyRoles"]);
    let held = authz
        .session_privileges(&[root.clone(), folder.clone()], &wanted)
        .await
        .unwrap();
    assert_eq!(held[&root.value].len(), 2, "{held:?}");
    assert_eq!(held[&folder.value].len(), 2, "{held:?}");

    // Narrow the own user's permission on the folder: nearest entity wins.
    let role = authz
        .create_role("vkube-narrow", &strings(&["Folder.Create"]))
        .await
        .unwrap();
    authz
        .set_permission(&folder, sim.username(), false, role, true)
        .await
        .unwrap();
    let held = authz
        .session_privileges(&[root.clone(), folder.clone()], &wanted)
        .await
        .unwrap();
    assert_eq!(held[&root.value].len(), 2);
    assert_eq!(
        held[&folder.value]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        ["Folder.Create"]
    );
    session.close().await;
}
