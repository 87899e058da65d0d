package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/nbtrace/nbtrace/dev/dbxstandin"
	"github.com/nbtrace/nbtrace/dev/entra"
)

// TestPostprovision runs azd's post-provision hook against the stand-in:
// it signs in as the developer, grants the app's identity the run, and
// names azd's subscription on every az call.
func TestPostprovision(t *testing.T) {
	const rid = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Databricks/workspaces/dbw"
	tenant := entra.NewTenant()
	developer := tenant.AddUser("dev@example.com")
	app := tenant.AddManagedIdentity("id-app")
	stand := dbxstandin.New(dbxstandin.Options{Azure: &dbxstandin.Azure{Tenant: tenant, ResourceID: rid, Contributors: []string{developer.ObjectID}}})
	srv := httptest.NewServer(stand)
	defer srv.Close()
	defer stand.Close()
	stand.SetBaseURL(srv.URL)
	env := map[string]string{
		"AZURE_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000001", "AZURE_RESOURCE_GROUP": "rg", "AZURE_FUNCTION_APP_NAME": "func-x",
		"AZURE_CLIENT_ID": app.ClientID, "DATABRICKS_HOST": srv.URL, "DATABRICKS_AZURE_RESOURCE_ID": rid,
		"APPLICATIONINSIGHTS_RESOURCE_ID": "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/microsoft.insights/components/appi",
		"DATABRICKS_TOKEN":                "dapi-must-not-be-used",
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
	if !strings.Contains(out.String(), "Databricks job "+jobID+" is ready") {
		t.Errorf("output %q", out.String())
	}

	// Outside azd: a clear error naming what is missing.
	err = runWith(context.Background(), []string{"-azd-postprovision"}, func(string) string { return "" }, commands, nil, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "AZURE_SUBSCRIPTION_ID") {
		t.Errorf("without azd's environment: %v", err)
	}
}
