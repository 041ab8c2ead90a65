//! The template check: what a cluster needs from the VM or template its
//! nodes are cloned from, each finding with its fix. `vkube image check`
//! shows every finding; `cluster plan`/`apply` refuse the ones that make
//! nodes fail however they are cloned ([`Finding::blocks_clusters`]).

use std::collections::BTreeMap;

use serde::Serialize;

use super::ovf_write::MIN_CSI_HARDWARE_VERSION;
use super::{ImageOs, ImageRecord};
use crate::cluster::{CloneMode, OsFamily};

/// First hardware version on which VMXNET3's tunnel segmentation offload
/// breaks overlay (VXLAN/Geneve) TCP traffic in the guest.
pub const TUNNEL_OFFLOAD_HARDWARE_VERSION: u32 = 14;
/// The extraConfig/guestinfo keys Flatcar's Ignition reads its config from.
pub const IGNITION_KEYS: [&str; 2] = [
    "guestinfo.ignition.config.data",
    "guestinfo.ignition.config.data.encoding",
];

/// A network adapter's kind, as vSphere names its device class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NicKind {
    /// VMXNET3 (paravirtual).
    Vmxnet3,
    /// Anything else (E1000, E1000e, VMXNET2, PCNet32, SR-IOV…), by name.
    Other(String),
}

/// What vCenter shows of a template or VM.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateFacts {
    /// Name.
    pub name: String,
    /// Inventory path.
    pub path: String,
    /// Whether it is marked as a template.
    pub template: bool,
    /// Hardware version (`vmx-15` → 15), when known.
    pub hardware_version: Option<u32>,
    /// `flags.diskUuidEnabled` / `disk.enableUUID`.
    pub disk_uuid_enabled: bool,
    /// Name of the current snapshot.
    pub snapshot: Option<String>,
    /// Network adapters.
    pub nics: Vec<NicKind>,
    /// vSphere guest id.
    pub guest_id: Option<String>,
    /// vApp properties (key → value) the VM carries.
    pub properties: BTreeMap<String, String>,
    /// What vkube recorded when it imported the image.
    pub record: ImageRecord,
    /// Provisioned size of its disks in bytes.
    pub disk_bytes: u64,
}

impl TemplateFacts {
    /// The OS family: vkube's record, else the guest id.
    pub fn os(&self) -> ImageOs {
        match self.record.os {
            Some(os) if os != ImageOs::Unknown => os,
            _ => ImageOs::from_hints(&[self.guest_id.as_deref().unwrap_or("")]),
        }
    }
}

/// What the cluster that will use the template asks for (all optional:
/// `vkube image check` without a spec checks the template alone).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterNeeds {
    /// `spec.kubernetesVersion`.
    pub kubernetes_version: Option<String>,
    /// `spec.osFamily`.
    pub os_family: Option<OsFamily>,
    /// `spec.cloneMode`.
    pub clone_mode: Option<CloneMode>,
    /// `spec.disableTunnelOffload`.
    pub disable_tunnel_offload: Option<bool>,
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Fine.
    Ok,
    /// Worth knowing.
    Info,
    /// Works, with a caveat.
    Warning,
    /// Required and missing: `image check` exits 1.
    Error,
}

/// Which rule a finding comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FindingId {
    /// `disk.enableUUID`.
    DiskUuid,
    /// A snapshot for linked clones.
    Snapshot,
    /// Hardware version for CSI.
    HardwareVersion,
    /// The VMXNET3 tunnel offload fix.
    TunnelOffload,
    /// Exactly one VMXNET3 NIC.
    Network,
    /// The guest OS family.
    GuestOs,
    /// Template or VM.
    Kind,
    /// The Kubernetes version the image carries.
    KubernetesVersion,
    /// Flatcar's Ignition guestinfo.
    Ignition,
}

/// A change `vkube image prepare` can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum Fix {
    /// Set `disk.enableUUID`.
    EnableDiskUuid,
    /// Take a snapshot.
    CreateSnapshot,
    /// Upgrade the virtual hardware (irreversible).
    UpgradeHardware {
        /// Target version.
        version: u32,
    },
}

/// One result of the check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// The rule.
    pub id: FindingId,
    /// How bad.
    pub severity: Severity,
    /// What was found.
    pub message: String,
    /// How to fix it, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// What `vkube image prepare` does about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<Fix>,
    /// Whether `cluster plan`/`apply` refuse the template for it: nodes
    /// cloned from it cannot join whatever vkube sets on the clone.
    pub blocks_clusters: bool,
}

