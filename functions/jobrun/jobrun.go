// Package jobrun is what the notebook and runs functions share about a
// Databricks job run: its state as the API answers it, and the spans that
// put a finished run into its own trace, once however many of the app's
// instances see it end (Recorder, Claimer).
package jobrun

import (
	"context"
	"time"

	"github.com/databricks/databricks-sdk-go/service/jobs"
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
