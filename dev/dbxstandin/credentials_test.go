package dbxstandin

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/databricks/databricks-sdk-go/apierr"
	"github.com/databricks/databricks-sdk-go/client"
	"github.com/databricks/databricks-sdk-go/config"
	"github.com/databricks/databricks-sdk-go/config/credentials"
	"github.com/databricks/databricks-sdk-go/service/catalog"
	"github.com/databricks/databricks-sdk-go/service/iam"
	"github.com/databricks/databricks-sdk-go/service/jobs"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nbtrace/nbtrace/dev/entra"
)

// bearer signs the SDK's requests in with a fixed token and headers.
type bearer struct {
	token   string
	headers map[string]string
}

func (bearer) Name() string { return "test-bearer" }

func (b bearer) Configure(context.Context, *config.Config) (credentials.CredentialsProvider, error) {
	return credentials.NewCredentialsProvider(func(r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+b.token)
		for k, v := range b.headers {
			r.Header.Set(k, v)
		}
		return nil
	}), nil
}

// noEnv keeps DATABRICKS_* variables and ~/.databrickscfg out of the
// tests' configuration.
type noEnv struct{}

func (noEnv) Name() string                   { return "test-settings" }
func (noEnv) Configure(*config.Config) error { return nil }

// ucFixture is an Azure workspace stand-in with one access connector that
// holds the ingestion identity, and the app's identity as a workspace
// service principal that is not an admin.
type ucFixture struct {
	url       string
	tenant    *entra.Tenant
	ingest    entra.Principal // held by the connector
	stray     entra.Principal // a managed identity the connector does not hold
	app       entra.Principal // a workspace service principal
	deployer  entra.Principal // a service principal with Contributor: an admin
	connector string
	ran       chan RunContext
	ctx       context.Context
}

func newUCFixture(t *testing.T) *ucFixture {
	t.Helper()
	tenant := entra.NewTenant()
	f := &ucFixture{tenant: tenant, ingest: tenant.AddManagedIdentity("id-ingestion"), stray: tenant.AddManagedIdentity("id-stray"),
		app: tenant.AddManagedIdentity("id-app"), deployer: tenant.AddManagedIdentity("id-deployer"),
		connector: tenant.ResourceGroup + "/providers/Microsoft.Databricks/accessConnectors/ac-nbtrace",
		ran:       make(chan RunContext, 4), ctx: context.Background()}
	s := New(Options{Token: "pat", Runner: RunnerFunc(func(_ context.Context, rc RunContext) error { f.ran <- rc; return nil }),
		Azure: &Azure{Tenant: tenant, ResourceID: testResourceID, Contributors: []string{f.deployer.ObjectID},
			AccessConnectors: map[string][]string{f.connector: {f.ingest.ResourceID}}}})
	srv := httptest.NewServer(s)
	s.SetBaseURL(srv.URL)
	f.url = srv.URL
	t.Cleanup(func() { srv.Close(); s.Close() })
	if _, err := iam.NewServicePrincipalsV2(f.admin(t)).Create(f.ctx, iam.CreateServicePrincipalRequest{ApplicationId: f.app.ClientID}); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *ucFixture) sdk(t *testing.T, b bearer) *client.DatabricksClient {
	t.Helper()
	api, err := client.New(&config.Config{Host: f.url, Credentials: b, Loaders: []config.Loader{noEnv{}},
		HTTPTimeoutSeconds: 5, RetryTimeoutSeconds: 5})
	if err != nil {
		t.Fatal(err)
	}
	return api
}

// admin is the personal access token's maker: a workspace admin, so the
// metastore admin.
func (f *ucFixture) admin(t *testing.T) *client.DatabricksClient {
	return f.sdk(t, bearer{token: "pat"})
}

// as signs in as p with an Entra ID token.
func (f *ucFixture) as(t *testing.T, p entra.Principal) *client.DatabricksClient {
	tok, _ := f.tenant.Issue(p, entra.AzureDatabricks, time.Hour)
	return f.sdk(t, bearer{token: tok})
}

