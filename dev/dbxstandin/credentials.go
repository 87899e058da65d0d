package dbxstandin

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/databricks/databricks-sdk-go/service/catalog"
	"github.com/google/uuid"
)

// The stand-in's Unity Catalog metastore, the one attached to the
// workspace.
const (
	metastoreID   = "5f0c7a52-3d1e-4b8a-9c6f-2e7d1a4b9c30"
	metastoreName = "metastore_azure_westeurope"
)

// credential is a Unity Catalog service credential and the privileges
// granted on it, by principal (a user name or a service principal's
// application id, as the grant named it).
type credential struct {
	info   catalog.CredentialInfo
	grants map[string]map[catalog.Privilege]bool
}

// Unity Catalog object names: at most 255 characters, no period, space,
// forward slash, ASCII control character or DEL; stored in lower case
// (https://learn.microsoft.com/azure/databricks/data-governance/unity-catalog/requirements,
// "naming requirements for securable objects"; docs.databricks.com
// sql-ref-names).
var ucNameProblem = regexp.MustCompile(`[. /\x00-\x1f\x7f]`)

// ucName validates a credential name for rpc and returns it as Unity
// Catalog stores it, or Databricks' message. The message is UC's for an
// invalid catalog name, recorded from a real workspace (databricks/cli
// acceptance/bundle/resources/catalogs/empty-name: "Invalid input: RPC
// CreateCatalog Field managedcatalog.CatalogInfo.name: name \"\" is not a
// valid name. …"), with the credential's RPC and message type put in: the
// credentials' own words were not found.
func ucName(rpc, name string) (string, string) {
	if name == "" || len(name) > 255 || ucNameProblem.MatchString(name) {
		return "", fmt.Sprintf("Invalid input: RPC %s Field managedcatalog.CredentialInfo.name: name %q is not a valid name. Valid names cannot contain spaces, periods, forward slashes, or control characters.", rpc, name)
	}
	return strings.ToLower(name), ""
}

// ARM ids of what an azure_managed_identity names (catalog.AzureManagedIdentity:
// "/subscriptions/{guid}/resourceGroups/{rg-name}/providers/Microsoft.Databricks/accessConnectors/{connector-name}",
// "…/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{identity-name}");
// ARM ids compare without regard to case.
var (
	armAccessConnector = regexp.MustCompile(`(?i)^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Databricks/accessConnectors/[^/]+$`)
	armUserAssigned    = regexp.MustCompile(`(?i)^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.ManagedIdentity/userAssignedIdentities/[^/]+$`)
)

// identityProblem says why mi cannot back a service credential, or "".
// The caller holds s.mu.
//
// Azure service credentials are Azure managed identities held by an Access
// Connector (https://learn.microsoft.com/azure/databricks/connect/unity-catalog/cloud-services/service-credentials).
// Without Options.Azure the stand-in has no tenant, so no identity a run
// could sign in as: it refuses them, skip_validation or not.
// skip_validation skips what Databricks checks in Azure (the connector
// exists, the identity is assigned to it), not the form of the ids. The
// messages for a connector that does not exist or an identity it does not
// hold are the stand-in's own: Databricks' words were not found (the
// nearest known are "Registering a credential requires the contributor
// role over the corresponding access connector with ID …" and "…requires
// managed identity (MI) to have a Reader role scoped to MI itself for …",
// terraform-provider-databricks#5768, both 400s for other causes).
func (s *Server) identityProblem(mi *catalog.AzureManagedIdentity, skipValidation bool) string {
	az := s.opts.Azure
	switch {
	case az == nil:
		return "Azure managed identity credentials need an Azure workspace: this stand-in runs without Options.Azure, so it knows no tenant and no access connector."
	case mi.AccessConnectorId == "":
		return "azure_managed_identity.access_connector_id is required."
	case !armAccessConnector.MatchString(mi.AccessConnectorId):
		return fmt.Sprintf("azure_managed_identity.access_connector_id %q is not the resource ID of an Azure Databricks access connector (/subscriptions/…/resourceGroups/…/providers/Microsoft.Databricks/accessConnectors/…).", mi.AccessConnectorId)
	case mi.ManagedIdentityId != "" && !armUserAssigned.MatchString(mi.ManagedIdentityId):
		return fmt.Sprintf("azure_managed_identity.managed_identity_id %q is not the resource ID of a user-assigned managed identity (/subscriptions/…/resourceGroups/…/providers/Microsoft.ManagedIdentity/userAssignedIdentities/…).", mi.ManagedIdentityId)
	case mi.CredentialId != "":
		// Output only: Terraform clears it before an update "until backend
		// team fixes API issue" (terraform-provider-databricks
		// catalog/resource_credential.go).
		return "azure_managed_identity.credential_id is output only."
	case skipValidation:
		return ""
	}
	if _, found := az.connector(mi.AccessConnectorId); !found {
		return fmt.Sprintf("Access connector %s does not exist or cannot be read by Azure Databricks.", mi.AccessConnectorId)
	}
	if mi.ManagedIdentityId != "" && !az.holds(mi.AccessConnectorId, mi.ManagedIdentityId) {
		return fmt.Sprintf("Managed identity %s is not assigned to access connector %s.", mi.ManagedIdentityId, mi.AccessConnectorId)
	}
	return ""
}

