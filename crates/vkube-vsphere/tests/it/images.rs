//! Image uploads: the byte stream against a local HTTP endpoint (the
//! simulator discards uploaded bytes, so what is sent is checked here), and
//! the lease life cycle against the simulator.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use vkube_core::images::{Algorithm, FileDigest, SingleDiskOvf};
use vkube_test_support::Simulator;
use vkube_vsphere::images::stream::{send, Upload};
use vkube_vsphere::images::{self, ByteReader, Finish, ImportTarget, TransferProgress};
use vkube_vsphere::{DatastoreId, FolderId, Inventory, NetworkId, ResourcePoolId};

use crate::support::connect;

/// What the endpoint saw of one request.
#[derive(Debug, Clone, Default)]
struct Seen {
    method: String,
    headers: BTreeMap<String, String>,
    received: u64,
    sha256: String,
}

/// An HTTP/1.1 endpoint on 127.0.0.1 that takes one upload, hashes the body
/// and answers `status`; with `stop_after`, it stops reading there and waits
/// for the client to go away.
async fn endpoint(status: u16, stop_after: Option<u64>) -> (String, tokio::task::JoinHandle<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/nfc/lease-1/disk-0.vmdk",
        listener.local_addr().unwrap()
    );
    let handle = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if socket.read_exact(&mut byte).await.is_err() {
                return Seen::default();
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let mut lines = head.lines();
        let method = lines.next().unwrap().split(' ').next().unwrap().to_string();
        let headers: BTreeMap<String, String> = lines
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect();
        let length: u64 = headers["content-length"].parse().unwrap();
        let limit = stop_after.unwrap_or(length).min(length);
        let mut hasher = Sha256::new();
        let mut received = 0u64;
        let mut buffer = vec![0u8; 64 * 1024];
        while received < limit {
            let want = buffer.len().min((limit - received) as usize);
            match socket.read(&mut buffer[..want]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    hasher.update(&buffer[..n]);
                    received += n as u64;
                }
            }
        }
        if stop_after.is_some() {
            // Read no more; the client's cancellation closes the connection.
            let mut rest = Vec::new();
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(3),
                socket.read_to_end(&mut rest),
            )
            .await;
        } else {
            let reply = format!(
                "HTTP/1.1 {status} X\r\ncontent-length: 4\r\nconnection: close\r\n\r\nnope"
            );
            let _ = socket.write_all(reply.as_bytes()).await;
        }
        Seen {
            method,
            headers,
            received,
            sha256: hasher
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        }
    });
    (url, handle)
}

#[derive(Default)]
struct Counted {
    bytes: AtomicU64,
    calls: AtomicU64,
    notes: Mutex<Vec<String>>,
}

impl TransferProgress for Counted {
    fn begin(&self, _: &str, _: u64) {}
    fn advance(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
    }
    fn note(&self, message: &str) {
        self.notes.lock().unwrap().push(message.to_string());
    }
}

/// A file of `len` pseudo-random bytes and its SHA-256.
fn sample_file(dir: &Path, len: usize) -> (std::path::PathBuf, String) {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let path = dir.join("disk-0.vmdk");
    std::fs::write(&path, &data).unwrap();
    let sha = Sha256::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (path, sha)
}

#[tokio::test]
async fn uploads_send_every_byte_once_with_progress_and_digests() {
    let dir = tempfile::tempdir().unwrap();
    let size = 3 * 1024 * 1024 + 17;
    let (path, sha) = sample_file(dir.path(), size);
    for disk in [true, false] {
        let (url, server) = endpoint(200, None).await;
        let mut reader = ByteReader::open_file(&path).await.unwrap();
        let mut digest = FileDigest::default();
        let progress = Counted::default();
        let upload = Upload {
            url,
            size: size as u64,
            disk,
            label: "disk-0.vmdk".into(),
        };
        send(
            &reqwest::Client::new(),
            &upload,
            &mut reader,
            &mut digest,
            &progress,
        )
        .await
        .unwrap();
        let seen = server.await.unwrap();
        assert_eq!(seen.received, size as u64);
        assert_eq!(seen.sha256, sha, "the endpoint got other bytes");
        assert_eq!(seen.headers["content-length"], size.to_string());
        if disk {
            assert_eq!(seen.method, "POST");
            assert_eq!(
                seen.headers["content-type"],
                "application/x-vnd.vmware-streamVmdk"
            );
        } else {
            assert_eq!(seen.method, "PUT");
            assert_eq!(seen.headers["overwrite"], "t");
        }
        assert_eq!(digest.hex(Algorithm::Sha256), sha);
        assert_eq!(progress.bytes.load(Ordering::Relaxed), size as u64);
        assert!(
            progress.calls.load(Ordering::Relaxed) >= 3,
            "progress came in chunks"
        );
        assert_eq!(reader.sha256(), sha);
    }
}

