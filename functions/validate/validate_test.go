package validate

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/nbtrace/nbtrace/functions/api"
)

// services starts stand-ins for A and B whose behaviour is given per test.
func services(t *testing.T, a, b http.HandlerFunc) api.Env {
	t.Helper()
	sa, sb := httptest.NewServer(a), httptest.NewServer(b)
	t.Cleanup(sa.Close)
	t.Cleanup(sb.Close)
	env := map[string]string{"SERVICE_A_URL": sa.URL + "/check", "SERVICE_B_URL": sb.URL + "/check", "VALIDATE_SERVICE_TIMEOUT": "300ms"}
	return api.Env{Getenv: func(k string) string { return env[k] }, HTTPClient: http.DefaultClient}
}

func verdict(passed bool, reason string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(ServiceVerdict{Passed: passed, Reason: reason})
	}
}

func call(t *testing.T, h http.Handler, body string) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/api/validate", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("answer is not JSON: %s", w.Body)
	}
	return w, m
}

const good = `{"dataset":"sales","date":"2026-11-25","rowCount":1200}`

func TestValidate(t *testing.T) {
	failing := func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) }
	slow := func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // so the server notices the client giving up
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	}
	garbage := func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "<html>") }
	answer := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, body) }
	}
	tests := []struct {
		name       string
		a, b       http.HandlerFunc
		body       string
		wantStatus int
		wantCode   string
		wantDep    string
	}{
		{"both pass", verdict(true, ""), verdict(true, ""), good, 200, "", ""},
		{"a check fails", verdict(false, "too old"), verdict(true, ""), good, 422, "validation-failed", ""},
		{"a fails", failing, verdict(true, ""), good, 502, "dependency-failed", "service-a"},
		{"both fail", failing, failing, good, 502, "dependency-failed", "service-a,service-b"},
		{"b is slow", verdict(true, ""), slow, good, 504, "dependency-timeout", "service-b"},
		{"slow wins over failing", failing, slow, good, 504, "dependency-timeout", "service-a,service-b"},
		{"b answers garbage", verdict(true, ""), garbage, good, 502, "dependency-failed", "service-b"},
		{"a answers {}", answer("{}"), verdict(true, ""), good, 502, "dependency-failed", "service-a"},
		{"b answers null", verdict(true, ""), answer("null"), good, 502, "dependency-failed", "service-b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := New(services(t, tt.a, tt.b))
			if err != nil {
				t.Fatal(err)
			}
			w, m := call(t, h, tt.body)
			if w.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %s", w.Code, tt.wantStatus, w.Body)
			}
			if tt.wantCode != "" && m["code"] != tt.wantCode {
				t.Errorf("code = %v, want %s", m["code"], tt.wantCode)
			}
			if tt.wantDep != "" && m["dependency"] != tt.wantDep {
				t.Errorf("dependency = %v, want %s", m["dependency"], tt.wantDep)
			}
			if _, ok := m["traceId"]; !ok {
				t.Error("no traceId in the answer")
			}
		})
	}
}

func TestValidateListsEveryProblem(t *testing.T) {
	called := false
	h, err := New(services(t, func(w http.ResponseWriter, r *http.Request) { called = true }, verdict(true, "")))
	if err != nil {
		t.Fatal(err)
	}
	w, m := call(t, h, `{"dataset":"Sales!","date":"2026-02-30","rowCount":-1,"owner":"x"}`)
	if w.Code != http.StatusUnprocessableEntity {
		t.Fatalf("status = %d: %s", w.Code, w.Body)
	}
	want := map[string]any{
		"dataset":  "must be 1-64 characters of a-z, 0-9, _ and -, starting with a letter or digit",
		"date":     "must be a date in the form YYYY-MM-DD",
		"rowCount": "must be between 0 and 1000000000",
		"owner":    "is not a known field",
	}
	if diff := cmp.Diff(want, m["errors"]); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
	w, m = call(t, h, `{"dataset":7,"rowCount":1.5}`)
	want = map[string]any{"dataset": "must be a string", "date": "is required", "rowCount": "must be a whole number"}
	if diff := cmp.Diff(want, m["errors"]); diff != "" || w.Code != 422 {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
	for body, status := range map[string]int{`{`: 400, ``: 400, `[]`: 422, `"x"`: 422, `{} {}`: 400} {
		if w, _ := call(t, h, body); w.Code != status {
			t.Errorf("body %q: status %d, want %d", body, w.Code, status)
		}
	}
	if called {
		t.Error("a service was called for an invalid request")
	}
}

// TestServicesAreCalledConcurrently: each stand-in holds its answer until
// both requests have arrived, so a sequential design would time out.
func TestServicesAreCalledConcurrently(t *testing.T) {
	var arrived sync.WaitGroup
	arrived.Add(2)
	both := make(chan struct{})
	go func() { arrived.Wait(); close(both) }()
	barrier := func(w http.ResponseWriter, r *http.Request) {
		arrived.Done()
		select {
		case <-both:
			verdict(true, "")(w, r)
		case <-r.Context().Done():
		}
	}
	h, err := New(services(t, barrier, barrier))
	if err != nil {
		t.Fatal(err)
	}
	if w, _ := call(t, h, good); w.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200 (were the services called one after the other?): %s", w.Code, w.Body)
	}
}

