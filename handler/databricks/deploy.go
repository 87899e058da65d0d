package databricks

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/databricks/databricks-sdk-go/apierr"
	"github.com/databricks/databricks-sdk-go/service/compute"
	"github.com/databricks/databricks-sdk-go/service/jobs"
	"github.com/databricks/databricks-sdk-go/service/workspace"
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
	// Libraries are pinned PyPI requirements installed on the job cluster:
	// the notebook needs no %pip.
	Libraries []string
	// SparkVersion and NodeType of the single-node job cluster.
	SparkVersion, NodeType string
	// EnvVars are environment variables of the job cluster (telemetry
	// settings that are not secret, such as the OTLP endpoint).
	EnvVars map[string]string
	// SecretEnvVars are stored in the secret scope SecretScope and handed
	// to the cluster as {{secrets/scope/key}} references: the notebook reads
	// them from its environment and never holds them in its source.
	SecretEnvVars map[string]string
	SecretScope   string
	// Parameters are extra job parameters with their defaults, besides the
	// trace context and the run's ids.
	Parameters map[string]string
}

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
	env := map[string]string{}
	for k, v := range s.EnvVars {
		env[k] = v
	}
	for k := range s.SecretEnvVars {
		env[k] = "{{secrets/" + s.SecretScope + "/" + secretKey(k) + "}}"
	}
	var libs []compute.Library
	for _, l := range s.Libraries {
		libs = append(libs, compute.Library{Pypi: &compute.PythonPyPiLibrary{Package: l}})
	}
	return jobs.JobSettings{
		Name:              s.Name,
		Description:       "Runs the nbtrace notebook; started by the notebook function with the caller's trace context. Managed by go run ./deploy.",
		MaxConcurrentRuns: 20,
		Queue:             &jobs.QueueSettings{Enabled: true},
		Tags:              map[string]string{"app": "nbtrace"},
		Parameters:        params,
		JobClusters: []jobs.JobCluster{{JobClusterKey: "nbtrace", NewCluster: &compute.ClusterSpec{
			SparkVersion: s.SparkVersion, NodeTypeId: s.NodeType, NumWorkers: 0,
			SparkConf:       map[string]string{"spark.databricks.cluster.profile": "singleNode", "spark.master": "local[*]"},
			CustomTags:      map[string]string{"ResourceClass": "SingleNode"},
			SparkEnvVars:    env,
			ForceSendFields: []string{"NumWorkers"},
		}}},
		Tasks: []jobs.Task{{
			TaskKey: "notebook", JobClusterKey: "nbtrace", Libraries: libs, TimeoutSeconds: 3600,
			NotebookTask: &jobs.NotebookTask{NotebookPath: notebookPath, Source: jobs.SourceWorkspace},
		}},
	}
}

// secretKey is the secret's key for an environment variable.
func secretKey(env string) string { return strings.ToLower(strings.ReplaceAll(env, "_", "-")) }

