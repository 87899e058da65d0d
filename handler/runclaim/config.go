package runclaim

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/nbtrace/nbtrace/functions/api"
	"github.com/nbtrace/nbtrace/functions/jobrun"
)

// Container is the blob container of the claims. infra/app/storage.bicep
// makes it and deletes its blobs after RetentionDays; the local stack makes
// it in its Azurite. Without it claims fail (ContainerNotFound) and runs
// are recorded by every instance that sees them end.
const Container = "nbtrace-run-claims"

// RetentionDays is how long a claim is kept: longer than Databricks keeps
// a run ("Runs are automatically removed after 60 days", Jobs API,
// runs/get-output: https://docs.databricks.com/api/azure/workspace/jobs/getrunoutput),
// after which no instance can read the run to record it again.
const RetentionDays = 90

// Settings read for the claims. The AzureWebJobsStorage ones are the
// Functions host's own, read as the host reads them: the connection
// string when it is set, else the identity-based connection
// ("Connecting to host storage with an identity" and "Common properties
// for identity-based connections",
// https://learn.microsoft.com/azure/azure-functions/functions-reference#connecting-to-host-storage-with-an-identity).
var Settings = []api.Setting{
	{Name: "AzureWebJobsStorage", Default: "", Doc: "Local development only: a storage connection string (UseDevelopmentStorage=true is Azurite on its default port). The handler claims each finished run in its blob container " + Container + " so that one instance records it; go run ./dev sets it to an Azurite of its own. With neither it nor AzureWebJobsStorage__blobServiceUri or __accountName, each instance records the runs it sees end: right for one instance only.", Azure: api.LocalOnly},
	{Name: "AzureWebJobsStorage__blobServiceUri", Default: "", Doc: "Blob endpoint of the app's storage account (https://<account>.blob.core.windows.net/), for the Functions host and for the handler's claims of finished runs (container " + Container + ", kept " + fmt.Sprint(RetentionDays) + " days).", Azure: api.ByInfra},
	{Name: "AzureWebJobsStorage__accountName", Default: "", Doc: "The app's storage account, for the Functions host; the handler claims runs at https://<name>.blob.core.windows.net/ when AzureWebJobsStorage__blobServiceUri is unset.", Azure: api.ByInfra},
	{Name: "AzureWebJobsStorage__credential", Default: "", Doc: "managedidentity: the Functions host and the handler reach the storage account as the app's managed identity (Storage Blob Data Owner). Unset: as the developer signed in to the Azure CLI or azd, as the host does locally.", Azure: api.ByInfra},
	{Name: "AzureWebJobsStorage__clientId", Default: "", Doc: "Client id of the user-assigned identity that AzureWebJobsStorage__credential=managedidentity signs in as; unset: the system-assigned identity.", Azure: api.ByInfra},
	{Name: "NBTRACE_RUN_CLAIM_TIMEOUT", Default: jobrun.DefaultClaimTimeout.String(), Doc: "Longest a claim of a finished run may take. A claim not made in time, or refused (storage down or throttled), does not fail the request: the run is recorded anyway, may then appear twice, and is counted as nbtrace.databricks.runs.claim_failed.", Azure: api.Optional},
}

// Config configures a Store.
type Config struct {
	// ConnectionString, when set, names the account and signs in with its
	// key or SAS (Azurite, local development); ServiceURL is then unused.
	ConnectionString string
	// ServiceURL is the account's blob endpoint, ending in a slash.
	ServiceURL string
	// ManagedIdentity: sign in as the app's managed identity, the
	// user-assigned one of ClientID when set; else as the developer
	// (azidentity's default chain).
	ManagedIdentity bool
	ClientID        string
	// Instance names this instance in the claims it makes.
	Instance string
	// Timeout bounds one claim.
	Timeout time.Duration
}

// Configured reports whether there is a storage account to claim runs in.
func (c Config) Configured() bool { return c.ConnectionString != "" || c.ServiceURL != "" }

// developmentStorage is what UseDevelopmentStorage=true stands for: Azurite
// on its default Blob port with its well-known account and key ("Azurite
// accepts the same well-known account and key used by the legacy Azure
// Storage Emulator", https://learn.microsoft.com/azure/storage/common/storage-use-azurite#http-connection-strings).
// azblob does not read the shortcut itself (its ParseConnectionString needs
// AccountName or BlobEndpoint).
const developmentStorage = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;" +
	"AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;" +
	"BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"

// accountName is a storage account's name: 3 to 24 lower-case letters
// and digits.
var accountName = regexp.MustCompile(`^[a-z0-9]{3,24}$`)

// ConfigFromEnv reads the settings. No storage setting at all is no
// error: Configured is then false. A setting that is wrong is an error
// naming it; a connection string is checked without being shown.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{Instance: getenv("WEBSITE_INSTANCE_ID"), Timeout: jobrun.DefaultClaimTimeout}
	var err error
	if c.Timeout, err = api.DurationSetting(getenv, "NBTRACE_RUN_CLAIM_TIMEOUT", c.Timeout, 100*time.Millisecond, 30*time.Second); err != nil {
		return c, err
	}
	// The host's rule: a setting named exactly AzureWebJobsStorage is a
	// connection string, and it wins over the identity-based settings.
	if cs := strings.TrimSpace(getenv("AzureWebJobsStorage")); cs != "" {
		if strings.EqualFold(strings.TrimSuffix(cs, ";"), "UseDevelopmentStorage=true") {
			cs = developmentStorage
		}
		if _, err := blockblob.NewClientFromConnectionString(cs, Container, "check", nil); err != nil {
			return c, fmt.Errorf("AzureWebJobsStorage is not a storage connection string (AccountName and AccountKey, or BlobEndpoint and SharedAccessSignature, or UseDevelopmentStorage=true): %v", err)
		}
		c.ConnectionString = cs
		return c, nil
	}
	if u := getenv("AzureWebJobsStorage__blobServiceUri"); u != "" {
		if c.ServiceURL, err = api.HTTPURLSetting("AzureWebJobsStorage__blobServiceUri", u); err != nil {
			return c, err
		}
		c.ServiceURL = strings.TrimSuffix(c.ServiceURL, "/") + "/"
		// An Entra ID token goes over TLS only (azcore's bearer policy
		// refuses plain HTTP): a plain-HTTP address would fail every claim
		// at run time; a loopback one is a local emulator's.
		if !api.TokenSafe(c.ServiceURL) {
			return c, fmt.Errorf("AzureWebJobsStorage__blobServiceUri: %s is not HTTPS; the identity's token is sent over TLS only", c.ServiceURL)
		}
	} else if name := getenv("AzureWebJobsStorage__accountName"); name != "" {
		if !accountName.MatchString(name) {
			return c, fmt.Errorf("AzureWebJobsStorage__accountName: %q is not a storage account name (3 to 24 lower-case letters and digits)", name)
		}
		c.ServiceURL = "https://" + name + ".blob.core.windows.net/"
	}
	switch cred := getenv("AzureWebJobsStorage__credential"); {
	case strings.EqualFold(cred, "managedidentity"):
		c.ManagedIdentity = true
	case cred != "":
		return c, fmt.Errorf("AzureWebJobsStorage__credential: %q is not managedidentity (unset: the developer's sign-in)", cred)
	}
	c.ClientID = getenv("AzureWebJobsStorage__clientId")
	return c, nil
}
