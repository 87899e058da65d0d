package databricks

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/databricks/databricks-sdk-go/service/jobs"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/nbtrace/nbtrace/dev/dbxstandin"
	"github.com/nbtrace/nbtrace/functions/api"
)

const token = "dapi-test"

type fixture struct {
	stand  *dbxstandin.Server
	client *Client
	spans  *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	jobID  int64
}

// newFixture starts the stand-in with one job and returns a client of it.
func newFixture(t *testing.T, mod func(*Config)) *fixture {
	t.Helper()
	stand := dbxstandin.New(dbxstandin.Options{Token: token})
	srv := httptest.NewServer(stand)
	stand.SetBaseURL(srv.URL)
	t.Cleanup(func() { srv.Close(); stand.Close() })
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	cfg := Config{Host: srv.URL, Token: token, HTTPTimeout: 2 * time.Second, RetryTimeout: 3 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	f := &fixture{stand: stand, spans: rec, tp: tp}
	f.client = New(cfg, tp, propagation.TraceContext{})
	f.jobID = createJob(t, f.client)
	f.client.cfg.JobID = f.jobID
	return f
}

func TestNothingIsDialledUntilFirstUse(t *testing.T) {
	stand := dbxstandin.New(dbxstandin.Options{Token: token})
	srv := httptest.NewServer(stand)
	defer srv.Close()
	_ = New(Config{Host: srv.URL, Token: token, JobID: 1}, sdktrace.NewTracerProvider(), propagation.TraceContext{})
	if n := len(stand.Requests()); n != 0 {
		t.Errorf("New made %d requests, want none", n)
	}
}

func TestRunNowRequestShape(t *testing.T) {
	f := newFixture(t, nil)
	ctx, parent := f.tp.Tracer("t").Start(context.Background(), "producer", trace.WithSpanKind(trace.SpanKindProducer))
	params := map[string]string{"dataset": "sales", "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate": "", "baggage": "k=v"}
	runID, err := f.client.RunNow(ctx, params, "nbt-token-1")
	parent.End()
	if err != nil {
		t.Fatal(err)
	}
	var got *dbxstandin.Request
	for _, r := range f.stand.Requests() {
		if r.Path == "/api/2.2/jobs/run-now" {
			got = &r
		}
	}
	if got == nil {
		t.Fatal("no run-now request")
	}
	var body struct {
		JobID            int64             `json:"job_id"`
		JobParameters    map[string]string `json:"job_parameters"`
		IdempotencyToken string            `json:"idempotency_token"`
	}
	if err := json.Unmarshal(got.Body, &body); err != nil {
		t.Fatal(err)
	}
	if body.JobID != f.jobID || body.IdempotencyToken != "nbt-token-1" || body.JobParameters["traceparent"] != params["traceparent"] || body.JobParameters["baggage"] != "k=v" {
		t.Errorf("run-now body = %s", got.Body)
	}
	if _, sent := body.JobParameters["tracestate"]; !sent {
		t.Error("an empty tracestate was left out; it must be sent so no default applies")
	}
	if got.Header.Get("Authorization") != "Bearer "+token {
		t.Errorf("Authorization = %q", got.Header.Get("Authorization"))
	}
	// The SDK's own random traceparent is replaced by the real one: the
	// request's parent is the CLIENT span under our producer span.
	tp := got.Header.Get("Traceparent")
	if !strings.HasPrefix(tp, "00-"+parent.SpanContext().TraceID().String()+"-") {
		t.Errorf("traceparent %q is not in the producer's trace", tp)
	}
	var client sdktrace.ReadOnlySpan
	for _, s := range f.spans.Ended() {
		if s.SpanKind() == trace.SpanKindClient && s.Name() == "POST /api/2.2/jobs/run-now" {
			client = s
		}
	}
	if client == nil || client.Parent().SpanID() != parent.SpanContext().SpanID() || !strings.Contains(tp, client.SpanContext().SpanID().String()) {
		t.Errorf("no CLIENT span under the producer carrying the traceparent %s", tp)
	}
	for _, r := range f.stand.Requests() {
		if strings.Contains(string(r.Body), token) || strings.Contains(r.Query, token) {
			t.Error("the token leaked into a request body or query")
		}
	}
	// The same token never starts a second run.
	again, err := f.client.RunNow(context.Background(), params, "nbt-token-1")
	if err != nil || again != runID || f.stand.Runs() != 1 {
		t.Errorf("second run-now: run %d (first %d), %d runs, err %v", again, runID, f.stand.Runs(), err)
	}
}

func TestErrorsMap(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(f *fixture)
		jobID      func(f *fixture) int64
		wantCode   api.Code
		wantDBCode string
		wantRetry  bool
		minElapsed time.Duration
		maxCalls   int
	}{
		{name: "job missing", jobID: func(*fixture) int64 { return 999 }, wantCode: api.EDEPENDENCY, wantDBCode: "INVALID_PARAMETER_VALUE"},
		{name: "permission denied", setup: func(f *fixture) { f.stand.Deny(f.jobID) }, wantCode: api.EDEPENDENCY, wantDBCode: "PERMISSION_DENIED"},
		{name: "500 is not retried", setup: func(f *fixture) {
			f.stand.Inject(dbxstandin.Fault{PathPrefix: "/api/2.2/jobs/run-now", Status: 500, Times: 5})
		}, wantCode: api.EDEPENDENCY, wantDBCode: "INTERNAL_ERROR", maxCalls: 1},
		{name: "throttled past the retries", setup: func(f *fixture) {
			f.stand.Inject(dbxstandin.Fault{PathPrefix: "/api/2.2/jobs/run-now", Status: 429, RetryAfter: "2", Times: 100})
		}, wantCode: api.EUNAVAILABLE, wantDBCode: "REQUEST_LIMIT_EXCEEDED", wantRetry: true},
		{name: "slow answer", setup: func(f *fixture) {
			f.stand.Inject(dbxstandin.Fault{PathPrefix: "/api/2.2/jobs/run-now", Delay: 5 * time.Second})
		}, wantCode: api.ETIMEOUT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			if tt.setup != nil {
				tt.setup(f)
			}
			if tt.jobID != nil {
				f.client.cfg.JobID = tt.jobID(f)
			}
			before := len(f.stand.Requests())
			_, err := f.client.RunNow(context.Background(), map[string]string{}, "")
			var e *api.Error
			if !asAPIError(err, &e) || e.Code != tt.wantCode {
				t.Fatalf("err = %v, want code %s", err, tt.wantCode)
			}
			if tt.wantDBCode != "" && e.Extensions["databricksErrorCode"] != tt.wantDBCode {
				t.Errorf("databricksErrorCode = %v, want %s", e.Extensions["databricksErrorCode"], tt.wantDBCode)
			}
			if tt.wantRetry && e.RetryAfter != 2*time.Second {
				t.Errorf("RetryAfter = %v, want the server's 2s", e.RetryAfter)
			}
			if e.Dependency != Dependency {
				t.Errorf("dependency = %q", e.Dependency)
			}
			if calls := len(f.stand.Requests()) - before; tt.maxCalls > 0 && calls > tt.maxCalls {
				t.Errorf("%d calls, want at most %d", calls, tt.maxCalls)
			}
		})
	}
}

