package main

import (
	"context"
	"strings"
	"testing"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// diskFile is the backing file of a VM's first disk, as a client reads it.
func diskFile(t *testing.T, vm *object.VirtualMachine) (*types.VirtualDisk, string) {
	t.Helper()
	var m mo.VirtualMachine
	if err := vm.Properties(context.Background(), vm.Reference(), []string{"config.hardware.device"}, &m); err != nil {
		t.Fatal(err)
	}
	for _, d := range m.Config.Hardware.Device {
		if disk, ok := d.(*types.VirtualDisk); ok {
			return disk, disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo).FileName
		}
	}
	t.Fatalf("%s has no disk", vm.Reference().Value)
	return nil, ""
}

func cloneOf(t *testing.T, inv inventory, source *object.VirtualMachine, name string) *object.VirtualMachine {
	t.Helper()
	ctx := context.Background()
	task, err := source.Clone(ctx, inv.folder, name, types.VirtualMachineCloneSpec{})
	if err != nil {
		t.Fatal(err)
	}
	info, err := task.WaitForResult(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	return object.NewVirtualMachine(source.Client(), info.Result.(types.ManagedObjectReference))
}

// TestClonesOwnTheirDevices: a clone's disk keeps its own file after the
// template is cloned again, and the template keeps its own, so editing a
// clone's disk as read (vkube grows it) finds the file (see clone_devices.go).
func TestClonesOwnTheirDevices(t *testing.T) {
	inst := startSim(t, nil)
	c := login(t, inst)
	inv := getInventory(t, c)
	ctx := context.Background()
	template := inv.vms[0]
	_, templateFile := diskFile(t, template)

	first := cloneOf(t, inv, template, "first-clone")
	_ = cloneOf(t, inv, template, "second-clone")

	disk, file := diskFile(t, first)
	if !strings.Contains(file, "first-clone/") {
		t.Fatalf("first clone's disk is %q after a second clone, want its own file", file)
	}
	if _, now := diskFile(t, template); now != templateFile {
		t.Errorf("template's disk moved from %q to %q", templateFile, now)
	}

	disk.CapacityInKB *= 2
	spec := types.VirtualMachineConfigSpec{DeviceChange: []types.BaseVirtualDeviceConfigSpec{
		&types.VirtualDeviceConfigSpec{Operation: types.VirtualDeviceConfigSpecOperationEdit, Device: disk},
	}}
	task, err := first.Reconfigure(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Wait(ctx); err != nil {
		t.Fatalf("growing the first clone's disk: %v", err)
	}
}
