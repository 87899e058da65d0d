package api

import (
	"log/slog"
	"net/http"

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
	// Logger adds the trace and span ids of the context to each record and
	// returns an invocation's records to the host.
	Logger *slog.Logger
	// BaseURL is the app's own public URL with its route prefix, such as
	// https://app.azurewebsites.net/api, or "" when it cannot be known.
	BaseURL string
}

// Setting documents one app setting a function reads.
type Setting struct {
	Name    string
	Default string
	Doc     string
}

// Maker builds a function's handler, reading its settings once. It returns
// an error naming the setting that is missing or wrong.
type Maker func(env Env) (http.Handler, error)
