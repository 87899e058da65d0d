package dbxstandin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/nbtrace/nbtrace/dev/entra"
)

// Azure makes the stand-in an Azure Databricks workspace: besides the
// personal access token it admits Microsoft Entra ID tokens, as Azure
// Databricks does.
type Azure struct {
	// Tenant verifies the tokens.
	Tenant *entra.Tenant
	// ResourceID is the workspace's ARM id, such as
	// /subscriptions/…/resourceGroups/…/providers/Microsoft.Databricks/workspaces/….
	ResourceID string
	// Contributors are the object ids of principals with Contributor or
	// Owner on the workspace resource.
	Contributors []string
	// AccessConnectors are the Azure Databricks Access Connectors of the
	// subscription: each connector's ARM id, and the ARM ids of the
	// user-assigned managed identities it holds (what a Unity Catalog
	// credential's azure_managed_identity names).
	AccessConnectors map[string][]string
}

// Header names Azure Databricks reads for a principal that is not yet a
// workspace user (databricks-sdk-go v0.182.0 config/auth_azure_cli.go).
const (
	ManagementTokenHeader = "X-Databricks-Azure-SP-Management-Token"
	ResourceIDHeader      = "X-Databricks-Azure-Workspace-Resource-Id"
)

// TokenMinimumLife: Azure Databricks refuses tokens that expire within 30
// seconds ("Token is expiring within 30 seconds. (token expired)",
// databricks/databricks-vscode#583; the SDKs refresh 40 s early for it,
// databricks-sdk-go PR #617, config/oauth_visitors.go).
const TokenMinimumLife = 30 * time.Second

// member is a workspace user or service principal.
type member struct {
	// Name is a user's name or a service principal's application id: what
	// permissions and error messages name.
	Name          string
	ApplicationID string // service principals only
	DisplayName   string
	ID            string // SCIM id
	Admin         bool
}

func (m *member) servicePrincipal() bool { return m.ApplicationID != "" }

// localDeveloper is the user of the personal access token: the workspace
// admin who made it.
var localDeveloper = &member{Name: "developer@nbtrace.local", DisplayName: "Local developer", ID: "1", Admin: true}

// authFailure is a refused sign-in: its status and Databricks' body.
type authFailure struct {
	status int
	// code is a string error_code, or the status as a number, as Azure's
	// front end answers sign-in failures ({"error_code":403,...}).
	code    any
	message string
}

var armWorkspaceID = regexp.MustCompile(`(?i)^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Databricks/workspaces/[^/]+$`)

