package otlpsink

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// validateExport is an OTLP/HTTP export body (protobuf) of traces as the
// local stack records a validate request, the trace ids from first on: the
// host's 5 spans and the handler's 5, each service's a resource.
func validateExport(t testing.TB, first, traces int) []byte {
	t.Helper()
	str := func(k, v string) *commonpb.KeyValue {
		return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
	}
	num := func(k string, v int64) *commonpb.KeyValue {
		return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}}
	}
	flag := func(k string, v bool) *commonpb.KeyValue {
		return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: v}}}
	}
	resource := func(service string) *resourcepb.Resource {
		return &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("service.name", service), str("cloud.provider", "azure"),
			str("cloud.platform", "azure.functions"), str("service.instance.id", "26f73ab3-0499-494b-b98f-a84c9ee07a36")}}
	}
	id := func(n, i, size int) []byte {
		b := make([]byte, size)
		binary.BigEndian.PutUint64(b[size-8:], uint64(n*16+i+1))
		b[0] = 0x5a
		return b
	}
	t0 := uint64(time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC).UnixNano())
	span := func(n, i, parent int, kind tracepb.Span_SpanKind, name string, attrs ...*commonpb.KeyValue) *tracepb.Span {
		s := &tracepb.Span{TraceId: id(n, 0, 16), SpanId: id(n, i, 8), Name: name, Kind: kind, Attributes: attrs,
			StartTimeUnixNano: t0 + uint64(n)*1e6 + uint64(i)*1e5, EndTimeUnixNano: t0 + uint64(n)*1e6 + 5e7}
		if parent >= 0 {
			s.ParentSpanId = id(n, parent, 8)
		}
		return s
	}
	server := func(n, i, parent int, route, path string) *tracepb.Span {
		return span(n, i, parent, tracepb.Span_SPAN_KIND_SERVER, "POST "+route, flag("faas.coldstart", false),
			str("faas.invocation_id", fmt.Sprintf("44e163a3-550f-4945-bb3d-%012d", n*16+i)), str("faas.name", "simulate"),
			str("faas.trigger", "http"), str("http.request.method", "POST"), num("http.response.status_code", 200),
			str("http.route", route), str("nbtrace.host.protocol", "payload"), str("nbtrace.host.version", "4.1037.0.0"),
			str("nbtrace.trace_parent.source", "host"), str("server.address", "localhost"), str("url.path", path),
			str("url.scheme", "http"), str("user_agent.original", "Go-http-client/1.1"))
	}
	client := func(n, i, parent int, name, url string) *tracepb.Span {
		return span(n, i, parent, tracepb.Span_SPAN_KIND_CLIENT, name, str("http.request.method", "POST"),
			num("http.response.status_code", 200), str("network.protocol.version", "1.1"), str("server.address", "127.0.0.1"),
			num("server.port", 45853), str("url.full", url))
	}
	hostServer := func(n, i, parent int, name string) *tracepb.Span {
		return span(n, i, parent, tracepb.Span_SPAN_KIND_SERVER, name, str("http.request.method", "POST"),
			num("http.response.status_code", 200), str("url.path", "/api/"+name))
	}
	var host, handler []*tracepb.Span
	for n := first; n < first+traces; n++ {
		host = append(host, hostServer(n, 1, -1, "validate"), client(n, 2, 1, "POST /validate", "http://127.0.0.1:45853/validate"),
			hostServer(n, 5, 4, "simulate"), client(n, 6, 5, "POST /simulate", "http://127.0.0.1:45853/simulate"),
			hostServer(n, 8, 7, "simulate"))
		handler = append(handler, server(n, 3, 2, "/api/validate", "/api/validate"),
			client(n, 4, 3, "POST /api/simulate/a", "http://localhost:45577/api/simulate/a"),
			client(n, 7, 3, "POST /api/simulate/b", "http://localhost:45577/api/simulate/b"),
			server(n, 9, 6, "/api/simulate/{service}", "/api/simulate/a"))
	}
	scope := &commonpb.InstrumentationScope{Name: "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"}
	req := &coltrace.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{
		{Resource: resource("functions-host"), ScopeSpans: []*tracepb.ScopeSpans{{Scope: scope, Spans: host}}},
		{Resource: resource("nbtrace"), ScopeSpans: []*tracepb.ScopeSpans{{Scope: scope, Spans: handler}}},
	}}
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// post sends an export body to the sink as an OTLP/HTTP exporter does.
func post(t testing.TB, s *Sink, body []byte) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/v1/traces", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-protobuf")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("export: %d %s", rec.Code, rec.Body)
	}
}
