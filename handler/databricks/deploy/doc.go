// Package deploy puts the notebook job into a Databricks workspace, as the
// deploy step (go run ./deploy) and the local stack do: it uploads the
// notebook folder, stores the telemetry secrets in a secret scope, creates
// the job or updates the one of the same name, and lets the app's
// identity run it.
//
// It is apart from package databricks so that the handler, which only
// starts and reads runs, carries none of it.
package deploy
