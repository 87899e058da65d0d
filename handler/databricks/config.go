package databricks

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nbtrace/nbtrace/functions/api"
)

// Settings read by the Databricks client.
var Settings = []api.Setting{
	{Name: "DATABRICKS_HOST", Default: "", Doc: "Workspace URL, such as https://adb-1234567890123456.7.azuredatabricks.net. Required by notebook and runs.", Azure: api.ByInfra},
	{Name: "DATABRICKS_JOB_ID", Default: "", Doc: "Id of the job that runs the notebook; written by the deploy step (go run ./deploy). Required by notebook and runs.", Azure: api.ByInfra},
	{Name: "DATABRICKS_TOKEN", Default: "", Doc: "Local development only: a personal access token. Unset in Azure, where the managed identity signs in.", Azure: api.LocalOnly},
	{Name: "AZURE_CLIENT_ID", Default: "", Doc: "Client id of the user-assigned managed identity to sign in to Databricks with; unset: the default credential chain.", Azure: api.ByInfra},
	{Name: "DATABRICKS_AZURE_RESOURCE_ID", Default: "", Doc: "ARM id of the workspace: when set, sent on every call with a management token of the identity, so that an identity with Contributor on the workspace is let in before it is a workspace user. The app's own identity needs none: the deploy step makes it a workspace service principal.", Azure: api.Optional},
	{Name: "DATABRICKS_HTTP_TIMEOUT", Default: "30s", Doc: "Time limit of one Databricks API call.", Azure: api.Optional},
	{Name: "DATABRICKS_RETRY_TIMEOUT", Default: "45s", Doc: "How long the SDK keeps retrying a throttled (429) or unavailable (503) call before the caller gets 503.", Azure: api.Optional},
}

// Config configures the client.
type Config struct {
	Host            string
	JobID           int64
	Token           string
	AzureClientID   string
	AzureResourceID string
	HTTPTimeout     time.Duration
	RetryTimeout    time.Duration
}

// ConfigFromEnv reads the settings, DATABRICKS_JOB_ID included. It returns
// an error naming the setting that is missing or not valid.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c, err := ConnectionFromEnv(getenv)
	if err != nil {
		return c, err
	}
	raw := getenv("DATABRICKS_JOB_ID")
	if raw == "" {
		return c, fmt.Errorf("DATABRICKS_JOB_ID is not set (go run ./deploy creates the job and prints its id)")
	}
	if c.JobID, err = strconv.ParseInt(raw, 10, 64); err != nil || c.JobID <= 0 {
		return c, fmt.Errorf("DATABRICKS_JOB_ID: %q is not a job id", raw)
	}
	return c, nil
}

// ConnectionFromEnv reads the workspace URL, credentials and time limits,
// but not the job id: what the deploy step needs before the job exists.
func ConnectionFromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		Host:            strings.TrimSuffix(getenv("DATABRICKS_HOST"), "/"),
		Token:           getenv("DATABRICKS_TOKEN"),
		AzureClientID:   getenv("AZURE_CLIENT_ID"),
		AzureResourceID: getenv("DATABRICKS_AZURE_RESOURCE_ID"),
		HTTPTimeout:     30 * time.Second,
		RetryTimeout:    45 * time.Second,
	}
	if c.Host == "" {
		return c, fmt.Errorf("DATABRICKS_HOST is not set (the workspace URL; go run ./dev sets it to the local stand-in; under func start, go run ./dev databricks -settings local.settings.json writes it, then stage -local again)")
	}
	if _, err := api.HTTPURLSetting("DATABRICKS_HOST", c.Host); err != nil {
		return c, fmt.Errorf("%w: a workspace URL such as https://adb-1.2.azuredatabricks.net is needed", err)
	}
	var err error
	if c.HTTPTimeout, err = api.DurationSetting(getenv, "DATABRICKS_HTTP_TIMEOUT", c.HTTPTimeout, time.Second, 5*time.Minute); err != nil {
		return c, err
	}
	if c.RetryTimeout, err = api.DurationSetting(getenv, "DATABRICKS_RETRY_TIMEOUT", c.RetryTimeout, time.Second, 10*time.Minute); err != nil {
		return c, err
	}
	return c, nil
}
