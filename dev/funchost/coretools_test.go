package funchost

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nbtrace/nbtrace/handler/manifest"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestAppRoot: func start reads local.settings.json from the first folder
// upward holding host.json or local.settings.json: the staged folder, never
// the repository above it.
func TestAppRoot(t *testing.T) {
	repo := t.TempDir()
	writeFile(t, filepath.Join(repo, LocalSettingsFile), `{"IsEncrypted": false, "Values": {"FUNCTIONS_WORKER_RUNTIME": "custom"}}`)
	writeFile(t, filepath.Join(repo, "host.json"), `{}`)
	dist := filepath.Join(repo, "dist")
	writeFile(t, filepath.Join(dist, "host.json"), `{}`)
	if got, _ := AppRoot(dist); got != dist {
		t.Errorf("AppRoot(dist) = %s, want %s", got, dist)
	}
	sub := filepath.Join(dist, "validate")
	writeFile(t, filepath.Join(sub, "function.json"), `{}`)
	if got, _ := AppRoot(sub); got != dist {
		t.Errorf("AppRoot(dist/validate) = %s, want %s", got, dist)
	}
	s, err := ReadLocalSettings(dist)
	if err != nil || s.Exists || len(s.Values) != 0 {
		t.Errorf("the staged folder's settings = %+v, %v; want none (the repository's are not read)", s, err)
	}
}

func TestReadLocalSettings(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, LocalSettingsFile), `{
  // comments and trailing commas, as Newtonsoft reads them
  "IsEncrypted": false,
  "Values": {"A": "a", "N": 5, "B": true, "E": "", "Z": null,},
  "ConnectionStrings": {"s": "x", "o": {"ConnectionString": "y", "ProviderName": "p"}},
  "Host": {"LocalHttpPort": 7080},
}`)
	s, err := ReadLocalSettings(dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"A": "a", "N": "5", "B": "True", "E": ""}, s.Values); diff != "" {
		t.Errorf("Values (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"s": "x", "o": "y"}, s.ConnectionStrings); diff != "" {
		t.Errorf("ConnectionStrings (-want +got):\n%s", diff)
	}
	if s.Encrypted || !slices.Equal(s.Nulls, []string{"Z"}) || s.LocalHTTPPort != 7080 {
		t.Errorf("got %+v", s)
	}
	writeFile(t, filepath.Join(dir, LocalSettingsFile), `{"Values": {"A": {"nested": 1}}}`)
	if _, err := ReadLocalSettings(dir); err == nil || !strings.Contains(err.Error(), "Failed to read app settings file") {
		t.Errorf("an object value: %v", err)
	}
}

