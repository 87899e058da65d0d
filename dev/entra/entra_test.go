package entra

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// TestIdentityEndpoint: azidentity's managed identity credential gets
// tokens from the endpoint as from App Service's; the endpoint refuses
// what App Service refuses.
func TestIdentityEndpoint(t *testing.T) {
	tenant := NewTenant()
	app := tenant.AddManagedIdentity("id-app")
	srv := httptest.NewServer(tenant.NewIdentityEndpoint("h3ader", app))
	defer srv.Close()
	t.Setenv("IDENTITY_ENDPOINT", srv.URL+"/msi/token")
	t.Setenv("IDENTITY_HEADER", "h3ader")
	cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ID: azidentity.ClientID(app.ClientID)})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://management.core.windows.net//.default"}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := tenant.Verify(tok.Token, Management)
	if err != nil || c.AppID != app.ClientID || c.ObjectID != app.ObjectID || c.IDType != "app" {
		t.Fatalf("claims %+v, %v", c, err)
	}
	if time.Until(tok.ExpiresOn) < 23*time.Hour {
		t.Errorf("token expires %v", tok.ExpiresOn)
	}
	if _, err := tenant.Verify(tok.Token, AzureDatabricks); err == nil {
		t.Error("a management token verified for Azure Databricks")
	}
	for name, q := range map[string]struct {
		header, query string
		status        int
	}{
		"wrong header":     {"x", "api-version=2019-08-01&resource=r&client_id=" + app.ClientID, 401},
		"old api version":  {"h3ader", "api-version=2017-09-01&resource=r&client_id=" + app.ClientID, 400},
		"unknown identity": {"h3ader", "api-version=2019-08-01&resource=r&client_id=00000000-0000-0000-0000-000000000000", 400},
		"system-assigned":  {"h3ader", "api-version=2019-08-01&resource=r", 400},
	} {
		req, _ := http.NewRequest("GET", srv.URL+"/msi/token?"+q.query, nil)
		req.Header.Set("X-IDENTITY-HEADER", q.header)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		_ = json.NewDecoder(res.Body).Decode(&body)
		res.Body.Close()
		if res.StatusCode != q.status || body["statusCode"] != float64(q.status) {
			t.Errorf("%s: %d %v", name, res.StatusCode, body)
		}
		if name == "unknown identity" && !strings.Contains(body["message"].(string), "Unable to load the proper Managed Identity") {
			t.Errorf("%s: %v", name, body)
		}
	}
}
