package deploy

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/databricks/databricks-sdk-go/apierr"
	"github.com/databricks/databricks-sdk-go/client"
	"github.com/databricks/databricks-sdk-go/service/catalog"
	"github.com/databricks/databricks-sdk-go/service/compute"
	"github.com/databricks/databricks-sdk-go/service/iam"
	"github.com/databricks/databricks-sdk-go/service/jobs"
	"github.com/databricks/databricks-sdk-go/service/workspace"

	"github.com/nbtrace/nbtrace/handler/databricks"
)

// JobSpec describes the notebook job the deploy step creates or updates.
type JobSpec struct {
	// Name identifies the job: the deploy step updates the one job of
	// this name, or creates it.
	Name string
	// WorkspaceDir receives the notebooks, such as /Shared/nbtrace.
	WorkspaceDir string
	// Files are the notebook folder's files by name: .ipynb notebooks are
	// imported as notebooks (without the extension, as Databricks names
	// them), other files as workspace files beside them, so the notebook
	// can import its Python module.
	Files map[string][]byte
	// Entry is the notebook the job runs, such as distributed_tracing.ipynb.
	Entry string
	// Libraries are pinned PyPI requirements the compute installs before
	// the notebook runs (a serverless environment's dependencies, a job
	// cluster's libraries): the notebook needs no %pip.
	Libraries []string
	// Compute is what the job runs on: ComputeServerless or ComputeClassic.
	Compute Compute
	// SparkVersion and NodeType of the single-node job cluster (classic).
	SparkVersion, NodeType string
	// EnvironmentVersion of the serverless environment (serverless).
	EnvironmentVersion string
	// EnvVars are the notebook's telemetry settings that are not secret
	// (such as the OTLP endpoint): written to SettingsFile beside the
	// notebook, which reads them on any compute.
	EnvVars map[string]string
	// SecretEnvVars are stored in the secret scope SecretScope; SettingsFile
	// names them, and the notebook reads them with dbutils.secrets: they
	// are never in its source, its settings file or the job.
	SecretEnvVars map[string]string
	SecretScope   string
	// Parameters are extra job parameters with their defaults, besides the
	// trace context and the run's ids.
	Parameters map[string]string
	// AppClientID is the application (client) id of the app's managed
	// identity, or "": it is made a service principal of the workspace
	// if it is not one yet, and granted CAN_MANAGE_RUN on the job, all it
	// needs to start runs and read them without being a workspace admin.
	AppClientID string
	// Ingestion, when its Name is set, is the Unity Catalog service
	// credential the notebook signs in to Application Insights with: the
	// deploy step creates it (or updates it to these ids) and grants the
	// job's run-as principal ACCESS on it.
	Ingestion ServiceCredential
}

// ServiceCredential is a Unity Catalog service credential for a managed
// identity held by an Azure Databricks Access Connector.
type ServiceCredential struct {
	// Name of the credential in the metastore, such as nbtrace-ingestion.
	Name string
	// AccessConnectorID is the connector's ARM id
	// (…/providers/Microsoft.Databricks/accessConnectors/<name>).
	AccessConnectorID string
	// ManagedIdentityID is the ARM id of the user-assigned identity the
	// connector holds (…/userAssignedIdentities/<name>).
	ManagedIdentityID string
}

// Compute is what the job runs on.
type Compute string

// Kinds of compute.
const (
	// ComputeServerless: serverless compute for jobs, which starts in
	// under a minute (performance-optimized, the default), with the
	// packages as the environment's dependencies.
	ComputeServerless Compute = "serverless"
	// ComputeClassic: a new single-node job cluster for each run, which
	// takes minutes to start; for workspaces without serverless compute.
	ComputeClassic Compute = "classic"
)

// SettingsFile is the notebook's settings file, written beside it.
const SettingsFile = "nbtrace_settings.json"

// EnvironmentVersion is the serverless environment the job runs in,
// version 4 (Python 3.12; protobuf 5.29.4 and the other packages
// notebooks/requirements-job.txt keeps at the versions it ships, as
// Databricks Runtime 17.3 LTS does).
const EnvironmentVersion = "4"

