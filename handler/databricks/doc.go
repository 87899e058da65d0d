// Package databricks is the handler's client of the Databricks Jobs API,
// built on github.com/databricks/databricks-sdk-go.
//
// The SDK client is built on first use, not at start-up, so a cold start
// makes no network call. In Azure it signs in as a managed identity through
// azidentity (the SDK's own azure-msi only knows the VM metadata endpoint,
// which Functions does not have), with the management token and the
// workspace's ARM id that Azure Databricks needs to admit an identity that
// is not yet a workspace user (auth.go); locally with a personal access
// token. The deploy step's code is in package deploy, outside the handler. Every SDK call is a CLIENT span (otelhttp as the SDK's transport,
// which replaces the SDK's random traceparent with the real one), has a
// time limit, and is retried by the SDK on 429, 503 and dropped
// connections; a Retry-After on those answers is honoured before the SDK
// retries. Errors come back as *api.Error with a status for the caller.
package databricks