// TestRetriesHonourRetryAfter: throttled twice with Retry-After: 1, then
// served; the SDK retries and the second attempt comes no sooner than the
// server asked.
func TestRetriesHonourRetryAfter(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.RetryTimeout = 15 * time.Second })
	f.stand.Inject(dbxstandin.Fault{PathPrefix: "/api/2.2/jobs/run-now", Status: 429, RetryAfter: "1", Times: 1})
	f.stand.Inject(dbxstandin.Fault{PathPrefix: "/api/2.2/jobs/run-now", Drop: true, Times: 1})
	if _, err := f.client.RunNow(context.Background(), map[string]string{}, "t1"); err != nil {
		t.Fatalf("after a 429 and a dropped connection: %v", err)
	}
	var attempts []dbxstandin.Request
	for _, r := range f.stand.Requests() {
		if r.Path == "/api/2.2/jobs/run-now" {
			attempts = append(attempts, r)
		}
	}
	if len(attempts) != 3 {
		t.Fatalf("%d run-now attempts, want 3 (429, dropped, served)", len(attempts))
	}
	if !attempts[1].At.After(attempts[0].At.Add(time.Second - 10*time.Millisecond)) {
		t.Errorf("the retry came %v after the 429 with Retry-After: 1", attempts[1].At.Sub(attempts[0].At))
	}
	if f.stand.Runs() != 1 {
		t.Errorf("%d runs, want 1", f.stand.Runs())
	}
}

