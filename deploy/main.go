// Command deploy puts the notebook job into a Databricks workspace: it
// uploads notebooks/, stores telemetry secrets in a secret scope, creates
// the job or updates the one of the same name, and lets the app's managed
// identity run it (-app-client-id). It prints the job id, and can write it
// where the app reads it.
//
//	DATABRICKS_HOST=https://adb-….azuredatabricks.net go run ./deploy -settings local.settings.json
//
// It signs in as the handler does: DATABRICKS_TOKEN locally, else a
// managed identity (AZURE_CLIENT_ID) or the default Azure credential chain
// (az login), sending DATABRICKS_AZURE_RESOURCE_ID with a management token
// so that a Contributor of the workspace is let in. Run by azd after
// provisioning, or by hand.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/tailscale/hujson"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/nbtrace/nbtrace/handler/databricks"
	"github.com/nbtrace/nbtrace/handler/databricks/deploy"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "deploy:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("deploy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := deploy.DefaultOptions(".")
	fs.StringVar(&o.NotebookDir, "notebooks", o.NotebookDir, "the notebook folder to upload")
	fs.StringVar(&o.Entry, "entry", o.Entry, "the notebook the job runs")
	fs.StringVar(&o.Requirements, "requirements", o.Requirements, "pinned PyPI packages installed on the job cluster")
	fs.StringVar(&o.JobName, "job-name", o.JobName, "the job's name; an existing job of this name is updated")
	fs.StringVar(&o.WorkspaceDir, "workspace-dir", o.WorkspaceDir, "where the notebooks go in the workspace")
	fs.StringVar(&o.SparkVersion, "spark-version", o.SparkVersion, "Databricks Runtime of the job cluster")
	fs.StringVar(&o.NodeType, "node-type", o.NodeType, "VM size of the single-node job cluster")
	fs.StringVar(&o.AppClientID, "app-client-id", "", "client id of the app's managed identity: added to the workspace and granted CAN_MANAGE_RUN on the job")
	settings := fs.String("settings", "", "a local.settings.json to write DATABRICKS_JOB_ID into")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cfg, err := databricks.ConnectionFromEnv(getenv)
	if err != nil {
		return err
	}
	spec, err := deploy.NewJobSpec(getenv, o)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	id, err := deploy.Deploy(ctx, databricks.New(cfg, noop.NewTracerProvider(), propagation.TraceContext{}, databricks.WithLogger(log)), spec)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "job %s is %d\n", o.JobName, id)
	fmt.Fprintf(stdout, "DATABRICKS_JOB_ID=%d\n", id)
	if *settings != "" {
		if err := writeJobID(*settings, id); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wrote DATABRICKS_JOB_ID to %s\n", *settings)
	}
	return nil
}

// writeJobID sets Values.DATABRICKS_JOB_ID in a local.settings.json,
// keeping its comments; a missing file is created.
func writeJobID(file string, id int64) error {
	raw, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		raw = []byte(`{"IsEncrypted": false, "Values": {}}`)
	} else if err != nil {
		return err
	}
	v, err := hujson.Parse(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	op := "add"
	if v.Find("/Values/DATABRICKS_JOB_ID") != nil {
		op = "replace"
	}
	patch, _ := json.Marshal([]map[string]any{{"op": op, "path": "/Values/DATABRICKS_JOB_ID", "value": strconv.FormatInt(id, 10)}})
	if err := v.Patch(patch); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return os.WriteFile(filepath.Clean(file), v.Pack(), 0o600)
}
