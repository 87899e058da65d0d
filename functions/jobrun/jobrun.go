// Package jobrun is what the notebook and runs functions share about a
// Databricks job run: its state as the API answers it, and the spans that
// put a finished run into its own trace.
package jobrun

import (
	"context"
	"sync"
	"time"

	"github.com/databricks/databricks-sdk-go/service/jobs"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/nbtrace/nbtrace/handler/databricks"
)

// Runs is the part of the Databricks client the functions use.
type Runs interface {
	// JobID is the configured job.
	JobID() int64
	// RunNow starts the job; it returns the run id, or an *api.Error.
	RunNow(ctx context.Context, params map[string]string, idempotencyToken string) (int64, error)
	// GetRun reads a run, or returns an *api.Error.
	GetRun(ctx context.Context, runID int64) (*jobs.Run, error)
	// WaitRun waits up to timeout for the run to end and returns it as
	// last read; done tells whether it ended.
	WaitRun(ctx context.Context, runID int64, timeout time.Duration) (run *jobs.Run, done bool, err error)
}

// Task is one task's state.
type Task struct {
	TaskKey        string     `json:"taskKey"`
	LifeCycleState string     `json:"lifeCycleState,omitempty"`
	ResultState    string     `json:"resultState,omitempty"`
	StartTime      *time.Time `json:"startTime,omitempty"`
	EndTime        *time.Time `json:"endTime,omitempty"`
}

// Status is a run's state as the API answers it.
type Status struct {
	RunID          int64      `json:"runId"`
	JobID          int64      `json:"jobId"`
	LifeCycleState string     `json:"lifeCycleState"`
	ResultState    string     `json:"resultState,omitempty"`
	StateMessage   string     `json:"stateMessage,omitempty"`
	Ended          bool       `json:"ended"`
	StartTime      *time.Time `json:"startTime,omitempty"`
	EndTime        *time.Time `json:"endTime,omitempty"`
	// Durations in milliseconds, as Databricks reports them.
	QueueDurationMs     int64  `json:"queueDurationMs"`
	SetupDurationMs     int64  `json:"setupDurationMs"`
	ExecutionDurationMs int64  `json:"executionDurationMs"`
	CleanupDurationMs   int64  `json:"cleanupDurationMs"`
	RunPageURL          string `json:"runPageUrl,omitempty"`
	Tasks               []Task `json:"tasks"`
	// TraceID is the trace the run belongs to, from its traceparent job
	// parameter.
	TraceID string `json:"traceId,omitempty"`
}

// StatusOf converts a run.
func StatusOf(r *jobs.Run) Status {
	s := Status{
		RunID: r.RunId, JobID: r.JobId, RunPageURL: r.RunPageUrl, Ended: databricks.Ended(r),
		StartTime: msTime(r.StartTime), EndTime: msTime(r.EndTime),
		QueueDurationMs: r.QueueDuration, SetupDurationMs: r.SetupDuration,
		ExecutionDurationMs: r.ExecutionDuration, CleanupDurationMs: r.CleanupDuration,
		Tasks: []Task{},
	}
	if r.State != nil {
		s.LifeCycleState, s.ResultState, s.StateMessage = string(r.State.LifeCycleState), string(r.State.ResultState), r.State.StateMessage
	}
	for _, t := range r.Tasks {
		task := Task{TaskKey: t.TaskKey, StartTime: msTime(t.StartTime), EndTime: msTime(t.EndTime)}
		if t.State != nil {
			task.LifeCycleState, task.ResultState = string(t.State.LifeCycleState), string(t.State.ResultState)
		}
		s.Tasks = append(s.Tasks, task)
	}
	if sc := ParentOf(r); sc.IsValid() {
		s.TraceID = sc.TraceID().String()
	}
	return s
}

func msTime(ms int64) *time.Time {
	if ms <= 0 {
		return nil
	}
	t := time.UnixMilli(ms).UTC()
	return &t
}

// Parameter returns a job parameter's value as the run used it: the value
// passed to run-now, else the job's default.
func Parameter(r *jobs.Run, name string) string {
	for _, p := range r.JobParameters {
		if p.Name == name {
			if p.Value != "" {
				return p.Value
			}
			return p.Default
		}
	}
	return ""
}

