//! Writing the OVF descriptor vkube imports a lone disk (a converted qcow2,
//! raw or VMDK image) with: one virtual system with the requested CPUs and
//! memory, a paravirtual SCSI controller with the disk, one VMXNET3 NIC on
//! one logical network, and a hardware version the vSphere CSI driver
//! supports.

use std::fmt::Write as _;

use super::ImageError;

/// Oldest hardware version the vSphere CSI driver supports.
pub const MIN_CSI_HARDWARE_VERSION: u32 = 15;
/// Name of the one logical network of a generated descriptor.
pub const GENERATED_NETWORK: &str = "nic0";
/// The OVF format URI of a streamOptimized VMDK.
pub const STREAM_OPTIMIZED: &str =
    "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized";

/// What goes into a generated descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SingleDiskOvf {
    /// Virtual system id and name (the VM's name).
    pub name: String,
    /// File name of the streamOptimized VMDK, as the descriptor references it.
    pub disk_file: String,
    /// Its size in bytes.
    pub disk_file_size: u64,
    /// The disk's virtual capacity in bytes.
    pub capacity_bytes: u64,
    /// vCPUs.
    pub cpus: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Hardware version (`vmx-N`); at least [`MIN_CSI_HARDWARE_VERSION`].
    pub hardware_version: u32,
    /// vSphere guest id, e.g. `ubuntu64Guest`.
    pub guest_id: String,
    /// Annotation text.
    pub annotation: String,
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

