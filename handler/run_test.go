package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace/noop"

	"github.com/nbtrace/nbtrace/dev/otlpsink"
	"github.com/nbtrace/nbtrace/functions/api"
	"github.com/nbtrace/nbtrace/handler/manifest"
)

// appRoot lays out the repository's host.json and function.json files as
// the host sees them: one folder per function at the root.
func appRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	copyFile(t, "../host.json", filepath.Join(root, "host.json"))
	fns, _ := filepath.Glob("../functions/*/function.json")
	if len(fns) == 0 {
		t.Fatal("no functions/*/function.json")
	}
	for _, f := range fns {
		copyFile(t, f, filepath.Join(root, filepath.Base(filepath.Dir(f)), "function.json"))
	}
	return root
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// appEnv is what every function needs, plus more. The Databricks client is
// built on first use, so its host is never dialled by these tests.
func appEnv(more map[string]string) func(string) string {
	m := map[string]string{
		"WEBSITE_HOSTNAME":  "localhost:7071",
		"DATABRICKS_HOST":   "https://adb-1.2.azuredatabricks.net",
		"DATABRICKS_JOB_ID": "7",
	}
	for k, v := range more {
		m[k] = v
	}
	return env(m)
}

// TestFunctionJSONMatchesImplementations fails when a function.json has no
// Go code or Go code has no function.json.
func TestFunctionJSONMatchesImplementations(t *testing.T) {
	app, err := manifest.Load(os.DirFS(appRoot(t)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := buildFunctions(app, api.Env{Getenv: appEnv(nil), BaseURL: "http://localhost:7071/api", HTTPClient: http.DefaultClient,
		TracerProvider: noop.NewTracerProvider()}); err != nil {
		t.Fatal(err)
	}
	if len(app.Functions) != len(implementations) {
		t.Errorf("%d function.json files, %d implementations", len(app.Functions), len(implementations))
	}
}

func TestBuildFunctionsReportsMismatches(t *testing.T) {
	root := appRoot(t)
	copyFile(t, filepath.Join(root, "validate", "function.json"), filepath.Join(root, "ghost", "function.json"))
	if err := os.RemoveAll(filepath.Join(root, "simulate")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "ghost", "function.json"), []byte(`{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","route":"ghost"},{"type":"http","direction":"out","name":"res"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	app, err := manifest.Load(os.DirFS(root))
	if err != nil {
		t.Fatal(err)
	}
	_, err = buildFunctions(app, api.Env{Getenv: appEnv(map[string]string{"VALIDATE_SERVICE_TIMEOUT": "never"}), BaseURL: "http://x/api",
		TracerProvider: noop.NewTracerProvider()})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`function "ghost" has a function.json but no Go implementation`,
		`function "simulate" has a Go implementation but no simulate/function.json`,
		`function "validate": VALIDATE_SERVICE_TIMEOUT`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
}

func TestLoadConfig(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, c config)
	}{
		{"no port", map[string]string{}, "FUNCTIONS_CUSTOMHANDLER_PORT is not set", nil},
		{"bad port", map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "http"}, "FUNCTIONS_CUSTOMHANDLER_PORT", nil},
		{"legacy port name", map[string]string{"FUNCTIONS_HTTPWORKER_PORT": "7001"}, "", func(t *testing.T, c config) {
			if c.Port != "7001" {
				t.Errorf("port = %s", c.Port)
			}
		}},
		{"bad body limit", map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "1", "NBTRACE_MAX_BODY_BYTES": "0"}, "NBTRACE_MAX_BODY_BYTES", nil},
		{"bad log level", map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "1", "NBTRACE_LOG_LEVEL": "loud"}, "NBTRACE_LOG_LEVEL", nil},
		{"bad shutdown timeout", map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "1", "NBTRACE_SHUTDOWN_TIMEOUT": "-1s"}, "NBTRACE_SHUTDOWN_TIMEOUT", nil},
		{"bad base URL", map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "1", "NBTRACE_BASE_URL": "app.example.com"}, "NBTRACE_BASE_URL", nil},
		{"bad host name", map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "1", "WEBSITE_HOSTNAME": "a/b"}, "WEBSITE_HOSTNAME", nil},
		{"azure host name is https", map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "1", "WEBSITE_HOSTNAME": "app.azurewebsites.net"}, "", func(t *testing.T, c config) {
			if c.BaseURL != "https://app.azurewebsites.net" {
				t.Errorf("base = %s", c.BaseURL)
			}
		}},
		{"func start host name is http", map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "1", "WEBSITE_HOSTNAME": "localhost:7071"}, "", func(t *testing.T, c config) {
			if c.BaseURL != "http://localhost:7071" {
				t.Errorf("base = %s", c.BaseURL)
			}
		}},
		{"override wins", map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "1", "WEBSITE_HOSTNAME": "x", "NBTRACE_BASE_URL": "https://api.example.com/"}, "", func(t *testing.T, c config) {
			if c.BaseURL != "https://api.example.com" {
				t.Errorf("base = %s", c.BaseURL)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadConfig(env(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

func TestRunCheck(t *testing.T) {
	var out, errs bytes.Buffer
	err := run(context.Background(), []string{"-check"}, appEnv(map[string]string{
		"FUNCTIONS_CUSTOMHANDLER_PORT": "0", "FUNCTIONS_APP_ROOT_PATH": appRoot(t),
	}), &out, &errs)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"validate", "/api/validate", "auth=function", "simulate", "output=$return", "protocol=payload"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRunFailsClearlyOnABadApp(t *testing.T) {
	err := run(context.Background(), nil, env(map[string]string{
		"FUNCTIONS_CUSTOMHANDLER_PORT": "0", "FUNCTIONS_APP_ROOT_PATH": t.TempDir(),
	}), &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "host.json") {
		t.Errorf("err = %v, want one about host.json", err)
	}
}

// TestRunGracefulShutdown: when the process is told to stop, an invocation
// in flight still completes, and its span is flushed to the exporter
// before run returns.
func TestRunGracefulShutdown(t *testing.T) {
	sink := otlpsink.New()
	sinkSrv := httptest.NewServer(sink)
	defer sinkSrv.Close()
	base, _, stop := startHandler(t, map[string]string{
		"SIMULATE_LATENCY":            "400ms",
		"OTEL_EXPORTER_OTLP_ENDPOINT": sinkSrv.URL,
		"OTEL_BSP_SCHEDULE_DELAY":     "60000", // only the shutdown flush can deliver the span
		"NBTRACE_FLUSH_POLICY":        "batch",
		"NBTRACE_SHUTDOWN_TIMEOUT":    "20s",
	})
	type result struct {
		status int
		body   string
	}
	resc := make(chan result, 1)
	go func() {
		status, body := invoke(t, base, "simulate", "/api/simulate/a", `{}`,
			map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
		resc <- result{status, body}
	}()
	time.Sleep(100 * time.Millisecond) // the invocation is now waiting in simulate
	stop()
	r := <-resc
	if r.status != 200 || !strings.Contains(r.body, `"statusCode":200`) {
		t.Fatalf("in-flight invocation: %d %s", r.status, r.body)
	}
	if spans := sink.Trace("4bf92f3577b34da6a3ce929d0e0e4736"); len(spans) != 1 {
		t.Errorf("%d spans reached the exporter by shutdown, want 1", len(spans))
	}
	if _, err := http.Get(base + "/"); err == nil {
		t.Error("still listening after run returned")
	}
}
