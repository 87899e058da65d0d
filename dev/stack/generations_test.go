package stack

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/nbtrace/nbtrace/dev/funchost"
	"github.com/nbtrace/nbtrace/dev/otlpsink"
)

// TestHostGenerations: the handler serves both host generations whatever
// host.json's switches say, and the trace each generation and telemetry
// mode makes is the one the README describes: which span is the handler's
// parent, and whether the host records it.
func TestHostGenerations(t *testing.T) {
	const (
		hop        = "the host's recorded call"
		unrecorded = "a call the host does not record"
		caller     = "the caller's span"
	)
	tests := []struct {
		gen              funchost.Generation
		telemetry        string
		forward, proxy   bool
		protocol         string // as the handler was invoked
		withCaller, none string // the handler's parent with and without the caller's traceparent
	}{
		{funchost.Gen2024, "ApplicationInsights", false, false, "payload", hop, hop},
		{funchost.Gen2024, "ApplicationInsights", true, false, "forwarding", caller, hop},
		{funchost.Gen2024, "ApplicationInsights", false, true, "payload", hop, hop}, // the switch is unknown to it
		{funchost.Gen2024, "OpenTelemetry", false, false, "payload", hop, hop},
		{funchost.Gen2024, "OpenTelemetry", true, false, "forwarding", hop, hop}, // its HttpClient instrumentation replaces the caller's
		{funchost.Gen2026, "ApplicationInsights", false, false, "payload", unrecorded, unrecorded},
		{funchost.Gen2026, "ApplicationInsights", true, false, "forwarding", caller, unrecorded},
		{funchost.Gen2026, "ApplicationInsights", false, true, "forwarding", caller, unrecorded},
		{funchost.Gen2026, "OpenTelemetry", false, false, "payload", unrecorded, unrecorded},
		{funchost.Gen2026, "OpenTelemetry", false, true, "forwarding", caller, unrecorded},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%s/%s/forwarding=%t/proxying=%t", tt.gen, tt.telemetry, tt.forward, tt.proxy)
		t.Run(name, func(t *testing.T) {
			s := startStack(t, Options{HostGeneration: tt.gen, TelemetryMode: tt.telemetry, Forwarding: &tt.forward, Proxying: &tt.proxy})
			for _, withCaller := range []bool{true, false} {
				header, want := map[string]string{}, tt.none
				if withCaller {
					header["traceparent"], want = callerTP, tt.withCaller
				}
				res, body := post(t, s.URL+"/api/validate", validBody, header)
				if res.StatusCode != http.StatusOK || body["valid"] != true {
					t.Fatalf("validate = %d %v", res.StatusCode, body)
				}
				trace := body["traceId"].(string)
				hostSpans := 3 // the host's request to validate and to each service
				if tt.gen == funchost.Gen2024 {
					hostSpans = 6 // and its recorded calls to the handler
				}
				spans := waitTrace(t, s, trace, hostSpans+5)
				inv := one(t, spans, "SERVER", "nbtrace", "POST /api/validate")
				if inv.Attributes["nbtrace.host.protocol"] != tt.protocol {
					t.Errorf("invoked by %v, want %s", inv.Attributes["nbtrace.host.protocol"], tt.protocol)
				}
				if got := parentOf(inv, spans); got != want {
					t.Errorf("caller traceparent %t: the handler's parent is %s, want %s\n%s", withCaller, got, want, shape(spans))
				}
				hostCalls := 0
				for _, sp := range spans {
					if sp.Service == "functions-host" && sp.Kind == "CLIENT" {
						hostCalls++
					}
				}
				if recorded := tt.gen == funchost.Gen2024; (hostCalls == 3) != recorded {
					t.Errorf("the host recorded %d calls to the handler, recording them: %t", hostCalls, recorded)
				}
			}
		})
	}
}

func parentOf(inv otlpsink.Span, spans []otlpsink.Span) string {
	if inv.ParentSpanID == callerSpan {
		return "the caller's span"
	}
	for _, sp := range spans {
		if sp.SpanID == inv.ParentSpanID {
			if sp.Service == "functions-host" && sp.Kind == "CLIENT" {
				return "the host's recorded call"
			}
			return sp.Kind + " " + sp.Service + ": " + sp.Name
		}
	}
	return "a call the host does not record"
}
