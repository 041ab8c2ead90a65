//! The vSphere side of an OVF import: `CreateImportSpec` validates the
//! descriptor against the target, `ImportVApp` creates the VM and an HTTP
//! NFC lease, the lease names one URL per file to upload, takes progress
//! reports (which also keep it alive), and is completed or aborted.

use std::time::Duration;

use vim_rs::types::enums::HttpNfcLeaseStateEnum;
use vim_rs::types::structs::{
    HttpNfcLeaseInfo, KeyValue, LocalizedMethodFault, ManagedObjectReference,
    OvfCreateImportSpecParams, OvfManagerCommonParams, OvfNetworkMapping,
};
use vim_rs::types::traits::ImportSpecTrait;

use crate::collect::{retrieve_objects, Wanted};
use crate::error::{Error, Result};
use crate::ids::{DatastoreId, FolderId, HostId, NetworkId, ResourcePoolId};
use crate::session::Session;

/// Where an import goes and how it is set up.
#[derive(Debug, Clone)]
pub struct ImportTarget {
    /// The new VM's name.
    pub name: String,
    /// VM folder.
    pub folder: FolderId,
    /// Resource pool.
    pub pool: ResourcePoolId,
    /// Datastore.
    pub datastore: DatastoreId,
    /// Host, when the pool does not decide one.
    pub host: Option<HostId>,
    /// OVF network name → vSphere network.
    pub networks: Vec<(String, NetworkId)>,
    /// OVF property key → value.
    pub properties: Vec<(String, String)>,
}

/// A file the import spec wants uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileItem {
    /// The device it becomes (matched against the lease's import keys).
    pub device_id: String,
    /// Its name in the package (`href`).
    pub path: String,
    /// Whether the lease creates it (non-disk files such as ISOs).
    pub create: bool,
    /// Declared size.
    pub size: Option<u64>,
}

/// A validated import spec.
pub struct ImportSpec {
    spec: Box<dyn ImportSpecTrait>,
    /// Files to upload.
    pub files: Vec<FileItem>,
    /// vCenter's warnings (shown, not fatal).
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for ImportSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportSpec")
            .field("files", &self.files)
            .field("warnings", &self.warnings)
            .finish_non_exhaustive()
    }
}

fn fault_text(fault: &vim_rs::types::structs::MethodFault) -> String {
    Error::from_fault("", fault)
        .to_string()
        .trim_start_matches(": ")
        .to_string()
}

/// Ask vCenter to turn `descriptor` into an import spec for `target`.
/// Errors vCenter lists (unsupported devices, unknown networks) fail the
/// import before anything is created.
pub async fn create_import_spec(
    session: &Session,
    descriptor: &str,
    target: &ImportTarget,
) -> Result<ImportSpec> {
    let operation = format!("validating the OVF descriptor of `{}`", target.name);
    let manager_ref = session
        .content()
        .ovf_manager
        .clone()
        .ok_or_else(|| Error::Protocol {
            operation: operation.clone(),
            detail: "no OvfManager".into(),
        })?;
    let params = OvfCreateImportSpecParams {
        ovf_manager_common_params_: OvfManagerCommonParams {
            locale: String::new(),
            deployment_option: String::new(),
            msg_bundle: None,
            import_option: None,
        },
        entity_name: target.name.clone(),
        host_system: target.host.as_ref().map(HostId::moref),
        network_mapping: (!target.networks.is_empty()).then(|| {
            target
                .networks
                .iter()
                .map(|(name, network)| OvfNetworkMapping {
                    name: name.clone(),
                    network: network.moref(),
                })
                .collect()
        }),
        ip_allocation_policy: None,
        ip_protocol: None,
        property_mapping: (!target.properties.is_empty()).then(|| {
            target
                .properties
                .iter()
                .map(|(key, value)| KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect()
        }),
        resource_mapping: None,
        disk_provisioning: Some("thin".into()),
        instantiation_ost: None,
    };
    let manager = vim_rs::mo::OvfManager::new(session.client(), &manager_ref.value);
    let result = manager
        .create_import_spec(
            descriptor,
            &target.pool.moref(),
            &target.datastore.moref(),
            &params,
        )
        .await
        .map_err(|e| Error::from_client(&operation, e))?;
    let errors: Vec<String> = result.error.iter().flatten().map(fault_text).collect();
    if !errors.is_empty() {
        return Err(Error::Invalid(format!(
            "vCenter cannot import `{}`: {}",
            target.name,
            errors.join("; ")
        )));
    }
    let spec = result.import_spec.ok_or_else(|| Error::Protocol {
        operation: operation.clone(),
        detail: "no import spec came back".into(),
    })?;
    let files = result
        .file_item
        .unwrap_or_default()
        .into_iter()
        .map(|f| FileItem {
            device_id: f.device_id,
            path: f.path,
            create: f.create,
            size: f.size.and_then(|s| u64::try_from(s).ok()),
        })
        .collect();
    Ok(ImportSpec {
        spec,
        files,
        warnings: result.warning.iter().flatten().map(fault_text).collect(),
    })
}

/// Where one file goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceUrl {
    /// The import key (a [`FileItem::device_id`]).
    pub import_key: String,
    /// Upload URL, with the `*` host vCenter may send replaced.
    pub url: String,
    /// SHA-1 thumbprint of the host serving it, when vCenter names one.
    pub thumbprint: Option<String>,
    /// Whether it is a disk.
    pub disk: bool,
}

