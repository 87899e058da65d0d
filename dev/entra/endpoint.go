package entra

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"

	"github.com/google/uuid"
)

// IdentityEndpoint serves the App Service identity endpoint that a Function
// App's code reaches through IDENTITY_ENDPOINT, for the managed identities
// assigned to the app. The rules are the platform's
// (https://learn.microsoft.com/azure/app-service/overview-managed-identity#rest-endpoint-reference):
//
//   - GET with api-version=2019-08-01 and the resource, and the header
//     X-IDENTITY-HEADER carrying IDENTITY_HEADER's value;
//   - a user-assigned identity chosen by client_id or principal_id (object
//     id); none names the system-assigned one, which apps of this project
//     do not have (nor does the stand-in serve mi_res_id);
//   - the answer {access_token, expires_on (Unix seconds, a string),
//     resource, token_type, client_id}.
//
// An identity the app does not have gets the platform's 400 "Unable to load
// the proper Managed Identity." (seen in Azure/azure-sdk-for-net#43691).
type IdentityEndpoint struct {
	tenant     *Tenant
	header     string
	identities []Principal
	mu         sync.Mutex
	requests   int
}

// NewIdentityEndpoint returns the endpoint of an app holding identities;
// header is the secret the platform puts in IDENTITY_HEADER.
func (t *Tenant) NewIdentityEndpoint(header string, identities ...Principal) *IdentityEndpoint {
	return &IdentityEndpoint{tenant: t, header: header, identities: identities}
}

// Requests is the number of token requests served.
func (e *IdentityEndpoint) Requests() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.requests
}

func (e *IdentityEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	switch {
	case r.Method != http.MethodGet:
		msiError(w, http.StatusMethodNotAllowed, "The requested resource does not support http method '"+r.Method+"'.")
		return
	case r.Header.Get("X-IDENTITY-HEADER") != e.header || e.header == "":
		msiError(w, http.StatusUnauthorized, "The X-IDENTITY-HEADER header is missing or does not match.")
		return
	case q.Get("api-version") != "2019-08-01":
		msiError(w, http.StatusBadRequest, "The api-version parameter is missing or not supported.")
		return
	case q.Get("resource") == "":
		msiError(w, http.StatusBadRequest, "The resource parameter is required.")
		return
	}
	var found *Principal
	for i, p := range e.identities {
		switch {
		case q.Get("client_id") != "" && q.Get("client_id") == p.ClientID,
			q.Get("principal_id") != "" && q.Get("principal_id") == p.ObjectID:
			found = &e.identities[i]
		}
	}
	if found == nil {
		msiError(w, http.StatusBadRequest, "Unable to load the proper Managed Identity.")
		return
	}
	e.mu.Lock()
	e.requests++
	e.mu.Unlock()
	tok, exp := e.tenant.Issue(*found, q.Get("resource"), 0)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(map[string]string{
		"access_token": tok, "expires_on": strconv.FormatInt(exp.Unix(), 10), "resource": q.Get("resource"),
		"token_type": "Bearer", "client_id": found.ClientID,
	})
}

func msiError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"statusCode": status, "message": msg, "correlationId": uuid.NewString()})
}
