package databricks

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/databricks/databricks-sdk-go/config"
	"github.com/databricks/databricks-sdk-go/config/credentials"
	"github.com/databricks/databricks-sdk-go/config/experimental/auth"
	"golang.org/x/oauth2"
)

// Scopes of the tokens an Entra ID identity signs in with.
const (
	// AzureDatabricksScope is the AzureDatabricks first-party application:
	// the bearer token of every call.
	AzureDatabricksScope = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d/.default"
	// AzureManagementScope is Azure Resource Manager (the resource
	// https://management.core.windows.net/, hence the double slash): the
	// token that proves the identity's role on the workspace resource.
	AzureManagementScope = "https://management.core.windows.net//.default"
)

// Headers with which Azure Databricks admits an identity that is not yet a
// workspace user but has Contributor or Owner on the workspace resource
// (databricks-sdk-go v0.182.0 config/auth_azure_cli.go, oauth_visitors.go).
const (
	managementTokenHeader = "X-Databricks-Azure-SP-Management-Token"
	resourceIDHeader      = "X-Databricks-Azure-Workspace-Resource-Id"
)

// refreshMargin: Azure Databricks refuses tokens that expire within 30
// seconds, so each token is replaced 40 seconds before it expires, as the
// SDK's own Azure strategies do (config/oauth_visitors.go,
// azureReuseTokenSource).
const refreshMargin = 40 * time.Second

// azureCredentials signs every SDK request in as an Entra ID identity:
// Authorization: Bearer with a token for Azure Databricks and, when the
// workspace's ARM id is known, a management token of the same identity and
// that id, so that Databricks admits the identity even before it is a
// workspace user. It is the SDK's azure-msi strategy with azidentity in
// place of the VM metadata endpoint, which a Function App does not have
// (its identity endpoint is IDENTITY_ENDPOINT, which azidentity speaks).
type azureCredentials struct {
	cred       azcore.TokenCredential
	resourceID string
}

func (azureCredentials) Name() string { return "azure-identity" }

// Configure returns the provider of the three headers. Tokens are fetched
// on a request, refreshed synchronously once within refreshMargin of their
// expiry (an asynchronous refresh would run under the context of a request
// that may end first).
func (a azureCredentials) Configure(context.Context, *config.Config) (credentials.CredentialsProvider, error) {
	dbx := tokenSource(a.cred, AzureDatabricksScope)
	var mgmt auth.TokenSource
	if a.resourceID != "" {
		mgmt = tokenSource(a.cred, AzureManagementScope)
	}
	return credentials.CredentialsProviderFn(func(r *http.Request) error {
		t, err := dbx.Token(r.Context())
		if err != nil {
			return err
		}
		t.SetAuthHeader(r)
		if mgmt == nil {
			return nil
		}
		m, err := mgmt.Token(r.Context())
		if err != nil {
			return err
		}
		r.Header.Set(managementTokenHeader, m.AccessToken)
		r.Header.Set(resourceIDHeader, a.resourceID)
		return nil
	}), nil
}

// tokenSource is cred's tokens for scope, cached until refreshMargin
// before they expire.
func tokenSource(cred azcore.TokenCredential, scope string) auth.TokenSource {
	return auth.NewCachedTokenSource(auth.TokenSourceFn(func(ctx context.Context) (*oauth2.Token, error) {
		tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}})
		if err != nil {
			return nil, fmt.Errorf("token for %s: %w", scope, err)
		}
		return &oauth2.Token{AccessToken: tok.Token, TokenType: "Bearer", Expiry: tok.ExpiresOn.Add(-refreshMargin)}, nil
	}), auth.WithAsyncRefresh(false))
}

// azureCredential is the user-assigned managed identity named by
// AZURE_CLIENT_ID, else the default chain (managed identity, workload
// identity, the Azure CLI or azd sign-in of a developer).
func azureCredential(cfg Config) (azcore.TokenCredential, error) {
	if cfg.AzureClientID != "" {
		return azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ID: azidentity.ClientID(cfg.AzureClientID)})
	}
	return azidentity.NewDefaultAzureCredential(nil)
}
