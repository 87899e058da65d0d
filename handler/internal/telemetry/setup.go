package telemetry

import (
	"context"
	"errors"
	"fmt"
	"github.com/nbtrace/nbtrace/functions/api"
	"log/slog"
	"net/url"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName names the handler's tracer.
const ScopeName = "github.com/nbtrace/nbtrace/handler"

// Telemetry is the process's tracing set-up.
type Telemetry struct {
	TracerProvider trace.TracerProvider
	Propagator     propagation.TextMapPropagator
	// Exporting is false when no exporter is configured: spans are made,
	// so trace ids are real, but they stay in the process.
	Exporting bool
	sdk       *sdktrace.TracerProvider
}

// Shutdown flushes every pending span and stops the exporters.
func (t *Telemetry) Shutdown(ctx context.Context) error { return t.sdk.Shutdown(ctx) }

// ForceFlush exports every pending span.
func (t *Telemetry) ForceFlush(ctx context.Context) error { return t.sdk.ForceFlush(ctx) }

type config struct {
	processors []sdktrace.SpanProcessor
	version    string
}

// Option configures Setup.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithSpanProcessor adds a span processor, such as an in-memory recorder in
// tests. None is added by default.
func WithSpanProcessor(p sdktrace.SpanProcessor) Option {
	return optionFunc(func(c *config) { c.processors = append(c.processors, p) })
}

// WithVersion sets service.version. It is unset by default.
func WithVersion(v string) Option {
	return optionFunc(func(c *config) { c.version = v })
}

// Setup builds the tracer provider from settings read through getenv:
//
//   - OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (used as is) or
//     OTEL_EXPORTER_OTLP_ENDPOINT (with /v1/traces appended): export over
//     OTLP/HTTP. The exporter reads OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT and
//     _COMPRESSION from the process environment itself.
//   - OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG: the sampler,
//     parentbased_always_on by default.
//   - OTEL_SDK_DISABLED=true: no spans are exported.
//
// No connection is made here: exporters dial on their first export. It
// returns an error naming the setting that is not valid.
func Setup(ctx context.Context, getenv func(string) string, logger *slog.Logger, opts ...Option) (*Telemetry, error) {
	var cfg config
	for _, o := range opts {
		o.apply(&cfg)
	}
	sampler, err := samplerFrom(getenv)
	if err != nil {
		return nil, err
	}
	tpOpts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(Resource(getenv, cfg.version)),
		sdktrace.WithSampler(sampler),
	}
	for _, p := range cfg.processors {
		tpOpts = append(tpOpts, sdktrace.WithSpanProcessor(p))
	}
	t := &Telemetry{
		Propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}
	disabled := strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true")
	endpoint, err := tracesEndpoint(getenv)
	if err != nil {
		return nil, err
	}
	if endpoint != "" && !disabled {
		exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint))
		if err != nil {
			return nil, fmt.Errorf("otlp trace exporter: %w", err)
		}
		tpOpts = append(tpOpts, sdktrace.WithBatcher(exp))
		t.Exporting = true
		logger.Info("exporting traces over OTLP/HTTP", "endpoint", redactURL(endpoint))
	} else {
		logger.Info("telemetry stays local: set OTEL_EXPORTER_OTLP_ENDPOINT to export traces")
	}
	t.sdk = sdktrace.NewTracerProvider(tpOpts...)
	t.TracerProvider = t.sdk
	return t, nil
}

func tracesEndpoint(getenv func(string) string) (string, error) {
	name, raw := "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if raw == "" {
		name, raw = "OTEL_EXPORTER_OTLP_ENDPOINT", getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
		if raw == "" {
			return "", nil
		}
		raw = strings.TrimSuffix(raw, "/") + "/v1/traces"
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%s: %q is not an http(s) URL", name, redactURL(raw))
	}
	return u.String(), nil
}

// redactURL drops user info and the query, which may carry credentials.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery = nil, ""
	return u.String()
}

func samplerFrom(getenv func(string) string) (sdktrace.Sampler, error) {
	name := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER")))
	ratio := 1.0
	if arg := getenv("OTEL_TRACES_SAMPLER_ARG"); arg != "" && strings.Contains(name, "traceidratio") {
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return nil, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG: %q is not a ratio from 0 to 1", arg)
		}
		ratio = r
	}
	switch name {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(ratio), nil
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio)), nil
	}
	return nil, errors.New("OTEL_TRACES_SAMPLER: " + strconv.Quote(name) +
		" is not one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio")
}

// Settings lists the telemetry settings the handler reads.
var Settings = []api.Setting{
	{Name: "OTEL_EXPORTER_OTLP_ENDPOINT", Default: "", Doc: "OTLP/HTTP base URL (such as http://127.0.0.1:4318); /v1/traces is appended. Unset: traces stay local."},
	{Name: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", Default: "", Doc: "OTLP/HTTP traces URL, used as is; wins over OTEL_EXPORTER_OTLP_ENDPOINT."},
	{Name: "OTEL_EXPORTER_OTLP_HEADERS", Default: "", Doc: "Headers sent with each export (key=value,…); read by the exporter."},
	{Name: "OTEL_TRACES_SAMPLER", Default: "parentbased_always_on", Doc: "Sampler: always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio."},
	{Name: "OTEL_TRACES_SAMPLER_ARG", Default: "1", Doc: "The ratio of the traceidratio samplers, 0 to 1."},
	{Name: "OTEL_SERVICE_NAME", Default: DefaultServiceName, Doc: "service.name of the handler's spans (App Insights cloud_RoleName)."},
	{Name: "OTEL_RESOURCE_ATTRIBUTES", Default: "", Doc: "Extra resource attributes, key=value,…"},
	{Name: "OTEL_SDK_DISABLED", Default: "false", Doc: "true: make no exports at all."},
	{Name: "OTEL_BSP_SCHEDULE_DELAY", Default: "5000", Doc: "Milliseconds between span batches; read by the SDK."},
}
