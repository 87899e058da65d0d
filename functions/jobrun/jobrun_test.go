package jobrun

import (
	"context"
	"testing"
	"time"

	"github.com/databricks/databricks-sdk-go/service/jobs"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// endedRun is a run of one task as Jobs API 2.2 answers it: the run's own
// setup, execution and cleanup durations 0, the task's set, run_duration
// the whole.
func endedRun(tp string) *jobs.Run {
	return &jobs.Run{
		RunId: 9, JobId: 3, StartTime: 1_700_000_000_000, EndTime: 1_700_000_010_000,
		QueueDuration: 1000, RunDuration: 10_000,
		RunPageUrl: "https://adb/?o=1#job/3/run/9",
		State:      &jobs.RunState{LifeCycleState: jobs.RunLifeCycleStateTerminated, ResultState: jobs.RunResultStateFailed, StateMessage: "boom"},
		JobParameters: []jobs.JobParameter{
			{Name: "traceparent", Default: "", Value: tp},
			{Name: "tracestate", Default: "", Value: "congo=t61rcWkgMzE"},
			{Name: "dataset", Default: "d"},
		},
		Tasks: []jobs.RunTask{{TaskKey: "notebook", RunId: 10, StartTime: 1_700_000_001_000, EndTime: 1_700_000_010_000,
			QueueDuration: 1000, SetupDuration: 3000, ExecutionDuration: 5000, CleanupDuration: 1000,
			State: &jobs.RunState{LifeCycleState: jobs.RunLifeCycleStateTerminated, ResultState: jobs.RunResultStateFailed}}},
	}
}

func TestStatusOf(t *testing.T) {
	s := StatusOf(endedRun("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
	if !s.Ended || s.LifeCycleState != "TERMINATED" || s.ResultState != "FAILED" || s.StateMessage != "boom" ||
		s.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || len(s.Tasks) != 1 ||
		!s.StartTime.Equal(time.UnixMilli(1_700_000_000_000)) {
		t.Errorf("status = %+v", s)
	}
	// The run's figures come from its task and run_duration, not from the
	// run-level zeros.
	if s.SetupDurationMs == nil || *s.SetupDurationMs != 3000 || *s.ExecutionDurationMs != 5000 || *s.CleanupDurationMs != 1000 ||
		s.QueueDurationMs != 1000 || s.RunDurationMs != 10_000 || s.Tasks[0].ExecutionDurationMs != 5000 {
		t.Errorf("durations: setup %v execution %v cleanup %v queue %d run %d task %+v", deref(s.SetupDurationMs), deref(s.ExecutionDurationMs),
			deref(s.CleanupDurationMs), s.QueueDurationMs, s.RunDurationMs, s.Tasks[0])
	}
	if Parameter(endedRun(""), "dataset") != "d" {
		t.Error("a parameter's default is not used when it has no value")
	}
}

func TestRecorder(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	r := NewRecorder(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)), nil)
	run := endedRun("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if !r.Record(run) {
		t.Fatal("not recorded")
	}
	if r.Record(run) {
		t.Error("recorded twice")
	}
	running := endedRun("")
	running.RunId, running.State = 10, &jobs.RunState{LifeCycleState: jobs.RunLifeCycleStateRunning}
	if r.Record(running) {
		t.Error("a running run was recorded")
	}
	spans := rec.Ended()
	if len(spans) != 5 {
		t.Fatalf("%d spans, want the run and 4 phases", len(spans))
	}
	var root sdktrace.ReadOnlySpan
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byName[s.Name()] = s
		if s.Name() == "databricks run" {
			root = s
		}
	}
	if root.SpanKind() != trace.SpanKindConsumer || root.Parent().SpanID().String() != "00f067aa0ba902b7" ||
		root.SpanContext().TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || root.Status().Code.String() != "Error" {
		t.Errorf("run span: kind %v parent %v status %v", root.SpanKind(), root.Parent(), root.Status())
	}
	if root.SpanContext().TraceState().Get("congo") != "t61rcWkgMzE" {
		t.Error("the run's tracestate was not carried")
	}
	if !root.StartTime().Equal(time.UnixMilli(1_700_000_000_000)) || !root.EndTime().Equal(time.UnixMilli(1_700_000_010_000)) {
		t.Errorf("run span %v–%v, want the run's own start and end", root.StartTime(), root.EndTime())
	}
	at := time.UnixMilli(1_700_000_000_000)
	for _, p := range []struct {
		name string
		d    time.Duration
	}{{"queued", time.Second}, {"setup", 3 * time.Second}, {"execution", 5 * time.Second}, {"cleanup", time.Second}} {
		s := byName[p.name]
		if s == nil || !s.StartTime().Equal(at) || s.EndTime().Sub(s.StartTime()) != p.d || s.Parent().SpanID() != root.SpanContext().SpanID() {
			t.Errorf("%s span = %v", p.name, s)
			continue
		}
		at = at.Add(p.d)
	}
}

func TestRecorderWithoutTraceparentStartsATrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	r := NewRecorder(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)), nil)
	r.Record(endedRun("ff-bad"))
	for _, s := range rec.Ended() {
		if s.Name() == "databricks run" && s.Parent().IsValid() {
			t.Error("a run with an invalid traceparent joined some trace")
		}
	}
}

func deref(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestOlderSingleTaskFormat: a run whose figures are on the run, not on
// its task, still has its phases.
func TestOlderSingleTaskFormat(t *testing.T) {
	run := endedRun("")
	run.RunDuration, run.SetupDuration, run.ExecutionDuration, run.CleanupDuration = 0, 2, 3, 4
	run.Tasks[0].SetupDuration, run.Tasks[0].ExecutionDuration, run.Tasks[0].CleanupDuration = 0, 0, 0
	s := StatusOf(run)
	if deref(s.SetupDurationMs) != int64(2) || deref(s.ExecutionDurationMs) != int64(3) || deref(s.CleanupDurationMs) != int64(4) || s.RunDurationMs != 10_000 {
		t.Errorf("status = %+v", s)
	}
}

// TestMultiTaskRun: a run of two tasks in parallel: the run span covers
// the run, each task has a span of its own with its phases at its own
// times; the status gives each task's figures and the run's duration.
func TestMultiTaskRun(t *testing.T) {
	run := endedRun("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	run.State.ResultState = jobs.RunResultStateSuccess
	run.Tasks = []jobs.RunTask{
		{TaskKey: "ingest", RunId: 11, StartTime: 1_700_000_001_000, EndTime: 1_700_000_006_000, SetupDuration: 2000, ExecutionDuration: 2500, CleanupDuration: 500},
		{TaskKey: "score", RunId: 12, StartTime: 1_700_000_002_000, EndTime: 1_700_000_010_000, SetupDuration: 1000, ExecutionDuration: 6000, CleanupDuration: 1000},
	}
	s := StatusOf(run)
	if s.SetupDurationMs != nil || s.RunDurationMs != 10_000 || len(s.Tasks) != 2 || s.Tasks[1].ExecutionDurationMs != 6000 || s.Tasks[0].SetupDurationMs != 2000 {
		t.Errorf("status = %+v", s)
	}
	rec := tracetest.NewSpanRecorder()
	NewRecorder(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)), nil).Record(run)
	byName := map[string]sdktrace.ReadOnlySpan{}
	var executions []sdktrace.ReadOnlySpan
	for _, sp := range rec.Ended() {
		byName[sp.Name()] = sp
		if sp.Name() == "execution" {
			executions = append(executions, sp)
		}
	}
	root, score := byName["databricks run"], byName["task score"]
	if root == nil || score == nil || byName["task ingest"] == nil || len(executions) != 2 {
		t.Fatalf("spans: %v", byName)
	}
	if score.Parent().SpanID() != root.SpanContext().SpanID() || !score.StartTime().Equal(time.UnixMilli(1_700_000_002_000)) ||
		!score.EndTime().Equal(time.UnixMilli(1_700_000_010_000)) {
		t.Errorf("task span %v–%v under %v", score.StartTime(), score.EndTime(), score.Parent())
	}
	for _, e := range executions {
		if e.Parent().SpanID() == score.SpanContext().SpanID() {
			if !e.StartTime().Equal(time.UnixMilli(1_700_000_003_000)) || e.EndTime().Sub(e.StartTime()) != 6*time.Second {
				t.Errorf("score's execution %v–%v", e.StartTime(), e.EndTime())
			}
		}
	}
	if !root.EndTime().Equal(time.UnixMilli(1_700_000_010_000)) {
		t.Errorf("run span ends %v", root.EndTime())
	}
}

func TestFailedRunsAreCounted(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	r := NewRecorder(sdktrace.NewTracerProvider(), sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	r.Record(endedRun(""))
	r.Record(endedRun("")) // the same run: counted once
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	sum := rm.ScopeMetrics[0].Metrics[0].Data.(metricdata.Sum[int64])
	if rm.ScopeMetrics[0].Metrics[0].Name != "nbtrace.databricks.runs.failed" || sum.DataPoints[0].Value != 1 {
		t.Errorf("metrics = %+v", rm.ScopeMetrics)
	}
}
