package funchost

import (
	"context"
	"crypto/rand"
	"net/http"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/nbtrace/nbtrace/handler/manifest"
)

// Generation is a generation of the Functions host whose handling of
// custom handlers differs.
type Generation string

const (
	// Gen2024 is host 4.1037 (October 2024), the source the stand-in was
	// first read from: customHandler.enableProxyingHttpRequest does not
	// exist (options binding ignores the unknown key, so such an app is
	// invoked with payloads); the host's call to the handler is recorded,
	// as a dependency in Application Insights mode (the webjobs SDK's
	// DependencyTrackingTelemetryModule) and as a client span in
	// OpenTelemetry mode, whose HttpClient instrumentation replaces any
	// traceparent already on the request (OpenTelemetryConfigurationExtensions,
	// OpenTelemetry.Instrumentation.Http 1.8.1).
	Gen2024 Generation = "2024"
	// Gen2026 is a host of 2026: enableProxyingHttpRequest proxies the
	// original request with YARP (PR #11035, 2025); Application Insights
	// mode no longer records dependencies on localhost (PR #11609, February
	// 2026) and OpenTelemetry mode has no HttpClient instrumentation, so
	// the host's call to the handler is recorded in neither: the
	// traceparent it carries (.NET's DiagnosticsHandler, which never
	// replaces one already there) names a span nobody exports.
	Gen2026 Generation = "2026"
)

// mode is the protocol the host of generation g uses for fn.
func (g Generation) mode(host manifest.Host, fn manifest.Function) manifest.Mode {
	if g == Gen2024 && !host.Forwarding {
		return manifest.Payload
	}
	return fn.Mode
}

// TelemetryMode is host.json's telemetryMode.
type TelemetryMode string

// Telemetry modes.
const (
	AppInsightsMode   TelemetryMode = "ApplicationInsights"
	OpenTelemetryMode TelemetryMode = "OpenTelemetry"
)

func parseTelemetryMode(s string) TelemetryMode {
	if strings.EqualFold(s, string(OpenTelemetryMode)) {
		return OpenTelemetryMode
	}
	return AppInsightsMode
}

// hopRecorded reports whether the host records its call to the handler.
func (g Generation) hopRecorded() bool { return g == Gen2024 }

// hopTransport is the host's client transport to the handler: it puts the
// call's trace context on each request as the host of generation g in mode
// does, recording the call as a CLIENT span only where that host records it.
func hopTransport(base http.RoundTripper, g Generation, mode TelemetryMode, tp trace.TracerProvider) http.RoundTripper {
	name := otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + r.URL.Path })
	switch {
	case g.hopRecorded() && mode == OpenTelemetryMode:
		return otelhttp.NewTransport(base, otelhttp.WithTracerProvider(tp), name,
			otelhttp.WithPropagators(propagation.TraceContext{}))
	case g.hopRecorded():
		return otelhttp.NewTransport(base, otelhttp.WithTracerProvider(tp), name,
			otelhttp.WithPropagators(keepExisting{propagation.TraceContext{}}))
	}
	return unrecordedHop{base}
}

// unrecordedHop injects the traceparent of a span that is never exported:
// .NET's DiagnosticsHandler starts an Activity under the current one and
// injects its id when nothing listens to System.Net.Http, never replacing
// a traceparent already on the request (dotnet/runtime DiagnosticsHandler.cs).
type unrecordedHop struct{ next http.RoundTripper }

func (u unrecordedHop) RoundTrip(r *http.Request) (*http.Response, error) {
	parent := trace.SpanContextFromContext(r.Context())
	if r.Header.Get("traceparent") != "" || !parent.IsValid() {
		return u.next.RoundTrip(r)
	}
	var id trace.SpanID
	_, _ = rand.Read(id[:])
	hop := trace.NewSpanContext(trace.SpanContextConfig{TraceID: parent.TraceID(), SpanID: id,
		TraceFlags: parent.TraceFlags(), TraceState: parent.TraceState()})
	r = r.Clone(r.Context())
	propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), hop), propagation.HeaderCarrier(r.Header))
	return u.next.RoundTrip(r)
}
