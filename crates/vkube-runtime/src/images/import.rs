//! `image import`: from SOURCE to a finished template. Everything that can
//! be checked is checked before vCenter changes: the source exists and
//! reads (a local OVA is verified against its manifest in full), the
//! target paths resolve, the descriptor validates against the target, and
//! an image of the same name is compared by checksum (the same one is
//! reported, another refused unless replacing).

use std::future::Future;

use futures::FutureExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use vkube_core::images::{
    displayable_source, guest_id, parse_sha256, FileDigest, ImageOs, ImageRecord, OvfDescriptor,
    Sha256Stream, SingleDiskOvf, Source, TemplateFacts,
};
use vkube_vsphere::images::package::image_error;
use vkube_vsphere::images::{
    open_directory, open_ova, verify_ova, ByteReader, Finish, ImagePort, ImportTarget, Package,
    TransferProgress,
};
use vkube_vsphere::{
    DatastoreId, Details, Entity, Error, FolderId, Inventory, NetworkId, ResourcePoolId, Result,
    VmId,
};

use super::convert;

/// What to import, where, and how.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    /// `.ova`/`.ovf` file, `http(s)://` URL of an OVA, or a `.qcow2`/`.raw`/`.img`/`.vmdk` disk.
    pub source: String,
    /// Name of the new VM or template.
    pub name: String,
    /// Datastore (absolute inventory path).
    pub datastore: String,
    /// VM folder (absolute inventory path).
    pub folder: String,
    /// Resource pool; by default the root pool of a compute resource that mounts the datastore.
    pub pool: Option<String>,
    /// Network every OVF network is mapped to; unmapped, vCenter picks by name.
    pub network: Option<String>,
    /// Mark the result as a template.
    pub template: bool,
    /// Take a snapshot (for linked clones).
    pub snapshot: bool,
    /// OVF property values.
    pub properties: Vec<(String, String)>,
    /// Replace an image of the same name with another checksum.
    pub replace: bool,
    /// Expected SHA-256 of the source.
    pub sha256: Option<String>,
    /// OS family, when the descriptor does not tell (disk images).
    pub os: Option<ImageOs>,
    /// Kubernetes version, when the descriptor does not tell.
    pub kubernetes_version: Option<String>,
    /// vCPUs of a disk image's VM.
    pub cpus: u32,
    /// Memory (MiB) of a disk image's VM.
    pub memory_mib: u64,
    /// Hardware version of a disk image's VM.
    pub hardware_version: u32,
    /// Where disk conversions happen.
    pub scratch_dir: PathBuf,
    /// The caller's clock, RFC 3339.
    pub imported_at: String,
    /// Check everything, change nothing.
    pub dry_run: bool,
    /// Connect timeout for URL sources.
    pub connect_timeout: Duration,
}

/// How an import ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ImportStatus {
    /// A new image.
    Imported,
    /// An image of the same name with another checksum was replaced.
    Replaced,
    /// The same image (name and checksum) exists: nothing done.
    AlreadyPresent,
    /// Dry run: it would be imported.
    WouldImport,
    /// Dry run: it would replace the existing image.
    WouldReplace,
}

/// What `image import` reports.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    /// Outcome.
    pub status: ImportStatus,
    /// Image name.
    pub name: String,
    /// Inventory path.
    pub path: String,
    /// Managed object id (none in a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// How the source was read.
    pub source_kind: &'static str,
    /// The record on the image.
    pub record: ImageRecord,
    /// Bytes uploaded.
    pub uploaded_bytes: u64,
    /// Files uploaded.
    pub files: Vec<String>,
    /// Whether it is a template.
    pub template: bool,
    /// Whether it has a snapshot.
    pub snapshot: bool,
    /// vCenter's warnings about the descriptor.
    pub warnings: Vec<String>,
}

struct Resolved {
    target: ImportTarget,
    existing: Option<VmId>,
    path: String,
}

