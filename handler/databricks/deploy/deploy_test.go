package deploy

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/databricks/databricks-sdk-go/client"
	"github.com/databricks/databricks-sdk-go/service/catalog"
	"github.com/databricks/databricks-sdk-go/service/compute"
	"github.com/databricks/databricks-sdk-go/service/iam"
	"github.com/databricks/databricks-sdk-go/service/jobs"
	"github.com/databricks/databricks-sdk-go/service/workspace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/nbtrace/nbtrace/dev/dbxstandin"
	"github.com/nbtrace/nbtrace/dev/entra"
	"github.com/nbtrace/nbtrace/handler/databricks"
)

const resourceID = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Databricks/workspaces/dbw"

type workspaceFixture struct {
	stand     *dbxstandin.Server
	url       string
	tenant    *entra.Tenant
	developer entra.Principal
	app       entra.Principal
	// ingest and ingest2 are the identities the access connector holds.
	ingest, ingest2 entra.Principal
	connector       string
	runs            chan dbxstandin.RunContext
}

// newWorkspace starts an Azure workspace stand-in: the developer is a
// Contributor of it (so Databricks makes them an admin on their first
// call); the app's identity is not.
func newWorkspace(t *testing.T) *workspaceFixture {
	t.Helper()
	f := &workspaceFixture{tenant: entra.NewTenant()}
	f.developer = f.tenant.AddUser("dev@example.com")
	f.app = f.tenant.AddManagedIdentity("id-app")
	f.ingest, f.ingest2 = f.tenant.AddManagedIdentity("id-ingest"), f.tenant.AddManagedIdentity("id-ingest-2")
	f.connector = f.tenant.ResourceGroup + "/providers/Microsoft.Databricks/accessConnectors/dbac"
	f.runs = make(chan dbxstandin.RunContext, 10)
	runner := dbxstandin.RunnerFunc(func(_ context.Context, rc dbxstandin.RunContext) error { f.runs <- rc; return nil })
	f.stand = dbxstandin.New(dbxstandin.Options{Runner: runner, Azure: &dbxstandin.Azure{Tenant: f.tenant, ResourceID: resourceID,
		Contributors: []string{f.developer.ObjectID}, AccessConnectors: map[string][]string{f.connector: {f.ingest.ResourceID, f.ingest2.ResourceID}}}})
	srv := httptest.NewServer(f.stand)
	f.stand.SetBaseURL(srv.URL)
	f.url = srv.URL
	t.Cleanup(func() { srv.Close(); f.stand.Close() })
	return f
}

// client signs in as p: a Contributor of the workspace with its ARM id,
// the app's identity (no role on the workspace resource) without.
func (f *workspaceFixture) client(p entra.Principal, jobID int64) *databricks.Client {
	rid := resourceID
	if p == f.app {
		rid = ""
	}
	return databricks.New(databricks.Config{Host: f.url, JobID: jobID, AzureResourceID: rid, HTTPTimeout: 5 * time.Second, RetryTimeout: 5 * time.Second},
		noop.NewTracerProvider(), propagation.TraceContext{}, databricks.WithCredential(f.tenant.Credential(p)))
}