// ParentOf is the span context in the run's traceparent and tracestate job
// parameters, or an invalid one.
func ParentOf(r *jobs.Run) trace.SpanContext {
	carrier := propagation.MapCarrier{"traceparent": Parameter(r, "traceparent"), "tracestate": Parameter(r, "tracestate")}
	return trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), carrier))
}

// Recorder records a finished run's spans once per run, however often its
// state is read. It remembers the last MaxRemembered runs of this process.
type Recorder struct {
	tracer trace.Tracer
	failed metric.Int64Counter
	mu     sync.Mutex
	seen   map[int64]bool
	order  []int64
}

// MaxRemembered bounds the runs a Recorder remembers.
const MaxRemembered = 10000

// NewRecorder returns a Recorder that makes spans with tp and counts
// failed runs (nbtrace.databricks.runs.failed) with mp, which may be nil.
func NewRecorder(tp trace.TracerProvider, mp metric.MeterProvider) *Recorder {
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	failed, _ := mp.Meter(scope).Int64Counter("nbtrace.databricks.runs.failed",
		metric.WithDescription("Runs of the notebook job seen ending without success."), metric.WithUnit("{run}"))
	return &Recorder{tracer: tp.Tracer(scope), failed: failed, seen: map[int64]bool{}}
}

const scope = "github.com/nbtrace/nbtrace/functions/jobrun"

// Record puts an ended run into its trace: a CONSUMER span "databricks run
// {id}" from its start to its end, child of the traceparent in its job
// parameters (a new trace when it has none), with INTERNAL children for
// its real queue, setup, execution and cleanup times. It returns false when
// the run has not ended or was recorded before.
func (rec *Recorder) Record(r *jobs.Run) bool {
	if !databricks.Ended(r) || r.StartTime <= 0 {
		return false
	}
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

	ctx := context.Background()
	if sc := ParentOf(r); sc.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
	}
	phases := phasesOf(r)
	start := time.UnixMilli(r.StartTime)
	end := time.UnixMilli(r.EndTime)
	if r.EndTime <= 0 {
		end = start.Add(phases.total())
	}
	attrs := []attribute.KeyValue{
		attribute.Int64("databricks.job.id", r.JobId),
		attribute.Int64("databricks.run.id", r.RunId),
		attribute.String("databricks.run.page_url", r.RunPageUrl),
		attribute.String("databricks.run.life_cycle_state", string(r.State.LifeCycleState)),
		attribute.String("databricks.run.result_state", string(r.State.ResultState)),
	}
	ctx, span := rec.tracer.Start(ctx, "databricks run", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithTimestamp(start), trace.WithAttributes(attrs...))
	if r.State.ResultState != jobs.RunResultStateSuccess {
		span.SetStatus(codes.Error, string(r.State.ResultState)+": "+r.State.StateMessage)
		rec.failed.Add(ctx, 1, metric.WithAttributes(attribute.String("databricks.run.result_state", string(r.State.ResultState))))
	}
	at := start
	for _, p := range []struct {
		name string
		d    time.Duration
	}{{"queued", phases.queue}, {"setup", phases.setup}, {"execution", phases.execution}, {"cleanup", phases.cleanup}} {
		if p.d <= 0 {
			continue
		}
		_, child := rec.tracer.Start(ctx, p.name, trace.WithTimestamp(at))
		at = at.Add(p.d)
		child.End(trace.WithTimestamp(at))
	}
	span.End(trace.WithTimestamp(end))
	return true
}

type phases struct{ queue, setup, execution, cleanup time.Duration }

func (p phases) total() time.Duration { return p.queue + p.setup + p.execution + p.cleanup }

// phasesOf reads the run's durations. For a job of several tasks the
// run-level setup, execution and cleanup are 0; a single task's are used.
func phasesOf(r *jobs.Run) phases {
	ms := func(v int64) time.Duration { return time.Duration(v) * time.Millisecond }
	p := phases{ms(r.QueueDuration), ms(r.SetupDuration), ms(r.ExecutionDuration), ms(r.CleanupDuration)}
	if p.setup+p.execution+p.cleanup == 0 && len(r.Tasks) == 1 {
		t := r.Tasks[0]
		p.setup, p.execution, p.cleanup = ms(t.SetupDuration), ms(t.ExecutionDuration), ms(t.CleanupDuration)
		if p.queue == 0 {
			p.queue = ms(t.QueueDuration)
		}
	}
	return p
}
