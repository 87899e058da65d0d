package appinsights

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// MetricExporter is a metric.Exporter: each data point becomes a Metric
// envelope, its attributes the properties; a histogram point sends its sum
// with count, min and max.
type MetricExporter struct {
	tx   *Transmitter
	ikey string
}

var _ metric.Exporter = (*MetricExporter)(nil)

// NewMetricExporter returns an exporter that sends through tx.
func NewMetricExporter(tx *Transmitter) *MetricExporter {
	return &MetricExporter{tx: tx, ikey: tx.conn.InstrumentationKey}
}

// Temporality is delta: App Insights aggregates per interval.
func (e *MetricExporter) Temporality(metric.InstrumentKind) metricdata.Temporality {
	return metricdata.DeltaTemporality
}

// Aggregation is the SDK's default.
func (e *MetricExporter) Aggregation(k metric.InstrumentKind) metric.Aggregation {
	return metric.DefaultAggregationSelector(k)
}

// Export converts and queues the metrics.
func (e *MetricExporter) Export(_ context.Context, rm *metricdata.ResourceMetrics) error {
	base := partA(rm.Resource)
	var envs []Envelope
	add := func(name string, t time.Time, dp DataPoint, attrs []attributeKV) {
		props := map[string]string{}
		for _, kv := range attrs {
			props[kv.k] = kv.v
		}
		dp.Name = name
		data := &MetricsData{Ver: 2, Metrics: []DataPoint{dp}, Properties: props}
		envs = append(envs, newEnvelope(MetricName, e.ikey, copyTags(base), "MetricData", data, formatTime(t)))
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				addPoints(m.Name, d.DataPoints, add)
			case metricdata.Sum[float64]:
				addPoints(m.Name, d.DataPoints, add)
			case metricdata.Gauge[int64]:
				addPoints(m.Name, d.DataPoints, add)
			case metricdata.Gauge[float64]:
				addPoints(m.Name, d.DataPoints, add)
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					if p.Count == 0 {
						continue
					}
					count := int64(p.Count)
					dp := DataPoint{Value: p.Sum, Count: &count}
					if v, ok := p.Min.Value(); ok {
						dp.Min = &v
					}
					if v, ok := p.Max.Value(); ok {
						dp.Max = &v
					}
					add(m.Name, p.Time, dp, kvs(p.Attributes.ToSlice()))
				}
			}
		}
	}
	e.tx.Enqueue(envs)
	return nil
}

// addPoints adds one Metric envelope for each point of a sum or gauge.
func addPoints[N int64 | float64](name string, dps []metricdata.DataPoint[N], add func(string, time.Time, DataPoint, []attributeKV)) {
	for _, p := range dps {
		add(name, p.Time, DataPoint{Value: float64(p.Value)}, kvs(p.Attributes.ToSlice()))
	}
}

// ForceFlush sends what is queued, within ctx.
func (e *MetricExporter) ForceFlush(ctx context.Context) error { return e.tx.Flush(ctx) }

// Shutdown sends what is queued, within ctx.
func (e *MetricExporter) Shutdown(ctx context.Context) error { return e.tx.Flush(ctx) }

type attributeKV struct{ k, v string }

func kvs(in []attribute.KeyValue) []attributeKV {
	out := make([]attributeKV, 0, len(in))
	for _, kv := range in {
		if isStandard(string(kv.Key)) && !httpMetricDimension[string(kv.Key)] {
			continue
		}
		out = append(out, attributeKV{string(kv.Key), valueString(kv.Value)})
	}
	return out
}

// httpMetricDimension keeps the HTTP semantic-convention dimensions on
// metrics, where they are what the metric is split by.
var httpMetricDimension = map[string]bool{
	"http.request.method": true, "http.response.status_code": true, "http.route": true, "error.type": true,
}