func TestConfigFromEnv(t *testing.T) {
	tests := []struct {
		env     map[string]string
		wantErr string
	}{
		{map[string]string{}, "DATABRICKS_HOST is not set"},
		{map[string]string{"DATABRICKS_HOST": "adb-1.azuredatabricks.net"}, "DATABRICKS_HOST"},
		{map[string]string{"DATABRICKS_HOST": "https://user:pw@adb-1.azuredatabricks.net"}, "DATABRICKS_HOST"},
		{map[string]string{"DATABRICKS_HOST": "https://adb-1.azuredatabricks.net"}, "DATABRICKS_JOB_ID is not set"},
		{map[string]string{"DATABRICKS_HOST": "https://adb-1.azuredatabricks.net", "DATABRICKS_JOB_ID": "x"}, "DATABRICKS_JOB_ID"},
		{map[string]string{"DATABRICKS_HOST": "https://adb-1.azuredatabricks.net", "DATABRICKS_JOB_ID": "7", "DATABRICKS_HTTP_TIMEOUT": "1ms"}, "DATABRICKS_HTTP_TIMEOUT"},
		{map[string]string{"DATABRICKS_HOST": "https://adb-1.azuredatabricks.net/", "DATABRICKS_JOB_ID": "7"}, ""},
	}
	for _, tt := range tests {
		c, err := ConfigFromEnv(func(k string) string { return tt.env[k] })
		if tt.wantErr == "" {
			if err != nil || c.JobID != 7 || c.Host != "https://adb-1.azuredatabricks.net" {
				t.Errorf("%v: %+v %v", tt.env, c, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%v: err = %v, want %q", tt.env, err, tt.wantErr)
		}
	}
}

func asAPIError(err error, target **api.Error) bool {
	e, ok := err.(*api.Error)
	if ok {
		*target = e
	}
	return ok
}

// createJob creates a job with a notebook task and the trace parameters.
func createJob(t *testing.T, c *Client) int64 {
	t.Helper()
	j, err := c.Jobs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	params := []jobs.JobParameterDefinition{}
	for _, name := range []string{"traceparent", "tracestate", "baggage", "dataset"} {
		params = append(params, jobs.JobParameterDefinition{Name: name, Default: ""})
	}
	created, err := j.Create(context.Background(), jobs.CreateJob{Name: "test-job", Parameters: params,
		Tasks: []jobs.Task{{TaskKey: "nb", NotebookTask: &jobs.NotebookTask{NotebookPath: "/Shared/t/nb"}}}})
	if err != nil {
		t.Fatal(err)
	}
	return created.JobId
}

// TestTheDiscoveryCallBelongsToItsInvocation: the SDK reads the workspace's
// discovery document while the client is built, on the first call; that
// request's span is a child of the call's span, never a trace of its own.
func TestTheDiscoveryCallBelongsToItsInvocation(t *testing.T) {
	f := newFixture(t, nil)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	c := New(f.client.cfg, tp, propagation.TraceContext{})
	ctx, invocation := tp.Tracer("t").Start(context.Background(), "invocation")
	if _, err := c.GetRun(ctx, 1); err == nil {
		t.Fatal("run 1 exists")
	}
	invocation.End()
	var discovery sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "GET /.well-known/databricks-config" {
			discovery = s
		}
		if !s.Parent().IsValid() && s.SpanContext().SpanID() != invocation.SpanContext().SpanID() {
			t.Errorf("%s is a trace of its own", s.Name())
		}
	}
	if discovery == nil {
		t.Fatal("the discovery document was not read through the traced transport")
	}
	if discovery.Parent().SpanID() != invocation.SpanContext().SpanID() {
		t.Errorf("the discovery call's parent is %s, want the invocation %s", discovery.Parent().SpanID(), invocation.SpanContext().SpanID())
	}
}
