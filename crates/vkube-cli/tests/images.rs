//! `vkube image`: OVAs built at test time (a descriptor with properties, a
//! streamOptimized VMDK made by qemu-img, a manifest by sha256sum, packed
//! by tar) and a qcow2, imported into the simulator from files and from a
//! local HTTP server on 127.0.0.1, read back through the vSphere API; the
//! template check and prepare; clusters refusing a template of another
//! Kubernetes version; broken sources leaving nothing behind.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::cluster_env::{ok, two_az_spec, Env};
use common::{error_lines, vkube_command, Run};
use vim_rs::types::structs::ManagedObjectReference;
use vkube_test_support::external_tool::Tool;
use vkube_test_support::{Simulator, SimulatorConfig};
use vkube_vsphere::collect::{retrieve_objects, Wanted};
use vkube_vsphere::images::facts;
use vkube_vsphere::{Inventory, Session};

const QEMU_IMG: Tool = Tool {
    program: "qemu-img",
    version_args: &["--version"],
    require_var: "VKUBE_REQUIRE_QEMU_IMG",
    install: "apt-get install -y qemu-utils",
};

fn run(program: &str, args: &[&str], dir: &Path) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sha256sum(path: &Path) -> String {
    let out = run("sha256sum", &[path.to_str().unwrap()], Path::new("."));
    out.split_whitespace().next().unwrap().to_string()
}

/// A disk image `name` of 64 MiB in `dir`, its first `fill_mib` MiB
/// pseudo-random (incompressible): qcow2, and its streamOptimized VMDK.
fn disks(dir: &Path, name: &str, fill_mib: usize) -> (PathBuf, PathBuf) {
    let raw = dir.join(format!("{name}.raw"));
    let qcow2 = dir.join(format!("{name}.qcow2"));
    let vmdk = dir.join(format!("{name}-disk1.vmdk"));
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ name.len() as u64;
    let data: Vec<u8> = (0..fill_mib << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let file = std::fs::File::create(&raw).unwrap();
    (&file).write_all(&data).unwrap();
    file.set_len(64 << 20).unwrap();
    run(
        "qemu-img",
        &[
            "convert",
            "-q",
            "-f",
            "raw",
            "-O",
            "qcow2",
            raw.to_str().unwrap(),
            qcow2.to_str().unwrap(),
        ],
        dir,
    );
    run(
        "qemu-img",
        &[
            "convert",
            "-f",
            "qcow2",
            "-O",
            "vmdk",
            "-o",
            "subformat=streamOptimized",
            qcow2.to_str().unwrap(),
            vmdk.to_str().unwrap(),
        ],
        dir,
    );
    (qcow2, vmdk)
}

/// An OVA as image-builder lays one out: descriptor, manifest, disk.
struct Ova {
    path: PathBuf,
    sha256: String,
}

fn descriptor(name: &str, disk: &str, disk_size: u64, kubernetes: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf">
  <References>
    <File ovf:id="file1" ovf:href="{disk}" ovf:size="{disk_size}"/>
  </References>
  <DiskSection>
    <Info>Virtual disks</Info>
    <Disk ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:capacity="64" ovf:capacityAllocationUnits="byte * 2^20" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <NetworkSection>
    <Info>Networks</Info>
    <Network ovf:name="nic0"><Description>The node network</Description></Network>
  </NetworkSection>
  <VirtualSystem ovf:id="{name}">
    <Info>A test node image</Info>
    <Name>{name}</Name>
    <OperatingSystemSection ovf:id="94" vmw:osType="ubuntu64Guest"><Info>Guest OS</Info></OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Hardware</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemType>vmx-15</vssd:VirtualSystemType>
      </System>
      <Item><rasd:ElementName>2 CPUs</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:ElementName>Memory</rasd:ElementName><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>2048</rasd:VirtualQuantity></Item>
      <Item><rasd:Address>0</rasd:Address><rasd:ElementName>SCSI 0</rasd:ElementName><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceSubType>VirtualSCSI</rasd:ResourceSubType><rasd:ResourceType>6</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:ElementName>Disk 1</rasd:ElementName><rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource><rasd:InstanceID>4</rasd:InstanceID><rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>7</rasd:AddressOnParent><rasd:Connection>nic0</rasd:Connection><rasd:ElementName>NIC 1</rasd:ElementName><rasd:InstanceID>5</rasd:InstanceID><rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType><rasd:ResourceType>10</rasd:ResourceType></Item>
    </VirtualHardwareSection>
    <ProductSection>
      <Info>Installed software</Info>
      <Product>Ubuntu 22.04 and Kubernetes {kubernetes}</Product>
      <Version>kube-{kubernetes}</Version>
      <Property ovf:userConfigurable="false" ovf:value="{kubernetes}" ovf:type="string" ovf:key="KUBERNETES_SEMVER"/>
      <Property ovf:userConfigurable="true" ovf:value="" ovf:type="string" ovf:key="guestinfo.hostname"/>
    </ProductSection>
  </VirtualSystem>
</Envelope>
"#
    )
}

