// Package stage builds the folder the Functions host runs: host.json at its
// root, the handler executable named by host.json's
// customHandler.description.defaultExecutablePath, and one folder per
// function holding its function.json. It is the layout of
// `func start --script-root <folder>` and of a deployment package; a folder
// for func start also holds local.settings.json (Options.Settings), which a
// deployment package never does.
package stage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/tailscale/hujson"

	"github.com/nbtrace/nbtrace/dev/funchost"
	"github.com/nbtrace/nbtrace/handler/manifest"
)

// Options configures Stage.
type Options struct {
	// RepoRoot holds go.mod, host.json and functions/.
	RepoRoot string
	// Out is the folder to write; it is replaced.
	Out string
	// GOOS and GOARCH of the handler; this machine's by default. Azure
	// Functions on Linux needs linux/amd64. For windows the handler is
	// named with .exe, in the staged host.json too: Windows starts only
	// .exe files.
	GOOS, GOARCH string
	// Settings, when set, is a local.settings.json copied into the folder
	// for `func start --script-root Out`, which reads its settings only
	// from there: the folder is then a local one (CheckLocal), never a
	// deployment package. It must name FUNCTIONS_WORKER_RUNTIME custom;
	// when the handler is built for this machine, Stage also runs it with
	// -check in the environment func start would give it, and fails with
	// what it says is missing.
	Settings string
	// Stderr receives the Go build's output.
	Stderr io.Writer
}

// Stage builds the handler and writes the app folder. It refuses to replace
// a folder that is neither empty nor an earlier staged app, and fails on a
// settings file func start could not run the app with.
func Stage(ctx context.Context, o Options) error {
	if o.GOOS == "" {
		o.GOOS = runtime.GOOS
	}
	if o.GOARCH == "" {
		o.GOARCH = runtime.GOARCH
	}
	if o.Stderr == nil {
		o.Stderr = io.Discard
	}
	hostJSON, err := os.ReadFile(filepath.Join(o.RepoRoot, "host.json"))
	if err != nil {
		return err
	}
	host, err := manifest.ParseHost(hostJSON)
	if err != nil {
		return err
	}
	var settings []byte
	if o.Settings != "" {
		if settings, err = readSettings(o.Settings); err != nil {
			return err
		}
	}
	exePath := host.ExecutablePath
	if o.GOOS == "windows" && path.Ext(exePath) == "" {
		// Windows starts only .exe files (CreateProcess appends .exe to a
		// name without an extension), and the host resolves
		// defaultExecutablePath as written (HttpWorkerDescription.cs,
		// ApplyDefaultsAndValidate: File.Exists of the joined path).
		exePath += ".exe"
		if hostJSON, err = setExecutablePath(hostJSON, exePath); err != nil {
			return err
		}
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
	exe := filepath.Join(o.Out, filepath.FromSlash(exePath))
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", exe, "./handler")
	cmd.Dir = o.RepoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+o.GOOS, "GOARCH="+o.GOARCH)
	cmd.Stdout, cmd.Stderr = o.Stderr, o.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build ./handler for %s/%s: %w", o.GOOS, o.GOARCH, err)
	}
	if settings == nil {
		return Check(o.Out, o.GOOS, o.GOARCH)
	}
	// The settings file as written, comments and all: Core Tools reads
	// comments, and so does the stand-in.
	if err := os.WriteFile(filepath.Join(o.Out, funchost.LocalSettingsFile), settings, 0o600); err != nil {
		return err
	}
	if err := CheckLocal(o.Out, o.GOOS, o.GOARCH); err != nil {
		return err
	}
	if o.GOOS == runtime.GOOS && o.GOARCH == runtime.GOARCH {
		return preflight(ctx, o.Out, exe, o.Settings)
	}
	return nil
}

// readSettings reads the settings file to copy and checks that func start
// could run this app with it.
func readSettings(file string) ([]byte, error) {
	raw, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no settings file %s: copy local.settings.json.template to it and set the Databricks settings "+
			"(go run ./dev databricks -settings %s starts a local Databricks stand-in and writes them there)", file, file)
	}
	if err != nil {
		return nil, err
	}
	s, err := funchost.ReadLocalSettingsFile(file)
	if err != nil {
		return nil, err
	}
	if err := s.CheckForCustomHandler(); err != nil {
		return nil, err
	}
	return raw, nil
}

// preflight runs the staged handler with -check in the environment func
// start would give it (funchost.FuncStartEnv), and fails with what the
// handler says: the settings it would stop for at start-up, three times,
// before the host shut down.
func preflight(ctx context.Context, out, exe, settingsFile string) error {
	s, err := funchost.ReadLocalSettings(out)
	if err != nil {
		return err
	}
	if s.Encrypted && !s.EncryptedImplicitly {
		return nil // only Core Tools can read it
	}
	port := s.LocalHTTPPort
	if port == 0 {
		port = 7071
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	env, _, err := funchost.FuncStartEnv(s, os.Environ(), port, abs)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, exe, "-check")
	cmd.Dir = abs
	cmd.Env = append(append(os.Environ(), env...), "FUNCTIONS_CUSTOMHANDLER_PORT=0", "FUNCTIONS_APP_ROOT_PATH="+abs)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Run(); err != nil {
		var said []string
		for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
			if !strings.HasPrefix(line, "{") { // the handler's JSON log lines
				said = append(said, line)
			}
		}
		return fmt.Errorf("staged %s, but under func start the handler would stop at start-up with %s (%v):\n%s\n"+
			"Set these in %s and stage again; go run ./dev databricks -settings %s starts a local Databricks stand-in and writes its settings there",
			out, settingsFile, err, strings.Join(said, "\n"), settingsFile, settingsFile)
	}
	return nil
}

// setExecutablePath sets customHandler.description.defaultExecutablePath
// in host.json, keeping the rest as written.
func setExecutablePath(hostJSON []byte, exe string) ([]byte, error) {
	v, err := hujson.Parse(hostJSON)
	if err != nil {
		return nil, fmt.Errorf("host.json: %w", err)
	}
	patch, _ := json.Marshal([]map[string]any{{"op": "replace", "path": "/customHandler/description/defaultExecutablePath", "value": exe}})
	if err := v.Patch(patch); err != nil {
		return nil, fmt.Errorf("host.json: %w", err)
	}
	return v.Pack(), nil
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
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return fmt.Errorf("%s is a source tree (it has go.mod): not replacing it", dir)
		}
	}
	return os.RemoveAll(dir)
}
