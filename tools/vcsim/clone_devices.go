package main

// clone_devices.go gives every VM its own device objects.
//
// The stock simulator's CloneVM_Task hands the source VM's device objects
// (pointers) to the new VM: the source, and every clone made from it, share
// one VirtualDisk, one NIC, one controller. Each further clone of the same
// template first clears the shared disk's file name and then sets it to its
// own new .vmdk, so an earlier clone's disk names the latest clone's file (or
// none, or one whose -flat.vmdk does not exist yet while that clone is being
// made). A client that edits a clone's disk as it read it (vkube grows the
// disk of a fresh clone) then gets FileNotFound, depending on how its reads
// interleave with other clones: the race seen under the bench's task delays.
// vCenter gives every VM its own devices, so this harness deep-copies a VM's
// device list whenever the simulator sets it (a registry update of
// `config.hardware.device`), and gives the source of a clone back the devices
// it had before the clone changed them through the shared pointers.

import (
	"reflect"
	"sync"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// deviceOwner is a registry handler (simulator.RegisterObject). It keeps, per
// VM, a copy of the devices the VM was last given, so a source whose devices a
// clone changed through the shared pointers can be given its own back.
type deviceOwner struct {
	mu   sync.Mutex
	last map[types.ManagedObjectReference][]types.BaseVirtualDevice
}

func (*deviceOwner) Reference() types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: "VkubeDeviceOwner", Value: "device-owner"}
}

func (*deviceOwner) PutObject(mo.Reference) {}

func (o *deviceOwner) RemoveObject(ref types.ManagedObjectReference) {
	o.mu.Lock()
	delete(o.last, ref)
	o.mu.Unlock()
}

// UpdateObject runs inside the simulator's update, with the object locked by
// the method that changes it; a clone runs under its source's lock, so the
// source may be repaired here.
func (o *deviceOwner) UpdateObject(obj mo.Reference, changes []types.PropertyChange) {
	vm, ok := obj.(*mo.VirtualMachine)
	if !ok || vm.Config == nil {
		return
	}
	for i := range changes {
		if changes[i].Name != "config.hardware.device" {
			continue
		}
		o.restoreSharers(vm.Self, vm.Config.Hardware.Device)
		own := copyDevices(vm.Config.Hardware.Device)
		vm.Config.Hardware.Device = own
		changes[i].Val = types.ArrayOfVirtualDevice{VirtualDevice: own}
		o.mu.Lock()
		o.last[vm.Self] = copyDevices(own)
		o.mu.Unlock()
	}
}

// restoreSharers gives every other VM holding one of `devices` the devices it
// was last given itself.
func (o *deviceOwner) restoreSharers(self types.ManagedObjectReference, devices []types.BaseVirtualDevice) {
	shared := make(map[types.BaseVirtualDevice]bool, len(devices))
	for _, d := range devices {
		shared[d] = true
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for ref, last := range o.last {
		if ref == self {
			continue
		}
		other, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine)
		if !ok || other.Config == nil {
			continue
		}
		for _, d := range other.Config.Hardware.Device {
			if shared[d] {
				other.Config.Hardware.Device = copyDevices(last)
				break
			}
		}
	}
}

// InstallDeviceOwner gives every VM of the model its own devices and keeps
// it so for VMs made later.
func InstallDeviceOwner() {
	owner := &deviceOwner{last: make(map[types.ManagedObjectReference][]types.BaseVirtualDevice)}
	for _, obj := range simulator.Map.All("VirtualMachine") {
		vm, ok := obj.(*simulator.VirtualMachine)
		if !ok || vm.Config == nil {
			continue
		}
		vm.Config.Hardware.Device = copyDevices(vm.Config.Hardware.Device)
		owner.last[vm.Self] = copyDevices(vm.Config.Hardware.Device)
	}
	simulator.Map.AddHandler(owner)
}

func copyDevices(devices []types.BaseVirtualDevice) []types.BaseVirtualDevice {
	return deepCopy(reflect.ValueOf(devices)).Interface().([]types.BaseVirtualDevice)
}

// deepCopy copies v and everything it points to. Unexported struct fields
// (time.Time's) are copied by value.
func deepCopy(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Ptr:
		if v.IsNil() {
			return v
		}
		out := reflect.New(v.Type().Elem())
		out.Elem().Set(deepCopy(v.Elem()))
		return out
	case reflect.Interface:
		if v.IsNil() {
			return v
		}
		out := reflect.New(v.Type()).Elem()
		out.Set(deepCopy(v.Elem()))
		return out
	case reflect.Slice:
		if v.IsNil() {
			return v
		}
		out := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := 0; i < v.Len(); i++ {
			out.Index(i).Set(deepCopy(v.Index(i)))
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return v
		}
		out := reflect.MakeMapWithSize(v.Type(), v.Len())
		for _, key := range v.MapKeys() {
			out.SetMapIndex(key, deepCopy(v.MapIndex(key)))
		}
		return out
	case reflect.Struct:
		out := reflect.New(v.Type()).Elem()
		out.Set(v)
		for i := 0; i < v.NumField(); i++ {
			if out.Field(i).CanSet() {
				out.Field(i).Set(deepCopy(v.Field(i)))
			}
		}
		return out
	case reflect.Array:
		out := reflect.New(v.Type()).Elem()
		for i := 0; i < v.Len(); i++ {
			out.Index(i).Set(deepCopy(v.Index(i)))
		}
		return out
	default:
		return v
	}
}