/// Build `dir/<stem>.ova`; with `bad_manifest`, the manifest's disk digest
/// is wrong; `fill_mib` MiB of the disk hold data.
fn build_ova(dir: &Path, stem: &str, kubernetes: &str, bad_manifest: bool, fill_mib: usize) -> Ova {
    let work = dir.join(format!("{stem}.d"));
    std::fs::create_dir_all(&work).unwrap();
    let (_, vmdk) = disks(&work, stem, fill_mib);
    let disk = vmdk.file_name().unwrap().to_str().unwrap().to_string();
    let ovf = format!("{stem}.ovf");
    let size = std::fs::metadata(&vmdk).unwrap().len();
    std::fs::write(work.join(&ovf), descriptor(stem, &disk, size, kubernetes)).unwrap();
    let mut disk_sha = sha256sum(&vmdk);
    if bad_manifest {
        disk_sha = disk_sha.chars().rev().collect();
    }
    let manifest = format!(
        "SHA256({ovf})= {}\nSHA256({disk})= {disk_sha}\n",
        sha256sum(&work.join(&ovf))
    );
    std::fs::write(work.join(format!("{stem}.mf")), manifest).unwrap();
    let path = dir.join(format!("{stem}.ova"));
    run(
        "tar",
        &[
            "--format=ustar",
            "-cf",
            path.to_str().unwrap(),
            &ovf,
            &format!("{stem}.mf"),
            &disk,
        ],
        &work,
    );
    Ova {
        sha256: sha256sum(&path),
        path,
    }
}

/// Serves the files of `dir` over HTTP on 127.0.0.1 (one request per
/// connection); with `slow`, bodies trickle out in 64 KiB pieces. Requests
/// in a proxy's absolute form (`GET http://host/file`) are served too, and
/// counted in `proxied`.
fn serve(dir: &Path, slow: bool) -> String {
    serve_counting(dir, slow, Arc::new(AtomicUsize::new(0)))
}

fn serve_counting(dir: &Path, slow: bool, proxied: Arc<AtomicUsize>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok() && line.trim() != "" {
                line.clear();
            }
            let target = request.split(' ').nth(1).unwrap_or("/");
            let path = match target.strip_prefix("http://") {
                Some(absolute) => {
                    proxied.fetch_add(1, Ordering::Relaxed);
                    absolute.split_once('/').map_or("", |(_, p)| p)
                }
                None => target.trim_start_matches('/'),
            };
            match std::fs::read(dir.join(path)) {
                Ok(body) => {
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/x-tar\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(head.as_bytes());
                    for piece in body.chunks(if slow { 64 * 1024 } else { 1 << 20 }) {
                        if stream.write_all(piece).is_err() {
                            break;
                        }
                        if slow {
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                }
                Err(_) => {
                    let _ = stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                }
            }
        }
    });
    base
}

/// The environment of a `vkube` run that talks to `sim`, with no proxy in
/// the way of 127.0.0.1.
fn env_of(sim: &Simulator, state: &Path) -> Vec<(String, String)> {
    let mut vars = sim.vkube_env();
    vars.push((
        "VKUBE_STATE".into(),
        state.join("state.db").display().to_string(),
    ));
    vars.push(("NO_PROXY".into(), "127.0.0.1,localhost".into()));
    vars
}

