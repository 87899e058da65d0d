package hostproto

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/nbtrace/nbtrace/functions/api"
	"github.com/nbtrace/nbtrace/handler/internal/telemetry"
	"github.com/nbtrace/nbtrace/handler/manifest"
)

var update = flag.Bool("update", false, "rewrite the .golden files")

const testHostJSON = `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler"},"enableForwardingHttpRequest":%s}}`

// testApp is an app with two functions: echo (named output "res", route
// echo/{id:int}, POST) and ret ($return, GET and POST).
func testApp(t *testing.T, forwarding bool) *manifest.App {
	t.Helper()
	fwd := "false"
	if forwarding {
		fwd = "true"
	}
	app, err := manifest.Load(fstest.MapFS{
		"host.json": {Data: []byte(strings.Replace(testHostJSON, "%s", fwd, 1))},
		"echo/function.json": {Data: []byte(`{"bindings":[
			{"type":"httpTrigger","direction":"in","name":"req","methods":["post"],"route":"echo/{id:int}"},
			{"type":"http","direction":"out","name":"res"}]}`)},
		"ret/function.json": {Data: []byte(`{"bindings":[
			{"type":"httpTrigger","direction":"in","name":"request","methods":["get","post"],"authLevel":"anonymous"},
			{"type":"http","direction":"out","name":"$return"}]}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return app
}

// echo answers 201 with what it saw of the request; a body with
// "panic":true makes it panic.
func echo(w http.ResponseWriter, r *http.Request) {
	slog.InfoContext(r.Context(), "echo called", "id", r.PathValue("id"))
	body, _ := io.ReadAll(r.Body)
	if bytes.Contains(body, []byte(`"panic":true`)) {
		panic("asked to")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Add("X-Echo", "a")
	w.Header().Add("X-Echo", "b")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"method": r.Method, "path": r.URL.Path, "query": r.URL.RawQuery, "id": r.PathValue("id"),
		"body": string(body), "contentType": r.Header.Get("Content-Type"), "userAgent": r.Header.Get("User-Agent"),
	})
}

type fixture struct {
	srv   *Server
	spans *tracetest.SpanRecorder
	logs  *bytes.Buffer
}

func newFixture(t *testing.T, forwarding bool, maxBody int64) *fixture {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	logs := &bytes.Buffer{}
	logger := slog.New(telemetry.NewLogHandler(slog.NewTextHandler(logs, nil), slog.LevelInfo))
	prev := slog.Default()
	slog.SetDefault(logger)
	t.Cleanup(func() { slog.SetDefault(prev) })
	srv := NewServer(testApp(t, forwarding), map[string]http.Handler{
		"echo": http.HandlerFunc(echo),
		"ret":  http.HandlerFunc(echo),
	}, Options{
		TracerProvider: tp,
		Propagator:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		Logger:         logger,
		MaxBodyBytes:   maxBody,
		SiteName:       "nbtrace-test",
	})
	return &fixture{srv: srv, spans: rec, logs: logs}
}

// invoke posts a payload as the host does and returns the answer.
func (f *fixture) invoke(t *testing.T, fn string, payload []byte, header http.Header) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/"+fn, bytes.NewReader(payload))
	r.Header.Set("Content-Type", "application/json; charset=utf-8")
	r.Header.Set(HeaderInvocationID, "6f1c2a9e-0d1b-4c36-9a51-0c6bd4f0a111")
	r.Header.Set(HeaderHostVersion, "4.1037.0.0")
	for k, vs := range header {
		r.Header[k] = vs
	}
	w := httptest.NewRecorder()
	f.srv.ServeHTTP(w, r)
	return w
}

var (
	hex32      = regexp.MustCompile(`[0-9a-f]{32}`)
	hex16      = regexp.MustCompile(`[0-9a-f]{16}`)
	durationMs = regexp.MustCompile(`duration_ms=\d+`)
)

// normalize replaces ids and timings that differ per run.
func normalize(b []byte) []byte {
	b = hex32.ReplaceAll(b, []byte("<trace-id>"))
	b = hex16.ReplaceAll(b, []byte("<span-id>"))
	return durationMs.ReplaceAll(b, []byte("duration_ms=<n>"))
}

// TestPayloadGolden invokes echo with each testdata/*.input payload and
// compares the whole answer (status, Content-Type, body) with its .golden
// file. Run with -update to rewrite them.
func TestPayloadGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.input")
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) == 0 {
		t.Fatal("no testdata/*.input")
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".input")
		t.Run(name, func(t *testing.T) {
			payload, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			f := newFixture(t, false, 1<<10)
			w := f.invoke(t, "echo", payload, nil)
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, w.Body.Bytes(), "", "  "); err != nil {
				t.Fatalf("answer is not JSON: %v\n%s", err, w.Body)
			}
			got := normalize([]byte("status: " + http.StatusText(w.Code) + "\ncontent-type: " + w.Header().Get("Content-Type") + "\n" + pretty.String() + "\n"))
			golden := strings.TrimSuffix(in, ".input") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("answer differs from %s (-want +got):\n%s", golden, diff)
			}
		})
	}
}

func decodeAnswer(t *testing.T, w *httptest.ResponseRecorder) InvokeResponse {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type = %q, want application/json (the host rejects anything else)", ct)
	}
	var resp InvokeResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatalf("answer is not an InvokeResponse: %v\n%s", err, w.Body)
	}
	return resp
}

func outputOf(t *testing.T, v any) HTTPOutput {
	t.Helper()
	b, _ := json.Marshal(v)
	var out HTTPOutput
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("not an http output: %s", b)
	}
	return out
}

func TestReturnBindingGoesToReturnValue(t *testing.T) {
	f := newFixture(t, false, 1<<10)
	payload := []byte(`{"Data":{"request":{"Url":"http://localhost:7071/api/ret","Method":"GET","Query":{},"Headers":{},"Params":{}}},"Metadata":{}}`)
	w := f.invoke(t, "ret", payload, nil)
	resp := decodeAnswer(t, w)
	if w.Code != http.StatusOK {
		t.Fatalf("status = %d", w.Code)
	}
	if len(resp.Outputs) != 0 {
		t.Errorf("Outputs = %v, want empty for a $return function", resp.Outputs)
	}
	out := outputOf(t, resp.ReturnValue)
	if out.StatusCode != http.StatusCreated || !strings.Contains(out.Body, `"method":"GET"`) {
		t.Errorf("ReturnValue = %+v", out)
	}
	// The host applies statusCode and headers of $return only when a body
	// key is present, so it must be sent even when empty.
	raw, _ := json.Marshal(resp.ReturnValue)
	if !bytes.Contains(raw, []byte(`"body":`)) {
		t.Errorf("ReturnValue has no body key: %s", raw)
	}
	if len(resp.Logs) == 0 || !strings.Contains(resp.Logs[0], "echo called") {
		t.Errorf("Logs = %q, want the function's log line", resp.Logs)
	}
}

func TestTraceParentSources(t *testing.T) {
	const (
		hostTP   = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
		callerTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	)
	payload := func(tp string) []byte {
		h := `"Content-Type":["application/json"]`
		if tp != "" {
			h += `,"traceparent":["` + tp + `"],"tracestate":["congo=t61rcWkgMzE"]`
		}
		return []byte(`{"Data":{"req":{"Url":"http://localhost:7071/api/echo/1","Method":"POST","Query":{},"Headers":{` + h + `},"Params":{"id":"1"},"Body":"{}"}},"Metadata":{}}`)
	}
	tests := []struct {
		name       string
		hostHeader string
		callerTP   string
		wantTrace  string // "" = a fresh trace
		wantParent string
		wantSource Source
	}{
		{"host header wins", hostTP, callerTP, "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", FromHost},
		{"only in Data headers", "", callerTP, "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", FromCaller},
		{"absent", "", "", "", "", FromNone},
		{"invalid host header falls back to caller", "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01", callerTP, "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", FromCaller},
		{"version ff", "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "", "", "", FromNone},
		{"all-zero trace id", "00-00000000000000000000000000000000-b7ad6b7169203331-01", "", "", "", FromNone},
		{"all-zero span id", "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", "", "", "", FromNone},
		{"short trace id", "00-0af7651916cd43dd8448eb211c8031-b7ad6b7169203331-01", "", "", "", FromNone},
		{"upper-case hex", "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01", "", "", "", FromNone},
		{"extra field in version 00", hostTP + "-extra", "", "", "", FromNone},
		{"garbage", "not a traceparent", "", "", "", FromNone},
		{"future version with extra field is accepted", "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what", "", "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", FromHost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, false, 1<<10)
			h := http.Header{}
			if tt.hostHeader != "" {
				h.Set("traceparent", tt.hostHeader)
			}
			w := f.invoke(t, "echo", payload(tt.callerTP), h)
			out := outputOf(t, decodeAnswer(t, w).Outputs["res"])
			if out.StatusCode != http.StatusCreated {
				t.Fatalf("status = %d, want 201: a bad traceparent must never fail the request", out.StatusCode)
			}
			spans := f.spans.Ended()
			if len(spans) != 1 {
				t.Fatalf("%d spans, want 1", len(spans))
			}
			s := spans[0]
			if s.SpanKind() != trace.SpanKindServer {
				t.Errorf("kind = %v, want server", s.SpanKind())
			}
			if tt.wantTrace == "" {
				if s.Parent().IsValid() {
					t.Errorf("parent = %v, want none (a fresh trace)", s.Parent())
				}
			} else {
				if got := s.SpanContext().TraceID().String(); got != tt.wantTrace {
					t.Errorf("trace id = %s, want %s", got, tt.wantTrace)
				}
				if got := s.Parent().SpanID().String(); got != tt.wantParent {
					t.Errorf("parent span = %s, want %s", got, tt.wantParent)
				}
				if !s.Parent().IsRemote() {
					t.Error("parent is not remote")
				}
			}
			if tt.wantSource == FromCaller && s.SpanContext().TraceState().Get("congo") != "t61rcWkgMzE" {
				t.Errorf("tracestate = %q, want the caller's carried", s.SpanContext().TraceState())
			}
			if got := attr(s, AttrParentSource); got != string(tt.wantSource) {
				t.Errorf("%s = %q, want %q", AttrParentSource, got, tt.wantSource)
			}
			if want := "00-" + s.SpanContext().TraceID().String(); !strings.HasPrefix(out.Headers["Traceresponse"], want) {
				t.Errorf("traceresponse = %q, want it to start with %s", out.Headers["Traceresponse"], want)
			}
		})
	}
}

func attr(s sdktrace.ReadOnlySpan, key attribute.Key) string {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value.String()
		}
	}
	return ""
}

func TestInvocationSpanAttributes(t *testing.T) {
	f := newFixture(t, false, 1<<10)
	payload, err := os.ReadFile("testdata/echo-body.input")
	if err != nil {
		t.Fatal(err)
	}
	f.invoke(t, "echo", payload, nil)
	f.invoke(t, "echo", payload, nil)
	spans := f.spans.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2", len(spans))
	}
	want := map[string]string{
		"faas.trigger":              "http",
		"faas.invocation_id":        "6f1c2a9e-0d1b-4c36-9a51-0c6bd4f0a111",
		"faas.name":                 "nbtrace-test/echo",
		"faas.coldstart":            "true",
		"http.request.method":       "POST",
		"http.route":                "/api/echo/{id:int}",
		"url.path":                  "/api/echo/7",
		"url.scheme":                "http",
		"server.address":            "localhost",
		"user_agent.original":       "curl/8.5.0",
		"http.response.status_code": "201",
		"nbtrace.host.protocol":     "payload",
		"nbtrace.host.version":      "4.1037.0.0",
	}
	got := map[string]string{}
	for _, kv := range spans[0].Attributes() {
		got[string(kv.Key)] = kv.Value.String()
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if spans[0].Name() != "POST /api/echo/{id:int}" {
		t.Errorf("span name = %q", spans[0].Name())
	}
	if attr(spans[1], "faas.coldstart") != "false" {
		t.Error("the second invocation is marked as a cold start")
	}
}

func TestProtocolErrors(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		path       string
		payload    string
		wantStatus int
		wantCode   api.Code
	}{
		{"unknown function", http.MethodPost, "/nope", `{}`, 404, api.ENOTFOUND},
		{"nested path", http.MethodPost, "/echo/1", `{}`, 404, api.ENOTFOUND},
		{"GET instead of POST", http.MethodGet, "/echo", ``, 405, api.EMETHOD},
		{"not JSON", http.MethodPost, "/echo", `{"Data":`, 400, api.EINVALID},
		{"JSON array", http.MethodPost, "/echo", `[1,2]`, 400, api.EINVALID},
		{"no Data", http.MethodPost, "/echo", `{"Metadata":{}}`, 400, api.EINVALID},
		{"no trigger in Data", http.MethodPost, "/echo", `{"Data":{"other":{}}}`, 400, api.EINVALID},
		{"trigger not an object", http.MethodPost, "/echo", `{"Data":{"req":"\"hello\""}}`, 400, api.EINVALID},
		{"no Method", http.MethodPost, "/echo", `{"Data":{"req":{"Url":"http://x/api/echo/1"}}}`, 400, api.EINVALID},
		{"Headers wrong type", http.MethodPost, "/echo", `{"Data":{"req":{"Url":"http://x/api/echo/1","Method":"POST","Headers":{"a":1}}}}`, 400, api.EINVALID},
	}
	f := newFixture(t, false, 1<<10)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.payload))
			w := httptest.NewRecorder()
			f.srv.ServeHTTP(w, r)
			if w.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d: %s", w.Code, tt.wantStatus, w.Body)
			}
			if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			var p api.Problem
			if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
				t.Fatalf("not a problem body: %s", w.Body)
			}
			if p.Code != tt.wantCode || !hex32.MatchString(p.TraceID) {
				t.Errorf("problem = %+v, want code %s and a trace id", p, tt.wantCode)
			}
		})
	}
	// The handler keeps serving after every bad request.
	payload, _ := os.ReadFile("testdata/echo-body.input")
	if out := outputOf(t, decodeAnswer(t, f.invoke(t, "echo", payload, nil)).Outputs["res"]); out.StatusCode != http.StatusCreated {
		t.Errorf("after the bad requests, echo answered %d", out.StatusCode)
	}
}

// TestPayloadFarOverTheLimit: a payload too large to read (a caller's body
// far over the limit, in Data and again in Metadata) is still answered
// through the output binding, so that the caller gets the documented 413
// with a trace id and not the host's bare 500.
func TestPayloadFarOverTheLimit(t *testing.T) {
	f := newFixture(t, false, 1<<10)
	big := strings.Repeat("x", 2*6*(1<<10)+(1<<20))
	payload := []byte(`{"Data":{"req":{"Url":"http://localhost:7071/api/echo/1","Method":"POST","Body":"` + big + `"}},"Metadata":{}}`)
	w := f.invoke(t, "echo", payload, http.Header{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}})
	if w.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200 (the invocation succeeded; its output says 413)", w.Code)
	}
	out := outputOf(t, decodeAnswer(t, w).Outputs["res"])
	if out.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("output status = %d, want 413", out.StatusCode)
	}
	var p api.Problem
	if err := json.Unmarshal([]byte(out.Body), &p); err != nil {
		t.Fatalf("output body is not a problem: %q", out.Body)
	}
	if p.Code != api.ETOOLARGE || p.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("problem = %+v, want payload-too-large in the host's trace", p)
	}
}

func TestReadiness(t *testing.T) {
	f := newFixture(t, false, 0)
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		w := httptest.NewRecorder()
		f.srv.ServeHTTP(w, httptest.NewRequest(m, "/", nil))
		if w.Code != http.StatusOK {
			t.Errorf("%s / = %d, want 200", m, w.Code)
		}
	}
	if n := len(f.spans.Ended()); n != 0 {
		t.Errorf("the readiness probe made %d spans, want none", n)
	}
}

func TestForwarding(t *testing.T) {
	f := newFixture(t, true, 64)
	tests := []struct {
		name, method, path, body string
		header                   map[string]string
		wantStatus               int
		wantInBody               string
	}{
		{"route with value", http.MethodPost, "/api/echo/42?x=1", `{"a":1}`, map[string]string{"Content-Type": "application/json"}, 201, `"id":"42"`},
		{"case-insensitive literal", http.MethodPost, "/API/Echo/42", ``, nil, 201, `"path":"/API/Echo/42"`},
		{"constraint not met", http.MethodPost, "/api/echo/abc", ``, nil, 404, `"not-found"`},
		{"method not allowed", http.MethodDelete, "/api/echo/42", ``, nil, 405, `"method-not-allowed"`},
		{"return function", http.MethodGet, "/api/ret", ``, nil, 201, `"method":"GET"`},
		{"body over the limit", http.MethodPost, "/api/echo/1", strings.Repeat("x", 65), nil, 413, `"payload-too-large"`},
		{"unknown path", http.MethodGet, "/api/none", ``, nil, 404, `"traceId"`},
		{"panic", http.MethodPost, "/api/echo/1", `{"panic":true}`, nil, 500, `"internal"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			r.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
			w := httptest.NewRecorder()
			f.srv.ServeHTTP(w, r)
			if w.Code != tt.wantStatus || !strings.Contains(w.Body.String(), tt.wantInBody) {
				t.Errorf("%s %s = %d %s, want %d with %s", tt.method, tt.path, w.Code, w.Body, tt.wantStatus, tt.wantInBody)
			}
			if !strings.Contains(w.Header().Get("Traceresponse"), "4bf92f3577b34da6a3ce929d0e0e4736") {
				t.Errorf("traceresponse = %q, want the caller's trace", w.Header().Get("Traceresponse"))
			}
		})
	}
	if w := httptest.NewRecorder(); true {
		f.srv.ServeHTTP(w, httptest.NewRequest(http.MethodDelete, "/api/echo/42", nil))
		if got := w.Header().Get("Allow"); got != "POST" {
			t.Errorf("Allow = %q, want POST", got)
		}
	}
}

func TestPanicIsRecordedOnTheSpan(t *testing.T) {
	f := newFixture(t, false, 1<<10)
	payload, _ := os.ReadFile("testdata/echo-panic.input")
	out := outputOf(t, decodeAnswer(t, f.invoke(t, "echo", payload, nil)).Outputs["res"])
	if out.StatusCode != 500 {
		t.Fatalf("status = %d, want 500", out.StatusCode)
	}
	s := f.spans.Ended()[0]
	if s.Status().Code.String() != "Error" || len(s.Events()) == 0 || s.Events()[0].Name != "exception" {
		t.Errorf("span status %v events %v, want an error with an exception event", s.Status(), s.Events())
	}
	if strings.Contains(out.Body, "asked to") {
		t.Errorf("the panic value leaked to the caller: %s", out.Body)
	}
}

func TestExtractParentBaggage(t *testing.T) {
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	tests := []struct {
		name         string
		host, caller http.Header
		want         string
	}{
		{"host baggage", http.Header{"Baggage": {"tenant=a"}}, http.Header{"Baggage": {"tenant=b"}}, "tenant=a"},
		{".NET Correlation-Context", http.Header{"Correlation-Context": {"tenant=c"}}, nil, "tenant=c"},
		{"caller baggage", nil, http.Header{"Baggage": {"tenant=b"}}, "tenant=b"},
		{"none", nil, nil, ""},
		{"malformed is ignored", http.Header{"Baggage": {"=;;,"}}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, _ := ExtractParent(context.Background(), prop, tt.host, tt.caller)
			carrier := propagation.MapCarrier{}
			prop.Inject(ctx, carrier)
			if got := carrier["baggage"]; got != tt.want {
				t.Errorf("baggage = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRequestDurationMetric(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	app := testApp(t, false)
	srv := NewServer(app, map[string]http.Handler{"echo": http.HandlerFunc(echo), "ret": http.HandlerFunc(echo)}, Options{
		TracerProvider: sdktrace.NewTracerProvider(), Propagator: propagation.TraceContext{},
		Logger: slog.New(slog.DiscardHandler), MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)),
	})
	payload, _ := os.ReadFile("testdata/echo-body.input")
	for range 3 {
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/echo", bytes.NewReader(payload)))
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	m := rm.ScopeMetrics[0].Metrics[0]
	h := m.Data.(metricdata.Histogram[float64])
	if m.Name != "http.server.request.duration" || m.Unit != "s" || len(h.DataPoints) != 1 || h.DataPoints[0].Count != 3 {
		t.Fatalf("metric = %+v", m)
	}
	attrs := h.DataPoints[0].Attributes
	for k, want := range map[string]string{"http.request.method": "POST", "http.route": "/api/echo/{id:int}", "http.response.status_code": "201"} {
		if v, ok := attrs.Value(attribute.Key(k)); !ok || v.String() != want {
			t.Errorf("%s = %v, want %s", k, v.String(), want)
		}
	}
}

func TestAfterInvocationSeesTheEndedSpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	var ended int
	app := testApp(t, false)
	srv := NewServer(app, map[string]http.Handler{"echo": http.HandlerFunc(echo), "ret": http.HandlerFunc(echo)}, Options{
		TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)), Propagator: propagation.TraceContext{},
		Logger:          slog.New(slog.DiscardHandler),
		AfterInvocation: func(context.Context) { ended = len(rec.Ended()) },
	})
	payload, _ := os.ReadFile("testdata/echo-body.input")
	srv.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/echo", bytes.NewReader(payload)))
	if ended != 1 {
		t.Errorf("AfterInvocation saw %d ended spans, want the invocation's: a flush then would miss it", ended)
	}
}