func TestTraceContextReachesServices(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prop := propagation.TraceContext{}
	seen := make(chan string, 2)
	record := func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("traceparent")
		verdict(true, "")(w, r)
	}
	env := services(t, record, record)
	env.HTTPClient = &http.Client{Transport: otelhttp.NewTransport(http.DefaultTransport, otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(prop))}
	h, err := New(env)
	if err != nil {
		t.Fatal(err)
	}
	ctx, parent := tp.Tracer("test").Start(context.Background(), "invocation", trace.WithSpanKind(trace.SpanKindServer))
	r := httptest.NewRequestWithContext(ctx, http.MethodPost, "/api/validate", strings.NewReader(good))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	parent.End()
	if w.Code != http.StatusOK {
		t.Fatalf("status = %d: %s", w.Code, w.Body)
	}
	traceID := parent.SpanContext().TraceID().String()
	for range 2 {
		if tp := <-seen; !strings.HasPrefix(tp, "00-"+traceID+"-") {
			t.Errorf("service saw traceparent %q, want trace %s", tp, traceID)
		}
	}
	var resp Response
	_ = json.Unmarshal(w.Body.Bytes(), &resp)
	if resp.TraceID != traceID || len(resp.Checks) != 2 {
		t.Errorf("answer = %+v, want trace id %s and two checks", resp, traceID)
	}
	clients := 0
	for _, s := range rec.Ended() {
		if s.SpanKind() == trace.SpanKindClient && s.Parent().SpanID() == parent.SpanContext().SpanID() {
			clients++
		}
	}
	if clients != 2 {
		t.Errorf("%d CLIENT spans under the invocation, want 2", clients)
	}
}

func TestNewRejectsBadSettings(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		base    string
		wantErr string
	}{
		{"no URL and no base", map[string]string{}, "", "SERVICE_A_URL is not set"},
		{"relative URL", map[string]string{"SERVICE_A_URL": "/x", "SERVICE_B_URL": "http://b"}, "", "SERVICE_A_URL"},
		{"ftp URL", map[string]string{"SERVICE_A_URL": "http://a", "SERVICE_B_URL": "ftp://b"}, "", "SERVICE_B_URL"},
		{"bad timeout", map[string]string{"VALIDATE_SERVICE_TIMEOUT": "soon"}, "http://localhost:7071/api", "VALIDATE_SERVICE_TIMEOUT"},
		{"zero timeout", map[string]string{"VALIDATE_SERVICE_TIMEOUT": "0s"}, "http://localhost:7071/api", "VALIDATE_SERVICE_TIMEOUT"},
		{"defaults from base", map[string]string{}, "http://localhost:7071/api", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(api.Env{Getenv: func(k string) string { return tt.env[k] }, BaseURL: tt.base, HTTPClient: http.DefaultClient})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestValidDatasetIsTheSchemasPattern: validDataset accepts exactly what
// the schema's pattern does.
func TestValidDatasetIsTheSchemasPattern(t *testing.T) {
	re := regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	alphabet := []string{"a", "Z", "0", "_", "-", ".", " ", "é"}
	cases := []string{"", strings.Repeat("a", 64), strings.Repeat("a", 65), "a" + strings.Repeat("_", 63)}
	for _, x := range alphabet {
		cases = append(cases, x)
		for _, y := range alphabet {
			cases = append(cases, x+y)
			for _, z := range alphabet {
				cases = append(cases, x+y+z)
			}
		}
	}
	for _, c := range cases {
		if got, want := validDataset(c), re.MatchString(c); got != want {
			t.Errorf("validDataset(%q) = %v, the pattern says %v", c, got, want)
		}
	}
}
