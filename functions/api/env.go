package api

import (
	"context"
	"log/slog"
	"net/http"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Env is what the handler gives each function when it builds it.
type Env struct {
	// Getenv reads app settings.
	Getenv func(string) string
	// HTTPClient is instrumented: each call is a CLIENT span that
	// propagates the W3C trace context.
	HTTPClient *http.Client
	// TracerProvider makes the function's own spans.
	TracerProvider trace.TracerProvider
	// MeterProvider makes the function's metrics.
	MeterProvider metric.MeterProvider
	// Propagator injects and extracts the W3C trace context and baggage.
	Propagator propagation.TextMapPropagator
	// Logger adds the trace and span ids of the context to each record and
	// returns an invocation's records to the host.
	Logger *slog.Logger
	// BaseURL is the app's own public URL with its route prefix, such as
	// https://app.azurewebsites.net/api, or "" when it cannot be known.
	BaseURL string
}

type invocationKey struct{}

// WithInvocationID returns ctx carrying the host's invocation id.
func WithInvocationID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, invocationKey{}, id)
}

// InvocationID is the host's id of the invocation in ctx
// (X-Azure-Functions-InvocationId), or "".
func InvocationID(ctx context.Context) string {
	id, _ := ctx.Value(invocationKey{}).(string)
	return id
}

// Setting documents one app setting a function reads.
type Setting struct {
	Name    string
	Default string
	Doc     string
	// Azure says who sets it in Azure; the infrastructure is checked
	// against it.
	Azure Provision
}

// Provision says who sets a setting in Azure.
type Provision string

// Who sets a setting in Azure.
const (
	// ByInfra: the Bicep in infra/ must set it.
	ByInfra Provision = "infra"
	// ByPlatform: App Service or the Functions host sets it; infra/ must not.
	ByPlatform Provision = "platform"
	// LocalOnly: for local development; infra/ must never set it.
	LocalOnly Provision = "local"
	// Optional: the default serves; infra/ may set it from a parameter.
	Optional Provision = "optional"
)

// Maker builds a function's handler, reading its settings once. It returns
// an error naming the setting that is missing or wrong.
type Maker func(env Env) (http.Handler, error)