// deploy deploys spec as the developer and returns the job and the
// developer's API client.
func (f *workspaceFixture) deploy(t *testing.T, spec JobSpec) (int64, *client.DatabricksClient) {
	t.Helper()
	id, err := Deploy(context.Background(), f.client(f.developer, 0), spec)
	if err != nil {
		t.Fatal(err)
	}
	api, err := f.client(f.developer, id).API(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return id, api
}

func testSpec() JobSpec {
	return JobSpec{Name: "test-job", WorkspaceDir: "/Shared/t", Entry: "nb.ipynb", SparkVersion: RuntimeVersion, NodeType: "Standard_D4ds_v5",
		Compute: ComputeServerless, EnvironmentVersion: EnvironmentVersion,
		Files:         map[string][]byte{"nb.ipynb": []byte(`{"cells":[1]}`), "mod.py": []byte("# Databricks notebook source\nx = 1\n")},
		Libraries:     []string{"opentelemetry-sdk==1.45.1"},
		EnvVars:       map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://otlp.example.com"},
		SecretEnvVars: map[string]string{"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=secret"},
		SecretScope:   "nbtrace",
		Parameters:    map[string]string{"dataset": "", "load_seconds": "1"},
	}
}

// TestDeployAsAContributorAndGrantTheApp: the deploying developer, not yet
// a workspace user, is let in with the management token and the ARM id on
// every call; the app's identity becomes a service principal of the
// workspace with CAN_MANAGE_RUN on the job and nothing more: it starts and
// reads runs, it cannot change the job.
func TestDeployAsAContributorAndGrantTheApp(t *testing.T) {
	f := newWorkspace(t)
	spec := testSpec()
	spec.AppClientID = f.app.ClientID
	ctx := context.Background()
	id, err := Deploy(ctx, f.client(f.developer, 0), spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range f.stand.Requests() {
		if strings.HasPrefix(r.Path, "/api/") && (r.Header.Get(dbxstandin.ManagementTokenHeader) == "" || r.Header.Get(dbxstandin.ResourceIDHeader) != resourceID) {
			t.Errorf("%s %s lacks the management token or the workspace's ARM id", r.Method, r.Path)
		}
	}
	app := f.client(f.app, id)
	runID, err := app.RunNow(ctx, map[string]string{"dataset": "d"}, "t1")
	if err != nil {
		t.Fatalf("the app's identity cannot start a run: %v", err)
	}
	if _, err := app.GetRun(ctx, runID); err != nil {
		t.Fatalf("the app's identity cannot read its run: %v", err)
	}
	j, _ := app.Jobs(context.Background())
	err = j.Reset(ctx, jobs.ResetJob{JobId: id, NewSettings: spec.Settings("/Shared/t/nb")})
	if err == nil || !strings.Contains(err.Error(), "does not have Manage or Owner or Admin permissions") {
		t.Errorf("the app's identity could change the job: %v", err)
	}
	// Deploying again keeps the one grant and the one service principal.
	if again, err := Deploy(ctx, f.client(f.developer, 0), spec); err != nil || again != id {
		t.Fatalf("redeploy: job %d, %v", again, err)
	}
	perms, err := func() (*jobs.JobPermissions, error) {
		dj, _ := f.client(f.developer, id).Jobs(context.Background())
		return dj.GetPermissions(ctx, jobs.GetJobPermissionsRequest{JobId: itoa(id)})
	}()
	if err != nil {
		t.Fatal(err)
	}
	var grants []string
	for _, ac := range perms.AccessControlList {
		if ac.ServicePrincipalName == f.app.ClientID {
			grants = append(grants, string(ac.AllPermissions[0].PermissionLevel))
		}
	}
	if len(grants) != 1 || grants[0] != "CAN_MANAGE_RUN" {
		t.Errorf("the app's grants on the job: %v, want [CAN_MANAGE_RUN]", grants)
	}
}

// TestWithoutTheGrantTheAppIsRefused: an app identity that is a plain
// workspace user, deployed for without -app-client-id, cannot start runs:
// the grant is what lets it.
func TestWithoutTheGrantTheAppIsRefused(t *testing.T) {
	f := newWorkspace(t)
	ctx := context.Background()
	id, api := f.deploy(t, testSpec())
	// The identity is a workspace user, but holds nothing on the job.
	if _, err := iam.NewServicePrincipalsV2(api).Create(ctx, iam.CreateServicePrincipalRequest{ApplicationId: f.app.ClientID}); err != nil {
		t.Fatal(err)
	}
	_, err := f.client(f.app, id).RunNow(ctx, nil, "")
	if err == nil || !strings.Contains(err.Error(), "does not have Manage Run or Owner or Admin permissions on job") {
		t.Errorf("run-now without CAN_MANAGE_RUN: %v", err)
	}
}

// TestDeployIsIdempotent: a second deploy updates the one job, replaces
// the notebook and the module (a workspace file, so the notebook can
// import it), and keeps secrets out of the job definition.
func TestDeployIsIdempotent(t *testing.T) {
	f := newWorkspace(t)
	ctx := context.Background()
	spec := testSpec()
	first, err := Deploy(ctx, f.client(f.developer, 0), spec)
	if err != nil {
		t.Fatal(err)
	}
	spec.Files["mod.py"] = []byte("x = 2\n")
	id, err := Deploy(ctx, f.client(f.developer, 0), spec)
	if err != nil {
		t.Fatal(err)
	}
	if id != first {
		t.Errorf("redeploy made job %d, want the existing %d", id, first)
	}
	if string(f.stand.File("/Shared/t/nb")) != `{"cells":[1]}` || string(f.stand.File("/Shared/t/mod.py")) != "x = 2\n" {
		t.Error("the notebook folder was not uploaded again (notebook without .ipynb, module as a file)")
	}
	api, err := f.client(f.developer, id).API(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ws := workspace.NewWorkspace(api)
	for p, want := range map[string]workspace.ObjectType{"/Shared/t/nb": workspace.ObjectTypeNotebook, "/Shared/t/mod.py": workspace.ObjectTypeFile} {
		info, err := ws.GetStatusByPath(ctx, p)
		if err != nil || info.ObjectType != want {
			t.Errorf("%s: %v (%v), want %s", p, info, err, want)
		}
	}
	j, err := jobs.NewJobs(api).Get(ctx, jobs.GetJobRequest{JobId: id})
	if err != nil {
		t.Fatal(err)
	}
	defaults := map[string]string{}
	for _, p := range j.Settings.Parameters {
		defaults[p.Name] = p.Default
	}
	want := map[string]string{"traceparent": "", "tracestate": "", "baggage": "", "job_id": "{{job.id}}", "run_id": "{{job.run_id}}", "dataset": "", "load_seconds": "1"}
	for k, v := range want {
		if d, ok := defaults[k]; !ok || d != v {
			t.Errorf("parameter %s default %q (defined %v), want %q", k, d, ok, v)
		}
	}
	// Serverless by default: an environment with the packages, no cluster.
	task := j.Settings.Tasks[0]
	if task.NotebookTask.NotebookPath != "/Shared/t/nb" || task.JobClusterKey != "" || len(task.Libraries) != 0 || task.EnvironmentKey != "nbtrace" ||
		len(j.Settings.JobClusters) != 0 || j.Settings.PerformanceTarget != jobs.PerformanceTargetPerformanceOptimized {
		t.Errorf("task = %+v, job clusters %v, performance target %q", task, j.Settings.JobClusters, j.Settings.PerformanceTarget)
	}
	if envs := j.Settings.Environments; len(envs) != 1 || envs[0].Spec.EnvironmentVersion != EnvironmentVersion ||
		!slices.Equal(envs[0].Spec.Dependencies, []string{"opentelemetry-sdk==1.45.1"}) {
		t.Errorf("environments = %+v", envs)
	}
	// The settings file beside the notebook: settings, and where the
	// secrets are, never their values.
	var sf struct {
		Settings map[string]string
		Secrets  map[string]struct{ Scope, Key string }
	}
	raw := f.stand.File("/Shared/t/" + SettingsFile)
	if err := json.Unmarshal(raw, &sf); err != nil {
		t.Fatalf("settings file %q: %v", raw, err)
	}
	if sf.Settings["OTEL_EXPORTER_OTLP_ENDPOINT"] != "https://otlp.example.com" ||
		sf.Secrets["APPLICATIONINSIGHTS_CONNECTION_STRING"].Scope != "nbtrace" || sf.Secrets["APPLICATIONINSIGHTS_CONNECTION_STRING"].Key != "applicationinsights-connection-string" {
		t.Errorf("settings file = %s", raw)
	}
	b, _ := json.Marshal(j.Settings)
	for _, leak := range [][]byte{b, raw} {
		if strings.Contains(string(leak), "InstrumentationKey=secret") {
			t.Errorf("a secret is in the job definition or the settings file: %s", leak)
		}
	}

	// Classic on request: a dedicated single-node job cluster with the
	// packages as libraries.
	spec.Compute = ComputeClassic
	if _, err := Deploy(ctx, f.client(f.developer, 0), spec); err != nil {
		t.Fatal(err)
	}
	j, err = jobs.NewJobs(api).Get(ctx, jobs.GetJobRequest{JobId: id})
	if err != nil {
		t.Fatal(err)
	}
	task = j.Settings.Tasks[0]
	if task.JobClusterKey != "nbtrace" || len(task.Libraries) != 1 || task.Libraries[0].Pypi.Package != "opentelemetry-sdk==1.45.1" || task.EnvironmentKey != "" {
		t.Errorf("classic task = %+v", task)
	}
	cluster := j.Settings.JobClusters[0].NewCluster
	if cluster.DataSecurityMode != compute.DataSecurityModeDataSecurityModeDedicated || cluster.Kind != compute.KindClassicPreview || !cluster.IsSingleNode || len(cluster.SparkEnvVars) != 0 {
		t.Errorf("cluster: access mode %q, kind %q, single node %t, env %v", cluster.DataSecurityMode, cluster.Kind, cluster.IsSingleNode, cluster.SparkEnvVars)
	}
}

func itoa(id int64) string { return strconv.FormatInt(id, 10) }

func TestAppClientIDMustBeAGUID(t *testing.T) {
	f := newWorkspace(t)
	spec := testSpec()
	spec.AppClientID = "app'); drop"
	if _, err := Deploy(context.Background(), f.client(f.developer, 0), spec); err == nil || !strings.Contains(err.Error(), "not a GUID") {
		t.Errorf("err = %v", err)
	}
}

// TestRequirementsArePinnedAgainstTheRuntime: the job's packages say which
// runtime they were pinned against, and it is the one the job runs.
func TestRequirementsArePinnedAgainstTheRuntime(t *testing.T) {
	o := DefaultOptions("../../..")
	b, err := os.ReadFile(o.Requirements)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"serverless environment version " + EnvironmentVersion + " (deploy.EnvironmentVersion)", "Databricks Runtime 17.3 LTS\n# (" + RuntimeVersion} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s does not say it is pinned against %q", o.Requirements, want)
		}
	}
	libs, err := ReadRequirements(o.Requirements)
	if err != nil || len(libs) < 10 {
		t.Fatalf("%d requirements, %v", len(libs), err)
	}
	if o.SparkVersion != RuntimeVersion {
		t.Errorf("the job cluster runs %s", o.SparkVersion)
	}
}

