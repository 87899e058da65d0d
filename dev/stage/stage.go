// Package stage builds the folder the Functions host runs: host.json at its
// root, the handler executable named by host.json's
// customHandler.description.defaultExecutablePath, and one folder per
// function holding its function.json. It is the layout of
// `func start --script-root <folder>` and of a deployment package.
package stage

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/nbtrace/nbtrace/handler/manifest"
)

// Options configures Stage.
type Options struct {
	// RepoRoot holds go.mod, host.json and functions/.
	RepoRoot string
	// Out is the folder to write; it is replaced.
	Out string
	// GOOS and GOARCH of the handler; this machine's by default. Azure
	// Functions on Linux needs linux/amd64.
	GOOS, GOARCH string
	// Stderr receives the Go build's output.
	Stderr io.Writer
}

// Stage builds the handler and writes the app folder. It refuses to replace
// a folder that is neither empty nor an earlier staged app.
func Stage(ctx context.Context, o Options) error {
	if o.GOOS == "" {
		o.GOOS = runtime.GOOS
	}
	if o.GOARCH == "" {
		o.GOARCH = runtime.GOARCH
	}
	hostJSON, err := os.ReadFile(filepath.Join(o.RepoRoot, "host.json"))
	if err != nil {
		return err
	}
	host, err := manifest.ParseHost(hostJSON)
	if err != nil {
		return err
	}
	if err := clean(o.Out); err != nil {
		return err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(o.Out, "host.json"), hostJSON, 0o644); err != nil {
		return err
	}
	fns, err := filepath.Glob(filepath.Join(o.RepoRoot, "functions", "*", "function.json"))
	if err != nil {
		return err
	}
	for _, src := range fns {
		name := filepath.Base(filepath.Dir(src))
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(o.Out, name), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(o.Out, name, "function.json"), data, 0o644); err != nil {
			return err
		}
	}
	exe := filepath.Join(o.Out, filepath.FromSlash(host.ExecutablePath))
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", exe, "./handler")
	cmd.Dir = o.RepoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+o.GOOS, "GOARCH="+o.GOARCH)
	cmd.Stdout, cmd.Stderr = o.Stderr, o.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build ./handler for %s/%s: %w", o.GOOS, o.GOARCH, err)
	}
	return Check(o.Out, o.GOOS, o.GOARCH)
}

// clean removes dir when it is an earlier staged app (it has a host.json)
// or empty, and fails otherwise.
func clean(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		if _, err := os.Stat(filepath.Join(dir, "host.json")); err != nil {
			return fmt.Errorf("%s is not empty and holds no host.json: not replacing it", dir)
		}
	}
	return os.RemoveAll(dir)
}

// Check verifies a staged folder against what the host needs: a valid
// host.json at the root; its defaultExecutablePath a relative path to a
// regular, executable file inside the folder (the host resolves it against
// the app root) built for goos/goarch; every folder with a function.json a
// function the handler can serve; nothing else but those.
func Check(dir, goos, goarch string) error {
	app, err := manifest.Load(os.DirFS(dir))
	if err != nil {
		return err
	}
	p := app.Host.ExecutablePath
	if filepath.IsAbs(p) || strings.HasPrefix(filepath.Clean(p), "..") {
		return fmt.Errorf("host.json: defaultExecutablePath %q must be relative to the app root", p)
	}
	exe := filepath.Join(dir, filepath.FromSlash(p))
	st, err := os.Stat(exe)
	if err != nil {
		return fmt.Errorf("the handler %s is missing: %w", p, err)
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("the handler %s is not an executable file", p)
	}
	if goos == "linux" {
		f, err := elf.Open(exe)
		if err != nil {
			return fmt.Errorf("the handler %s is not a Linux executable: %w", p, err)
		}
		defer f.Close()
		want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[goarch]
		if want != 0 && f.Machine != want {
			return fmt.Errorf("the handler %s is built for %s, not %s", p, f.Machine, goarch)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		if name == "host.json" || name == filepath.Base(p) {
			continue
		}
		if _, ok := app.Function(name); e.IsDir() && (ok || slices.Contains(app.Disabled, name)) {
			continue
		}
		return fmt.Errorf("%s: unexpected %s in the app root", dir, name)
	}
	if len(app.Functions) == 0 {
		return fmt.Errorf("%s has no functions", dir)
	}
	return nil
}
