package stack

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nbtrace/nbtrace/dev/dbxstandin"
	"github.com/nbtrace/nbtrace/dev/otlpsink"
)

const notebookBody = `{"dataset":"sales","date":"2026-11-25","rowCount":1200,"parameters":{"extract_seconds":"0.05","transform_seconds":"0.05","load_seconds":"0.05"}}`

func get(t *testing.T, url string) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	_ = jsonDecode(res, &m)
	return res, m
}

// one finds the single span of kind, service and name.
func one(t *testing.T, spans []otlpsink.Span, kind, service, name string) otlpsink.Span {
	t.Helper()
	var found []otlpsink.Span
	for _, s := range find(t, spans, service, name) {
		if s.Kind == kind {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d spans %s: %s, want 1\n%s", len(found), service, name, shape(spans))
	}
	return found[0]
}

func childOf(t *testing.T, child, parent otlpsink.Span) {
	t.Helper()
	if child.ParentSpanID != parent.SpanID || child.TraceID != parent.TraceID {
		t.Errorf("%s (%s) is not a child of %s (%s)", child.Name, child.Kind, parent.Name, parent.Kind)
	}
}

// TestNotebookEndToEnd: one trace from the caller through notebook, the
// validate hop, services A and B, the PRODUCER span and its run-now call,
// to the run's own spans; the same request twice starts one run.
func TestNotebookEndToEnd(t *testing.T) {
	s := start(t, "payload")
	header := map[string]string{"traceparent": callerTP, "Idempotency-Key": "order-1005"}
	res, body := post(t, s.URL+"/api/notebook?wait=60s", notebookBody, header)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("notebook = %d %v", res.StatusCode, body)
	}
	runID := int64(body["runId"].(float64))
	run, _ := body["run"].(map[string]any)
	if body["traceId"] != callerTrace || run["resultState"] != "SUCCESS" || body["statusUrl"] != fmt.Sprintf("%s/api/runs/%d", s.URL, runID) {
		t.Fatalf("answer = %v", body)
	}
	// The same request again: the same run, no second one.
	res2, body2 := post(t, s.URL+"/api/notebook", notebookBody, map[string]string{"Idempotency-Key": header["Idempotency-Key"]})
	if res2.StatusCode != http.StatusAccepted || int64(body2["runId"].(float64)) != runID || s.Databricks.Runs() != 1 {
		t.Fatalf("retried request: %d %v; %d runs", res2.StatusCode, body2, s.Databricks.Runs())
	}
	res3, status := get(t, fmt.Sprintf("%s/api/runs/%d", s.URL, runID))
	if res3.StatusCode != 200 || status["lifeCycleState"] != "TERMINATED" || status["traceId"] != callerTrace {
		t.Fatalf("runs/%d = %d %v", runID, res3.StatusCode, status)
	}
	// Its times come from its task (the run-level figures are 0 in Jobs API
	// 2.2), and its page names the workspace.
	if setup, _ := status["setupDurationMs"].(float64); setup < 100 || status["runDurationMs"].(float64) < setup ||
		!strings.Contains(status["runPageUrl"].(string), "/?o="+dbxstandin.WorkspaceID+"#job/") {
		t.Errorf("runs/%d: setup %v ms, run %v ms, page %v", runID, status["setupDurationMs"], status["runDurationMs"], status["runPageUrl"])
	}

	spans := waitTrace(t, s, callerTrace, 22) // 22 and the SDK waiter's polls of runs/get
	inv := find(t, spans, "nbtrace", "POST /api/notebook")[0]
	hostClient := one(t, spans, "CLIENT", "functions-host", "POST /notebook")
	childOf(t, inv, hostClient)
	validateCall := one(t, spans, "CLIENT", "nbtrace", "POST /api/validate")
	childOf(t, validateCall, inv)
	validateInv := one(t, spans, "SERVER", "functions-host", "validate")
	childOf(t, validateInv, validateCall)
	if n := len(find(t, spans, "nbtrace", "POST /api/simulate/a")); n != 1 {
		t.Errorf("%d calls to service A, want 1", n)
	}
	producer := one(t, spans, "PRODUCER", "nbtrace", "run-now job "+strconv.FormatInt(s.JobID, 10))
	if producer.Kind != "PRODUCER" || producer.Attributes["databricks.run.id"] != runID {
		t.Errorf("producer = %+v", producer)
	}
	childOf(t, producer, inv)
	runNow := find(t, spans, "nbtrace", "POST /api/2.2/jobs/run-now")
	for _, c := range runNow {
		childOf(t, c, producer)
	}
	runSpan := one(t, spans, "CONSUMER", "nbtrace", "databricks run")
	if runSpan.Kind != "CONSUMER" || runSpan.Attributes["databricks.run.result_state"] != "SUCCESS" {
		t.Errorf("run span = %+v", runSpan)
	}
	childOf(t, runSpan, producer)
	for _, phase := range []string{"queued", "setup", "execution", "cleanup"} {
		childOf(t, one(t, spans, "INTERNAL", "nbtrace", phase), runSpan)
	}
	// The handler signed in as its managed identity, a workspace user the
	// deploy step added: a bearer token, no claim on the workspace resource.
	assertSignIn(t, s, AuthIdentity)
	// The run page URL and the ids are on the spans; no token anywhere.
	for _, sp := range spans {
		for k, v := range sp.Attributes {
			if strings.Contains(fmt.Sprint(v), standinToken) {
				t.Errorf("span %s attribute %s holds the Databricks token", sp.Name, k)
			}
		}
	}
}

