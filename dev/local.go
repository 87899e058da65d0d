package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"

	"github.com/nbtrace/nbtrace/dev/dbxserve"
	"github.com/nbtrace/nbtrace/dev/dbxstandin"
	"github.com/nbtrace/nbtrace/dev/stack"
)

// localTarget is the GOOS and GOARCH of a -local stage or check: this
// machine's, where func start runs the handler, unless -goos or -goarch
// say otherwise.
func localTarget(fs *flag.FlagSet) (goos, goarch string) {
	goos, goarch = runtime.GOOS, runtime.GOARCH
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "goos":
			goos = f.Value.String()
		case "goarch":
			goarch = f.Value.String()
		}
	})
	return goos, goarch
}

// serveDatabricks runs go run ./dev databricks: the Databricks stand-in on
// its own, with the notebook job deployed, for a handler func start runs.
// It prints the handler's settings for it, writes them into settings when
// set, and serves until ctx is done or SIGINT/SIGTERM arrives.
func serveDatabricks(ctx context.Context, root, addr, settings, runner, otlp string, stdout, stderr io.Writer) error {
	o := dbxserve.Options{RepoRoot: root, Addr: addr, OTLPEndpoint: otlp, Log: stderr}
	switch runner {
	case "python":
	case "none":
		o.Runner = dbxstandin.RunnerFunc(func(context.Context, dbxstandin.RunContext) error { return nil })
	default:
		return fmt.Errorf("-runner: %q is not python or none", runner)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	ws, err := dbxserve.Start(ctx, o)
	if err != nil {
		return err
	}
	defer ws.Close()
	values := ws.Settings()
	fmt.Fprintf(stdout, "Databricks stand-in %s, job %d (deployed from notebooks/), personal access token %s\n", ws.URL, ws.JobID, ws.Token)
	if runner == "python" {
		if python, ok, reason := stack.Python(root); ok {
			fmt.Fprintf(stdout, "Notebook runs: papermill with %s; executed notebooks in .nbtrace/runs/\n", python)
		} else {
			fmt.Fprintf(stdout, "Notebook runs: UNAVAILABLE, runs fail: %s (or -runner none)\n", reason)
		}
	}
	if settings != "" {
		if err := dbxserve.WriteSettings(settings, filepath.Join(root, "local.settings.json.template"), values); err != nil {
			return fmt.Errorf("write the settings: %w", err)
		}
		fmt.Fprintf(stdout, "Wrote DATABRICKS_HOST, DATABRICKS_JOB_ID and DATABRICKS_TOKEN into %s; stage with go run ./dev stage -local -settings %s\n", settings, settings)
	} else {
		fmt.Fprintln(stdout, "Put these in the Values of local.settings.json (or run with -settings local.settings.json to write them), then stage with go run ./dev stage -local:")
		for _, k := range []string{"DATABRICKS_HOST", "DATABRICKS_JOB_ID", "DATABRICKS_TOKEN"} {
			fmt.Fprintf(stdout, "    %q: %q,\n", k, values[k])
		}
	}
	fmt.Fprintln(stdout, "They hold while this runs; started again, it listens elsewhere and has a new job: write and stage again. Ctrl+C stops.")
	<-ctx.Done()
	return nil
}