// TraceParameters are the job parameters that carry the trace context.
// Their default is empty: a run started without them starts its own trace,
// never a fixed fake one.
var TraceParameters = []string{"traceparent", "tracestate", "baggage"}

// Settings returns the job's settings.
func (s JobSpec) Settings(notebookPath string) jobs.JobSettings {
	params := []jobs.JobParameterDefinition{}
	for _, name := range TraceParameters {
		params = append(params, jobs.JobParameterDefinition{Name: name, Default: ""})
	}
	params = append(params,
		jobs.JobParameterDefinition{Name: "job_id", Default: "{{job.id}}"},
		jobs.JobParameterDefinition{Name: "run_id", Default: "{{job.run_id}}"})
	names := make([]string, 0, len(s.Parameters))
	for k := range s.Parameters {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		params = append(params, jobs.JobParameterDefinition{Name: k, Default: s.Parameters[k]})
	}
	settings := jobs.JobSettings{
		Name:              s.Name,
		Description:       "Runs the nbtrace notebook; started by the notebook function with the caller's trace context. Managed by go run ./deploy.",
		MaxConcurrentRuns: 20,
		Queue:             &jobs.QueueSettings{Enabled: true},
		Tags:              map[string]string{"app": "nbtrace"},
		Parameters:        params,
	}
	task := jobs.Task{TaskKey: "notebook", TimeoutSeconds: 3600,
		NotebookTask: &jobs.NotebookTask{NotebookPath: notebookPath, Source: jobs.SourceWorkspace}}
	if s.Compute == ComputeClassic {
		// A single-node cluster the current way (kind CLASSIC_PREVIEW with
		// is_single_node: Databricks sets the single-node conf and tags
		// itself), in dedicated access mode: it names an access mode, as
		// workspaces with legacy (no-isolation) modes disabled require, and
		// the mode runs notebooks with pip libraries and secrets as the
		// job's run-as identity.
		settings.JobClusters = []jobs.JobCluster{{JobClusterKey: "nbtrace", NewCluster: &compute.ClusterSpec{
			Kind: compute.KindClassicPreview, IsSingleNode: true, DataSecurityMode: compute.DataSecurityModeDataSecurityModeDedicated,
			SparkVersion: s.SparkVersion, NodeTypeId: s.NodeType,
		}}}
		task.JobClusterKey = "nbtrace"
		for _, l := range s.Libraries {
			task.Libraries = append(task.Libraries, compute.Library{Pypi: &compute.PythonPyPiLibrary{Package: l}})
		}
	} else {
		// Serverless: no cluster; the packages are the dependencies of a
		// job environment the notebook task names (jobs.JobSettings.
		// Environments: "If a jobs environment is specified, it will
		// override the notebook environment"), performance-optimized, the
		// mode that starts in under a minute.
		settings.Environments = []jobs.JobEnvironment{{EnvironmentKey: "nbtrace",
			Spec: &compute.Environment{EnvironmentVersion: s.EnvironmentVersion, Dependencies: s.Libraries}}}
		settings.PerformanceTarget = jobs.PerformanceTargetPerformanceOptimized
		task.EnvironmentKey = "nbtrace"
	}
	settings.Tasks = []jobs.Task{task}
	return settings
}

// NotebookSettings is the settings file the notebook reads beside it:
// its telemetry settings that are not secret, and where each secret is
// (scope and key), for dbutils.secrets.
func (s JobSpec) NotebookSettings() ([]byte, error) {
	type ref struct {
		Scope string `json:"scope"`
		Key   string `json:"key"`
	}
	f := struct {
		Settings map[string]string `json:"settings"`
		Secrets  map[string]ref    `json:"secrets"`
	}{Settings: map[string]string{}, Secrets: map[string]ref{}}
	for k, v := range s.EnvVars {
		f.Settings[k] = v
	}
	for k := range s.SecretEnvVars {
		f.Secrets[k] = ref{Scope: s.SecretScope, Key: secretKey(k)}
	}
	return json.MarshalIndent(f, "", "  ")
}

