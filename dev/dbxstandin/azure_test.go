package dbxstandin

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nbtrace/nbtrace/dev/entra"
)

const testResourceID = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Databricks/workspaces/dbw"

// TestAzureSignIn: who Azure Databricks lets in, and with which answer it
// refuses the others.
func TestAzureSignIn(t *testing.T) {
	tenant := entra.NewTenant()
	app := tenant.AddManagedIdentity("id-app")
	other := tenant.AddManagedIdentity("id-other")
	outsider := tenant.AddManagedIdentity("id-outsider")
	s := New(Options{Token: "pat", Azure: &Azure{Tenant: tenant, ResourceID: testResourceID, Contributors: []string{app.ObjectID, other.ObjectID}}})
	srv := httptest.NewServer(s)
	defer srv.Close()
	defer s.Close()
	tok := func(p entra.Principal, resource string, ttl time.Duration) string {
		t, _ := tenant.Issue(p, resource, ttl)
		return t
	}
	tests := []struct {
		name          string
		bearer, mgmt  string
		rid           string
		status        int
		code, message string
	}{
		{"no headers, not a workspace user", tok(app, entra.AzureDatabricks, 0), "", "", 403, "403", "Unauthorized access to Org: " + WorkspaceID},
		{"management token without the resource id", tok(app, entra.AzureDatabricks, 0), tok(app, entra.Management, 0), "", 403, "403", "Unauthorized access to Org"},
		{"a management token as bearer", tok(app, entra.Management, 0), "", "", 400, "400", "Expected aud claim to be: " + entra.AzureDatabricks},
		{"expiring within 30 s", tok(app, entra.AzureDatabricks, 29*time.Second), tok(app, entra.Management, 0), testResourceID, 403, "403", "Token is expiring within 30 seconds"},
		{"management token expiring", tok(app, entra.AzureDatabricks, 0), tok(app, entra.Management, 20*time.Second), testResourceID, 403, "403", "Token is expiring within 30 seconds"},
		{"management token of another identity", tok(app, entra.AzureDatabricks, 0), tok(other, entra.Management, 0), testResourceID, 403, "403", "Unauthorized access to Org"},
		{"another workspace", tok(app, entra.AzureDatabricks, 0), tok(app, entra.Management, 0), strings.Replace(testResourceID, "/dbw", "/dbw2", 1), 403, "403", "Unauthorized access to Org"},
		{"not an ARM id", tok(app, entra.AzureDatabricks, 0), tok(app, entra.Management, 0), WorkspaceID, 400, "400", "Invalid resource ID."},
		{"no role on the workspace", tok(outsider, entra.AzureDatabricks, 0), tok(outsider, entra.Management, 0), testResourceID, 403, "403", "Unauthorized access to Org"},
		{"a forged token", tok(app, entra.AzureDatabricks, 0) + "x", tok(app, entra.Management, 0), testResourceID, 403, "403", "Invalid access token."},
		{"a PAT that is not the workspace's", "dapi-other", "", "", 401, "UNAUTHENTICATED", "Invalid access token."},
		{"Contributor with all three", tok(app, entra.AzureDatabricks, 0), tok(app, entra.Management, 0), testResourceID, 200, "", ""},
		{"then a workspace user: the bearer token alone", tok(app, entra.AzureDatabricks, 0), "", "", 200, "", ""},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest("GET", srv.URL+"/api/2.2/jobs/list", nil)
		req.Header.Set("Authorization", "Bearer "+tt.bearer)
		if tt.mgmt != "" {
			req.Header.Set(ManagementTokenHeader, tt.mgmt)
		}
		if tt.rid != "" {
			req.Header.Set(ResourceIDHeader, tt.rid)
		}
		code, m := do(t, req)
		if code != tt.status || (tt.code != "" && (jsonString(m["error_code"]) != tt.code || !strings.Contains(m["message"].(string), tt.message))) {
			t.Errorf("%s: %d %v, want %d %s %q", tt.name, code, m, tt.status, tt.code, tt.message)
		}
	}
	// The Contributor that came in was made an admin: it sees the
	// service principals.
	req, _ := http.NewRequest("GET", srv.URL+"/api/2.0/preview/scim/v2/ServicePrincipals", nil)
	req.Header.Set("Authorization", "Bearer "+tok(app, entra.AzureDatabricks, 0))
	if code, m := do(t, req); code != 200 || m["totalResults"] != float64(1) {
		t.Errorf("service principals seen by the admitted identity: %d %v", code, m)
	}
}

