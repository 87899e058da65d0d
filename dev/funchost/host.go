package funchost

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/nbtrace/nbtrace/handler/manifest"
)

// Version is the host version the stand-in reports, the one its behaviour
// was read from.
const Version = "4.1037.0.0"

// Config configures a Host.
type Config struct {
	// AppRoot holds host.json, the handler and one folder per function.
	AppRoot string
	// Env is added to the handler's environment (local.settings.json
	// Values, as func start adds them).
	Env []string
	// Environ is the host's own environment, which the handler inherits
	// before Env; os.Environ() when nil.
	Environ []string
	// TracerProvider records the host's own spans; none by default.
	TracerProvider trace.TracerProvider
	// Stdout and Stderr, when set, receive a raw copy of the handler's
	// output; the host logs it line by line in any case (see Logs).
	Stdout, Stderr io.Writer
	// Log receives the host's log, one line a record ("[host] Level
	// Category: message"): the handler's output and its invocations' Logs
	// among them; os.Stderr by default.
	Log io.Writer
	// Generation is the host generation the stand-in behaves as; Gen2026,
	// the hosts Azure runs now, by default.
	Generation Generation
	// FunctionKeys, when not empty, are the keys accepted for functions
	// whose authLevel is function or admin (as ?code= or x-functions-key).
	// Empty: no key is checked, as under func start.
	FunctionKeys []string
}

// Host is a running host stand-in.
type Host struct {
	cfg         Config
	app         *manifest.App
	exePath     string
	args        []string
	workingDir  string
	initTimeout time.Duration
	client      *http.Client
	transport   *http.Transport
	tracer      trace.Tracer
	prop        propagation.TextMapPropagator
	sup         supervisor
	port        int
	telemetry   TelemetryMode
	logs        hostLog
	logMu       sync.Mutex
	cancel      context.CancelFunc
}

// hostJSON holds the host.json fields the stand-in needs beyond manifest.
type hostJSON struct {
	FunctionTimeout string                     `json:"functionTimeout"`
	TelemetryMode   string                     `json:"telemetryMode"`
	Logging         map[string]json.RawMessage `json:"logging"`
	CustomHandler   struct {
		Description struct {
			Arguments        []string `json:"arguments"`
			WorkingDirectory string   `json:"workingDirectory"`
		} `json:"description"`
		InitializationTimeout string `json:"initializationTimeout"`
	} `json:"customHandler"`
}