/// `image import SOURCE --name NAME --datastore DS --folder FOLDER` and `rest`.
/// Where an import goes: a datastore and a VM folder.
type Target = (&'static str, &'static str);
/// The second datastore, into the `images` folder.
const IMAGES: Target = ("/DC0/datastore/LocalDS_1", "/DC0/vm/images");
/// The first datastore, into the datacenter's VM folder.
const VM_ROOT: Target = ("/DC0/datastore/LocalDS_0", "/DC0/vm");

fn import_args<'a>(
    source: &'a str,
    name: &'a str,
    target: Target,
    rest: &[&'a str],
) -> Vec<&'a str> {
    let (datastore, folder) = target;
    let mut args = vec![
        "image",
        "import",
        source,
        "--name",
        name,
        "--datastore",
        datastore,
        "--folder",
        folder,
    ];
    args.extend_from_slice(rest);
    args
}

/// `vkube image import … -o json` (no proxy), its report as JSON.
fn import_json(
    env: &[(String, String)],
    source: &str,
    name: &str,
    target: Target,
    rest: &[&str],
) -> serde_json::Value {
    let mut args = import_args(source, name, target, rest);
    args.extend(["-o", "json"]);
    json(&vkube_no_proxy(env, &args))
}

fn vkube_no_proxy(env: &[(String, String)], args: &[&str]) -> Run {
    vkube_via(env, None, args)
}

