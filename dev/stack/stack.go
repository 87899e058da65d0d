// Package stack runs the local development stack: the app staged as the
// Functions host needs it, the host stand-in serving it on
// http://localhost:7071, the stand-in services A and B (the app's own
// simulate function), and an OTLP trace sink that prints every finished
// trace as a tree. Only Go is needed.
package stack

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/tailscale/hujson"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/nbtrace/nbtrace/dev/azurite"
	"github.com/nbtrace/nbtrace/dev/dbxstandin"
	"github.com/nbtrace/nbtrace/dev/entra"
	"github.com/nbtrace/nbtrace/dev/funchost"
	"github.com/nbtrace/nbtrace/dev/ingestion"
	"github.com/nbtrace/nbtrace/dev/otlpsink"
	"github.com/nbtrace/nbtrace/dev/stage"
	"github.com/nbtrace/nbtrace/handler/databricks"
	"github.com/nbtrace/nbtrace/handler/databricks/deploy"
)

// Options configures Start.
type Options struct {
	// RepoRoot is the project's root (go.mod, host.json, functions/).
	RepoRoot string
	// Addr is the host's address; localhost:7071 (func start's) by default,
	// or the LocalHttpPort of local.settings.json. "127.0.0.1:0" picks a
	// free port.
	Addr string
	// OTLPAddr is the trace sink's address; 127.0.0.1:4318, the OTLP/HTTP
	// port, by default. "127.0.0.1:0" picks a free port.
	OTLPAddr string
	// StageDir receives the staged app; a temporary folder by default.
	StageDir string
	// Forwarding, when not nil, overrides host.json's
	// enableForwardingHttpRequest in the staged copy.
	Forwarding *bool
	// Proxying, when not nil, overrides host.json's
	// enableProxyingHttpRequest in the staged copy.
	Proxying *bool
	// TelemetryMode, when set, is written as host.json's telemetryMode in
	// the staged copy (ApplicationInsights or OpenTelemetry).
	TelemetryMode string
	// HostGeneration is the generation of the Functions host the stand-in
	// behaves as; funchost.Gen2026, today's, by default.
	HostGeneration funchost.Generation
	// SettingsFile is read like func start reads local.settings.json; its
	// Values reach the handler as environment variables. Missing is fine.
	SettingsFile string
	// Env is added to the handler's environment last.
	Env []string
	// FunctionKeys, when set, are checked for non-anonymous functions.
	FunctionKeys []string
	// Traces receives each finished trace as a tree; nil prints none.
	Traces io.Writer
	// Log receives the host's and the handler's output; os.Stderr by default.
	Log io.Writer
	// Settle is how long a trace must go without new spans, once its root
	// span has arrived, before it is printed; spans that come later are
	// printed as an update after the same quiet time (see
	// otlpsink.Sink.PrintFinished).
	Settle time.Duration
	// Forward sends every export the sink receives on to this OTLP/HTTP
	// base URL as well (a local Jaeger, say).
	Forward string
	// Runner executes the notebook of each Databricks run; nil runs it
	// with Python (see NotebookRunner).
	Runner dbxstandin.Runner
	// DatabricksTiming sets the stand-in's queue, setup and cleanup
	// phases; zero values keep the defaults (short, but visible).
	DatabricksTiming *dbxstandin.Options
	// Auth is how the handler signs in to Databricks: AuthIdentity (the
	// default, as in Azure) or AuthToken.
	Auth Auth
	// Compute is what the deploy step defines the job to run on:
	// serverless (the default) or classic.
	Compute deploy.Compute
	// TimeScale is how many times faster than ServerlessStartup and
	// ClassicStartup the stand-in's runs start; TimeScale by default.
	TimeScale int
	// AppInsights starts an Application Insights ingestion stand-in
	// (Stack.Ingestion): the handler exports to it besides the sink, and
	// the notebook job to it alone. Under AuthIdentity it is Entra-only,
	// as infra/ deploys it (local authentication off): the handler signs
	// in with its managed identity, the notebook with the Unity Catalog
	// service credential of the access connector's identity, over HTTPS.
	// Under AuthToken it takes the key, which reaches the notebook
	// through the job's secret scope.
	AppInsights bool
	// Storage is where the handler claims finished runs, so that one of
	// its instances records each (its AzureWebJobsStorage): "" starts
	// Azurite while the handler builds, when it is installed (see
	// dev/azurite), and else leaves the handler its in-memory guard,
	// saying so; StorageNone leaves it that always; any other value is a
	// storage connection string (one Azurite shared by two stacks, say).
	// AzureWebJobsStorage settings in SettingsFile or Env win.
	Storage string
}