// secretKey is the secret's key for an environment variable.
func secretKey(env string) string { return strings.ToLower(strings.ReplaceAll(env, "_", "-")) }

// Deploy uploads the notebook folder, stores the secrets, creates the job
// or updates the one of the same name, and lets the app's identity run it.
// Running it again changes nothing but what changed. It returns the job
// id.
//
// Notebooks (.ipynb) are imported as notebooks without their extension,
// as Databricks names them; other files as workspace files (format RAW:
// AUTO over an existing file fails even with overwrite), so the notebook
// can import its Python module and a redeploy replaces both.
func Deploy(ctx context.Context, c *databricks.Client, spec JobSpec) (int64, error) {
	api, err := c.API(ctx)
	if err != nil {
		return 0, databricks.Error(err)
	}
	ws, secrets, jobsAPI := workspace.NewWorkspace(api), workspace.NewSecrets(api), jobs.NewJobs(api)
	if _, ok := spec.Files[spec.Entry]; !ok {
		return 0, fmt.Errorf("the notebook folder has no %s", spec.Entry)
	}
	if spec.AppClientID != "" && !guid.MatchString(spec.AppClientID) {
		return 0, fmt.Errorf("the app's client id %q is not a GUID", spec.AppClientID)
	}
	if err := spec.Ingestion.check(); err != nil {
		return 0, err
	}
	// The service credential first: a deployer who may not create it
	// learns so before the notebook's settings name it.
	if spec.Ingestion.Name != "" {
		if err := putServiceCredential(ctx, api, spec.Ingestion); err != nil {
			return 0, err
		}
	}
	if err := ws.MkdirsByPath(ctx, spec.WorkspaceDir); err != nil {
		return 0, fmt.Errorf("create %s: %w", spec.WorkspaceDir, err)
	}
	settingsFile, err := spec.NotebookSettings()
	if err != nil {
		return 0, err
	}
	files := maps.Clone(spec.Files)
	files[SettingsFile] = settingsFile
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		req := workspace.Import{Path: path.Join(spec.WorkspaceDir, name), Format: workspace.ImportFormatRaw, Overwrite: true,
			Content: base64.StdEncoding.EncodeToString(files[name])}
		if strings.HasSuffix(name, ".ipynb") {
			req.Path, req.Format = strings.TrimSuffix(req.Path, ".ipynb"), workspace.ImportFormatJupyter
		}
		if err := ws.Import(ctx, req); err != nil {
			return 0, fmt.Errorf("upload %s: %w", name, err)
		}
	}
	if len(spec.SecretEnvVars) > 0 {
		err := secrets.CreateScope(ctx, workspace.CreateScope{Scope: spec.SecretScope})
		if err != nil && !errors.Is(err, apierr.ErrResourceAlreadyExists) && !isAlreadyExists(err) {
			return 0, fmt.Errorf("create secret scope %s: %w", spec.SecretScope, err)
		}
		for k, v := range spec.SecretEnvVars {
			if err := secrets.PutSecret(ctx, workspace.PutSecret{Scope: spec.SecretScope, Key: secretKey(k), StringValue: v}); err != nil {
				return 0, fmt.Errorf("store secret for %s: %w", k, err)
			}
		}
	}
	id, err := putJob(ctx, jobsAPI, spec)
	if err != nil {
		return 0, err
	}
	if spec.AppClientID != "" {
		if err := grantRun(ctx, api, jobsAPI, id, spec.AppClientID); err != nil {
			return 0, err
		}
	}
	if spec.Ingestion.Name != "" {
		if err := grantCredential(ctx, api, jobsAPI, id, spec.Ingestion.Name); err != nil {
			return 0, err
		}
	}
	return id, nil
}

var (
	accessConnectorID = regexp.MustCompile(`(?i)^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Databricks/accessConnectors/[^/]+$`)
	userAssignedID    = regexp.MustCompile(`(?i)^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.ManagedIdentity/userAssignedIdentities/[^/]+$`)
)

