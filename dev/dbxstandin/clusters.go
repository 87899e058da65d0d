package dbxstandin

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/databricks/databricks-sdk-go/service/compute"
	"github.com/databricks/databricks-sdk-go/service/jobs"
)

// sparkVersion is the form of a Databricks Runtime version key, such as
// 17.3.x-scala2.13.
var sparkVersion = regexp.MustCompile(`^\d+\.\d+\.x(-[a-z0-9-]+)?-scala2\.1[23]$`)

// clusterProblem says why Databricks would refuse a job's cluster
// definitions, or "". The workspace is one with legacy features disabled
// (https://learn.microsoft.com/azure/databricks/admin/account-settings/legacy-features),
// the setting new workspaces are encouraged to use, where no-isolation
// clusters cannot be created: a job cluster must name an access mode
// (otherwise the workspace default, No isolation shared, would apply:
// https://docs.databricks.com/admin/workspace-settings/default-access-mode.html).
// The texts follow Databricks' validation errors
// ("Validation failed for data_security_mode, the value must be present",
// databrickslabs/migrate#215); the exact wording for a disabled mode is
// not published.
func clusterProblem(clusters []jobs.JobCluster) string {
	for _, jc := range clusters {
		c := jc.NewCluster
		if c == nil {
			return fmt.Sprintf("Job cluster %s has no new_cluster.", jc.JobClusterKey)
		}
		switch m := c.DataSecurityMode; {
		case m == "":
			return "Validation failed for data_security_mode, the value must be present"
		case m == compute.DataSecurityModeNone || strings.HasPrefix(string(m), "LEGACY_"):
			return fmt.Sprintf("Validation failed for data_security_mode: %s is a legacy access mode, which is disabled in this workspace.", m)
		}
		if (c.IsSingleNode || c.UseMlRuntime) && c.Kind != compute.KindClassicPreview {
			// compute.ClusterSpec: "This field can only be used when
			// kind = CLASSIC_PREVIEW".
			return "is_single_node and use_ml_runtime can only be used when kind = CLASSIC_PREVIEW."
		}
		if !sparkVersion.MatchString(c.SparkVersion) {
			return fmt.Sprintf("Invalid spark version %q.", c.SparkVersion)
		}
		if c.NodeTypeId == "" && c.InstancePoolId == "" && c.PolicyId == "" {
			return "The cluster must specify a node_type_id or an instance_pool_id."
		}
	}
	return ""
}

// settingsProblem says why Databricks would refuse a job's settings, or
// "": its clusters first, then its tasks.
func settingsProblem(settings jobs.JobSettings) string {
	if problem := clusterProblem(settings.JobClusters); problem != "" {
		return problem
	}
	return taskProblem(settings)
}

// environmentVersions are the serverless environment versions Databricks
// serves (https://docs.databricks.com/release-notes/serverless/environment-version/).
var environmentVersions = map[string]bool{"2": true, "3": true, "4": true, "5": true}

// taskProblem says why Databricks would refuse a job's tasks, or "". A
// task with no job cluster, new cluster or existing cluster runs on
// serverless compute ("If no job_cluster_key, existing_cluster_id, or
// new_cluster were specified in task definition, then task will executed
// using serverless compute", terraform-provider-databricks docs/resources/job.md):
// it takes no libraries ("Libraries field is not supported for serverless
// task, please specify libraries in environment.", as Databricks answers)
// and names, if any, an environment the job defines, whose version
// Databricks serves. The wording of the other refusals is the stand-in's.
func taskProblem(settings jobs.JobSettings) string {
	envs := map[string]*compute.Environment{}
	for _, e := range settings.Environments {
		if e.Spec == nil {
			return fmt.Sprintf("Environment %s has no spec.", e.EnvironmentKey)
		}
		// client is environment_version's deprecated name; a version
		// Databricks no longer serves is refused ("Invalid platform channel
		// Client-1", as reported of client "1").
		version := e.Spec.EnvironmentVersion
		if version == "" {
			version = e.Spec.Client
			if version != "" && !environmentVersions[version] {
				return fmt.Sprintf("Invalid platform channel Client-%s", version)
			}
		}
		if !environmentVersions[version] {
			return fmt.Sprintf("Environment %s: environment version %q is not one Databricks serves.", e.EnvironmentKey, version)
		}
		for _, d := range e.Spec.Dependencies {
			if strings.TrimSpace(d) == "" {
				return fmt.Sprintf("Environment %s: an empty dependency is not a pip requirements line.", e.EnvironmentKey)
			}
		}
		envs[e.EnvironmentKey] = e.Spec
	}
	clusters := map[string]bool{}
	for _, jc := range settings.JobClusters {
		clusters[jc.JobClusterKey] = true
	}
	for _, t := range settings.Tasks {
		if t.JobClusterKey != "" && !clusters[t.JobClusterKey] {
			return fmt.Sprintf("Task %s refers to job cluster %s, which the job does not define.", t.TaskKey, t.JobClusterKey)
		}
		if serverless(t) && len(t.Libraries) > 0 {
			return "Libraries field is not supported for serverless task, please specify libraries in environment."
		}
		if t.EnvironmentKey != "" && envs[t.EnvironmentKey] == nil {
			return fmt.Sprintf("Task %s refers to environment %s, which the job does not define.", t.TaskKey, t.EnvironmentKey)
		}
	}
	return ""
}

// serverless reports whether a task runs on serverless compute.
func serverless(t jobs.Task) bool {
	return t.JobClusterKey == "" && t.NewCluster == nil && t.ExistingClusterId == ""
}