// StorageNone: no storage for the handler's claims of finished runs.
const StorageNone = "none"

// Auth is a way of signing in to Databricks.
type Auth string

const (
	// AuthIdentity: the handler signs in as a user-assigned managed
	// identity through a local identity endpoint of the App Service kind
	// (IDENTITY_ENDPOINT, IDENTITY_HEADER, AZURE_CLIENT_ID) with the
	// workspace's ARM id, as in Azure; the deploy step as a developer with
	// Owner on the workspace, as azd runs it. The Databricks stand-in is an
	// Azure workspace that admits Entra ID tokens as Azure Databricks does.
	AuthIdentity Auth = "identity"
	// AuthToken: a personal access token (DATABRICKS_TOKEN).
	AuthToken Auth = "token"
)

// Stack is a running local stack.
type Stack struct {
	// URL is the host's base URL, such as http://localhost:7071.
	URL string
	// OTLPURL is the sink's base URL; spans go to OTLPURL/v1/traces.
	OTLPURL string
	// DatabricksURL is the Databricks stand-in's workspace URL.
	DatabricksURL string
	Sink          *otlpsink.Sink
	Databricks    *dbxstandin.Server
	Host          *funchost.Host
	StageDir      string
	// JobID is the notebook job the deploy step created in the stand-in.
	JobID int64
	// Identity is the app's managed identity under AuthIdentity.
	Identity *entra.Principal
	// IngestionIdentity is the access connector's identity, which the
	// notebook signs in to Application Insights with, under AuthIdentity.
	IngestionIdentity *entra.Principal
	// Azurite is the storage of the handler's run claims, when the stack
	// started it (Options.Storage).
	Azurite *azurite.Server
	// Ingestion is the Application Insights ingestion stand-in under
	// Options.AppInsights, and AppInsightsConnectionString the handler's
	// connection string (the notebook's names the HTTPS endpoint).
	Ingestion                   *ingestion.Server
	AppInsightsConnectionString string
	notebookConnectionString    string
	tenant                      *entra.Tenant
	notebookEnv                 []string
	hostSrv                     *http.Server
	conns                       connTracker
	stop                        []func() error
}

