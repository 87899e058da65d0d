package jobrun

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// fakeClaimer answers claims with claim.
type fakeClaimer struct {
	mu    sync.Mutex
	calls int
	claim func(ctx context.Context, jobID, runID int64) (bool, error)
}

var _ Claimer = (*fakeClaimer)(nil)

func (f *fakeClaimer) Claim(ctx context.Context, jobID, runID int64) (bool, error) {
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	return f.claim(ctx, jobID, runID)
}

// logRecords keeps the records logged through it.
type logRecords struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecords) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r)
	return nil
}
func (l *logRecords) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecords) WithGroup(string) slog.Handler      { return l }

type claimFixture struct {
	rec     *Recorder
	spans   *tracetest.SpanRecorder
	metrics *sdkmetric.ManualReader
	logs    *logRecords
}

func newClaimFixture(c Claimer, timeout time.Duration) claimFixture {
	f := claimFixture{spans: tracetest.NewSpanRecorder(), metrics: sdkmetric.NewManualReader(), logs: &logRecords{}}
	f.rec = NewRecorder(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(f.spans)),
		sdkmetric.NewMeterProvider(sdkmetric.WithReader(f.metrics)), WithClaims(c, timeout), WithLogger(slog.New(f.logs)))
	return f
}

func (f claimFixture) runSpans() int {
	n := 0
	for _, s := range f.spans.Ended() {
		if s.Name() == "databricks run" {
			n++
		}
	}
	return n
}

// claimFailures reads nbtrace.databricks.runs.claim_failed by error.type.
func (f claimFixture) claimFailures(t *testing.T) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := f.metrics.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "nbtrace.databricks.runs.claim_failed" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				v, _ := dp.Attributes.Value(attribute.Key("error.type"))
				got[v.AsString()] += dp.Value
			}
		}
	}
	return got
}

func TestClaimedRunsAreRecordedByTheirClaimant(t *testing.T) {
	for _, tc := range []struct {
		name      string
		won       bool
		wantSpans int
	}{
		{"claim won: recorded", true, 1},
		{"claimed by another instance: not recorded", false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var gotJob, gotRun int64
			c := &fakeClaimer{claim: func(ctx context.Context, jobID, runID int64) (bool, error) {
				gotJob, gotRun = jobID, runID
				if _, ok := ctx.Deadline(); !ok {
					t.Error("the claim has no deadline")
				}
				return tc.won, nil
			}}
			f := newClaimFixture(c, 0)
			run := endedRun("")
			if got := f.rec.Record(run); got != tc.won {
				t.Errorf("Record = %v, want %v", got, tc.won)
			}
			if f.rec.Record(run) {
				t.Error("recorded again")
			}
			if c.calls != 1 || gotJob != 3 || gotRun != 9 {
				t.Errorf("%d claims, of job %d run %d; want 1, of job 3 run 9 (memory guards the second)", c.calls, gotJob, gotRun)
			}
			if n := f.runSpans(); n != tc.wantSpans {
				t.Errorf("%d run spans, want %d", n, tc.wantSpans)
			}
			if got := f.claimFailures(t); len(got) != 0 {
				t.Errorf("claim failures counted: %v", got)
			}
		})
	}
}

// TestAClaimThatFailsStillRecords: a duplicate is better than a loss. The
// failure is counted by error.type and logged at warn once a minute per
// type.
func TestAClaimThatFailsStillRecords(t *testing.T) {
	errs := map[int64]error{
		1: &ClaimError{Type: "ServerBusy", Err: errors.New("503 ServerBusy")},
		2: &ClaimError{Type: "ServerBusy", Err: errors.New("503 ServerBusy")},
		3: &ClaimError{Type: "unreachable", Err: errors.New("connection refused")},
		4: context.DeadlineExceeded,
		5: errors.New("something else"),
	}
	c := &fakeClaimer{claim: func(_ context.Context, _, runID int64) (bool, error) { return false, errs[runID] }}
	f := newClaimFixture(c, 0)
	for id := int64(1); id <= 5; id++ {
		run := endedRun("")
		run.RunId = id
		if !f.rec.Record(run) {
			t.Errorf("run %d (%v) was not recorded", id, errs[id])
		}
	}
	if n := f.runSpans(); n != 5 {
		t.Errorf("%d run spans, want 5", n)
	}
	want := map[string]int64{"ServerBusy": 2, "unreachable": 1, "timeout": 1, "_OTHER": 1}
	got := f.claimFailures(t)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("claim_failed{error.type=%s} = %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
	warns := map[string]int{}
	for _, r := range f.logs.records {
		if r.Level == slog.LevelWarn {
			r.Attrs(func(a slog.Attr) bool {
				if a.Key == "error.type" {
					warns[a.Value.String()]++
				}
				return true
			})
		}
	}
	if len(f.logs.records) != 5 || warns["ServerBusy"] != 1 || warns["unreachable"] != 1 || len(warns) != 4 {
		t.Errorf("%d records, warnings by type %v: want 5 records, one warning per type", len(f.logs.records), warns)
	}
}

// TestASlowClaimIsCutShort: a store that does not answer holds the
// request no longer than the claim's time limit; the run is recorded.
func TestASlowClaimIsCutShort(t *testing.T) {
	c := &fakeClaimer{claim: func(ctx context.Context, _, _ int64) (bool, error) {
		<-ctx.Done()
		return false, ctx.Err()
	}}
	f := newClaimFixture(c, 50*time.Millisecond)
	began := time.Now()
	if !f.rec.Record(endedRun("")) {
		t.Error("not recorded")
	}
	if d := time.Since(began); d > time.Second {
		t.Errorf("Record took %s with a 50ms claim limit", d)
	}
	if got := f.claimFailures(t); got["timeout"] != 1 {
		t.Errorf("claim failures = %v, want timeout 1", got)
	}
}

// TestConcurrentReadsClaimOnce: many requests of one instance that see
// the same run end at once make one claim between them.
func TestConcurrentReadsClaimOnce(t *testing.T) {
	c := &fakeClaimer{claim: func(context.Context, int64, int64) (bool, error) {
		time.Sleep(20 * time.Millisecond)
		return true, nil
	}}
	f := newClaimFixture(c, 0)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { f.rec.Record(endedRun("")) })
	}
	wg.Wait()
	if c.calls != 1 || f.runSpans() != 1 {
		t.Errorf("%d claims, %d run spans; want 1 and 1", c.calls, f.runSpans())
	}
}
