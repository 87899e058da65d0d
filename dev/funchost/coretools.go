package funchost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// FuncStartEnv is what `func start` adds to its own environment before the
// Functions host starts the handler, which inherits it: the app root's
// local.settings.json Values, WEBSITE_HOSTNAME, the connection strings,
// AzureWebJobsScriptRoot and AZURE_FUNCTIONS_ENVIRONMENT. environ is func
// start's environment; port the one it listens on; scriptRoot the folder it
// runs (--script-root). warnings are what func start prints about settings
// it skips. The error is where func start stops: settings it cannot read,
// no worker runtime (it would ask for one), or a setting it sets itself.
func FuncStartEnv(s LocalSettings, environ []string, port int, scriptRoot string) (env, warnings []string, err error) {
	// PreRunConditions reads the settings first (StartHostAction.cs:757,
	// GetCurrentWorkerRuntimeLanguage with refreshSecrets), then insists on
	// a worker runtime (StartHostAction.cs:766).
	values, err := s.Plain()
	if err != nil {
		return nil, nil, err
	}
	current := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			current[k] = v
		}
	}
	// EnsureWorkerRuntimeIsSet (StartHostAction.cs:947-965): a non-empty
	// FUNCTIONS_WORKER_RUNTIME in the environment, or the key in the file;
	// otherwise Core Tools shows a selection prompt and writes the answer
	// into the app root's local.settings.json (WorkerRuntimeLanguageHelper.cs
	// SetWorkerRuntime, 246-258), encrypted when the file was missing. The
	// stand-in cannot answer a prompt: it stops there.
	if rt := current[workerRuntime]; rt != "" {
		if err := checkWorkerRuntime("the environment", map[string]string{workerRuntime: rt}); err != nil {
			return nil, nil, err
		}
	} else if !s.HasWorkerRuntime() {
		where := s.Path
		if !s.Exists {
			where += " (missing)"
		}
		return nil, nil, fmt.Errorf("FUNCTIONS_WORKER_RUNTIME is set neither in %s nor in the environment: "+
			"func start would ask for the worker runtime and write it there, and the handler would start without any other setting "+
			"(stage the folder with go run ./dev stage -local, which copies local.settings.json into it)", where)
	} else if err := checkWorkerRuntime(s.Path, values); err != nil {
		return nil, nil, err
	}

	// GetConfigurationSettings (StartHostAction.cs:296-345). Adding a key the
	// file already has throws (Dictionary.Add): func start stops.
	settings := map[string]string{}
	for k, v := range values {
		settings[k] = v
	}
	add := func(k, v string) error {
		_, dup := settings[k]
		for _, n := range s.Nulls {
			dup = dup || n == k
		}
		if dup {
			return fmt.Errorf("%s sets %s, which func start sets itself: it stops with \"An item with the same key has already been added. Key: %s\"; remove it", s.Path, k, k)
		}
		settings[k] = v
		return nil
	}
	// WEBSITE_HOSTNAME is the authority of http://localhost:{port}
	// (StartHostAction.cs:299, Setup at 927-935).
	if err := add("WEBSITE_HOSTNAME", "localhost:"+strconv.Itoa(port)); err != nil {
		return nil, nil, err
	}
	for name, cs := range s.ConnectionStrings { // StartHostAction.cs:302-303
		if err := add("ConnectionStrings:"+name, cs); err != nil {
			return nil, nil, err
		}
	}
	// The script root, absolute (ConsoleApp.cs:464 GetFullPath).
	if err := add("AzureWebJobsScriptRoot", scriptRoot); err != nil { // StartHostAction.cs:304
		return nil, nil, err
	}
	settings["AZURE_FUNCTIONS_ENVIRONMENT"] = "Development" // StartHostAction.cs:328, overriding the file's
	// Every function a custom handler's manifest loads is an httpTrigger,
	// which needs no AzureWebJobsStorage (CheckNonOptionalSettings,
	// StartHostAction.cs:835-866; Common/Constants.cs:129 TriggersWithoutStorage).

	// UpdateEnvironmentVariables (StartHostAction.cs:352-376): the
	// environment wins over the file; an empty value sets nothing on Linux
	// and macOS and an empty variable on Windows
	// (NativeMethods/EnvironmentNativeMethods.cs:15-34), the same to a
	// handler reading os.Getenv; a null one is skipped.
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch v := settings[k]; {
		case k == "":
			warnings = append(warnings, "Skipping local setting with empty key.")
		case current[k] != "":
			warnings = append(warnings, fmt.Sprintf("Skipping '%s' from local settings as it's already defined in current environment variables.", k))
		case v != "":
			env = append(env, k+"="+v)
		}
	}
	for _, k := range s.Nulls {
		warnings = append(warnings, fmt.Sprintf("Skipping '%s' because value is null", k))
	}
	return env, warnings, nil
}

// CoreToolsOptions configures StartCoreTools: what `func start
// --script-root ScriptRoot [--port Port]` is given.
type CoreToolsOptions struct {
	// ScriptRoot is the folder func start runs (--script-root); the
	// working directory when empty.
	ScriptRoot string
	// Port is --port; 0: Host.LocalHttpPort of local.settings.json, else
	// 7071.
	Port int
	// Environ is func start's environment; os.Environ() when nil. The
	// handler's environment is Environ plus what func start adds to it.
	Environ []string
	// Log receives the host's log and func start's warnings; os.Stderr by
	// default. Stdout and Stderr, when set, receive a raw copy of the
	// handler's output.
	Log, Stdout, Stderr io.Writer
	// Generation is the Functions host func start bundles; Gen2026 by
	// default.
	Generation Generation
	// TracerProvider records the host's spans; none by default.
	TracerProvider trace.TracerProvider
}