// Start stages the app, starts the sink and the host (which starts the
// handler) and returns once the handler is ready. It listens on
// o.OTLPAddr and o.Addr before anything else: when it cannot, its error is
// a *ListenError.
func Start(ctx context.Context, o Options) (_ *Stack, err error) {
	if o.Log == nil {
		o.Log = os.Stderr
	}
	if o.Settle == 0 {
		o.Settle = time.Second
	}
	if o.OTLPAddr == "" {
		o.OTLPAddr = "127.0.0.1:4318"
	}
	values, localPort, err := readSettings(o.SettingsFile)
	if err != nil {
		return nil, err
	}
	if o.Addr == "" {
		o.Addr = "localhost:" + strconv.Itoa(localPort)
	}
	s := &Stack{Sink: otlpsink.New()}
	s.Sink.Forward = o.Forward
	s.Sink.Log = o.Log
	defer func() {
		if err != nil {
			_ = s.Stop()
		}
	}()

	// The two addresses the caller chooses are taken first, so that one
	// in use fails the start at once, not after the build.
	sinkLn, err := listen("trace sink", "OTLPAddr", o.OTLPAddr)
	if err != nil {
		return nil, err
	}
	sinkSrv := &http.Server{Handler: s.Sink, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = sinkSrv.Serve(sinkLn) }()
	s.OTLPURL = "http://" + sinkLn.Addr().String()
	printCtx, stopPrint := context.WithCancel(context.Background())
	s.stop = append(s.stop, func() error { stopPrint(); return sinkSrv.Close() })
	if o.Traces != nil {
		go s.Sink.PrintFinished(printCtx, o.Traces, o.Settle)
	}
	hostLn, err := listen("host", "Addr", o.Addr)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = hostLn.Close() // not served yet, or closed already by Stop
		}
	}()

	waitStorage := s.startStorage(ctx, o, values)
	if o.StageDir == "" {
		tmp, err := os.MkdirTemp("", "nbtrace-app-")
		if err != nil {
			return nil, err
		}
		s.stop = append(s.stop, func() error { return os.RemoveAll(tmp) })
		o.StageDir = filepath.Join(tmp, "app")
	}
	s.StageDir = o.StageDir
	// With an empty build cache this is the long wait of a first start.
	fmt.Fprintln(o.Log, "building the handler (the first build takes a few minutes; later ones seconds)…")
	began := time.Now()
	if err := stage.Stage(ctx, stage.Options{RepoRoot: o.RepoRoot, Out: o.StageDir, Stderr: o.Log}); err != nil {
		return nil, fmt.Errorf("stage the app: %w", err)
	}
	fmt.Fprintf(o.Log, "built the handler in %s\n", time.Since(began).Round(100*time.Millisecond))
	if err := editHostJSON(filepath.Join(o.StageDir, "host.json"), func(hj, ch map[string]any) {
		if o.Forwarding != nil {
			ch["enableForwardingHttpRequest"] = *o.Forwarding
		}
		if o.Proxying != nil {
			ch["enableProxyingHttpRequest"] = *o.Proxying
		}
		if o.TelemetryMode != "" {
			hj["telemetryMode"] = o.TelemetryMode
		}
	}); err != nil {
		return nil, err
	}

	// The host's own spans, as the Functions host records them in
	// OpenTelemetry mode, go to the same sink.
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(s.OTLPURL+"/v1/traces"))
	if err != nil {
		return nil, err
	}
	hostTP := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(100*time.Millisecond)),
		sdktrace.WithResource(resource.NewWithAttributes(semconv.SchemaURL,
			semconv.ServiceName("functions-host"), semconv.CloudProviderAzure, semconv.CloudPlatformAzureFunctions)),
	)
	s.stop = append(s.stop, func() error {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return hostTP.Shutdown(sctx)
	})

	if o.Auth == "" || o.Auth == AuthIdentity {
		// The tenant of infra/'s identities: the app's, and the one the
		// access connector holds for the notebook.
		s.tenant = entra.NewTenant()
		app := s.tenant.AddManagedIdentity("id-nbtrace-local")
		ingest := s.tenant.AddManagedIdentity("id-ingest-nbtrace-local")
		s.Identity, s.IngestionIdentity = &app, &ingest
	}
	var telemetryEnv []string
	if o.AppInsights {
		if err := s.startIngestion(); err != nil {
			return nil, err
		}
		telemetryEnv = append(telemetryEnv, "APPLICATIONINSIGHTS_CONNECTION_STRING="+s.AppInsightsConnectionString)
		if s.Identity != nil {
			telemetryEnv = append(telemetryEnv, "APPLICATIONINSIGHTS_AUTHENTICATION_STRING=Authorization=AAD;ClientId="+s.Identity.ClientID)
		}
	}
	dbxEnv, err := s.startDatabricks(ctx, o)
	if err != nil {
		return nil, err
	}

	storageEnv, err := waitStorage()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(hostLn.Addr().String())
	s.URL = "http://localhost:" + port
	env := append([]string{
		"WEBSITE_HOSTNAME=localhost:" + port, // as func start sets it
		"FUNCTIONS_WORKER_RUNTIME=custom",
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + s.OTLPURL,
		"OTEL_BSP_SCHEDULE_DELAY=100",
	}, slices.Concat(telemetryEnv, dbxEnv, storageEnv)...)
	env = append(env, values...)
	env = append(env, o.Env...)
	host, err := funchost.Start(ctx, funchost.Config{
		AppRoot: o.StageDir, Env: env, TracerProvider: hostTP,
		Log: o.Log, FunctionKeys: o.FunctionKeys, Generation: o.HostGeneration,
	})
	if err != nil {
		return nil, err
	}
	s.Host = host
	hostSrv := &http.Server{Handler: host, ReadHeaderTimeout: 10 * time.Second, ConnState: s.conns.track}
	go func() { _ = hostSrv.Serve(hostLn) }()
	s.hostSrv = hostSrv
	// Stop order: the host's listener (in-flight requests are answered),
	// the handler (killed, as the host kills it: what it has not exported
	// by then is lost), then the host's spans, then the sink.
	// (s.stop runs last added first.)
	s.stop = append(s.stop,
		host.Stop,
		func() error {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return hostSrv.Shutdown(sctx)
		},
	)
	return s, nil
}