fn resolve_as<'a>(
    inventory: &'a Inventory,
    path: &str,
    kind: &str,
    accept: impl Fn(&Details) -> bool,
) -> Result<&'a Entity> {
    let entity = inventory.resolve(path, kind)?;
    if accept(&entity.details) {
        Ok(entity)
    } else {
        Err(Error::Invalid(format!(
            "`{path}` is a {}, not a {kind}",
            entity.type_name
        )))
    }
}

/// The root pool of a compute resource with a host that mounts `datastore`.
fn default_pool<'a>(inventory: &'a Inventory, datastore: &Entity) -> Result<&'a Entity> {
    let Details::Datastore { hosts, .. } = &datastore.details else {
        unreachable!("resolved as a datastore")
    };
    hosts
        .iter()
        .filter_map(|h| inventory.get(h)?.parent.clone())
        .find_map(|compute| {
            inventory.children(&compute).into_iter().find(
                |c| matches!(&c.details, Details::ResourcePool { owner: Some(o) } if *o == compute),
            )
        })
        .ok_or_else(|| {
            Error::Invalid(format!(
                "no host mounts `{}`; name a resource pool with `--pool`",
                datastore.path
            ))
        })
}

fn resolve_target(
    inventory: &Inventory,
    request: &ImportRequest,
    name: &str,
    descriptor: &OvfDescriptor,
) -> Result<Resolved> {
    let datastore = resolve_as(inventory, &request.datastore, "datastore", |d| {
        matches!(d, Details::Datastore { .. })
    })?;
    let folder = resolve_as(
        inventory,
        &request.folder,
        "VM folder",
        |d| matches!(d, Details::Folder { child_types } if child_types.iter().any(|t| t == "VirtualMachine")),
    )?;
    let pool = match &request.pool {
        Some(path) => resolve_as(inventory, path, "resource pool", |d| {
            matches!(d, Details::ResourcePool { .. })
        })?,
        None => default_pool(inventory, datastore)?,
    };
    let mut networks = Vec::new();
    if let Some(path) = &request.network {
        let network = resolve_as(inventory, path, "network", |d| {
            matches!(d, Details::Network { .. })
        })?;
        let mut names: Vec<String> = descriptor.networks.iter().map(|n| n.name.clone()).collect();
        names.extend(descriptor.nics.iter().filter_map(|n| n.connection.clone()));
        names.sort();
        names.dedup();
        networks = names
            .into_iter()
            .map(|n| (n, id_of(network, NetworkId::of)))
            .collect();
    }
    for (key, _) in &request.properties {
        if descriptor.property(key).is_none() {
            let known: Vec<&str> = descriptor.properties().map(|p| p.key.as_str()).collect();
            return Err(Error::Invalid(format!(
                "the image has no property `{key}`{}",
                if known.is_empty() {
                    String::new()
                } else {
                    format!(" (it has {})", known.join(", "))
                }
            )));
        }
    }
    let path = format!("{}/{name}", folder.path.trim_end_matches('/'));
    let existing = match inventory.resolve(&path, "VM") {
        Ok(e) if matches!(e.details, Details::VirtualMachine { .. }) => Some(id_of(e, VmId::of)),
        Ok(e) => {
            return Err(Error::Invalid(format!(
                "`{path}` exists and is a {}",
                e.type_name
            )))
        }
        Err(_) => None,
    };
    Ok(Resolved {
        target: ImportTarget {
            name: name.to_string(),
            folder: id_of(folder, FolderId::of),
            pool: id_of(pool, ResourcePoolId::of),
            datastore: id_of(datastore, DatastoreId::of),
            host: None,
            networks,
            properties: request.properties.clone(),
        },
        existing,
        path,
    })
}

async fn hash_file(path: &Path, progress: &dyn TransferProgress) -> Result<String> {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    progress.begin(&format!("hashing {}", path.display()), size);
    let mut reader = ByteReader::open_file(path).await?;
    while let Some(chunk) = reader.chunk(u64::MAX).await? {
        progress.advance(chunk.len() as u64);
    }
    Ok(reader.sha256())
}

