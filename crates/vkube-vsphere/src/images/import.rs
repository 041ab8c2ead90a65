//! One import, start to finish: validate the descriptor against the
//! target, create the VM and its lease, upload every file the import spec
//! asks for (checked against the manifest as it passes), complete the
//! lease, then make the VM what clusters need (record, `disk.enableUUID`,
//! snapshot, template flag). Any failure or cancellation before the end
//! aborts the lease and removes the VM: an import leaves a finished image
//! or nothing.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use vim_rs::types::structs::ManagedObjectReference;
use vkube_core::images::{FileDigest, ImageError, ImageRecord, Manifest, OvfDescriptor};

use super::lease::{self, DeviceUrl, FileItem, ImportTarget, Lease};
use super::package::{image_error, Body, Package, TarStream};
use super::prepare;
use super::stream::{self, ByteReader, TransferProgress, Upload};
use crate::error::{Error, Result};
use crate::session::Session;
use crate::tls::{self, Thumbprint, TlsPolicy};

/// How often the lease hears about progress (vCenter times a lease out
/// after five minutes without).
const LEASE_PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// Name of the snapshot an import takes for linked clones.
pub const BASE_SNAPSHOT: &str = "vkube-base";

/// What happens to the VM once its files are in.
#[derive(Debug, Clone, Default)]
pub struct Finish {
    /// The record to keep on the VM. A missing `sha256` is filled with the
    /// SHA-256 of the OVA stream when the whole stream was read.
    pub record: ImageRecord,
    /// Take a snapshot (linked clones need one).
    pub snapshot: bool,
    /// Mark it as a template.
    pub template: bool,
}

/// What an import did.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The new VM or template.
    pub vm: crate::ids::VmId,
    /// Bytes uploaded.
    pub uploaded_bytes: u64,
    /// The record written.
    pub record: ImageRecord,
    /// Files uploaded.
    pub files: Vec<String>,
    /// vCenter's warnings about the descriptor.
    pub warnings: Vec<String>,
}

/// Counts what passes, for the lease's progress reports.
struct Counting<'a> {
    inner: &'a dyn TransferProgress,
    sent: AtomicU64,
}

impl TransferProgress for Counting<'_> {
    fn begin(&self, label: &str, total: u64) {
        self.inner.begin(label, total);
    }

    fn advance(&self, bytes: u64) {
        self.sent.fetch_add(bytes, Ordering::Relaxed);
        self.inner.advance(bytes);
    }

    fn note(&self, message: &str) {
        self.inner.note(message);
    }
}

/// Clients for upload URLs: a host vCenter names a thumbprint for is pinned
/// to it, others get the session's trust.
struct Uploaders {
    policy: TlsPolicy,
    timeout: Duration,
    clients: HashMap<Option<String>, reqwest::Client>,
}

impl Uploaders {
    fn client(&mut self, thumbprint: Option<&str>) -> Result<&reqwest::Client> {
        let key = thumbprint.map(str::to_string);
        if !self.clients.contains_key(&key) {
            let policy = match thumbprint {
                Some(t) => TlsPolicy::Pinned(Thumbprint::parse(t)?),
                None => self.policy.clone(),
            };
            let client = tls::transfer_client(&policy, self.timeout)?;
            self.clients.insert(key.clone(), client);
        }
        Ok(&self.clients[&key])
    }
}

