package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/contrib/bridges/otelslog"
	"go.opentelemetry.io/contrib/instrumentation/runtime"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/log"
	lognoop "go.opentelemetry.io/otel/log/noop"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/nbtrace/nbtrace/handler/appinsights"
)

// ScopeName names the handler's tracer, meter and logger.
const ScopeName = "github.com/nbtrace/nbtrace/handler"

// Telemetry is the process's traces, metrics and logs set-up.
type Telemetry struct {
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	LoggerProvider log.LoggerProvider
	Propagator     propagation.TextMapPropagator
	// Exporting is false when no exporter is configured: spans are made,
	// so trace ids are real, but they stay in the process.
	Exporting bool
	// Policy says when telemetry is flushed besides at shutdown.
	Policy       FlushPolicy
	FlushTimeout time.Duration

	tp       *sdktrace.TracerProvider
	lp       *sdklog.LoggerProvider
	mp       *sdkmetric.MeterProvider
	ai       *appinsights.Transmitter
	flushing atomic.Bool
	pending  atomic.Bool
}

// SlogHandler sends log records to the configured log exporters, or
// nowhere.
func (t *Telemetry) SlogHandler() slog.Handler {
	return otelslog.NewHandler(ScopeName, otelslog.WithLoggerProvider(t.LoggerProvider))
}

// AIStats reports what the Application Insights exporter sent and dropped;
// ok is false when it is not configured.
func (t *Telemetry) AIStats() (appinsights.Stats, bool) {
	if t.ai == nil {
		return appinsights.Stats{}, false
	}
	return t.ai.Stats(), true
}

// ForceFlush exports every pending span, log record and metric, and waits
// for the Application Insights queue to drain.
func (t *Telemetry) ForceFlush(ctx context.Context) error {
	var errs []error
	if t.tp != nil {
		errs = append(errs, t.tp.ForceFlush(ctx))
	}
	if t.lp != nil {
		errs = append(errs, t.lp.ForceFlush(ctx))
	}
	if t.ai != nil {
		errs = append(errs, t.ai.Flush(ctx))
	}
	return errors.Join(errs...)
}

