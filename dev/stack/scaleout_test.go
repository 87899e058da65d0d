package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nbtrace/nbtrace/dev/azurite"
	"github.com/nbtrace/nbtrace/dev/dbxstandin"
	"github.com/nbtrace/nbtrace/dev/otlpsink"
	"github.com/nbtrace/nbtrace/handler/runclaim"
)

// quickRuns is a notebook that ends almost at once (its execution phase
// long enough for a span).
var quickRuns = dbxstandin.RunnerFunc(func(context.Context, dbxstandin.RunContext) error {
	time.Sleep(20 * time.Millisecond)
	return nil
})

// TestScaleOutRecordsARunOnce: two instances of the app (two hosts with a
// handler each) read the same finished runs many times at once, as a Flex
// Consumption app scaled out does: exactly one set of run spans reaches
// the sink for each run, and no claim failed. The instances share one
// Databricks workspace (the first stack's stand-in), one trace backend
// (its sink) and one storage account (an Azurite).
func TestScaleOutRecordsARunOnce(t *testing.T) {
	root, err := RepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	az := azurite.StartForTest(t, root)
	if err := az.CreateContainer(context.Background(), runclaim.Container); err != nil {
		t.Fatal(err)
	}
	metrics := "OTEL_METRIC_EXPORT_INTERVAL=200"
	// A loaded test machine (the race detector, packages in parallel) can
	// keep Azurite past the 2 s default; a claim cut short would record
	// anyway and make this test see a duplicate that production would not.
	patient := "NBTRACE_RUN_CLAIM_TIMEOUT=20s"
	a := startStack(t, Options{Auth: AuthToken, Runner: quickRuns, Storage: az.ConnectionString, Env: []string{metrics, patient}})
	b := startStack(t, Options{Auth: AuthToken, Runner: quickRuns, Storage: az.ConnectionString, Env: []string{metrics, patient,
		"DATABRICKS_HOST=" + a.DatabricksURL, "DATABRICKS_JOB_ID=" + strconv.FormatInt(a.JobID, 10),
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + a.OTLPURL}})

	const runs, readsPerInstance = 3, 20
	ids := make([]int64, runs)
	for i := range ids {
		res, body := post(t, a.URL+"/api/notebook", notebookBody, nil)
		if res.StatusCode != http.StatusAccepted {
			t.Fatalf("notebook = %d %v", res.StatusCode, body)
		}
		ids[i] = int64(body["runId"].(float64))
	}
	// The runs end unseen by either instance: the first reads race.
	for _, id := range ids {
		waitRunEnded(t, a, id)
	}
	var wg sync.WaitGroup
	for _, id := range ids {
		for _, s := range []*Stack{a, b} {
			for range readsPerInstance {
				wg.Go(func() {
					res, err := http.Get(fmt.Sprintf("%s/api/runs/%d", s.URL, id))
					if err != nil {
						t.Error(err)
						return
					}
					defer res.Body.Close()
					var st struct{ LifeCycleState string }
					if err := json.NewDecoder(res.Body).Decode(&st); err != nil || res.StatusCode != http.StatusOK || st.LifeCycleState != "TERMINATED" {
						t.Errorf("runs/%d on %s = %d %+v %v", id, s.URL, res.StatusCode, st, err)
					}
				})
			}
		}
	}
	wg.Wait()

	got := waitRunSpans(t, a.Sink, ids, 2*time.Second)
	for _, id := range ids {
		if len(got[id]) != 1 {
			t.Errorf("run %d: %d CONSUMER spans \"databricks run\", want 1", id, len(got[id]))
			continue
		}
		// One set: the run span's phases once each.
		phases := map[string]int{}
		for _, sp := range a.Sink.Trace(got[id][0].TraceID) {
			if sp.ParentSpanID == got[id][0].SpanID {
				phases[sp.Name]++
			}
		}
		for _, p := range []string{"queued", "setup", "execution", "cleanup"} {
			if phases[p] != 1 {
				t.Errorf("run %d: %d %s spans under its run span, want 1 (%v)", id, phases[p], p, phases)
			}
		}
	}
	if v, ok := a.Sink.Metric("nbtrace", "nbtrace.databricks.runs.claim_failed"); ok && v > 0 {
		t.Errorf("%v claims failed", v)
	}
}

