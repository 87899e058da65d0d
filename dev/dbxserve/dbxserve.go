// Package dbxserve runs the Databricks stand-in on its own, for an app that
// the real Functions host runs (func start) instead of the local stack: it
// serves the stand-in on a loopback port, runs the deploy step against it
// as azd's post-provision hook runs it against a workspace (the notebook
// uploaded, the job created), and gives the handler's settings for it, a
// personal access token among them (go run ./dev databricks). It can write
// them into a local.settings.json, keeping its comments.
package dbxserve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/tailscale/hujson"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/nbtrace/nbtrace/dev/dbxstandin"
	"github.com/nbtrace/nbtrace/dev/stack"
	"github.com/nbtrace/nbtrace/functions/api"
	"github.com/nbtrace/nbtrace/handler/databricks"
	"github.com/nbtrace/nbtrace/handler/databricks/deploy"
)

// Options configures Start.
type Options struct {
	// RepoRoot holds notebooks/, which the deploy step uploads.
	RepoRoot string
	// Addr is where the stand-in listens: a loopback address only;
	// 127.0.0.1:0 (a free port) by default.
	Addr string
	// Runner executes each run's notebook; nil runs it with papermill in
	// the project's .venv (stack.NotebookRunner).
	Runner dbxstandin.Runner
	// OTLPEndpoint, when set, is the OTLP/HTTP base URL the notebook
	// exports its spans to (the job's OTEL_EXPORTER_OTLP_ENDPOINT).
	OTLPEndpoint string
	// Log receives the notebook runs' outcomes; os.Stderr by default.
	Log io.Writer
}

// Workspace is a running stand-in with the notebook job deployed.
type Workspace struct {
	// URL is the workspace URL, DATABRICKS_HOST.
	URL string
	// JobID is the job the deploy step created, DATABRICKS_JOB_ID.
	JobID int64
	// Token signs in to it, DATABRICKS_TOKEN.
	Token string
	dbx   *dbxstandin.Server
	srv   *http.Server
}

// Start starts the stand-in and deploys the notebook job to it. It returns
// an error naming the step that failed: the listener, or the deploy step.
func Start(ctx context.Context, o Options) (_ *Workspace, err error) {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.Log == nil {
		o.Log = os.Stderr
	}
	if o.Runner == nil {
		o.Runner = stack.NotebookRunner(o.RepoRoot, o.Log)
	}
	// It runs whatever notebook it is given: never reachable from
	// another machine.
	if host, _, err := net.SplitHostPort(o.Addr); err != nil || !api.LoopbackHost(host) {
		return nil, fmt.Errorf("databricks stand-in: %s is not a loopback address (127.0.0.1, ::1 or localhost, with a port)", o.Addr)
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("databricks stand-in: %w", err)
	}
	token := stack.NewToken()
	// The start-up of serverless and classic compute, as the local stack
	// runs it (stack.TimeScale times faster); run ids from the clock, so
	// that the runs kept in .nbtrace/runs are not overwritten after a
	// restart.
	w := &Workspace{URL: "http://" + ln.Addr().String(), Token: token, dbx: dbxstandin.New(dbxstandin.Options{
		Token: token, Runner: o.Runner, FirstRunID: dbxstandin.RunIDSeed(),
		QueueDelay: 50 * time.Millisecond, CleanupDelay: 50 * time.Millisecond,
		SetupDelay: stack.ClassicStartup / stack.TimeScale, ServerlessSetupDelay: stack.ServerlessStartup / stack.TimeScale,
	})}
	w.dbx.SetBaseURL(w.URL)
	w.srv = &http.Server{Handler: w.dbx, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = w.srv.Serve(ln) }()
	defer func() {
		if err != nil {
			_ = w.Close()
		}
	}()
	env := map[string]string{"DATABRICKS_HOST": w.URL, "DATABRICKS_TOKEN": token}
	if o.OTLPEndpoint != "" {
		env["OTEL_EXPORTER_OTLP_ENDPOINT"] = o.OTLPEndpoint
	}
	getenv := func(k string) string { return env[k] }
	cfg, err := databricks.ConnectionFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	spec, err := deploy.NewJobSpec(getenv, deploy.DefaultOptions(o.RepoRoot))
	if err != nil {
		return nil, err
	}
	if w.JobID, err = deploy.Deploy(ctx, databricks.New(cfg, noop.NewTracerProvider(), propagation.TraceContext{}), spec); err != nil {
		return nil, fmt.Errorf("deploy the notebook job to the stand-in: %w", err)
	}
	return w, nil
}

// Settings are the handler's settings for this workspace, for the Values
// of local.settings.json.
func (w *Workspace) Settings() map[string]string {
	return map[string]string{
		"DATABRICKS_HOST":   w.URL,
		"DATABRICKS_JOB_ID": strconv.FormatInt(w.JobID, 10),
		"DATABRICKS_TOKEN":  w.Token,
	}
}

// Close stops the stand-in; runs in progress are cancelled.
func (w *Workspace) Close() error {
	w.dbx.Close()
	return w.srv.Close()
}

// WriteSettings sets values in the Values of the local.settings.json file,
// keeping its comments and other settings. A missing file is made from
// template (local.settings.json.template, which names the worker runtime),
// or, without one, holds only the worker runtime and values.
func WriteSettings(file, template string, values map[string]string) error {
	raw, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		raw, err = os.ReadFile(template)
		if errors.Is(err, os.ErrNotExist) {
			raw, err = []byte(`{"IsEncrypted": false, "Values": {"FUNCTIONS_WORKER_RUNTIME": "custom"}}`), nil
		}
	}
	if err != nil {
		return err
	}
	v, err := hujson.Parse(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	var ops []map[string]any
	if v.Find("/Values") == nil {
		ops = append(ops, map[string]any{"op": "add", "path": "/Values", "value": map[string]any{}})
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		// "add" replaces a member that is there (RFC 6902).
		ops = append(ops, map[string]any{"op": "add", "path": "/Values/" + k, "value": values[k]})
	}
	patch, _ := json.Marshal(ops)
	if err := v.Patch(patch); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	return os.WriteFile(file, v.Pack(), 0o600)
}