impl Finding {
    fn new(id: FindingId, severity: Severity, message: String) -> Finding {
        Finding {
            id,
            severity,
            message,
            fix: None,
            action: None,
            blocks_clusters: false,
        }
    }

    fn fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = Some(fix.into());
        self
    }

    fn action(mut self, action: Fix) -> Finding {
        self.action = Some(action);
        self
    }

    fn blocking(mut self) -> Finding {
        self.blocks_clusters = true;
        self
    }
}

/// `v1.30.2+vmware.1` and `1.30.2` compare equal to `v1.30.2`.
fn normalized_version(v: &str) -> String {
    let v = v.trim();
    let v = v.split('+').next().unwrap_or(v);
    format!("v{}", v.strip_prefix('v').unwrap_or(v))
}

/// Every finding for `facts`, in rule order. `name` is how the user named
/// the template, for the fix commands.
pub fn check_template(facts: &TemplateFacts, needs: &ClusterNeeds) -> Vec<Finding> {
    let prepare = format!("vkube image prepare {}", facts.name);
    let mut out = Vec::new();
    out.push(if facts.disk_uuid_enabled {
        Finding::new(
            FindingId::DiskUuid,
            Severity::Ok,
            "disk.enableUUID is on: the CSI driver can identify volumes".into(),
        )
    } else {
        Finding::new(
            FindingId::DiskUuid,
            Severity::Error,
            "disk.enableUUID is off: the guest sees no disk serial numbers, which the vSphere CSI driver needs to find attached volumes".into(),
        )
        .fix(format!("`{prepare}` (or `govc vm.change -e disk.enableUUID=1`)"))
        .action(Fix::EnableDiskUuid)
    });
    out.push(snapshot_finding(facts, needs, &prepare));
    out.extend(hardware_findings(facts, needs, &prepare));
    out.push(nic_finding(facts));
    out.extend(os_findings(facts, needs));
    out.push(kind_finding(facts, needs));
    out.push(version_finding(facts, needs));
    out
}

fn snapshot_finding(facts: &TemplateFacts, needs: &ClusterNeeds, prepare: &str) -> Finding {
    let linked = needs.clone_mode == Some(CloneMode::Linked);
    match (&facts.snapshot, linked) {
        (Some(name), _) => Finding::new(
            FindingId::Snapshot,
            Severity::Ok,
            format!("current snapshot `{name}`: linked clones can use it"),
        ),
        (None, true) => Finding::new(
            FindingId::Snapshot,
            Severity::Error,
            "no snapshot: the spec's linked clones need one (without it vkube falls back to slower full clones)".into(),
        )
        .fix(format!("`{prepare} --snapshot`"))
        .action(Fix::CreateSnapshot),
        (None, false) => Finding::new(
            FindingId::Snapshot,
            Severity::Info,
            "no snapshot: fine for full clones; linked clones need one".into(),
        )
        .fix(format!("`{prepare} --snapshot` before using cloneMode: linked")),
    }
}

fn hardware_findings(facts: &TemplateFacts, needs: &ClusterNeeds, prepare: &str) -> Vec<Finding> {
    let Some(version) = facts.hardware_version else {
        return vec![Finding::new(
            FindingId::HardwareVersion,
            Severity::Warning,
            "the hardware version is unknown".into(),
        )];
    };
    let mut out = vec![if version >= MIN_CSI_HARDWARE_VERSION {
        Finding::new(
            FindingId::HardwareVersion,
            Severity::Ok,
            format!("hardware version {version}: the vSphere CSI driver supports it"),
        )
    } else {
        Finding::new(
            FindingId::HardwareVersion,
            Severity::Error,
            format!(
                "hardware version {version}: the vSphere CSI driver needs {MIN_CSI_HARDWARE_VERSION} or later"
            ),
        )
        .fix(format!(
            "`{prepare} --hardware-version {MIN_CSI_HARDWARE_VERSION}` (irreversible; every host the nodes run on must support it)"
        ))
        .action(Fix::UpgradeHardware {
            version: MIN_CSI_HARDWARE_VERSION,
        })
    }];
    if version >= TUNNEL_OFFLOAD_HARDWARE_VERSION && facts.nics.contains(&NicKind::Vmxnet3) {
        out.push(match needs.disable_tunnel_offload {
            Some(true) => Finding::new(
                FindingId::TunnelOffload,
                Severity::Ok,
                "VMXNET3 tunnel segmentation offload is turned off on the nodes (spec.disableTunnelOffload)".into(),
            ),
            _ => Finding::new(
                FindingId::TunnelOffload,
                Severity::Warning,
                format!(
                    "hardware version {version} with VMXNET3: its tunnel segmentation offload breaks overlay TCP traffic (Cilium, Calico VXLAN) while ICMP still works"
                ),
            )
            .fix("set `spec.disableTunnelOffload: true` (nodes turn off tx-udp_tnl-segmentation and tx-udp_tnl-csum-segmentation at boot)"),
        });
    }
    out
}

