package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nbtrace/nbtrace/dev/funchost"
	"github.com/nbtrace/nbtrace/dev/internal/syncbuf"
)

// startDatabricks runs go run ./dev databricks -settings settings until the
// test ends, and waits until it has written the settings.
func startDatabricks(t *testing.T, settings string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncbuf.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"databricks", "-settings", settings, "-runner", "none"}, &stdout, &stderr)
	}()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.After(2 * time.Minute)
	for !strings.Contains(stdout.String(), "Wrote DATABRICKS_HOST") {
		select {
		case err := <-done:
			t.Fatalf("databricks ended: %v\n%s%s", err, stdout.String(), stderr.String())
		case <-deadline:
			t.Fatalf("databricks wrote no settings within 2 minutes:\n%s%s", stdout.String(), stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func post(t *testing.T, url, body string) (int, []byte) {
	t.Helper()
	res, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// TestFuncStartSteps walks the README's func start steps, with the host
// stand-in starting the folder as `func start --script-root` does:
//
//	go run ./dev databricks -settings local.settings.json
//	go run ./dev stage -local -o dist
//	go run ./dev check -local dist
//	func start --script-root dist
//
// then calls validate and notebook. Ports are free ones, never 7071 or 4318.
func TestFuncStartSteps(t *testing.T) {
	tmp := t.TempDir()
	settings := filepath.Join(tmp, "local.settings.json") // made from the template
	dist := filepath.Join(tmp, "dist")
	startDatabricks(t, settings)

	ctx := context.Background()
	var out bytes.Buffer
	if err := run(ctx, []string{"stage", "-local", "-o", dist, "-settings", settings}, &out, &out); err != nil {
		t.Fatalf("stage -local: %v\n%s", err, out.String())
	}
	if err := run(ctx, []string{"check", "-local", dist}, &out, &out); err != nil {
		t.Fatalf("check -local: %v", err)
	}
	if err := run(ctx, []string{"check", dist}, &out, &out); err == nil || !strings.Contains(err.Error(), "not a deployment package") {
		t.Errorf("check of the func start folder for deployment = %v, want a refusal", err)
	}

	port, err := funchost.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	var log syncbuf.Buffer
	c, err := funchost.StartCoreTools(ctx, funchost.CoreToolsOptions{ScriptRoot: dist, Port: port, Log: &log})
	if err != nil {
		t.Fatalf("func start: %v\n%s", err, log.String())
	}
	defer c.Stop()

	body := `{"dataset":"sales","date":"` + time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly) + `","rowCount":1200}`
	if code, b := post(t, c.URL+"/api/validate", body); code != http.StatusOK {
		t.Errorf("validate: %d %s\n%s", code, b, log.String())
	}
	code, b := post(t, c.URL+"/api/notebook?wait=60s", body)
	if code != http.StatusOK {
		t.Fatalf("notebook: %d %s\n%s", code, b, log.String())
	}
	var answer struct {
		RunID int64
		Run   struct{ ResultState string }
	}
	if err := json.Unmarshal(b, &answer); err != nil || answer.RunID == 0 || answer.Run.ResultState != "SUCCESS" {
		t.Errorf("notebook answered %s (%v), want a run that succeeded", b, err)
	}
}

// TestFuncStartWithoutLocalSettings: the failure the README's steps avoid.
// A folder without local.settings.json gets none from the repository:
// func start would ask for the worker runtime; with only that (what Core
// Tools writes after asking), the handler stops for lack of
// DATABRICKS_HOST, three times, and the host shuts down.
func TestFuncStartWithoutLocalSettings(t *testing.T) {
	dist := filepath.Join(t.TempDir(), "dist")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"stage", "-o", dist, "-goos", runtime.GOOS, "-goarch", runtime.GOARCH}, &out, &out); err != nil {
		t.Fatalf("stage: %v\n%s", err, out.String())
	}
	start := func() error {
		port, err := funchost.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		c, err := funchost.StartCoreTools(context.Background(), funchost.CoreToolsOptions{ScriptRoot: dist, Port: port, Log: io.Discard, Environ: withoutWorkerRuntime(os.Environ())})
		if err == nil {
			c.Stop()
		}
		return err
	}
	err := start()
	for _, want := range []string{"FUNCTIONS_WORKER_RUNTIME is set neither in " + filepath.Join(dist, "local.settings.json"), "go run ./dev stage -local"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("without local.settings.json: %v, want %q", err, want)
		}
	}
	// Core Tools writes the runtime it asked for encrypted; the host
	// stand-in reads plain files only, and the content is the same.
	if err := os.WriteFile(filepath.Join(dist, "local.settings.json"), []byte(`{"IsEncrypted": false, "Values": {"FUNCTIONS_WORKER_RUNTIME": "custom"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	err = start()
	for _, want := range []string{"Exceeded http worker restart retry count. Shutting down Functions Host", "DATABRICKS_HOST is not set"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("with only the worker runtime: %v, want %q", err, want)
		}
	}
}

func withoutWorkerRuntime(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "FUNCTIONS_WORKER_RUNTIME=") && !strings.HasPrefix(kv, "DATABRICKS_") {
			out = append(out, kv)
		}
	}
	return out
}
