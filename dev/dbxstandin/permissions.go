package dbxstandin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/databricks/databricks-sdk-go/service/iam"
	"github.com/databricks/databricks-sdk-go/service/jobs"
)

// level is a job permission level, ordered: each includes those below it
// (https://learn.microsoft.com/azure/databricks/security/auth/access-control/#job-acls).
type level int

const (
	noAccess level = iota
	canView
	canManageRun
	canManage
	isOwner
)

var levels = map[jobs.JobPermissionLevel]level{
	jobs.JobPermissionLevelCanView: canView, jobs.JobPermissionLevelCanManageRun: canManageRun,
	jobs.JobPermissionLevelCanManage: canManage, jobs.JobPermissionLevelIsOwner: isOwner,
}

func (l level) String() string {
	for k, v := range levels {
		if v == l {
			return string(k)
		}
	}
	return ""
}

// allowed reports whether the caller holds need on job; if not, it writes
// Databricks' 403, in the words recorded from real workspaces
// (databricks/cli acceptance tests bundle/resources/permissions/jobs,
// Cloud = true): "User <name> does not have View or Admin or Manage Run or
// Owner permissions on job <id>". The caller holds s.mu.
func (s *Server) allowed(w http.ResponseWriter, r *http.Request, job int64, need level) bool {
	m := caller(r)
	if s.can(m, job, need) {
		return true
	}
	what := map[level]string{
		canView:      "View or Admin or Manage Run or Owner",
		canManageRun: "Manage Run or Owner or Admin",
		canManage:    "Manage or Owner or Admin",
		isOwner:      "Admin or Owner",
	}[need]
	writeError(w, http.StatusForbidden, "PERMISSION_DENIED", fmt.Sprintf("User %s does not have %s permissions on job %d", m.Name, what, job))
	return false
}

// can reports whether m holds need on job. Workspace admins hold every
// permission. The caller holds s.mu.
func (s *Server) can(m *member, job int64, need level) bool {
	if s.denied[job] {
		return false
	}
	return m.Admin || s.acl[job][m.Name] >= need
}

func (s *Server) permissions(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(r.PathValue("job_id"), 10, 64)
	m := caller(r)
	var req jobs.JobPermissionsRequest
	if r.Method == http.MethodPatch && !decode(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.jobs[id]; !ok {
		writeError(w, http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST", fmt.Sprintf("Job %d does not exist.", id))
		return
	}
	if !s.can(m, id, canManage) {
		// databricks/cli acceptance destroy_without_mgmtperms out.destroy.*.txt
		writeError(w, http.StatusForbidden, "PERMISSION_DENIED",
			fmt.Sprintf("%s does not have Manage permissions on Job with ID: ElasticJobId(%d). Please contact the owner or an administrator for access.", m.Name, id))
		return
	}
	if r.Method == http.MethodPatch {
		grants := map[string]level{}
		for _, ac := range req.AccessControlList {
			name, lvl := ac.ServicePrincipalName+ac.UserName+ac.GroupName, levels[ac.PermissionLevel]
			if lvl == noAccess {
				writeError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", fmt.Sprintf("Permission level %q is not valid for jobs.", ac.PermissionLevel))
				return
			}
			if lvl == isOwner {
				writeError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", "The job must have exactly one owner.")
				return
			}
			if problem := s.principalProblem(ac); problem != "" {
				// "Principal: ServicePrincipalName(x) does not exist"
				// (terraform-provider-databricks#1415).
				writeError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", problem)
				return
			}
			grants[name] = lvl
		}
		for name, lvl := range grants {
			if s.acl[id][name] < isOwner {
				s.acl[id][name] = lvl
			}
		}
	}
	writeJSON(w, s.jobPermissions(id))
}

// principalProblem says why an access control entry names nobody of the
// workspace, or "". The caller holds s.mu.
func (s *Server) principalProblem(ac jobs.JobAccessControlRequest) string {
	set := 0
	for _, v := range []string{ac.ServicePrincipalName, ac.UserName, ac.GroupName} {
		if v != "" {
			set++
		}
	}
	if set != 1 {
		return "Exactly one of user_name, group_name and service_principal_name must be set."
	}
	switch {
	case ac.GroupName != "":
		if ac.GroupName != "users" && ac.GroupName != "admins" {
			return fmt.Sprintf("Principal: GroupName(%s) does not exist", ac.GroupName)
		}
	case ac.ServicePrincipalName != "":
		for _, m := range s.members {
			if m.ApplicationID == ac.ServicePrincipalName {
				return ""
			}
		}
		return fmt.Sprintf("Principal: ServicePrincipalName(%s) does not exist", ac.ServicePrincipalName)
	default:
		for _, m := range s.members {
			if !m.servicePrincipal() && strings.EqualFold(m.Name, ac.UserName) {
				return ""
			}
		}
		return fmt.Sprintf("Principal: UserName(%s) does not exist", ac.UserName)
	}
	return ""
}

// jobPermissions is a job's access control list as the API answers it.
// The caller holds s.mu.
func (s *Server) jobPermissions(id int64) jobs.JobPermissions {
	out := jobs.JobPermissions{ObjectId: fmt.Sprintf("/jobs/%d", id), ObjectType: "job",
		AccessControlList: []jobs.JobAccessControlResponse{{GroupName: "admins",
			AllPermissions: []jobs.JobPermission{{PermissionLevel: jobs.JobPermissionLevelCanManage, Inherited: true, InheritedFromObject: []string{"/jobs/"}}}}}}
	names := make([]string, 0, len(s.acl[id]))
	for name := range s.acl[id] {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ac := jobs.JobAccessControlResponse{AllPermissions: []jobs.JobPermission{{PermissionLevel: jobs.JobPermissionLevel(s.acl[id][name].String())}}}
		switch {
		case name == "users" || name == "admins":
			ac.GroupName = name
		case strings.Contains(name, "@"):
			ac.UserName = name
		default:
			ac.ServicePrincipalName = name
		}
		out.AccessControlList = append(out.AccessControlList, ac)
	}
	return out
}

// scimError is the SCIM error body (RFC 7644 section 3.12).
func scimError(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/scim+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:Error"},
		"detail": detail, "status": strconv.Itoa(status)})
}