// TestJobPermissions: a workspace user that is not an admin acts on a job
// only with a grant: CAN_VIEW reads its runs, CAN_MANAGE_RUN starts them.
func TestJobPermissions(t *testing.T) {
	tenant := entra.NewTenant()
	app := tenant.AddManagedIdentity("id-app")
	s := New(Options{Token: "pat", Azure: &Azure{Tenant: tenant, ResourceID: testResourceID}})
	srv := httptest.NewServer(s)
	defer srv.Close()
	defer s.Close()
	_, m := call(t, srv, "POST", "/api/2.2/jobs/create", "pat", `{"name":"j","tasks":[{"task_key":"nb","notebook_task":{"notebook_path":"/x"}}]}`)
	job := jsonInt(int64(m["job_id"].(float64)))
	appTok, _ := tenant.Issue(app, entra.AzureDatabricks, 0)
	if code, m := call(t, srv, "PATCH", "/api/2.0/permissions/jobs/"+job, "pat", `{"access_control_list":[{"service_principal_name":"`+app.ClientID+`","permission_level":"CAN_MANAGE_RUN"}]}`); code != 400 || !strings.Contains(m["message"].(string), "Principal: ServicePrincipalName("+app.ClientID+") does not exist") {
		t.Errorf("grant to an unknown principal: %d %v", code, m)
	}
	if code, _ := call(t, srv, "POST", "/api/2.0/preview/scim/v2/ServicePrincipals", "pat", `{"applicationId":"`+app.ClientID+`"}`); code != 201 {
		t.Fatalf("add service principal: %d", code)
	}
	if code, m := call(t, srv, "POST", "/api/2.0/preview/scim/v2/ServicePrincipals", appTok, `{"applicationId":"`+app.ClientID+`"}`); code != 403 {
		t.Errorf("a non-admin added a service principal: %d %v", code, m)
	}
	runNow := `{"job_id":` + job + `}`
	if code, m := call(t, srv, "POST", "/api/2.2/jobs/run-now", appTok, runNow); code != 403 || m["error_code"] != "PERMISSION_DENIED" ||
		m["message"] != "User "+app.ClientID+" does not have Manage Run or Owner or Admin permissions on job "+job {
		t.Errorf("run-now without a grant: %d %v", code, m)
	}
	if code, _ := call(t, srv, "PATCH", "/api/2.0/permissions/jobs/"+job, "pat", `{"access_control_list":[{"service_principal_name":"`+app.ClientID+`","permission_level":"CAN_MANAGE_RUN"}]}`); code != 200 {
		t.Fatalf("grant: %d", code)
	}
	code, m := call(t, srv, "POST", "/api/2.2/jobs/run-now", appTok, runNow)
	if code != 200 {
		t.Fatalf("run-now with CAN_MANAGE_RUN: %d %v", code, m)
	}
	if code, _ := call(t, srv, "GET", "/api/2.2/jobs/runs/get?run_id="+jsonInt(int64(m["run_id"].(float64))), appTok, ""); code != 200 {
		t.Errorf("runs/get with CAN_MANAGE_RUN: %d", code)
	}
	if code, _ := call(t, srv, "POST", "/api/2.2/jobs/reset", appTok, `{"job_id":`+job+`,"new_settings":{"name":"k"}}`); code != 403 {
		t.Errorf("reset with CAN_MANAGE_RUN: %d", code)
	}
	if code, _ := call(t, srv, "PATCH", "/api/2.0/permissions/jobs/"+job, appTok, `{"access_control_list":[{"service_principal_name":"`+app.ClientID+`","permission_level":"CAN_MANAGE"}]}`); code != 403 {
		t.Errorf("a CAN_MANAGE_RUN holder granted itself more: %d", code)
	}
	// A workspace user that claims a role on the workspace resource it
	// does not have is refused.
	req, _ := http.NewRequest("GET", srv.URL+"/api/2.2/jobs/list", nil)
	mgmt, _ := tenant.Issue(app, entra.Management, 0)
	req.Header.Set("Authorization", "Bearer "+appTok)
	req.Header.Set(ManagementTokenHeader, mgmt)
	req.Header.Set(ResourceIDHeader, testResourceID)
	if code, m := do(t, req); code != 403 {
		t.Errorf("a workspace user without Contributor sending the headers: %d %v", code, m)
	}
}

func do(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	_ = jsonDecode(res, &m)
	return res.StatusCode, m
}
