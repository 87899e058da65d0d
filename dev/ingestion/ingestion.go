// Package ingestion is a stand-in for the Application Insights ingestion
// endpoint, for tests and the local stack: it keeps every telemetry item
// posted to /v2.1/track and answers as the service does, with the
// per-item result {itemsReceived, itemsAccepted, errors}
// (https://learn.microsoft.com/azure/azure-monitor/app/ip-addresses and
// the Track API that Microsoft's exporters post to: a JSON array or
// newline-delimited JSON of envelopes, gzip-encoded or not).
//
// With Entra set it is a resource with local authentication disabled
// (disableLocalAuth: true), which takes only Microsoft Entra ID tokens.
package ingestion

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/nbtrace/nbtrace/dev/entra"
)

// MonitorResource is the audience of the tokens ingestion takes: what
// the exporters ask for with the scope https://monitor.azure.com//.default.
const MonitorResource = "https://monitor.azure.com/"

// Entra makes the endpoint a resource that takes only Microsoft Entra ID
// tokens (https://learn.microsoft.com/azure/azure-monitor/app/azure-ad-authentication).
type Entra struct {
	// Tenant verifies the tokens.
	Tenant *entra.Tenant
	// Publishers are the object ids of the principals that hold
	// Monitoring Metrics Publisher on the resource, the role ingestion
	// requires ("it will publish all telemetry to the Application
	// Insights resource").
	Publishers []string
}

// Server is the endpoint. Its zero value accepts everything.
type Server struct {
	// Answer, when set, decides the answer to the attempt-th post (from 1)
	// of n items: its status, its body ("" for the service's own
	// all-accepted body) and headers. Items are kept only for 200 and 206.
	Answer func(n, attempt int) (status int, body string, header map[string]string)
	// Entra, when set, refuses every post without a valid token of a
	// publisher (see Entra).
	Entra *Entra

	mu        sync.Mutex
	envelopes []map[string]any
	requests  []Request
}

// Request is a post the endpoint received.
type Request struct {
	Path   string
	Header http.Header
	Items  int
	// Principal is the object id of the token's principal ("" without a
	// token); Status the answer.
	Principal string
	Status    int
}

// ServeHTTP takes a post to /v2.1/track (Microsoft's Python exporter joins
// an endpoint's trailing slash with its own: //v2.1/track).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || strings.TrimLeft(r.URL.Path, "/") != "v2.1/track" {
		http.NotFound(w, r)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, "bad gzip", http.StatusBadRequest)
			return
		}
		body = gz
	}
	raw, _ := io.ReadAll(body)
	var items []map[string]any
	if bytes.HasPrefix(bytes.TrimSpace(raw), []byte("[")) {
		_ = json.Unmarshal(raw, &items)
	} else {
		for _, line := range bytes.Split(raw, []byte("\n")) {
			var m map[string]any
			if json.Unmarshal(line, &m) == nil {
				items = append(items, m)
			}
		}
	}
	principal, status, resp := s.authorize(r, len(items))
	s.mu.Lock()
	s.requests = append(s.requests, Request{Path: r.URL.Path, Header: r.Header.Clone(), Items: len(items), Principal: principal, Status: status})
	attempt := len(s.requests)
	answer := s.Answer
	s.mu.Unlock()
	header := map[string]string(nil)
	if answer != nil && status == http.StatusOK {
		status, resp, header = answer(len(items), attempt)
	}
	if status == http.StatusOK || status == http.StatusPartialContent {
		s.mu.Lock()
		s.envelopes = append(s.envelopes, items...)
		s.mu.Unlock()
	}
	if resp == "" {
		b, _ := json.Marshal(map[string]any{"itemsReceived": len(items), "itemsAccepted": len(items), "errors": []any{}})
		resp = string(b)
	}
	for k, v := range header {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, resp)
}

// authorize applies Entra's rules to a post of n items: the principal of
// its token, and the answer (200 and "" to go on). An Entra-only resource
// answers 401 to a post without a valid token for it and 403 to a token
// of a principal without Monitoring Metrics Publisher (the ingestion
// errors of "Troubleshooting" in azure-ad-authentication: "HTTP/1.1 401
// Authorization required", "HTTP/1.1 403 Unauthorized"; the exporters
// retry both and log them: azure-monitor-opentelemetry-exporter
// export/_base.py). Without Entra every post is taken.
func (s *Server) authorize(r *http.Request, n int) (principal string, status int, body string) {
	e := s.Entra
	if e == nil {
		return "", http.StatusOK, ""
	}
	auth := r.Header.Get("Authorization")
	refuse := func(status int, msg string) (string, int, string) {
		b, _ := json.Marshal(map[string]any{"itemsReceived": n, "itemsAccepted": 0,
			"errors": []any{map[string]any{"index": 0, "statusCode": status, "message": msg}}})
		return principal, status, string(b)
	}
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		return refuse(http.StatusUnauthorized, "Authorization required: this resource takes only Microsoft Entra ID tokens")
	}
	c, err := e.Tenant.Verify(tok, MonitorResource)
	if err != nil {
		return refuse(http.StatusUnauthorized, "The token is not valid for "+MonitorResource+": "+err.Error())
	}
	principal = c.ObjectID
	if !slices.Contains(e.Publishers, c.ObjectID) {
		return refuse(http.StatusForbidden, "Unauthorized: the principal "+c.ObjectID+" does not hold Monitoring Metrics Publisher on this resource")
	}
	return principal, http.StatusOK, ""
}

// Envelopes returns the items kept so far.
func (s *Server) Envelopes() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.envelopes...)
}

// Requests returns the posts received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}