// TestDeployLetsTheRunSignInToIngestion: the deploy step creates the
// service credential for the access connector's identity and grants the
// job's run-as principal ACCESS on it, so a run gets it (what
// dbutils.credentials hands notebook code); a second deploy changes
// nothing, one pointing at another identity updates the credential.
func TestDeployLetsTheRunSignInToIngestion(t *testing.T) {
	f := newWorkspace(t)
	ctx := context.Background()
	spec := testSpec()
	spec.AppClientID = f.app.ClientID
	spec.Ingestion = ServiceCredential{Name: "nbtrace-ingestion", AccessConnectorID: f.connector, ManagedIdentityID: f.ingest.ResourceID}
	id, api := f.deploy(t, spec)
	if again, _ := f.deploy(t, spec); again != id {
		t.Fatalf("a second deploy made job %d, want %d", again, id)
	}
	creds, err := catalog.NewCredentials(api).ListCredentialsAll(ctx, catalog.ListCredentialsRequest{Purpose: catalog.CredentialPurposeService})
	if err != nil {
		t.Fatal(err)
	}
	if len(creds) != 1 || creds[0].Name != "nbtrace-ingestion" || creds[0].AzureManagedIdentity == nil ||
		!strings.EqualFold(creds[0].AzureManagedIdentity.ManagedIdentityId, f.ingest.ResourceID) {
		t.Fatalf("service credentials %+v, want nbtrace-ingestion for %s", creds, f.ingest.ResourceID)
	}
	// The job's run-as principal holds ACCESS by grant, not only as the
	// credential's owner (ownership moves; the grant stays).
	grants, err := catalog.NewGrants(api).Get(ctx, catalog.GetGrantRequest{SecurableType: "credential", FullName: "nbtrace-ingestion"})
	if err != nil {
		t.Fatal(err)
	}
	granted := false
	for _, a := range grants.PrivilegeAssignments {
		granted = granted || (a.Principal == f.developer.Name && slices.Contains(a.Privileges, catalog.PrivilegeAccess))
	}
	if !granted {
		t.Errorf("grants %+v, want ACCESS for the run-as principal %s", grants.PrivilegeAssignments, f.developer.Name)
	}
	// The app's identity starts a run, which runs as the job's owner.
	run, err := jobs.NewJobs(must(f.client(f.app, id).API(context.Background()))).RunNow(ctx, jobs.RunNow{JobId: id})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case rc := <-f.runs:
		if rc.RunID != run.RunId || rc.ServiceCredentials["nbtrace-ingestion"] != f.ingest.ClientID {
			t.Errorf("run %d has service credentials %v, want nbtrace-ingestion as %s", rc.RunID, rc.ServiceCredentials, f.ingest.ClientID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the run did not start")
	}

	// Another identity of the connector: the deploy step points the
	// credential at it.
	other := f.ingest2
	spec.Ingestion.ManagedIdentityID = other.ResourceID
	f.deploy(t, spec)
	got, err := catalog.NewCredentials(api).GetCredentialByNameArg(ctx, "nbtrace-ingestion")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.EqualFold(got.AzureManagedIdentity.ManagedIdentityId, other.ResourceID) {
		t.Errorf("after the redeploy the credential names %s, want %s", got.AzureManagedIdentity.ManagedIdentityId, other.ResourceID)
	}
}

// TestDeployRefusesABadServiceCredential: ids that are not ARM ids of
// their kind are refused before anything changes; an identity the
// connector does not hold is refused by Databricks.
func TestDeployRefusesABadServiceCredential(t *testing.T) {
	f := newWorkspace(t)
	stranger := f.tenant.AddManagedIdentity("id-stranger")
	for _, tt := range []struct {
		name string
		cred ServiceCredential
		want string
	}{
		{"a connector id that is not one", ServiceCredential{Name: "c", AccessConnectorID: "dbac", ManagedIdentityID: f.ingest.ResourceID}, "not the ARM id of an access connector"},
		{"an identity id that is not one", ServiceCredential{Name: "c", AccessConnectorID: f.connector, ManagedIdentityID: f.ingest.ClientID}, "not the ARM id of a user-assigned identity"},
		{"an identity the connector does not hold", ServiceCredential{Name: "c", AccessConnectorID: f.connector, ManagedIdentityID: stranger.ResourceID}, "create service credential c"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			spec := testSpec()
			spec.Ingestion = tt.cred
			_, err := Deploy(context.Background(), f.client(f.developer, 0), spec)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestNotebookSettings: the telemetry settings reach the notebook, secrets
// through the scope; the Entra sign-in string, which a job cluster has no
// identity for, does not.
func TestNotebookSettings(t *testing.T) {
	env := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://otlp", "OTEL_TRACES_SAMPLER": "always_on",
		"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=k", "OTEL_EXPORTER_OTLP_HEADERS": "a=b",
		"APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=AAD"}
	spec, err := NewJobSpec(func(k string) string { return env[k] }, DefaultOptions("../../.."))
	if err != nil {
		t.Fatal(err)
	}
	if spec.EnvVars["OTEL_EXPORTER_OTLP_ENDPOINT"] != "https://otlp" || spec.EnvVars["OTEL_TRACES_SAMPLER"] != "always_on" ||
		spec.SecretEnvVars["APPLICATIONINSIGHTS_CONNECTION_STRING"] != "InstrumentationKey=k" || spec.SecretEnvVars["OTEL_EXPORTER_OTLP_HEADERS"] != "a=b" {
		t.Errorf("env %v, secrets %v", spec.EnvVars, spec.SecretEnvVars)
	}
	if _, ok := spec.EnvVars["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]; ok {
		t.Error("the app's Entra sign-in string was passed to the notebook")
	}

	// Signed in with a service credential, the notebook names it in its
	// settings; the connection string stays a secret, for a resource that
	// still takes keys.
	o := DefaultOptions("../../..")
	o.Ingestion = ServiceCredential{Name: "nbtrace-ingestion"}
	spec, err = NewJobSpec(func(k string) string { return env[k] }, o)
	if err != nil {
		t.Fatal(err)
	}
	if _, plain := spec.EnvVars["APPLICATIONINSIGHTS_CONNECTION_STRING"]; spec.EnvVars[IngestionCredentialSetting] != "nbtrace-ingestion" || plain {
		t.Errorf("settings %v", spec.EnvVars)
	}
	if spec.SecretEnvVars["APPLICATIONINSIGHTS_CONNECTION_STRING"] != "InstrumentationKey=k" {
		t.Errorf("secrets %v, want the connection string among them", spec.SecretEnvVars)
	}
}

// TestCreatedJobHasItsSettings: a first deploy creates the job with every
// field Settings sets, for each kind of compute (putJob copies them into
// jobs.CreateJob one by one; a field left out there would be missing
// until the next deploy reset the job).
func TestCreatedJobHasItsSettings(t *testing.T) {
	for _, compute := range []Compute{ComputeServerless, ComputeClassic} {
		t.Run(string(compute), func(t *testing.T) {
			f := newWorkspace(t)
			ctx := context.Background()
			spec := testSpec()
			spec.Compute = compute
			id, api := f.deploy(t, spec)
			j, err := jobs.NewJobs(api).Get(ctx, jobs.GetJobRequest{JobId: id})
			if err != nil {
				t.Fatal(err)
			}
			want := spec.Settings("/Shared/t/nb")
			want.Format = jobs.FormatMultiTask // set by Databricks on every job
			got, _ := json.Marshal(j.Settings)
			wantJSON, _ := json.Marshal(want)
			if string(got) != string(wantJSON) {
				t.Errorf("created job's settings\n got %s\nwant %s", got, wantJSON)
			}
		})
	}
}
