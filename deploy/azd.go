package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/nbtrace/nbtrace/handler/databricks/deploy"
)

// commandRunner runs a command line and returns its standard output.
type commandRunner func(ctx context.Context, name string, args ...string) (string, error)

// runCommand runs name (az, azd: found on PATH, az.cmd on Windows too).
func runCommand(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args[:min(len(args), 3)], " "), err, strings.TrimSpace(errOut.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// azdSettings are the azd environment values the post-provision step
// needs: infra/main.bicep's outputs and azd's own.
var azdSettings = []string{"AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZURE_FUNCTION_APP_NAME", "AZURE_CLIENT_ID",
	"DATABRICKS_HOST", "DATABRICKS_AZURE_RESOURCE_ID", "APPLICATIONINSIGHTS_RESOURCE_ID",
	"DATABRICKS_ACCESS_CONNECTOR_ID", "DATABRICKS_INGESTION_IDENTITY_ID"}

// ingestionCredential names the Unity Catalog service credential the
// post-provision step makes for infra/'s ingestion identity, unless
// -ingestion-credential names another.
const ingestionCredential = "nbtrace-ingestion"

// azdOptions reads azd's environment (azdSettings) and sets what the
// deploy step takes from it: the app's identity to grant the run, and the
// service credential for the access connector and ingestion identity that
// infra/ made. The error names every missing value.
func azdOptions(getenv func(string) string, o deployOptions) (map[string]string, deployOptions, error) {
	env := map[string]string{}
	var missing []string
	for _, k := range azdSettings {
		if env[k] = getenv(k); env[k] == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return nil, o, fmt.Errorf("the post-provision step runs under azd (azd provision, azd up); missing: %s", strings.Join(missing, ", "))
	}
	o.AppClientID = env["AZURE_CLIENT_ID"]
	o.Ingestion = deploy.ServiceCredential{Name: cmp.Or(o.Ingestion.Name, ingestionCredential),
		AccessConnectorID: env["DATABRICKS_ACCESS_CONNECTOR_ID"], ManagedIdentityID: env["DATABRICKS_INGESTION_IDENTITY_ID"]}
	return env, o, nil
}

// postprovision is azd's post-provision hook, the same on every OS: it
// reads the App Insights connection string from the resource, deploys
// the notebook job signed in as the deploying user through the Azure CLI
// (let in as a Contributor of the workspace), lets the app's identity run
// it, gives the job the service credential for infra/'s ingestion
// identity, and stores the job id in the azd environment (so the next
// provision keeps it) and in the Function App's settings. Every az call
// names azd's subscription: the Azure CLI's default may be another one.
func postprovision(ctx context.Context, getenv func(string) string, o deployOptions, run commandRunner, cred azcore.TokenCredential, stdout, stderr io.Writer) error {
	env, o, err := azdOptions(getenv, o)
	if err != nil {
		return err
	}
	sub := env["AZURE_SUBSCRIPTION_ID"]
	cs, err := run(ctx, "az", "resource", "show", "--ids", env["APPLICATIONINSIGHTS_RESOURCE_ID"],
		"--query", "properties.ConnectionString", "--output", "tsv", "--subscription", sub)
	if err != nil {
		return fmt.Errorf("read the Application Insights connection string: %w", err)
	}
	if cred == nil {
		if cred, err = azidentity.NewAzureCLICredential(&azidentity.AzureCLICredentialOptions{
			TenantID: getenv("AZURE_TENANT_ID"), Subscription: sub}); err != nil {
			return err
		}
	}
	// Signed in as the deploying user, not as the app's identity, whose
	// client id is the one granted the run.
	deployEnv := func(k string) string {
		switch k {
		case "APPLICATIONINSIGHTS_CONNECTION_STRING":
			return cs
		case "DATABRICKS_TOKEN", "AZURE_CLIENT_ID":
			return ""
		}
		return getenv(k)
	}
	id, err := deployJob(ctx, deployEnv, o, cred, stderr)
	if err != nil {
		return err
	}
	jobID := fmt.Sprint(id)
	if _, err := run(ctx, "azd", "env", "set", "DATABRICKS_JOB_ID", jobID); err != nil {
		return fmt.Errorf("store the job id in the azd environment: %w", err)
	}
	if _, err := run(ctx, "az", "functionapp", "config", "appsettings", "set", "--resource-group", env["AZURE_RESOURCE_GROUP"],
		"--name", env["AZURE_FUNCTION_APP_NAME"], "--settings", "DATABRICKS_JOB_ID="+jobID, "--output", "none", "--subscription", sub); err != nil {
		return fmt.Errorf("set DATABRICKS_JOB_ID on the Function App: %w", err)
	}
	fmt.Fprintf(stdout, "Databricks job %s is ready; the app starts it with the trace of each notebook request.\n", jobID)
	return nil
}
