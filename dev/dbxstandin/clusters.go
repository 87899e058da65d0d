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