/// Run vkube with the caller's proxy variables removed and, with `proxy`,
/// `HTTP_PROXY` pointing there: no test traffic leaves loopback.
fn vkube_via(env: &[(String, String)], proxy: Option<&str>, args: &[&str]) -> Run {
    let mut cmd = vkube_command();
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env_remove(var);
    }
    if let Some(proxy) = proxy {
        cmd.env("HTTP_PROXY", proxy);
    }
    let out = cmd
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("run vkube");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn json(run: &Run) -> serde_json::Value {
    ok(run);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

async fn session(sim: &Simulator) -> Session {
    Session::connect(vkube_vsphere::ConnectOptions {
        endpoint: vkube_vsphere::Endpoint::parse(sim.url()).unwrap(),
        username: sim.username().into(),
        password: vkube_vsphere::Secret::new(sim.password()),
        tls: vkube_vsphere::TlsPolicy::Insecure,
        transport: vkube_vsphere::TransportChoice::Soap,
        wire_log: false,
        connect_timeout: Duration::from_secs(5),
        timeouts: Default::default(),
    })
    .await
    .unwrap()
}

/// The image at `path` as the API shows it, with its datastores.
async fn read_back(
    sim: &Simulator,
    path: &str,
) -> Option<(vkube_core::images::TemplateFacts, Vec<String>)> {
    let session = session(sim).await;
    let inventory = Inventory::load(&session).await.unwrap();
    let entity = inventory.resolve(path, "VM").ok()?;
    let facts = facts::read_one(&session, &inventory, entity.moref())
        .await
        .unwrap()
        .unwrap();
    let mut props = retrieve_objects(
        &session,
        std::slice::from_ref(entity.moref()),
        &[Wanted {
            type_name: "VirtualMachine",
            paths: &["datastore"],
        }],
    )
    .await
    .unwrap();
    let datastores = props[0]
        .morefs("datastore")
        .iter()
        .map(|d| inventory.path(&d.value))
        .collect();
    session.close().await;
    Some((facts, datastores))
}

async fn extra_config(sim: &Simulator, path: &str) -> std::collections::BTreeMap<String, String> {
    let session = session(sim).await;
    let inventory = Inventory::load(&session).await.unwrap();
    let vm = inventory.resolve(path, "VM").unwrap().moref().clone();
    let observed = vkube_vsphere::vm::observe_vm(&session, &vm)
        .await
        .unwrap()
        .unwrap();
    session.close().await;
    observed.extra_config
}

async fn make_folder(sim: &Simulator, name: &str) {
    let session = session(sim).await;
    let inventory = Inventory::load(&session).await.unwrap();
    let vm_folder = inventory
        .resolve("/DC0/vm", "folder")
        .unwrap()
        .moref()
        .clone();
    vkube_vsphere::vm::ensure_folder(&session, &vm_folder, name)
        .await
        .unwrap();
    session.close().await;
}

async fn vm_names(sim: &Simulator) -> Vec<String> {
    let session = session(sim).await;
    let inventory = Inventory::load(&session).await.unwrap();
    let names = inventory
        .select(|d| matches!(d, vkube_vsphere::Details::VirtualMachine { .. }))
        .into_iter()
        .map(|e| e.name.clone())
        .collect();
    session.close().await;
    names
}

#[tokio::test]
async fn ovas_from_files_and_urls_and_qcow2_disks_import_into_the_simulator() {
    if !QEMU_IMG.available() {
        return;
    }
    let sim = Simulator::start(SimulatorConfig {
        datastores: 2,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let env = env_of(&sim, dir.path());
    let served = dir.path().join("www");
    std::fs::create_dir_all(&served).unwrap();
    let ova = build_ova(&served, "ubuntu-2204-kube-v1.30.2", "v1.30.2", false, 0);
    make_folder(&sim, "images").await;

    // A dry run checks the source and the target and creates nothing.
    let dry = import_json(
        &env,
        ova.path.to_str().unwrap(),
        "ubuntu",
        IMAGES,
        &["--template", "--dry-run"],
    );
    assert_eq!(dry["status"], "wouldImport");
    assert_eq!(dry["record"]["kubernetesVersion"], "v1.30.2");
    assert!(
        read_back(&sim, "/DC0/vm/images/ubuntu").await.is_none(),
        "a dry run imported"
    );

    // From a file: a template with a snapshot, on the second datastore, a property set.
    let imported = import_json(
        &env,
        ova.path.to_str().unwrap(),
        "ubuntu",
        IMAGES,
        &[
            "--network",
            "/DC0/network/VM Network",
            "--template",
            "--snapshot",
            "--prop",
            "guestinfo.hostname=node-a",
        ],
    );
    assert_eq!(imported["status"], "imported");
    assert_eq!(imported["record"]["sha256"], ova.sha256.as_str());
    let (facts, datastores) = read_back(&sim, "/DC0/vm/images/ubuntu").await.unwrap();
    assert!(facts.template, "not marked as template");
    assert!(facts.disk_uuid_enabled, "disk.enableUUID is off");
    assert_eq!(facts.snapshot.as_deref(), Some("vkube-base"));
    assert_eq!(datastores, ["/DC0/datastore/LocalDS_1"]);
    assert_eq!(facts.hardware_version, Some(15));
    assert_eq!(facts.nics, [vkube_core::images::NicKind::Vmxnet3]);
    assert_eq!(facts.record.kubernetes_version.as_deref(), Some("v1.30.2"));
    assert_eq!(facts.record.os, Some(vkube_core::images::ImageOs::Ubuntu));
    assert_eq!(facts.record.sha256.as_deref(), Some(ova.sha256.as_str()));
    // The simulator keeps OVF property values in extraConfig.
    let extra = extra_config(&sim, "/DC0/vm/images/ubuntu").await;
    assert_eq!(
        extra.get("guestinfo.hostname").map(String::as_str),
        Some("node-a")
    );
    assert_eq!(
        extra.get("disk.enableUUID").map(String::as_str),
        Some("TRUE")
    );
    assert!(
        sim.log_text().contains("nfc POST"),
        "no disk upload reached the simulator"
    );

    // The same image again: reported, not duplicated.
    let again = import_json(&env, ova.path.to_str().unwrap(), "ubuntu", IMAGES, &[]);
    assert_eq!(again["status"], "alreadyPresent");

    // From a URL: streamed, a VM this time, on the first datastore.
    let base = serve(&served, false);
    let url = format!("{base}/ubuntu-2204-kube-v1.30.2.ova");
    let from_url = vkube_no_proxy(&env, &import_args(&url, "from-url", VM_ROOT, &[]));
    ok(&from_url);
    assert!(
        from_url.stdout.contains("imported VM `/DC0/vm/from-url`"),
        "{}",
        from_url.stdout
    );
    let (facts, datastores) = read_back(&sim, "/DC0/vm/from-url").await.unwrap();
    assert!(!facts.template && facts.snapshot.is_none() && facts.disk_uuid_enabled);
    assert_eq!(datastores, ["/DC0/datastore/LocalDS_0"]);
    assert_eq!(facts.record.sha256.as_deref(), Some(ova.sha256.as_str()));
    assert_eq!(facts.record.source.as_deref(), Some(url.as_str()));
    // Again from the URL: the stream is hashed and found the same.
    let again = import_json(&env, &url, "from-url", VM_ROOT, &[]);
    assert_eq!(again["status"], "alreadyPresent");

    // Through HTTP_PROXY: the URL's host (another loopback address, where
    // nothing listens) is only reached through the proxy.
    let proxied = Arc::new(AtomicUsize::new(0));
    let proxy = serve_counting(&served, false, proxied.clone());
    let through = vkube_via(
        &env,
        Some(&proxy),
        &import_args(
            "http://127.0.0.2:9/ubuntu-2204-kube-v1.30.2.ova",
            "via-proxy",
            VM_ROOT,
            &[],
        ),
    );
    ok(&through);
    assert!(
        proxied.load(Ordering::Relaxed) >= 1,
        "the proxy saw no request"
    );
    assert!(read_back(&sim, "/DC0/vm/via-proxy").await.is_some());

    // A qcow2: converted by qemu-img, wrapped in a generated descriptor.
    let (qcow2, _) = disks(dir.path(), "rocky-cloud", 1);
    let disk = json(&vkube_no_proxy(
        &env,
        &[
            "image",
            "import",
            qcow2.to_str().unwrap(),
            "--name",
            "from-qcow2",
            "--os",
            "ubuntu",
            "--kubernetes-version",
            "v1.30.2",
            "--cpus",
            "2",
            "--memory-mib",
            "2048",
            "--datastore",
            "/DC0/datastore/LocalDS_0",
            "--folder",
            "/DC0/vm/images",
            "--snapshot",
            "--template",
            "-o",
            "json",
        ],
    ));
    assert_eq!(disk["sourceKind"], "disk");
    let (facts, _) = read_back(&sim, "/DC0/vm/images/from-qcow2").await.unwrap();
    assert!(facts.template && facts.disk_uuid_enabled);
    assert_eq!(facts.snapshot.as_deref(), Some("vkube-base"));
    assert_eq!(facts.hardware_version, Some(15));
    assert_eq!(facts.nics, [vkube_core::images::NicKind::Vmxnet3]);
    assert_eq!(facts.guest_id.as_deref(), Some("ubuntu64Guest"));
    assert_eq!(facts.record.sha256, Some(sha256sum(&qcow2)));

    // Another image under a taken name: refused, then replaced on request.
    let newer = build_ova(&served, "ubuntu-2204-kube-v1.31.0", "v1.31.0", false, 0);
    let args = [
        "image",
        "import",
        newer.path.to_str().unwrap(),
        "--name",
        "ubuntu",
        "--datastore",
        "/DC0/datastore/LocalDS_1",
        "--folder",
        "/DC0/vm/images",
        "--template",
    ];
    let refused = vkube_no_proxy(&env, &args);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        error_lines(&refused)[0].contains("--replace"),
        "{}",
        refused.stderr
    );
    let mut replace = args.to_vec();
    replace.extend(["--replace", "-o", "json"]);
    assert_eq!(json(&vkube_no_proxy(&env, &replace))["status"], "replaced");
    let (facts, _) = read_back(&sim, "/DC0/vm/images/ubuntu").await.unwrap();
    assert_eq!(facts.record.kubernetes_version.as_deref(), Some("v1.31.0"));
    let names = vm_names(&sim).await;
    assert_eq!(
        names.iter().filter(|n| n.starts_with("ubuntu")).count(),
        1,
        "{names:?}"
    );

    // `image ls` shows them all with what clusters care about.
    let listed = json(&vkube_no_proxy(&env, &["image", "ls", "-o", "json"]));
    let rows = listed.as_array().unwrap();
    let row = |path: &str| rows.iter().find(|r| r["path"] == path).unwrap().clone();
    assert_eq!(row("/DC0/vm/images/ubuntu")["kubernetesVersion"], "v1.31.0");
    assert_eq!(
        row("/DC0/vm/images/ubuntu")["snapshot"],
        serde_json::Value::Null
    );
    assert_eq!(row("/DC0/vm/images/from-qcow2")["snapshot"], "vkube-base");
    assert_eq!(row("/DC0/vm/from-url")["template"], false);
    assert_eq!(row("/DC0/vm/images/from-qcow2")["hardwareVersion"], 15);
    assert_eq!(row("/DC0/vm/images/from-qcow2")["os"], "ubuntu");
    let table = vkube_no_proxy(&env, &["image", "ls"]);
    ok(&table);
    assert!(table.stdout.starts_with("PATH"), "{}", table.stdout);
}

async fn disable_disk_uuid(sim: &Simulator, path: &str) {
    use vim_rs::types::boxed_types::ValueElements;
    use vim_rs::types::structs::{OptionValue, VirtualMachineConfigSpec, VirtualMachineFlagInfo};
    use vim_rs::types::vim_any::VimAny;
    let session = session(sim).await;
    let inventory = Inventory::load(&session).await.unwrap();
    let vm: ManagedObjectReference = inventory.resolve(path, "VM").unwrap().moref().clone();
    let spec = VirtualMachineConfigSpec {
        flags: Some(VirtualMachineFlagInfo {
            disk_uuid_enabled: Some(false),
            ..Default::default()
        }),
        extra_config: Some(vec![Box::new(OptionValue {
            key: "disk.enableUUID".into(),
            value: Some(VimAny::Value(ValueElements::PrimitiveString(
                "FALSE".into(),
            ))),
        })]),
        ..Default::default()
    };
    // Templates cannot be reconfigured: through a VM and back.
    vkube_vsphere::images::prepare::mark_as_vm(&session, &vm)
        .await
        .unwrap();
    let task = vim_rs::mo::VirtualMachine::new(session.client(), &vm.value)
        .reconfig_vm_task(&spec)
        .await
        .unwrap();
    session
        .wait_task("turning disk.enableUUID off", task)
        .await
        .unwrap();
    vkube_vsphere::images::prepare::mark_as_template(&session, &vm)
        .await
        .unwrap();
    session.close().await;
}

#[tokio::test]
async fn image_check_flags_a_template_without_enable_uuid_and_prepare_fixes_it() {
    if !QEMU_IMG.available() {
        return;
    }
    let sim = Simulator::start_default();
    let dir = tempfile::tempdir().unwrap();
    let env = env_of(&sim, dir.path());
    let ova = build_ova(dir.path(), "check-me", "v1.30.2", false, 0);
    ok(&vkube_no_proxy(
        &env,
        &import_args(
            ova.path.to_str().unwrap(),
            "check-me",
            VM_ROOT,
            &["--template"],
        ),
    ));
    let fine = vkube_no_proxy(&env, &["image", "check", "check-me"]);
    assert_eq!(fine.code, 0, "{}{}", fine.stdout, fine.stderr);
    disable_disk_uuid(&sim, "/DC0/vm/check-me").await;

    let check = vkube_no_proxy(
        &env,
        &["image", "check", "check-me", "--clone-mode", "linked"],
    );
    assert_eq!(check.code, 1, "{}{}", check.stdout, check.stderr);
    assert!(
        check.stdout.contains("MISSING  disk.enableUUID is off"),
        "{}",
        check.stdout
    );
    assert!(
        check.stdout.contains("fix: `vkube image prepare check-me`"),
        "{}",
        check.stdout
    );
    assert!(
        check.stdout.contains("linked clones need one"),
        "{}",
        check.stdout
    );
    let report = vkube_no_proxy(&env, &["image", "check", "check-me", "-o", "json"]);
    assert_eq!(report.code, 1);
    let report: serde_json::Value = serde_json::from_str(&report.stdout).unwrap();
    let uuid = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "diskUuid")
        .unwrap();
    assert_eq!(uuid["severity"], "error");
    assert_eq!(uuid["action"]["action"], "enableDiskUuid");
    assert_eq!(report["ok"], false);

    // A dry run changes nothing.
    let dry = vkube_no_proxy(&env, &["image", "prepare", "check-me", "--dry-run"]);
    ok(&dry);
    assert!(
        dry.stdout.contains("would set disk.enableUUID"),
        "{}",
        dry.stdout
    );
    assert!(
        !read_back(&sim, "/DC0/vm/check-me")
            .await
            .unwrap()
            .0
            .disk_uuid_enabled
    );

    let prepared = vkube_no_proxy(
        &env,
        &["image", "prepare", "check-me", "--clone-mode", "linked"],
    );
    ok(&prepared);
    assert!(
        prepared.stdout.contains("done: set disk.enableUUID"),
        "{}",
        prepared.stdout
    );
    assert!(
        prepared.stdout.contains("done: take snapshot `vkube-base`"),
        "{}",
        prepared.stdout
    );
    let (facts, _) = read_back(&sim, "/DC0/vm/check-me").await.unwrap();
    assert!(facts.disk_uuid_enabled && facts.template, "{facts:?}");
    let after = vkube_no_proxy(
        &env,
        &["image", "check", "check-me", "--clone-mode", "linked"],
    );
    assert_eq!(after.code, 0, "{}", after.stdout);

    // The simulator's own VMs miss several things at once.
    let stock = vkube_no_proxy(
        &env,
        &["image", "check", "/DC0/vm/DC0_H0_VM0", "-o", "json"],
    );
    assert_eq!(stock.code, 1, "{}", stock.stderr);
    let stock: serde_json::Value = serde_json::from_str(&stock.stdout).unwrap();
    let failing: Vec<&str> = stock["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert!(
        failing.contains(&"diskUuid") && failing.contains(&"hardwareVersion"),
        "{failing:?}"
    );

    // Errors, not findings, exit 2.
    let unknown = vkube_no_proxy(&env, &["image", "check", "no-such-image"]);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert_eq!(error_lines(&unknown).len(), 1, "{}", unknown.stderr);
}

#[tokio::test]
async fn clusters_refuse_a_template_of_another_kubernetes_version_before_any_clone() {
    if !QEMU_IMG.available() {
        return;
    }
    let env = Env::start(&[]);
    let vars: Vec<(String, String)> = env
        .vars()
        .into_iter()
        .chain([("NO_PROXY".to_string(), "127.0.0.1,localhost".to_string())])
        .collect();
    let ova = build_ova(env.dir.path(), "node-v1-30", "v1.30.2", false, 0);
    ok(&vkube_no_proxy(
        &vars,
        &import_args(
            ova.path.to_str().unwrap(),
            "node-v1-30",
            VM_ROOT,
            &["--template"],
        ),
    ));
    let spec = two_az_spec().replace(
        "template: /DC0/vm/DC0_C0_RP0_VM0",
        "template: /DC0/vm/node-v1-30",
    );
    assert!(spec.contains("template: /DC0/vm/node-v1-30"));
    let older = env.spec_file(
        "older.yaml",
        &spec.replace("kubernetesVersion: v1.30.2", "kubernetesVersion: v1.29.4"),
    );
    for command in ["plan", "apply"] {
        let refused = vkube_no_proxy(&vars, &["cluster", command, "-f", &older]);
        assert_eq!(refused.code, 1, "{command}: {}", refused.stderr);
        let text = refused.stderr.clone();
        assert!(text.contains("spec.template"), "{text}");
        assert!(
            text.contains("v1.30.2") && text.contains("v1.29.4"),
            "{text}"
        );
    }
    assert!(env.vm_list("t1").await.is_empty(), "a node was cloned");
    let names = vm_names(&env.sim).await;
    assert!(!names.iter().any(|n| n.starts_with("t1-")), "{names:?}");

    // The matching version plans.
    let matching = env.spec_file("matching.yaml", &spec);
    let plan = vkube_no_proxy(&vars, &["cluster", "plan", "-f", &matching]);
    ok(&plan);
    assert!(plan.stdout.contains("createNode"), "{}", plan.stdout);
}

#[tokio::test]
async fn broken_sources_fail_with_one_error_and_leave_no_partial_vm() {
    if !QEMU_IMG.available() {
        return;
    }
    let sim = Simulator::start_default();
    let dir = tempfile::tempdir().unwrap();
    let env = env_of(&sim, dir.path());
    let served = dir.path().join("www");
    std::fs::create_dir_all(&served).unwrap();
    let good = build_ova(&served, "good", "v1.30.2", false, 0);
    let _big = build_ova(&served, "big", "v1.30.2", false, 6);
    let bad_manifest = build_ova(&served, "bad-manifest", "v1.30.2", true, 0);
    let garbage = served.join("garbage.ova");
    std::fs::write(&garbage, vec![b'x'; 4096]).unwrap();
    let truncated = served.join("truncated.ova");
    let bytes = std::fs::read(&good.path).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() - 20_000]).unwrap();
    let base = serve(&served, false);
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let cases: Vec<(String, &str, &str)> = vec![
        (
            garbage.display().to_string(),
            "/DC0/datastore/LocalDS_0",
            "damaged",
        ),
        (
            truncated.display().to_string(),
            "/DC0/datastore/LocalDS_0",
            "ends early",
        ),
        (
            bad_manifest.path.display().to_string(),
            "/DC0/datastore/LocalDS_0",
            "does not match the manifest",
        ),
        // Streamed: the mismatch shows after the upload; the lease is aborted.
        (
            format!("{base}/bad-manifest.ova"),
            "/DC0/datastore/LocalDS_0",
            "does not match the manifest",
        ),
        (
            format!("{base}/truncated.ova"),
            "/DC0/datastore/LocalDS_0",
            "ends early",
        ),
        (
            dir.path().join("missing.ova").display().to_string(),
            "/DC0/datastore/LocalDS_0",
            "does not exist",
        ),
        (
            format!("http://{closed}/x.ova"),
            "/DC0/datastore/LocalDS_0",
            "cannot fetch",
        ),
        (
            format!("{base}/nothing-here.ova"),
            "/DC0/datastore/LocalDS_0",
            "404",
        ),
        (
            good.path.display().to_string(),
            "/DC0/datastore/NoSuchDS",
            "not found",
        ),
    ];
    for (i, (source, datastore, expected)) in cases.iter().enumerate() {
        let name = format!("broken-{i}");
        let run = vkube_no_proxy(
            &env,
            &[
                "image",
                "import",
                source,
                "--name",
                &name,
                "--datastore",
                datastore,
                "--folder",
                "/DC0/vm",
                "--template",
            ],
        );
        assert_eq!(run.code, 1, "{source}: {}", run.stderr);
        let errors = error_lines(&run);
        assert_eq!(errors.len(), 1, "{source}: {}", run.stderr);
        assert!(errors[0].contains(expected), "{source}: {}", errors[0]);
        let names = vm_names(&sim).await;
        assert!(!names.contains(&name), "{source} left `{name}` behind");
    }
    // The streamed mismatch did upload before it was caught.
    assert!(
        sim.log_text().contains("nfc POST"),
        "the streamed case never uploaded"
    );

    // Ctrl-C during a slow streamed upload: the lease is aborted, the VM removed.
    let slow = serve(&served, true);
    let mut child = vkube_command()
        .args([
            "image",
            "import",
            &format!("{slow}/big.ova"),
            "--name",
            "interrupted",
            "--datastore",
            "/DC0/datastore/LocalDS_0",
            "--folder",
            "/DC0/vm",
        ])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "vkube ended early: {seen}"
        );
        seen.push_str(&line);
        if line.starts_with("uploading interrupted") {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(1), "{seen}{rest}");
    assert!(rest.contains("interrupted"), "{rest}");
    assert!(rest.contains("partial VM was removed"), "{rest}");
    assert!(!vm_names(&sim).await.contains(&"interrupted".to_string()));
}