// check reports a service credential that names no connector or identity,
// or ids that are not ARM ids of their kind, before anything is changed.
func (c ServiceCredential) check() error {
	switch {
	case c.Name == "":
		return nil
	case !accessConnectorID.MatchString(c.AccessConnectorID):
		return fmt.Errorf("service credential %s: the access connector id %q is not the ARM id of an access connector (…/providers/Microsoft.Databricks/accessConnectors/<name>)", c.Name, c.AccessConnectorID)
	case !userAssignedID.MatchString(c.ManagedIdentityID):
		return fmt.Errorf("service credential %s: the managed identity id %q is not the ARM id of a user-assigned identity (…/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>)", c.Name, c.ManagedIdentityID)
	}
	return nil
}

// putServiceCredential creates the Unity Catalog service credential for
// the access connector's identity, or points the existing one of its name
// at it. Creating it needs CREATE SERVICE CREDENTIAL on the metastore,
// which a metastore admin holds.
func putServiceCredential(ctx context.Context, api *client.DatabricksClient, c ServiceCredential) error {
	creds := catalog.NewCredentials(api)
	identity := &catalog.AzureManagedIdentity{AccessConnectorId: c.AccessConnectorID, ManagedIdentityId: c.ManagedIdentityID}
	info, err := creds.GetCredentialByNameArg(ctx, c.Name)
	switch {
	case errors.Is(err, apierr.ErrNotFound):
		_, err = creds.CreateCredential(ctx, catalog.CreateCredentialRequest{Name: c.Name, Purpose: catalog.CredentialPurposeService,
			AzureManagedIdentity: identity, Comment: "nbtrace: the notebook signs in to Application Insights with it. Managed by go run ./deploy."})
		if err != nil {
			return fmt.Errorf("create service credential %s: %w", c.Name, err)
		}
	case err != nil:
		return fmt.Errorf("read service credential %s: %w", c.Name, err)
	case info.Purpose != catalog.CredentialPurposeService:
		return fmt.Errorf("credential %s exists for %s, not as a service credential; choose another name", c.Name, info.Purpose)
	case info.AzureManagedIdentity == nil || !strings.EqualFold(info.AzureManagedIdentity.AccessConnectorId, c.AccessConnectorID) ||
		!strings.EqualFold(info.AzureManagedIdentity.ManagedIdentityId, c.ManagedIdentityID):
		if _, err := creds.UpdateCredential(ctx, catalog.UpdateCredentialRequest{NameArg: c.Name, AzureManagedIdentity: identity}); err != nil {
			return fmt.Errorf("update service credential %s: %w", c.Name, err)
		}
	}
	return nil
}

// grantCredential grants the job's run-as principal ACCESS on the service
// credential name: what dbutils.credentials.getServiceCredentialsProvider
// needs in the run
// (https://learn.microsoft.com/azure/databricks/connect/unity-catalog/cloud-services/use-service-credentials:
// "the ACCESS privilege on the service credential or ownership of the
// service credential").
func grantCredential(ctx context.Context, api *client.DatabricksClient, jobsAPI *jobs.JobsAPI, jobID int64, name string) error {
	job, err := jobsAPI.GetByJobId(ctx, jobID)
	if err != nil {
		return fmt.Errorf("read job %d: %w", jobID, err)
	}
	if job.RunAsUserName == "" {
		return fmt.Errorf("job %d names no run-as principal to grant ACCESS on service credential %s", jobID, name)
	}
	_, err = catalog.NewGrants(api).Update(ctx, catalog.UpdatePermissions{SecurableType: "credential", FullName: name,
		Changes: []catalog.PermissionsChange{{Principal: job.RunAsUserName, Add: []catalog.Privilege{catalog.PrivilegeAccess}}}})
	if err != nil {
		return fmt.Errorf("grant %s ACCESS on service credential %s: %w", job.RunAsUserName, name, err)
	}
	return nil
}

