// Command deploy puts the notebook job into a Databricks workspace: it
// uploads notebooks/ with the notebook's settings file, stores telemetry
// secrets in a secret scope, creates the job or updates the one of the
// same name, lets the app's managed identity run it (-app-client-id), and
// gives the job the Unity Catalog service credential the notebook signs in
// to Application Insights with (-ingestion-credential). It prints the job
// id, and can write it where the app reads it.
//
//	DATABRICKS_HOST=https://adb-….azuredatabricks.net go run ./deploy -settings local.settings.json
//
// It signs in as the handler does: DATABRICKS_TOKEN locally, else a
// managed identity (AZURE_CLIENT_ID) or the default Azure credential chain
// (az login), sending DATABRICKS_AZURE_RESOURCE_ID with a management token
// so that a Contributor of the workspace is let in. Run by hand, or by azd
// after provisioning as `go run ./deploy -azd-postprovision` (azd.go).
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

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
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

// deployOptions are the deploy step's inputs besides the environment.
type deployOptions = deploy.Options

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return runWith(ctx, args, getenv, runCommand, nil, stdout, stderr)
}

// runWith is run with the commands and the Azure credential of the
// post-provision step given (nil: the Azure CLI's sign-in).
func runWith(ctx context.Context, args []string, getenv func(string) string, commands commandRunner, cred azcore.TokenCredential, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("deploy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := deploy.DefaultOptions(".")
	fs.StringVar(&o.NotebookDir, "notebooks", o.NotebookDir, "the notebook folder to upload")
	fs.StringVar(&o.Entry, "entry", o.Entry, "the notebook the job runs")
	fs.StringVar(&o.Requirements, "requirements", o.Requirements, "pinned PyPI packages installed on the job cluster")
	fs.StringVar(&o.JobName, "job-name", o.JobName, "the job's name; an existing job of this name is updated")
	fs.StringVar(&o.WorkspaceDir, "workspace-dir", o.WorkspaceDir, "where the notebooks go in the workspace")
	fs.Func("compute", "what the job runs on: serverless (starts in under a minute) or classic (a new job cluster per run, minutes to start; for workspaces without serverless); default serverless, or DATABRICKS_COMPUTE", func(v string) error {
		o.Compute = deploy.Compute(v)
		return nil
	})
	fs.StringVar(&o.EnvironmentVersion, "environment-version", o.EnvironmentVersion, "serverless environment version of the job")
	fs.StringVar(&o.SparkVersion, "spark-version", o.SparkVersion, "Databricks Runtime of the job cluster (classic)")
	fs.StringVar(&o.NodeType, "node-type", o.NodeType, "VM size of the single-node job cluster (classic)")
	fs.StringVar(&o.AppClientID, "app-client-id", "", "client id of the app's managed identity: added to the workspace and granted CAN_MANAGE_RUN on the job")
	fs.StringVar(&o.Ingestion.Name, "ingestion-credential", "", "name of the Unity Catalog service credential the notebook signs in to Application Insights with: created, or pointed at -access-connector-id and -ingestion-identity-id, and granted (ACCESS) to the job's run-as principal; empty: none (-azd-postprovision: "+ingestionCredential+")")
	fs.StringVar(&o.Ingestion.AccessConnectorID, "access-connector-id", "", "ARM id of the Azure Databricks Access Connector that holds the ingestion identity, for -ingestion-credential (azd: DATABRICKS_ACCESS_CONNECTOR_ID)")
	fs.StringVar(&o.Ingestion.ManagedIdentityID, "ingestion-identity-id", "", "ARM id of the user-assigned managed identity, held by the access connector, that -ingestion-credential signs in as: Monitoring Metrics Publisher on Application Insights (azd: DATABRICKS_INGESTION_IDENTITY_ID)")
	settings := fs.String("settings", "", "a local.settings.json to write DATABRICKS_JOB_ID into")
	azdHook := fs.Bool("azd-postprovision", false, "run as azd's post-provision hook: deploy as the Azure CLI's user, let the app's identity run the job, give the job the service credential for infra/'s ingestion identity, store the job id in azd and the app's settings")
	if c := getenv("DATABRICKS_COMPUTE"); c != "" {
		o.Compute = deploy.Compute(c)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.Ingestion.Name == "" && !*azdHook && (o.Ingestion.AccessConnectorID != "" || o.Ingestion.ManagedIdentityID != "") {
		return errors.New("-access-connector-id and -ingestion-identity-id are for -ingestion-credential, which names the service credential")
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if *azdHook {
		return postprovision(ctx, getenv, o, commands, cred, stdout, stderr)
	}
	id, err := deployJob(ctx, getenv, o, nil, stderr)
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

// deployJob puts the job into the workspace of the environment's settings,
// signed in with cred when it is not nil.
func deployJob(ctx context.Context, getenv func(string) string, o deployOptions, cred azcore.TokenCredential, stderr io.Writer) (int64, error) {
	cfg, err := databricks.ConnectionFromEnv(getenv)
	if err != nil {
		return 0, err
	}
	spec, err := deploy.NewJobSpec(getenv, o)
	if err != nil {
		return 0, err
	}
	opts := []databricks.Option{databricks.WithLogger(slog.New(slog.NewTextHandler(stderr, nil)))}
	if cred != nil {
		opts = append(opts, databricks.WithCredential(cred))
	}
	return deploy.Deploy(ctx, databricks.New(cfg, noop.NewTracerProvider(), propagation.TraceContext{}, opts...), spec)
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
