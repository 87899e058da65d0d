package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/nbtrace/nbtrace/dev/stack"
	"github.com/nbtrace/nbtrace/handler/databricks/deploy"
)

// computeStartup measures, through the local stack, the time from a
// notebook request to the first span of the notebook (its CONSUMER span)
// on each kind of Databricks compute, as the Databricks stand-in models
// their start-up (stack.ServerlessStartup, stack.ClassicStartup, computeScale
// times faster: slow enough that the notebook's own start, a Python
// kernel's few seconds, does not hide the difference), and what ?wait
// answers for the longest wait the app allows (NOTEBOOK_MAX_WAIT, 200 s,
// as fast). It needs the Python environment that runs the notebook.
func (r *runner) computeStartup(ctx context.Context) error {
	measure := "notebook request → the notebook's first span, as the stand-in models each compute"
	if _, ok, reason := stack.Python(r.o.RepoRoot); !ok {
		r.rows = append(r.rows, Row{Measure: measure, Result: "not measured: " + reason})
		return nil
	}
	wait := 200 * time.Second / computeScale
	var results, waits []string
	for _, c := range []deploy.Compute{deploy.ComputeServerless, deploy.ComputeClassic} {
		took, answer, err := r.timeToNotebook(ctx, c, wait)
		if err != nil {
			return fmt.Errorf("%s: %w", c, err)
		}
		modelled := stack.ServerlessStartup
		if c == deploy.ComputeClassic {
			modelled = stack.ClassicStartup
		}
		results = append(results, fmt.Sprintf("%s %.1f s (start-up %s, run %d× faster)", c, took.Seconds(), modelled, computeScale))
		waits = append(waits, fmt.Sprintf("%s: %s", c, answer))
		fmt.Fprintf(&r.raw, "BenchmarkTimeToNotebook/compute=%s 1 %d ns/op\n", c, took.Nanoseconds())
	}
	r.rows = append(r.rows, Row{Measure: measure, Result: strings.Join(results, "; "),
		Baseline: fmt.Sprintf("?wait=%s (200 s at that speed) answers %s", wait, strings.Join(waits, ", "))})
	return nil
}

// computeScale is how many times faster the measured start-ups run.
const computeScale = 10

// timeToNotebook starts the stack with the job on compute c, requests a
// notebook run with ?wait, and returns the time until the notebook's
// CONSUMER span started and how the request was answered.
func (r *runner) timeToNotebook(ctx context.Context, c deploy.Compute, wait time.Duration) (time.Duration, string, error) {
	s, err := stack.Start(ctx, stack.Options{RepoRoot: r.o.RepoRoot, Addr: "127.0.0.1:0", OTLPAddr: "127.0.0.1:0",
		Log: io.Discard, Compute: c, TimeScale: computeScale})
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = s.Stop() }()
	body := `{"dataset":"sales","date":"2026-11-25","rowCount":100,"parameters":{"extract_seconds":"0","transform_seconds":"0","load_seconds":"0"}}`
	start := time.Now()
	res, err := http.Post(s.URL+"/api/notebook?wait="+wait.String(), "application/json", bytes.NewReader([]byte(body)))
	if err != nil {
		return 0, "", err
	}
	var answer struct {
		TraceID string `json:"traceId"`
		Run     struct {
			LifeCycleState, ResultState string
		} `json:"run"`
	}
	err = json.NewDecoder(res.Body).Decode(&answer)
	res.Body.Close()
	if err != nil || answer.TraceID == "" {
		return 0, "", fmt.Errorf("notebook answered %d: %v", res.StatusCode, err)
	}
	state := strings.TrimSpace(answer.Run.LifeCycleState + " " + answer.Run.ResultState)
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, sp := range s.Sink.Trace(answer.TraceID) {
			if sp.Service == "databricks-notebook" && sp.Kind == "CONSUMER" {
				return sp.Start.Sub(start), fmt.Sprintf("%d, run %s", res.StatusCode, state), nil
			}
		}
	}
	return 0, "", fmt.Errorf("the notebook's span of trace %s did not arrive", answer.TraceID)
}
