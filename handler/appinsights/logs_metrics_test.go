package appinsights

import (
	"context"
	"log/slog"
	"testing"

	"go.opentelemetry.io/contrib/bridges/otelslog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

func TestLogRecordsBecomeMessages(t *testing.T) {
	in := &ingestion{}
	tx, _ := start(t, in, Options{})
	res := resource.NewSchemaless(attribute.String("service.name", "nbtrace"), attribute.String("service.instance.id", "i1"))
	lp := sdklog.NewLoggerProvider(sdklog.WithResource(res), sdklog.WithProcessor(sdklog.NewSimpleProcessor(NewLogExporter(tx))))
	logger := slog.New(otelslog.NewHandler("t", otelslog.WithLoggerProvider(lp)))
	ctx, span := sdktrace.NewTracerProvider().Tracer("t").Start(context.Background(), "inv")
	logger.WarnContext(ctx, "validate answered", "status", 502, "dependency", "service-a")
	span.End()
	flush(t, tx)
	got := in.Envelopes()
	if len(got) != 1 {
		t.Fatalf("%d envelopes", len(got))
	}
	e := got[0]
	tags := e["tags"].(map[string]any)
	base := e["data"].(map[string]any)["baseData"].(map[string]any)
	if e["name"] != MessageName || base["message"] != "validate answered" || base["severityLevel"] != "Warning" {
		t.Errorf("envelope = %v", e)
	}
	if tags[TagOperationID] != span.SpanContext().TraceID().String() || tags[TagOperationParentID] != span.SpanContext().SpanID().String() {
		t.Errorf("tags = %v, want the span's operation ids", tags)
	}
	if tags[TagCloudRole] != "nbtrace" || tags[TagCloudRoleInstance] != "i1" {
		t.Errorf("tags = %v", tags)
	}
	props := base["properties"].(map[string]any)
	if props["status"] != "502" || props["dependency"] != "service-a" {
		t.Errorf("properties = %v", props)
	}
}

func TestMetricPointsBecomeMetrics(t *testing.T) {
	in := &ingestion{}
	tx, _ := start(t, in, Options{})
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader), sdkmetric.WithResource(resource.NewSchemaless(attribute.String("service.name", "nbtrace"))))
	m := mp.Meter("t")
	h, _ := m.Float64Histogram("http.server.request.duration")
	c, _ := m.Int64Counter("nbtrace.databricks.runs.started")
	ctx := context.Background()
	for _, v := range []float64{0.1, 0.3, 0.2} {
		h.Record(ctx, v, metric.WithAttributes(attribute.String("http.route", "/api/validate"), attribute.Int("http.response.status_code", 200)))
	}
	c.Add(ctx, 2)
	exp := NewMetricExporter(tx)
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	if err := exp.Export(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	flush(t, tx)
	byName := map[string]map[string]any{}
	for _, e := range in.Envelopes() {
		base := e["data"].(map[string]any)["baseData"].(map[string]any)
		point := base["metrics"].([]any)[0].(map[string]any)
		point["properties"] = base["properties"]
		byName[point["name"].(string)] = point
	}
	d := byName["http.server.request.duration"]
	if d == nil || d["count"] != float64(3) || d["min"] != 0.1 || d["max"] != 0.3 || d["value"].(float64) < 0.599 || d["value"].(float64) > 0.601 {
		t.Errorf("duration = %v", d)
	}
	if props := d["properties"].(map[string]any); props["http.route"] != "/api/validate" || props["http.response.status_code"] != "200" {
		t.Errorf("duration dimensions = %v", props)
	}
	if r := byName["nbtrace.databricks.runs.started"]; r == nil || r["value"] != float64(2) {
		t.Errorf("runs = %v", r)
	}
}