// createCredential serves POST /api/2.1/unity-catalog/credentials
// (catalog.CredentialsAPI.CreateCredential).
func (s *Server) createCredential(w http.ResponseWriter, r *http.Request) {
	var req catalog.CreateCredentialRequest
	if !decode(w, r, &req) {
		return
	}
	m := caller(r)
	name, problem := ucName("CreateCredential", req.Name)
	if problem == "" {
		problem = serviceOnlyProblem(req.Purpose, req.ReadOnly, req.AwsIamRole != nil || req.AzureServicePrincipal != nil || req.DatabricksGcpServiceAccount != nil)
	}
	if problem == "" && req.AzureManagedIdentity == nil {
		problem = "azure_managed_identity is required: an Azure service credential is an Azure managed identity held by an access connector."
	}
	if problem != "" {
		writeError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", problem)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// "The caller must be a metastore admin or have the metastore privilege
	// CREATE_SERVICE_CREDENTIAL" (catalog.CredentialsService.CreateCredential).
	// Workspace admins are the stand-in's metastore admins; it serves no
	// metastore grants, so nobody else holds the privilege. "Service
	// principals must have the account admin role to create a service
	// credential that uses a managed identity. You cannot delegate CREATE
	// SERVICE CREDENTIAL to a service principal" (service-credentials page
	// above), and the stand-in has no account admins: a service principal
	// is refused even as a workspace admin. Databricks' words for the
	// refusal follow the other metastore privileges ("User does not have
	// CREATE STORAGE CREDENTIAL on metastore", terraform-provider-databricks#2828;
	// "User does not have CREATE CATALOG on Metastore 'primary'.",
	// terraform-databricks-examples#121). Non-account admins also need
	// Contributor on the access connector (create-credential API reference,
	// Azure): every admin here came in as a Contributor of the workspace,
	// whose resource group holds the connector, or is the token's maker.
	if !m.Admin || m.servicePrincipal() {
		writeError(w, http.StatusForbidden, "PERMISSION_DENIED", fmt.Sprintf("User does not have CREATE SERVICE CREDENTIAL on Metastore '%s'.", metastoreName))
		return
	}
	if s.creds[name] != nil {
		writeError(w, http.StatusConflict, credentialExists, fmt.Sprintf("Credential '%s' already exists.", name))
		return
	}
	if problem := s.identityProblem(req.AzureManagedIdentity, req.SkipValidation); problem != "" {
		writeError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", problem)
		return
	}
	now := time.Now().UnixMilli()
	mi := *req.AzureManagedIdentity
	mi.CredentialId = uuid.NewString()
	c := &credential{grants: map[string]map[catalog.Privilege]bool{}, info: catalog.CredentialInfo{
		Id: uuid.NewString(), Name: name, FullName: name, Purpose: catalog.CredentialPurposeService, Comment: req.Comment,
		AzureManagedIdentity: &mi, Owner: m.Name, CreatedAt: now, CreatedBy: m.Name, UpdatedAt: now, UpdatedBy: m.Name,
		IsolationMode: catalog.IsolationModeIsolationModeOpen, MetastoreId: metastoreID,
	}}
	s.creds[name] = c
	writeJSON(w, c.info)
}

// The codes for a credential that exists or does not. Databricks' enum
// has per-securable codes only for storage credentials
// (STORAGE_CREDENTIAL_ALREADY_EXISTS, …_DOES_NOT_EXIST; mlflow
// protos/databricks.proto), whose messages are "Storage Credential 'xxx'
// already exists" and "Storage Credential '…' does not exist."
// (terraform-provider-databricks#3011, #3134). For the newer credentials
// API the codes were not found; the stand-in sends the generic ones the
// same enum tells new APIs to prefer, with 409 and 404: clients must test
// the status class (apierr.ErrResourceConflict, apierr.ErrNotFound), as
// they must against Databricks.
const (
	credentialExists  = "ALREADY_EXISTS"
	credentialMissing = "NOT_FOUND"
)

// serviceOnlyProblem checks what a service credential on Azure can be.
func serviceOnlyProblem(purpose catalog.CredentialPurpose, readOnly, otherCloud bool) string {
	switch {
	case purpose == "":
		// "The type of credential to be created is determined by the
		// purpose field, which should be either SERVICE or STORAGE"
		// (CreateCredential): none given is refused.
		return "purpose is required: SERVICE or STORAGE."
	case purpose == catalog.CredentialPurposeStorage:
		return "purpose STORAGE: the stand-in serves service credentials only."
	case purpose != catalog.CredentialPurposeService:
		return fmt.Sprintf("Invalid purpose %q: expected SERVICE or STORAGE.", purpose)
	case readOnly:
		// read_only: "Only applicable when purpose is STORAGE."
		return "read_only is only applicable when purpose is STORAGE."
	case otherCloud:
		return "An Azure service credential takes azure_managed_identity only, not aws_iam_role, azure_service_principal or databricks_gcp_service_account."
	}
	return ""
}

// findCredential finds a credential by name, in any case, or writes the
// 404. The caller holds s.mu.
func (s *Server) findCredential(w http.ResponseWriter, name string) *credential {
	if c := s.creds[strings.ToLower(name)]; c != nil {
		return c
	}
	writeError(w, http.StatusNotFound, credentialMissing, fmt.Sprintf("Credential '%s' does not exist.", name))
	return nil
}

// credentialFor finds a credential for m, as findCredential does, and
// writes Databricks' 403 (deny, with the credential's name) and returns nil
// when may refuses m. The caller holds s.mu.
func (s *Server) credentialFor(w http.ResponseWriter, name string, m *member, may func(*credential, *member) bool, deny string) *credential {
	c := s.findCredential(w, name)
	if c != nil && !may(c, m) {
		writeError(w, http.StatusForbidden, "PERMISSION_DENIED", fmt.Sprintf(deny, c.info.Name))
		return nil
	}
	return c
}

// Databricks' PERMISSION_DENIED messages about a credential.
const (
	denyNoPrivilege = "User does not have any privilege on Credential '%s'."
	denyNotOwner    = "User is not an owner of Credential '%s'."
)

func (c *credential) ownedBy(m *member) bool { return strings.EqualFold(c.info.Owner, m.Name) }

// holds reports whether m holds any of privs on c (granted to it by name).
func (c *credential) holds(m *member, privs ...catalog.Privilege) bool {
	for p, set := range c.grants {
		if strings.EqualFold(p, m.Name) {
			for _, want := range privs {
				if set[want] {
					return true
				}
			}
		}
	}
	return false
}

// visibleTo: "The caller must be a metastore admin, the owner of the
// credential, or have any permission on the credential"
// (catalog.CredentialsService.GetCredential).
func (c *credential) visibleTo(m *member) bool {
	return m.Admin || c.ownedBy(m) || c.holds(m, credentialPrivileges...)
}

// getCredential serves GET /api/2.1/unity-catalog/credentials/{name_arg}.
func (s *Server) getCredential(w http.ResponseWriter, r *http.Request) {
	m := caller(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.credentialFor(w, r.PathValue("name_arg"), m, (*credential).visibleTo, denyNoPrivilege); c != nil {
		writeJSON(w, c.info)
	}
}

// listCredentials serves GET /api/2.1/unity-catalog/credentials: "limited
// to only the credentials that the caller has permission to access. If
// the caller is a metastore admin, retrieval of credentials is
// unrestricted" (ListCredentials), filtered by purpose; one page.
func (s *Server) listCredentials(w http.ResponseWriter, r *http.Request) {
	m := caller(r)
	q := r.URL.Query()
	purpose := catalog.CredentialPurpose(q.Get("purpose"))
	if purpose != "" && purpose != catalog.CredentialPurposeService && purpose != catalog.CredentialPurposeStorage {
		writeError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", fmt.Sprintf("Invalid purpose %q: expected SERVICE or STORAGE.", purpose))
		return
	}
	// max_results: "When set to a value less than 0, an invalid parameter
	// error is returned" (catalog.ListCredentialsRequest).
	if v := q.Get("max_results"); v != "" {
		if n, err := strconv.Atoi(v); err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", "max_results must be a non-negative integer.")
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := catalog.ListCredentialsResponse{Credentials: []catalog.CredentialInfo{}}
	for _, c := range s.creds {
		if (purpose == "" || purpose == c.info.Purpose) && c.visibleTo(m) {
			out.Credentials = append(out.Credentials, c.info)
		}
	}
	sort.Slice(out.Credentials, func(a, b int) bool { return out.Credentials[a].Name < out.Credentials[b].Name })
	writeJSON(w, out)
}

// updateCredential serves PATCH /api/2.1/unity-catalog/credentials/{name_arg}:
// "The caller must be the owner of the credential or a metastore admin or
// have the MANAGE permission. If the caller is a metastore admin, only the
// owner field can be changed" (UpdateCredential).
func (s *Server) updateCredential(w http.ResponseWriter, r *http.Request) {
	var req catalog.UpdateCredentialRequest
	if !decode(w, r, &req) {
		return
	}
	m := caller(r)
	sent := func(field string) bool { return slices.Contains(req.ForceSendFields, field) }
	others := req.AzureManagedIdentity != nil || req.AwsIamRole != nil || req.AzureServicePrincipal != nil ||
		req.DatabricksGcpServiceAccount != nil || sent("Comment") || sent("NewName") || sent("IsolationMode") || sent("ReadOnly")
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.findCredential(w, r.PathValue("name_arg"))
	if c == nil {
		return
	}
	switch {
	case c.ownedBy(m) || c.holds(m, catalog.PrivilegeManage):
	case m.Admin && !others:
	case m.Admin:
		writeError(w, http.StatusForbidden, "PERMISSION_DENIED", fmt.Sprintf("A metastore admin who is not the owner of Credential '%s' can change only its owner.", c.info.Name))
		return
	default:
		// "User is not an owner of External Location 'metastore_default_location'."
		// (terraform-provider-databricks#2945) is UC's refusal of a change
		// by a non-owner.
		writeError(w, http.StatusForbidden, "PERMISSION_DENIED", fmt.Sprintf(denyNotOwner, c.info.Name))
		return
	}
	problem := serviceOnlyProblem(c.info.Purpose, req.ReadOnly, req.AwsIamRole != nil || req.AzureServicePrincipal != nil || req.DatabricksGcpServiceAccount != nil)
	if problem == "" && sent("IsolationMode") && req.IsolationMode != catalog.IsolationModeIsolationModeOpen {
		problem = fmt.Sprintf("isolation_mode %q: the stand-in models no workspace bindings, so only ISOLATION_MODE_OPEN.", req.IsolationMode)
	}
	newName := c.info.Name
	if problem == "" && req.NewName != "" {
		newName, problem = ucName("UpdateCredential", req.NewName)
	}
	if problem == "" && req.AzureManagedIdentity != nil {
		problem = s.identityProblem(req.AzureManagedIdentity, req.SkipValidation)
	}
	if problem != "" {
		writeError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", problem)
		return
	}
	if other := s.creds[newName]; other != nil && other != c {
		writeError(w, http.StatusConflict, credentialExists, fmt.Sprintf("Credential '%s' already exists.", newName))
		return
	}
	owner := c.info.Owner
	if req.Owner != "" {
		p := s.ucPrincipal(req.Owner)
		if p == nil {
			writePrincipalMissing(w, req.Owner)
			return
		}
		owner = p.Name
	}
	if req.AzureManagedIdentity != nil {
		mi := *req.AzureManagedIdentity
		mi.CredentialId = c.info.AzureManagedIdentity.CredentialId
		if !strings.EqualFold(mi.AccessConnectorId, c.info.AzureManagedIdentity.AccessConnectorId) ||
			!strings.EqualFold(mi.ManagedIdentityId, c.info.AzureManagedIdentity.ManagedIdentityId) {
			mi.CredentialId = uuid.NewString()
		}
		c.info.AzureManagedIdentity = &mi
	}
	if sent("Comment") {
		c.info.Comment = req.Comment
	}
	delete(s.creds, c.info.Name)
	c.info.Name, c.info.FullName, c.info.Owner = newName, newName, owner
	c.info.UpdatedAt, c.info.UpdatedBy = time.Now().UnixMilli(), m.Name
	s.creds[newName] = c
	writeJSON(w, c.info)
}

// deleteCredential serves DELETE /api/2.1/unity-catalog/credentials/{name_arg}:
// "The caller must be an owner of the credential" (DeleteCredential).
func (s *Server) deleteCredential(w http.ResponseWriter, r *http.Request) {
	m := caller(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.credentialFor(w, r.PathValue("name_arg"), m, (*credential).ownedBy, denyNotOwner)
	if c == nil {
		return
	}
	delete(s.creds, c.info.Name)
	writeJSON(w, struct{}{})
}

// connector returns the identities the access connector id holds, and
// whether it exists; ARM ids compare without regard to case.
func (az *Azure) connector(id string) ([]string, bool) {
	for c, identities := range az.AccessConnectors {
		if strings.EqualFold(c, id) {
			return identities, true
		}
	}
	return nil, false
}

// holds reports whether the access connector holds the user-assigned
// identity.
func (az *Azure) holds(connector, identity string) bool {
	held, _ := az.connector(connector)
	return slices.ContainsFunc(held, func(id string) bool { return strings.EqualFold(id, identity) })
}