// assertSignIn checks how the handler's calls to Databricks were signed in.
func assertSignIn(t *testing.T, s *Stack, auth Auth) {
	t.Helper()
	calls := 0
	for _, r := range s.Databricks.Requests() {
		if !strings.HasPrefix(r.Path, "/api/2.2/jobs/run") { // the handler's calls; the deploy step's are others
			continue
		}
		calls++
		authz, mgmt, rid := r.Header.Get("Authorization"), r.Header.Get(dbxstandin.ManagementTokenHeader), r.Header.Get(dbxstandin.ResourceIDHeader)
		switch auth {
		case AuthIdentity:
			if authz == "Bearer "+standinToken || !strings.HasPrefix(authz, "Bearer ey") || mgmt != "" || rid != "" {
				t.Errorf("%s %s: Authorization %.20q, management token %.10q, resource id %q", r.Method, r.Path, authz, mgmt, rid)
			}
		case AuthToken:
			if authz != "Bearer "+standinToken || mgmt != "" || rid != "" {
				t.Errorf("%s %s: Authorization %.20q, management token %.10q, resource id %q", r.Method, r.Path, authz, mgmt, rid)
			}
		}
	}
	if calls == 0 {
		t.Error("the handler made no Databricks call")
	}
}

// TestTokenSignIn: with -auth token the handler signs in with the personal
// access token alone.
func TestTokenSignIn(t *testing.T) {
	s := startOpts(t, "payload", dbxstandin.RunnerFunc(func(context.Context, dbxstandin.RunContext) error { return nil }), nil, AuthToken)
	res, body := post(t, s.URL+"/api/notebook?wait=30s", notebookBody, nil)
	if res.StatusCode != http.StatusOK || body["run"].(map[string]any)["resultState"] != "SUCCESS" {
		t.Fatalf("notebook = %d %v", res.StatusCode, body)
	}
	assertSignIn(t, s, AuthToken)
}

