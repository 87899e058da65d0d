// Package ingestion is a stand-in for the Application Insights ingestion
// endpoint, for tests and the local stack: it keeps every telemetry item
// posted to /v2.1/track and answers as the service does, with the
// per-item result {itemsReceived, itemsAccepted, errors}
// (https://learn.microsoft.com/azure/azure-monitor/app/ip-addresses and
// the Track API that Microsoft's exporters post to: a JSON array or
// newline-delimited JSON of envelopes, gzip-encoded or not).
package ingestion

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
)

// Server is the endpoint. Its zero value accepts everything.
type Server struct {
	// Answer, when set, decides the answer to the attempt-th post (from 1)
	// of n items: its status, its body ("" for the service's own
	// all-accepted body) and headers. Items are kept only for 200 and 206.
	Answer func(n, attempt int) (status int, body string, header map[string]string)

	mu        sync.Mutex
	envelopes []map[string]any
	requests  []Request
}

// Request is a post the endpoint received.
type Request struct {
	Path   string
	Header http.Header
	Items  int
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
	s.mu.Lock()
	s.requests = append(s.requests, Request{Path: r.URL.Path, Header: r.Header.Clone(), Items: len(items)})
	attempt := len(s.requests)
	answer := s.Answer
	s.mu.Unlock()
	status, resp, header := http.StatusOK, "", map[string]string(nil)
	if answer != nil {
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
