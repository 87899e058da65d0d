package databricks

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/databricks/databricks-sdk-go/client"
	"github.com/databricks/databricks-sdk-go/config"
	"github.com/databricks/databricks-sdk-go/service/jobs"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Client is a lazily built Databricks client.
type Client struct {
	cfg     Config
	tp      trace.TracerProvider
	prop    propagation.TextMapPropagator
	log     *slog.Logger
	newCred func(Config) (azcore.TokenCredential, error)
	mu      sync.Mutex
	api     *client.DatabricksClient
	jobs    *jobs.JobsAPI
}

// Option configures a Client.
type Option func(*Client)

// WithLogger sets where the client says how it signs in; slog.Default()
// by default.
func WithLogger(l *slog.Logger) Option { return func(c *Client) { c.log = l } }

// WithCredential signs in with cred when DATABRICKS_TOKEN is not set,
// instead of the managed identity of AZURE_CLIENT_ID or the default Azure
// credential chain.
func WithCredential(cred azcore.TokenCredential) Option {
	return func(c *Client) {
		c.newCred = func(Config) (azcore.TokenCredential, error) { return cred, nil }
	}
}

// New returns a client; nothing is built or dialled until its first call.
func New(cfg Config, tp trace.TracerProvider, prop propagation.TextMapPropagator, opts ...Option) *Client {
	c := &Client{cfg: cfg, tp: tp, prop: prop, log: slog.Default(), newCred: azureCredential}
	for _, o := range opts {
		o(c)
	}
	return c
}

// JobID is the configured job.
func (c *Client) JobID() int64 { return c.cfg.JobID }

// Host is the workspace URL.
func (c *Client) Host() string { return c.cfg.Host }

// API returns the SDK client, building it on first use. A failure is not
// kept, so a later call tries again (a managed identity endpoint that was
// not ready). The SDK reads the workspace's discovery document
// (/.well-known/databricks-config) while it builds the client: that call
// is made in ctx, so its span belongs to the invocation that needed the
// client.
//
// The client signs in with DATABRICKS_TOKEN when it is set (local
// development; the managed identity and DATABRICKS_AZURE_RESOURCE_ID are
// then not used, and one log line says so), else as an Entra ID identity
// (see azureCredentials).
func (c *Client) API(ctx context.Context) (*client.DatabricksClient, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.api != nil {
		return c.api, nil
	}
	cfg := &config.Config{
		Host:                c.cfg.Host,
		HTTPTimeoutSeconds:  int(c.cfg.HTTPTimeout / time.Second),
		RetryTimeoutSeconds: int(c.cfg.RetryTimeout / time.Second),
		HTTPTransport:       c.transport(),
		// Only the values given here: no DATABRICKS_* environment and no
		// ~/.databrickscfg profile can change which workspace or identity
		// is used.
		Loaders: []config.Loader{explicitOnly{}},
	}
	// The SDK's own fetch, under ctx's span rather than in the background
	// context the SDK resolves its configuration in; not cut short by
	// ctx's end (a caller that went away), which would leave the client
	// built without the workspace's metadata.
	under := context.WithoutCancel(ctx)
	cfg.HostMetadataResolver = func(_ context.Context, host string) (*config.HostMetadata, error) {
		return cfg.DefaultHostMetadataResolver()(under, host)
	}
	if c.cfg.Token != "" {
		cfg.Token = c.cfg.Token
		cfg.Credentials = config.PatCredentials{}
		if c.cfg.AzureResourceID != "" || c.cfg.AzureClientID != "" {
			c.log.Warn("DATABRICKS_TOKEN is set: signing in to Databricks with it; the managed identity and DATABRICKS_AZURE_RESOURCE_ID are not used")
		}
	} else {
		cred, err := c.newCred(c.cfg)
		if err != nil {
			return nil, fmt.Errorf("azure credential: %w", err)
		}
		cfg.Credentials = azureCredentials{cred: cred, resourceID: c.cfg.AzureResourceID}
	}
	api, err := client.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("databricks client: %w", err)
	}
	c.api, c.jobs = api, jobs.NewJobs(api)
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

// Jobs returns the Jobs API, building the client in ctx if needed.
func (c *Client) Jobs(ctx context.Context) (*jobs.JobsAPI, error) {
	if _, err := c.API(ctx); err != nil {
		return nil, Error(err)
	}
	return c.jobs, nil
}

type explicitOnly struct{}

func (explicitOnly) Name() string                   { return "nbtrace settings" }
func (explicitOnly) Configure(*config.Config) error { return nil }

// RunNow starts the configured job with params and an idempotency token:
// Databricks starts at most one run per token. It returns the run id.
func (c *Client) RunNow(ctx context.Context, params map[string]string, token string) (int64, error) {
	j, err := c.Jobs(ctx)
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
	j, err := c.Jobs(ctx)
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
	j, err := c.Jobs(ctx)
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