/// Import `package` as `target`. `cancel` resolving (Ctrl-C) stops the
/// upload, aborts the lease and removes the VM. `expected_sha256`, when
/// given, must match the OVA stream.
pub async fn import(
    session: &Session,
    target: &ImportTarget,
    package: Package,
    finish: &Finish,
    expected_sha256: Option<&str>,
    progress: &dyn TransferProgress,
    cancel: impl Future<Output = ()>,
) -> Result<Imported> {
    let descriptor = OvfDescriptor::parse(&package.descriptor).map_err(image_error)?;
    let spec = lease::create_import_spec(session, &package.descriptor, target).await?;
    for warning in &spec.warnings {
        progress.note(&format!("vCenter: {warning}"));
    }
    let total: u64 = spec
        .files
        .iter()
        .map(|f| {
            f.size
                .or_else(|| descriptor.files.iter().find(|d| d.href == f.path)?.size)
                .unwrap_or(0)
        })
        .sum();
    let lease = match lease::begin_import(session, &spec, target).await {
        Ok(lease) => lease,
        Err(failure) => {
            return Err(discard(
                session,
                failure.lease.as_ref(),
                failure.vm.as_ref(),
                failure.error,
                progress,
            )
            .await)
        }
    };
    let counting = Counting {
        inner: progress,
        sent: AtomicU64::new(0),
    };
    counting.begin(&format!("uploading {}", target.name), total);
    let mut uploaders = Uploaders {
        policy: session.options().tls.clone(),
        timeout: session.options().connect_timeout,
        clients: HashMap::new(),
    };
    let transfer = upload_all(&mut uploaders, &spec.files, &lease, package, &counting);
    let keepalive = async {
        loop {
            tokio::time::sleep(LEASE_PROGRESS_EVERY).await;
            let sent = counting.sent.load(Ordering::Relaxed);
            let percent = sent
                .saturating_mul(100)
                .checked_div(total)
                .map_or(0, |p| p.min(99) as i32);
            if let Err(e) = lease::report_progress(session, &lease.lease, percent).await {
                tracing::warn!("import progress report failed: {e}");
            }
        }
    };
    let outcome = tokio::select! {
        outcome = transfer => outcome,
        () = keepalive => unreachable!("the keepalive loop never ends"),
        () = cancel => Err(Error::Invalid("the import was interrupted".into())),
    };
    let uploaded = match outcome.and_then(|u| check_stream(u, expected_sha256)) {
        Ok(uploaded) => uploaded,
        Err(error) => {
            return Err(discard(
                session,
                Some(&lease.lease),
                Some(&lease.vm),
                error,
                progress,
            )
            .await)
        }
    };
    if let Err(error) = lease::report_progress(session, &lease.lease, 100).await {
        return Err(discard(
            session,
            Some(&lease.lease),
            Some(&lease.vm),
            error,
            progress,
        )
        .await);
    }
    if let Err(error) = lease::complete(session, &lease.lease).await {
        return Err(discard(
            session,
            Some(&lease.lease),
            Some(&lease.vm),
            error,
            progress,
        )
        .await);
    }
    let mut record = finish.record.clone();
    if record.sha256.is_none() {
        record.sha256 = uploaded.stream_sha256.clone();
    }
    if let Err(error) = make_ready(session, &lease.vm, &record, finish, progress).await {
        return Err(discard(session, None, Some(&lease.vm), error, progress).await);
    }
    Ok(Imported {
        vm: crate::ids::VmId::new(lease.vm.value),
        uploaded_bytes: counting.sent.load(Ordering::Relaxed),
        record,
        files: uploaded.files,
        warnings: spec.warnings,
    })
}

/// Record, `disk.enableUUID`, snapshot, template flag — in that order, as
/// a template can no longer be reconfigured or snapshotted.
async fn make_ready(
    session: &Session,
    vm: &ManagedObjectReference,
    record: &ImageRecord,
    finish: &Finish,
    progress: &dyn TransferProgress,
) -> Result<()> {
    prepare::write_record(session, vm, record).await?;
    progress.note("disk.enableUUID on, image record written");
    if finish.snapshot {
        prepare::create_snapshot(session, vm, BASE_SNAPSHOT).await?;
        progress.note(&format!("snapshot `{BASE_SNAPSHOT}` taken"));
    }
    if finish.template {
        prepare::mark_as_template(session, vm).await?;
        progress.note("marked as template");
    }
    Ok(())
}

/// Abort the lease and remove the partial VM; returns `error`. A failed
/// clean-up is reported but does not hide the first error.
async fn discard(
    session: &Session,
    lease: Option<&ManagedObjectReference>,
    vm: Option<&ManagedObjectReference>,
    error: Error,
    progress: &dyn TransferProgress,
) -> Error {
    if let Some(lease) = lease {
        if let Err(e) = lease::abort(session, lease).await {
            tracing::warn!("aborting the import lease failed: {e}");
        }
    }
    if let Some(vm) = vm {
        match crate::vm::destroy(session, vm).await {
            Ok(()) => progress.note("the partial VM was removed"),
            Err(e) => progress.note(&format!(
                "the partial VM `{}` could not be removed, remove it by hand: {e}",
                vm.value
            )),
        }
    }
    error
}

struct Uploaded {
    files: Vec<String>,
    stream_sha256: Option<String>,
}

fn check_stream(uploaded: Uploaded, expected: Option<&str>) -> Result<Uploaded> {
    if let (Some(expected), Some(actual)) = (expected, uploaded.stream_sha256.as_deref()) {
        if expected != actual {
            return Err(image_error(ImageError::ChecksumMismatch {
                file: "the OVA".into(),
                algorithm: "SHA256",
                expected: expected.into(),
                actual: actual.into(),
            }));
        }
    }
    Ok(uploaded)
}

