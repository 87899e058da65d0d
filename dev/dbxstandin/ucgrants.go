package dbxstandin

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/databricks/databricks-sdk-go/service/catalog"
)

// credentialPrivileges are the privileges a service credential takes:
// "You can grant ALL_PRIVILEGES, ACCESS, CREATE_CONNECTION, and MANAGE
// privileges to databricks_credential" (terraform-provider-databricks
// docs/resources/grants.md, "Service credential grants").
var credentialPrivileges = []catalog.Privilege{catalog.PrivilegeAllPrivileges, catalog.PrivilegeAccess,
	catalog.PrivilegeCreateConnection, catalog.PrivilegeManage}

// ucSecurable reads the securable type of a Unity Catalog permissions
// path. The SDK sends it as its caller spells it (GetGrantRequest and
// UpdatePermissions take a string); Terraform and the CLI send it in
// lower case ("credential": terraform-provider-databricks
// catalog/permissions/permissions.go; databricks/cli acceptance
// bundle/resources/grants), the SDK's SecurableType constants are upper
// case (CREDENTIAL), and Unity Catalog reads it either way (the CLI's test
// server keys grants by strings.ToUpper of it, libs/testserver/grants.go).
// Only credentials are served; another type is refused, with the
// stand-in's own message.
func ucSecurable(w http.ResponseWriter, r *http.Request) bool {
	t := r.PathValue("securable_type")
	if !strings.EqualFold(t, string(catalog.SecurableTypeCredential)) {
		writeError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE",
			fmt.Sprintf("Securable type %q: the stand-in serves grants on service credentials only (securable type credential).", t))
		return false
	}
	return true
}

// ucPrincipal finds the principal a grant names: a workspace user by user
// name, a service principal by application id ("<sp-application-id>",
// https://learn.microsoft.com/azure/databricks/sql/language-manual/sql-ref-principal).
// Groups are not modelled: the workspace-local users and admins cannot be
// granted Unity Catalog privileges (same page), and the stand-in knows no
// account groups. The caller holds s.mu.
func (s *Server) ucPrincipal(name string) *member {
	for _, m := range s.members {
		if strings.EqualFold(m.Name, name) {
			return m
		}
	}
	return nil
}

// writePrincipalMissing is Unity Catalog's answer for a grantee it does
// not know: "Could not find principal with name some@account.com"
// (terraform-provider-databricks#1773, #4680), error code
// PRINCIPAL_DOES_NOT_EXIST (Databricks' ErrorCode enum; "…
// (PRINCIPAL_DOES_NOT_EXIST)" as clients print it). The status is not
// recorded anywhere found; 404, as UC answers its other *_DOES_NOT_EXIST
// codes (CATALOG_DOES_NOT_EXIST with 404 in the SDKs' error-parsing tests).
func writePrincipalMissing(w http.ResponseWriter, name string) {
	writeError(w, http.StatusNotFound, "PRINCIPAL_DOES_NOT_EXIST", "Could not find principal with name "+name)
}