// TestNotebookFaults injects Databricks faults into run-now: each gives its
// documented answer within a bound, and starts the run only when the
// answer says so.
func TestNotebookFaults(t *testing.T) {
	s := startWith(t, "payload", dbxstandin.RunnerFunc(func(context.Context, dbxstandin.RunContext) error { return nil }),
		[]string{"DATABRICKS_RETRY_TIMEOUT=2s", "DATABRICKS_HTTP_TIMEOUT=1s"})
	const runNow = "/api/2.2/jobs/run-now"
	tests := []struct {
		name       string
		fault      *dbxstandin.Fault
		deny       bool
		body       string
		wantStatus int
		wantCode   string
		wantDB     string
		retryAfter bool
		wantRuns   int // runs started
		// wantCalls is how many run-now calls Databricks saw. The SDK
		// waits 1s and more (with jitter) before its first retry, 2s and
		// more before the second.
		wantCalls int
	}{
		// The call is held for its Retry-After (1s); with the backoff after
		// it, DATABRICKS_RETRY_TIMEOUT (2s) is over before a second call.
		{name: "throttled past the retries", fault: &dbxstandin.Fault{PathPrefix: runNow, Status: 429, RetryAfter: "1", Times: 1000},
			wantStatus: 503, wantCode: "unavailable", wantDB: "REQUEST_LIMIT_EXCEEDED", retryAfter: true, wantCalls: 1},
		{name: "server error", fault: &dbxstandin.Fault{PathPrefix: runNow, Status: 500},
			wantStatus: 502, wantCode: "dependency-failed", wantDB: "INTERNAL_ERROR", wantCalls: 1},
		{name: "too slow", fault: &dbxstandin.Fault{PathPrefix: runNow, Delay: 3 * time.Second},
			wantStatus: 504, wantCode: "dependency-timeout", wantCalls: 1},
		// The SDK retries a dropped connection: the second call starts the
		// one run.
		{name: "connection reset once", fault: &dbxstandin.Fault{PathPrefix: runNow, Drop: true, Times: 1},
			wantStatus: 202, wantRuns: 1, wantCalls: 2},
		// Retried until DATABRICKS_RETRY_TIMEOUT, then Databricks could not
		// be reached.
		{name: "connection reset every time", fault: &dbxstandin.Fault{PathPrefix: runNow, Drop: true, Times: 1000},
			wantStatus: 502, wantCode: "dependency-failed", wantCalls: 2},
		// Deny stays in force: the cases after it must not call Databricks.
		{name: "permission denied", deny: true, wantStatus: 502, wantCode: "dependency-failed", wantDB: "PERMISSION_DENIED", wantCalls: 1},
		{name: "validation fails", body: `{"dataset":"sales","date":"2099-01-01"}`, wantStatus: 422, wantCode: "validation-failed"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.Databricks.ClearFaults()
			if tt.fault != nil {
				s.Databricks.Inject(*tt.fault)
			}
			if tt.deny {
				s.Databricks.Deny(s.JobID)
			}
			body := tt.body
			if body == "" {
				body = notebookBody
			}
			runs, calls := s.Databricks.Runs(), countRequests(s, runNow)
			began := time.Now()
			res, m := post(t, s.URL+"/api/notebook", body, map[string]string{"Idempotency-Key": fmt.Sprint("fault-", i)})
			took := time.Since(began)
			if code, _ := m["code"].(string); res.StatusCode != tt.wantStatus || code != tt.wantCode {
				t.Fatalf("status %d %v, want %d %s", res.StatusCode, m, tt.wantStatus, tt.wantCode)
			}
			if tt.wantDB != "" && m["databricksErrorCode"] != tt.wantDB {
				t.Errorf("databricksErrorCode = %v, want %s", m["databricksErrorCode"], tt.wantDB)
			}
			if tt.wantCode != "" && tt.wantCode != "validation-failed" && m["dependency"] != "databricks" {
				t.Errorf("dependency = %v, want databricks", m["dependency"])
			}
			if tt.retryAfter && res.Header.Get("Retry-After") != "1" {
				t.Errorf("Retry-After = %q, want Databricks' 1", res.Header.Get("Retry-After"))
			}
			// Retries stop at DATABRICKS_RETRY_TIMEOUT (2s), calls at
			// DATABRICKS_HTTP_TIMEOUT (1s).
			if limit := 12 * time.Second; took > limit {
				t.Errorf("the answer took %s, want under %s", took, limit)
			}
			if n := s.Databricks.Runs() - runs; n != tt.wantRuns {
				t.Errorf("%d runs started, want %d", n, tt.wantRuns)
			}
			if tt.wantRuns > 0 {
				if id, _ := m["runId"].(float64); id <= 0 {
					t.Errorf("no run id in %v", m)
				}
			}
			if n := countRequests(s, runNow) - calls; n != tt.wantCalls {
				t.Errorf("%d run-now calls, want %d", n, tt.wantCalls)
			}
		})
	}
}

