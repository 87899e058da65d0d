package stage

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestStageLinuxAMD64 builds the deployment folder as for Azure and checks
// its layout: host.json, the linux/amd64 handler, one folder per function
// with only its function.json.
func TestStageLinuxAMD64(t *testing.T) {
	out := filepath.Join(t.TempDir(), "dist")
	if err := Stage(context.Background(), Options{RepoRoot: "../..", Out: out, GOOS: "linux", GOARCH: "amd64", Stderr: io.Discard}); err != nil {
		t.Fatal(err)
	}
	var files []string
	_ = filepath.Walk(out, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			rel, _ := filepath.Rel(out, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(files)
	want := []string{"handler", "host.json", "notebook/function.json", "openapi/function.json", "runs/function.json", "simulate/function.json", "ui/function.json", "validate/function.json"}
	if diff := cmp.Diff(want, files); diff != "" {
		t.Errorf("staged files (-want +got):\n%s", diff)
	}
	// Staging again replaces the earlier folder.
	if err := Stage(context.Background(), Options{RepoRoot: "../..", Out: out, GOOS: "linux", GOARCH: "amd64", Stderr: io.Discard}); err != nil {
		t.Errorf("restage: %v", err)
	}
	if err := Check(out, "linux", "arm64"); err == nil || !strings.Contains(err.Error(), "not linux/arm64") {
		t.Errorf("Check for arm64 = %v, want a wrong-architecture error", err)
	}
}

func TestCheckFindsLayoutProblems(t *testing.T) {
	good := func(t *testing.T) string {
		dir := t.TempDir()
		write(t, dir, "host.json", `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler"}}}`)
		write(t, dir, "validate/function.json", `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req"},{"type":"http","direction":"out","name":"res"}]}`)
		write(t, dir, "handler", "#!/bin/sh\n")
		if err := os.Chmod(filepath.Join(dir, "handler"), 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	if err := Check(good(t), "", ""); err != nil {
		t.Fatalf("a good layout failed: %v", err)
	}
	tests := []struct {
		name    string
		spoil   func(t *testing.T, dir string)
		wantErr string
	}{
		{"no handler", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "handler")) }, "has no handler handler"},
		{"handler not executable", func(t *testing.T, dir string) { os.Chmod(filepath.Join(dir, "handler"), 0o644) }, "not an executable"},
		{"stray file", func(t *testing.T, dir string) { write(t, dir, "notes.txt", "x") }, "unexpected notes.txt"},
		{"folder without function.json", func(t *testing.T, dir string) { write(t, dir, "src/main.go", "x") }, "unexpected src"},
		{"no host.json", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "host.json")) }, "host.json"},
		{"absolute executable path", func(t *testing.T, dir string) {
			write(t, dir, "host.json", `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"/bin/sh"}}}`)
		}, "relative"},
		{"not ELF for linux", func(t *testing.T, dir string) {}, "not a Linux executable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := good(t)
			tt.spoil(t, dir)
			goos := ""
			if tt.name == "not ELF for linux" {
				goos = "linux"
			}
			err := Check(dir, goos, "amd64")
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestStageRefusesAForeignFolder(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "precious.txt", "keep me")
	err := Stage(context.Background(), Options{RepoRoot: "../..", Out: dir, Stderr: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "not replacing") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "precious.txt")); err != nil {
		t.Error("the folder was touched")
	}
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCheckNamesTheFolderAndWhatToRun: a folder that is not a staged app is
// named, with the command that stages one.
func TestCheckNamesTheFolderAndWhatToRun(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nonexistent")
	notStaged := t.TempDir() // host.json and a handler folder, as a source tree has
	write(t, notStaged, "host.json", `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler"}}}`)
	write(t, notStaged, "handler/main.go", "package main")
	repo, _ := filepath.Abs("../..")
	tests := []struct {
		name, dir string
		want      []string
	}{
		{"no such folder", missing, []string{missing + " does not exist", "go run ./dev stage -o " + missing}},
		{"the source tree", "../..", []string{"../.. (" + repo + ") is a source tree", "go run ./dev stage -o dist"}},
		{"handler is a folder", notStaged, []string{notStaged + ": handler, the handler host.json names, is a folder", "go run ./dev stage -o " + notStaged}},
		{"no host.json", t.TempDir(), []string{"has no host.json", "go run ./dev stage -o "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.dir, "linux", "amd64")
			for _, want := range tt.want {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("err = %v, want %q", err, want)
				}
			}
		})
	}
	if err := CheckLocal(missing, runtime.GOOS, runtime.GOARCH); err == nil || !strings.Contains(err.Error(), "go run ./dev stage -local -o "+missing) {
		t.Errorf("CheckLocal of a missing folder = %v", err)
	}
}

// TestStageNeverReplacesTheSourceTree: the repository has a host.json too;
// staging into it must not wipe it.
func TestStageNeverReplacesTheSourceTree(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "host.json", "{}")
	write(t, dir, "go.mod", "module example.com/x\n")
	if err := clean(dir); err == nil || !strings.Contains(err.Error(), "source tree") {
		t.Fatalf("clean = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Error("the folder was touched")
	}
}

// coreToolsWritten is what Core Tools writes into the app root when it had
// to ask for the worker runtime: the file was missing, so AppSettingsFile
// takes it as encrypted and protects the value; Host, null, is left out
// (Common/AppSettingsFile.cs: constructor catch, SetSecret, Commit).
const coreToolsWritten = `{
  "IsEncrypted": true,
  "Values": {
    "FUNCTIONS_WORKER_RUNTIME": "CfDJ8Ab3kQ1x9u2yZbq0dT0l2v8"
  },
  "ConnectionStrings": {}
}`