// ListenError is Start's error when it cannot listen on one of the two
// addresses its caller chooses (in use, say), so that a command can name
// its own option for it.
type ListenError struct {
	// What is what would have listened: "host" or "trace sink".
	What string
	// Option is the field of Options that sets the address: "Addr" or
	// "OTLPAddr".
	Option string
	// Addr is the address, as given or defaulted.
	Addr string
	// Err is net.Listen's error (errors.Is(err, syscall.EADDRINUSE) when
	// the address is in use).
	Err error
}

func (e *ListenError) Error() string { return e.What + ": " + e.Err.Error() }

func (e *ListenError) Unwrap() error { return e.Err }

// listen listens on addr, for what, set by option; its error is a
// *ListenError.
func listen(what, option, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &ListenError{What: what, Option: option, Addr: addr, Err: err}
	}
	return ln, nil
}

// DeliveryWindow: killed by the host this long after its last answer or
// later, the handler has delivered every span and log record of the
// invocations it answered (the default flush policy, async, starts their
// export before each answer is written). go run ./dev bench measures it.
const DeliveryWindow = 50 * time.Millisecond

// Start-up of each kind of Databricks compute, which the stand-in's runs
// take before their notebook starts, TimeScale times faster.
const (
	// ServerlessStartup: serverless compute for jobs, performance-optimized
	// (the default): "workloads typically start in less than a minute"
	// (https://docs.databricks.com/compute/serverless/performance-modes).
	ServerlessStartup = 50 * time.Second
	// ClassicStartup: a new job cluster. Databricks publishes no figure;
	// users report "several minutes" (dbt-labs/dbt-spark#10) and "5-6
	// minutes" (jupyter-databricks-kernel#79).
	ClassicStartup = 5 * time.Minute
	// TimeScale: the local stack runs start-ups this many times faster,
	// by default.
	TimeScale = 100
)

// standinToken is the local stand-in's personal access token, its
// developer's.
var standinToken = NewToken()

// NewToken returns a personal access token for a Databricks stand-in:
// random, since the stand-in runs the notebooks it is given and other
// users of the machine can reach loopback.
func NewToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "dapi" + hex.EncodeToString(b)
}

// WorkspaceResourceID is the ARM id of the stand-in workspace.
const WorkspaceResourceID = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-nbtrace-local/providers/Microsoft.Databricks/workspaces/dbw-nbtrace-local"

