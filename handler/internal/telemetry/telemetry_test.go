package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestResource(t *testing.T) {
	r := Resource(env(map[string]string{
		"WEBSITE_SITE_NAME":        "func-nbtrace",
		"REGION_NAME":              "West Europe",
		"WEBSITE_INSTANCE_ID":      "abc123",
		"WEBSITE_OWNER_NAME":       "11111111-2222-3333-4444-555555555555+rg-nbtrace-WestEuropewebspace",
		"WEBSITE_RESOURCE_GROUP":   "rg-nbtrace",
		"OTEL_RESOURCE_ATTRIBUTES": "service.name=ignored,deployment.environment.name=dev%20one,broken",
		"OTEL_SERVICE_NAME":        "orders",
	}), "v1")
	got := map[string]string{}
	for _, kv := range r.Attributes() {
		got[string(kv.Key)] = kv.Value.String()
	}
	want := map[string]string{
		"service.name":                "orders",
		"service.namespace":           "func-nbtrace",
		"service.version":             "v1",
		"service.instance.id":         "abc123",
		"cloud.provider":              "azure",
		"cloud.platform":              "azure.functions",
		"cloud.region":                "West Europe",
		"cloud.resource_id":           "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-nbtrace/providers/Microsoft.Web/sites/func-nbtrace",
		"deployment.environment.name": "dev one",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if _, ok := got["broken"]; ok {
		t.Error("a malformed OTEL_RESOURCE_ATTRIBUTES member was kept")
	}
	if got := Resource(env(nil), ""); got.Attributes()[0].Value.String() == "" {
		t.Error("no defaults")
	}
}

func TestSetupSettings(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	tests := []struct {
		env       map[string]string
		exporting bool
		wantErr   string
	}{
		{map[string]string{}, false, ""},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, true, ""},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://otlp.example.com/v1/traces"}, true, ""},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}, false, ""},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "127.0.0.1:4318"}, false, "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "ftp://user:secret@x/?sig=1"}, false, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
		{map[string]string{"OTEL_TRACES_SAMPLER": "sometimes"}, false, "OTEL_TRACES_SAMPLER"},
		{map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, false, "OTEL_TRACES_SAMPLER_ARG"},
		{map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}, false, ""},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_EXPORTER_OTLP_HEADERS": "a=b,c=d%20e", "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip", "OTEL_EXPORTER_OTLP_TIMEOUT": "500"}, true, ""},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_EXPORTER_OTLP_HEADERS": "novalue"}, false, "OTEL_EXPORTER_OTLP_HEADERS"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"}, false, "OTEL_EXPORTER_OTLP_COMPRESSION"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_EXPORTER_OTLP_TIMEOUT": "soon"}, false, "OTEL_EXPORTER_OTLP_TIMEOUT"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_TRACES_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}, false, ""},
		{map[string]string{"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=k;IngestionEndpoint=http://127.0.0.1:1/"}, true, ""},
		{map[string]string{"APPLICATIONINSIGHTS_CONNECTION_STRING": "IngestionEndpoint=http://x/"}, false, "InstrumentationKey"},
		{map[string]string{"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=k", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=Basic"}, false, "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"},
		// A bearer token goes over HTTPS only, or to a loopback stand-in.
		{map[string]string{"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=k;IngestionEndpoint=http://ingest.example.com/", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=AAD"}, false, "only over HTTPS"},
		{map[string]string{"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=k;IngestionEndpoint=https://ingest.example.com/", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=AAD"}, true, ""},
		{map[string]string{"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=k;IngestionEndpoint=http://127.0.0.1:1/", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=AAD"}, true, ""},
		{map[string]string{"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=k;IngestionEndpoint=http://localhost:1/", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=AAD"}, true, ""},
		{map[string]string{"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=k;IngestionEndpoint=http://ingest.example.com/"}, true, ""},
		{map[string]string{"NBTRACE_FLUSH_POLICY": "sometimes"}, false, "NBTRACE_FLUSH_POLICY"},
		{map[string]string{"NBTRACE_FLUSH_TIMEOUT": "0s"}, false, "NBTRACE_FLUSH_TIMEOUT"},
		{map[string]string{"OTEL_BSP_SCHEDULE_DELAY": "-1"}, false, "OTEL_BSP_SCHEDULE_DELAY"},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			tel, err := Setup(context.Background(), env(tt.env), logger)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("the error shows a credential: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				defer cancel()
				_ = tel.Shutdown(ctx)
			}()
			if tel.Exporting != tt.exporting {
				t.Errorf("Exporting = %v, want %v", tel.Exporting, tt.exporting)
			}
		})
	}
}

func TestSamplers(t *testing.T) {
	for name, want := range map[string]string{
		"":                         "ParentBased{root:AlwaysOnSampler",
		"always_off":               "AlwaysOffSampler",
		"always_on":                "AlwaysOnSampler",
		"parentbased_always_off":   "ParentBased{root:AlwaysOffSampler",
		"traceidratio":             "TraceIDRatioBased{1}",
		"parentbased_traceidratio": "ParentBased{root:TraceIDRatioBased{0.5}",
	} {
		s, err := samplerFrom(env(map[string]string{"OTEL_TRACES_SAMPLER": name, "OTEL_TRACES_SAMPLER_ARG": map[bool]string{true: "0.5"}[name == "parentbased_traceidratio"]}))
		if err != nil || !strings.HasPrefix(s.Description(), want) {
			t.Errorf("%q: %v %v, want %s", name, s.Description(), err, want)
		}
	}
}

func TestLogHandler(t *testing.T) {
	var out bytes.Buffer
	logger := slog.New(NewLogHandler(slog.NewJSONHandler(&out, nil), slog.LevelInfo)).With("function", "validate").WithGroup("req")
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder()))
	ctx, span := tp.Tracer("t").Start(context.Background(), "x")
	defer span.End()
	ctx, capture := CaptureLogs(ctx)
	logger.InfoContext(ctx, "checked", "status", 200)
	logger.Info("no context")
	var rec map[string]any
	line, _, _ := strings.Cut(out.String(), "\n")
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		t.Fatal(err)
	}
	req, _ := rec["req"].(map[string]any)
	if req["trace_id"] != span.SpanContext().TraceID().String() || req["span_id"] != span.SpanContext().SpanID().String() {
		t.Errorf("record = %v, want trace and span ids", rec)
	}
	lines := capture.Lines()
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "INFO checked function=validate req.status=200 req.trace_id=") {
		t.Errorf("captured = %q", lines)
	}
	for range MaxCapturedLines + 5 {
		logger.InfoContext(ctx, "more")
	}
	lines = capture.Lines()
	if len(lines) != MaxCapturedLines+1 || !strings.Contains(lines[len(lines)-1], "6 more log lines") {
		t.Errorf("%d captured lines, last %q", len(lines), lines[len(lines)-1])
	}
}

func TestURLCredentialsAreRedacted(t *testing.T) {
	for in, want := range map[string]string{
		"https://svc.example.com/api/check?code=abc&x=1":   "https://svc.example.com/api/check?code=REDACTED&x=1",
		"https://st.blob.core.windows.net/c/b?sv=1&sig=zz": "https://st.blob.core.windows.net/c/b?sv=1&sig=REDACTED",
		"/api/x?Token=t#frag":                              "/api/x?Token=REDACTED#frag",
		"https://svc.example.com/api/check?x=1":            "https://svc.example.com/api/check?x=1",
		"https://svc.example.com/path":                     "https://svc.example.com/path",
	} {
		if got := redactQuery(in); got != want {
			t.Errorf("redactQuery(%q) = %q, want %q", in, got, want)
		}
	}
	rec := tracetest.NewSpanRecorder()
	tel, err := Setup(context.Background(), env(nil), slog.New(slog.DiscardHandler), WithSpanProcessor(rec))
	if err != nil {
		t.Fatal(err)
	}
	_, span := tel.TracerProvider.Tracer("t").Start(context.Background(), "GET", trace.WithAttributes(attribute.String("url.full", "https://h/p?code=secret-key")))
	span.End()
	if got := rec.Ended()[0].Attributes()[0].Value.AsString(); strings.Contains(got, "secret-key") {
		t.Errorf("url.full = %q: the key reached the exporter", got)
	}
}
