package loadgen

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunStopsAtTheRequestCount(t *testing.T) {
	var calls, inFlight, peak atomic.Int64
	res, err := Run(context.Background(), Options{Concurrency: 8, Requests: 500}, func(context.Context) error {
		n := inFlight.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		defer inFlight.Add(-1)
		if calls.Add(1)%100 == 0 {
			return errors.New("every hundredth fails")
		}
		time.Sleep(100 * time.Microsecond)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 500 || res.Sent != 500 || len(res.Latencies) != 500 {
		t.Errorf("calls %d, sent %d, latencies %d; want 500", calls.Load(), res.Sent, len(res.Latencies))
	}
	if res.Errors != 5 || res.FirstErr == nil {
		t.Errorf("errors %d (%v), want 5", res.Errors, res.FirstErr)
	}
	if peak.Load() > 8 {
		t.Errorf("%d calls at once, want at most 8", peak.Load())
	}
	if res.Percentile(50) > res.Percentile(99) || res.Percentile(100) != res.Latencies[499] {
		t.Errorf("percentiles out of order: %v", res)
	}
}

func TestRunStopsAtTheTimeLimit(t *testing.T) {
	begin := time.Now()
	res, err := Run(context.Background(), Options{Concurrency: 4, Duration: 200 * time.Millisecond}, func(ctx context.Context) error {
		select {
		case <-time.After(10 * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begin); took > 2*time.Second {
		t.Errorf("took %v, want about 200ms", took)
	}
	if res.Errors != 0 {
		t.Errorf("%d errors: calls cut off by the time limit are not failures", res.Errors)
	}
	if res.Sent == 0 {
		t.Error("nothing sent")
	}
}

func TestRunRefusesAnUnboundedRun(t *testing.T) {
	if _, err := Run(context.Background(), Options{Concurrency: 1}, func(context.Context) error { return nil }); err == nil {
		t.Error("a run with neither a request count nor a time limit was accepted")
	}
}

func TestProcStatus(t *testing.T) {
	rss, err := ProcStatus(os.Getpid(), "VmRSS")
	if errors.Is(err, os.ErrNotExist) {
		t.Skip("no /proc: not Linux")
	}
	if err != nil || rss < 1<<20 {
		t.Errorf("VmRSS = %d, %v; want this process's, over 1 MiB", rss, err)
	}
	if _, err := ProcStatus(os.Getpid(), "NoSuchField"); err == nil {
		t.Error("a missing field gave no error")
	}
}
