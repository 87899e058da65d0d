package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nbtrace/nbtrace/dev/dbxstandin"
	"github.com/nbtrace/nbtrace/dev/funchost"
	"github.com/nbtrace/nbtrace/dev/otlpsink"
)

const (
	callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpan  = "00f067aa0ba902b7"
	callerTP    = "00-" + callerTrace + "-" + callerSpan + "-01"
	validBody   = `{"dataset":"sales","date":"2026-11-25","rowCount":1200}`
)

var guid = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// start runs the local stack on free loopback ports for one test, with
// notebook runs that succeed at once (no Python needed).
func start(t *testing.T, protocol string) *Stack {
	t.Helper()
	return startWith(t, protocol, dbxstandin.RunnerFunc(func(ctx context.Context, _ dbxstandin.RunContext) error {
		time.Sleep(20 * time.Millisecond)
		return nil
	}), nil)
}

func startWith(t *testing.T, protocol string, runner dbxstandin.Runner, env []string) *Stack {
	t.Helper()
	return startOpts(t, protocol, runner, env, AuthIdentity)
}

// startOpts starts the stack with the handler signing in to Databricks by
// auth.
func startOpts(t *testing.T, protocol string, runner dbxstandin.Runner, env []string, auth Auth) *Stack {
	t.Helper()
	fwd := protocol == "forwarding"
	return startStack(t, Options{Forwarding: &fwd, Env: env, Runner: runner, Auth: auth})
}

// startStack starts the stack with o, on free loopback ports, logging to a
// file shown when the test fails, and stops it when the test ends.
func startStack(t *testing.T, o Options) *Stack {
	t.Helper()
	root, err := RepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(t.TempDir(), "stack.log"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	o.RepoRoot, o.Addr, o.OTLPAddr, o.Log = root, "127.0.0.1:0", "127.0.0.1:0", logFile
	if o.HostGeneration == "" {
		// The host generation that records its call to the handler, so
		// that trees and span counts hold every hop; TestHostGenerations
		// checks what each generation and telemetry mode records.
		o.HostGeneration = funchost.Gen2024
	}
	o.Env = append([]string{"SIMULATE_LATENCY=20ms", "OTEL_BSP_SCHEDULE_DELAY=50"}, o.Env...)
	s, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("stack log:\n%s", b)
		}
	})
	return s
}

func post(t *testing.T, url, body string, header map[string]string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var m map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("answer is not JSON: %s", raw)
		}
	}
	return res, m
}

// shape renders the span tree as "KIND service: name" lines indented by
// depth, children sorted, spans whose parent is absent marked with it.
func shape(spans []otlpsink.Span) string {
	ids := map[string]bool{}
	kids := map[string][]otlpsink.Span{}
	var roots []otlpsink.Span
	for _, s := range spans {
		ids[s.SpanID] = true
	}
	for _, s := range spans {
		if ids[s.ParentSpanID] {
			kids[s.ParentSpanID] = append(kids[s.ParentSpanID], s)
		} else {
			roots = append(roots, s)
		}
	}
	label := func(s otlpsink.Span) string { return s.Kind + " " + s.Service + ": " + s.Name }
	var b strings.Builder
	var walk func(s otlpsink.Span, depth int)
	walk = func(s otlpsink.Span, depth int) {
		line := strings.Repeat("  ", depth) + label(s)
		if depth == 0 && s.ParentSpanID != "" {
			line += " <- " + s.ParentSpanID
		}
		b.WriteString(line + "\n")
		k := kids[s.SpanID]
		sort.Slice(k, func(i, j int) bool { return label(k[i]) < label(k[j]) })
		for _, c := range k {
			walk(c, depth+1)
		}
	}
	sort.Slice(roots, func(i, j int) bool { return label(roots[i]) < label(roots[j]) })
	for _, r := range roots {
		walk(r, 0)
	}
	return b.String()
}

func waitTrace(t *testing.T, s *Stack, traceID string, n int) []otlpsink.Span {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	spans, err := s.Sink.WaitFor(ctx, traceID, n)
	if err != nil {
		t.Fatalf("%v\n%s", err, shape(spans))
	}
	time.Sleep(300 * time.Millisecond) // a span too many would show now
	return s.Sink.Trace(traceID)
}

