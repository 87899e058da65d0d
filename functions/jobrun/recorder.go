package jobrun

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/databricks/databricks-sdk-go/service/jobs"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"

	"github.com/nbtrace/nbtrace/handler/databricks"
)

// Recorder records a finished run's spans once per run, however often its
// state is read: once per process by its memory of the last MaxRemembered
// runs, and once across the app's instances when it claims runs
// (WithClaims).
type Recorder struct {
	tracer       trace.Tracer
	failed       metric.Int64Counter
	claimFailed  metric.Int64Counter
	claims       Claimer
	claimTimeout time.Duration
	log          *slog.Logger
	warnings     claimWarnings
	mu           sync.Mutex
	seen         map[int64]bool
	order        []int64
}

// MaxRemembered bounds the runs a Recorder remembers.
const MaxRemembered = 10000

// NewRecorder returns a Recorder that makes spans with tp and counts with
// mp, which may be nil: failed runs (nbtrace.databricks.runs.failed) and
// claims that could not be made (nbtrace.databricks.runs.claim_failed,
// with error.type).
func NewRecorder(tp trace.TracerProvider, mp metric.MeterProvider, opts ...Option) *Recorder {
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	meter := mp.Meter(scope)
	failed, _ := meter.Int64Counter("nbtrace.databricks.runs.failed",
		metric.WithDescription("Runs of the notebook job seen ending without success."), metric.WithUnit("{run}"))
	claimFailed, _ := meter.Int64Counter("nbtrace.databricks.runs.claim_failed",
		metric.WithDescription("Finished runs recorded without a claim, which could not be made: another instance may record them too."),
		metric.WithUnit("{run}"))
	rec := &Recorder{tracer: tp.Tracer(scope), failed: failed, claimFailed: claimFailed, seen: map[int64]bool{}}
	for _, o := range opts {
		o(rec)
	}
	if rec.log == nil {
		rec.log = slog.Default()
	}
	return rec
}

const scope = "github.com/nbtrace/nbtrace/functions/jobrun"

// Record puts an ended run into its trace: a CONSUMER span "databricks run
// {id}" from its start to its end, child of the traceparent in its job
// parameters (a new trace when it has none), with INTERNAL children for
// its real queue, setup, execution and cleanup times. It returns false when
// the run has not ended, was recorded before by this process, or was
// claimed by another instance (see WithClaims).
func (rec *Recorder) Record(r *jobs.Run) bool {
	if !databricks.Ended(r) || r.StartTime <= 0 {
		return false
	}
	// Memory first: a run this process has seen end costs no claim.
	rec.mu.Lock()
	if rec.seen[r.RunId] {
		rec.mu.Unlock()
		return false
	}
	rec.seen[r.RunId] = true
	rec.order = append(rec.order, r.RunId)
	if len(rec.order) > MaxRemembered {
		delete(rec.seen, rec.order[0])
		rec.order = rec.order[1:]
	}
	rec.mu.Unlock()
	if !rec.claim(r.JobId, r.RunId) {
		return false
	}

	ctx := context.Background()
	if sc := ParentOf(r); sc.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
	}
	tl := timelineOf(r)
	attrs := []attribute.KeyValue{
		attribute.Int64("databricks.job.id", r.JobId),
		attribute.Int64("databricks.run.id", r.RunId),
		attribute.String("databricks.run.page_url", r.RunPageUrl),
		attribute.String("databricks.run.life_cycle_state", string(r.State.LifeCycleState)),
		attribute.String("databricks.run.result_state", string(r.State.ResultState)),
	}
	ctx, span := rec.tracer.Start(ctx, "databricks run", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithTimestamp(tl.start), trace.WithAttributes(attrs...))
	if r.State.ResultState != jobs.RunResultStateSuccess {
		span.SetStatus(codes.Error, string(r.State.ResultState)+": "+r.State.StateMessage)
		rec.failed.Add(ctx, 1, metric.WithAttributes(attribute.String("databricks.run.result_state", string(r.State.ResultState))))
	}
	rec.interval(ctx, "queued", tl.start, tl.queue)
	for _, t := range tl.tasks {
		parent := ctx
		if len(tl.tasks) > 1 {
			var task trace.Span
			parent, task = rec.tracer.Start(ctx, "task "+t.key, trace.WithTimestamp(t.start),
				trace.WithAttributes(attribute.String("databricks.task.key", t.key), attribute.Int64("databricks.task.run.id", t.runID)))
			task.End(trace.WithTimestamp(t.end))
		}
		at := t.start
		for _, p := range []struct {
			name string
			d    time.Duration
		}{{"setup", t.setup}, {"execution", t.execution}, {"cleanup", t.cleanup}} {
			at = rec.interval(parent, p.name, at, p.d)
		}
	}
	span.End(trace.WithTimestamp(tl.end))
	return true
}

// interval records an INTERNAL span name of length d from start, when d
// is not zero, and returns its end.
func (rec *Recorder) interval(ctx context.Context, name string, start time.Time, d time.Duration) time.Time {
	if d <= 0 {
		return start
	}
	_, s := rec.tracer.Start(ctx, name, trace.WithTimestamp(start))
	s.End(trace.WithTimestamp(start.Add(d)))
	return start.Add(d)
}
