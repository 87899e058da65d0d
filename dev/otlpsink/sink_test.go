package otlpsink

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/nbtrace/nbtrace/dev/internal/syncbuf"
)

// TestReceivesFromTheOTLPExporter exports spans with the real OTLP/HTTP
// exporter, gzip on, and reads them back.
func TestReceivesFromTheOTLPExporter(t *testing.T) {
	sink := New()
	srv := httptest.NewServer(sink)
	defer srv.Close()
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(srv.URL+"/v1/traces"), otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "svc"))))
	ctx, parent := tp.Tracer("t").Start(context.Background(), "parent", trace.WithSpanKind(trace.SpanKindServer))
	_, child := tp.Tracer("t").Start(ctx, "child", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attribute.Int("http.response.status_code", 502)))
	child.End()
	parent.End()
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	id := parent.SpanContext().TraceID().String()
	wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	spans, err := sink.WaitFor(wctx, id, 2)
	if err != nil {
		t.Fatal(err)
	}
	if spans[0].Name != "parent" || spans[0].Kind != "SERVER" || spans[0].Service != "svc" || spans[0].ParentSpanID != "" {
		t.Errorf("parent = %+v", spans[0])
	}
	if spans[1].ParentSpanID != parent.SpanContext().SpanID().String() || spans[1].Attributes["http.response.status_code"] != int64(502) {
		t.Errorf("child = %+v", spans[1])
	}
	if sink.SpanCount() != 2 || len(sink.TraceIDs()) != 1 {
		t.Errorf("count %d ids %v", sink.SpanCount(), sink.TraceIDs())
	}
}

func TestRender(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	spans := []Span{
		{TraceID: "t", SpanID: "a", ParentSpanID: "0123456789abcdef", Name: "validate", Kind: "SERVER", Service: "host", Start: t0, End: t0.Add(100 * time.Millisecond), Attributes: map[string]any{"http.response.status_code": int64(200)}},
		{TraceID: "t", SpanID: "b", ParentSpanID: "a", Name: "POST /a", Kind: "CLIENT", Service: "app", Start: t0.Add(10 * time.Millisecond), End: t0.Add(60 * time.Millisecond)},
		{TraceID: "t", SpanID: "c", ParentSpanID: "a", Name: "POST /b", Kind: "CLIENT", Service: "app", Start: t0.Add(50 * time.Millisecond), End: t0.Add(100 * time.Millisecond), StatusCode: "ERROR", StatusMessage: "boom"},
	}
	var b bytes.Buffer
	Render(&b, spans)
	want := `trace t · 3 spans · 2 services · 100.0ms
      0.0ms   100.0ms [████████████████████████] SERVER   host: validate  [200]  ↑ parent 01234567… (not recorded here)
     10.0ms    50.0ms [  ████████████          ] ├─ CLIENT   app: POST /a
     50.0ms    50.0ms [            ████████████] └─ CLIENT   app: POST /b  [ERROR boom]
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	// A parent id shorter than a real one, from any local client, prints
	// as it is.
	b.Reset()
	Render(&b, []Span{{TraceID: "t", SpanID: "a", ParentSpanID: "0123", Name: "x", Kind: "SERVER", Service: "s", Start: t0, End: t0}})
	if !strings.Contains(b.String(), "↑ parent 0123…") {
		t.Errorf("short parent id: %q", b.String())
	}
}

func TestPrintFinishedPrintsOnceSettled(t *testing.T) {
	sink := New()
	var out syncbuf.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go sink.PrintFinished(ctx, &out, 40*time.Millisecond)
	now := time.Now()
	sink.Add(Span{TraceID: "t1", SpanID: "a", Name: "root", Kind: "SERVER", Start: now, End: now.Add(time.Millisecond)})
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "trace t1") {
		if time.Now().After(deadline) {
			t.Fatal("the trace was not printed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(150 * time.Millisecond)
	if n := strings.Count(out.String(), "trace t1"); n != 1 {
		t.Errorf("printed %d times, want once while nothing new arrives", n)
	}
	sink.Add(Span{TraceID: "t1", SpanID: "b", ParentSpanID: "a", Name: "late", Kind: "CONSUMER", Start: now, End: now})
	for strings.Count(out.String(), "trace t1") < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the trace was not printed again after a late span")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestForward(t *testing.T) {
	far := New()
	farSrv := httptest.NewServer(far)
	defer farSrv.Close()
	near := New()
	near.Forward = farSrv.URL
	nearSrv := httptest.NewServer(near)
	defer nearSrv.Close()
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(nearSrv.URL+"/v1/traces"))
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	_, span := tp.Tracer("t").Start(context.Background(), "forwarded")
	span.End()
	_ = tp.Shutdown(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := far.WaitFor(ctx, span.SpanContext().TraceID().String(), 1); err != nil {
		t.Fatal(err)
	}
	if len(near.Trace(span.SpanContext().TraceID().String())) != 1 {
		t.Error("the near sink did not keep the span")
	}
}

// TestMetricsKeepTheLatestValue exports a gauge and a counter with the real
// OTLP/HTTP metric exporter; the sink keeps each one's latest value.
func TestMetricsKeepTheLatestValue(t *testing.T) {
	sink := New()
	srv := httptest.NewServer(sink)
	defer srv.Close()
	exp, err := otlpmetrichttp.New(context.Background(), otlpmetrichttp.WithEndpointURL(srv.URL+"/v1/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader), sdkmetric.WithResource(resource.NewSchemaless(attribute.String("service.name", "svc"))))
	m := mp.Meter("t")
	in := 0
	if _, err := m.Int64ObservableGauge("g", metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
		o.Observe(int64(in), metric.WithAttributes(attribute.String("part", "a")))
		o.Observe(1, metric.WithAttributes(attribute.String("part", "b")))
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	counter, _ := m.Float64Counter("c")
	for _, want := range []int{5, 9} {
		in = want
		counter.Add(context.Background(), 0.5)
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		if err := exp.Export(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		if g, ok := sink.Metric("svc", "g"); !ok || g != float64(want+1) {
			t.Errorf("g = %v %v, want %d (both parts)", g, ok, want+1)
		}
	}
	if c, _ := sink.Metric("svc", "c"); c != 1 {
		t.Errorf("c = %v, want the cumulative 1", c)
	}
	if _, ok := sink.Metric("other", "g"); ok {
		t.Error("a metric of another service")
	}
}
