use super::*;

/// Shaped like image-builder's CAPI OVAs: product info naming the
/// Kubernetes version, properties without a class, one VMXNET3 NIC.
const IMAGE_BUILDER: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf">
  <References>
    <File ovf:id="file1" ovf:href="ubuntu-2204-kube-v1.30.2.ova.vmdk" ovf:size="1234567"/>
  </References>
  <DiskSection>
    <Info>disks</Info>
    <Disk ovf:capacity="20" ovf:capacityAllocationUnits="byte * 2^30" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <NetworkSection>
    <Info>networks</Info>
    <Network ovf:name="nic0"><Description>Please select a network</Description></Network>
  </NetworkSection>
  <VirtualSystem ovf:id="ubuntu-2204-kube-v1.30.2">
    <Info>A virtual machine</Info>
    <Name>ubuntu-2204-kube-v1.30.2</Name>
    <OperatingSystemSection ovf:id="94" vmw:osType="ubuntu64Guest"><Info>os</Info></OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>hw</Info>
      <System><vssd:InstanceID>0</vssd:InstanceID><vssd:VirtualSystemType>vmx-15</vssd:VirtualSystemType></System>
      <Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>2048</rasd:VirtualQuantity></Item>
      <Item><rasd:InstanceID>9</rasd:InstanceID><rasd:Connection>nic0</rasd:Connection><rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType><rasd:ResourceType>10</rasd:ResourceType></Item>
    </VirtualHardwareSection>
    <ProductSection>
      <Info>Information about the installed software</Info>
      <Product>Ubuntu 22.04 and Kubernetes v1.30.2</Product>
      <Vendor>Example</Vendor>
      <Version>kube-v1.30.2</Version>
      <FullVersion>kube-v1.30.2</FullVersion>
      <Property ovf:userConfigurable="false" ovf:value="v1.30.2" ovf:type="string" ovf:key="KUBERNETES_SEMVER"/>
      <Property ovf:userConfigurable="false" ovf:value="1.7.20" ovf:type="string" ovf:key="CONTAINERD_VERSION"/>
    </ProductSection>
  </VirtualSystem>
</Envelope>"#;

/// Shaped like Flatcar's VMware OVA: Ignition's guestinfo properties,
/// user-configurable, in a product section.
const FLATCAR: &str = r#"<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
  <References><File ovf:href="flatcar_production_vmware_ova_image.vmdk" ovf:id="file1" ovf:size="99"/></References>
  <DiskSection><Info>d</Info><Disk ovf:capacity="8589934592" ovf:diskId="vmdisk1" ovf:fileRef="file1"/></DiskSection>
  <NetworkSection><Info>n</Info><Network ovf:name="VM Network"/></NetworkSection>
  <VirtualSystem ovf:id="flatcar">
    <Info>vm</Info>
    <OperatingSystemSection ovf:id="101" vmw:osType="other3xLinux64Guest"><Info>o</Info><Description>Flatcar Container Linux</Description></OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>h</Info>
      <System><vssd:VirtualSystemType xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData">vmx-13 vmx-14</vssd:VirtualSystemType></System>
      <Item><rasd:ResourceType>10</rasd:ResourceType><rasd:ResourceSubType>E1000</rasd:ResourceSubType><rasd:Connection>VM Network</rasd:Connection></Item>
    </VirtualHardwareSection>
    <ProductSection ovf:required="false">
      <Info>Flatcar guestinfo</Info>
      <Product>Flatcar Container Linux</Product>
      <Version>3815.2.5</Version>
      <Property ovf:key="guestinfo.ignition.config.data" ovf:type="string" ovf:userConfigurable="true" ovf:value="">
        <Label>Ignition config</Label>
        <Description>Base64 Ignition config &amp; more</Description>
      </Property>
      <Property ovf:key="guestinfo.ignition.config.data.encoding" ovf:type="string" ovf:userConfigurable="true" ovf:value="base64"/>
    </ProductSection>
    <ProductSection ovf:class="vm" ovf:instance="1"><Info>p</Info><Property ovf:key="role" ovf:type="string"/></ProductSection>
  </VirtualSystem>
</Envelope>"#;

