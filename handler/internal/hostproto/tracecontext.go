package hostproto

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Source says where an invocation's parent trace context came from.
type Source string

// Sources of the parent context.
const (
	// FromHost: the W3C headers on the host's request to the handler. The
	// host's .NET HttpClient sets them from its current Activity, a child of
	// the host's own request span.
	FromHost Source = "host"
	// FromCaller: the caller's headers inside the payload
	// (Data.<trigger>.Headers), when the host's request had none that was
	// valid.
	FromCaller Source = "caller"
	// FromNone: no valid traceparent anywhere; the invocation starts a new
	// trace.
	FromNone Source = "none"
)

// ExtractParent returns ctx with the remote parent span context and
// baggage for an invocation. The traceparent (with its tracestate) is taken
// from the first carrier that holds a valid one, host first; an invalid
// traceparent, by the W3C Trace Context rules that the OpenTelemetry
// propagator enforces (version ff, all-zero ids, wrong lengths, upper-case
// hex, extra fields in version 00, …), counts as none, so the invocation
// starts a new trace rather than failing.
//
// Baggage comes from the host's baggage header, else from its
// Correlation-Context header (how .NET's legacy propagator writes baggage),
// else from the caller's baggage header.
func ExtractParent(ctx context.Context, prop propagation.TextMapPropagator, host, caller http.Header) (context.Context, Source) {
	tc := propagation.TraceContext{}
	src := FromNone
	for _, c := range []struct {
		h   http.Header
		src Source
	}{{host, FromHost}, {caller, FromCaller}} {
		if c.h == nil {
			continue
		}
		if pctx := tc.Extract(ctx, propagation.HeaderCarrier(c.h)); trace.SpanContextFromContext(pctx).IsValid() {
			ctx, src = pctx, c.src
			break
		}
	}
	for _, carrier := range []propagation.TextMapCarrier{
		propagation.HeaderCarrier(host),
		correlationContext{host},
		propagation.HeaderCarrier(caller),
	} {
		if carrier.Get("baggage") == "" {
			continue
		}
		if b := baggage.FromContext(prop.Extract(context.Background(), carrier)); b.Len() > 0 {
			ctx = baggage.ContextWithBaggage(ctx, b)
			break
		}
	}
	return ctx, src
}

// correlationContext reads .NET's Correlation-Context header as baggage;
// both are comma-separated key=value lists.
type correlationContext struct{ h http.Header }

func (c correlationContext) Get(key string) string {
	if key == "baggage" && c.h != nil {
		return c.h.Get("Correlation-Context")
	}
	return ""
}
func (correlationContext) Set(string, string) {}
func (correlationContext) Keys() []string     { return []string{"baggage"} }