func TestCheckLocalSettings(t *testing.T) {
	good := func(t *testing.T) string {
		dir := t.TempDir()
		write(t, dir, "host.json", `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler"}}}`)
		write(t, dir, "validate/function.json", `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req"},{"type":"http","direction":"out","name":"res"}]}`)
		write(t, dir, "handler", "#!/bin/sh\n")
		if err := os.Chmod(filepath.Join(dir, "handler"), 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	tests := []struct {
		name, settings        string // "" : no file
		wantLocal, wantDeploy string // "" : passes
	}{
		{"staged with -local", `{"IsEncrypted": false, /* comment */ "Values": {"FUNCTIONS_WORKER_RUNTIME": "custom",},}`, "", "not a deployment package"},
		{"written by Core Tools", coreToolsWritten, "", "not a deployment package"},
		{"none", "", "has no local.settings.json", ""},
		{"no worker runtime", `{"IsEncrypted": false, "Values": {"DATABRICKS_HOST": "x"}}`, "would ask for the worker runtime", "not a deployment package"},
		{"another worker runtime", `{"IsEncrypted": false, "Values": {"FUNCTIONS_WORKER_RUNTIME": "node"}}`, `FUNCTIONS_WORKER_RUNTIME is "node"`, "not a deployment package"},
		{"no IsEncrypted", `{"Values": {"FUNCTIONS_WORKER_RUNTIME": "custom"}}`, "Failed to decrypt settings", "not a deployment package"},
		{"not JSON", `{"Values": `, "Failed to read app settings file", "not a deployment package"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := good(t)
			if tt.settings != "" {
				write(t, dir, "local.settings.json", tt.settings)
			}
			for _, c := range []struct {
				check func(string, string, string) error
				want  string
			}{{CheckLocal, tt.wantLocal}, {Check, tt.wantDeploy}} {
				err := c.check(dir, "", "")
				if c.want == "" && err != nil {
					t.Errorf("err = %v, want none", err)
				}
				if c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
					t.Errorf("err = %v, want %q", err, c.want)
				}
			}
		})
	}
}

// TestStageLocal stages for this machine with settings, as for func start:
// the settings are copied as written, the folder passes CheckLocal and
// fails Check, the deployment check.
func TestStageLocal(t *testing.T) {
	settings := filepath.Join(t.TempDir(), "local.settings.json")
	content := `{
  // as local.settings.json.template has it
  "IsEncrypted": false,
  "Values": {"FUNCTIONS_WORKER_RUNTIME": "custom", "DATABRICKS_HOST": "http://127.0.0.1:9", "DATABRICKS_JOB_ID": "7", "DATABRICKS_TOKEN": "dapi-x", "NBTRACE_LOG_LEVEL": "",},
}`
	write(t, filepath.Dir(settings), "local.settings.json", content)
	out := filepath.Join(t.TempDir(), "dist")
	if err := Stage(context.Background(), Options{RepoRoot: "../..", Out: out, Settings: settings, Stderr: io.Discard}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "local.settings.json")); string(b) != content {
		t.Errorf("the staged settings are %q, want the file as written", b)
	}
	if err := CheckLocal(out, runtime.GOOS, runtime.GOARCH); err != nil {
		t.Errorf("CheckLocal: %v", err)
	}
	if err := Check(out, runtime.GOOS, runtime.GOARCH); err == nil || !strings.Contains(err.Error(), "not a deployment package") {
		t.Errorf("Check of a local folder = %v", err)
	}
	// Restaged for deployment, the settings are gone: azure.yaml's
	// prepackage stages dist again without them.
	if err := Stage(context.Background(), Options{RepoRoot: "../..", Out: out, GOOS: "linux", GOARCH: "amd64", Stderr: io.Discard}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "local.settings.json")); !os.IsNotExist(err) {
		t.Errorf("local.settings.json survived a deployment stage: %v", err)
	}
}

// TestStageLocalStopsWhereTheHandlerWould: settings the handler cannot
// start with fail the stage, with what the handler says and what to run,
// rather than three restarts under func start.
func TestStageLocalStopsWhereTheHandlerWould(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "local.settings.json", `{"IsEncrypted": false, "Values": {"FUNCTIONS_WORKER_RUNTIME": "custom"}}`)
	err := Stage(context.Background(), Options{RepoRoot: "../..", Out: filepath.Join(t.TempDir(), "dist"), Settings: filepath.Join(dir, "local.settings.json"), Stderr: io.Discard})
	for _, want := range []string{"DATABRICKS_HOST is not set", "go run ./dev databricks -settings"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
	err = Stage(context.Background(), Options{RepoRoot: "../..", Out: filepath.Join(t.TempDir(), "dist"), Settings: filepath.Join(dir, "missing.json"), Stderr: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "local.settings.json.template") {
		t.Errorf("a missing settings file: %v", err)
	}
}

// TestStageWindows: on Windows the handler is handler.exe, and the staged
// host.json names it so.
func TestStageWindows(t *testing.T) {
	out := filepath.Join(t.TempDir(), "dist")
	if err := Stage(context.Background(), Options{RepoRoot: "../..", Out: out, GOOS: "windows", GOARCH: "amd64", Stderr: io.Discard}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "host.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"defaultExecutablePath": "handler.exe"`) || !strings.Contains(string(b), `"routePrefix": "api"`) {
		t.Errorf("staged host.json:\n%s", b)
	}
	if err := Check(out, "windows", "arm64"); err == nil || !strings.Contains(err.Error(), "not windows/arm64") {
		t.Errorf("Check for windows/arm64 = %v", err)
	}
	if err := Check(out, "linux", "amd64"); err == nil || !strings.Contains(err.Error(), "not a Linux executable") {
		t.Errorf("Check for linux = %v", err)
	}
}
