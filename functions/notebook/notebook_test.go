package notebook

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/databricks/databricks-sdk-go/service/jobs"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/nbtrace/nbtrace/functions/api"
	"github.com/nbtrace/nbtrace/functions/jobrun"
)

// fakeRuns is a jobrun.Runs with function fields.
type fakeRuns struct {
	runNow  func(ctx context.Context, params map[string]string, token string) (int64, error)
	getRun  func(ctx context.Context, id int64) (*jobs.Run, error)
	waitRun func(ctx context.Context, id int64, d time.Duration) (*jobs.Run, bool, error)
}

var _ jobrun.Runs = (*fakeRuns)(nil)

func (f *fakeRuns) JobID() int64 { return 77 }
func (f *fakeRuns) RunNow(ctx context.Context, p map[string]string, tok string) (int64, error) {
	return f.runNow(ctx, p, tok)
}
func (f *fakeRuns) GetRun(ctx context.Context, id int64) (*jobs.Run, error) { return f.getRun(ctx, id) }
func (f *fakeRuns) WaitRun(ctx context.Context, id int64, d time.Duration) (*jobs.Run, bool, error) {
	return f.waitRun(ctx, id, d)
}

type call struct {
	params map[string]string
	token  string
	ctx    context.Context
}

type fixture struct {
	h        http.Handler
	calls    []call
	spans    *tracetest.SpanRecorder
	tp       *sdktrace.TracerProvider
	validate *httptest.Server
	seenKey  chan string
	waited   time.Duration
}

// newFixture wires notebook to a validate stand-in answering status/body
// and to fake runs that end at once.
func newFixture(t *testing.T, validateStatus int, validateBody string, env map[string]string) *fixture {
	t.Helper()
	f := &fixture{seenKey: make(chan string, 10)}
	f.validate = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.seenKey <- r.Header.Get("X-Functions-Key") + "|" + r.URL.Query().Get("code")
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), "parameters") {
			t.Errorf("validate got the job parameters: %s", body)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(validateStatus)
		_, _ = io.WriteString(w, validateBody)
	}))
	t.Cleanup(f.validate.Close)
	f.spans = tracetest.NewSpanRecorder()
	f.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(f.spans))
	run := func(id int64) *jobs.Run {
		return &jobs.Run{RunId: id, JobId: 77, RunPageUrl: "https://adb/run/1", StartTime: 1000, EndTime: 5000,
			State: &jobs.RunState{LifeCycleState: jobs.RunLifeCycleStateTerminated, ResultState: jobs.RunResultStateSuccess}}
	}
	runs := &fakeRuns{
		runNow: func(ctx context.Context, p map[string]string, tok string) (int64, error) {
			f.calls = append(f.calls, call{p, tok, ctx})
			return 4242, nil
		},
		getRun: func(_ context.Context, id int64) (*jobs.Run, error) { return run(id), nil },
		waitRun: func(_ context.Context, id int64, d time.Duration) (*jobs.Run, bool, error) {
			f.waited = d
			return run(id), true, nil
		},
	}
	settings := map[string]string{"NOTEBOOK_VALIDATE_URL": f.validate.URL + "/api/validate"}
	for k, v := range env {
		settings[k] = v
	}
	h, err := New(api.Env{Getenv: func(k string) string { return settings[k] }, HTTPClient: http.DefaultClient,
		TracerProvider: f.tp, BaseURL: "http://localhost:7071/api"}, Deps{Runs: runs, Recorder: jobrun.NewRecorder(f.tp, nil)})
	if err != nil {
		t.Fatal(err)
	}
	f.h = h
	return f
}

func (f *fixture) post(t *testing.T, target, body string, header map[string]string) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		r.Header.Set(k, v)
	}
	r = r.WithContext(api.WithInvocationID(r.Context(), "inv-1"))
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	var m map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &m)
	return w, m
}

const body = `{"dataset":"sales","date":"2026-11-25","rowCount":12,"parameters":{"load_seconds":"0"}}`