// TestClaimsWithStorageDown: with the storage account unreachable,
// requests succeed, the run is recorded (once per instance at most: a
// duplicate is better than a loss), and the failed claim is counted.
func TestClaimsWithStorageDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := azurite.ConnectionString("http://" + ln.Addr().String())
	ln.Close()
	s := startStack(t, Options{Runner: quickRuns, Storage: down, Env: []string{"OTEL_METRIC_EXPORT_INTERVAL=200"}})
	res, body := post(t, s.URL+"/api/notebook?wait=30s", notebookBody, nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("notebook = %d %v", res.StatusCode, body)
	}
	id := int64(body["runId"].(float64))
	for range 5 {
		if res, status := get(t, fmt.Sprintf("%s/api/runs/%d", s.URL, id)); res.StatusCode != http.StatusOK || status["lifeCycleState"] != "TERMINATED" {
			t.Fatalf("runs/%d = %d %v", id, res.StatusCode, status)
		}
	}
	if got := waitRunSpans(t, s.Sink, []int64{id}, time.Second); len(got[id]) != 1 {
		t.Errorf("%d run spans, want 1 (one instance, which remembers the run)", len(got[id]))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if v, _ := s.Sink.Metric("nbtrace", "nbtrace.databricks.runs.claim_failed"); v >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("nbtrace.databricks.runs.claim_failed was not counted")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestStorageFallsBackToMemory: without Azurite, or with storage in the
// settings, the stack starts none and says why.
func TestStorageFallsBackToMemory(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	for _, tc := range []struct {
		name   string
		values []string
		want   string
	}{
		{"no Azurite", nil, "claims: Azurite is not installed (in the project's root: " + azurite.InstallCommand + "); using the in-memory guard, one instance only"},
		{"the settings' storage", []string{"AzureWebJobsStorage=UseDevelopmentStorage=true"}, "claims: the storage account of the settings (AzureWebJobsStorage)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log bytes.Buffer
			s := &Stack{}
			env, err := s.startStorage(context.Background(), Options{RepoRoot: t.TempDir(), Log: &log}, tc.values)()
			if err != nil || env != nil || s.Azurite != nil || len(s.stop) != 0 {
				t.Errorf("storage env %v, err %v, Azurite %v, %d stop functions; want none", env, err, s.Azurite, len(s.stop))
			}
			if !strings.Contains(log.String(), tc.want) {
				t.Errorf("log = %q, want %q", log.String(), tc.want)
			}
		})
	}
}

// waitRunEnded polls the Databricks stand-in (not the app) until the run
// has ended.
func waitRunEnded(t *testing.T, s *Stack, runID int64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/api/2.2/jobs/runs/get?run_id=%d", s.DatabricksURL, runID), nil)
		req.Header.Set("Authorization", "Bearer "+standinToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var run struct {
			State struct {
				LifeCycleState string `json:"life_cycle_state"`
			} `json:"state"`
		}
		err = json.NewDecoder(res.Body).Decode(&run)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if run.State.LifeCycleState == "TERMINATED" || run.State.LifeCycleState == "INTERNAL_ERROR" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %d is still %s", runID, run.State.LifeCycleState)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitRunSpans waits until the sink holds a "databricks run" span for each
// of ids, then quiet more for any late duplicate, and returns them by run.
func waitRunSpans(t *testing.T, sink *otlpsink.Sink, ids []int64, quiet time.Duration) map[int64][]otlpsink.Span {
	t.Helper()
	collect := func() map[int64][]otlpsink.Span {
		got := map[int64][]otlpsink.Span{}
		for _, tid := range sink.TraceIDs() {
			for _, sp := range sink.Trace(tid) {
				if sp.Name == "databricks run" && sp.Kind == "CONSUMER" {
					id, _ := sp.Attributes["databricks.run.id"].(int64)
					got[id] = append(got[id], sp)
				}
			}
		}
		return got
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, all := collect(), true
		for _, id := range ids {
			all = all && len(got[id]) > 0
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run spans after 30s: %v", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(quiet)
	return collect()
}