#[test]
fn image_builder_descriptors_yield_disks_networks_hardware_and_the_kubernetes_version() {
    let ovf = OvfDescriptor::parse(IMAGE_BUILDER).unwrap();
    assert_eq!(ovf.system_id, "ubuntu-2204-kube-v1.30.2");
    assert_eq!(ovf.files.len(), 1);
    assert_eq!(ovf.files[0].size, Some(1_234_567));
    assert_eq!(ovf.disks[0].capacity_bytes, 20 << 30);
    assert_eq!(
        ovf.disk_file(&ovf.disks[0]).unwrap().href,
        "ubuntu-2204-kube-v1.30.2.ova.vmdk"
    );
    assert_eq!(ovf.networks[0].name, "nic0");
    assert_eq!(ovf.hardware_versions, vec![15]);
    assert_eq!((ovf.cpus, ovf.memory_mib), (Some(2), Some(2048)));
    assert_eq!(ovf.nics[0].adapter, "VmxNet3");
    assert_eq!(ovf.kubernetes_version().as_deref(), Some("v1.30.2"));
    assert_eq!(ovf.os(), ImageOs::Ubuntu);
    assert_eq!(
        ovf.property("CONTAINERD_VERSION")
            .unwrap()
            .default
            .as_deref(),
        Some("1.7.20")
    );
}

#[test]
fn kubernetes_versions_come_from_product_versions_and_names_too() {
    let without_property = IMAGE_BUILDER.replace("KUBERNETES_SEMVER", "OTHER");
    let ovf = OvfDescriptor::parse(&without_property).unwrap();
    assert_eq!(ovf.kubernetes_version().as_deref(), Some("v1.30.2"));
    let only_name = without_property
        .replace("<Version>kube-v1.30.2</Version>", "")
        .replace("<FullVersion>kube-v1.30.2</FullVersion>", "")
        .replace("Kubernetes v1.30.2", "Kubernetes v1.29.4-rc.1");
    let ovf = OvfDescriptor::parse(&only_name).unwrap();
    assert_eq!(ovf.kubernetes_version().as_deref(), Some("v1.29.4-rc.1"));
    let flatcar = OvfDescriptor::parse(FLATCAR).unwrap();
    assert_eq!(flatcar.kubernetes_version(), None);
}

#[test]
fn flatcar_descriptors_yield_ignition_properties_with_their_keys() {
    let ovf = OvfDescriptor::parse(FLATCAR).unwrap();
    assert_eq!(ovf.os(), ImageOs::Flatcar);
    let data = ovf.property("guestinfo.ignition.config.data").unwrap();
    assert!(data.user_configurable);
    assert_eq!(data.default.as_deref(), Some(""));
    assert_eq!(data.label.as_deref(), Some("Ignition config"));
    assert_eq!(
        data.description.as_deref(),
        Some("Base64 Ignition config & more")
    );
    // Class and instance make the full key, as CreateImportSpec expects it.
    assert!(ovf.property("vm.role.1").is_some());
    assert_eq!(ovf.hardware_versions, vec![13, 14]);
    // No allocation units: bytes.
    assert_eq!(ovf.disks[0].capacity_bytes, 8 << 30);
    assert_eq!(ovf.nics[0].adapter, "E1000");
}

#[test]
fn descriptors_that_cannot_be_imported_are_refused() {
    let cases = [
        ("<Envelope><VirtualSystemCollection/></Envelope>", "vApp"),
        ("<Envelope/>", "no VirtualSystem"),
        ("<Other/>", "Envelope"),
        ("<Envelope><VirtualSystem>", "ends inside"),
        (
            r#"<Envelope><DiskSection><Disk ovf:diskId="d" ovf:fileRef="nope"/></DiskSection><VirtualSystem/></Envelope>"#,
            "nope",
        ),
        (
            r#"<Envelope><DiskSection><Disk ovf:diskId="d" ovf:capacity="1" ovf:capacityAllocationUnits="parsecs"/></DiskSection><VirtualSystem/></Envelope>"#,
            "parsecs",
        ),
    ];
    for (text, expected) in cases {
        let err = OvfDescriptor::parse(text).unwrap_err().to_string();
        assert!(err.contains(expected), "{text}: {err}");
    }
}
