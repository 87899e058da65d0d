package stage

import (
	"context"
	"io"
	"os"
	"path/filepath"
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
	if err := Check(out, "linux", "arm64"); err == nil || !strings.Contains(err.Error(), "not arm64") {
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
		{"no handler", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "handler")) }, "is missing"},
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