fn nic_finding(facts: &TemplateFacts) -> Finding {
    let names: Vec<String> = facts
        .nics
        .iter()
        .map(|n| match n {
            NicKind::Vmxnet3 => "vmxnet3".to_string(),
            NicKind::Other(name) => name.clone(),
        })
        .collect();
    match facts.nics.as_slice() {
        [NicKind::Vmxnet3] => Finding::new(
            FindingId::Network,
            Severity::Ok,
            "one VMXNET3 network adapter".into(),
        ),
        [] => Finding::new(
            FindingId::Network,
            Severity::Error,
            "no network adapter: vkube sets each node's network on the template's adapter, so nodes would have none".into(),
        )
        .fix("add one VMXNET3 adapter to the template (any network; vkube moves it to the domain's)")
        .blocking(),
        [NicKind::Other(name)] => Finding::new(
            FindingId::Network,
            Severity::Error,
            format!("the network adapter is {name}, not VMXNET3 (emulated adapters are slow and not what the image builders test)"),
        )
        .fix("replace the adapter with a VMXNET3 one"),
        _ => Finding::new(
            FindingId::Network,
            Severity::Error,
            format!(
                "{} network adapters ({}): vkube configures the first one only, the others would join whatever network they are on",
                names.len(),
                names.join(", ")
            ),
        )
        .fix("remove all adapters but one VMXNET3"),
    }
}

fn os_findings(facts: &TemplateFacts, needs: &ClusterNeeds) -> Vec<Finding> {
    let os = facts.os();
    let mut out = Vec::new();
    let guest = facts.guest_id.as_deref().unwrap_or("unknown");
    out.push(match (os.family(), needs.os_family) {
        (Some(family), Some(wanted)) if family != wanted => Finding::new(
            FindingId::GuestOs,
            Severity::Error,
            format!(
                "the image is {os} but spec.osFamily is {}: nodes would get bootstrap data they cannot read",
                ImageOs::of_family(wanted)
            ),
        )
        .fix(format!(
            "use a {} template, or set spec.osFamily: {os}",
            ImageOs::of_family(wanted)
        ))
        .blocking(),
        (Some(_), _) => Finding::new(
            FindingId::GuestOs,
            Severity::Ok,
            format!("guest OS family {os} (guest id {guest})"),
        ),
        (None, _) if os == ImageOs::Other => Finding::new(
            FindingId::GuestOs,
            Severity::Error,
            format!("guest id {guest}: vkube bootstraps Ubuntu, Rocky Linux and Flatcar only"),
        ),
        (None, _) => Finding::new(
            FindingId::GuestOs,
            Severity::Warning,
            format!("the guest OS family is unknown (guest id {guest}, nothing recorded); vkube trusts spec.osFamily"),
        ),
    });
    if os == ImageOs::Flatcar {
        let baked: Vec<&str> = IGNITION_KEYS
            .iter()
            .copied()
            .filter(|k| facts.properties.get(*k).is_some_and(|v| !v.is_empty()))
            .collect();
        let declared = IGNITION_KEYS
            .iter()
            .all(|k| facts.properties.contains_key(*k));
        out.push(if !baked.is_empty() {
            Finding::new(
                FindingId::Ignition,
                Severity::Warning,
                format!(
                    "the template's vApp properties already hold {}: clones carry that config in their OVF environment too",
                    baked.join(", ")
                ),
            )
            .fix("clear those vApp properties on the template")
        } else {
            Finding::new(
                FindingId::Ignition,
                Severity::Ok,
                format!(
                    "Ignition reads {} from guestinfo; vkube sets them on every clone{}",
                    IGNITION_KEYS.join(" and "),
                    if declared {
                        " (the image also declares them as vApp properties, empty)"
                    } else {
                        ""
                    }
                ),
            )
        });
    }
    out
}

