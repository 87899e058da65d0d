package runs

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/databricks/databricks-sdk-go/service/jobs"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/nbtrace/nbtrace/functions/api"
	"github.com/nbtrace/nbtrace/functions/jobrun"
)

type fakeRuns struct {
	get func(id int64) (*jobs.Run, error)
}

var _ jobrun.Runs = (*fakeRuns)(nil)

func (f *fakeRuns) JobID() int64 { return 5 }
func (f *fakeRuns) RunNow(context.Context, map[string]string, string) (int64, error) {
	panic("not used")
}
func (f *fakeRuns) GetRun(_ context.Context, id int64) (*jobs.Run, error) { return f.get(id) }
func (f *fakeRuns) WaitRun(context.Context, int64, time.Duration) (*jobs.Run, bool, error) {
	panic("not used")
}

func TestRuns(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	recorder := jobrun.NewRecorder(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)), nil)
	runs := &fakeRuns{get: func(id int64) (*jobs.Run, error) {
		switch id {
		case 1:
			return &jobs.Run{RunId: 1, JobId: 5, StartTime: 1000, EndTime: 2000, State: &jobs.RunState{LifeCycleState: jobs.RunLifeCycleStateTerminated, ResultState: jobs.RunResultStateSuccess}}, nil
		case 2:
			return &jobs.Run{RunId: 2, JobId: 5, StartTime: 1000, State: &jobs.RunState{LifeCycleState: jobs.RunLifeCycleStateRunning}}, nil
		case 3:
			return &jobs.Run{RunId: 3, JobId: 6}, nil // another job's run
		case 7: // another job's run, which the app's identity may not see
			return nil, &api.Error{Code: api.EDEPENDENCY, Message: "Databricks answered 403 PERMISSION_DENIED: User a does not have View or Admin or Manage Run or Owner permissions on job 6",
				Extensions: map[string]any{"databricksErrorCode": "PERMISSION_DENIED"}}
		case 8: // the app's identity lost its grant on its own job
			return nil, &api.Error{Code: api.EDEPENDENCY, Message: "Databricks answered 403 PERMISSION_DENIED: User a does not have View or Admin or Manage Run or Owner permissions on job 5",
				Extensions: map[string]any{"databricksErrorCode": "PERMISSION_DENIED"}}
		default:
			return nil, &api.Error{Code: api.EDEPENDENCY, Extensions: map[string]any{"databricksErrorCode": "INVALID_PARAMETER_VALUE"}}
		}
	}}
	h, err := New(api.Env{}, runs, recorder)
	if err != nil {
		t.Fatal(err)
	}
	get := func(id string) (int, map[string]any) {
		r := httptest.NewRequest(http.MethodGet, "/api/runs/"+id, nil)
		r.SetPathValue("runId", id)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		var m map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &m)
		return w.Code, m
	}
	for _, tt := range []struct {
		id     string
		status int
		state  string
	}{{"1", 200, "TERMINATED"}, {"1", 200, "TERMINATED"}, {"2", 200, "RUNNING"}, {"3", 404, ""}, {"4", 404, ""}, {"0", 400, ""}, {"7", 404, ""}, {"8", 502, ""}} {
		code, m := get(tt.id)
		if code != tt.status || (tt.state != "" && m["lifeCycleState"] != tt.state) {
			t.Errorf("run %s: %d %v, want %d %s", tt.id, code, m, tt.status, tt.state)
		}
	}
	runSpans := 0
	for _, s := range rec.Ended() {
		if s.Name() == "databricks run" {
			runSpans++
		}
	}
	if runSpans != 1 {
		t.Errorf("%d run spans after reading an ended run twice and a running one once, want 1", runSpans)
	}
}
