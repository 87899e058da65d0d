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

// Task is one task's state and times.
type Task struct {
	TaskKey        string     `json:"taskKey"`
	LifeCycleState string     `json:"lifeCycleState,omitempty"`
	ResultState    string     `json:"resultState,omitempty"`
	StartTime      *time.Time `json:"startTime,omitempty"`
	EndTime        *time.Time `json:"endTime,omitempty"`
	// Durations in milliseconds, as Databricks reports them on the task.
	SetupDurationMs     int64 `json:"setupDurationMs"`
	ExecutionDurationMs int64 `json:"executionDurationMs"`
	CleanupDurationMs   int64 `json:"cleanupDurationMs"`
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
	// Durations in milliseconds. RunDurationMs is the whole run's (so far,
	// while it runs); QueueDurationMs its time in the queue. Setup,
	// execution and cleanup are the task's when the run has one task
	// (Jobs API 2.2 reports them on the tasks, 0 on the run); with several
	// tasks they are absent and each task has its own.
	RunDurationMs       int64  `json:"runDurationMs"`
	QueueDurationMs     int64  `json:"queueDurationMs"`
	SetupDurationMs     *int64 `json:"setupDurationMs,omitempty"`
	ExecutionDurationMs *int64 `json:"executionDurationMs,omitempty"`
	CleanupDurationMs   *int64 `json:"cleanupDurationMs,omitempty"`
	RunPageURL          string `json:"runPageUrl,omitempty"`
	Tasks               []Task `json:"tasks"`
	// TraceID is the trace the run belongs to, from its traceparent job
	// parameter.
	TraceID string `json:"traceId,omitempty"`
}

// StatusOf converts a run.
func StatusOf(r *jobs.Run) Status {
	tl := timelineOf(r)
	s := Status{
		RunID: r.RunId, JobID: r.JobId, RunPageURL: r.RunPageUrl, Ended: databricks.Ended(r),
		StartTime: msTime(r.StartTime), EndTime: msTime(r.EndTime),
		RunDurationMs: r.RunDuration, QueueDurationMs: tl.queue.Milliseconds(),
		Tasks: []Task{},
	}
	if r.EndTime > 0 {
		s.RunDurationMs = tl.end.Sub(tl.start).Milliseconds()
	}
	if len(tl.tasks) == 1 {
		t := tl.tasks[0]
		s.SetupDurationMs, s.ExecutionDurationMs, s.CleanupDurationMs = msPtr(t.setup), msPtr(t.execution), msPtr(t.cleanup)
	}
	if r.State != nil {
		s.LifeCycleState, s.ResultState, s.StateMessage = string(r.State.LifeCycleState), string(r.State.ResultState), r.State.StateMessage
	}
	for i, t := range r.Tasks {
		task := Task{TaskKey: t.TaskKey, StartTime: msTime(t.StartTime), EndTime: msTime(t.EndTime),
			SetupDurationMs: tl.tasks[i].setup.Milliseconds(), ExecutionDurationMs: tl.tasks[i].execution.Milliseconds(),
			CleanupDurationMs: tl.tasks[i].cleanup.Milliseconds()}
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

func msPtr(d time.Duration) *int64 {
	ms := d.Milliseconds()
	return &ms
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

// timeline is a run laid out in time: its start and end, its time in the
// queue, and each task's phases.
type timeline struct {
	start, end time.Time
	queue      time.Duration
	tasks      []taskPhases
}

type taskPhases struct {
	key                       string
	runID                     int64
	start, end                time.Time
	setup, execution, cleanup time.Duration
}

// timelineOf reads a run's times. Jobs API 2.2 reports every run in the
// multi-task format: the run's own setup, execution and cleanup durations
// are 0, the figures are on its tasks, and run_duration is the whole run
// ("The setup_duration field is set to 0 for multitask job runs. The total
// duration of a multitask job run is the value of the run_duration
// field", jobs.Run). A task's phases start at its start time (else after
// the queue); a run without tasks, or whose one task carries no figures,
// is read from the run-level figures of the older single-task format.
func timelineOf(r *jobs.Run) timeline {
	ms := func(v int64) time.Duration { return time.Duration(v) * time.Millisecond }
	tl := timeline{start: time.UnixMilli(r.StartTime), queue: ms(r.QueueDuration)}
	for _, t := range r.Tasks {
		tl.tasks = append(tl.tasks, taskPhases{key: t.TaskKey, runID: t.RunId, start: time.UnixMilli(t.StartTime), end: time.UnixMilli(t.EndTime),
			setup: ms(t.SetupDuration), execution: ms(t.ExecutionDuration), cleanup: ms(t.CleanupDuration)})
		if tl.queue == 0 && len(r.Tasks) == 1 {
			tl.queue = ms(t.QueueDuration)
		}
	}
	if len(tl.tasks) == 0 {
		tl.tasks = []taskPhases{{}}
	}
	if t := &tl.tasks[0]; len(tl.tasks) == 1 && t.setup+t.execution+t.cleanup == 0 {
		t.setup, t.execution, t.cleanup = ms(r.SetupDuration), ms(r.ExecutionDuration), ms(r.CleanupDuration)
	}
	for i := range tl.tasks {
		t := &tl.tasks[i]
		if len(r.Tasks) == 0 || r.Tasks[i].StartTime <= 0 {
			t.start = tl.start.Add(tl.queue)
		}
		if len(r.Tasks) == 0 || r.Tasks[i].EndTime <= 0 {
			t.end = t.start.Add(t.setup + t.execution + t.cleanup)
		}
	}
	switch {
	case r.EndTime > 0:
		tl.end = time.UnixMilli(r.EndTime)
	case r.RunDuration > 0:
		tl.end = tl.start.Add(ms(r.RunDuration))
	default:
		tl.end = tl.start
		for _, t := range tl.tasks {
			if t.end.After(tl.end) {
				tl.end = t.end
			}
		}
	}
	return tl
}