// requirePython returns the project's root when its Python environment can
// run notebooks; without it the test is skipped, or fails where CI sets
// NBTRACE_REQUIRE_PYTHON.
func requirePython(t *testing.T) string {
	t.Helper()
	root, err := RepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, reason := Python(root); !ok {
		if os.Getenv("NBTRACE_REQUIRE_PYTHON") != "" {
			t.Fatalf("NBTRACE_REQUIRE_PYTHON is set but %s", reason)
		}
		t.Skipf("notebook runs need Python: %s", reason)
	}
	return root
}

// TestNotebookSpansJoinTheTrace runs the real notebook with papermill and
// the OpenTelemetry Python SDK, exporting over OTLP/HTTP to the sink, and
// checks that its spans are in the same trace, under the PRODUCER span.
func TestNotebookSpansJoinTheTrace(t *testing.T) {
	root := requirePython(t)
	s := startWith(t, "payload", nil, nil)
	res, body := post(t, s.URL+"/api/notebook?wait=120s", notebookBody, map[string]string{"traceparent": callerTP, "tracestate": "congo=t61rcWkgMzE", "baggage": "tenant=contoso"})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("notebook = %d %v", res.StatusCode, body)
	}
	run, _ := body["run"].(map[string]any)
	if run["resultState"] != "SUCCESS" {
		t.Fatalf("the notebook run did not succeed: %v", run)
	}
	runID := int64(body["runId"].(float64))
	spans := waitTrace(t, s, callerTrace, 27) // the Go spans and the notebook's 5
	producer := one(t, spans, "PRODUCER", "nbtrace", "run-now job "+strconv.FormatInt(s.JobID, 10))
	nb := one(t, spans, "CONSUMER", "databricks-notebook", "notebook distributed_tracing")
	if nb.Kind != "CONSUMER" {
		t.Errorf("notebook span kind %s, want CONSUMER", nb.Kind)
	}
	childOf(t, nb, producer)
	if !strings.Contains(nb.TraceState, "congo=t61rcWkgMzE") {
		t.Errorf("tracestate %q, want the caller's entry", nb.TraceState)
	}
	if nb.Attributes["baggage.tenant"] != "contoso" {
		t.Errorf("baggage did not reach the notebook: %v", nb.Attributes)
	}
	if nb.Resource["databricks.run.id"] != runID || nb.Resource["databricks.job.id"] != s.JobID {
		t.Errorf("resource = %v, want the run and job ids", nb.Resource)
	}
	for _, step := range []string{"extract", "transform", "load"} {
		childOf(t, one(t, spans, "INTERNAL", "databricks-notebook", step), nb)
	}
	agg := one(t, spans, "INTERNAL", "databricks-notebook", "aggregate")
	childOf(t, agg, one(t, spans, "INTERNAL", "databricks-notebook", "transform"))
	if agg.Attributes["data.rows_in"] != int64(1200) || agg.Attributes["data.rows_out"] != int64(7) || agg.Attributes["data.engine"] != "pandas" {
		t.Errorf("aggregate attributes = %v", agg.Attributes)
	}
	executed := fmt.Sprintf("%s/.nbtrace/runs/%d/output.ipynb", root, runID)
	if _, err := os.Stat(executed); err != nil {
		t.Errorf("the executed notebook was not kept: %v", err)
	}
}
