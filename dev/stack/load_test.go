package stack

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nbtrace/nbtrace/dev/dbxstandin"
	"github.com/nbtrace/nbtrace/dev/loadgen"
)

var soak = flag.Duration("soak", 0, "run TestLoad for this long instead of 10,000 invocations (such as 10m)")

// TestLoad sends 10,000 validate invocations at 200 concurrency through the
// host stand-in (each one invokes simulate twice more, so 30,000 in all)
// and checks: no errors, and no goroutine or memory growth in the handler
// between a warm-up and the end, read from the handler's own runtime
// metrics (go.goroutine.count, go.memory.gc.goal over OTLP) and its RSS.
// With -soak=10m it runs for that long instead.
func TestLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the load test takes a while")
	}
	s := startWith(t, "payload", dbxstandin.RunnerFunc(func(context.Context, dbxstandin.RunContext) error { return nil }), []string{"SIMULATE_LATENCY=0s", "OTEL_METRIC_EXPORT_INTERVAL=250",
		"NBTRACE_LOG_LEVEL=warn"})
	const concurrency = 200
	client := loadgen.Client(concurrency, 30*time.Second)
	do := func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/api/validate", strings.NewReader(validBody))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		res, err := client.Do(req)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"valid":true`) {
			return fmt.Errorf("%d %s", res.StatusCode, body)
		}
		return nil
	}
	pid, _, ok := s.Host.HandlerProcess()
	if !ok {
		t.Fatal("no handler running")
	}
	ctx := context.Background()
	warm, err := loadgen.Run(ctx, loadgen.Options{Concurrency: concurrency, Requests: 2000, Duration: 2 * time.Minute}, do)
	if err != nil {
		t.Fatal(err)
	}
	if warm.Errors > 0 {
		t.Fatalf("warm-up: %v; first: %v", warm, warm.FirstErr)
	}
	before := settled(t, s, pid, do)

	o := loadgen.Options{Concurrency: concurrency, Requests: 10000, Duration: 5 * time.Minute}
	if *soak > 0 {
		o = loadgen.Options{Concurrency: concurrency, Duration: *soak}
	}
	res, err := loadgen.Run(ctx, o, do)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("load: %v", res)
	if res.Errors > 0 {
		t.Errorf("%d of %d invocations failed; first: %v", res.Errors, res.Sent, res.FirstErr)
	}
	if o.Requests > 0 && res.Sent != o.Requests {
		t.Errorf("sent %d of %d within %v", res.Sent, o.Requests, o.Duration)
	}
	after := settled(t, s, pid, do)
	t.Logf("handler at rest after the warm-up: %v; after the run: %v", before, after)
	if p, _, _ := s.Host.HandlerProcess(); p != pid {
		t.Fatalf("the handler was restarted during the run (pid %d, then %d)", pid, p)
	}
	if after.goroutines > before.goroutines+5 {
		t.Errorf("goroutines grew from %.0f to %.0f", before.goroutines, after.goroutines)
	}
	if after.gcGoal > before.gcGoal*1.25+2<<20 {
		t.Errorf("heap goal grew from %.1f MiB to %.1f MiB", mib(before.gcGoal), mib(after.gcGoal))
	}
	if after.rss > 0 && after.rss > before.rss+16<<20 {
		t.Errorf("RSS grew from %.1f MiB to %.1f MiB", mib(before.rss), mib(after.rss))
	}
}

type restState struct{ goroutines, gcGoal, rss float64 }

func (r restState) String() string {
	return fmt.Sprintf("%.0f goroutines, heap goal %.1f MiB, RSS %.1f MiB", r.goroutines, mib(r.gcGoal), mib(r.rss))
}

func mib(b float64) float64 { return b / (1 << 20) }

// settled brings the handler to rest the same way each time: 1,000
// invocations at concurrency 4 (so that garbage collections run at a low
// live heap), idle connections closed, then the lowest of four runtime
// metric exports, and the process's RSS (Linux; 0 elsewhere).
func settled(t *testing.T, s *Stack, pid int, do func(context.Context) error) restState {
	t.Helper()
	res, err := loadgen.Run(context.Background(), loadgen.Options{Concurrency: 4, Requests: 1000, Duration: time.Minute}, do)
	if err != nil || res.Errors > 0 {
		t.Fatalf("quiet phase: %v %v; first: %v", err, res, res.FirstErr)
	}
	time.Sleep(300 * time.Millisecond) // the async flushes end
	s.CloseIdleConnections()
	time.Sleep(300 * time.Millisecond)
	st := restState{goroutines: math.Inf(1), gcGoal: math.Inf(1)}
	deadline := time.Now().Add(30 * time.Second)
	last := s.Sink.MetricExports()
	for seen := 0; seen < 4; {
		if time.Now().After(deadline) {
			t.Fatalf("the handler's runtime metrics did not arrive (%d exports seen)", seen)
		}
		time.Sleep(50 * time.Millisecond)
		n := s.Sink.MetricExports()
		if n == last {
			continue
		}
		last = n
		g, ok1 := s.Sink.Metric("nbtrace", "go.goroutine.count")
		goal, ok2 := s.Sink.Metric("nbtrace", "go.memory.gc.goal")
		if !ok1 || !ok2 {
			continue
		}
		seen++
		st.goroutines, st.gcGoal = min(st.goroutines, g), min(st.gcGoal, goal)
	}
	rss, err := loadgen.ProcStatus(pid, "VmRSS")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	st.rss = float64(rss)
	return st
}