// Shutdown flushes everything (metrics included) and stops the exporters.
// It logs what the Application Insights exporter sent and dropped.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	defer func() {
		if s, ok := t.AIStats(); ok {
			slog.Info("application insights exporter", "sent", s.Sent, "retried", s.Retried,
				"dropped_queue_full", s.DroppedQueueFull, "dropped_rejected", s.DroppedRejected)
		}
	}()
	if t.mp != nil {
		errs = append(errs, t.mp.Shutdown(ctx))
	}
	if t.lp != nil {
		errs = append(errs, t.lp.Shutdown(ctx))
	}
	if t.tp != nil {
		errs = append(errs, t.tp.Shutdown(ctx))
	}
	if t.ai != nil {
		errs = append(errs, t.ai.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// AfterInvocation applies the flush policy once an invocation's answer is
// ready. With FlushSync it returns when the flush is done or FlushTimeout
// has passed; with FlushAsync it starts a flush in the background (one at
// a time, coalescing the invocations that end meanwhile) and returns at
// once; with FlushBatch it does nothing.
func (t *Telemetry) AfterInvocation(ctx context.Context) {
	switch t.Policy {
	case FlushSync:
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.FlushTimeout)
		defer cancel()
		_ = t.ForceFlush(fctx)
	case FlushAsync:
		if !t.flushing.CompareAndSwap(false, true) {
			t.pending.Store(true)
			return
		}
		go func() {
			for {
				t.pending.Store(false)
				fctx, cancel := context.WithTimeout(context.Background(), t.FlushTimeout)
				_ = t.ForceFlush(fctx)
				cancel()
				t.flushing.Store(false)
				if !t.pending.Load() || !t.flushing.CompareAndSwap(false, true) {
					return
				}
			}
		}()
	}
}

type config struct {
	spanProcessors []sdktrace.SpanProcessor
	version        string
	httpClient     *http.Client
}

// Option configures Setup.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithSpanProcessor adds a span processor, such as an in-memory recorder in
// tests. None is added by default.
func WithSpanProcessor(p sdktrace.SpanProcessor) Option {
	return optionFunc(func(c *config) { c.spanProcessors = append(c.spanProcessors, p) })
}

// WithVersion sets service.version. It is unset by default.
func WithVersion(v string) Option {
	return optionFunc(func(c *config) { c.version = v })
}

// WithHTTPClient sets the client exporters post with (tests inject faults
// through it). Each exporter's own client by default.
func WithHTTPClient(h *http.Client) Option {
	return optionFunc(func(c *config) { c.httpClient = h })
}

// Setup builds the tracer, meter and logger providers from the settings
// (see Settings) read through getenv. OTLP/HTTP and Application Insights
// can both be on; with neither, one log line says telemetry stays local.
// No connection is made here: exporters dial on their first export, and
// Entra ID tokens are fetched then. It returns an error naming the setting
// that is not valid.
func Setup(ctx context.Context, getenv func(string) string, logger *slog.Logger, opts ...Option) (*Telemetry, error) {
	var cfg config
	for _, o := range opts {
		o.apply(&cfg)
	}
	s, err := readSettings(getenv)
	if err != nil {
		return nil, err
	}
	res := Resource(getenv, cfg.version)
	t := &Telemetry{
		Propagator:   propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		Policy:       s.flushPolicy,
		FlushTimeout: s.flushTimeout,
	}
	// Credentials in URLs are removed before any exporter sees a span.
	tpOpts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res), sdktrace.WithSampler(s.sampler),
		sdktrace.WithSpanProcessor(redactProcessor{})}
	for _, p := range cfg.spanProcessors {
		tpOpts = append(tpOpts, sdktrace.WithSpanProcessor(p))
	}
	var lpOpts []sdklog.LoggerProviderOption
	var mpOpts []sdkmetric.Option
	var targets []string

	if !s.disabled && s.otlp.any() {
		o, err := s.otlp.exporters(ctx, cfg.httpClient, getenv)
		if err != nil {
			return nil, err
		}
		if o.traces != nil {
			tpOpts = append(tpOpts, sdktrace.WithBatcher(o.traces, sdktrace.WithBatchTimeout(s.batchDelay)))
		}
		if o.logs != nil {
			lpOpts = append(lpOpts, sdklog.WithProcessor(sdklog.NewBatchProcessor(o.logs)))
		}
		if o.metrics != nil {
			mpOpts = append(mpOpts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(o.metrics, sdkmetric.WithInterval(s.metricInterval))))
		}
		targets = append(targets, "OTLP/HTTP ("+strings.Join(o.describe, ", ")+")")
	}
	if !s.disabled && s.ai != nil {
		aopts := appinsights.Options{HTTPClient: cfg.httpClient}
		if s.aiAuth.EntraID {
			cred, err := azureCredential(s.aiAuth.ClientID)
			if err != nil {
				return nil, fmt.Errorf("APPLICATIONINSIGHTS_AUTHENTICATION_STRING: %w", err)
			}
			aopts.Credential = cred
		}
		t.ai = appinsights.NewTransmitter(*s.ai, aopts)
		tpOpts = append(tpOpts, sdktrace.WithBatcher(appinsights.NewTraceExporter(t.ai), sdktrace.WithBatchTimeout(s.batchDelay)))
		lpOpts = append(lpOpts, sdklog.WithProcessor(sdklog.NewBatchProcessor(appinsights.NewLogExporter(t.ai))))
		mpOpts = append(mpOpts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(appinsights.NewMetricExporter(t.ai), sdkmetric.WithInterval(s.metricInterval))))
		auth := "instrumentation key"
		if s.aiAuth.EntraID {
			auth = "Entra ID"
		}
		targets = append(targets, "Application Insights ("+hostOf(s.ai.IngestionEndpoint)+", "+auth+")")
	}
	t.tp = sdktrace.NewTracerProvider(tpOpts...)
	t.TracerProvider = t.tp
	if len(lpOpts) > 0 {
		t.lp = sdklog.NewLoggerProvider(append(lpOpts, sdklog.WithResource(res))...)
		t.LoggerProvider = t.lp
	} else {
		t.LoggerProvider = lognoop.NewLoggerProvider()
	}
	t.mp = sdkmetric.NewMeterProvider(append(mpOpts, sdkmetric.WithResource(res))...)
	t.MeterProvider = t.mp
	if t.ai != nil {
		// What the Application Insights exporter sent, retried and dropped,
		// as a metric of its own.
		_, err := t.mp.Meter(ScopeName).Int64ObservableCounter("nbtrace.exporter.appinsights.items",
			metric.WithDescription("Telemetry items the Application Insights exporter handled, by outcome."), metric.WithUnit("{item}"),
			metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
				s := t.ai.Stats()
				for outcome, n := range map[string]int64{"sent": s.Sent, "retried": s.Retried,
					"dropped_queue_full": s.DroppedQueueFull, "dropped_rejected": s.DroppedRejected} {
					o.Observe(n, metric.WithAttributes(attribute.String("outcome", outcome)))
				}
				return nil
			}))
		if err != nil {
			return nil, fmt.Errorf("exporter metric: %w", err)
		}
	}
	// The Go runtime's own metrics (go.goroutine.count, go.memory.used, …),
	// read from runtime/metrics (no stop-the-world) once per export
	// interval: what shows a leak or memory pressure on an instance.
	if err := runtime.Start(runtime.WithMeterProvider(t.mp),
		runtime.WithMinimumReadMemStatsInterval(s.metricInterval/2)); err != nil {
		return nil, fmt.Errorf("runtime metrics: %w", err)
	}
	t.Exporting = len(targets) > 0
	switch {
	case s.disabled:
		logger.Info("telemetry stays local: OTEL_SDK_DISABLED=true")
	case !t.Exporting:
		logger.Info("telemetry stays local: set OTEL_EXPORTER_OTLP_ENDPOINT or APPLICATIONINSIGHTS_CONNECTION_STRING to export it")
	default:
		logger.Info("exporting telemetry", "to", strings.Join(targets, "; "), "flush_policy", string(s.flushPolicy))
	}
	return t, nil
}