// asContributor signs in as p proving its role on the workspace.
func (f *ucFixture) asContributor(t *testing.T, p entra.Principal) *client.DatabricksClient {
	tok, _ := f.tenant.Issue(p, entra.AzureDatabricks, time.Hour)
	mgmt, _ := f.tenant.Issue(p, entra.Management, time.Hour)
	return f.sdk(t, bearer{token: tok, headers: map[string]string{ManagementTokenHeader: mgmt, ResourceIDHeader: testResourceID}})
}

func (f *ucFixture) request(name, identity string) catalog.CreateCredentialRequest {
	return catalog.CreateCredentialRequest{Name: name, Purpose: catalog.CredentialPurposeService, Comment: "nbtrace",
		AzureManagedIdentity: &catalog.AzureManagedIdentity{AccessConnectorId: f.connector, ManagedIdentityId: identity}}
}

// ignoreSent ignores which fields the SDK saw in the JSON.
var ignoreSent = cmpopts.IgnoreFields(catalog.PrivilegeAssignment{}, "ForceSendFields")

// grant adds privs on credential name for principal, as api.
func grant(ctx context.Context, api *client.DatabricksClient, securable, name, principal string, privs ...catalog.Privilege) (*catalog.UpdatePermissionsResponse, error) {
	return catalog.NewGrants(api).Update(ctx, catalog.UpdatePermissions{SecurableType: securable, FullName: name,
		Changes: []catalog.PermissionsChange{{Principal: principal, Add: privs}}})
}

