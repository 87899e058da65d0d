package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nbtrace/nbtrace/dev/dbxstandin"
)

// recorder keeps every request body posted to it (gunzipped) and answers
// with answer, or 200.
type recorder struct {
	mu     sync.Mutex
	bodies map[string][][]byte
	answer http.HandlerFunc
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		if gz, err := gzip.NewReader(r.Body); err == nil {
			body = gz
		}
	}
	b, _ := io.ReadAll(body)
	rc.mu.Lock()
	if rc.bodies == nil {
		rc.bodies = map[string][][]byte{}
	}
	rc.bodies[r.URL.Path] = append(rc.bodies[r.URL.Path], b)
	rc.mu.Unlock()
	if rc.answer != nil {
		rc.answer(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"itemsReceived":1,"itemsAccepted":1,"errors":[]}`)
}

func (rc *recorder) all() []byte {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []byte
	for _, bs := range rc.bodies {
		for _, b := range bs {
			out = append(out, b...)
		}
	}
	return out
}

// startHandler runs the handler in-process with env and returns its URL and
// a stop function that waits for it to exit.
func startHandler(t *testing.T, more map[string]string) (string, *bytes.Buffer, func()) {
	t.Helper()
	port := freePort(t)
	env := map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": port, "FUNCTIONS_APP_ROOT_PATH": appRoot(t), "SIMULATE_LATENCY": "0s",
		"NBTRACE_SHUTDOWN_TIMEOUT": "1s"}
	for k, v := range more {
		env[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	stderr := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, appEnv(env), io.Discard, stderr) }()
	base := "http://127.0.0.1:" + port
	deadline := time.Now().Add(10 * time.Second)
	for {
		if res, err := http.Get(base + "/"); err == nil {
			res.Body.Close()
			break
		}
		select {
		case err := <-done:
			t.Fatalf("run: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("not ready")
		}
		time.Sleep(25 * time.Millisecond)
	}
	return base, &stderr.b, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// invoke posts a payload-mode invocation of fn with a caller request body
// and headers, as the host does.
func invoke(t *testing.T, base, fn, path, body string, header map[string]string) (int, string) {
	t.Helper()
	h := `"Content-Type":["application/json"]`
	for k, v := range header {
		h += fmt.Sprintf(`,%q:[%q]`, k, v)
	}
	b, _ := jsonString(body)
	payload := `{"Data":{"req":{"Url":"http://localhost:7071` + path + `","Method":"POST","Query":{},"Headers":{` + h + `},"Params":{"service":"a"},"Body":` + b + `}},"Metadata":{}}`
	res, err := http.Post(base+"/"+fn, "application/json", strings.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(out)
}

func jsonString(s string) (string, error) {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String(), nil
}

// TestNoSecretsInTelemetry runs validate and notebook with every export on
// and checks that no token, key or request body reaches the logs, spans or
// metrics, over OTLP, to Application Insights or on stderr.
func TestNoSecretsInTelemetry(t *testing.T) {
	const (
		ikey       = "11111111-2222-3333-4444-5555aaaa6666"
		dbxToken   = "dapi-S3CR3T-T0KEN"
		fnKey      = "FUNCTION-KEY-XYZ"
		bodyMarker = "bodymarker-do-not-log"
		otlpHeader = "Bearer OTLP-HEADER-SECRET"
	)
	otlp, ai := &recorder{}, &recorder{}
	otlpSrv, aiSrv := httptest.NewServer(otlp), httptest.NewServer(ai)
	defer otlpSrv.Close()
	defer aiSrv.Close()
	stand := dbxstandin.New(dbxstandin.Options{Token: dbxToken})
	dbxSrv := httptest.NewServer(stand)
	defer dbxSrv.Close()
	defer stand.Close()
	stand.SetBaseURL(dbxSrv.URL)
	verdict := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"passed":true,"valid":true}`)
	}))
	defer verdict.Close()
	req, _ := http.NewRequest(http.MethodPost, dbxSrv.URL+"/api/2.2/jobs/create", strings.NewReader(`{"name":"j","parameters":[{"name":"traceparent","default":""},{"name":"tracestate","default":""},{"name":"dataset","default":""},{"name":"date","default":""},{"name":"row_count","default":""}]}`))
	req.Header.Set("Authorization", "Bearer "+dbxToken)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 200 {
		t.Fatalf("create job: %v", err)
	}

	base, stderr, stop := startHandler(t, map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT":           otlpSrv.URL,
		"OTEL_EXPORTER_OTLP_HEADERS":            "authorization=" + strings.ReplaceAll(otlpHeader, " ", "%20"),
		"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=" + ikey + ";IngestionEndpoint=" + aiSrv.URL + "/",
		"DATABRICKS_HOST":                       dbxSrv.URL,
		"DATABRICKS_TOKEN":                      dbxToken,
		"DATABRICKS_JOB_ID":                     "1001",
		"NOTEBOOK_VALIDATE_URL":                 verdict.URL,
		"SERVICE_A_URL":                         verdict.URL,
		"SERVICE_B_URL":                         verdict.URL,
		"NBTRACE_LOG_LEVEL":                     "debug",
		"OTEL_METRIC_EXPORT_INTERVAL":           "100",
		"NBTRACE_FLUSH_POLICY":                  "sync",
	})
	hdr := map[string]string{"X-Functions-Key": fnKey, "Authorization": "Bearer " + fnKey}
	invoke(t, base, "validate", "/api/validate?code="+fnKey, `{"dataset":"sales","date":"`+bodyMarker+`"}`, hdr)
	invoke(t, base, "validate", "/api/validate", `{"dataset":"sales","date":"2026-01-01","note":"`+bodyMarker+`"}`, hdr)
	invoke(t, base, "notebook", "/api/notebook", `{"dataset":"sales","date":"2026-01-01","rowCount":5}`, hdr)
	invoke(t, base, "notebook", "/api/notebook?code="+fnKey, `{"dataset":"sales","date":"2026-01-02"}`, nil)
	time.Sleep(300 * time.Millisecond) // a metric export
	stop()

	if !bytes.Contains(otlp.all(), []byte("POST /api/validate")) || !bytes.Contains(ai.all(), []byte("POST /api/validate")) {
		t.Fatal("the telemetry did not arrive; the test would prove nothing")
	}
	if len(otlp.bodies["/v1/logs"]) == 0 || len(otlp.bodies["/v1/metrics"]) == 0 {
		t.Errorf("OTLP got %d log and %d metric exports, want both", len(otlp.bodies["/v1/logs"]), len(otlp.bodies["/v1/metrics"]))
	}
	aiText := strings.ReplaceAll(string(ai.all()), `"iKey":"`+ikey+`"`, "") // the envelope's address, not content
	for name, text := range map[string]string{"OTLP": string(otlp.all()), "Application Insights": aiText, "stderr": stderr.String()} {
		for _, secret := range []string{ikey, dbxToken, fnKey, bodyMarker, "OTLP-HEADER-SECRET"} {
			if strings.Contains(text, secret) {
				t.Errorf("%s telemetry contains %q", name, secret)
			}
		}
	}
}

