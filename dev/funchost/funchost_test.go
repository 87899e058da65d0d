package funchost

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/nbtrace/nbtrace/handler/manifest"
)

// TestPayloadMatchesReferenceFixtureA builds the payload for the request of
// the reference's fixture A and compares it with the fixture, field by
// field (sys values differ per invocation).
func TestPayloadMatchesReferenceFixtureA(t *testing.T) {
	body := `{"id":1005,"quantity":2,"color":"black"}`
	r := httptest.NewRequest(http.MethodPost, "http://localhost:7071/api/order?debug=1", strings.NewReader(body))
	r.Header = http.Header{"Content-Type": {"application/json"}, "Content-Length": {"40"}}
	data := httpData(r, []byte(body), nil)
	meta := metadata(r, []byte(body), nil, "order")
	got, _ := json.Marshal(map[string]any{"Data": map[string]any{"req": data}, "Metadata": meta})

	var g struct {
		Data     struct{ Req map[string]any }
		Metadata map[string]any
	}
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatal(err)
	}
	wantReq := map[string]any{
		"Url": "http://localhost:7071/api/order?debug=1", "Method": "POST",
		"Query":   map[string]any{"debug": "1"},
		"Headers": map[string]any{"Host": []any{"localhost:7071"}, "Content-Type": []any{"application/json"}, "Content-Length": []any{"40"}},
		"Params":  map[string]any{},
		"Body":    body,
	}
	delete(g.Data.Req, "Identities")
	if diff := cmp.Diff(wantReq, g.Data.Req); diff != "" {
		t.Errorf("Data.req (-want +got):\n%s", diff)
	}
	sys, _ := g.Metadata["sys"].(map[string]any)
	if sys["MethodName"] != "order" || sys["RandGuid"] == nil || sys["UtcNow"] == nil {
		t.Errorf("sys = %v", sys)
	}
	delete(g.Metadata, "sys")
	wantMeta := map[string]any{
		"id": `"1005"`, "quantity": `"2"`, "color": `"black"`, "debug": `"1"`,
		"Query":   map[string]any{"debug": "1"},
		"Headers": map[string]any{"Host": "localhost:7071", "Content-Type": "application/json", "Content-Length": "40"},
	}
	if diff := cmp.Diff(wantMeta, g.Metadata); diff != "" {
		t.Errorf("Metadata (-want +got):\n%s", diff)
	}
}

func TestPayloadBodyAndQuery(t *testing.T) {
	// No Content-Length: no Body key at all.
	r := httptest.NewRequest(http.MethodGet, "http://localhost:7071/api/x?a=1&a=2&code=secret", nil)
	r.ContentLength = 0
	d := httpData(r, nil, map[string]string{"id": "7"})
	if _, ok := d["Body"]; ok {
		t.Error("Body present for a request without a body")
	}
	if diff := cmp.Diff(map[string]string{"a": "1,2", "code": "secret"}, d["Query"]); diff != "" {
		t.Errorf("Query (-want +got):\n%s", diff)
	}
	m := metadata(r, nil, map[string]string{"id": "7"}, "x")
	if _, ok := m["code"]; ok {
		t.Error("the code query parameter reached Metadata")
	}
	if m["a"] != `"2"` || m["id"] != `"7"` {
		t.Errorf("metadata a=%v id=%v, want last value and route value, encoded twice", m["a"], m["id"])
	}
	// Binary bodies are base64.
	r = httptest.NewRequest(http.MethodPost, "http://localhost:7071/api/x", strings.NewReader("\x00\xff"))
	r.Header.Set("Content-Type", "application/octet-stream")
	if d := httpData(r, []byte("\x00\xff"), nil); d["Body"] != "AP8=" {
		t.Errorf("Body = %v, want base64", d["Body"])
	}
	// Forwarding rebuilds the query from a dictionary.
	if got := rebuildQuery(map[string][]string{"a": {"1", "2"}, "code": {"k"}}); got != "a=1%2C2&code=k" {
		t.Errorf("rebuilt query = %s", got)
	}
}

