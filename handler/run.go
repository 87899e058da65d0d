package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/nbtrace/nbtrace/functions/api"
	"github.com/nbtrace/nbtrace/handler/internal/hostproto"
	"github.com/nbtrace/nbtrace/handler/internal/telemetry"
	"github.com/nbtrace/nbtrace/handler/manifest"
)

// run starts the handler and serves until ctx is done or SIGINT/SIGTERM
// arrives; then it stops accepting, lets in-flight invocations finish,
// flushes telemetry and returns. Settings are read only through getenv.
//
// With -check it loads and builds every function, prints a summary and
// returns, without listening.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	started := time.Now()
	flags := flag.NewFlagSet("handler", flag.ContinueOnError)
	flags.SetOutput(stderr)
	check := flags.Bool("check", false, "load host.json and every function.json, build the functions, print a summary and exit")
	if err := flags.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	hostLog := telemetry.NewHostChannel(stdout, stderr, cfg.LogLevel)
	logger := slog.New(telemetry.NewLogHandler(hostLog, cfg.LogLevel))
	slog.SetDefault(logger)

	app, err := manifest.Load(os.DirFS(cfg.AppRoot))
	if err != nil {
		return fmt.Errorf("load functions from %s: %w", cfg.AppRoot, err)
	}
	tel, err := telemetry.Setup(ctx, getenv, logger, telemetry.WithVersion(version()))
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	// From here on, log records also go to the log exporters.
	logger = slog.New(telemetry.NewLogHandler(slog.NewMultiHandler(hostLog, tel.SlogHandler()), cfg.LogLevel))
	slog.SetDefault(logger)
	telemetryDone := false
	defer func() {
		// Flush whatever was recorded when start-up fails below.
		if telemetryDone {
			return
		}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := tel.Shutdown(sctx); err != nil {
			logger.Warn("telemetry flush failed", "error", err)
		}
	}()
	env := api.Env{
		Getenv:         getenv,
		HTTPClient:     newHTTPClient(tel),
		TracerProvider: tel.TracerProvider,
		MeterProvider:  tel.MeterProvider,
		Propagator:     tel.Propagator,
		Logger:         logger,
		BaseURL:        withPrefix(cfg.BaseURL, app.Host.RoutePrefix),
	}
	handlers, err := buildFunctions(app, env)
	if err != nil {
		return err
	}
	if *check {
		for _, fn := range app.Functions {
			fmt.Fprintf(stdout, "%-10s %-8s %-28s auth=%s output=%s protocol=%s\n", fn.Name,
				strings.Join(fn.Methods, ","), fn.Path(app.Host.RoutePrefix), fn.AuthLevel, fn.Output, fn.Mode)
		}
		return nil
	}

	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", cfg.Port))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler: hostproto.NewServer(app, handlers, hostproto.Options{
			TracerProvider:  tel.TracerProvider,
			MeterProvider:   tel.MeterProvider,
			Propagator:      tel.Propagator,
			Logger:          logger,
			MaxBodyBytes:    cfg.MaxBodyBytes,
			SiteName:        cfg.SiteName,
			AfterInvocation: tel.AfterInvocation,
		}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Info("handler ready", "addr", ln.Addr().String(), "functions", len(app.Functions),
		"protocol", app.Host.Mode().String(), "startup_ms", time.Since(started).Milliseconds())

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down: finishing in-flight invocations, then flushing telemetry", "timeout", cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	shutdownErr := srv.Shutdown(sctx)
	// Then the last flush, within what is left of NBTRACE_SHUTDOWN_TIMEOUT
	// (at least a second).
	if dl, _ := sctx.Deadline(); time.Until(dl) < time.Second {
		var cancel2 context.CancelFunc
		sctx, cancel2 = context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel2()
	}
	telemetryDone = true
	if err := tel.Shutdown(sctx); err != nil {
		logger.Warn("telemetry flush at shutdown failed: some telemetry is lost", "error", err)
	}
	if shutdownErr != nil {
		return fmt.Errorf("shutdown: %w", shutdownErr)
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// newHTTPClient returns the client functions call services with: each call
// is a CLIENT span named "{method} {path}" that propagates the trace.
func newHTTPClient(tel *telemetry.Telemetry) *http.Client {
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = 256
	return &http.Client{Transport: otelhttp.NewTransport(base,
		otelhttp.WithTracerProvider(tel.TracerProvider),
		otelhttp.WithPropagators(tel.Propagator),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			return r.Method + " " + r.URL.Path
		}),
	)}
}

func withPrefix(base, prefix string) string {
	if base == "" || prefix == "" {
		return base
	}
	return base + "/" + prefix
}

// version is the VCS revision the binary was built from, if known.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return s.Value[:12]
		}
	}
	return ""
}
