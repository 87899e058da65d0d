package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nbtrace/nbtrace/dev/dbxstandin"
	"github.com/nbtrace/nbtrace/dev/entra"
	"github.com/nbtrace/nbtrace/handler/databricks/deploy"
)

// TestPostprovision runs azd's post-provision hook against the stand-in:
// it signs in as the developer, grants the app's identity the run, makes
// the service credential for infra/'s ingestion identity, and names azd's
// subscription on every az call.
func TestPostprovision(t *testing.T) {
	const rid = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Databricks/workspaces/dbw"
	tenant := entra.NewTenant()
	developer := tenant.AddUser("dev@example.com")
	app := tenant.AddManagedIdentity("id-app")
	ingest := tenant.AddManagedIdentity("id-ingest")
	connector := tenant.ResourceGroup + "/providers/Microsoft.Databricks/accessConnectors/dbac-x"
	stand := dbxstandin.New(dbxstandin.Options{Azure: &dbxstandin.Azure{Tenant: tenant, ResourceID: rid, Contributors: []string{developer.ObjectID},
		AccessConnectors: map[string][]string{connector: {ingest.ResourceID}}}})
	srv := httptest.NewServer(stand)
	defer srv.Close()
	defer stand.Close()
	stand.SetBaseURL(srv.URL)
	env := map[string]string{
		"AZURE_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000001", "AZURE_RESOURCE_GROUP": "rg", "AZURE_FUNCTION_APP_NAME": "func-x",
		"AZURE_CLIENT_ID": app.ClientID, "DATABRICKS_HOST": srv.URL, "DATABRICKS_AZURE_RESOURCE_ID": rid,
		"APPLICATIONINSIGHTS_RESOURCE_ID": "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/microsoft.insights/components/appi",
		"DATABRICKS_ACCESS_CONNECTOR_ID":  connector, "DATABRICKS_INGESTION_IDENTITY_ID": ingest.ResourceID,
		"DATABRICKS_TOKEN": "dapi-must-not-be-used",
	}
	var calls [][]string
	commands := func(_ context.Context, name string, args ...string) (string, error) {
		calls = append(calls, append([]string{name}, args...))
		if name == "az" && args[0] == "resource" {
			return "InstrumentationKey=00000000-0000-0000-0000-0000000000a1;IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/", nil
		}
		return "", nil
	}
	var out bytes.Buffer
	err := runWith(context.Background(), []string{"-azd-postprovision", "-notebooks", "../notebooks", "-requirements", "../notebooks/requirements-job.txt"},
		func(k string) string { return env[k] }, commands, tenant.Credential(developer), &out, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var jobID string
	for _, c := range calls {
		if c[0] == "az" && !slices.Contains(c, "--subscription") {
			t.Errorf("%v does not name azd's subscription", c)
		}
		if c[0] == "azd" {
			if len(c) != 5 || c[3] != "DATABRICKS_JOB_ID" {
				t.Errorf("azd call %v", c)
			}
			jobID = c[4]
		}
	}
	if jobID == "" || !slices.ContainsFunc(calls, func(c []string) bool { return slices.Contains(c, "DATABRICKS_JOB_ID="+jobID) }) {
		t.Errorf("the job id did not reach azd and the app's settings: %v", calls)
	}
	for _, r := range stand.Requests() {
		if strings.Contains(r.Header.Get("Authorization"), "dapi") {
			t.Errorf("%s %s signed in with DATABRICKS_TOKEN, not as the developer", r.Method, r.Path)
		}
	}
	// The app's identity may now run the job.
	perms := stand.Requests()
	granted := false
	for _, r := range perms {
		granted = granted || (r.Method == "PATCH" && strings.Contains(string(r.Body), app.ClientID) && strings.Contains(string(r.Body), "CAN_MANAGE_RUN"))
	}
	if !granted {
		t.Error("the app's identity was not granted CAN_MANAGE_RUN")
	}
	// The service credential names infra/'s access connector and identity.
	if !slices.ContainsFunc(perms, func(r dbxstandin.Request) bool {
		return strings.Contains(string(r.Body), connector) && strings.Contains(string(r.Body), ingest.ResourceID)
	}) {
		t.Error("no request named the access connector and the ingestion identity")
	}
	if !strings.Contains(out.String(), "Databricks job "+jobID+" is ready") {
		t.Errorf("output %q", out.String())
	}

	// Outside azd: a clear error naming what is missing.
	err = runWith(context.Background(), []string{"-azd-postprovision"}, func(string) string { return "" }, commands, nil, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "AZURE_SUBSCRIPTION_ID") {
		t.Errorf("without azd's environment: %v", err)
	}
}

// TestPostprovisionPassesTheIngestionCredential: infra/'s access connector
// and ingestion identity (main.bicep's DATABRICKS_ACCESS_CONNECTOR_ID and
// DATABRICKS_INGESTION_IDENTITY_ID) reach the deploy step as the service
// credential nbtrace-ingestion, or the name -ingestion-credential gives;
// without them the hook names them as missing.
func TestPostprovisionPassesTheIngestionCredential(t *testing.T) {
	const (
		rg        = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-x"
		connector = rg + "/providers/Microsoft.Databricks/accessConnectors/dbac-x"
		identity  = rg + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-ingest-x"
		appID     = "00000000-0000-0000-0000-0000000000a2"
	)
	env := map[string]string{
		"AZURE_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000001", "AZURE_RESOURCE_GROUP": "rg-x", "AZURE_FUNCTION_APP_NAME": "func-x",
		"AZURE_CLIENT_ID": appID, "DATABRICKS_HOST": "https://adb-1.2.azuredatabricks.net",
		"DATABRICKS_AZURE_RESOURCE_ID":    rg + "/providers/Microsoft.Databricks/workspaces/dbw-x",
		"APPLICATIONINSIGHTS_RESOURCE_ID": rg + "/providers/microsoft.insights/components/appi-x",
		"DATABRICKS_ACCESS_CONNECTOR_ID":  connector, "DATABRICKS_INGESTION_IDENTITY_ID": identity,
	}
	for _, tc := range []struct {
		name, flagName, wantName string
	}{
		{name: "default", wantName: "nbtrace-ingestion"},
		{name: "named by the flag", flagName: "other", wantName: "other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := deploy.DefaultOptions("..")
			in.Ingestion.Name = tc.flagName
			_, o, err := azdOptions(func(k string) string { return env[k] }, in)
			if err != nil {
				t.Fatal(err)
			}
			want := deploy.ServiceCredential{Name: tc.wantName, AccessConnectorID: connector, ManagedIdentityID: identity}
			if diff := cmp.Diff(want, o.Ingestion); diff != "" {
				t.Errorf("o.Ingestion (-want +got):\n%s", diff)
			}
			if o.AppClientID != appID {
				t.Errorf("o.AppClientID = %q, want %q", o.AppClientID, appID)
			}
		})
	}
	for _, k := range []string{"DATABRICKS_ACCESS_CONNECTOR_ID", "DATABRICKS_INGESTION_IDENTITY_ID"} {
		t.Run("without "+k, func(t *testing.T) {
			_, _, err := azdOptions(func(n string) string {
				if n == k {
					return ""
				}
				return env[n]
			}, deploy.DefaultOptions(".."))
			if err == nil || !strings.Contains(err.Error(), k) {
				t.Errorf("error %v does not name %s", err, k)
			}
		})
	}
}

// TestAzdSettingsAreInfraOutputs: every value the hook requires, but the
// subscription azd sets itself, is an output of infra/main.bicep, so a
// provision always gives it.
func TestAzdSettingsAreInfraOutputs(t *testing.T) {
	b, err := os.ReadFile("../infra/main.bicep")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range azdSettings {
		if k == "AZURE_SUBSCRIPTION_ID" {
			continue
		}
		if !strings.Contains(string(b), "\noutput "+k+" string = ") {
			t.Errorf("the post-provision step needs %s, which infra/main.bicep does not output", k)
		}
	}
}