// applicationIDFilter is the one SCIM filter the stand-in reads.
var applicationIDFilter = regexp.MustCompile(`^applicationId eq "?([0-9a-fA-F-]+)"?$`)

// servicePrincipals serves the workspace's SCIM service principals
// (/api/2.0/preview/scim/v2/ServicePrincipals, the SDK's
// ServicePrincipalsV2): only workspace admins manage identities.
func (s *Server) servicePrincipals(w http.ResponseWriter, r *http.Request) {
	m := caller(r)
	if !m.Admin {
		scimError(w, http.StatusForbidden, "Only workspace admins can manage service principals.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Method == http.MethodGet {
		var appID string
		if f := r.URL.Query().Get("filter"); f != "" {
			sub := applicationIDFilter.FindStringSubmatch(f)
			if sub == nil {
				scimError(w, http.StatusBadRequest, "Invalid filter: only applicationId eq is supported here.")
				return
			}
			appID = sub[1]
		}
		var all []iam.ServicePrincipal
		for _, sp := range s.members {
			if sp.servicePrincipal() && (appID == "" || strings.EqualFold(sp.ApplicationID, appID)) {
				all = append(all, scimServicePrincipal(sp))
			}
		}
		// Pages by startIndex (from 1) and count, as SCIM does (RFC 7644
		// section 3.4.2.4); the SDK reads pages until one is empty.
		start, count := int64(1), int64(len(all))
		if v, err := strconv.ParseInt(r.URL.Query().Get("startIndex"), 10, 64); err == nil && v > 1 {
			start = v
		}
		if v, err := strconv.ParseInt(r.URL.Query().Get("count"), 10, 64); err == nil && v >= 0 {
			count = v
		}
		out := iam.ListServicePrincipalResponse{Schemas: []iam.ListResponseSchema{iam.ListResponseSchemaUrnIetfParamsScimApiMessages20ListResponse},
			StartIndex: start, TotalResults: int64(len(all)), ForceSendFields: []string{"TotalResults", "ItemsPerPage"}}
		if lo := start - 1; lo < int64(len(all)) {
			out.Resources = all[lo:min(lo+count, int64(len(all)))]
		}
		out.ItemsPerPage = int64(len(out.Resources))
		writeJSON(w, out)
		return
	}
	var req iam.CreateServicePrincipalRequest
	if !decode(w, r, &req) {
		return
	}
	if req.ApplicationId == "" {
		scimError(w, http.StatusBadRequest, "applicationId is required.")
		return
	}
	for _, sp := range s.members {
		if strings.EqualFold(sp.ApplicationID, req.ApplicationId) {
			scimError(w, http.StatusConflict, fmt.Sprintf("Service principal with application ID %s already exists.", req.ApplicationId))
			return
		}
	}
	sp := &member{Name: req.ApplicationId, ApplicationID: req.ApplicationId, DisplayName: req.DisplayName}
	if sp.DisplayName == "" {
		sp.DisplayName = req.ApplicationId
	}
	s.addMember(sp)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(scimServicePrincipal(sp))
}

func scimServicePrincipal(m *member) iam.ServicePrincipal {
	return iam.ServicePrincipal{Id: m.ID, ApplicationId: m.ApplicationID, DisplayName: m.DisplayName, Active: true,
		Schemas: []iam.ServicePrincipalSchema{iam.ServicePrincipalSchemaUrnIetfParamsScimSchemasCore20ServicePrincipal}}
}