/// Files next to a loose `.ovf`, checked against its manifest before import.
async fn verify_directory(package: &Package, descriptor: &OvfDescriptor, dir: &Path) -> Result<()> {
    let Some(manifest) = &package.manifest else {
        return Ok(());
    };
    let mut digest = FileDigest::default();
    digest.update(package.descriptor.as_bytes());
    manifest
        .verify(&package.descriptor_name, &digest)
        .map_err(image_error)?;
    for file in &descriptor.files {
        let mut reader = ByteReader::open_file(&dir.join(&file.href)).await?;
        let mut digest = FileDigest::default();
        while let Some(chunk) = reader.chunk(u64::MAX).await? {
            digest.update(&chunk);
        }
        manifest.verify(&file.href, &digest).map_err(image_error)?;
    }
    Ok(())
}

/// A package opened for import, with what is known about the source.
struct Opened {
    package: Package,
    /// SHA-256 of the source, when known before the upload.
    sha256: Option<String>,
    kind: &'static str,
    /// Kept alive until the upload is done (a converted disk's scratch dir).
    _scratch: Option<convert::Converted>,
}

fn local_path(source: &Source) -> Option<&str> {
    match source {
        Source::Ova { path } | Source::Ovf { path } | Source::Disk { path, .. } => Some(path),
        Source::Url { .. } => None,
    }
}

fn os_from_name(source: &str) -> ImageOs {
    let file = source.rsplit('/').next().unwrap_or(source);
    ImageOs::from_hints(&[file])
}

async fn open_source(
    source: &Source,
    request: &ImportRequest,
    progress: &dyn TransferProgress,
) -> Result<Opened> {
    match source {
        Source::Ova { path } => {
            let verified = verify_ova(Path::new(path), progress).await?;
            progress.note(&format!(
                "{path}: {} file(s){}, SHA-256 {}",
                verified.files.len(),
                if verified.manifest {
                    ", all match the manifest"
                } else {
                    ", no manifest"
                },
                verified.sha256
            ));
            Ok(Opened {
                package: open_ova(ByteReader::open_file(Path::new(path)).await?).await?,
                sha256: Some(verified.sha256),
                kind: kind_of(source),
                _scratch: None,
            })
        }
        Source::Ovf { path } => {
            let package = open_directory(Path::new(path)).await?;
            let descriptor = OvfDescriptor::parse(&package.descriptor).map_err(image_error)?;
            let dir = Path::new(path).parent().unwrap_or(Path::new("."));
            verify_directory(&package, &descriptor, dir).await?;
            let mut sha = Sha256Stream::default();
            sha.update(package.descriptor.as_bytes());
            Ok(Opened {
                package,
                sha256: Some(sha.hex()),
                kind: kind_of(source),
                _scratch: None,
            })
        }
        Source::Disk { path, format } => {
            let sha256 = hash_file(Path::new(path), progress).await?;
            progress.note(&format!("converting {path} with {}", convert::QEMU_IMG));
            let disk_file = format!("{}-disk-0.vmdk", request.name);
            let converted =
                convert::to_stream_vmdk(Path::new(path), *format, &request.scratch_dir, &disk_file)
                    .await?;
            let os = request.os.unwrap_or_else(|| os_from_name(path));
            let ovf = SingleDiskOvf {
                name: request.name.clone(),
                disk_file,
                disk_file_size: converted.size,
                capacity_bytes: converted.capacity,
                cpus: request.cpus,
                memory_mib: request.memory_mib,
                hardware_version: request.hardware_version,
                guest_id: guest_id(os).to_string(),
                annotation: format!("Converted from {} by vkube", displayable_source(path)),
            }
            .render()
            .map_err(image_error)?;
            let descriptor_path = converted.dir.join(format!("{}.ovf", request.name));
            std::fs::write(&descriptor_path, ovf)
                .map_err(|e| Error::Invalid(format!("cannot write the descriptor: {e}")))?;
            Ok(Opened {
                package: open_directory(&descriptor_path).await?,
                sha256: Some(sha256),
                kind: kind_of(source),
                _scratch: Some(converted),
            })
        }
        Source::Url { url } => {
            let client = vkube_vsphere::images::source_client(request.connect_timeout)?;
            let shown = displayable_source(url);
            let reader = ByteReader::open_url(&client, url, &shown).await?;
            Ok(Opened {
                package: open_ova(reader).await?,
                sha256: request.sha256.clone(),
                kind: kind_of(source),
                _scratch: None,
            })
        }
    }
}

