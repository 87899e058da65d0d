// Package dbxstandin is a stand-in for the Azure Databricks REST API, for
// local development and tests: a real HTTP server that the unchanged
// databricks-sdk-go talks to. It serves the subset nbtrace uses, with the
// wire shapes of the Jobs API 2.2, Workspace API 2.0, Permissions API,
// SCIM and Unity Catalog's credentials and grants (the SDK's own request
// and response types), and refuses what Azure
// Databricks refuses; each rule cites, beside it, the documentation or
// source it follows:
//
//   - sign-in (auth.go): its personal access token, and with Options.Azure
//     Microsoft Entra ID tokens (package entra): the AzureDatabricks
//     audience, at least 30 s left, and an identity that is a workspace
//     user or a Contributor of the workspace resource proving it with a
//     management token and the workspace's ARM id (then it becomes an
//     admin), else Azure's 403 or 400;
//   - permissions (permissions.go): job ACLs (CAN_VIEW, CAN_MANAGE_RUN,
//     CAN_MANAGE, IS_OWNER; admins hold all), granted through
//     permissions/jobs, with Databricks' PERMISSION_DENIED messages; SCIM
//     service principals, for admins only;
//   - jobs (jobs.go): create, reset, get, list (by name, what the caller
//     may view); clusters that name an access mode, as a workspace with
//     legacy access modes disabled requires (clusters.go); run-now with
//     idempotency tokens (at most one run per token in the workspace, at
//     most 64 characters), job parameters the job defines, at most 10,000
//     bytes of JSON; runs/get in the multi-task format (run-level setup,
//     execution and cleanup 0, the figures on the tasks, run_duration),
//     its life cycle (QUEUED, PENDING, RUNNING, TERMINATING, TERMINATED, or
//     INTERNAL_ERROR when the cluster cannot launch, as a missing secret
//     makes it), its run page URL with the workspace id, its
//     job_parameters with {{job.id}} and {{job.run_id}} resolved;
//   - workspace (workspace.go): mkdirs, import (JUPYTER and SOURCE make
//     notebooks, RAW files, AUTO by extension and header and never over a
//     file), get-status telling notebooks from files; secret scopes and
//     secrets, resolved into a job cluster's environment;
//   - Unity Catalog service credentials (credentials.go): create, get,
//     list (by purpose; what the caller may see), update, delete; an
//     Azure managed identity held by one of Options.Azure's
//     AccessConnectors (checked unless skip_validation; without
//     Options.Azure refused), names stored in lower case, created only by
//     a metastore admin (a workspace admin that is not a service
//     principal), changed by the owner or a MANAGE holder (an admin: the
//     owner only), deleted by the owner; their grants (ucgrants.go,
//     permissions/credential in either case: ACCESS, CREATE_CONNECTION,
//     MANAGE, ALL_PRIVILEGES, granted by the owner, a MANAGE holder or an
//     admin to a user name or an application id), and effective
//     permissions; a run gets the credentials its run-as principal owns
//     or holds ACCESS on (RunContext.ServiceCredentials);
//   - the unauthenticated discovery document /.well-known/databricks-config
//     that the SDK reads while it resolves its configuration;
//   - Databricks' error body {"error_code", "message"} with its status
//     codes.
//
// A run executes its notebook through a Runner (the local stack's runs the
// notebook with Python). Faults can be injected: 429 with Retry-After, 500,
// slow answers and dropped connections.
package dbxstandin