// ucPermissions serves GET and PATCH
// /api/2.1/unity-catalog/permissions/credential/{full_name}
// (catalog.GrantsAPI Get and Update). Reading takes what reading the
// credential takes; changing takes ownership, MANAGE or a metastore admin
// ("To manage privileges on any object, you must be its owner or have the
// MANAGE privilege on the object", sql-ref-privileges; ALL_PRIVILEGES does
// not include MANAGE, databricks/cli#6733).
func (s *Server) ucPermissions(w http.ResponseWriter, r *http.Request) {
	principal, ok := pageQuery(w, r)
	if !ok {
		return
	}
	var req catalog.UpdatePermissions
	if r.Method == http.MethodPatch && !decode(w, r, &req) {
		return
	}
	m := caller(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.findCredential(w, r.PathValue("full_name"))
	if c == nil {
		return
	}
	if r.Method == http.MethodGet {
		if !c.visibleTo(m) {
			writeError(w, http.StatusForbidden, "PERMISSION_DENIED", fmt.Sprintf(denyNoPrivilege, c.info.Name))
			return
		}
		writeJSON(w, catalog.GetPermissionsResponse{PrivilegeAssignments: c.assignments(principal)})
		return
	}
	if !m.Admin && !c.ownedBy(m) && !c.holds(m, catalog.PrivilegeManage) {
		// UC's words for a missing privilege: "User does not have CREATE
		// CATALOG on Metastore 'primary'." (see createCredential).
		writeError(w, http.StatusForbidden, "PERMISSION_DENIED", fmt.Sprintf("User does not have MANAGE on Credential '%s'.", c.info.Name))
		return
	}
	type change struct {
		principal   string
		add, remove []catalog.Privilege
	}
	var changes []change
	for _, ch := range req.Changes {
		if ch.Principal == "" {
			// Confirmed against Databricks: 400 INVALID_PARAMETER_VALUE
			// (databricks/cli#6041).
			writeError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", "at least one of 'principal' or 'principal_id' must be set")
			return
		}
		add, problem := credentialPrivilegesOf(ch.Add)
		remove, problem2 := credentialPrivilegesOf(ch.Remove)
		if problem == "" {
			problem = problem2
		}
		if problem == "" && slices.ContainsFunc(add, func(p catalog.Privilege) bool { return slices.Contains(remove, p) }) {
			// databricks/cli libs/testserver/grants.go.
			problem = fmt.Sprintf("Duplicate privileges to add and delete for principal %s.", ch.Principal)
		}
		if problem != "" {
			writeError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", problem)
			return
		}
		p := s.ucPrincipal(ch.Principal)
		if p == nil {
			writePrincipalMissing(w, ch.Principal)
			return
		}
		changes = append(changes, change{p.Name, add, remove})
	}
	for _, ch := range changes {
		key := ch.principal
		for granted := range c.grants {
			if strings.EqualFold(granted, key) {
				key = granted
			}
		}
		set := c.grants[key]
		if set == nil {
			set = map[catalog.Privilege]bool{}
		}
		for _, p := range ch.remove {
			delete(set, p)
		}
		for _, p := range ch.add {
			set[p] = true
		}
		c.grants[key] = set
		if len(set) == 0 {
			delete(c.grants, key)
		}
	}
	out := catalog.UpdatePermissionsResponse{}
	if !req.OmitPermissionsInResponse {
		out.PrivilegeAssignments = c.assignments("")
	}
	writeJSON(w, out)
}

// credentialPrivilegesOf normalises privileges ("Unity Catalog accepts
// privileges with spaces, but will automatically convert them to
// underscores", terraform-provider-databricks
// catalog/permissions/permissions.go) and refuses one a credential does
// not take, in Unity Catalog's words from a real workspace: "Privilege ABC
// is not applicable to this entity" (terraform-provider-databricks
// catalog/grants_test.go TestUcAccGrantsForIdChange, on a storage
// credential), as INVALID_PARAMETER_VALUE.
func credentialPrivilegesOf(in []catalog.Privilege) ([]catalog.Privilege, string) {
	out := make([]catalog.Privilege, 0, len(in))
	for _, p := range in {
		p = catalog.Privilege(strings.ReplaceAll(string(p), " ", "_"))
		if !slices.Contains(credentialPrivileges, p) {
			return nil, fmt.Sprintf("Privilege %s is not applicable to this entity", p)
		}
		out = append(out, p)
	}
	return out, ""
}

// pageQuery checks the securable type (ucSecurable), reads the optional
// principal filter and checks max_results: "lesser than 0: invalid
// parameter error … lesser than 150 but greater than 0: invalid parameter
// error" (catalog.GetGrantRequest). All assignments fit one page.
func pageQuery(w http.ResponseWriter, r *http.Request) (string, bool) {
	if !ucSecurable(w, r) {
		return "", false
	}
	q := r.URL.Query()
	if v := q.Get("max_results"); v != "" {
		if n, err := strconv.Atoi(v); err != nil || n < 0 || (n > 0 && n < 150) {
			writeError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", "max_results must be 0 or at least 150.")
			return "", false
		}
	}
	return q.Get("principal"), true
}

// assignments lists c's grants, by principal and privilege in order; only
// principal's when it is not "". Ownership is not a grant and is not
// listed.
func (c *credential) assignments(principal string) []catalog.PrivilegeAssignment {
	out := []catalog.PrivilegeAssignment{}
	for p, set := range c.grants {
		if principal != "" && !strings.EqualFold(p, principal) {
			continue
		}
		a := catalog.PrivilegeAssignment{Principal: p}
		for priv := range set {
			a.Privileges = append(a.Privileges, priv)
		}
		slices.Sort(a.Privileges)
		out = append(out, a)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Principal < out[b].Principal })
	return out
}

// ucEffectivePermissions serves GET
// /api/2.1/unity-catalog/effective-permissions/credential/{full_name}
// (GrantsAPI.GetEffective): the grants on the credential itself; the
// stand-in's metastore carries none to inherit.
func (s *Server) ucEffectivePermissions(w http.ResponseWriter, r *http.Request) {
	principal, ok := pageQuery(w, r)
	if !ok {
		return
	}
	m := caller(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.credentialFor(w, r.PathValue("full_name"), m, (*credential).visibleTo, denyNoPrivilege)
	if c == nil {
		return
	}
	out := catalog.EffectivePermissionsList{PrivilegeAssignments: []catalog.EffectivePrivilegeAssignment{}}
	for _, a := range c.assignments(principal) {
		e := catalog.EffectivePrivilegeAssignment{Principal: a.Principal}
		for _, p := range a.Privileges {
			e.Privileges = append(e.Privileges, catalog.EffectivePrivilege{Privilege: p})
		}
		out.PrivilegeAssignments = append(out.PrivilegeAssignments, e)
	}
	writeJSON(w, out)
}

// serviceCredentialsFor lists the service credentials principal may use
// in a run, by name, each as the client id of its managed identity:
// "you must have the ACCESS privilege on the service credential or
// ownership of the service credential"
// (https://learn.microsoft.com/azure/databricks/connect/unity-catalog/cloud-services/use-service-credentials);
// ALL_PRIVILEGES includes ACCESS. Being a metastore admin or holding
// MANAGE is not enough. A credential whose identity the tenant does not
// know (a system-assigned one, or one made with skip_validation) is left
// out: the run could not sign in as it. The caller holds s.mu.
func (s *Server) serviceCredentialsFor(principal string) map[string]string {
	out := map[string]string{}
	az := s.opts.Azure
	if az == nil || az.Tenant == nil || principal == "" {
		return out
	}
	runAs := &member{Name: principal}
	for name, c := range s.creds {
		mi := c.info.AzureManagedIdentity
		if mi == nil || mi.ManagedIdentityId == "" || (!c.ownedBy(runAs) && !c.holds(runAs, catalog.PrivilegeAccess, catalog.PrivilegeAllPrivileges)) {
			continue
		}
		if p, ok := az.Tenant.ManagedIdentity(mi.ManagedIdentityId); ok && az.holds(mi.AccessConnectorId, mi.ManagedIdentityId) {
			out[name] = p.ClientID
		}
	}
	return out
}