func TestStartsTheJobWithTheTraceContext(t *testing.T) {
	f := newFixture(t, 200, `{"valid":true}`, nil)
	ctx, inv := f.tp.Tracer("t").Start(context.Background(), "invocation", trace.WithSpanKind(trace.SpanKindServer))
	r := httptest.NewRequestWithContext(api.WithInvocationID(ctx, "inv-1"), http.MethodPost, "/api/notebook", strings.NewReader(body))
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	inv.End()
	if w.Code != http.StatusAccepted {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var resp Accepted
	_ = json.Unmarshal(w.Body.Bytes(), &resp)
	if resp.RunID != 4242 || resp.StatusURL != "http://localhost:7071/api/runs/4242" || resp.TraceID != inv.SpanContext().TraceID().String() || resp.RunPageURL == "" {
		t.Errorf("answer = %+v", resp)
	}
	if w.Header().Get("Location") != resp.StatusURL {
		t.Errorf("Location = %q", w.Header().Get("Location"))
	}
	if len(f.calls) != 1 {
		t.Fatalf("%d runs started", len(f.calls))
	}
	p := f.calls[0].params
	for k, v := range map[string]string{"dataset": "sales", "date": "2026-11-25", "row_count": "12", "load_seconds": "0"} {
		if p[k] != v {
			t.Errorf("job parameter %s = %q, want %q", k, p[k], v)
		}
	}
	var producer sdktrace.ReadOnlySpan
	for _, s := range f.spans.Ended() {
		if s.SpanKind() == trace.SpanKindProducer {
			producer = s
		}
	}
	if producer == nil || producer.Parent().SpanID() != inv.SpanContext().SpanID() {
		t.Fatal("no PRODUCER span under the invocation")
	}
	want := "00-" + producer.SpanContext().TraceID().String() + "-" + producer.SpanContext().SpanID().String() + "-01"
	if p["traceparent"] != want {
		t.Errorf("traceparent = %q, want the PRODUCER span's %q", p["traceparent"], want)
	}
	if _, ok := p["tracestate"]; !ok {
		t.Error("tracestate is not sent")
	}
}

func TestIdempotencyToken(t *testing.T) {
	f := newFixture(t, 200, `{"valid":true}`, nil)
	f.post(t, "/api/notebook", body, map[string]string{"Idempotency-Key": "order-1"})
	f.post(t, "/api/notebook", body, map[string]string{"Idempotency-Key": "order-1"})
	f.post(t, "/api/notebook", body, map[string]string{"Idempotency-Key": "order-2"})
	f.post(t, "/api/notebook", body, nil)
	if len(f.calls) != 4 {
		t.Fatalf("%d calls", len(f.calls))
	}
	if f.calls[0].token != f.calls[1].token || f.calls[0].token == f.calls[2].token || f.calls[3].token == f.calls[0].token {
		t.Errorf("tokens %q %q %q %q: same key must give the same token, others differ", f.calls[0].token, f.calls[1].token, f.calls[2].token, f.calls[3].token)
	}
	for _, c := range f.calls {
		if len(c.token) > 64 || !strings.HasPrefix(c.token, "nbt-") {
			t.Errorf("token %q is not a Databricks idempotency token", c.token)
		}
	}
	for _, bad := range []string{strings.Repeat("k", 256), "", "  ", "caf\u00e9"} {
		if w, _ := f.post(t, "/api/notebook", body, map[string]string{"Idempotency-Key": bad}); w.Code != http.StatusBadRequest {
			t.Errorf("Idempotency-Key %q: %d, want 400", bad, w.Code)
		}
	}
}

func TestRejectedBeforeAnyRun(t *testing.T) {
	tests := []struct {
		name           string
		validateStatus int
		validateBody   string
		target, body   string
		wantStatus     int
		wantCode       string
		wantField      string
	}{
		{"validation fails", 422, `{"code":"validation-failed","detail":"the request is not valid","errors":{"date":"is required"}}`, "/api/notebook", body, 422, "validation-failed", "date"},
		{"a check fails", 422, `{"code":"validation-failed","detail":"a check did not pass","checks":[{"service":"a","passed":false}]}`, "/api/notebook", body, 422, "validation-failed", ""},
		{"validate breaks", 502, `{"code":"dependency-failed","dependency":"service-a","detail":"service a answered 500"}`, "/api/notebook", body, 502, "dependency-failed", ""},
		{"validate refuses the key", 401, ``, "/api/notebook", body, 502, "dependency-failed", ""},
		{"a service behind validate too slow", 504, `{"code":"dependency-timeout","dependency":"service-b","detail":"service b did not answer within 5s"}`, "/api/notebook", body, 504, "dependency-timeout", ""},
		{"validate unavailable", 503, `{"code":"unavailable","detail":"busy"}`, "/api/notebook", body, 503, "unavailable", ""},
		{"trace key as parameter", 200, `{}`, "/api/notebook", `{"dataset":"s","date":"2026-01-01","parameters":{"traceparent":"00-x"}}`, 422, "validation-failed", "parameters.traceparent"},
		{"parameter not allowed", 200, `{}`, "/api/notebook", `{"dataset":"s","date":"2026-01-01","parameters":{"cluster":"big"}}`, 422, "validation-failed", "parameters.cluster"},
		{"unknown field", 200, `{}`, "/api/notebook", `{"dataset":"s","date":"2026-01-01","jobId":5}`, 422, "validation-failed", "jobId"},
		{"parameters under the size limit", 200, `{}`, "/api/notebook", `{"dataset":"s","date":"2026-01-01","parameters":{"extract_seconds":"` + strings.Repeat("9", 999) + `","load_seconds":"` + strings.Repeat("9", 999) + `","transform_seconds":"` + strings.Repeat("9", 999) + `"}}`, 0, "", ""},
		{"bad wait", 200, `{}`, "/api/notebook?wait=soon", body, 400, "invalid-request", "wait"},
		{"negative wait", 200, `{}`, "/api/notebook?wait=-5s", body, 400, "invalid-request", "wait"},
		{"empty wait", 200, `{}`, "/api/notebook?wait=", body, 400, "invalid-request", "wait"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.validateStatus, tt.validateBody, nil)
			w, m := f.post(t, tt.target, tt.body, nil)
			if tt.wantStatus == 0 {
				// Under 10,000 bytes here: still accepted.
				if w.Code != 202 {
					t.Fatalf("status %d: %s", w.Code, w.Body)
				}
				return
			}
			if w.Code != tt.wantStatus || m["code"] != tt.wantCode {
				t.Fatalf("status %d code %v, want %d %s: %s", w.Code, m["code"], tt.wantStatus, tt.wantCode, w.Body)
			}
			if tt.wantField != "" {
				if errs, _ := m["errors"].(map[string]any); errs[tt.wantField] == nil {
					t.Errorf("errors = %v, want %s", m["errors"], tt.wantField)
				}
			}
			if len(f.calls) != 0 {
				t.Error("a run was started")
			}
		})
	}
}

