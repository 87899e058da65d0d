package ingestion

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nbtrace/nbtrace/dev/entra"
)

// TestEntraOnly: a resource with local authentication off takes a post
// only with a valid token for Azure Monitor of a Monitoring Metrics
// Publisher, and keeps nothing of the others.
func TestEntraOnly(t *testing.T) {
	tenant := entra.NewTenant()
	publisher := tenant.AddManagedIdentity("id-publisher")
	outsider := tenant.AddManagedIdentity("id-outsider")
	s := &Server{Entra: &Entra{Tenant: tenant, Publishers: []string{publisher.ObjectID}}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	token := func(p entra.Principal, resource string, ttl time.Duration) string {
		tok, _ := tenant.Issue(p, resource, ttl)
		return "Bearer " + tok
	}
	other := entra.NewTenant()
	tests := []struct {
		name, auth string
		want       int
	}{
		{"the key alone", "", http.StatusUnauthorized},
		{"not a bearer token", "Basic a2V5", http.StatusUnauthorized},
		{"a token for another resource", token(publisher, entra.AzureDatabricks, 0), http.StatusUnauthorized},
		{"an expired token", token(publisher, MonitorResource, -time.Minute), http.StatusUnauthorized},
		{"a token of another tenant", func() string { tok, _ := other.Issue(publisher, MonitorResource, 0); return "Bearer " + tok }(), http.StatusUnauthorized},
		{"a principal without the role", token(outsider, MonitorResource, 0), http.StatusForbidden},
		{"a publisher", token(publisher, MonitorResource, 0), http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v2.1/track", bytes.NewBufferString(`[{"name":"Microsoft.ApplicationInsights.Message"}]`))
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var body struct {
				ItemsAccepted int `json:"itemsAccepted"`
				Errors        []struct {
					StatusCode int `json:"statusCode"`
				} `json:"errors"`
			}
			if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", res.StatusCode, tt.want)
			}
			if tt.want != http.StatusOK && (body.ItemsAccepted != 0 || len(body.Errors) != 1 || body.Errors[0].StatusCode != tt.want) {
				t.Errorf("body %+v, want nothing accepted and one error of %d", body, tt.want)
			}
		})
	}
	if got := len(s.Envelopes()); got != 1 {
		t.Errorf("kept %d envelopes, want the publisher's one", got)
	}
}

// TestSelfSigned: a client that trusts the certificate reaches the
// endpoint over HTTPS at 127.0.0.1.
func TestSelfSigned(t *testing.T) {
	cert, caPEM, err := SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(&Server{})
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	defer srv.Close()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("the PEM holds no certificate")
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	res, err := c.Post(srv.URL+"/v2.1/track", "application/json", bytes.NewBufferString(`[]`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("status %d", res.StatusCode)
	}
}