#[tokio::test]
async fn uploads_stop_when_cancelled_and_report_server_errors() {
    let dir = tempfile::tempdir().unwrap();
    let size = 16 * 1024 * 1024;
    let (path, _) = sample_file(dir.path(), size);

    // Cancelled once 1 MiB has gone out: the endpoint sees a short body.
    let (url, server) = endpoint(200, Some(2 * 1024 * 1024)).await;
    let progress = Arc::new(Counted::default());
    let mut reader = ByteReader::open_file(&path).await.unwrap();
    let mut digest = FileDigest::default();
    let upload = Upload {
        url,
        size: size as u64,
        disk: true,
        label: "disk-0.vmdk".into(),
    };
    let watcher = progress.clone();
    let cancel = async move {
        while watcher.bytes.load(Ordering::Relaxed) < 1024 * 1024 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    };
    let client = reqwest::Client::new();
    let outcome = tokio::select! {
        r = send(&client, &upload, &mut reader, &mut digest, progress.as_ref()) => Some(r),
        () = cancel => None,
    };
    assert!(
        outcome.is_none(),
        "the upload finished despite the cancellation"
    );
    let seen = server.await.unwrap();
    assert!(
        seen.received < size as u64,
        "{} bytes arrived",
        seen.received
    );
    assert!(progress.bytes.load(Ordering::Relaxed) < size as u64);

    // A server that refuses: the error names the file and the status.
    let (url, server) = endpoint(500, None).await;
    let mut reader = ByteReader::open_file(&path).await.unwrap();
    let err = send(
        &client,
        &Upload {
            url,
            ..upload.clone()
        },
        &mut reader,
        &mut FileDigest::default(),
        &Counted::default(),
    )
    .await
    .unwrap_err()
    .to_string();
    server.await.unwrap();
    assert!(err.contains("disk-0.vmdk") && err.contains("500"), "{err}");

    // A source shorter than announced fails instead of hanging.
    let (url, _server) = endpoint(200, None).await;
    let mut reader = ByteReader::open_file(&path).await.unwrap();
    let err = send(
        &client,
        &Upload {
            url,
            size: size as u64 + 10,
            ..upload.clone()
        },
        &mut reader,
        &mut FileDigest::default(),
        &Counted::default(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("ends early"), "{err}");
}

/// A generated single-disk package in `dir`, as `image import` builds for disks.
fn package_dir(dir: &Path) -> std::path::PathBuf {
    let (disk, _) = sample_file(dir, 200_000);
    let size = std::fs::metadata(&disk).unwrap().len();
    let ovf = SingleDiskOvf {
        name: "lease-test".into(),
        disk_file: "disk-0.vmdk".into(),
        disk_file_size: size,
        capacity_bytes: 1 << 30,
        cpus: 2,
        memory_mib: 2048,
        hardware_version: 15,
        guest_id: "ubuntu64Guest".into(),
        annotation: "test".into(),
    }
    .render()
    .unwrap();
    let path = dir.join("lease-test.ovf");
    std::fs::write(&path, ovf).unwrap();
    path
}

fn target(inventory: &Inventory, name: &str) -> ImportTarget {
    let entity = |path: &str| inventory.resolve(path, "x").unwrap();
    ImportTarget {
        name: name.into(),
        folder: FolderId::of(entity("/DC0/vm")).unwrap(),
        pool: ResourcePoolId::of(entity("/DC0/host/DC0_C0/Resources")).unwrap(),
        datastore: DatastoreId::of(entity("/DC0/datastore/LocalDS_0")).unwrap(),
        host: None,
        networks: vec![(
            "nic0".into(),
            NetworkId::of(entity("/DC0/network/VM Network")).unwrap(),
        )],
        properties: Vec::new(),
    }
}

#[tokio::test]
async fn leases_complete_into_a_vm_or_abort_leaving_none() {
    let sim = Simulator::start_default();
    let session = connect(&sim).await;
    let dir = tempfile::tempdir().unwrap();
    let descriptor = package_dir(dir.path());
    let inventory = Inventory::load(&session).await.unwrap();

    // Cancelled at once: the lease is aborted and the VM removed.
    let package = images::open_directory(&descriptor).await.unwrap();
    let progress = Counted::default();
    let err = images::import(
        &session,
        &target(&inventory, "aborted"),
        package,
        &Finish::default(),
        None,
        &progress,
        async {},
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("interrupted"), "{err}");
    assert!(progress
        .notes
        .lock()
        .unwrap()
        .iter()
        .any(|n| n.contains("partial VM was removed")));
    let after = Inventory::load(&session).await.unwrap();
    assert!(
        after.resolve("/DC0/vm/aborted", "VM").is_err(),
        "the partial VM is still there"
    );

    // Completed: the VM exists with the record, the flag and the snapshot.
    let package = images::open_directory(&descriptor).await.unwrap();
    let finish = Finish {
        record: vkube_core::images::ImageRecord {
            kubernetes_version: Some("v1.30.2".into()),
            sha256: Some("ab".repeat(32)),
            ..Default::default()
        },
        snapshot: true,
        template: true,
    };
    let imported = images::import(
        &session,
        &target(&inventory, "completed"),
        package,
        &finish,
        None,
        &Counted::default(),
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(imported.uploaded_bytes, 200_000);
    assert_eq!(imported.files, ["disk-0.vmdk"]);
    let after = Inventory::load(&session).await.unwrap();
    let facts = vkube_vsphere::VspherePort::template_facts(&session, &after, &imported.vm)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(facts.path, "/DC0/vm/completed");
    assert!(facts.template && facts.disk_uuid_enabled);
    assert_eq!(facts.snapshot.as_deref(), Some(images::BASE_SNAPSHOT));
    assert_eq!(facts.hardware_version, Some(15));
    assert_eq!(facts.nics, [vkube_core::images::NicKind::Vmxnet3]);
    assert_eq!(facts.record.kubernetes_version.as_deref(), Some("v1.30.2"));
    // Both leases are gone (completed, aborted): the simulator drops them.
    session.close().await;
}
