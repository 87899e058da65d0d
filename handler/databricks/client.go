package databricks

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/databricks/databricks-sdk-go/client"
	"github.com/databricks/databricks-sdk-go/config"
	"github.com/databricks/databricks-sdk-go/config/experimental/auth"
	"github.com/databricks/databricks-sdk-go/service/jobs"
	"github.com/databricks/databricks-sdk-go/service/workspace"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/oauth2"
)

// AzureDatabricksScope is the scope of tokens for the AzureDatabricks
// first-party application.
const AzureDatabricksScope = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d/.default"

// Client is a lazily built Databricks client.
type Client struct {
	cfg     Config
	tp      trace.TracerProvider
	prop    propagation.TextMapPropagator
	mu      sync.Mutex
	api     *client.DatabricksClient
	jobs    *jobs.JobsAPI
	wsAPI   *workspace.WorkspaceAPI
	secrets *workspace.SecretsAPI
	newCred func(Config) (azcore.TokenCredential, error)
}

// New returns a client; nothing is built or dialled until its first call.
func New(cfg Config, tp trace.TracerProvider, prop propagation.TextMapPropagator) *Client {
	return &Client{cfg: cfg, tp: tp, prop: prop, newCred: azureCredential}
}

// JobID is the configured job.
func (c *Client) JobID() int64 { return c.cfg.JobID }

// Host is the workspace URL.
func (c *Client) Host() string { return c.cfg.Host }

// build creates the SDK client on first use. A failure is not kept, so a
// later call tries again (a managed identity endpoint that was not ready).
func (c *Client) build() (*client.DatabricksClient, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.api != nil {
		return c.api, nil
	}
	cfg := &config.Config{
		Host:                c.cfg.Host,
		AzureResourceID:     c.cfg.AzureResourceID,
		HTTPTimeoutSeconds:  int(c.cfg.HTTPTimeout / time.Second),
		RetryTimeoutSeconds: int(c.cfg.RetryTimeout / time.Second),
		HTTPTransport:       c.transport(),
		// Only the values given here: no DATABRICKS_* environment and no
		// ~/.databrickscfg profile can change which workspace or identity
		// is used.
		Loaders: []config.Loader{explicitOnly{}},
	}
	if c.cfg.Token != "" {
		cfg.Token = c.cfg.Token
		cfg.Credentials = config.PatCredentials{}
	} else {
		cred, err := c.newCred(c.cfg)
		if err != nil {
			return nil, fmt.Errorf("azure credential: %w", err)
		}
		cfg.Credentials = config.NewTokenSourceStrategy("azure-managed-identity", auth.TokenSourceFn(
			func(ctx context.Context) (*oauth2.Token, error) {
				tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{AzureDatabricksScope}})
				if err != nil {
					return nil, fmt.Errorf("token for Azure Databricks: %w", err)
				}
				return &oauth2.Token{AccessToken: tok.Token, TokenType: "Bearer", Expiry: tok.ExpiresOn}, nil
			}))
	}
	api, err := client.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("databricks client: %w", err)
	}
	c.api, c.jobs, c.wsAPI, c.secrets = api, jobs.NewJobs(api), workspace.NewWorkspace(api), workspace.NewSecrets(api)
	return api, nil
}

// transport makes each SDK request a CLIENT span that carries the real
// traceparent, and holds back 429/503 answers for their Retry-After before
// the SDK retries them.
func (c *Client) transport() http.RoundTripper {
	base := http.DefaultTransport.(*http.Transport).Clone()
	return otelhttp.NewTransport(retryAfter{next: base, max: 30 * time.Second},
		otelhttp.WithTracerProvider(c.tp),
		otelhttp.WithPropagators(c.prop),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + r.URL.Path }),
	)
}

// Jobs returns the Jobs API, building the client if needed.
func (c *Client) Jobs() (*jobs.JobsAPI, error) {
	if _, err := c.build(); err != nil {
		return nil, Error(err)
	}
	return c.jobs, nil
}

// Workspace returns the Workspace API, building the client if needed.
func (c *Client) Workspace() (*workspace.WorkspaceAPI, error) {
	if _, err := c.build(); err != nil {
		return nil, Error(err)
	}
	return c.wsAPI, nil
}

// azureCredential is the user-assigned managed identity named by
// AZURE_CLIENT_ID, else the default chain (managed identity, workload
// identity, Azure CLI for local use).
func azureCredential(cfg Config) (azcore.TokenCredential, error) {
	if cfg.AzureClientID != "" {
		return azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ID: azidentity.ClientID(cfg.AzureClientID)})
	}
	return azidentity.NewDefaultAzureCredential(nil)
}

type explicitOnly struct{}

func (explicitOnly) Name() string                   { return "nbtrace settings" }
func (explicitOnly) Configure(*config.Config) error { return nil }

// RunNow starts the configured job with params and an idempotency token:
// Databricks starts at most one run per token. It returns the run id.
func (c *Client) RunNow(ctx context.Context, params map[string]string, token string) (int64, error) {
	j, err := c.Jobs()
	if err != nil {
		return 0, err
	}
	w, err := j.RunNow(ctx, jobs.RunNow{JobId: c.cfg.JobID, JobParameters: params, IdempotencyToken: token})
	if err != nil {
		return 0, Error(err)
	}
	return w.RunId, nil
}

// GetRun reads a run.
func (c *Client) GetRun(ctx context.Context, runID int64) (*jobs.Run, error) {
	j, err := c.Jobs()
	if err != nil {
		return nil, err
	}
	run, err := j.GetRun(ctx, jobs.GetRunRequest{RunId: runID})
	return run, Error(err)
}

// WaitRun polls the run with the SDK's waiter until it is terminated or
// skipped, or timeout passes; then it returns the run as last read, and
// done tells whether it had ended.
func (c *Client) WaitRun(ctx context.Context, runID int64, timeout time.Duration) (run *jobs.Run, done bool, err error) {
	j, err := c.Jobs()
	if err != nil {
		return nil, false, err
	}
	var last *jobs.Run
	run, err = j.WaitGetRunJobTerminatedOrSkipped(ctx, runID, timeout, func(r *jobs.Run) { last = r })
	if err == nil {
		return run, true, nil
	}
	if last != nil && ctx.Err() == nil {
		if run, gerr := c.GetRun(ctx, runID); gerr == nil {
			return run, Ended(run), nil
		}
		return last, false, nil
	}
	return nil, false, Error(err)
}

// Ended reports whether a run is in a final state: terminated, skipped or
// failed internally.
func Ended(r *jobs.Run) bool {
	if r == nil || r.State == nil {
		return false
	}
	switch r.State.LifeCycleState {
	case jobs.RunLifeCycleStateTerminated, jobs.RunLifeCycleStateSkipped, jobs.RunLifeCycleStateInternalError:
		return true
	}
	return false
}