fn kind_finding(facts: &TemplateFacts, needs: &ClusterNeeds) -> Finding {
    let mode = match needs.clone_mode {
        Some(CloneMode::Linked) => {
            "the spec's linked clones work from a template or a VM, as long as it has a snapshot"
        }
        Some(CloneMode::Full) => "the spec's full clones work from a template or a VM",
        None => "vkube clones templates and VMs alike",
    };
    let (what, other) = if facts.template {
        (
            "a template",
            "KKP's machine-controller wants a VM instead: mark it as one in vCenter",
        )
    } else {
        (
            "a VM, not a template",
            "keep it powered off; `vkube image import --template` marks imports as templates",
        )
    };
    Finding::new(
        FindingId::Kind,
        Severity::Info,
        format!("{what}: {mode}; {other}"),
    )
}

fn version_finding(facts: &TemplateFacts, needs: &ClusterNeeds) -> Finding {
    let carried = facts.record.kubernetes_version.as_deref();
    match (carried, needs.kubernetes_version.as_deref()) {
        (Some(image), Some(spec)) if normalized_version(image) != normalized_version(spec) => {
            Finding::new(
                FindingId::KubernetesVersion,
                Severity::Error,
                format!(
                    "the image carries Kubernetes {image} but spec.kubernetesVersion is {spec}: its kubelet and kubeadm packages are pinned to {image}"
                ),
            )
            .fix(format!(
                "import an image built for {spec}, or set spec.kubernetesVersion: {image}"
            ))
            .blocking()
        }
        (Some(image), _) => Finding::new(
            FindingId::KubernetesVersion,
            Severity::Ok,
            format!("the image carries Kubernetes {image}"),
        ),
        (None, _) => Finding::new(
            FindingId::KubernetesVersion,
            Severity::Info,
            "no Kubernetes version recorded for this image; vkube cannot tell whether it matches spec.kubernetesVersion".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> TemplateFacts {
        TemplateFacts {
            name: "ubuntu-2204-kube-v1.30.2".into(),
            path: "/DC0/vm/templates/ubuntu-2204-kube-v1.30.2".into(),
            template: true,
            hardware_version: Some(15),
            disk_uuid_enabled: true,
            snapshot: Some("vkube-base".into()),
            nics: vec![NicKind::Vmxnet3],
            guest_id: Some("ubuntu64Guest".into()),
            record: ImageRecord {
                os: Some(ImageOs::Ubuntu),
                kubernetes_version: Some("v1.30.2".into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn needs() -> ClusterNeeds {
        ClusterNeeds {
            kubernetes_version: Some("v1.30.2".into()),
            os_family: Some(OsFamily::Ubuntu),
            clone_mode: Some(CloneMode::Linked),
            disable_tunnel_offload: Some(true),
        }
    }

    fn worst(findings: &[Finding]) -> Severity {
        findings.iter().map(|f| f.severity).max().unwrap()
    }

    fn by_id(findings: &[Finding], id: FindingId) -> &Finding {
        findings.iter().find(|f| f.id == id).unwrap()
    }

    #[test]
    fn a_prepared_image_builder_template_passes() {
        let findings = check_template(&good(), &needs());
        assert!(worst(&findings) <= Severity::Info, "{findings:#?}");
        assert!(findings.iter().all(|f| !f.blocks_clusters));
    }

    #[test]
    fn missing_disk_uuid_is_an_error_that_prepare_fixes() {
        let facts = TemplateFacts {
            disk_uuid_enabled: false,
            ..good()
        };
        let findings = check_template(&facts, &ClusterNeeds::default());
        let f = by_id(&findings, FindingId::DiskUuid);
        assert_eq!(f.severity, Severity::Error);
        assert_eq!(f.action, Some(Fix::EnableDiskUuid));
        assert!(f
            .fix
            .as_deref()
            .unwrap()
            .contains("vkube image prepare ubuntu-2204"));
        // vkube sets enableUUID on every clone: clusters are not refused for it.
        assert!(!f.blocks_clusters);
    }

    #[test]
    fn snapshots_are_required_for_linked_clones_only() {
        let facts = TemplateFacts {
            snapshot: None,
            ..good()
        };
        let linked = check_template(&facts, &needs());
        let f = by_id(&linked, FindingId::Snapshot);
        assert_eq!(
            (f.severity, f.action),
            (Severity::Error, Some(Fix::CreateSnapshot))
        );
        let full = check_template(
            &facts,
            &ClusterNeeds {
                clone_mode: Some(CloneMode::Full),
                ..needs()
            },
        );
        assert_eq!(by_id(&full, FindingId::Snapshot).severity, Severity::Info);
    }

    #[test]
    fn old_hardware_fails_csi_and_new_hardware_asks_for_the_offload_fix() {
        let old = TemplateFacts {
            hardware_version: Some(13),
            ..good()
        };
        let findings = check_template(&old, &needs());
        let hw = by_id(&findings, FindingId::HardwareVersion);
        assert_eq!(hw.severity, Severity::Error);
        assert_eq!(hw.action, Some(Fix::UpgradeHardware { version: 15 }));
        assert!(!findings.iter().any(|f| f.id == FindingId::TunnelOffload));
        let v14 = TemplateFacts {
            hardware_version: Some(14),
            ..good()
        };
        let without_fix = check_template(
            &v14,
            &ClusterNeeds {
                disable_tunnel_offload: Some(false),
                ..needs()
            },
        );
        let offload = by_id(&without_fix, FindingId::TunnelOffload);
        assert_eq!(offload.severity, Severity::Warning);
        assert!(offload
            .fix
            .as_deref()
            .unwrap()
            .contains("disableTunnelOffload"));
        let with_fix = check_template(&v14, &needs());
        assert_eq!(
            by_id(&with_fix, FindingId::TunnelOffload).severity,
            Severity::Ok
        );
    }

    #[test]
    fn exactly_one_vmxnet3_nic_is_wanted() {
        for (nics, blocks) in [
            (vec![], true),
            (vec![NicKind::Other("e1000".into())], false),
            (vec![NicKind::Vmxnet3, NicKind::Vmxnet3], false),
        ] {
            let facts = TemplateFacts { nics, ..good() };
            let findings = check_template(&facts, &needs());
            let f = by_id(&findings, FindingId::Network);
            assert_eq!(f.severity, Severity::Error, "{f:?}");
            assert_eq!(f.blocks_clusters, blocks, "{f:?}");
        }
    }

    #[test]
    fn a_different_kubernetes_version_blocks_clusters_naming_both() {
        let findings = check_template(
            &good(),
            &ClusterNeeds {
                kubernetes_version: Some("v1.29.4".into()),
                ..needs()
            },
        );
        let f = by_id(&findings, FindingId::KubernetesVersion);
        assert_eq!(f.severity, Severity::Error);
        assert!(f.blocks_clusters);
        assert!(
            f.message.contains("v1.30.2") && f.message.contains("v1.29.4"),
            "{}",
            f.message
        );
        // Build metadata and a missing `v` do not make a difference.
        let mut facts = good();
        facts.record.kubernetes_version = Some("1.30.2+vmware.1".into());
        let same = check_template(&facts, &needs());
        assert_eq!(
            by_id(&same, FindingId::KubernetesVersion).severity,
            Severity::Ok
        );
        // No recorded version: nothing to compare, nothing refused.
        facts.record.kubernetes_version = None;
        let unknown = check_template(&facts, &needs());
        assert!(!by_id(&unknown, FindingId::KubernetesVersion).blocks_clusters);
    }

    #[test]
    fn os_family_mismatch_blocks_and_flatcar_gets_its_ignition_check() {
        let mut facts = good();
        facts.record.os = Some(ImageOs::Flatcar);
        facts.guest_id = Some("other3xLinux64Guest".into());
        let findings = check_template(&facts, &needs());
        let os = by_id(&findings, FindingId::GuestOs);
        assert!(
            os.blocks_clusters && os.message.contains("flatcar"),
            "{os:?}"
        );
        let ignition = by_id(&findings, FindingId::Ignition);
        assert_eq!(ignition.severity, Severity::Ok);
        facts
            .properties
            .insert(IGNITION_KEYS[0].into(), "eyJpZ25pdGlvbiI6e319".into());
        let baked = check_template(&facts, &ClusterNeeds::default());
        assert_eq!(
            by_id(&baked, FindingId::Ignition).severity,
            Severity::Warning
        );
        // Nothing recorded: the guest id decides.
        let plain = TemplateFacts {
            record: ImageRecord::default(),
            guest_id: Some("otherGuest".into()),
            ..good()
        };
        let findings = check_template(&plain, &needs());
        assert_eq!(
            by_id(&findings, FindingId::GuestOs).severity,
            Severity::Warning
        );
        assert!(!findings.iter().any(|f| f.blocks_clusters));
    }
}