// startDatabricks starts the Databricks stand-in on a free loopback port
// and runs the deploy step against it, as azd runs it against a real
// workspace: the notebook is uploaded, the job created and the app's
// identity allowed to run it, no manual step. It returns the handler's
// Databricks settings.
func (s *Stack) startDatabricks(ctx context.Context, o Options) ([]string, error) {
	if o.TimeScale <= 0 {
		o.TimeScale = TimeScale
	}
	opts := dbxstandin.Options{Token: standinToken, Runner: o.Runner, FirstRunID: dbxstandin.RunIDSeed(),
		QueueDelay: 50 * time.Millisecond, CleanupDelay: 50 * time.Millisecond,
		SetupDelay: ClassicStartup / time.Duration(o.TimeScale), ServerlessSetupDelay: ServerlessStartup / time.Duration(o.TimeScale)}
	if t := o.DatabricksTiming; t != nil {
		opts.QueueDelay, opts.SetupDelay, opts.CleanupDelay, opts.ServerlessSetupDelay = t.QueueDelay, t.SetupDelay, t.CleanupDelay, t.ServerlessSetupDelay
	}
	// The notebook exports to the same sink as everything else, or to
	// Application Insights alone.
	env := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": s.OTLPURL}
	if o.AppInsights {
		env = map[string]string{"APPLICATIONINSIGHTS_CONNECTION_STRING": s.notebookConnectionString}
	}
	var handlerEnv []string
	deployOpts := deploy.DefaultOptions(o.RepoRoot)
	if o.Compute != "" {
		deployOpts.Compute = o.Compute
	}
	var clientOpts []databricks.Option
	switch o.Auth {
	case AuthToken:
		env["DATABRICKS_TOKEN"] = standinToken
		handlerEnv = append(handlerEnv, "DATABRICKS_TOKEN="+standinToken)
	case AuthIdentity, "":
		tenant, app, ingest := s.tenant, *s.Identity, *s.IngestionIdentity
		developer := tenant.AddUser("you@nbtrace.local")
		// As infra/ grants: Contributor on the workspace for the deploying
		// developer, who is let in as an admin; nothing for the app's
		// identity, which the deploy step makes a workspace user. The
		// access connector holds the ingestion identity.
		connector := tenant.ResourceGroup + "/providers/Microsoft.Databricks/accessConnectors/dbac-nbtrace-local"
		opts.Azure = &dbxstandin.Azure{Tenant: tenant, ResourceID: WorkspaceResourceID,
			Contributors: []string{developer.ObjectID}, AccessConnectors: map[string][]string{connector: {ingest.ResourceID}}}
		secret := make([]byte, 16)
		_, _ = rand.Read(secret)
		idURL, err := s.serve(tenant.NewIdentityEndpoint(hex.EncodeToString(secret), app))
		if err != nil {
			return nil, fmt.Errorf("identity endpoint: %w", err)
		}
		if o.AppInsights {
			// What dbutils.credentials gives notebook code on Databricks:
			// the access connector's identity, here through an identity
			// endpoint of the notebook's own.
			nbSecret := make([]byte, 16)
			_, _ = rand.Read(nbSecret)
			nbIDURL, err := s.serve(tenant.NewIdentityEndpoint(hex.EncodeToString(nbSecret), ingest))
			if err != nil {
				return nil, fmt.Errorf("identity endpoint: %w", err)
			}
			s.notebookEnv = append(s.notebookEnv, "IDENTITY_ENDPOINT="+nbIDURL+"/msi/token", "IDENTITY_HEADER="+hex.EncodeToString(nbSecret))
			deployOpts.Ingestion = deploy.ServiceCredential{Name: "nbtrace-ingestion", AccessConnectorID: connector, ManagedIdentityID: ingest.ResourceID}
		}
		env["DATABRICKS_AZURE_RESOURCE_ID"] = WorkspaceResourceID
		clientOpts = append(clientOpts, databricks.WithCredential(tenant.Credential(developer)))
		deployOpts.AppClientID = app.ClientID
		handlerEnv = append(handlerEnv, "IDENTITY_ENDPOINT="+idURL+"/msi/token", "IDENTITY_HEADER="+hex.EncodeToString(secret),
			"AZURE_CLIENT_ID="+app.ClientID)
	default:
		return nil, fmt.Errorf("Databricks sign-in %q is not %s or %s", o.Auth, AuthIdentity, AuthToken)
	}
	if opts.Runner == nil {
		opts.Runner = NotebookRunner(o.RepoRoot, o.Log, s.notebookEnv...)
	}
	s.Databricks = dbxstandin.New(opts)
	url, err := s.serve(s.Databricks)
	if err != nil {
		return nil, fmt.Errorf("databricks stand-in: %w", err)
	}
	s.DatabricksURL = url
	s.Databricks.SetBaseURL(s.DatabricksURL)
	s.stop = append(s.stop, func() error { s.Databricks.Close(); return nil })
	env["DATABRICKS_HOST"] = s.DatabricksURL

	getenv := func(k string) string { return env[k] }
	cfg, err := databricks.ConnectionFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	spec, err := deploy.NewJobSpec(getenv, deployOpts)
	if err != nil {
		return nil, err
	}
	id, err := deploy.Deploy(ctx, databricks.New(cfg, noop.NewTracerProvider(), propagation.TraceContext{}, clientOpts...), spec)
	if err != nil {
		return nil, fmt.Errorf("deploy the notebook job to the stand-in: %w", err)
	}
	s.JobID = id
	return append(handlerEnv, "DATABRICKS_HOST="+s.DatabricksURL, "DATABRICKS_JOB_ID="+strconv.FormatInt(id, 10)), nil
}