// TestExporterFaultsNeverHurtRequests: with the OTLP and Application
// Insights endpoints down, hanging, refusing (400), failing (500) or
// partly accepting (206), invocations still answer, each within its
// bound: at once with the async flush policy, within NBTRACE_FLUSH_TIMEOUT
// with the sync one. A blocked exporter would make them wait forever.
func TestExporterFaultsNeverHurtRequests(t *testing.T) {
	hang := make(chan struct{})
	faults := map[string]http.HandlerFunc{
		"hanging": func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-hang:
			case <-r.Context().Done():
			}
		},
		"400": func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(400) },
		"500": func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) },
		"206": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(206)
			_, _ = io.WriteString(w, `{"itemsReceived":2,"itemsAccepted":1,"errors":[{"index":0,"statusCode":503}]}`)
		},
	}
	verdict := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"passed":true}`)
	}))
	defer verdict.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	var servers []*httptest.Server
	defer func() {
		close(hang)
		for _, s := range servers {
			s.Close()
		}
	}()
	endpoints := map[string]string{"down": downURL}
	for name, h := range faults {
		s := httptest.NewServer(&recorder{answer: h})
		servers = append(servers, s)
		endpoints[name] = s.URL
	}
	for fault, url := range endpoints {
		for _, policy := range []struct {
			name  string
			bound time.Duration
		}{{"async", time.Second}, {"sync", 200*time.Millisecond + time.Second}} {
			t.Run(fault+"/"+policy.name, func(t *testing.T) {
				base, _, stop := startHandler(t, map[string]string{
					"OTEL_EXPORTER_OTLP_ENDPOINT":           url,
					"OTEL_EXPORTER_OTLP_TIMEOUT":            "60000",
					"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=k;IngestionEndpoint=" + url + "/",
					"NBTRACE_FLUSH_POLICY":                  policy.name,
					"NBTRACE_FLUSH_TIMEOUT":                 "200ms",
					"SERVICE_A_URL":                         verdict.URL, "SERVICE_B_URL": verdict.URL,
				})
				defer stop()
				for i := range 10 {
					start := time.Now()
					status, body := invoke(t, base, "validate", "/api/validate", `{"dataset":"sales","date":"2026-01-01"}`, nil)
					if status != 200 || !strings.Contains(body, `"statusCode":200`) {
						t.Fatalf("invocation %d: %d %s", i, status, body)
					}
					if d := time.Since(start); d > policy.bound {
						t.Errorf("invocation %d took %v with the exporters %s (bound %v)", i, d, fault, policy.bound)
					}
				}
			})
		}
	}
}