// Start loads the app, starts the handler and waits until it is ready.
func Start(ctx context.Context, cfg Config) (*Host, error) {
	if cfg.Log == nil {
		cfg.Log = os.Stderr
	}
	if cfg.Generation == "" {
		cfg.Generation = Gen2026
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = noop.NewTracerProvider()
	}
	root, err := filepath.Abs(cfg.AppRoot)
	if err != nil {
		return nil, err
	}
	cfg.AppRoot = root
	app, err := manifest.Load(os.DirFS(root))
	if err != nil {
		return nil, fmt.Errorf("load the app at %s: %w", root, err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "host.json"))
	if err != nil {
		return nil, err
	}
	var hj hostJSON
	if err := json.Unmarshal(raw, &hj); err != nil {
		return nil, fmt.Errorf("host.json: %w", err)
	}
	initTimeout, err := timeSpan(hj.CustomHandler.InitializationTimeout, 30*time.Second)
	if err != nil {
		return nil, fmt.Errorf("host.json customHandler.initializationTimeout: %w", err)
	}
	// Consumption plans default to 5 minutes; the HttpClient's timeout is
	// functionTimeout plus one minute (DefaultHttpWorkerService).
	fnTimeout, err := timeSpan(hj.FunctionTimeout, 5*time.Minute)
	if err != nil {
		return nil, fmt.Errorf("host.json functionTimeout: %w", err)
	}
	wd := hj.CustomHandler.Description.WorkingDirectory
	if wd == "" {
		wd = root
	} else if !filepath.IsAbs(wd) {
		wd = filepath.Join(root, wd)
	}
	rules, err := parseLogRules(hj.Logging)
	if err != nil {
		return nil, fmt.Errorf("host.json: %w", err)
	}
	// The host picks the handler's port once and keeps it across restarts
	// (HttpWorkerOptionsSetup: options.Port = GetUnusedTcpPort()).
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	h := &Host{
		cfg: cfg, app: app, exePath: app.Host.ExecutablePath, args: hj.CustomHandler.Description.Arguments,
		workingDir: wd, initTimeout: initTimeout, port: port,
		logs:   hostLog{rules: rules, appInsight: hasSetting(cfg.Env, "APPLICATIONINSIGHTS_CONNECTION_STRING")},
		tracer: cfg.TracerProvider.Tracer("Microsoft.Azure.WebJobs.Script"),
		prop:   propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = 512
	h.transport = base
	h.telemetry = parseTelemetryMode(hj.TelemetryMode)
	h.client = &http.Client{
		Timeout:       fnTimeout + time.Minute,
		Transport:     hopTransport(base, cfg.Generation, h.telemetry, cfg.TracerProvider),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h.cancel = cancel
	w, err := h.startWorker(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	h.sup.current = w
	go h.supervise(sctx, w)
	h.logf("host ready (a %s host, %s telemetry): %d functions, handler on %s", cfg.Generation, h.telemetry, len(app.Functions), w.baseURL())
	return h, nil
}

// App returns the loaded app.
func (h *Host) App() *manifest.App { return h.app }

// Stop stops the host: it kills the handler as the host does when it
// shuts down or restarts (WorkerProcess.Dispose: Process.Kill, SIGKILL on
// Linux; the host never sends SIGTERM), so the handler flushes nothing at
// the end: what it has not sent by then is lost.
func (h *Host) Stop() error {
	h.sup.mu.Lock()
	h.sup.stopped = true
	w := h.sup.current
	h.sup.mu.Unlock()
	h.cancel()
	if w != nil {
		w.dispose(h)
	}
	return nil
}

// Logs returns the host's log records so far: what its console and files
// show.
func (h *Host) Logs() []LogRecord {
	h.logs.mu.Lock()
	defer h.logs.mu.Unlock()
	return append([]LogRecord(nil), h.logs.records...)
}

// AppInsightsLogs returns the records the host's Application Insights
// logger sent (none when the app has no APPLICATIONINSIGHTS_CONNECTION_STRING):
// those host.json's logging rules let through for the provider
// "ApplicationInsights".
func (h *Host) AppInsightsLogs() []LogRecord {
	h.logs.mu.Lock()
	defer h.logs.mu.Unlock()
	return append([]LogRecord(nil), h.logs.sent...)
}

// log records r in the host's logs, if host.json's rules let it through,
// and prints it.
func (h *Host) log(r LogRecord) {
	if !h.logs.add(r) {
		return
	}
	inv := ""
	if r.InvocationID != "" {
		inv = " (" + r.InvocationID + ")"
	}
	h.logMu.Lock()
	defer h.logMu.Unlock()
	fmt.Fprintf(h.cfg.Log, "[host] %s %s%s: %s\n", r.Level, r.Category, inv, r.Message)
}

// console logs a line of the handler's output.
func (h *Host) console(line string, stderr bool, workerID string) {
	h.log(consoleRecord(line, stderr, workerID))
}

func hasSetting(env []string, name string) bool {
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == name && v != "" {
			return true
		}
	}
	return false
}

// KillHandler kills the handler process abruptly, for tests of the host's
// restart; the supervisor starts a new one.
func (h *Host) KillHandler() {
	h.sup.mu.Lock()
	w := h.sup.current
	h.sup.mu.Unlock()
	if w != nil {
		_ = w.cmd.Process.Kill()
	}
}

// CloseIdleConnections closes the host's idle keep-alive connections to
// the handler.
func (h *Host) CloseIdleConnections() { h.transport.CloseIdleConnections() }

// HandlerProcess says which handler process is running now: its process
// id and the base URL the host talks to it on (http://127.0.0.1:port).
// ok is false while no handler is running (starting or restarting).
func (h *Host) HandlerProcess() (pid int, baseURL string, ok bool) {
	h.sup.mu.Lock()
	w := h.sup.current
	h.sup.mu.Unlock()
	if w == nil {
		return 0, "", false
	}
	return w.cmd.Process.Pid, w.baseURL(), true
}

// ServeHTTP serves the app's public endpoint, http://localhost:7071/api/….
func (h *Host) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := h.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	fn, values, found, _ := h.app.Match(r.Method, r.URL.EscapedPath())
	name := r.Method + " " + r.URL.Path
	if found {
		name = fn.Name // the host's request telemetry is named after the function
	}
	ctx, span := h.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
		semconv.HTTPRequestMethodKey.String(r.Method), semconv.URLPath(r.URL.Path)))
	defer span.End()
	r = r.WithContext(ctx)
	rec := &statusRecorder{ResponseWriter: w}
	switch {
	case !found:
		// ASP.NET Core routing answers 404, with no body, for an unknown
		// route and for a method the route does not allow.
		rec.WriteHeader(http.StatusNotFound)
	case !h.authorized(fn, r):
		rec.WriteHeader(http.StatusUnauthorized) // no body either
	case h.cfg.Generation.mode(h.app.Host, fn) == manifest.Forwarding:
		h.forward(rec, r, fn)
	default:
		h.invokePayload(rec, r, fn, values)
	}
	span.SetAttributes(semconv.HTTPResponseStatusCode(rec.status()))
	if rec.status() >= 500 {
		span.SetStatus(codes.Error, http.StatusText(rec.status()))
	}
}

func (h *Host) authorized(fn manifest.Function, r *http.Request) bool {
	if len(h.cfg.FunctionKeys) == 0 || fn.AuthLevel == "anonymous" {
		return true
	}
	key := r.Header.Get("X-Functions-Key")
	if key == "" {
		key = r.URL.Query().Get("code")
	}
	for _, k := range h.cfg.FunctionKeys {
		if key != "" && key == k {
			return true
		}
	}
	return false
}

func (h *Host) logf(format string, args ...any) {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	fmt.Fprintf(h.cfg.Log, "[host] "+format+"\n", args...)
}

// timeSpan parses a .NET TimeSpan "hh:mm:ss" (or a Go duration).
func timeSpan(s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	var hh, mm, ss int
	if n, _ := fmt.Sscanf(s, "%d:%d:%d", &hh, &mm, &ss); n == 3 {
		if hh < 0 {
			return def, nil // -1: unbounded; the stand-in keeps its default
		}
		return time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute + time.Duration(ss)*time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a time span such as 00:05:00", s)
	}
	return d, nil
}

// keepExisting injects the trace context only into a request that has no
// traceparent yet: .NET's DiagnosticsHandler never overwrites one, so in
// forwarding mode the caller's own traceparent reaches the handler.
type keepExisting struct{ propagation.TextMapPropagator }

func (k keepExisting) Inject(ctx context.Context, c propagation.TextMapCarrier) {
	if c.Get("traceparent") != "" {
		return
	}
	k.TextMapPropagator.Inject(ctx, c)
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(p)
}

func (s *statusRecorder) status() int {
	if s.code == 0 {
		return http.StatusOK
	}
	return s.code
}