impl SingleDiskOvf {
    /// The descriptor text. Refuses a hardware version the CSI driver
    /// cannot use and sizes of zero.
    pub fn render(&self) -> Result<String, ImageError> {
        if self.hardware_version < MIN_CSI_HARDWARE_VERSION {
            return Err(ImageError::Unsupported(format!(
                "hardware version {} is too old: the vSphere CSI driver needs {MIN_CSI_HARDWARE_VERSION} or later",
                self.hardware_version
            )));
        }
        if self.cpus == 0 || self.memory_mib == 0 || self.capacity_bytes == 0 {
            return Err(ImageError::Unsupported(
                "CPUs, memory and disk capacity must be more than zero".into(),
            ));
        }
        let name = escape(&self.name);
        // Capacity in MiB, rounded up: the unit every OVF consumer reads.
        let capacity_mib = self.capacity_bytes.div_ceil(1 << 20);
        let mut x = String::new();
        let w = &mut x;
        let _ = writeln!(w, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
        let _ = writeln!(
            w,
            r#"<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf">"#
        );
        let _ = writeln!(
            w,
            r#"  <References>
    <File ovf:id="file1" ovf:href="{}" ovf:size="{}"/>
  </References>"#,
            escape(&self.disk_file),
            self.disk_file_size
        );
        let _ = writeln!(
            w,
            r#"  <DiskSection>
    <Info>Virtual disks</Info>
    <Disk ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:capacity="{capacity_mib}" ovf:capacityAllocationUnits="byte * 2^20" ovf:format="{STREAM_OPTIMIZED}"/>
  </DiskSection>
  <NetworkSection>
    <Info>Logical networks</Info>
    <Network ovf:name="{GENERATED_NETWORK}">
      <Description>The node network</Description>
    </Network>
  </NetworkSection>"#
        );
        let _ = writeln!(
            w,
            r#"  <VirtualSystem ovf:id="{name}">
    <Info>A virtual machine</Info>
    <Name>{name}</Name>
    <AnnotationSection>
      <Info>Notes</Info>
      <Annotation>{}</Annotation>
    </AnnotationSection>
    <OperatingSystemSection ovf:id="36" vmw:osType="{}">
      <Info>The guest operating system</Info>
    </OperatingSystemSection>"#,
            escape(&self.annotation),
            escape(&self.guest_id)
        );
        let _ = writeln!(
            w,
            r#"    <VirtualHardwareSection>
      <Info>Virtual hardware</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>{name}</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>vmx-{}</vssd:VirtualSystemType>
      </System>"#,
            self.hardware_version
        );
        let items = [
            format!(
                "<rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>\n        <rasd:Description>Number of virtual CPUs</rasd:Description>\n        <rasd:ElementName>{0} virtual CPU(s)</rasd:ElementName>\n        <rasd:InstanceID>1</rasd:InstanceID>\n        <rasd:ResourceType>3</rasd:ResourceType>\n        <rasd:VirtualQuantity>{0}</rasd:VirtualQuantity>",
                self.cpus
            ),
            format!(
                "<rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>\n        <rasd:Description>Memory size</rasd:Description>\n        <rasd:ElementName>{0} MB of memory</rasd:ElementName>\n        <rasd:InstanceID>2</rasd:InstanceID>\n        <rasd:ResourceType>4</rasd:ResourceType>\n        <rasd:VirtualQuantity>{0}</rasd:VirtualQuantity>",
                self.memory_mib
            ),
            "<rasd:Address>0</rasd:Address>\n        <rasd:Description>SCSI controller</rasd:Description>\n        <rasd:ElementName>SCSI controller 0</rasd:ElementName>\n        <rasd:InstanceID>3</rasd:InstanceID>\n        <rasd:ResourceSubType>VirtualSCSI</rasd:ResourceSubType>\n        <rasd:ResourceType>6</rasd:ResourceType>".to_string(),
            "<rasd:AddressOnParent>0</rasd:AddressOnParent>\n        <rasd:ElementName>Hard disk 1</rasd:ElementName>\n        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>\n        <rasd:InstanceID>4</rasd:InstanceID>\n        <rasd:Parent>3</rasd:Parent>\n        <rasd:ResourceType>17</rasd:ResourceType>".to_string(),
            format!(
                "<rasd:AddressOnParent>7</rasd:AddressOnParent>\n        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>\n        <rasd:Connection>{GENERATED_NETWORK}</rasd:Connection>\n        <rasd:Description>VMXNET3 ethernet adapter</rasd:Description>\n        <rasd:ElementName>Network adapter 1</rasd:ElementName>\n        <rasd:InstanceID>5</rasd:InstanceID>\n        <rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType>\n        <rasd:ResourceType>10</rasd:ResourceType>"
            ),
        ];
        for item in items {
            let _ = writeln!(w, "      <Item>\n        {item}\n      </Item>");
        }
        let _ = writeln!(
            w,
            r#"      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="bios"/>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>"#
        );
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::{ImageOs, OvfDescriptor};

    fn sample() -> SingleDiskOvf {
        SingleDiskOvf {
            name: "ubuntu <base> & co".into(),
            disk_file: "disk-0.vmdk".into(),
            disk_file_size: 12_345,
            capacity_bytes: 3 * (1 << 30) + 1,
            cpus: 2,
            memory_mib: 4096,
            hardware_version: 15,
            guest_id: "ubuntu64Guest".into(),
            annotation: "converted by vkube".into(),
        }
    }

    #[test]
    fn generated_descriptors_read_back_with_one_vmxnet3_nic_and_the_disk() {
        let text = sample().render().unwrap();
        let ovf = OvfDescriptor::parse(&text).unwrap();
        assert_eq!(ovf.system_id, "ubuntu <base> & co");
        assert_eq!(ovf.hardware_versions, vec![15]);
        assert_eq!(ovf.cpus, Some(2));
        assert_eq!(ovf.memory_mib, Some(4096));
        assert_eq!(ovf.nics.len(), 1);
        assert_eq!(ovf.nics[0].adapter, "VmxNet3");
        assert_eq!(ovf.nics[0].connection.as_deref(), Some(GENERATED_NETWORK));
        assert_eq!(ovf.networks[0].name, GENERATED_NETWORK);
        assert_eq!(ovf.disks.len(), 1);
        // Rounded up to whole MiB.
        assert_eq!(ovf.disks[0].capacity_bytes, 3 * (1 << 30) + (1 << 20));
        let file = ovf.disk_file(&ovf.disks[0]).unwrap();
        assert_eq!(
            (file.href.as_str(), file.size),
            ("disk-0.vmdk", Some(12_345))
        );
        assert_eq!(ovf.disks[0].format.as_deref(), Some(STREAM_OPTIMIZED));
        assert_eq!(ovf.os(), ImageOs::Ubuntu);
    }

    #[test]
    fn hardware_too_old_for_csi_and_empty_sizes_are_refused() {
        let old = SingleDiskOvf {
            hardware_version: 13,
            ..sample()
        };
        assert!(old.render().unwrap_err().to_string().contains("CSI"));
        let empty = SingleDiskOvf {
            cpus: 0,
            ..sample()
        };
        assert!(empty.render().is_err());
    }
}