// putJob creates the job, or resets the one of its name.
func putJob(ctx context.Context, jobsAPI *jobs.JobsAPI, spec JobSpec) (int64, error) {
	settings := spec.Settings(path.Join(spec.WorkspaceDir, strings.TrimSuffix(spec.Entry, ".ipynb")))
	existing, err := jobsAPI.ListAll(ctx, jobs.ListJobsRequest{Name: spec.Name})
	if err != nil {
		return 0, fmt.Errorf("list jobs named %s: %w", spec.Name, err)
	}
	switch len(existing) {
	case 0:
		created, err := jobsAPI.Create(ctx, jobs.CreateJob{
			Name: settings.Name, Description: settings.Description, MaxConcurrentRuns: settings.MaxConcurrentRuns,
			Queue: settings.Queue, Tags: settings.Tags, Parameters: settings.Parameters,
			JobClusters: settings.JobClusters, Environments: settings.Environments, PerformanceTarget: settings.PerformanceTarget,
			Tasks: settings.Tasks,
		})
		if err != nil {
			return 0, fmt.Errorf("create job %s: %w", spec.Name, err)
		}
		return created.JobId, nil
	case 1:
		id := existing[0].JobId
		if err := jobsAPI.Reset(ctx, jobs.ResetJob{JobId: id, NewSettings: settings}); err != nil {
			return 0, fmt.Errorf("update job %d: %w", id, err)
		}
		return id, nil
	default:
		return 0, fmt.Errorf("%d jobs are named %s; delete all but one", len(existing), spec.Name)
	}
}

var guid = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// grantRun makes the app's identity a service principal of the workspace
// if it is not one (SCIM, by its application id: Databricks treats a
// managed identity as a service principal whose application id is its
// client id) and grants it CAN_MANAGE_RUN on the job: start runs, read
// them, nothing more. Both need a workspace admin, which the deploying
// user is.
func grantRun(ctx context.Context, api *client.DatabricksClient, jobsAPI *jobs.JobsAPI, jobID int64, appID string) error {
	sps := iam.NewServicePrincipalsV2(api)
	found, err := sps.ListAll(ctx, iam.ListServicePrincipalsRequest{Filter: fmt.Sprintf("applicationId eq %q", appID)})
	if err != nil {
		return fmt.Errorf("look up the app's service principal %s: %w", appID, err)
	}
	if len(found) == 0 {
		if _, err := sps.Create(ctx, iam.CreateServicePrincipalRequest{ApplicationId: appID, DisplayName: "nbtrace app " + appID}); err != nil {
			return fmt.Errorf("add the app's identity %s to the workspace: %w", appID, err)
		}
	}
	_, err = jobsAPI.UpdatePermissions(ctx, jobs.JobPermissionsRequest{JobId: strconv.FormatInt(jobID, 10),
		AccessControlList: []jobs.JobAccessControlRequest{{ServicePrincipalName: appID, PermissionLevel: jobs.JobPermissionLevelCanManageRun}}})
	if err != nil {
		return fmt.Errorf("grant the app's identity CAN_MANAGE_RUN on job %d: %w", jobID, err)
	}
	return nil
}

func isAlreadyExists(err error) bool {
	var ae *apierr.APIError
	return errors.As(err, &ae) && ae.ErrorCode == "RESOURCE_ALREADY_EXISTS"
}

// ReadNotebookFolder reads the files the job needs from dir: notebooks
// (.ipynb) and Python modules (.py), not tests or caches.
func ReadNotebookFolder(dir string) (map[string][]byte, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, "test_") || strings.HasSuffix(name, "_test.py") || name == "conftest.py" ||
			(!strings.HasSuffix(name, ".ipynb") && !strings.HasSuffix(name, ".py")) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		files[name] = b
	}
	return files, nil
}

// ReadRequirements reads a pip requirements file: one requirement a line,
// comments and blank lines skipped. Each must pin an exact version.
func ReadRequirements(file string) ([]string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var out []string
	for i, line := range strings.Split(string(b), "\n") {
		line, _, _ = strings.Cut(line, "#")
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		if !strings.Contains(line, "==") {
			return nil, fmt.Errorf("%s:%d: %q does not pin an exact version (name==version)", file, i+1, line)
		}
		out = append(out, line)
	}
	return out, nil
}