func find(t *testing.T, spans []otlpsink.Span, service, name string) []otlpsink.Span {
	t.Helper()
	var out []otlpsink.Span
	for _, s := range spans {
		if s.Service == service && s.Name == name {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no span %s: %s", service, name)
	}
	return out
}

func TestEndToEndSpanTree(t *testing.T) {
	tests := []struct {
		protocol string
		caller   bool
		want     string
	}{
		{"payload", true, `
SERVER functions-host: validate <- ` + callerSpan + `
  CLIENT functions-host: POST /validate
    SERVER nbtrace: POST /api/validate
      CLIENT nbtrace: POST /api/simulate/a
        SERVER functions-host: simulate
          CLIENT functions-host: POST /simulate
            SERVER nbtrace: POST /api/simulate/{service}
      CLIENT nbtrace: POST /api/simulate/b
        SERVER functions-host: simulate
          CLIENT functions-host: POST /simulate
            SERVER nbtrace: POST /api/simulate/{service}
`},
		{"payload", false, `
SERVER functions-host: validate
  CLIENT functions-host: POST /validate
    SERVER nbtrace: POST /api/validate
      CLIENT nbtrace: POST /api/simulate/a
        SERVER functions-host: simulate
          CLIENT functions-host: POST /simulate
            SERVER nbtrace: POST /api/simulate/{service}
      CLIENT nbtrace: POST /api/simulate/b
        SERVER functions-host: simulate
          CLIENT functions-host: POST /simulate
            SERVER nbtrace: POST /api/simulate/{service}
`},
		// Forwarding copies the caller's headers and the host's
		// HttpClient never overwrites a traceparent, so the handler's
		// span is a sibling of the host's, both children of the caller.
		{"forwarding", true, `
SERVER functions-host: validate <- ` + callerSpan + `
  CLIENT functions-host: POST /api/validate
SERVER nbtrace: POST /api/validate <- ` + callerSpan + `
  CLIENT nbtrace: POST /api/simulate/a
    SERVER functions-host: simulate
      CLIENT functions-host: POST /api/simulate/a
    SERVER nbtrace: POST /api/simulate/{service}
  CLIENT nbtrace: POST /api/simulate/b
    SERVER functions-host: simulate
      CLIENT functions-host: POST /api/simulate/b
    SERVER nbtrace: POST /api/simulate/{service}
`},
		{"forwarding", false, `
SERVER functions-host: validate
  CLIENT functions-host: POST /api/validate
    SERVER nbtrace: POST /api/validate
      CLIENT nbtrace: POST /api/simulate/a
        SERVER functions-host: simulate
          CLIENT functions-host: POST /api/simulate/a
        SERVER nbtrace: POST /api/simulate/{service}
      CLIENT nbtrace: POST /api/simulate/b
        SERVER functions-host: simulate
          CLIENT functions-host: POST /api/simulate/b
        SERVER nbtrace: POST /api/simulate/{service}
`},
	}
	stacks := map[string]*Stack{"payload": start(t, "payload"), "forwarding": start(t, "forwarding")}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/caller-traceparent=%v", tt.protocol, tt.caller), func(t *testing.T) {
			s := stacks[tt.protocol]
			header := map[string]string{}
			if tt.caller {
				header["traceparent"] = callerTP
				header["tracestate"] = "congo=t61rcWkgMzE"
			}
			res, body := post(t, s.URL+"/api/validate", validBody, header)
			if res.StatusCode != http.StatusOK || body["valid"] != true {
				t.Fatalf("validate = %d %v", res.StatusCode, body)
			}
			traceID, _ := body["traceId"].(string)
			if tt.caller && traceID != callerTrace {
				t.Fatalf("traceId = %s, want the caller's %s", traceID, callerTrace)
			}
			if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(traceID) {
				t.Fatalf("traceId %q is not 32 lower-case hex digits (App Insights operation_Id)", traceID)
			}
			spans := waitTrace(t, s, traceID, 11)
			if diff := cmp.Diff(strings.TrimPrefix(tt.want, "\n"), shape(spans)); diff != "" {
				t.Errorf("span tree (-want +got):\n%s", diff)
			}
			for _, sp := range spans {
				if sp.TraceID != traceID {
					t.Errorf("span %s has trace %s", sp.Name, sp.TraceID)
				}
			}
			inv := find(t, spans, "nbtrace", "POST /api/validate")[0]
			want := map[string]any{
				"faas.trigger": "http", "faas.name": "validate", "http.route": "/api/validate",
				"http.request.method": "POST", "http.response.status_code": int64(200),
				"nbtrace.host.protocol": tt.protocol, "url.path": "/api/validate",
			}
			for k, v := range want {
				if inv.Attributes[k] != v {
					t.Errorf("invocation span %s = %v, want %v", k, inv.Attributes[k], v)
				}
			}
			if id, _ := inv.Attributes["faas.invocation_id"].(string); !guid.MatchString(id) {
				t.Errorf("faas.invocation_id = %q, want the host's invocation GUID", id)
			}
			for k, v := range map[string]any{"service.name": "nbtrace", "cloud.provider": "azure", "cloud.platform": "azure.functions"} {
				if inv.Resource[k] != v {
					t.Errorf("resource %s = %v, want %v", k, inv.Resource[k], v)
				}
			}
			if tt.caller && !strings.Contains(inv.TraceState, "congo=t61rcWkgMzE") {
				t.Errorf("tracestate = %q, want the caller's entry carried", inv.TraceState)
			}
			for _, c := range find(t, spans, "nbtrace", "POST /api/simulate/a") {
				if c.Kind != "CLIENT" || c.Attributes["http.response.status_code"] != int64(200) || c.ParentSpanID != inv.SpanID {
					t.Errorf("service call span = %+v", c)
				}
			}
		})
	}
}

func jsonDecode(res *http.Response, v any) error { return json.NewDecoder(res.Body).Decode(v) }
