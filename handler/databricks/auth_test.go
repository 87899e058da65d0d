package databricks

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/nbtrace/nbtrace/dev/dbxstandin"
	"github.com/nbtrace/nbtrace/dev/entra"
)

const resourceID = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Databricks/workspaces/dbw"

// azureWorkspace starts the stand-in as an Azure workspace whose resource
// the given principals are Contributors of.
func azureWorkspace(t *testing.T, tenant *entra.Tenant, contributors ...entra.Principal) (*dbxstandin.Server, string) {
	t.Helper()
	az := &dbxstandin.Azure{Tenant: tenant, ResourceID: resourceID}
	for _, p := range contributors {
		az.Contributors = append(az.Contributors, p.ObjectID)
	}
	stand := dbxstandin.New(dbxstandin.Options{Token: token, Azure: az})
	srv := httptest.NewServer(stand)
	stand.SetBaseURL(srv.URL)
	t.Cleanup(func() { srv.Close(); stand.Close() })
	return stand, srv.URL
}

// TestManagedIdentityIsLetIn: the app's managed identity, reached through
// the App Service identity endpoint as in a Function App, is not a
// workspace user but has Contributor on the workspace. With the workspace's
// ARM id every call carries the bearer token, the management token of the
// same identity and the id, and Databricks lets it in; without the id it is
// refused as Azure Databricks refuses it.
func TestManagedIdentityIsLetIn(t *testing.T) {
	tenant := entra.NewTenant()
	app := tenant.AddManagedIdentity("id-app")
	endpoint := httptest.NewServer(tenant.NewIdentityEndpoint("s3cret", app))
	defer endpoint.Close()
	t.Setenv("IDENTITY_ENDPOINT", endpoint.URL+"/msi/token")
	t.Setenv("IDENTITY_HEADER", "s3cret")
	stand, url := azureWorkspace(t, tenant, app)

	cfg := Config{Host: url, AzureClientID: app.ClientID, HTTPTimeout: 5 * time.Second, RetryTimeout: 5 * time.Second}
	_, err := New(cfg, sdktrace.NewTracerProvider(), propagation.TraceContext{}).Jobs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	bare := New(cfg, sdktrace.NewTracerProvider(), propagation.TraceContext{})
	bare.cfg.JobID = 1
	if _, err := bare.GetRun(context.Background(), 1); err == nil || !strings.Contains(err.Error(), "Unauthorized access to Org") {
		t.Fatalf("without the workspace's ARM id: %v, want Databricks' refusal", err)
	}

	cfg.AzureResourceID = resourceID
	c := New(cfg, sdktrace.NewTracerProvider(), propagation.TraceContext{})
	c.cfg.JobID = createJob(t, c)
	runID, err := c.RunNow(context.Background(), map[string]string{"dataset": "d"}, "tok")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetRun(context.Background(), runID); err != nil {
		t.Fatal(err)
	}
	var api int
	for _, r := range stand.Requests() {
		if !strings.HasPrefix(r.Path, "/api/") {
			continue
		}
		api++
		if r.Header.Get(dbxstandin.ResourceIDHeader) == "" && r.Header.Get("Authorization") != "" {
			continue // the refused call above
		}
		bearer := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		claims, err := tenant.Verify(bearer, entra.AzureDatabricks)
		if err != nil || claims.AppID != app.ClientID {
			t.Errorf("%s %s: bearer token %v (%v)", r.Method, r.Path, claims, err)
		}
		mgmt, err := tenant.Verify(r.Header.Get(dbxstandin.ManagementTokenHeader), entra.Management)
		if err != nil || mgmt.ObjectID != app.ObjectID {
			t.Errorf("%s %s: management token %v (%v)", r.Method, r.Path, mgmt, err)
		}
		if r.Header.Get(dbxstandin.ResourceIDHeader) != resourceID {
			t.Errorf("%s %s: resource id %q", r.Method, r.Path, r.Header.Get(dbxstandin.ResourceIDHeader))
		}
	}
	if api < 4 {
		t.Errorf("%d API calls, want the create, run-now and runs/get calls", api)
	}
}

// countingCredential issues the tenant's tokens with a lifetime of its
// own, counting the requests for each scope.
type countingCredential struct {
	tenant *entra.Tenant
	p      entra.Principal
	ttl    time.Duration
	mu     sync.Mutex
	calls  map[string]int
}