// TestServiceCredentialLifecycle: create, get, update, grant and read the
// grants back, through the SDK as the deploy step calls it.
func TestServiceCredentialLifecycle(t *testing.T) {
	f := newUCFixture(t)
	admin := f.admin(t)
	creds := catalog.NewCredentials(admin)
	created, err := creds.CreateCredential(f.ctx, f.request("NBTrace-Ingestion", f.ingest.ResourceID))
	if err != nil {
		t.Fatal(err)
	}
	// Unity Catalog stores names in lower case; the creator owns it.
	if created.Name != "nbtrace-ingestion" || created.FullName != created.Name || created.Owner != localDeveloper.Name ||
		created.CreatedBy != localDeveloper.Name || created.CreatedAt == 0 || created.Id == "" || created.MetastoreId == "" ||
		created.Purpose != catalog.CredentialPurposeService || created.IsolationMode != catalog.IsolationModeIsolationModeOpen ||
		created.AzureManagedIdentity.CredentialId == "" || created.AzureManagedIdentity.ManagedIdentityId != f.ingest.ResourceID {
		t.Errorf("created %+v", created)
	}
	got, err := creds.GetCredentialByNameArg(f.ctx, "nbtrace-INGESTION")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(created, got); diff != "" {
		t.Errorf("get differs from create (-create +get):\n%s", diff)
	}
	updated, err := creds.UpdateCredential(f.ctx, catalog.UpdateCredentialRequest{NameArg: "nbtrace-ingestion", Comment: "moved",
		AzureManagedIdentity: &catalog.AzureManagedIdentity{AccessConnectorId: strings.ToUpper(f.connector), ManagedIdentityId: f.ingest.ResourceID}})
	if err != nil {
		t.Fatal(err)
	}
	if updated.Comment != "moved" || updated.UpdatedBy != localDeveloper.Name || updated.AzureManagedIdentity.CredentialId != created.AzureManagedIdentity.CredentialId {
		t.Errorf("updated %+v", updated)
	}
	res, err := grant(f.ctx, admin, "credential", "nbtrace-ingestion", f.app.ClientID, catalog.PrivilegeAccess)
	if err != nil {
		t.Fatal(err)
	}
	want := []catalog.PrivilegeAssignment{{Principal: f.app.ClientID, Privileges: []catalog.Privilege{catalog.PrivilegeAccess}}}
	if diff := cmp.Diff(want, res.PrivilegeAssignments, ignoreSent); diff != "" {
		t.Errorf("grant answer (-want +got):\n%s", diff)
	}
	// The SDK's SecurableType constants are upper case; UC reads either.
	perms, err := catalog.NewGrants(admin).GetBySecurableTypeAndFullName(f.ctx, string(catalog.SecurableTypeCredential), "nbtrace-ingestion")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, perms.PrivilegeAssignments, ignoreSent); diff != "" {
		t.Errorf("permissions (-want +got):\n%s", diff)
	}
	eff, err := catalog.NewGrants(f.as(t, f.app)).GetEffectiveBySecurableTypeAndFullName(f.ctx, "credential", "nbtrace-ingestion")
	if err != nil {
		t.Fatal(err)
	}
	if len(eff.PrivilegeAssignments) != 1 || eff.PrivilegeAssignments[0].Principal != f.app.ClientID ||
		len(eff.PrivilegeAssignments[0].Privileges) != 1 || eff.PrivilegeAssignments[0].Privileges[0].Privilege != catalog.PrivilegeAccess {
		t.Errorf("effective permissions %+v", eff)
	}
	// The grantee now sees the credential; a purpose filter applies.
	appCreds := catalog.NewCredentials(f.as(t, f.app))
	if list, err := appCreds.ListCredentialsAll(f.ctx, catalog.ListCredentialsRequest{Purpose: catalog.CredentialPurposeService}); err != nil || len(list) != 1 || list[0].Name != "nbtrace-ingestion" {
		t.Errorf("the grantee's list: %+v, %v", list, err)
	}
	if list, err := creds.ListCredentialsAll(f.ctx, catalog.ListCredentialsRequest{Purpose: catalog.CredentialPurposeStorage}); err != nil || len(list) != 0 {
		t.Errorf("storage credentials: %+v, %v", list, err)
	}
	// Removing the grant takes the credential out of the grantee's sight.
	if _, err := catalog.NewGrants(admin).Update(f.ctx, catalog.UpdatePermissions{SecurableType: "credential", FullName: "nbtrace-ingestion",
		Changes: []catalog.PermissionsChange{{Principal: f.app.ClientID, Remove: []catalog.Privilege{catalog.PrivilegeAccess}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := appCreds.GetCredentialByNameArg(f.ctx, "nbtrace-ingestion"); !errors.Is(err, apierr.ErrPermissionDenied) {
		t.Errorf("get without a privilege: %v", err)
	}
	if err := creds.DeleteCredentialByNameArg(f.ctx, "nbtrace-ingestion"); err != nil {
		t.Fatal(err)
	}
	if _, err := creds.GetCredentialByNameArg(f.ctx, "nbtrace-ingestion"); !errors.Is(err, apierr.ErrNotFound) {
		t.Errorf("get after delete: %v", err)
	}
}

// TestServiceCredentialRefusals: what Unity Catalog refuses, with its
// status, code and words.
func TestServiceCredentialRefusals(t *testing.T) {
	f := newUCFixture(t)
	admin := f.admin(t)
	if _, err := catalog.NewCredentials(admin).CreateCredential(f.ctx, f.request("nbtrace-ingestion", f.ingest.ResourceID)); err != nil {
		t.Fatal(err)
	}
	if _, err := grant(f.ctx, admin, "credential", "nbtrace-ingestion", f.app.ClientID, catalog.PrivilegeAccess); err != nil {
		t.Fatal(err)
	}
	create := func(api *client.DatabricksClient, req catalog.CreateCredentialRequest) func() error {
		return func() error { _, err := catalog.NewCredentials(api).CreateCredential(f.ctx, req); return err }
	}
	grantAs := func(api *client.DatabricksClient, securable, principal string, privs ...catalog.Privilege) func() error {
		return func() error {
			_, err := grant(f.ctx, api, securable, "nbtrace-ingestion", principal, privs...)
			return err
		}
	}
	unknownConnector, noPurpose, badConnector := f.request("other", f.ingest.ResourceID), f.request("other", ""), f.request("other", "")
	unknownConnector.AzureManagedIdentity.AccessConnectorId = strings.Replace(f.connector, "ac-nbtrace", "ac-gone", 1)
	noPurpose.Purpose = ""
	badConnector.AzureManagedIdentity.AccessConnectorId = f.ingest.ResourceID
	tests := []struct {
		name          string
		call          func() error
		status        int
		code, message string
	}{
		{"create by a workspace user that is no metastore admin", create(f.as(t, f.app), f.request("other", f.ingest.ResourceID)),
			403, "PERMISSION_DENIED", "User does not have CREATE SERVICE CREDENTIAL on Metastore '" + metastoreName + "'."},
		{"create by a service principal that is a workspace admin", create(f.asContributor(t, f.deployer), f.request("other", f.ingest.ResourceID)),
			403, "PERMISSION_DENIED", "User does not have CREATE SERVICE CREDENTIAL on Metastore"},
		{"a name that exists, in another case", create(admin, f.request("NBTRACE-ingestion", f.ingest.ResourceID)),
			409, "ALREADY_EXISTS", "Credential 'nbtrace-ingestion' already exists."},
		{"a connector that does not exist", create(admin, unknownConnector), 400, "INVALID_PARAMETER_VALUE", "does not exist"},
		{"an identity the connector does not hold", create(admin, f.request("other", f.stray.ResourceID)),
			400, "INVALID_PARAMETER_VALUE", "Managed identity " + f.stray.ResourceID + " is not assigned to access connector"},
		{"a connector id that is no connector's", create(admin, badConnector), 400, "INVALID_PARAMETER_VALUE", "is not the resource ID of an Azure Databricks access connector"},
		{"no purpose", create(admin, noPurpose), 400, "INVALID_PARAMETER_VALUE", "purpose is required"},
		{"a name with a period", create(admin, f.request("nb.trace", f.ingest.ResourceID)), 400, "INVALID_PARAMETER_VALUE", `name "nb.trace" is not a valid name`},
		{"get one that does not exist", func() error {
			_, err := catalog.NewCredentials(admin).GetCredentialByNameArg(f.ctx, "nope")
			return err
		},
			404, "NOT_FOUND", "Credential 'nope' does not exist."},
		{"update one that does not exist", func() error {
			_, err := catalog.NewCredentials(admin).UpdateCredential(f.ctx, catalog.UpdateCredentialRequest{NameArg: "nope", Comment: "x"})
			return err
		}, 404, "NOT_FOUND", "Credential 'nope' does not exist."},
		{"update by a grantee that is not the owner", func() error {
			_, err := catalog.NewCredentials(f.as(t, f.app)).UpdateCredential(f.ctx, catalog.UpdateCredentialRequest{NameArg: "nbtrace-ingestion", Comment: "x"})
			return err
		}, 403, "PERMISSION_DENIED", "User is not an owner of Credential 'nbtrace-ingestion'."},
		{"grant to an unknown principal", grantAs(admin, "credential", "nobody@example.com", catalog.PrivilegeAccess),
			404, "PRINCIPAL_DOES_NOT_EXIST", "Could not find principal with name nobody@example.com"},
		{"grant to a workspace-local group", grantAs(admin, "credential", "users", catalog.PrivilegeAccess),
			404, "PRINCIPAL_DOES_NOT_EXIST", "Could not find principal with name users"},
		{"grant by a grantee without MANAGE", grantAs(f.as(t, f.app), "credential", f.app.ClientID, catalog.PrivilegeManage),
			403, "PERMISSION_DENIED", "User does not have MANAGE on Credential 'nbtrace-ingestion'."},
		{"a privilege a credential does not take", grantAs(admin, "credential", f.app.ClientID, catalog.PrivilegeSelect),
			400, "INVALID_PARAMETER_VALUE", "Privilege SELECT is not applicable to this entity"},
		{"a grant naming nobody", grantAs(admin, "credential", "", catalog.PrivilegeAccess),
			400, "INVALID_PARAMETER_VALUE", "at least one of 'principal' or 'principal_id' must be set"},
		{"another securable type", grantAs(admin, "storage_credential", f.app.ClientID, catalog.PrivilegeAccess),
			400, "INVALID_PARAMETER_VALUE", "serves grants on service credentials only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ae *apierr.APIError
			if err := tt.call(); !errors.As(err, &ae) || ae.StatusCode != tt.status || ae.ErrorCode != tt.code || !strings.Contains(ae.Message, tt.message) {
				t.Errorf("got %v, want %d %s %q", err, tt.status, tt.code, tt.message)
			}
		})
	}
	// What the SDK's callers test for.
	if _, err := catalog.NewCredentials(admin).GetCredentialByNameArg(f.ctx, "nope"); !errors.Is(err, apierr.ErrNotFound) {
		t.Errorf("a missing credential is not apierr.ErrNotFound: %v", err)
	}
	if err := create(admin, f.request("nbtrace-ingestion", f.ingest.ResourceID))(); !errors.Is(err, apierr.ErrResourceConflict) {
		t.Errorf("a duplicate is not apierr.ErrResourceConflict: %v", err)
	}
	// skip_validation skips the checks in Azure, not the form of the ids.
	skipped := unknownConnector
	skipped.SkipValidation = true
	if err := create(admin, skipped)(); err != nil {
		t.Errorf("skip_validation with a connector Azure does not know: %v", err)
	}
}

// TestTokenOnlyRefusesManagedIdentities: without Options.Azure the
// stand-in knows no identity a credential could stand for.
func TestTokenOnlyRefusesManagedIdentities(t *testing.T) {
	s := New(Options{Token: "pat"})
	srv := httptest.NewServer(s)
	t.Cleanup(func() { srv.Close(); s.Close() })
	f := &ucFixture{url: srv.URL, ctx: context.Background()}
	req := catalog.CreateCredentialRequest{Name: "c", Purpose: catalog.CredentialPurposeService, SkipValidation: true,
		AzureManagedIdentity: &catalog.AzureManagedIdentity{AccessConnectorId: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Databricks/accessConnectors/ac"}}
	var ae *apierr.APIError
	if _, err := catalog.NewCredentials(f.admin(t)).CreateCredential(f.ctx, req); !errors.As(err, &ae) || ae.StatusCode != 400 || !strings.Contains(ae.Message, "Options.Azure") {
		t.Errorf("got %v", err)
	}
}

// TestRunGetsServiceCredentialsItMayUse: a run gets a service credential
// only once its run-as principal holds ACCESS on it, as the client id of
// the credential's identity; one whose identity the tenant does not know
// is left out.
func TestRunGetsServiceCredentialsItMayUse(t *testing.T) {
	f := newUCFixture(t)
	admin, app := f.admin(t), f.as(t, f.app)
	creds := catalog.NewCredentials(admin)
	if _, err := creds.CreateCredential(f.ctx, f.request("nbtrace-ingestion", f.ingest.ResourceID)); err != nil {
		t.Fatal(err)
	}
	ghost := f.request("ghost", f.tenant.ResourceGroup+"/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-ghost")
	ghost.SkipValidation = true
	if _, err := creds.CreateCredential(f.ctx, ghost); err != nil {
		t.Fatal(err)
	}
	if _, err := grant(f.ctx, admin, "credential", "ghost", f.app.ClientID, catalog.PrivilegeAllPrivileges); err != nil {
		t.Fatal(err)
	}
	// An identity the tenant knows but the connector does not hold: made
	// with skip_validation, it could not sign in on Databricks either.
	stray := f.request("stray", f.app.ResourceID)
	stray.SkipValidation = true
	if _, err := creds.CreateCredential(f.ctx, stray); err != nil {
		t.Fatal(err)
	}
	if _, err := grant(f.ctx, admin, "credential", "stray", f.app.ClientID, catalog.PrivilegeAccess); err != nil {
		t.Fatal(err)
	}
	// The app creates the job, so the job runs as the app.
	jobsAPI := jobs.NewJobs(app)
	job, err := jobsAPI.Create(f.ctx, jobs.CreateJob{Name: "j", Tasks: []jobs.Task{{TaskKey: "nb", NotebookTask: &jobs.NotebookTask{NotebookPath: "/Shared/nb"}}}})
	if err != nil {
		t.Fatal(err)
	}
	run := func() map[string]string {
		t.Helper()
		if _, err := jobsAPI.RunNow(f.ctx, jobs.RunNow{JobId: job.JobId}); err != nil {
			t.Fatal(err)
		}
		select {
		case rc := <-f.ran:
			return rc.ServiceCredentials
		case <-time.After(5 * time.Second):
			t.Fatal("the run did not start")
			return nil
		}
	}
	if got := run(); len(got) != 0 {
		t.Errorf("before the grant the run got %v", got)
	}
	if _, err := grant(f.ctx, admin, "credential", "nbtrace-ingestion", f.app.ClientID, catalog.PrivilegeAccess); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"nbtrace-ingestion": f.ingest.ClientID}, run()); diff != "" {
		t.Errorf("after the grant (-want +got):\n%s", diff)
	}
}