// Deploy uploads the notebook folder, stores the secrets, and creates the
// job or updates the one of the same name. Running it again changes
// nothing but what changed. It returns the job id.
func (c *Client) Deploy(ctx context.Context, spec JobSpec) (int64, error) {
	if _, err := c.build(); err != nil {
		return 0, Error(err)
	}
	if _, ok := spec.Files[spec.Entry]; !ok {
		return 0, fmt.Errorf("the notebook folder has no %s", spec.Entry)
	}
	if err := c.wsAPI.MkdirsByPath(ctx, spec.WorkspaceDir); err != nil {
		return 0, fmt.Errorf("create %s: %w", spec.WorkspaceDir, err)
	}
	names := make([]string, 0, len(spec.Files))
	for name := range spec.Files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		req := workspace.Import{Path: path.Join(spec.WorkspaceDir, name), Format: workspace.ImportFormatAuto, Overwrite: true,
			Content: base64.StdEncoding.EncodeToString(spec.Files[name])}
		if strings.HasSuffix(name, ".ipynb") {
			req.Path, req.Format = strings.TrimSuffix(req.Path, ".ipynb"), workspace.ImportFormatJupyter
		}
		if err := c.wsAPI.Import(ctx, req); err != nil {
			return 0, fmt.Errorf("upload %s: %w", name, err)
		}
	}
	if len(spec.SecretEnvVars) > 0 {
		err := c.secrets.CreateScope(ctx, workspace.CreateScope{Scope: spec.SecretScope})
		if err != nil && !errors.Is(err, apierr.ErrResourceAlreadyExists) && !isAlreadyExists(err) {
			return 0, fmt.Errorf("create secret scope %s: %w", spec.SecretScope, err)
		}
		for k, v := range spec.SecretEnvVars {
			if err := c.secrets.PutSecret(ctx, workspace.PutSecret{Scope: spec.SecretScope, Key: secretKey(k), StringValue: v}); err != nil {
				return 0, fmt.Errorf("store secret for %s: %w", k, err)
			}
		}
	}
	settings := spec.Settings(path.Join(spec.WorkspaceDir, strings.TrimSuffix(spec.Entry, ".ipynb")))
	existing, err := c.jobs.ListAll(ctx, jobs.ListJobsRequest{Name: spec.Name})
	if err != nil {
		return 0, fmt.Errorf("list jobs named %s: %w", spec.Name, err)
	}
	switch len(existing) {
	case 0:
		created, err := c.jobs.Create(ctx, jobs.CreateJob{
			Name: settings.Name, Description: settings.Description, MaxConcurrentRuns: settings.MaxConcurrentRuns,
			Queue: settings.Queue, Tags: settings.Tags, Parameters: settings.Parameters,
			JobClusters: settings.JobClusters, Tasks: settings.Tasks,
		})
		if err != nil {
			return 0, fmt.Errorf("create job %s: %w", spec.Name, err)
		}
		return created.JobId, nil
	case 1:
		id := existing[0].JobId
		if err := c.jobs.Reset(ctx, jobs.ResetJob{JobId: id, NewSettings: settings}); err != nil {
			return 0, fmt.Errorf("update job %d: %w", id, err)
		}
		return id, nil
	default:
		return 0, fmt.Errorf("%d jobs are named %s; delete all but one", len(existing), spec.Name)
	}
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

// DeployOptions are the deploy step's inputs besides the environment.
type DeployOptions struct {
	NotebookDir, Entry, Requirements string
	JobName, WorkspaceDir            string
	SparkVersion, NodeType           string
}

// NewJobSpec builds the job spec from the notebook folder, its pinned
// requirements and the telemetry settings in the environment.
func NewJobSpec(getenv func(string) string, o DeployOptions) (JobSpec, error) {
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
		SparkVersion: o.SparkVersion, NodeType: o.NodeType, SecretScope: "nbtrace",
		EnvVars:       map[string]string{"OTEL_SERVICE_NAME": "databricks-notebook"},
		SecretEnvVars: map[string]string{},
		Parameters:    map[string]string{"dataset": "", "date": "", "row_count": "", "extract_seconds": "1", "transform_seconds": "1", "load_seconds": "1"},
	}
	// Telemetry settings reach the notebook as cluster environment
	// variables; those that can hold credentials through the secret scope.
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"} {
		if v := getenv(k); v != "" {
			spec.EnvVars[k] = v
		}
	}
	for _, k := range []string{"APPLICATIONINSIGHTS_CONNECTION_STRING", "OTEL_EXPORTER_OTLP_HEADERS"} {
		if v := getenv(k); v != "" {
			spec.SecretEnvVars[k] = v
		}
	}
	return spec, nil
}

// DefaultDeployOptions are the deploy step's defaults, relative to the
// project's root.
func DefaultDeployOptions(root string) DeployOptions {
	return DeployOptions{
		NotebookDir: filepath.Join(root, "notebooks"), Entry: "distributed_tracing.ipynb",
		Requirements: filepath.Join(root, "notebooks", "requirements-job.txt"),
		JobName:      "nbtrace-distributed-tracing", WorkspaceDir: "/Shared/nbtrace",
		SparkVersion: "15.4.x-scala2.12", NodeType: "Standard_D4ds_v5",
	}
}
