package main

import (
	"bufio"
	"context"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vapi/rest"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// runMainEnv makes the test binary behave as the vcsim binary (see TestMain),
// so the real main() is exercised without a separate build.
const runMainEnv = "VKUBE_VCSIM_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		os.Exit(run(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func startSim(t *testing.T, mutate func(*Config)) *Instance {
	t.Helper()
	cfg := DefaultConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	inst, err := Start(cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(inst.Stop)
	return inst
}

func userURL(inst *Instance, user, pass string) *url.URL {
	u := *inst.URL
	u.User = url.UserPassword(user, pass)
	return &u
}

func login(t *testing.T, inst *Instance) *govmomi.Client {
	t.Helper()
	ctx := context.Background()
	c, err := govmomi.NewClient(ctx, userURL(inst, inst.cfg.Username, inst.cfg.Password), true)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	return c
}

func isFault(err error, want interface{}) bool {
	if err == nil || !soap.IsSoapFault(err) {
		return false
	}
	f := soap.ToSoapFault(err).VimFault()
	switch want.(type) {
	case types.InvalidArgument:
		_, ok := f.(types.InvalidArgument)
		return ok
	case types.NotFound:
		_, ok := f.(types.NotFound)
		return ok
	case types.NotAuthenticated:
		_, ok := f.(types.NotAuthenticated)
		return ok
	}
	return false
}

type inventory struct {
	dc     *object.Datacenter
	vms    []*object.VirtualMachine
	folder *object.Folder // the datacenter's vm folder
	root   types.ManagedObjectReference
}

func getInventory(t *testing.T, c *govmomi.Client) inventory {
	t.Helper()
	ctx := context.Background()
	f := find.NewFinder(c.Client, true)
	dc, err := f.DefaultDatacenter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.SetDatacenter(dc)
	vms, err := f.VirtualMachineList(ctx, "*")
	if err != nil || len(vms) < 2 {
		t.Fatalf("need >= 2 VMs: %v (%d)", err, len(vms))
	}
	sort.Slice(vms, func(i, j int) bool { return vms[i].Reference().Value < vms[j].Reference().Value })
	folders, err := dc.Folders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return inventory{dc: dc, vms: vms, folder: folders.VmFolder, root: c.ServiceContent.RootFolder}
}

func TestLoginCredentials(t *testing.T) {
	inst := startSim(t, func(c *Config) { c.Username = "vkube@vsphere.local"; c.Password = "s3cret!" })
	ctx := context.Background()

	if _, err := govmomi.NewClient(ctx, userURL(inst, "vkube@vsphere.local", "wrong"), true); err == nil {
		t.Fatal("SOAP login with wrong password succeeded")
	}
	if _, err := govmomi.NewClient(ctx, userURL(inst, "other", "s3cret!"), true); err == nil {
		t.Fatal("SOAP login with wrong user succeeded")
	}
	c := login(t, inst)

	rc := rest.NewClient(c.Client)
	if err := rc.Login(ctx, url.UserPassword("vkube@vsphere.local", "wrong")); err == nil {
		t.Fatal("REST login with wrong password succeeded")
	}
	if err := rc.Login(ctx, url.UserPassword("nobody", "s3cret!")); err == nil {
		t.Fatal("REST login with wrong user succeeded")
	}
	if err := rc.Login(ctx, url.UserPassword("vkube@vsphere.local", "s3cret!")); err != nil {
		t.Fatalf("REST login: %v", err)
	}
	s, err := rc.Session(ctx)
	if err != nil || s == nil || s.User != "vkube@vsphere.local" {
		t.Fatalf("REST session: %+v %v", s, err)
	}
	// An authenticated REST call works after login.
	var cats []string
	if err := rc.Do(ctx, rc.Resource("/com/vmware/cis/tagging/category").Request(http.MethodGet), &cats); err != nil {
		t.Fatalf("REST list categories: %v", err)
	}
}

func TestPrivilegesAndRoles(t *testing.T) {
	extra := []string{"Cns.Searchable", "InventoryService.Tagging.ObjectAttachable", "StorageProfile.View", "Host.Config.Storage", "Cns.Searchable"}
	inst := startSim(t, func(c *Config) { c.ExtraPrivileges = extra })
	ctx := context.Background()
	c := login(t, inst)

	var am mo.AuthorizationManager
	pc := property.DefaultCollector(c.Client)
	if err := pc.RetrieveOne(ctx, *c.ServiceContent.AuthorizationManager, []string{"privilegeList", "roleList"}, &am); err != nil {
		t.Fatal(err)
	}
	seen := map[string]types.AuthorizationPrivilege{}
	for _, p := range am.PrivilegeList {
		if _, dup := seen[p.PrivId]; dup {
			t.Errorf("duplicate privilege %s", p.PrivId)
		}
		seen[p.PrivId] = p
	}
	for _, id := range append(extra, "VirtualMachine.Interact.PowerOn", "System.Read", "InventoryService.Tagging.AttachTag") {
		if _, ok := seen[id]; !ok {
			t.Errorf("privilegeList lacks %s", id)
		}
	}
	if p := seen["InventoryService.Tagging.ObjectAttachable"]; p.PrivGroupName != "InventoryService.Tagging" || p.Name != p.PrivId || p.OnParent {
		t.Errorf("bad privilege entry %+v", p)
	}
	admin := object.AuthorizationRoleList(am.RoleList).ById(-1)
	if admin == nil || !contains(admin.Privilege, "Cns.Searchable") {
		t.Fatal("Admin role lacks the extra privileges")
	}

	m := object.NewAuthorizationManager(c.Client)
	id, err := m.AddRole(ctx, "vkube-csi", []string{"Cns.Searchable", "StorageProfile.View", "InventoryService.Tagging.ObjectAttachable"})
	if err != nil {
		t.Fatalf("AddRole with extra ids: %v", err)
	}
	if id <= 0 {
		t.Errorf("role id %d, want > 0", id)
	}
	roles, err := m.RoleList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := roles.ById(id)
	if r == nil || r.Name != "vkube-csi" || !contains(r.Privilege, "Cns.Searchable") || !contains(r.Privilege, "System.Read") {
		t.Fatalf("created role: %+v", r)
	}
	if _, err := m.AddRole(ctx, "bogus", []string{"Cns.Searchable", "No.Such.Privilege"}); !isFault(err, types.InvalidArgument{}) {
		t.Fatalf("AddRole with unknown id: want InvalidArgument, got %v", err)
	}
	if err := m.UpdateRole(ctx, id, "vkube-csi", []string{"No.Such.Privilege"}); !isFault(err, types.InvalidArgument{}) {
		t.Fatalf("UpdateRole with unknown id: want InvalidArgument, got %v", err)
	}
	if err := m.UpdateRole(ctx, id, "vkube-csi2", []string{"StorageProfile.View"}); err != nil {
		t.Fatalf("UpdateRole: %v", err)
	}
	if _, err := m.AddRole(ctx, "vkube-csi2", nil); err == nil {
		t.Fatal("AddRole with duplicate name succeeded")
	}
}

func TestSetEntityPermissionsMerge(t *testing.T) {
	inst := startSim(t, nil)
	ctx := context.Background()
	c := login(t, inst)
	inv := getInventory(t, c)
	m := object.NewAuthorizationManager(c.Client)
	dc := inv.dc.Reference()

	set := func(p ...types.Permission) {
		t.Helper()
		if err := m.SetEntityPermissions(ctx, dc, p); err != nil {
			t.Fatalf("SetEntityPermissions: %v", err)
		}
	}
	byPrincipal := func(perms []types.Permission) map[string]types.Permission {
		out := map[string]types.Permission{}
		for _, p := range perms {
			if p.Entity == nil {
				t.Errorf("permission %s has no entity", p.Principal)
			}
			out[p.Principal] = p
		}
		return out
	}

	set(types.Permission{Principal: "alice", RoleId: -2, Propagate: true})
	set(types.Permission{Principal: "bob", RoleId: -1, Propagate: true})
	perms, err := m.RetrieveEntityPermissions(ctx, dc, false)
	if err != nil {
		t.Fatal(err)
	}
	got := byPrincipal(perms)
	if len(perms) != 2 || got["alice"].RoleId != -2 || got["bob"].RoleId != -1 {
		t.Fatalf("after two sets: %+v", perms)
	}
	if *got["alice"].Entity != dc {
		t.Errorf("entity = %v, want %v", got["alice"].Entity, dc)
	}

	set(types.Permission{Principal: "alice", RoleId: -1, Propagate: false})
	perms, _ = m.RetrieveEntityPermissions(ctx, dc, false)
	got = byPrincipal(perms)
	if len(perms) != 2 || got["alice"].RoleId != -1 || got["alice"].Propagate || got["bob"].RoleId != -1 {
		t.Fatalf("after replacing alice: %+v", perms)
	}

	// A group of the same name is a different principal.
	set(types.Permission{Principal: "alice", Group: true, RoleId: -2, Propagate: true})
	perms, _ = m.RetrieveEntityPermissions(ctx, dc, false)
	if len(perms) != 3 {
		t.Fatalf("user and group alice must coexist: %+v", perms)
	}

	// Unknown role -> NotFound.
	if err := m.SetEntityPermissions(ctx, dc, []types.Permission{{Principal: "x", RoleId: 4242}}); !isFault(err, types.NotFound{}) {
		t.Fatalf("unknown role: want NotFound, got %v", err)
	}

	// Inherited: a VM sees propagating permissions of its ancestors only.
	vm := inv.vms[0].Reference()
	perms, err = m.RetrieveEntityPermissions(ctx, vm, true)
	if err != nil {
		t.Fatal(err)
	}
	got = map[string]types.Permission{}
	for _, p := range perms {
		if p.Entity == nil {
			t.Fatalf("inherited permission without entity: %+v", p)
		}
		got[p.Principal] = p
	}
	if p, ok := got["bob"]; !ok || *p.Entity != dc {
		t.Errorf("inherited: bob from datacenter missing: %+v", perms)
	}
	if _, ok := got[inst.cfg.Username]; !ok {
		t.Errorf("inherited: admin user on root folder missing: %+v", perms)
	}
	for _, p := range perms {
		if p.Principal == "alice" && !p.Group {
			t.Errorf("inherited: non-propagating alice must not be inherited: %+v", p)
		}
	}
	if perms, _ := m.RetrieveEntityPermissions(ctx, vm, false); len(perms) != 0 {
		t.Errorf("VM has no own permissions, got %+v", perms)
	}

	// RemoveEntityPermission removes only that principal.
	if err := m.RemoveEntityPermission(ctx, dc, "bob", false); err != nil {
		t.Fatal(err)
	}
	if err := m.RemoveEntityPermission(ctx, dc, "bob", false); !isFault(err, types.NotFound{}) {
		t.Fatalf("removing absent permission: want NotFound, got %v", err)
	}
	perms, _ = m.RetrieveEntityPermissions(ctx, dc, false)
	if got := byPrincipal(perms); len(perms) != 2 || got["alice"].RoleId == 0 {
		t.Fatalf("after removing bob: %+v", perms)
	}

	all, err := m.RetrieveAllPermissions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range all {
		if p.Entity == nil {
			t.Fatalf("RetrieveAllPermissions: entity missing in %+v", p)
		}
	}
}

func TestUserPrivileges(t *testing.T) {
	inst := startSim(t, nil)
	ctx := context.Background()
	c := login(t, inst)
	inv := getInventory(t, c)
	m := object.NewAuthorizationManager(c.Client)
	dc, vm0, vm1 := inv.dc.Reference(), inv.vms[0].Reference(), inv.vms[1].Reference()

	powerOn, err := m.AddRole(ctx, "power-on", []string{"VirtualMachine.Interact.PowerOn"})
	if err != nil {
		t.Fatal(err)
	}
	mustSet := func(e types.ManagedObjectReference, p types.Permission) {
		t.Helper()
		if err := m.SetEntityPermissions(ctx, e, []types.Permission{p}); err != nil {
			t.Fatal(err)
		}
	}
	// carol: Admin on the datacenter, NoAccess on vm0 (nearest wins).
	mustSet(dc, types.Permission{Principal: "carol", RoleId: -1, Propagate: true})
	mustSet(vm0, types.Permission{Principal: "carol", RoleId: -5, Propagate: true})
	// dave: power-on on the datacenter without propagation, ReadOnly on the vm folder.
	mustSet(dc, types.Permission{Principal: "dave", RoleId: powerOn, Propagate: false})
	mustSet(inv.folder.Reference(), types.Permission{Principal: "dave", RoleId: -2, Propagate: true})

	fetch := func(user string, e ...types.ManagedObjectReference) [][]string {
		t.Helper()
		res, err := m.FetchUserPrivilegeOnEntities(ctx, e, user)
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != len(e) {
			t.Fatalf("got %d results for %d entities", len(res), len(e))
		}
		out := make([][]string, len(res))
		for i, r := range res {
			if r.Entity != e[i] {
				t.Errorf("result %d entity %v, want %v", i, r.Entity, e[i])
			}
			out[i] = r.Privileges
		}
		return out
	}

	r := fetch("carol", dc, vm0, vm1)
	if !contains(r[0], "Datacenter.Reconfigure") || !contains(r[0], "InventoryService.Tagging.AttachTag") {
		t.Errorf("carol on dc: %v", r[0])
	}
	if len(r[1]) != 0 {
		t.Errorf("carol on vm0 (NoAccess nearest): want none, got %v", r[1])
	}
	if !contains(r[2], "VirtualMachine.Interact.PowerOn") {
		t.Errorf("carol on vm1 (Admin inherited): %v", r[2])
	}

	r = fetch("dave", dc, vm0)
	if !contains(r[0], "VirtualMachine.Interact.PowerOn") || !contains(r[0], "System.Read") {
		t.Errorf("dave on dc: %v", r[0])
	}
	if contains(r[1], "VirtualMachine.Interact.PowerOn") || !contains(r[1], "System.Read") {
		t.Errorf("dave on vm0 (propagate=false on dc, ReadOnly on folder): %v", r[1])
	}
	// Without the folder permission dave has nothing on the VM.
	if err := m.RemoveEntityPermission(ctx, inv.folder.Reference(), "dave", false); err != nil {
		t.Fatal(err)
	}
	if r = fetch("dave", vm0); len(r[0]) != 0 {
		t.Errorf("dave on vm0 after removing folder permission: %v", r[0])
	}

	if r = fetch("eve", dc, vm0, inv.root); len(r[0])+len(r[1])+len(r[2]) != 0 {
		t.Errorf("user without permissions has privileges: %v", r)
	}
	if r = fetch(inst.cfg.Username, vm0); !contains(r[0], "VirtualMachine.Config.AddExistingDisk") {
		t.Errorf("admin user on vm0: %v", r[0])
	}

	hp, err := m.HasUserPrivilegeOnEntities(ctx, []types.ManagedObjectReference{vm0, vm1}, "carol", []string{"VirtualMachine.Interact.PowerOn", "System.Read"})
	if err != nil {
		t.Fatal(err)
	}
	if len(hp) != 2 || hp[0].Entity != vm0 || hp[0].PrivAvailability[0].IsGranted || hp[0].PrivAvailability[1].IsGranted ||
		!hp[1].PrivAvailability[0].IsGranted || !hp[1].PrivAvailability[1].IsGranted || hp[1].PrivAvailability[0].PrivId != "VirtualMachine.Interact.PowerOn" {
		t.Errorf("HasUserPrivilegeOnEntities carol: %+v", hp)
	}
	hp, err = m.HasUserPrivilegeOnEntities(ctx, []types.ManagedObjectReference{dc}, "eve", []string{"System.View"})
	if err != nil || hp[0].PrivAvailability[0].IsGranted {
		t.Errorf("HasUserPrivilegeOnEntities eve: %+v %v", hp, err)
	}

	// Unknown entity -> ManagedObjectNotFound.
	bogus := types.ManagedObjectReference{Type: "VirtualMachine", Value: "vm-does-not-exist"}
	if _, err := m.FetchUserPrivilegeOnEntities(ctx, []types.ManagedObjectReference{bogus}, "carol"); err == nil {
		t.Error("FetchUserPrivilegeOnEntities on unknown entity succeeded")
	}
}

func TestHasPrivilegeOnEntitiesOwnSession(t *testing.T) {
	inst := startSim(t, nil)
	ctx := context.Background()
	c := login(t, inst)
	inv := getInventory(t, c)
	m := object.NewAuthorizationManager(c.Client)
	vm0, vm1 := inv.vms[0].Reference(), inv.vms[1].Reference()

	us, err := c.SessionManager.UserSession(ctx)
	if err != nil || us == nil {
		t.Fatalf("UserSession: %v", err)
	}
	// Restrict the session's own user on vm0.
	if err := m.SetEntityPermissions(ctx, vm0, []types.Permission{{Principal: inst.cfg.Username, RoleId: -2, Propagate: true}}); err != nil {
		t.Fatal(err)
	}
	privs := []string{"VirtualMachine.Interact.PowerOn", "System.Read"}
	res, err := methods.HasPrivilegeOnEntities(ctx, c.Client, &types.HasPrivilegeOnEntities{
		This:      *c.ServiceContent.AuthorizationManager,
		Entity:    []types.ManagedObjectReference{vm0, vm1},
		SessionId: us.Key,
		PrivId:    privs,
	})
	if err != nil {
		t.Fatal(err)
	}
	ep := res.Returnval
	if len(ep) != 2 || ep[0].Entity != vm0 || ep[0].PrivAvailability[0].IsGranted || !ep[0].PrivAvailability[1].IsGranted ||
		!ep[1].PrivAvailability[0].IsGranted || !ep[1].PrivAvailability[1].IsGranted {
		t.Errorf("HasPrivilegeOnEntities: %+v", ep)
	}

	single, err := m.HasPrivilegeOnEntity(ctx, vm0, us.Key, privs)
	if err != nil || len(single) != 2 || single[0] || !single[1] {
		t.Errorf("HasPrivilegeOnEntity: %v %v", single, err)
	}

	// An unknown session has no privileges.
	res, err = methods.HasPrivilegeOnEntities(ctx, c.Client, &types.HasPrivilegeOnEntities{
		This: *c.ServiceContent.AuthorizationManager, Entity: []types.ManagedObjectReference{vm1}, SessionId: "nope", PrivId: privs,
	})
	if err != nil || res.Returnval[0].PrivAvailability[1].IsGranted {
		t.Errorf("unknown session: %+v %v", res, err)
	}
}

func TestMethodDelay(t *testing.T) {
	const delay = 1500 * time.Millisecond
	inst := startSim(t, func(c *Config) { c.MethodDelay = map[string]int{"CloneVM_Task": int(delay / time.Millisecond)} })
	ctx := context.Background()
	c := login(t, inst)
	inv := getInventory(t, c)

	// Other calls are not delayed.
	start := time.Now()
	if _, err := inv.vms[0].PowerState(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d >= delay {
		t.Errorf("undelayed call took %v", d)
	}

	start = time.Now()
	task, err := inv.vms[0].Clone(ctx, inv.folder, "delayed-clone", types.VirtualMachineCloneSpec{})
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < delay {
		t.Errorf("CloneVM_Task took %v, want >= %v", d, delay)
	}
}

// TestExpireSessionsEvery: every SOAP session ends on the schedule even while
// it is busy, together with the container views it owned; new logins work.
func TestExpireSessionsEvery(t *testing.T) {
	const every = 300 * time.Millisecond
	inst := startSim(t, func(c *Config) { c.ExpireSessionsEvery = every })
	ctx := context.Background()
	first, second := login(t, inst), login(t, inst)
	views := view.NewManager(first.Client)
	cv, err := views.CreateContainerView(ctx, first.ServiceContent.RootFolder, []string{"VirtualMachine"}, true)
	if err != nil {
		t.Fatal(err)
	}
	// Busy: a call every 20 ms, so an idle timeout would never end this session.
	start := time.Now()
	for {
		_, err := methods.GetCurrentTime(ctx, first.Client)
		if isFault(err, types.NotAuthenticated{}) {
			break
		}
		if err != nil {
			t.Fatalf("busy session: %v", err)
		}
		if time.Since(start) > 5*every {
			t.Fatalf("a busy session was not expired within %v", 5*every)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := methods.GetCurrentTime(ctx, second.Client); !isFault(err, types.NotAuthenticated{}) {
		t.Fatalf("the other session: want NotAuthenticated, got %v", err)
	}
	// The view belonged to the ended session: a new session cannot read it.
	fresh := login(t, inst)
	var content []types.ObjectContent
	err = fresh.RetrieveOne(ctx, cv.Reference(), []string{"view"}, &content)
	if !soap.IsSoapFault(err) {
		t.Fatalf("the old session's container view: want ManagedObjectNotFound, got %v (%+v)", err, content)
	}
	if _, ok := soap.ToSoapFault(err).VimFault().(types.ManagedObjectNotFound); !ok {
		t.Fatalf("the old session's container view: want ManagedObjectNotFound, got %v", err)
	}
	if _, err := methods.GetCurrentTime(ctx, fresh.Client); err != nil {
		t.Fatalf("a fresh login works: %v", err)
	}
}

// TestSessionIdleTimeout must stay the last test that starts a simulator
// in-process: simulator.SessionIdleTimeout is a global read by session watch
// goroutines, and changing it back for a later Start would race with them.
func TestSessionIdleTimeout(t *testing.T) {
	inst := startSim(t, func(c *Config) { c.SessionIdleTimeout = time.Second })
	ctx := context.Background()
	c := login(t, inst)
	rc := rest.NewClient(c.Client)
	if err := rc.Login(ctx, url.UserPassword(inst.cfg.Username, inst.cfg.Password)); err != nil {
		t.Fatal(err)
	}
	if _, err := methods.GetCurrentTime(ctx, c.Client); err != nil {
		t.Fatalf("fresh session: %v", err)
	}
	time.Sleep(3 * time.Second)
	if _, err := methods.GetCurrentTime(ctx, c.Client); !isFault(err, types.NotAuthenticated{}) {
		t.Fatalf("idle SOAP session: want NotAuthenticated, got %v", err)
	}
	if s, err := rc.Session(ctx); err == nil && s != nil {
		t.Fatalf("idle REST session still valid: %+v", s)
	}
	// A new login works.
	login(t, inst)
}

func TestParseFlags(t *testing.T) {
	dir := t.TempDir()
	pf := dir + "/privs.txt"
	if err := os.WriteFile(pf, []byte("# comment\nCns.Searchable\n\n  StorageProfile.View  # trailing\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pf2 := dir + "/privs2.txt"
	if err := os.WriteFile(pf2, []byte("Cns.Searchable\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseFlags([]string{"--listen", "127.0.0.1:9999", "-tls=false", "-username", "u", "-password=p",
		"-dc", "2", "-cluster", "3", "-host", "4", "-standalone-host", "0", "-vm", "5", "-ds", "2", "-pg", "3", "-pod", "1",
		"-folder", "1", "-delay", "7", "-method-delay", "CloneVM_Task=3000, PowerOnVM_Task=500", "-delay-jitter", "0.5",
		"-session-idle-timeout", "90s", "-privileges", pf, "-privileges", pf2}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Listen: "127.0.0.1:9999", TLS: false, Username: "u", Password: "p", Datacenter: 2, Cluster: 3, ClusterHost: 4,
		StandaloneHost: 0, Machine: 5, Datastore: 2, Portgroup: 3, Pod: 1, Folder: 1, Delay: 7, DelayJitter: 0.5,
		SessionIdleTimeout: 90 * time.Second}
	if cfg.Listen != want.Listen || cfg.TLS || cfg.Username != "u" || cfg.Password != "p" || cfg.Datacenter != 2 || cfg.Cluster != 3 ||
		cfg.ClusterHost != 4 || cfg.StandaloneHost != 0 || cfg.Machine != 5 || cfg.Datastore != 2 || cfg.Portgroup != 3 || cfg.Pod != 1 ||
		cfg.Folder != 1 || cfg.Delay != 7 || cfg.DelayJitter != 0.5 || cfg.SessionIdleTimeout != want.SessionIdleTimeout {
		t.Errorf("cfg = %+v", cfg)
	}
	if cfg.MethodDelay["CloneVM_Task"] != 3000 || cfg.MethodDelay["PowerOnVM_Task"] != 500 {
		t.Errorf("method delay = %v", cfg.MethodDelay)
	}
	if strings.Join(cfg.ExtraPrivileges, ",") != "Cns.Searchable,StorageProfile.View,Cns.Searchable" {
		t.Errorf("privileges = %v", cfg.ExtraPrivileges)
	}
	if cfg, err := ParseFlags([]string{"-expire-sessions-every", "700ms"}, os.Stderr); err != nil || cfg.ExpireSessionsEvery != 700*time.Millisecond {
		t.Errorf("-expire-sessions-every 700ms: %v %v", cfg.ExpireSessionsEvery, err)
	}
	if _, err := ParseFlags([]string{"-expire-sessions-every", "-1s"}, os.Stderr); err == nil {
		t.Error("negative -expire-sessions-every accepted")
	}
	if _, err := ParseFlags([]string{"-method-delay", "CloneVM_Task"}, os.Stderr); err == nil {
		t.Error("bad -method-delay accepted")
	}
	if _, err := ParseFlags([]string{"-privileges", dir + "/missing"}, os.Stderr); err == nil {
		t.Error("missing -privileges file accepted")
	}
}

// TestBinary runs the harness as a process: the URL must be the first stdout
// line, logins must work, and SIGTERM must end it with status 0. It runs the
// binary named by $VCSIM_BIN if set, else this test binary acting as main().
func TestBinary(t *testing.T) {
	bin, env := os.Getenv("VCSIM_BIN"), os.Environ()
	if bin == "" {
		bin = os.Args[0]
		env = append(env, runMainEnv+"=1")
	}
	dir := t.TempDir()
	pf := dir + "/privs.txt"
	if err := os.WriteFile(pf, []byte("Cns.Searchable\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--username", "admin@vsphere.local", "-password", "pw", "-dc", "1", "-vm", "1", "--privileges", pf)
	cmd.Env = env
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := false
	defer func() {
		if !done {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()

	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- line
	}()
	var first string
	select {
	case first = <-lines:
	case <-time.After(60 * time.Second):
		t.Fatal("no URL on stdout within 60s")
	}
	first = strings.TrimSpace(first)
	if !regexp.MustCompile(`^https://127\.0\.0\.1:[0-9]+/sdk$`).MatchString(first) {
		t.Fatalf("first stdout line %q is not the URL", first)
	}
	u, _ := url.Parse(first)
	ctx := context.Background()
	if _, err := govmomi.NewClient(ctx, withUser(u, "admin@vsphere.local", "bad"), true); err == nil {
		t.Error("wrong password accepted by binary")
	}
	c, err := govmomi.NewClient(ctx, withUser(u, "admin@vsphere.local", "pw"), true)
	if err != nil {
		t.Fatalf("login to binary: %v", err)
	}
	m := object.NewAuthorizationManager(c.Client)
	if _, err := m.AddRole(ctx, "csi", []string{"Cns.Searchable"}); err != nil {
		t.Errorf("AddRole with -privileges id: %v", err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	select {
	case err := <-waitErr:
		done = true
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("binary did not exit within 30s of SIGTERM")
	}
}

func withUser(u *url.URL, user, pass string) *url.URL {
	v := *u
	v.User = url.UserPassword(user, pass)
	return &v
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestDatastoreURLsHaveTheVcenterForm(t *testing.T) {
	inst := startSim(t, func(c *Config) { c.Datastore = 2 })
	ctx := context.Background()
	c := login(t, inst)
	refs, err := find.NewFinder(c.Client).DatastoreList(ctx, "/DC0/datastore/*")
	if err != nil {
		t.Fatal(err)
	}
	var objs []types.ManagedObjectReference
	for _, ds := range refs {
		objs = append(objs, ds.Reference())
	}
	var datastores []mo.Datastore
	if err := property.DefaultCollector(c.Client).Retrieve(ctx, objs, []string{"summary", "info"}, &datastores); err != nil {
		t.Fatal(err)
	}
	if len(datastores) == 0 {
		t.Fatal("no datastores")
	}
	for _, ds := range datastores {
		url := ds.Summary.Url
		if !strings.HasPrefix(url, "ds:///vmfs/volumes/") || !strings.HasSuffix(url, "/") {
			t.Errorf("%s: summary.url %q is not a vCenter datastore URL", ds.Summary.Name, url)
		}
		if ds.Info.GetDatastoreInfo().Url == url {
			t.Errorf("%s: info.url must keep the simulator's directory", ds.Summary.Name)
		}
	}
}
