#!/usr/bin/env bash
# Build a small OVA laid out as image-builder's node OVAs are: an OVF
# descriptor whose product section names the Kubernetes version (and a
# user-configurable guestinfo property), a streamOptimized VMDK made with
# qemu-img, and a SHA-256 manifest, packed with tar in that order.
# The disk is empty: it stands in for a real node image in the demo and
# against the simulator, which discards uploaded bytes anyway.
#
#   scripts/build-demo-ova.sh OUT_DIR NAME KUBERNETES_VERSION   # prints the OVA's path
set -euo pipefail
out="$1" name="$2" kube="$3"
command -v qemu-img >/dev/null || { echo "error: qemu-img is missing: apt-get install qemu-utils" >&2; exit 2; }
mkdir -p "$out"
work="$(mktemp -d "$out/.build-XXXXXX")"
trap 'rm -rf "$work"' EXIT

disk="$name-disk1.vmdk"
qemu-img create -q -f qcow2 "$work/$name.qcow2" 1G
qemu-img convert -f qcow2 -O vmdk -o subformat=streamOptimized "$work/$name.qcow2" "$work/$disk"
size="$(stat -c %s "$work/$disk")"

cat >"$work/$name.ovf" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf">
  <References>
    <File ovf:id="file1" ovf:href="$disk" ovf:size="$size"/>
  </References>
  <DiskSection>
    <Info>Virtual disks</Info>
    <Disk ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:capacity="1024" ovf:capacityAllocationUnits="byte * 2^20" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <NetworkSection>
    <Info>Logical networks</Info>
    <Network ovf:name="nic0"><Description>The node network</Description></Network>
  </NetworkSection>
  <VirtualSystem ovf:id="$name">
    <Info>A Kubernetes node image</Info>
    <Name>$name</Name>
    <OperatingSystemSection ovf:id="94" vmw:osType="ubuntu64Guest"><Info>Guest OS</Info></OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemType>vmx-15</vssd:VirtualSystemType>
      </System>
      <Item><rasd:ElementName>2 virtual CPUs</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:ElementName>4096 MB of memory</rasd:ElementName><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>4096</rasd:VirtualQuantity></Item>
      <Item><rasd:Address>0</rasd:Address><rasd:ElementName>SCSI controller 0</rasd:ElementName><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceSubType>VirtualSCSI</rasd:ResourceSubType><rasd:ResourceType>6</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:ElementName>Hard disk 1</rasd:ElementName><rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource><rasd:InstanceID>4</rasd:InstanceID><rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>7</rasd:AddressOnParent><rasd:Connection>nic0</rasd:Connection><rasd:ElementName>Network adapter 1</rasd:ElementName><rasd:InstanceID>5</rasd:InstanceID><rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType><rasd:ResourceType>10</rasd:ResourceType></Item>
    </VirtualHardwareSection>
    <ProductSection>
      <Info>Installed software</Info>
      <Product>Ubuntu 22.04 and Kubernetes $kube</Product>
      <Vendor>vkube demo</Vendor>
      <Version>kube-$kube</Version>
      <FullVersion>kube-$kube</FullVersion>
      <Property ovf:userConfigurable="false" ovf:value="$kube" ovf:type="string" ovf:key="KUBERNETES_SEMVER"/>
      <Property ovf:userConfigurable="true" ovf:value="" ovf:type="string" ovf:key="guestinfo.hostname"/>
    </ProductSection>
  </VirtualSystem>
</Envelope>
EOF

(cd "$work" && sha256sum "$name.ovf" "$disk" | awk '{ printf "SHA256(%s)= %s\n", $2, $1 }' >"$name.mf")
tar --format=ustar -C "$work" -cf "$out/$name.ova" "$name.ovf" "$name.mf" "$disk"
echo "$out/$name.ova"