// startIngestion starts the Application Insights ingestion stand-in: over
// HTTP for the handler (loopback, where its exporter may send a token) and
// over HTTPS for the notebook (whose exporter sends tokens only over TLS),
// trusted through REQUESTS_CA_BUNDLE. With the stack's identities it takes
// only their tokens, as infra/'s resource with local authentication off.
func (s *Stack) startIngestion() error {
	s.Ingestion = &ingestion.Server{}
	if s.Identity != nil {
		s.Ingestion.Entra = &ingestion.Entra{Tenant: s.tenant, Publishers: []string{s.Identity.ObjectID, s.IngestionIdentity.ObjectID}}
	}
	url, err := s.serve(s.Ingestion)
	if err != nil {
		return fmt.Errorf("ingestion stand-in: %w", err)
	}
	cert, caPEM, err := ingestion.SelfSigned()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("ingestion stand-in: %w", err)
	}
	srv := &http.Server{Handler: s.Ingestion, ReadHeaderTimeout: 5 * time.Second, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	s.stop = append(s.stop, srv.Close)
	dir, err := os.MkdirTemp("", "nbtrace-ingestion-")
	if err != nil {
		return err
	}
	s.stop = append(s.stop, func() error { return os.RemoveAll(dir) })
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, caPEM, 0o644); err != nil {
		return err
	}
	ikey := uuid.NewString()
	s.AppInsightsConnectionString = "InstrumentationKey=" + ikey + ";IngestionEndpoint=" + url + "/"
	s.notebookConnectionString = "InstrumentationKey=" + ikey + ";IngestionEndpoint=https://" + ln.Addr().String() + "/"
	s.notebookEnv = append(s.notebookEnv, "REQUESTS_CA_BUNDLE="+ca)
	return nil
}

// serve serves h on a free loopback port until the stack stops, and
// returns its base URL.
func (s *Stack) serve(h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	s.stop = append(s.stop, srv.Close)
	return "http://" + ln.Addr().String(), nil
}

// CloseIdleConnections closes every idle keep-alive connection between the
// host and the handler, both ways: the host's to the handler, and the
// handler's to the host's endpoint (closed on the host's side), so that
// what the handler holds at rest can be measured without connection pools.
func (s *Stack) CloseIdleConnections() {
	s.Host.CloseIdleConnections()
	s.conns.closeIdle()
}

// connTracker knows the state of each connection to the host's endpoint,
// so that those not serving a request can be closed: idle keep-alive
// ones, and new ones no request came on yet (a client dials for a request
// that is then cancelled, and pools the connection).
type connTracker struct {
	mu    sync.Mutex
	conns map[net.Conn]http.ConnState
}

func (c *connTracker) track(conn net.Conn, st http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conns == nil {
		c.conns = map[net.Conn]http.ConnState{}
	}
	switch st {
	case http.StateClosed, http.StateHijacked:
		delete(c.conns, conn)
	default:
		c.conns[conn] = st
	}
}

func (c *connTracker) closeIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for conn, st := range c.conns {
		if st == http.StateIdle || st == http.StateNew {
			_ = conn.Close()
		}
	}
}

// Stop shuts everything down in order and removes the temporary folder.
func (s *Stack) Stop() error {
	var errs []error
	for i := len(s.stop) - 1; i >= 0; i-- {
		if err := s.stop[i](); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	s.stop = nil
	return errors.Join(errs...)
}

// readSettings reads local.settings.json as Core Tools does (comments and
// trailing commas allowed): Values become environment variables (empty ones
// are left out, so a template's blanks do not unset defaults), and
// Host.LocalHttpPort is the port, 7071 by default.
func readSettings(path string) ([]string, int, error) {
	port := 7071
	if path == "" {
		return nil, port, nil
	}
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, port, nil
	}
	if err != nil {
		return nil, 0, err
	}
	std, err := hujson.Standardize(raw)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	var f struct {
		IsEncrypted bool
		Values      map[string]any
		Host        struct{ LocalHttpPort int }
	}
	if err := json.Unmarshal(std, &f); err != nil {
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	if f.IsEncrypted {
		return nil, 0, fmt.Errorf("%s is encrypted; the local stack reads only plain settings", path)
	}
	if f.Host.LocalHttpPort != 0 {
		port = f.Host.LocalHttpPort
	}
	var env []string
	for k, v := range f.Values {
		if str := fmt.Sprint(v); v != nil && str != "" {
			env = append(env, k+"="+str)
		}
	}
	sort.Strings(env)
	return env, port, nil
}

// editHostJSON changes a staged host.json: edit gets it and its
// customHandler section.
func editHostJSON(path string, edit func(hj, customHandler map[string]any)) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var hj map[string]any
	if err := json.Unmarshal(raw, &hj); err != nil {
		return err
	}
	ch, _ := hj["customHandler"].(map[string]any)
	if ch == nil {
		return fmt.Errorf("%s has no customHandler", path)
	}
	edit(hj, ch)
	out, err := json.MarshalIndent(hj, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, 0o644)
}

// RepoRoot finds the project's root from dir upwards: the folder whose
// go.mod declares this module.
func RepoRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/nbtrace/nbtrace\n") {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no nbtrace go.mod above %s", dir)
		}
	}
}