// Options are the deploy step's inputs besides the environment.
type Options struct {
	NotebookDir, Entry, Requirements string
	JobName, WorkspaceDir            string
	Compute                          Compute
	SparkVersion, NodeType           string
	EnvironmentVersion               string
	// AppClientID: see JobSpec.AppClientID.
	AppClientID string
	// Ingestion: see JobSpec.Ingestion.
	Ingestion ServiceCredential
}

// NewJobSpec builds the job spec from the notebook folder, its pinned
// requirements and the telemetry settings in the environment.
func NewJobSpec(getenv func(string) string, o Options) (JobSpec, error) {
	switch o.Compute {
	case ComputeServerless, ComputeClassic:
	default:
		return JobSpec{}, fmt.Errorf("compute %q is not %s or %s", o.Compute, ComputeServerless, ComputeClassic)
	}
	files, err := ReadNotebookFolder(o.NotebookDir)
	if err != nil {
		return JobSpec{}, fmt.Errorf("read the notebook folder: %w", err)
	}
	libs, err := ReadRequirements(o.Requirements)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return JobSpec{}, err
	}
	spec := JobSpec{
		Name: o.JobName, WorkspaceDir: o.WorkspaceDir, Files: files, Entry: o.Entry, Libraries: libs,
		Compute: o.Compute, SparkVersion: o.SparkVersion, NodeType: o.NodeType, EnvironmentVersion: o.EnvironmentVersion,
		SecretScope: "nbtrace", AppClientID: o.AppClientID,
		EnvVars:       map[string]string{"OTEL_SERVICE_NAME": "databricks-notebook"},
		SecretEnvVars: map[string]string{},
		Parameters:    map[string]string{"dataset": "", "date": "", "row_count": "", "extract_seconds": "1", "transform_seconds": "1", "load_seconds": "1"},
	}
	// Telemetry settings reach the notebook through its settings file;
	// those that can hold credentials through the secret scope. The app's
	// APPLICATIONINSIGHTS_AUTHENTICATION_STRING is not passed on: notebook
	// code has no managed identity of its own; it signs in with the
	// service credential, when there is one.
	for _, k := range NotebookSettings {
		if v := getenv(k); v != "" {
			spec.EnvVars[k] = v
		}
	}
	for _, k := range []string{"APPLICATIONINSIGHTS_CONNECTION_STRING", "OTEL_EXPORTER_OTLP_HEADERS"} {
		if v := getenv(k); v != "" {
			spec.SecretEnvVars[k] = v
		}
	}
	if o.Ingestion.Name != "" {
		// Signed in with Entra ID, the notebook needs no key. The
		// connection string stays in the secret scope all the same: with
		// local authentication off it only names the resource, but a
		// resource that still takes keys (APPLICATIONINSIGHTS_LOCAL_AUTH)
		// would take its key from anyone who read it in a workspace file.
		spec.Ingestion = o.Ingestion
		spec.EnvVars[IngestionCredentialSetting] = o.Ingestion.Name
	}
	return spec, nil
}

// IngestionCredentialSetting names, in the notebook's settings, the
// service credential it signs in to Application Insights with.
const IngestionCredentialSetting = "NBTRACE_INGESTION_CREDENTIAL"

// RuntimeVersion is the Databricks Runtime of the job cluster, 17.3 LTS:
// notebooks/requirements-job.txt is pinned against what it ships.
const RuntimeVersion = "17.3.x-scala2.13"

// NotebookSettings are the telemetry settings of the deploy step's
// environment that reach the notebook as they are.
var NotebookSettings = []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
	"OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG"}

// DefaultOptions are the deploy step's defaults, relative to the
// project's root.
func DefaultOptions(root string) Options {
	return Options{
		NotebookDir: filepath.Join(root, "notebooks"), Entry: "distributed_tracing.ipynb",
		Requirements: filepath.Join(root, "notebooks", "requirements-job.txt"),
		JobName:      "nbtrace-distributed-tracing", WorkspaceDir: "/Shared/nbtrace",
		Compute: ComputeServerless, SparkVersion: RuntimeVersion, NodeType: "Standard_D4ds_v5", EnvironmentVersion: EnvironmentVersion,
	}
}