func (c *countingCredential) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[o.Scopes[0]]++
	tok, exp := c.tenant.Issue(c.p, entra.ResourceOf(o.Scopes[0]), c.ttl)
	return azcore.AccessToken{Token: tok, ExpiresOn: exp}, nil
}

func (c *countingCredential) count(scope string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[scope]
}

// TestTokensAreRefreshedEarly: a token is replaced 40 s before it expires,
// both the bearer and the management token, so Databricks (which refuses
// tokens with 30 s or less left) never sees one near its end.
func TestTokensAreRefreshedEarly(t *testing.T) {
	tenant := entra.NewTenant()
	app := tenant.AddManagedIdentity("id-app")
	_, url := azureWorkspace(t, tenant, app)
	cred := &countingCredential{tenant: tenant, p: app, ttl: 41 * time.Second, calls: map[string]int{}}
	c := New(Config{Host: url, AzureResourceID: resourceID, HTTPTimeout: 5 * time.Second, RetryTimeout: 5 * time.Second},
		sdktrace.NewTracerProvider(), propagation.TraceContext{}, WithCredential(cred))
	c.cfg.JobID = createJob(t, c)
	if _, err := c.RunNow(context.Background(), nil, ""); err != nil {
		t.Fatal(err)
	}
	before := [2]int{cred.count(AzureDatabricksScope), cred.count(AzureManagementScope)}
	if before[0] != 1 || before[1] != 1 {
		t.Fatalf("%v tokens for two calls with fresh tokens, want one of each, cached", before)
	}
	time.Sleep(1200 * time.Millisecond) // the tokens now have less than 40 s left
	if _, err := c.RunNow(context.Background(), nil, ""); err != nil {
		t.Fatal(err)
	}
	if n, m := cred.count(AzureDatabricksScope), cred.count(AzureManagementScope); n != 2 || m != 2 {
		t.Errorf("after the tokens came within 40 s of expiry: %d bearer and %d management tokens fetched, want 2 each", n, m)
	}

	// A credential that hands out tokens with 31 s left: each call takes a
	// new one rather than keep it past the 30 s line.
	short := &countingCredential{tenant: tenant, p: app, ttl: 31 * time.Second, calls: map[string]int{}}
	c = New(Config{Host: url, AzureResourceID: resourceID, JobID: c.cfg.JobID, HTTPTimeout: 5 * time.Second, RetryTimeout: 5 * time.Second},
		sdktrace.NewTracerProvider(), propagation.TraceContext{}, WithCredential(short))
	for range 2 {
		if _, err := c.RunNow(context.Background(), nil, ""); err != nil {
			t.Fatal(err)
		}
	}
	if n := short.count(AzureDatabricksScope); n != 2 {
		t.Errorf("%d bearer tokens for two calls with short-lived tokens, want a new one each (2)", n)
	}
}

// TestTokenWinsOverTheIdentity: DATABRICKS_TOKEN with the managed identity
// settings signs in with the token, says so once, and does not fail as
// the SDK would ("more than one authorization method").
func TestTokenWinsOverTheIdentity(t *testing.T) {
	tenant := entra.NewTenant()
	stand, url := azureWorkspace(t, tenant)
	var log bytes.Buffer
	c := New(Config{Host: url, Token: token, AzureResourceID: resourceID, AzureClientID: "00000000-0000-0000-0000-0000000000aa",
		HTTPTimeout: 5 * time.Second, RetryTimeout: 5 * time.Second},
		sdktrace.NewTracerProvider(), propagation.TraceContext{}, WithLogger(slog.New(slog.NewTextHandler(&log, nil))))
	c.cfg.JobID = createJob(t, c)
	if _, err := c.RunNow(context.Background(), nil, ""); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(log.String(), "DATABRICKS_TOKEN is set"); n != 1 {
		t.Errorf("%d log lines about the token, want 1:\n%s", n, log.String())
	}
	for _, r := range stand.Requests() {
		if strings.HasPrefix(r.Path, "/api/") && (r.Header.Get("Authorization") != "Bearer "+token || r.Header.Get(dbxstandin.ManagementTokenHeader) != "" || r.Header.Get(dbxstandin.ResourceIDHeader) != "") {
			t.Errorf("%s %s signed in with %q, management token %t", r.Method, r.Path, r.Header.Get("Authorization"), r.Header.Get(dbxstandin.ManagementTokenHeader) != "")
		}
	}
}