/// An open import lease and the VM it creates.
#[derive(Debug, Clone)]
pub struct Lease {
    /// The lease.
    pub lease: ManagedObjectReference,
    /// The VM being imported (exists from `ImportVApp` on).
    pub vm: ManagedObjectReference,
    /// Upload URLs.
    pub urls: Vec<DeviceUrl>,
}

/// vCenter sends `https://*/nfc/…` when the client should use the host it
/// talks to; IPv6 literals need brackets in a URL.
pub fn replace_wildcard_host(url: &str, host: &str, port: u16) -> String {
    let Some(rest) = url.strip_prefix("https://*") else {
        return url.to_string();
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    // `*` alone means the default port; `*:port` keeps its port.
    if rest.starts_with(':') || port == 443 {
        format!("https://{host}{rest}")
    } else {
        format!("https://{host}:{port}{rest}")
    }
}

/// `ImportVApp`, then wait for the lease to be ready. The VM exists once
/// this returns; on an error after `ImportVApp` the caller gets the VM
/// reference inside [`LeaseFailure`] to remove it.
pub async fn begin_import(
    session: &Session,
    spec: &ImportSpec,
    target: &ImportTarget,
) -> std::result::Result<Lease, LeaseFailure> {
    let operation = format!("importing `{}`", target.name);
    let pool = vim_rs::mo::ResourcePool::new(session.client(), target.pool.id());
    let lease = pool
        .import_v_app(
            spec.spec.as_ref(),
            Some(&target.folder.moref()),
            target.host.as_ref().map(HostId::moref).as_ref(),
        )
        .await
        .map_err(|e| LeaseFailure {
            lease: None,
            vm: None,
            error: Error::from_client(&operation, e),
        })?;
    let info = match wait_ready(session, &lease, &operation).await {
        Ok(info) => info,
        Err(error) => {
            let vm = lease_entity(session, &lease).await;
            return Err(LeaseFailure {
                lease: Some(lease),
                vm,
                error,
            });
        }
    };
    let endpoint = &session.options().endpoint;
    let urls = info
        .device_url
        .unwrap_or_default()
        .into_iter()
        .map(|d| DeviceUrl {
            import_key: d.import_key,
            url: replace_wildcard_host(&d.url, &endpoint.host, endpoint.port),
            thumbprint: Some(d.ssl_thumbprint).filter(|t| !t.is_empty()),
            disk: d.disk.unwrap_or(true),
        })
        .collect();
    Ok(Lease {
        lease,
        vm: info.entity,
        urls,
    })
}

/// A failed import start: the error, and what to clean up.
#[derive(Debug)]
pub struct LeaseFailure {
    /// The lease, if one was created.
    pub lease: Option<ManagedObjectReference>,
    /// The VM, if it is known.
    pub vm: Option<ManagedObjectReference>,
    /// What went wrong.
    pub error: Error,
}

async fn lease_entity(
    session: &Session,
    lease: &ManagedObjectReference,
) -> Option<ManagedObjectReference> {
    let mut props = retrieve_objects(
        session,
        std::slice::from_ref(lease),
        &[Wanted {
            type_name: "HttpNfcLease",
            paths: &["info.entity"],
        }],
    )
    .await
    .ok()?;
    props.first_mut()?.take("info.entity")
}

async fn wait_ready(
    session: &Session,
    lease: &ManagedObjectReference,
    operation: &str,
) -> Result<HttpNfcLeaseInfo> {
    let mut interval = Duration::from_millis(100);
    loop {
        let mut props = retrieve_objects(
            session,
            std::slice::from_ref(lease),
            &[Wanted {
                type_name: "HttpNfcLease",
                paths: &["state"],
            }],
        )
        .await?;
        let state = props
            .first_mut()
            .and_then(|p| p.take::<HttpNfcLeaseStateEnum>("state"));
        match state {
            Some(HttpNfcLeaseStateEnum::Ready) => break,
            Some(HttpNfcLeaseStateEnum::Error) => {
                let mut props = retrieve_objects(
                    session,
                    std::slice::from_ref(lease),
                    &[Wanted {
                        type_name: "HttpNfcLease",
                        paths: &["error"],
                    }],
                )
                .await?;
                let fault = props
                    .first_mut()
                    .and_then(|p| p.take::<LocalizedMethodFault>("error"));
                return Err(match fault {
                    Some(f) => Error::from_fault(operation, &f.fault),
                    None => Error::Fault {
                        operation: operation.into(),
                        fault: crate::fault::Fault::Other("HttpNfcLeaseError".into()),
                        message: None,
                    },
                });
            }
            Some(HttpNfcLeaseStateEnum::Done) => {
                return Err(Error::Protocol {
                    operation: operation.into(),
                    detail: "the lease ended before any upload".into(),
                })
            }
            _ => {
                tokio::time::sleep(interval).await;
                interval = (interval * 2).min(Duration::from_secs(2));
            }
        }
    }
    let mut props = retrieve_objects(
        session,
        std::slice::from_ref(lease),
        &[Wanted {
            type_name: "HttpNfcLease",
            paths: &["info"],
        }],
    )
    .await?;
    props
        .first_mut()
        .and_then(|p| p.take::<HttpNfcLeaseInfo>("info"))
        .ok_or_else(|| Error::Protocol {
            operation: operation.into(),
            detail: "the ready lease has no info".into(),
        })
}

/// Report progress (0–100); also keeps the lease from timing out.
pub async fn report_progress(
    session: &Session,
    lease: &ManagedObjectReference,
    percent: i32,
) -> Result<()> {
    vim_rs::mo::HttpNfcLease::new(session.client(), &lease.value)
        .http_nfc_lease_progress(percent.clamp(0, 100))
        .await
        .map_err(|e| Error::from_client("reporting import progress", e))
}

/// Complete the lease: the VM is final.
pub async fn complete(session: &Session, lease: &ManagedObjectReference) -> Result<()> {
    vim_rs::mo::HttpNfcLease::new(session.client(), &lease.value)
        .http_nfc_lease_complete()
        .await
        .map_err(|e| Error::from_client("completing the import lease", e))
}

/// Abort the lease (vCenter then discards what was uploaded). A lease that
/// is already gone counts as aborted.
pub async fn abort(session: &Session, lease: &ManagedObjectReference) -> Result<()> {
    match vim_rs::mo::HttpNfcLease::new(session.client(), &lease.value)
        .http_nfc_lease_abort(None)
        .await
        .map_err(|e| Error::from_client("aborting the import lease", e))
    {
        Err(e) if e.is(&crate::fault::Fault::ManagedObjectNotFound) => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_hosts_become_the_server_host() {
        assert_eq!(
            replace_wildcard_host("https://*/nfc/52a/disk-0.vmdk", "127.0.0.1", 34567),
            "https://127.0.0.1:34567/nfc/52a/disk-0.vmdk"
        );
        assert_eq!(
            replace_wildcard_host("https://*/nfc/x", "vc.example", 443),
            "https://vc.example/nfc/x"
        );
        assert_eq!(
            replace_wildcard_host("https://*:8443/nfc/x", "::1", 443),
            "https://[::1]:8443/nfc/x"
        );
        assert_eq!(
            replace_wildcard_host("https://esx1.example/nfc/x", "vc", 443),
            "https://esx1.example/nfc/x"
        );
    }
}