// CoreTools is a running `func start` stand-in.
type CoreTools struct {
	// URL is the base URL func start prints, http://localhost:{port}.
	URL string
	// AppRoot is the folder whose local.settings.json was read.
	AppRoot string
	// Env is what func start added to the handler's environment.
	Env []string
	// Host is the host stand-in serving the app.
	Host *Host
	srv  *http.Server
}

// StartCoreTools starts the app in o.ScriptRoot as `func start
// --script-root` does, and returns once the handler is ready. It returns
// an error where func start stops: no such folder, settings it cannot
// read, no worker runtime, a port in use, or a handler that fails to
// start three times (the host then shuts down).
func StartCoreTools(ctx context.Context, o CoreToolsOptions) (*CoreTools, error) {
	if o.Log == nil {
		o.Log = os.Stderr
	}
	if o.Environ == nil {
		o.Environ = os.Environ()
	}
	if o.ScriptRoot == "" {
		o.ScriptRoot = "."
	}
	// --script-root becomes the current directory, which must exist
	// (ConsoleApp.cs:451-477, UpdateCurrentDirectory).
	root, err := filepath.Abs(o.ScriptRoot)
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(root); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("\"%s\" doesn't exist.", root)
	}
	appRoot, err := AppRoot(root)
	if err != nil {
		return nil, err
	}
	settings, err := ReadLocalSettings(appRoot)
	if err != nil {
		return nil, err
	}
	// --port defaults to Host.LocalHttpPort, else 7071; --address to
	// Host.LocalHttpAddress, else 127.0.0.1 (StartHostAction.cs:97-106).
	port, addr := o.Port, settings.LocalHTTPAddress
	if port == 0 {
		port = settings.LocalHTTPPort
	}
	if port == 0 {
		port = 7071
	}
	if addr == "" {
		addr = "127.0.0.1"
	}
	env, warnings, err := FuncStartEnv(settings, o.Environ, port, root)
	if err != nil {
		return nil, err
	}
	// The port is checked last among the pre-run conditions
	// (StartHostAction.cs:806-809).
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("Port %d is unavailable. Close the process using that port, or specify another port using --port [-p]. (%v)", port, err)
	}
	for _, w := range warnings {
		fmt.Fprintf(o.Log, "[func] %s\n", w)
	}
	// No function key is checked: without --enableAuth, Core Tools
	// authenticates every request at the admin level and authorizes every
	// function (Actions/HostActions/Startup.cs:67-79;
	// WebHost/Security/CliAuthenticationHandler.cs, CliAuthenticationHandler
	// and CoreToolsAuthorizationHandler).
	cfg := Config{AppRoot: root, Env: env, Environ: o.Environ, Log: o.Log, Stdout: o.Stdout, Generation: o.Generation, TracerProvider: o.TracerProvider}
	host, err := startWithRetries(ctx, cfg, o.Stderr)
	if err != nil {
		ln.Close()
		return nil, err
	}
	c := &CoreTools{URL: "http://localhost:" + strconv.Itoa(port), AppRoot: appRoot, Env: env, Host: host,
		srv: &http.Server{Handler: host, ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = c.srv.Serve(ln) }()
	// As func start lists them (DisplayFunctionsInfoUtilities).
	app := host.App()
	fmt.Fprintf(o.Log, "[func] Functions:\n")
	for _, fn := range app.Functions {
		fmt.Fprintf(o.Log, "[func] \t%s: [%s] %s%s\n", fn.Name, strings.ToUpper(strings.Join(fn.Methods, ",")), c.URL, fn.Path(app.Host.RoutePrefix))
	}
	return c, nil
}

// Stop stops serving (in-flight requests are answered), then the host,
// which kills the handler.
func (c *CoreTools) Stop() error {
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := c.srv.Shutdown(sctx)
	return errors.Join(err, c.Host.Stop())
}

// startWithRetries starts the host; a handler that fails to start is an
// error event, and the host starts another until the third, then shuts
// down (Workers/Http/HttpFunctionInvocationDispatcher.cs: ErrorEventsThreshold
// = 3, RestartWorkerChannel; in func start the host's shutdown ends func
// start). The error carries the end of the handler's last stderr.
func startWithRetries(ctx context.Context, cfg Config, stderr io.Writer) (*Host, error) {
	var last tail
	if stderr == nil {
		cfg.Stderr = &last
	} else {
		cfg.Stderr = io.MultiWriter(stderr, &last)
	}
	var err error
	for range errorThreshold {
		last.reset()
		var h *Host
		if h, err = Start(ctx, cfg); err == nil {
			return h, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		fmt.Fprintf(cfg.Log, "[host] Error Worker.HttpWorkerProcess: Language Worker Process exited: %v\n", err)
	}
	said := strings.TrimSpace(last.String())
	if said == "" {
		said = "(nothing on stderr)"
	}
	return nil, fmt.Errorf("Exceeded http worker restart retry count. Shutting down Functions Host: the handler failed to start %d times (%v); its stderr:\n%s", errorThreshold, err, said)
}

// tail keeps the last few KiB written to it.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

const tailSize = 4 << 10

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > tailSize {
		t.buf = t.buf[len(t.buf)-tailSize:]
	}
	return len(p), nil
}

func (t *tail) reset() { t.mu.Lock(); t.buf = nil; t.mu.Unlock() }

func (t *tail) String() string { t.mu.Lock(); defer t.mu.Unlock(); return string(t.buf) }
