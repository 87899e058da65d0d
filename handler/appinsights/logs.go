package appinsights

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
)

// LogExporter is an sdklog.Exporter: each log record becomes a Message
// envelope (an App Insights trace) with the operation id and parent id of
// the span it was written in.
type LogExporter struct {
	tx   *Transmitter
	ikey string
}

var _ sdklog.Exporter = (*LogExporter)(nil)

// NewLogExporter returns an exporter that sends through tx.
func NewLogExporter(tx *Transmitter) *LogExporter {
	return &LogExporter{tx: tx, ikey: tx.conn.InstrumentationKey}
}

// Export converts records and queues them.
func (e *LogExporter) Export(_ context.Context, records []sdklog.Record) error {
	envs := make([]Envelope, 0, len(records))
	var res *resource.Resource
	var base map[string]string
	for i := range records {
		r := &records[i]
		if rr := r.Resource(); rr != res {
			res, base = rr, partA(rr)
		}
		tags := copyTags(base)
		if r.TraceID().IsValid() {
			tags[TagOperationID] = r.TraceID().String()
		}
		if r.SpanID().IsValid() {
			tags[TagOperationParentID] = r.SpanID().String()
		}
		var kvs []attribute.KeyValue
		r.WalkAttributes(func(kv attribute.KeyValue) bool {
			kvs = append(kvs, kv)
			return true
		})
		ts := r.Timestamp()
		if ts.IsZero() {
			ts = r.ObservedTimestamp()
		}
		data := &MessageData{Ver: 2, Message: truncate(valueString(r.Body()), 32768), SeverityLevel: severity(r.Severity()),
			Properties: properties(kvs), Measurements: map[string]float64{}}
		envs = append(envs, newEnvelope(MessageName, e.ikey, tags, "MessageData", data, formatTime(ts)))
	}
	e.tx.Enqueue(envs)
	return nil
}

// severity maps OpenTelemetry severities to App Insights levels.
func severity(s otellog.Severity) string {
	switch {
	case s >= otellog.SeverityFatal1:
		return "Critical"
	case s >= otellog.SeverityError1:
		return "Error"
	case s >= otellog.SeverityWarn1:
		return "Warning"
	case s >= otellog.SeverityInfo1:
		return "Information"
	default:
		return "Verbose"
	}
}

// Shutdown sends what is queued, within ctx.
func (e *LogExporter) Shutdown(ctx context.Context) error { return e.tx.Flush(ctx) }

// ForceFlush sends what is queued, within ctx.
func (e *LogExporter) ForceFlush(ctx context.Context) error { return e.tx.Flush(ctx) }