fn url_for<'a>(lease: &'a Lease, item: &FileItem) -> Result<&'a DeviceUrl> {
    lease
        .urls
        .iter()
        .find(|u| u.import_key == item.device_id)
        .ok_or_else(|| Error::Protocol {
            operation: "importing".into(),
            detail: format!("the lease has no upload URL for `{}`", item.path),
        })
}

async fn send_item(
    uploaders: &mut Uploaders,
    url: &DeviceUrl,
    item: &FileItem,
    size: u64,
    reader: &mut ByteReader,
    progress: &dyn TransferProgress,
) -> Result<FileDigest> {
    let client = uploaders.client(url.thumbprint.as_deref())?;
    let upload = Upload {
        url: url.url.clone(),
        size,
        disk: url.disk && !item.create,
        label: item.path.clone(),
    };
    let mut digest = FileDigest::default();
    stream::send(client, &upload, reader, &mut digest, progress).await?;
    Ok(digest)
}

async fn upload_all(
    uploaders: &mut Uploaders,
    items: &[FileItem],
    lease: &Lease,
    package: Package,
    progress: &dyn TransferProgress,
) -> Result<Uploaded> {
    match package.body {
        Body::Tar(stream) => {
            upload_tar(
                uploaders,
                items,
                lease,
                *stream,
                &package.descriptor,
                &package.descriptor_name,
                progress,
            )
            .await
        }
        Body::Directory(dir) => {
            let mut files = Vec::new();
            for item in items {
                let path = dir.join(&item.path);
                let size = tokio::fs::metadata(&path)
                    .await
                    .map(|m| m.len())
                    .map_err(|e| {
                        Error::Invalid(format!("cannot read `{}`: {e}", path.display()))
                    })?;
                let mut reader = ByteReader::open_file(&path).await?;
                let url = url_for(lease, item)?;
                let digest = send_item(uploaders, url, item, size, &mut reader, progress).await?;
                if let Some(manifest) = &package.manifest {
                    manifest.verify(&item.path, &digest).map_err(image_error)?;
                }
                files.push(item.path.clone());
            }
            Ok(Uploaded {
                files,
                stream_sha256: None,
            })
        }
    }
}

async fn upload_tar(
    uploaders: &mut Uploaders,
    items: &[FileItem],
    lease: &Lease,
    mut stream: TarStream,
    descriptor: &str,
    descriptor_name: &str,
    progress: &dyn TransferProgress,
) -> Result<Uploaded> {
    let mut manifest: Option<Manifest> = None;
    let mut digests: BTreeMap<String, FileDigest> = BTreeMap::new();
    let mut descriptor_digest = FileDigest::default();
    descriptor_digest.update(descriptor.as_bytes());
    digests.insert(descriptor_name.to_string(), descriptor_digest);
    let mut files = Vec::new();
    while let Some(entry) = stream.next_entry().await? {
        if entry.name.to_ascii_lowercase().ends_with(".mf") {
            manifest =
                Some(Manifest::parse(&stream.read_text(&entry).await?).map_err(image_error)?);
            continue;
        }
        let wanted = items
            .iter()
            .find(|i| i.path == entry.name && !files.contains(&i.path));
        let Some(item) = wanted else {
            // Not imported (a certificate, a file of another deployment option).
            continue;
        };
        let url = url_for(lease, item)?;
        let digest = send_item(uploaders, url, item, entry.size, stream.reader(), progress).await?;
        stream.consumed(entry.size);
        if let Some(manifest) = &manifest {
            manifest.verify(&entry.name, &digest).map_err(image_error)?;
        }
        digests.insert(entry.name.clone(), digest);
        files.push(item.path.clone());
    }
    let sha256 = stream.finish().await?;
    if let Some(missing) = items.iter().find(|i| !files.contains(&i.path)) {
        return Err(image_error(ImageError::CorruptArchive(format!(
            "it has no `{}`, which the descriptor references",
            missing.path
        ))));
    }
    // A manifest stored after the files is checked now, before the lease completes.
    if let Some(manifest) = &manifest {
        for (name, digest) in &digests {
            manifest.verify(name, digest).map_err(image_error)?;
        }
    }
    Ok(Uploaded {
        files,
        stream_sha256: Some(sha256),
    })
}