/// SHA-256 of a URL's content, read without uploading (to compare with an
/// existing image when no `--sha256` was given).
async fn hash_url(
    request: &ImportRequest,
    url: &str,
    progress: &dyn TransferProgress,
) -> Result<String> {
    let client = vkube_vsphere::images::source_client(request.connect_timeout)?;
    let shown = displayable_source(url);
    progress.begin(
        &format!("hashing {shown} to compare with the existing image"),
        0,
    );
    let mut reader = ByteReader::open_url(&client, url, &shown).await?;
    while let Some(chunk) = reader.chunk(u64::MAX).await? {
        progress.advance(chunk.len() as u64);
    }
    Ok(reader.sha256())
}

fn record_for(
    request: &ImportRequest,
    source: &Source,
    descriptor: &OvfDescriptor,
    sha256: Option<String>,
) -> ImageRecord {
    let described = descriptor.os();
    let os = request.os.or(match (source, described) {
        (Source::Disk { path, .. }, _) => Some(os_from_name(path)),
        (_, os) => Some(os),
    });
    let product = descriptor.products.iter().find_map(|p| {
        let name = p.product.as_deref()?;
        Some(match &p.version {
            Some(v) if !name.contains(v.as_str()) => format!("{name} {v}"),
            _ => name.to_string(),
        })
    });
    ImageRecord {
        os,
        kubernetes_version: request
            .kubernetes_version
            .clone()
            .or_else(|| descriptor.kubernetes_version()),
        source: Some(displayable_source(&request.source)),
        sha256,
        product,
        imported_at: Some(request.imported_at.clone()),
    }
}

