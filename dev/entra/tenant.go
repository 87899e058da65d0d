package entra

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// Resources (token audiences) the stand-ins know.
const (
	// AzureDatabricks is the AzureDatabricks first-party application: the
	// audience of tokens for a workspace's REST API.
	AzureDatabricks = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d"
	// Management is Azure Resource Manager, the audience of the token
	// Databricks reads from X-Databricks-Azure-SP-Management-Token.
	Management = "https://management.core.windows.net/"
)

// azureCLIClientID is the application id of the Azure CLI, the appid of a
// user's tokens from az login.
const azureCLIClientID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"

// Principal is an identity of the tenant.
type Principal struct {
	// ObjectID is the principal id that role assignments name.
	ObjectID string
	// ClientID is a managed identity's application (client) id; "" for a
	// user.
	ClientID string
	// Name is a managed identity's name or a user's principal name.
	Name string
	// ResourceID is a user-assigned managed identity's ARM id
	// (…/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>);
	// "" for a user.
	ResourceID string
}

// IsUser reports whether p is a user rather than a managed identity.
func (p Principal) IsUser() bool { return p.ClientID == "" }

// Claims are the claims of the tenant's access tokens.
type Claims struct {
	jwt.RegisteredClaims
	AppID    string `json:"appid"`
	ObjectID string `json:"oid"`
	TenantID string `json:"tid"`
	// IDType is "app" for a managed identity, "user" for a user.
	IDType string `json:"idtyp"`
	UPN    string `json:"upn,omitempty"`
}

// Tenant issues and verifies tokens. Its zero value is not usable; call
// NewTenant.
type Tenant struct {
	// ID is the tenant id.
	ID string
	// Lifetime of the tokens issued; Entra's managed identity tokens live
	// about 24 hours.
	Lifetime time.Duration
	// ResourceGroup is the ARM id of the resource group that holds the
	// managed identities, /subscriptions/<id>/resourceGroups/<name>.
	ResourceGroup string
	key           []byte
	mu            sync.Mutex
	byClient      map[string]Principal
	issued        int
}

// NewTenant returns a tenant with a fresh signing key.
func NewTenant() *Tenant {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return &Tenant{ID: uuid.NewString(), Lifetime: 24 * time.Hour, key: key, byClient: map[string]Principal{},
		ResourceGroup: "/subscriptions/" + uuid.NewString() + "/resourceGroups/rg-nbtrace"}
}

// AddManagedIdentity creates a user-assigned managed identity.
func (t *Tenant) AddManagedIdentity(name string) Principal {
	p := Principal{ObjectID: uuid.NewString(), ClientID: uuid.NewString(), Name: name,
		ResourceID: t.ResourceGroup + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" + name}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.byClient[p.ClientID] = p
	return p
}

// AddUser creates a user.
func (t *Tenant) AddUser(upn string) Principal {
	return Principal{ObjectID: uuid.NewString(), Name: upn}
}

// Issued is the number of tokens issued so far.
func (t *Tenant) Issued() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.issued
}

func (t *Tenant) identity(clientID string) (Principal, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.byClient[clientID]
	return p, ok
}

// ManagedIdentity finds a user-assigned managed identity by its ARM id,
// which Azure compares without regard to case.
func (t *Tenant) ManagedIdentity(resourceID string) (Principal, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range t.byClient {
		if strings.EqualFold(p.ResourceID, resourceID) {
			return p, true
		}
	}
	return Principal{}, false
}

// Issue signs a token of p for resource, valid for ttl (the tenant's
// Lifetime when 0).
func (t *Tenant) Issue(p Principal, resource string, ttl time.Duration) (string, time.Time) {
	if ttl == 0 {
		ttl = t.Lifetime
	}
	now := time.Now()
	exp := now.Add(ttl).Truncate(time.Second)
	c := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: "https://sts.windows.net/" + t.ID + "/", Subject: p.ObjectID, Audience: jwt.ClaimStrings{resource},
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(-5 * time.Minute)), ExpiresAt: jwt.NewNumericDate(exp),
			ID: uuid.NewString(),
		},
		AppID: p.ClientID, ObjectID: p.ObjectID, TenantID: t.ID, IDType: "app",
	}
	if p.IsUser() {
		c.AppID, c.IDType, c.UPN = azureCLIClientID, "user", p.Name
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(t.key)
	if err != nil {
		panic(err) // HS256 with a key never fails
	}
	t.mu.Lock()
	t.issued++
	t.mu.Unlock()
	return s, exp
}

// ErrAudience is returned by Verify for a token of another resource.
var ErrAudience = errors.New("token audience")

// Verify checks a token's signature, issuer and time, and that it is for
// resource. An expired token fails; how much time a token must have left
// is the verifying service's rule.
func (t *Tenant) Verify(token, resource string) (*Claims, error) {
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return t.key, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer("https://sts.windows.net/"+t.ID+"/"),
		jwt.WithExpirationRequired())
	if err != nil {
		return nil, err
	}
	if len(c.Audience) != 1 || c.Audience[0] != resource {
		return &c, fmt.Errorf("%w: expected %s, but was %s", ErrAudience, resource, strings.Join(c.Audience, ","))
	}
	return &c, nil
}

// Credential is an azcore.TokenCredential that signs in as p: the stand-in
// for a developer's Azure CLI sign-in (AzureCLICredential) in Azure.
func (t *Tenant) Credential(p Principal) azcore.TokenCredential { return credential{t, p} }

type credential struct {
	t *Tenant
	p Principal
}

func (c credential) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if len(o.Scopes) != 1 {
		return azcore.AccessToken{}, fmt.Errorf("entra stand-in: want one scope, got %q", o.Scopes)
	}
	tok, exp := c.t.Issue(c.p, ResourceOf(o.Scopes[0]), 0)
	return azcore.AccessToken{Token: tok, ExpiresOn: exp}, nil
}

// ResourceOf is the resource of a scope, as Entra reads the v1 form
// "<resource>/.default" ("https://management.core.windows.net//.default"
// is the resource "https://management.core.windows.net/").
func ResourceOf(scope string) string { return strings.TrimSuffix(scope, "/.default") }