// authenticate finds who signs r in, following Azure Databricks:
//
//   - the personal access token is its maker, an admin;
//   - an Entra ID token must be for the AzureDatabricks application (else
//     400 "Expected aud claim to be: 2ff814a6-…", MicrosoftDocs/azure-docs#83517),
//     valid, and live for more than 30 s;
//   - its principal is a workspace user, or has Contributor or Owner on the
//     workspace resource and proves it: a management token of the same
//     principal for https://management.core.windows.net/ in
//     X-Databricks-Azure-SP-Management-Token and the workspace's ARM id in
//     X-Databricks-Azure-Workspace-Resource-Id (the SDK's Azure strategies,
//     config/oauth_visitors.go azureVisitor). Then it becomes a workspace
//     admin (the admin-user-login rule of the Azure Databricks service
//     principal token documentation). Otherwise: 403 "Unauthorized access
//     to Org: <workspace id>" (terraform-provider-databricks#2715, #4662);
//     a resource id that is not an ARM workspace id: 400 "Invalid resource
//     ID." (DataThirstLtd/azure.databricks.cicd.tools#132).
//
// Headers that are sent must be right, and the principal a Contributor,
// even for a workspace user.
func (s *Server) authenticate(r *http.Request) (*member, *authFailure) {
	if s.opts.Token == "" && s.opts.Azure == nil {
		return localDeveloper, nil // an open stand-in, for fault tests
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return nil, &authFailure{http.StatusUnauthorized, "UNAUTHENTICATED", "Invalid access token."}
	}
	if s.opts.Token != "" && tok == s.opts.Token {
		return localDeveloper, nil
	}
	az := s.opts.Azure
	if az == nil || strings.HasPrefix(tok, "dapi") {
		return nil, &authFailure{http.StatusUnauthorized, "UNAUTHENTICATED", "Invalid access token."}
	}
	claims, fail := verifyEntra(az.Tenant, tok, entra.AzureDatabricks)
	if fail != nil {
		return nil, fail
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.memberFor(claims)
	mgmt, rid := r.Header.Get(ManagementTokenHeader), r.Header.Get(ResourceIDHeader)
	if m != nil && mgmt == "" && rid == "" {
		return m, nil
	}
	denied := &authFailure{http.StatusForbidden, http.StatusForbidden, "Unauthorized access to Org: " + WorkspaceID}
	if mgmt == "" || rid == "" {
		return nil, denied
	}
	if !armWorkspaceID.MatchString(rid) {
		return nil, &authFailure{http.StatusBadRequest, http.StatusBadRequest, "Invalid resource ID."}
	}
	mc, fail := verifyEntra(az.Tenant, mgmt, entra.Management)
	if fail != nil {
		return nil, fail
	}
	// ARM ids compare without regard to case.
	if !strings.EqualFold(rid, az.ResourceID) || mc.ObjectID != claims.ObjectID {
		return nil, denied
	}
	// The headers claim the principal's role on the workspace resource:
	// without Contributor or Owner there, the call is refused even for a
	// workspace user (Databricks does not say what it does then; refusing
	// is the stricter reading).
	if !slices.Contains(az.Contributors, claims.ObjectID) {
		return nil, denied
	}
	if m != nil {
		return m, nil
	}
	m = &member{Name: claims.UPN, DisplayName: claims.UPN, Admin: true}
	if claims.IDType == "app" {
		m = &member{Name: claims.AppID, ApplicationID: claims.AppID, DisplayName: claims.AppID, Admin: true}
	}
	s.addMember(m)
	return m, nil
}

func verifyEntra(t *entra.Tenant, tok, resource string) (*entra.Claims, *authFailure) {
	c, err := t.Verify(tok, resource)
	switch {
	case errors.Is(err, entra.ErrAudience):
		return nil, &authFailure{http.StatusBadRequest, http.StatusBadRequest,
			fmt.Sprintf("io.jsonwebtoken.IncorrectClaimException: Expected aud claim to be: %s, but was: %s.", resource, strings.Join(c.Audience, ","))}
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, &authFailure{http.StatusForbidden, http.StatusForbidden, "Token is expired. (token expired)"}
	case err != nil:
		return nil, &authFailure{http.StatusForbidden, http.StatusForbidden, "Invalid access token."}
	case time.Until(c.ExpiresAt.Time) <= TokenMinimumLife:
		return nil, &authFailure{http.StatusForbidden, http.StatusForbidden, "Token is expiring within 30 seconds. (token expired)"}
	}
	return c, nil
}

// memberFor finds the workspace member a token names. The caller holds
// s.mu.
func (s *Server) memberFor(c *entra.Claims) *member {
	for _, m := range s.members {
		if (c.IDType == "app" && m.ApplicationID == c.AppID) || (c.IDType == "user" && strings.EqualFold(m.Name, c.UPN)) {
			return m
		}
	}
	return nil
}

// addMember adds m with a fresh SCIM id. The caller holds s.mu.
func (s *Server) addMember(m *member) {
	s.nextID++
	m.ID = fmt.Sprint(s.nextID)
	s.members = append(s.members, m)
}

type memberKey struct{}

// caller is who signed the request in.
func caller(r *http.Request) *member {
	m, _ := r.Context().Value(memberKey{}).(*member)
	if m == nil {
		return localDeveloper
	}
	return m
}

func withCaller(r *http.Request, m *member) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), memberKey{}, m))
}
