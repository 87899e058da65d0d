package otlpsink

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/nbtrace/nbtrace/dev/internal/syncbuf"
)

// traceID is the id of the nth trace of validateExport.
func traceID(n int) string { return fmt.Sprintf("5a%022x%08x", 0, n*16+1) }

// TestBudgetKeepsTheNewestTraces feeds a sink many times its budget: what
// it keeps stays within the budget, the oldest traces go first and whole,
// the newest are kept, and the log says so once.
func TestBudgetKeepsTheNewestTraces(t *testing.T) {
	s := New()
	s.MaxBytes = 256 << 10
	var log syncbuf.Buffer
	s.Log = &log
	const traces, perExport = 2000, 10 // some 9 spans and 9 KiB a trace
	for n := 0; n < traces; n += perExport {
		post(t, s, validateExport(t, n, perExport))
		if b := s.Bytes(); b > s.MaxBytes {
			t.Fatalf("after %d traces the sink keeps %d bytes, over its %d", n+perExport, b, s.MaxBytes)
		}
	}
	ids := s.TraceIDs()
	if len(ids) < 20 || len(ids) > 40 {
		t.Errorf("%d traces kept within 256 KiB, want some 28", len(ids))
	}
	for i, id := range ids {
		if want := traceID(traces - len(ids) + i); id != want {
			t.Fatalf("kept trace %d is %s, want %s: the newest, in order", i, id, want)
		}
		if n := len(s.Trace(id)); n != 9 {
			t.Errorf("trace %s kept with %d spans, want all 9", id, n)
		}
	}
	if got := len(s.Trace(traceID(0))); got != 0 {
		t.Errorf("the oldest trace still has %d spans", got)
	}
	if got, want := s.Dropped(), traces-len(ids); got != want {
		t.Errorf("Dropped() = %d, want %d", got, want)
	}
	if got, want := log.String(), "trace sink: keeping the newest traces within 256 KiB; older ones are dropped\n"; got != want {
		t.Errorf("log = %q, want %q, once", got, want)
	}
}

// TestDefaultBudgetBoundsTheHeap feeds a sink with its default budget some
// 90 MiB of the handler's spans: the heap they hold stays within 64 MiB, and
// the sink's estimate of it is close.
func TestDefaultBudgetBoundsTheHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: allocates some 200 MiB")
	}
	s := New()
	before := liveHeap()
	const traces, perExport = 10000, 50
	for n := 0; n < traces; n += perExport {
		post(t, s, validateExport(t, n, perExport))
	}
	held := liveHeap() - before
	t.Logf("%d of %d traces kept in %.1f MiB of heap; estimated %.1f MiB", len(s.TraceIDs()), traces, mib(held), mib(s.Bytes()))
	if limit := DefaultMaxBytes + DefaultMaxBytes/10; held > limit {
		t.Errorf("the sink holds %.1f MiB, over its %.0f MiB budget and a tenth", mib(held), mib(DefaultMaxBytes))
	}
	if est := s.Bytes(); est < held*85/100 || est > held*115/100 {
		t.Errorf("estimated %.1f MiB, %.1f MiB held: more than 15%% off", mib(est), mib(held))
	}
	if n := len(s.Trace(traceID(traces - 1))); n != 9 {
		t.Errorf("the newest trace has %d spans, want 9", n)
	}
	runtime.KeepAlive(s)
}

// liveHeap is the heap in use after a full collection.
func liveHeap() int {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int(m.HeapAlloc)
}

func mib(n int) float64 { return float64(n) / (1 << 20) }

// BenchmarkSinkIngest receives exports of 50 validate traces (450 spans)
// over OTLP/HTTP into a sink over its budget, so that every export drops
// as many old traces as it brings.
func BenchmarkSinkIngest(b *testing.B) {
	const perExport = 50
	bodies := make([][]byte, 64)
	for i := range bodies {
		bodies[i] = validateExport(b, i*perExport, perExport)
	}
	s := New()
	s.MaxBytes = 4 << 20
	b.ReportAllocs()
	exports := 0
	for ; b.Loop(); exports++ {
		post(b, s, bodies[exports%len(bodies)])
	}
	b.ReportMetric(float64(exports*perExport*9)/b.Elapsed().Seconds(), "spans/s")
	b.ReportMetric(float64(s.Bytes())/float64(s.SpanCount()), "B/span-kept")
}