func TestHTTPResult(t *testing.T) {
	tests := []struct {
		name       string
		value      string
		isReturn   bool
		wantStatus int
		wantBody   string
		wantHeader map[string]string
		wantErr    bool
	}{
		{"named, numeric status", `{"statusCode":201,"body":"{\"ok\":true}","headers":{"Content-Type":"application/json"}}`, false, 201, `{"ok":true}`, map[string]string{"Content-Type": "application/json"}, false},
		{"named, string status", `{"statusCode":"204"}`, false, 204, "", nil, false},
		{"case-insensitive keys", `{"StatusCode":"300","Body":"hello"}`, false, 300, "hello", nil, false},
		{"status without statusCode is ignored", `{"status":404,"body":"x"}`, false, 200, "x", nil, false},
		{"object body is indented JSON", `{"body":{"a":1}}`, false, 200, "{\n  \"a\": 1\n}", nil, false},
		{"named, not an object", `"text"`, false, 0, "", nil, true},
		{"bad status", `{"statusCode":"abc"}`, false, 0, "", nil, true},
		{"$return with body", `{"statusCode":"202","body":"accepted","headers":{"Content-Type":"text/plain"}}`, true, 202, "accepted", map[string]string{"Content-Type": "text/plain"}, false},
		{"$return without body: the whole object is a 200 body", `{"statusCode":"500","x":1}`, true, 200, "{\n  \"statusCode\": \"500\",\n  \"x\": 1\n}", nil, false},
		{"$return as a JSON string", `"{\"statusCode\":201,\"body\":\"made\"}"`, true, 201, "made", nil, false},
		{"$return, a plain string", `"hello"`, true, 200, "hello", nil, false},
		{"header values are strings", `{"body":"","headers":{"X-N":5}}`, false, 200, "", map[string]string{"X-N": "5"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := httpResult(json.RawMessage(tt.value), tt.isReturn)
			if tt.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.status != tt.wantStatus || string(got.body) != tt.wantBody {
				t.Errorf("got %d %q, want %d %q", got.status, got.body, tt.wantStatus, tt.wantBody)
			}
			for k, v := range tt.wantHeader {
				if got.headers[k] != v {
					t.Errorf("header %s = %q, want %q", k, got.headers[k], v)
				}
			}
		})
	}
}

func TestKeepExistingTraceparent(t *testing.T) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: [16]byte{1}, SpanID: [8]byte{2}, TraceFlags: 1})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	p := keepExisting{propagation.TraceContext{}}
	c := propagation.MapCarrier{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	p.Inject(ctx, c)
	if c["traceparent"] != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
		t.Errorf("an existing traceparent was overwritten: %s", c["traceparent"])
	}
	c = propagation.MapCarrier{}
	p.Inject(ctx, c)
	if !strings.HasPrefix(c["traceparent"], "00-01000000") {
		t.Errorf("no traceparent injected: %v", c)
	}
}

func TestAuthorized(t *testing.T) {
	h := &Host{cfg: Config{FunctionKeys: []string{"k1"}}}
	fn := manifest.Function{AuthLevel: "function"}
	anon := manifest.Function{AuthLevel: "anonymous"}
	for _, tt := range []struct {
		url, header string
		fn          manifest.Function
		want        bool
	}{
		{"/api/x", "", fn, false},
		{"/api/x?code=k1", "", fn, true},
		{"/api/x", "k1", fn, true},
		{"/api/x?code=k2", "", fn, false},
		{"/api/x", "", anon, true},
	} {
		r := httptest.NewRequest(http.MethodPost, tt.url, nil)
		if tt.header != "" {
			r.Header.Set("x-functions-key", tt.header)
		}
		if got := h.authorized(tt.fn, r); got != tt.want {
			t.Errorf("%s key=%q %s: authorized %v, want %v", tt.url, tt.header, tt.fn.AuthLevel, got, tt.want)
		}
	}
	if !(&Host{}).authorized(fn, httptest.NewRequest(http.MethodPost, "/api/x", nil)) {
		t.Error("without configured keys, func start does not check them")
	}
}

func TestTimeSpan(t *testing.T) {
	for in, want := range map[string]time.Duration{"": 30 * time.Second, "00:05:00": 5 * time.Minute, "01:00:00": time.Hour, "-1:00:00": 30 * time.Second, "90s": 90 * time.Second} {
		got, err := timeSpan(in, 30*time.Second)
		if err != nil || got != want {
			t.Errorf("timeSpan(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := timeSpan("soon", 0); err == nil {
		t.Error("timeSpan(soon) did not fail")
	}
}