// TestFuncStartEnv: what func start adds to the handler's environment, and
// where it stops.
func TestFuncStartEnv(t *testing.T) {
	const root = "/app/dist"
	settings := func(isEncrypted, values string) LocalSettings {
		dir := t.TempDir()
		if values != "-" {
			writeFile(t, filepath.Join(dir, LocalSettingsFile), `{`+isEncrypted+`"Values": {`+values+`}, "ConnectionStrings": {"db": "Server=x"}}`)
		}
		s, err := ReadLocalSettings(dir)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	plain := `"IsEncrypted": false, `
	tests := []struct {
		name         string
		settings     LocalSettings
		environ      []string
		want         []string
		wantWarnings []string
		wantErr      string
	}{
		{
			name:     "values become variables; empty ones and nulls do not",
			settings: settings(plain, `"FUNCTIONS_WORKER_RUNTIME": "custom", "DATABRICKS_HOST": "http://127.0.0.1:9", "EMPTY": "", "NULL": null, "AZURE_FUNCTIONS_ENVIRONMENT": "Production"`),
			want: []string{"AZURE_FUNCTIONS_ENVIRONMENT=Development", "AzureWebJobsScriptRoot=/app/dist", "ConnectionStrings:db=Server=x",
				"DATABRICKS_HOST=http://127.0.0.1:9", "FUNCTIONS_WORKER_RUNTIME=custom", "WEBSITE_HOSTNAME=localhost:7090"},
			wantWarnings: []string{"Skipping 'NULL' because value is null"},
		},
		{
			name:         "the environment wins",
			settings:     settings(plain, `"FUNCTIONS_WORKER_RUNTIME": "custom", "DATABRICKS_HOST": "http://file"`),
			environ:      []string{"DATABRICKS_HOST=http://shell", "WEBSITE_HOSTNAME="},
			want:         []string{"AZURE_FUNCTIONS_ENVIRONMENT=Development", "AzureWebJobsScriptRoot=/app/dist", "ConnectionStrings:db=Server=x", "FUNCTIONS_WORKER_RUNTIME=custom", "WEBSITE_HOSTNAME=localhost:7090"},
			wantWarnings: []string{"Skipping 'DATABRICKS_HOST' from local settings as it's already defined in current environment variables."},
		},
		{
			name:     "a worker runtime from the environment is enough",
			settings: settings("", "-"),
			environ:  []string{"FUNCTIONS_WORKER_RUNTIME=custom"},
			want:     []string{"AZURE_FUNCTIONS_ENVIRONMENT=Development", "AzureWebJobsScriptRoot=/app/dist", "WEBSITE_HOSTNAME=localhost:7090"},
		},
		{name: "no local.settings.json: func start would ask for the worker runtime", settings: settings("", "-"), wantErr: "FUNCTIONS_WORKER_RUNTIME is set neither in"},
		{name: "no worker runtime in the file", settings: settings(plain, `"DATABRICKS_HOST": "x"`), wantErr: "func start would ask for the worker runtime"},
		{name: "an empty worker runtime", settings: settings(plain, `"FUNCTIONS_WORKER_RUNTIME": ""`), wantErr: "Worker runtime cannot be 'None'"},
		{name: "another worker runtime", settings: settings(plain, `"FUNCTIONS_WORKER_RUNTIME": "go"`), wantErr: `FUNCTIONS_WORKER_RUNTIME is "go"`},
		{name: "IsEncrypted missing: plain values read as encrypted", settings: settings("", `"FUNCTIONS_WORKER_RUNTIME": "custom"`), wantErr: "Failed to decrypt settings"},
		{name: "IsEncrypted true: only Core Tools can read it", settings: settings(`"IsEncrypted": true, `, `"FUNCTIONS_WORKER_RUNTIME": "CfDJ8"`), wantErr: "only Core Tools"},
		{name: "a setting func start sets itself", settings: settings(plain, `"FUNCTIONS_WORKER_RUNTIME": "custom", "WEBSITE_HOSTNAME": "localhost:1"`), wantErr: "An item with the same key has already been added. Key: WEBSITE_HOSTNAME"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, warnings, err := FuncStartEnv(tt.settings, tt.environ, 7090, root)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, env); diff != "" {
				t.Errorf("env (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantWarnings, warnings); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

// coreToolsApp is fakeApp with a local.settings.json of values.
func coreToolsApp(t *testing.T, values map[string]any) string {
	t.Helper()
	dir := fakeApp(t)
	if values != nil {
		b, _ := json.Marshal(map[string]any{"IsEncrypted": false, "Values": values})
		writeFile(t, filepath.Join(dir, LocalSettingsFile), string(b))
	}
	return dir
}

// syncLog is a log many goroutines write to.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }

func (l *syncLog) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func freePort(t *testing.T) int {
	t.Helper()
	p, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestStartCoreTools: the handler gets the folder's settings and what func
// start sets, and no function key is checked.
func TestStartCoreTools(t *testing.T) {
	dir := coreToolsApp(t, map[string]any{"FUNCTIONS_WORKER_RUNTIME": "custom", "FUNCHOST_TEST_ROLE": "handler", "NBTRACE_EMPTY": ""})
	port := freePort(t)
	c, err := StartCoreTools(context.Background(), CoreToolsOptions{ScriptRoot: dir, Port: port, Environ: []string{}, Log: &syncLog{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	if want := "http://localhost:" + strconv.Itoa(port); c.URL != want {
		t.Errorf("URL = %s, want %s", c.URL, want)
	}
	_, base, _ := c.Host.HandlerProcess()
	res, err := http.Get(base + "/env")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var env []string
	if err := json.NewDecoder(res.Body).Decode(&env); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"WEBSITE_HOSTNAME=localhost:" + strconv.Itoa(port), "AzureWebJobsScriptRoot=" + dir, "FUNCTIONS_WORKER_RUNTIME=custom", "AZURE_FUNCTIONS_ENVIRONMENT=Development", "FUNCTIONS_APP_ROOT_PATH=" + dir} {
		if !slices.Contains(env, want) {
			t.Errorf("the handler's environment lacks %s", want)
		}
	}
	if slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "NBTRACE_EMPTY=") }) {
		t.Error("an empty value reached the handler")
	}
	if !c.Host.authorized(manifest.Function{AuthLevel: "function"}, httptestRequest(t)) {
		t.Error("func start checked a function key")
	}
	// The host serves on the port: an unknown route is its 404.
	if res, err := http.Get(c.URL + "/api/nothing"); err != nil || res.StatusCode != http.StatusNotFound {
		t.Errorf("GET /api/nothing: %v %v", res, err)
	}
}

func httptestRequest(t *testing.T) *http.Request {
	t.Helper()
	r, err := http.NewRequest(http.MethodPost, "http://localhost/api/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestStartCoreToolsStops: where func start stops, with the reason.
func TestStartCoreToolsStops(t *testing.T) {
	t.Run("no local.settings.json", func(t *testing.T) {
		_, err := StartCoreTools(context.Background(), CoreToolsOptions{ScriptRoot: coreToolsApp(t, nil), Port: freePort(t), Environ: []string{}, Log: &syncLog{}})
		if err == nil || !strings.Contains(err.Error(), "func start would ask for the worker runtime") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("a handler that cannot start", func(t *testing.T) {
		dir := coreToolsApp(t, map[string]any{"FUNCTIONS_WORKER_RUNTIME": "custom", "FUNCHOST_TEST_ROLE": "failing"})
		var log syncLog
		_, err := StartCoreTools(context.Background(), CoreToolsOptions{ScriptRoot: dir, Port: freePort(t), Environ: []string{}, Log: &log})
		if err == nil || !strings.Contains(err.Error(), "Exceeded http worker restart retry count") || !strings.Contains(err.Error(), "DATABRICKS_HOST is not set") {
			t.Fatalf("err = %v", err)
		}
		if n := strings.Count(log.String(), "Language Worker Process exited"); n != 3 {
			t.Errorf("%d failed starts logged, want 3:\n%s", n, log.String())
		}
	})
	t.Run("the port is taken", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		port := ln.Addr().(*net.TCPAddr).Port
		dir := coreToolsApp(t, map[string]any{"FUNCTIONS_WORKER_RUNTIME": "custom", "FUNCHOST_TEST_ROLE": "handler"})
		_, err = StartCoreTools(context.Background(), CoreToolsOptions{ScriptRoot: dir, Port: port, Environ: []string{}, Log: &syncLog{}})
		if err == nil || !strings.Contains(err.Error(), "Port "+strconv.Itoa(port)+" is unavailable") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("no such folder", func(t *testing.T) {
		_, err := StartCoreTools(context.Background(), CoreToolsOptions{ScriptRoot: filepath.Join(t.TempDir(), "dist"), Environ: []string{}})
		if err == nil || !strings.Contains(err.Error(), "doesn't exist") {
			t.Errorf("err = %v", err)
		}
	})
}
