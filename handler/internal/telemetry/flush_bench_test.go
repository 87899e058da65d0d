package telemetry

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/nbtrace/nbtrace/dev/otlpsink"
)

// BenchmarkFlushPolicy measures what each flush policy costs an invocation:
// one SERVER span with two CLIENT children, then AfterInvocation, exporting
// over OTLP/HTTP to a sink on loopback. "batch" is the baseline.
//
//	go test ./handler/internal/telemetry -run '^$' -bench FlushPolicy -count 6 | benchstat -
func BenchmarkFlushPolicy(b *testing.B) {
	sink := httptest.NewServer(otlpsink.New())
	defer sink.Close()
	for _, policy := range []FlushPolicy{FlushBatch, FlushAsync, FlushSync} {
		b.Run(string(policy), func(b *testing.B) {
			env := map[string]string{
				"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": sink.URL + "/v1/traces",
				"OTEL_LOGS_EXPORTER":                 "none", "OTEL_METRICS_EXPORTER": "none",
				"NBTRACE_FLUSH_POLICY": string(policy),
			}
			tel, err := Setup(context.Background(), func(k string) string { return env[k] }, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				b.Fatal(err)
			}
			defer tel.Shutdown(context.Background())
			tracer := tel.TracerProvider.Tracer("bench")
			b.ReportAllocs()
			for b.Loop() {
				ctx, inv := tracer.Start(context.Background(), "POST /api/validate", trace.WithSpanKind(trace.SpanKindServer),
					trace.WithAttributes(attribute.String("faas.trigger", "http"), attribute.Int("http.response.status_code", 200)))
				for range 2 {
					_, c := tracer.Start(ctx, "POST /api/simulate/a", trace.WithSpanKind(trace.SpanKindClient))
					c.End()
				}
				inv.End()
				tel.AfterInvocation(ctx)
			}
		})
	}
}
