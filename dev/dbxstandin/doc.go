// Package dbxstandin is a stand-in for the Databricks REST API, for local
// development and tests: a real HTTP server that the unchanged
// databricks-sdk-go talks to. It serves the subset nbtrace uses, with the
// wire shapes of the Jobs API 2.2 and Workspace API 2.0 (the SDK's own
// request and response types):
//
//   - jobs/create, jobs/reset, jobs/get, jobs/list (by name);
//   - jobs/run-now, honouring idempotency_token (at most one run per token,
//     at most 64 characters), rejecting job parameters the job does not
//     define and job_parameters over 10,000 bytes of JSON, as Databricks
//     does; jobs/runs/get with the run's life cycle (QUEUED, PENDING,
//     RUNNING, TERMINATING, TERMINATED), result, real start/end times and
//     queue/setup/execution/cleanup durations, its tasks, its run page URL
//     and its job_parameters (default and value, with {{job.id}} and
//     {{job.run_id}} resolved);
//   - workspace/mkdirs, workspace/import, workspace/get-status, and secret
//     scopes and secrets;
//   - the unauthenticated discovery document /.well-known/databricks-config
//     that the SDK reads while it resolves its configuration;
//   - bearer-token authentication (401 without the token), and Databricks'
//     error body {"error_code", "message"} with its status codes.
//
// A run executes its notebook through a Runner (the local stack's runs the
// notebook with Python). Faults can be injected: 429 with Retry-After, 500,
// slow answers and dropped connections.
package dbxstandin
