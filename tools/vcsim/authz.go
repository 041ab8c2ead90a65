package main

// authz.go replaces the simulator's AuthorizationManager with one whose
// semantics follow vCenter closely enough for permission-checking code to be
// tested for real. govmomi 0.24's simulator ships an empty privilegeList,
// validates roles against an Admin role lacking vSphere 7/8 privilege ids,
// replaces an entity's whole permission list on SetEntityPermissions and
// answers every privilege query with "granted". Only the simulator side is
// changed: clients call exactly the vSphere API.
//
// The replacement is registered in the simulator registry under the same
// managed object reference; the simulator dispatches SOAP calls by reflection
// on the registered object, so the methods below are what clients reach.

import (
	"fmt"
	"sort"
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// Well-known system role ids.
const (
	roleAdmin    int32 = -1
	roleReadOnly int32 = -2
	roleNoAccess int32 = -5
)

// systemPrivileges are implied by every role that can be granted (except NoAccess).
var systemPrivileges = []string{"System.Anonymous", "System.Read", "System.View"}

// AuthzManager is the harness' AuthorizationManager. The embedded mo type
// must stay the first field: the simulator's PropertyCollector digs it out by
// position to serve privilegeList / roleList / description.
type AuthzManager struct {
	mo.AuthorizationManager

	known       map[string]struct{} // every privilege id in privilegeList
	permissions map[types.ManagedObjectReference][]types.Permission
	nextRoleID  int32
}

// InstallAuthz replaces the AuthorizationManager registered under ref in
// simulator.Map. The existing roles and permissions are carried over, extra
// privilege ids are registered, and adminUser gets the Admin role on the root
// folder (propagating).
func InstallAuthz(ref types.ManagedObjectReference, extra []string, adminUser string) (*AuthzManager, error) {
	orig, ok := simulator.Map.Get(ref).(*simulator.AuthorizationManager)
	if !ok {
		return nil, fmt.Errorf("no simulator AuthorizationManager at %s", ref)
	}

	m := &AuthzManager{
		known:       make(map[string]struct{}),
		permissions: make(map[types.ManagedObjectReference][]types.Permission),
	}
	m.Self = orig.Self

	// Deep copy of the roles: their privilege slices are shared with package globals.
	m.RoleList = make([]types.AuthorizationRole, len(orig.RoleList))
	for i, r := range orig.RoleList {
		r.Privilege = append([]string(nil), r.Privilege...)
		m.RoleList[i] = r
		for _, id := range r.Privilege {
			m.known[id] = struct{}{}
		}
		if r.RoleId >= m.nextRoleID {
			m.nextRoleID = r.RoleId + 1
		}
	}
	if m.nextRoleID < 1 {
		m.nextRoleID = 1
	}
	for _, id := range extra {
		if id = strings.TrimSpace(id); id != "" {
			m.known[id] = struct{}{}
		}
	}

	all := m.allPrivileges()
	m.PrivilegeList = make([]types.AuthorizationPrivilege, 0, len(all))
	groups := make(map[string]struct{})
	var privDesc, groupDesc []types.BaseElementDescription
	for _, id := range all {
		group := privGroup(id)
		m.PrivilegeList = append(m.PrivilegeList, types.AuthorizationPrivilege{
			PrivId:        id,
			OnParent:      false,
			Name:          id,
			PrivGroupName: group,
		})
		privDesc = append(privDesc, &types.ElementDescription{
			Description: types.Description{Label: id, Summary: id},
			Key:         id,
		})
		if _, ok := groups[group]; !ok {
			groups[group] = struct{}{}
			groupDesc = append(groupDesc, &types.ElementDescription{
				Description: types.Description{Label: group, Summary: group},
				Key:         group,
			})
		}
	}
	m.Description = types.AuthorizationDescription{Privilege: privDesc, PrivilegeGroup: groupDesc}

	// The Admin role holds every privilege, including the extra ids.
	for i := range m.RoleList {
		if m.RoleList[i].RoleId == roleAdmin {
			m.RoleList[i].Privilege = append([]string(nil), all...)
		}
	}

	// Carry over the simulator's default permissions (root folder, Admin).
	if body, ok := orig.RetrieveAllPermissions(&types.RetrieveAllPermissions{This: ref}).(*methods.RetrieveAllPermissionsBody); ok && body.Res != nil {
		for _, p := range body.Res.Returnval {
			if p.Entity == nil {
				continue
			}
			m.setPermission(*p.Entity, p)
		}
	}

	if adminUser != "" {
		m.setPermission(rootFolderRef(), types.Permission{
			Principal: adminUser,
			Group:     false,
			RoleId:    roleAdmin,
			Propagate: true,
		})
	}

	simulator.Map.Put(m)
	return m, nil
}

func rootFolderRef() types.ManagedObjectReference {
	si := simulator.Map.Get(types.ManagedObjectReference{Type: "ServiceInstance", Value: "ServiceInstance"}).(*simulator.ServiceInstance)
	return si.Content.RootFolder
}

// privGroup returns the privilege group of id: everything before the last dot.
func privGroup(id string) string {
	if i := strings.LastIndexByte(id, '.'); i > 0 {
		return id[:i]
	}
	return id
}

func (m *AuthzManager) allPrivileges() []string {
	all := make([]string, 0, len(m.known))
	for id := range m.known {
		all = append(all, id)
	}
	sort.Strings(all)
	return all
}

// normPrincipal makes "DOMAIN\user" and "user@domain" comparable, case-insensitively.
func normPrincipal(p string) string {
	p = strings.ToLower(strings.TrimSpace(p))
	if i := strings.IndexByte(p, '\\'); i >= 0 {
		p = p[i+1:] + "@" + p[:i]
	}
	return p
}

func samePrincipal(a, b string) bool { return normPrincipal(a) == normPrincipal(b) }

func registry(ctx *simulator.Context) *simulator.Registry {
	if ctx != nil && ctx.Map != nil {
		return ctx.Map
	}
	return simulator.Map
}

func notFound(ref types.ManagedObjectReference) *soap.Fault {
	return simulator.Fault(fmt.Sprintf("managed object not found: %s", ref), &types.ManagedObjectNotFound{Obj: ref})
}

// editableRole is the role a client may change or remove: it must exist and
// must not be a system role (vCenter refuses those with InvalidArgument).
func (m *AuthzManager) editableRole(id int32) (*types.AuthorizationRole, *soap.Fault) {
	role := m.role(id)
	if role == nil {
		return nil, simulator.Fault(fmt.Sprintf("role %d not found", id), &types.NotFound{})
	}
	if role.System {
		return nil, invalidArgument("roleId")
	}
	return role, nil
}

func invalidArgument(prop string) *soap.Fault {
	return simulator.Fault("", &types.InvalidArgument{InvalidProperty: prop})
}

// ancestry returns ref followed by its ancestors, nearest first, following the
// parent links the simulator models (VM -> VM folder, host -> cluster,
// resource pool -> parent pool/cluster, ...).
func ancestry(r *simulator.Registry, ref types.ManagedObjectReference) ([]types.ManagedObjectReference, *soap.Fault) {
	obj := r.Get(ref)
	if obj == nil {
		return nil, notFound(ref)
	}
	chain := []types.ManagedObjectReference{ref}
	seen := map[types.ManagedObjectReference]bool{ref: true}
	for {
		e, ok := obj.(mo.Entity)
		if !ok {
			return chain, nil
		}
		parent := e.Entity().Parent
		if parent == nil || seen[*parent] {
			return chain, nil
		}
		obj = r.Get(*parent)
		if obj == nil {
			return chain, nil
		}
		seen[*parent] = true
		chain = append(chain, *parent)
	}
}

func (m *AuthzManager) role(id int32) *types.AuthorizationRole {
	for i := range m.RoleList {
		if m.RoleList[i].RoleId == id {
			return &m.RoleList[i]
		}
	}
	return nil
}

// rolePrivileges returns the privilege set granted by a role.
func (m *AuthzManager) rolePrivileges(id int32) map[string]struct{} {
	set := make(map[string]struct{})
	switch id {
	case roleNoAccess:
		return set
	case roleAdmin:
		for p := range m.known {
			set[p] = struct{}{}
		}
		return set
	}
	role := m.role(id)
	if role == nil {
		return set
	}
	for _, p := range role.Privilege {
		set[p] = struct{}{}
	}
	// View (-3) and Anonymous (-4) cannot be granted and keep their own lists;
	// every other role implies the System.* privileges.
	if id == roleReadOnly || id > 0 || id == -6 {
		for _, p := range systemPrivileges {
			set[p] = struct{}{}
		}
	}
	return set
}

// effectiveRole finds the role userName holds on ref: the permission for the
// user on the nearest entity wins; a non-propagating permission applies to its
// own entity only. ok=false when the user has no applicable permission.
func (m *AuthzManager) effectiveRole(r *simulator.Registry, ref types.ManagedObjectReference, userName string) (int32, bool, *soap.Fault) {
	chain, fault := ancestry(r, ref)
	if fault != nil {
		return 0, false, fault
	}
	if userName == "" {
		return 0, false, nil
	}
	for i, e := range chain {
		for _, p := range m.permissions[e] {
			if p.Group || !samePrincipal(p.Principal, userName) {
				continue
			}
			if i == 0 || p.Propagate {
				return p.RoleId, true, nil
			}
		}
	}
	return 0, false, nil
}

func (m *AuthzManager) userPrivileges(r *simulator.Registry, ref types.ManagedObjectReference, userName string) (map[string]struct{}, *soap.Fault) {
	roleID, ok, fault := m.effectiveRole(r, ref, userName)
	if fault != nil {
		return nil, fault
	}
	if !ok {
		return map[string]struct{}{}, nil
	}
	return m.rolePrivileges(roleID), nil
}

func sortedKeys(set map[string]struct{}) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (m *AuthzManager) entityPrivileges(r *simulator.Registry, entities []types.ManagedObjectReference, userName string, privIDs []string) ([]types.EntityPrivilege, *soap.Fault) {
	var out []types.EntityPrivilege
	for _, e := range entities {
		set, fault := m.userPrivileges(r, e, userName)
		if fault != nil {
			return nil, fault
		}
		ep := types.EntityPrivilege{Entity: e}
		for _, id := range privIDs {
			_, granted := set[id]
			ep.PrivAvailability = append(ep.PrivAvailability, types.PrivilegeAvailability{PrivId: id, IsGranted: granted})
		}
		out = append(out, ep)
	}
	return out, nil
}

// sessionUser returns the user name of sessionID ("" if unknown).
func sessionUser(ctx *simulator.Context, sessionID string) string {
	if ctx == nil || ctx.Session == nil {
		return ""
	}
	if ctx.Session.Key == sessionID {
		return ctx.Session.UserName
	}
	// The per-session view of the SessionManager lists every active session.
	if sm, ok := ctx.Session.Get(simulator.Map.SessionManager().Reference()).(*simulator.SessionManager); ok {
		for _, s := range sm.SessionList {
			if s.Key == sessionID {
				return s.UserName
			}
		}
	}
	return ""
}

// --- permissions -----------------------------------------------------------

// setPermission stores p on entity, replacing the entry of the same principal.
func (m *AuthzManager) setPermission(entity types.ManagedObjectReference, p types.Permission) {
	e := entity
	p.Entity = &e
	list := m.permissions[entity]
	for i := range list {
		if list[i].Group == p.Group && samePrincipal(list[i].Principal, p.Principal) {
			list[i] = p
			return
		}
	}
	m.permissions[entity] = append(list, p)
}

func (m *AuthzManager) validatePermissions(r *simulator.Registry, entity types.ManagedObjectReference, perms []types.Permission) *soap.Fault {
	if r.Get(entity) == nil {
		return notFound(entity)
	}
	for _, p := range perms {
		if strings.TrimSpace(p.Principal) == "" {
			return invalidArgument("principal")
		}
		if m.role(p.RoleId) == nil {
			return simulator.Fault(fmt.Sprintf("role %d not found", p.RoleId), &types.NotFound{})
		}
	}
	return nil
}

func clonePermissions(in []types.Permission) []types.Permission {
	out := make([]types.Permission, len(in))
	for i, p := range in {
		if p.Entity != nil {
			e := *p.Entity
			p.Entity = &e
		}
		out[i] = p
	}
	return out
}

func (m *AuthzManager) allPermissions(keep func(types.Permission) bool) []types.Permission {
	refs := make([]types.ManagedObjectReference, 0, len(m.permissions))
	for ref := range m.permissions {
		refs = append(refs, ref)
	}
	sort.Slice(refs, func(i, j int) bool {
		if refs[i].Type != refs[j].Type {
			return refs[i].Type < refs[j].Type
		}
		return refs[i].Value < refs[j].Value
	})
	var out []types.Permission
	for _, ref := range refs {
		for _, p := range m.permissions[ref] {
			if keep == nil || keep(p) {
				out = append(out, p)
			}
		}
	}
	return clonePermissions(out)
}

func (m *AuthzManager) SetEntityPermissions(ctx *simulator.Context, req *types.SetEntityPermissions) soap.HasFault {
	body := new(methods.SetEntityPermissionsBody)
	if fault := m.validatePermissions(registry(ctx), req.Entity, req.Permission); fault != nil {
		body.Fault_ = fault
		return body
	}
	for _, p := range req.Permission {
		m.setPermission(req.Entity, p)
	}
	body.Res = new(types.SetEntityPermissionsResponse)
	return body
}

func (m *AuthzManager) ResetEntityPermissions(ctx *simulator.Context, req *types.ResetEntityPermissions) soap.HasFault {
	body := new(methods.ResetEntityPermissionsBody)
	if fault := m.validatePermissions(registry(ctx), req.Entity, req.Permission); fault != nil {
		body.Fault_ = fault
		return body
	}
	delete(m.permissions, req.Entity)
	for _, p := range req.Permission {
		m.setPermission(req.Entity, p)
	}
	body.Res = new(types.ResetEntityPermissionsResponse)
	return body
}

func (m *AuthzManager) RemoveEntityPermission(ctx *simulator.Context, req *types.RemoveEntityPermission) soap.HasFault {
	body := new(methods.RemoveEntityPermissionBody)
	if registry(ctx).Get(req.Entity) == nil {
		body.Fault_ = notFound(req.Entity)
		return body
	}
	list := m.permissions[req.Entity]
	for i, p := range list {
		if p.Group == req.IsGroup && samePrincipal(p.Principal, req.User) {
			list = append(list[:i:i], list[i+1:]...)
			if len(list) == 0 {
				delete(m.permissions, req.Entity)
			} else {
				m.permissions[req.Entity] = list
			}
			body.Res = new(types.RemoveEntityPermissionResponse)
			return body
		}
	}
	body.Fault_ = simulator.Fault(fmt.Sprintf("no permission for %q on %s", req.User, req.Entity), &types.NotFound{})
	return body
}

func (m *AuthzManager) RetrieveEntityPermissions(ctx *simulator.Context, req *types.RetrieveEntityPermissions) soap.HasFault {
	body := new(methods.RetrieveEntityPermissionsBody)
	chain, fault := ancestry(registry(ctx), req.Entity)
	if fault != nil {
		body.Fault_ = fault
		return body
	}
	var out []types.Permission
	for i, e := range chain {
		if i > 0 && !req.Inherited {
			break
		}
		for _, p := range m.permissions[e] {
			if i == 0 || p.Propagate {
				out = append(out, p)
			}
		}
	}
	body.Res = &types.RetrieveEntityPermissionsResponse{Returnval: clonePermissions(out)}
	return body
}

func (m *AuthzManager) RetrieveAllPermissions(req *types.RetrieveAllPermissions) soap.HasFault {
	return &methods.RetrieveAllPermissionsBody{
		Res: &types.RetrieveAllPermissionsResponse{Returnval: m.allPermissions(nil)},
	}
}

func (m *AuthzManager) RetrieveRolePermissions(req *types.RetrieveRolePermissions) soap.HasFault {
	body := new(methods.RetrieveRolePermissionsBody)
	if m.role(req.RoleId) == nil {
		body.Fault_ = simulator.Fault(fmt.Sprintf("role %d not found", req.RoleId), &types.NotFound{})
		return body
	}
	body.Res = &types.RetrieveRolePermissionsResponse{
		Returnval: m.allPermissions(func(p types.Permission) bool { return p.RoleId == req.RoleId }),
	}
	return body
}

// --- privilege queries -----------------------------------------------------

func (m *AuthzManager) FetchUserPrivilegeOnEntities(ctx *simulator.Context, req *types.FetchUserPrivilegeOnEntities) soap.HasFault {
	body := new(methods.FetchUserPrivilegeOnEntitiesBody)
	var out []types.UserPrivilegeResult
	for _, e := range req.Entities {
		set, fault := m.userPrivileges(registry(ctx), e, req.UserName)
		if fault != nil {
			body.Fault_ = fault
			return body
		}
		out = append(out, types.UserPrivilegeResult{Entity: e, Privileges: sortedKeys(set)})
	}
	body.Res = &types.FetchUserPrivilegeOnEntitiesResponse{Returnval: out}
	return body
}

func (m *AuthzManager) HasUserPrivilegeOnEntities(ctx *simulator.Context, req *types.HasUserPrivilegeOnEntities) soap.HasFault {
	body := new(methods.HasUserPrivilegeOnEntitiesBody)
	out, fault := m.entityPrivileges(registry(ctx), req.Entities, req.UserName, req.PrivId)
	if fault != nil {
		body.Fault_ = fault
		return body
	}
	body.Res = &types.HasUserPrivilegeOnEntitiesResponse{Returnval: out}
	return body
}

func (m *AuthzManager) HasPrivilegeOnEntities(ctx *simulator.Context, req *types.HasPrivilegeOnEntities) soap.HasFault {
	body := new(methods.HasPrivilegeOnEntitiesBody)
	out, fault := m.entityPrivileges(registry(ctx), req.Entity, sessionUser(ctx, req.SessionId), req.PrivId)
	if fault != nil {
		body.Fault_ = fault
		return body
	}
	body.Res = &types.HasPrivilegeOnEntitiesResponse{Returnval: out}
	return body
}

// HasPrivilegeOnEntityResponse replaces types.HasPrivilegeOnEntityResponse in
// the reply: the generated type tags its []bool with omitempty, and the XML
// encoder then drops every false element, so clients would receive only the
// granted entries. The type name is the SOAP element name, so it must match.
type HasPrivilegeOnEntityResponse struct {
	Returnval []bool `xml:"returnval"`
}

type hasPrivilegeOnEntityBody struct {
	Res    *HasPrivilegeOnEntityResponse `xml:"HasPrivilegeOnEntityResponse,omitempty"`
	Fault_ *soap.Fault                   `xml:"http://schemas.xmlsoap.org/soap/envelope/ Fault,omitempty"`
}

func (b *hasPrivilegeOnEntityBody) Fault() *soap.Fault { return b.Fault_ }

// HasPrivilegeOnEntity answers over HTTP only: its reply type differs from the
// generated one, so the simulator's in-process RoundTrip cannot copy it.
func (m *AuthzManager) HasPrivilegeOnEntity(ctx *simulator.Context, req *types.HasPrivilegeOnEntity) soap.HasFault {
	body := new(hasPrivilegeOnEntityBody)
	out, fault := m.entityPrivileges(registry(ctx), []types.ManagedObjectReference{req.Entity}, sessionUser(ctx, req.SessionId), req.PrivId)
	if fault != nil {
		body.Fault_ = fault
		return body
	}
	granted := make([]bool, len(req.PrivId))
	for i, a := range out[0].PrivAvailability {
		granted[i] = a.IsGranted
	}
	body.Res = &HasPrivilegeOnEntityResponse{Returnval: granted}
	return body
}

// --- roles -----------------------------------------------------------------

// rolePrivIDs validates ids against privilegeList (InvalidArgument on an
// unknown id, like vCenter) and adds the implied System.* privileges.
func (m *AuthzManager) rolePrivIDs(ids []string) ([]string, *soap.Fault) {
	set := make(map[string]struct{}, len(ids)+len(systemPrivileges))
	for _, id := range ids {
		if _, ok := m.known[id]; !ok {
			return nil, simulator.Fault(fmt.Sprintf("unknown privilege %q", id), &types.InvalidArgument{InvalidProperty: "privIds"})
		}
		set[id] = struct{}{}
	}
	for _, id := range systemPrivileges {
		set[id] = struct{}{}
	}
	return sortedKeys(set), nil
}

func (m *AuthzManager) AddAuthorizationRole(req *types.AddAuthorizationRole) soap.HasFault {
	body := new(methods.AddAuthorizationRoleBody)
	if strings.TrimSpace(req.Name) == "" {
		body.Fault_ = invalidArgument("name")
		return body
	}
	for _, r := range m.RoleList {
		if r.Name == req.Name {
			body.Fault_ = simulator.Fault("", &types.AlreadyExists{Name: req.Name})
			return body
		}
	}
	ids, fault := m.rolePrivIDs(req.PrivIds)
	if fault != nil {
		body.Fault_ = fault
		return body
	}
	id := m.nextRoleID
	m.nextRoleID++
	m.RoleList = append(m.RoleList, types.AuthorizationRole{
		RoleId:    id,
		System:    false,
		Name:      req.Name,
		Info:      &types.Description{Label: req.Name, Summary: req.Name},
		Privilege: ids,
	})
	body.Res = &types.AddAuthorizationRoleResponse{Returnval: id}
	return body
}

func (m *AuthzManager) UpdateAuthorizationRole(req *types.UpdateAuthorizationRole) soap.HasFault {
	body := new(methods.UpdateAuthorizationRoleBody)
	role, fault := m.editableRole(req.RoleId)
	if fault != nil {
		body.Fault_ = fault
		return body
	}
	for _, r := range m.RoleList {
		if r.Name == req.NewName && r.RoleId != req.RoleId {
			body.Fault_ = simulator.Fault("", &types.AlreadyExists{Name: req.NewName})
			return body
		}
	}
	if req.PrivIds != nil {
		ids, fault := m.rolePrivIDs(req.PrivIds)
		if fault != nil {
			body.Fault_ = fault
			return body
		}
		role.Privilege = ids
	}
	if req.NewName != "" {
		role.Name = req.NewName
		role.Info = &types.Description{Label: req.NewName, Summary: req.NewName}
	}
	body.Res = new(types.UpdateAuthorizationRoleResponse)
	return body
}

func (m *AuthzManager) RemoveAuthorizationRole(req *types.RemoveAuthorizationRole) soap.HasFault {
	body := new(methods.RemoveAuthorizationRoleBody)
	if _, fault := m.editableRole(req.RoleId); fault != nil {
		body.Fault_ = fault
		return body
	}
	used := false
	for _, list := range m.permissions {
		for _, p := range list {
			if p.RoleId == req.RoleId {
				used = true
			}
		}
	}
	if used && req.FailIfUsed {
		body.Fault_ = simulator.Fault(fmt.Sprintf("role %d is in use", req.RoleId), &types.RemoveFailed{})
		return body
	}
	// Without failIfUsed, vCenter removes the permissions that use the role.
	for ref, list := range m.permissions {
		kept := list[:0:0]
		for _, p := range list {
			if p.RoleId != req.RoleId {
				kept = append(kept, p)
			}
		}
		if len(kept) == 0 {
			delete(m.permissions, ref)
		} else {
			m.permissions[ref] = kept
		}
	}
	for i := range m.RoleList {
		if m.RoleList[i].RoleId == req.RoleId {
			m.RoleList = append(m.RoleList[:i:i], m.RoleList[i+1:]...)
			break
		}
	}
	body.Res = new(types.RemoveAuthorizationRoleResponse)
	return body
}