/// Import an image; see the module docs for what is checked first.
/// `cancel` resolving stops the upload and removes the partial VM.
pub async fn import(
    images: &dyn ImagePort,
    request: &ImportRequest,
    progress: &dyn TransferProgress,
    cancel: impl Future<Output = ()>,
) -> Result<ImportReport> {
    // Hashing, verifying and converting are interruptible too.
    let cancel = cancel.shared();
    let interrupted = || Error::Invalid("the import was interrupted".into());
    let source = Source::classify(&request.source).map_err(image_error)?;
    if let Some(path) = local_path(&source) {
        if !Path::new(path).exists() {
            return Err(Error::Invalid(format!("`{path}` does not exist")));
        }
    }
    let expected = request
        .sha256
        .as_deref()
        .map(parse_sha256)
        .transpose()
        .map_err(image_error)?;
    let request = &ImportRequest {
        sha256: expected.clone(),
        ..request.clone()
    };
    let inventory = images.inventory().await?;
    // Target paths first: a typo in --datastore should not cost a verification pass.
    let probe = resolve_target(
        &inventory,
        &ImportRequest {
            properties: Vec::new(),
            network: None,
            ..request.clone()
        },
        &request.name,
        &OvfDescriptor::default(),
    )?;
    let existing = match &probe.existing {
        Some(vm) => images.template_facts(&inventory, vm).await?,
        None => None,
    };
    if let (Some(facts), Source::Url { url }) = (&existing, &source) {
        // Without --sha256 the stream is read once to compare it.
        let sha = match expected.clone() {
            Some(sha) => Some(sha),
            None if facts.record.sha256.is_some() => Some(tokio::select! {
                sha = hash_url(request, url, progress) => sha?,
                () = cancel.clone() => return Err(interrupted()),
            }),
            None => None,
        };
        if sha.is_some() && facts.record.sha256 == sha {
            return Ok(present(request, &probe, facts, &source));
        }
    }
    let opened = tokio::select! {
        opened = open_source(&source, request, progress) => opened?,
        () = cancel.clone() => return Err(interrupted()),
    };
    if let (Some(expected), Some(actual)) = (&expected, &opened.sha256) {
        if opened.kind != "url" && expected != actual {
            return Err(image_error(
                vkube_core::images::ImageError::ChecksumMismatch {
                    file: request.source.clone(),
                    algorithm: "SHA256",
                    expected: expected.clone(),
                    actual: actual.clone(),
                },
            ));
        }
    }
    let descriptor = OvfDescriptor::parse(&opened.package.descriptor).map_err(image_error)?;
    let resolved = resolve_target(&inventory, request, &request.name, &descriptor)?;
    let record = record_for(request, &source, &descriptor, opened.sha256.clone());
    let replacing = match &existing {
        None => false,
        Some(facts) => {
            let existing = &facts.record;
            let same = existing.sha256.is_some() && existing.sha256 == record.sha256;
            if same {
                return Ok(present(request, &resolved, facts, &source));
            }
            if !request.replace {
                return Err(Error::Invalid(match &existing.sha256 {
                    Some(sha) => format!(
                        "`{}` exists with another image (SHA-256 {sha}); pass `--replace` to replace it",
                        resolved.path
                    ),
                    None => format!(
                        "`{}` exists and was not imported by vkube; pass `--replace` to replace it",
                        resolved.path
                    ),
                }));
            }
            true
        }
    };
    // The descriptor is validated against the target even in a dry run.
    let mut target = resolved.target.clone();
    if replacing {
        target.name = format!("{}.vkube-new", request.name);
    }
    let spec = images
        .import_spec(&opened.package.descriptor, &target)
        .await?;
    if request.dry_run {
        return Ok(ImportReport {
            status: if replacing {
                ImportStatus::WouldReplace
            } else {
                ImportStatus::WouldImport
            },
            name: request.name.clone(),
            path: resolved.path,
            id: None,
            source_kind: opened.kind,
            record,
            uploaded_bytes: 0,
            files: spec.files.iter().map(|f| f.path.clone()).collect(),
            template: request.template,
            snapshot: request.snapshot,
            warnings: spec.warnings,
        });
    }
    let finish = Finish {
        record,
        snapshot: request.snapshot,
        template: request.template,
    };
    let imported = images
        .import(
            &target,
            opened.package,
            &finish,
            expected.as_deref(),
            progress,
            Box::pin(cancel),
        )
        .await?;
    if replacing {
        if let Some(old) = &resolved.existing {
            images.destroy_vm(old).await?;
        }
        images.rename(&imported.vm, &request.name).await?;
    }
    Ok(ImportReport {
        status: if replacing {
            ImportStatus::Replaced
        } else {
            ImportStatus::Imported
        },
        name: request.name.clone(),
        path: resolved.path,
        id: Some(imported.vm.id().to_string()),
        source_kind: opened.kind,
        record: imported.record,
        uploaded_bytes: imported.uploaded_bytes,
        files: imported.files,
        template: request.template,
        snapshot: request.snapshot,
        warnings: imported.warnings,
    })
}

fn kind_of(source: &Source) -> &'static str {
    match source {
        Source::Url { .. } => "url",
        Source::Ova { .. } => "ova",
        Source::Ovf { .. } => "ovf",
        Source::Disk { .. } => "disk",
    }
}

fn present(
    request: &ImportRequest,
    resolved: &Resolved,
    existing: &TemplateFacts,
    source: &Source,
) -> ImportReport {
    ImportReport {
        status: ImportStatus::AlreadyPresent,
        name: request.name.clone(),
        path: resolved.path.clone(),
        id: resolved.existing.as_ref().map(|e| e.id().to_string()),
        source_kind: kind_of(source),
        record: existing.record.clone(),
        uploaded_bytes: 0,
        files: Vec::new(),
        template: existing.template,
        snapshot: existing.snapshot.is_some(),
        warnings: Vec::new(),
    }
}

/// The typed id of an entity `resolve_as` checked the kind of.
fn id_of<T>(entity: &Entity, of: impl Fn(&Entity) -> Option<T>) -> T {
    of(entity).expect("resolve_as checked the kind")
}