func TestParameterSizeLimit(t *testing.T) {
	f := newFixture(t, 200, `{}`, map[string]string{"NOTEBOOK_PARAMETER_ALLOWLIST": "a,b,c,d,e,f,g,h,i,j,k"})
	params := map[string]string{}
	for _, k := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"} {
		params[k] = strings.Repeat("x", 950)
	}
	b, _ := json.Marshal(map[string]any{"dataset": "s", "date": "2026-01-01", "parameters": params})
	w, m := f.post(t, "/api/notebook", string(b), nil)
	if w.Code != http.StatusBadRequest || !strings.Contains(m["detail"].(string), "10000") {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if len(f.calls) != 0 {
		t.Error("a run was started")
	}
}

func TestFunctionKeyGoesToValidate(t *testing.T) {
	f := newFixture(t, 200, `{}`, nil)
	f.post(t, "/api/notebook?code=abc", body, map[string]string{"X-Functions-Key": "hostkey"})
	if got := <-f.seenKey; got != "hostkey|" {
		t.Errorf("validate saw key|code %q, want the header's key and no code in the URL", got)
	}
	f.post(t, "/api/notebook?code=abc", body, nil)
	if got := <-f.seenKey; got != "abc|" {
		t.Errorf("validate saw key|code %q, want ?code= passed on as the header", got)
	}
}

func TestLongWaitIsCut(t *testing.T) {
	f := newFixture(t, 200, `{}`, map[string]string{"NOTEBOOK_MAX_WAIT": "7s"})
	if w, _ := f.post(t, "/api/notebook?wait=10m", body, nil); w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	if f.waited != 7*time.Second {
		t.Errorf("waited %v, want NOTEBOOK_MAX_WAIT (7s)", f.waited)
	}
}

func TestWaitAnswersTheFinalState(t *testing.T) {
	f := newFixture(t, 200, `{}`, nil)
	w, m := f.post(t, "/api/notebook?wait=30s", body, nil)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	run, _ := m["run"].(map[string]any)
	if run["resultState"] != "SUCCESS" || run["ended"] != true {
		t.Errorf("run = %v", run)
	}
	consumers := 0
	for _, s := range f.spans.Ended() {
		if s.SpanKind() == trace.SpanKindConsumer && s.Name() == "databricks run" {
			consumers++
		}
	}
	if consumers != 1 {
		t.Errorf("%d run spans recorded, want 1", consumers)
	}
}

func TestNewRejectsBadSettings(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"NOTEBOOK_VALIDATE_URL":        {"NOTEBOOK_VALIDATE_URL": "validate"},
		"NOTEBOOK_MAX_WAIT":            {"NOTEBOOK_MAX_WAIT": "300s"},
		"NOTEBOOK_VALIDATE_TIMEOUT":    {"NOTEBOOK_VALIDATE_TIMEOUT": "0s"},
		"NOTEBOOK_PARAMETER_ALLOWLIST": {"NOTEBOOK_PARAMETER_ALLOWLIST": "extract_seconds,traceparent"},
	} {
		_, err := New(api.Env{Getenv: func(k string) string { return env[k] }, BaseURL: "http://x/api", TracerProvider: sdktrace.NewTracerProvider()}, Deps{Runs: &fakeRuns{}})
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%v: err = %v", env, err)
		}
	}
}
