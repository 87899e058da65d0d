package bench

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// TestSinkCountsWholeTraces: the sink counts every span the OTLP exporter
// sends, and the spans of one trace.
func TestSinkCountsWholeTraces(t *testing.T) {
	sink := startSink()
	defer sink.Close()
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(sink.URL+"/v1/traces"))
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp))
	for range 20 {
		ctx, root := tp.Tracer("t").Start(context.Background(), "root")
		for range 2 {
			_, c := tp.Tracer("t").Start(ctx, "child")
			c.End()
		}
		root.End()
	}
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := sink.settle(context.Background()); n != 60 {
		t.Errorf("spans = %d, want 60", n)
	}
	if n := sink.spansPerTrace(); n != 3 {
		t.Errorf("spans per trace = %d, want 3", n)
	}
}

// TestColdStartOfTheMinimalHandler times a real process start.
func TestColdStartOfTheMinimalHandler(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "minimal")
	if runtime.GOOS == "windows" {
		exe += ".exe"
	}
	if out, err := exec.Command("go", "build", "-o", exe, "./minimal").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	d, err := coldStart(context.Background(), exe, t.TempDir(), []string{"PATH=" + os.Getenv("PATH")})
	if err != nil {
		t.Fatal(err)
	}
	if d <= 0 || d > 10*time.Second {
		t.Errorf("cold start = %v", d)
	}
}

func TestTableMarksEveryGoal(t *testing.T) {
	var b bytes.Buffer
	printTable(&b, []Row{
		{Measure: "a", Result: "1", Goal: "≤ 2", Met: met(true)},
		{Measure: "b", Result: "3", Goal: "≤ 2", Met: met(false)},
		{Measure: "c", Result: "x"},
	})
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d lines:\n%s", len(lines), b.String())
	}
	for i, want := range map[int]string{2: "| met |", 3: "| NOT MET |", 4: "| — |"} {
		if !strings.HasSuffix(lines[i], want) {
			t.Errorf("line %d = %q, want it to end with %q", i, lines[i], want)
		}
	}
}

// TestFlushTimes reads go test -bench output as benchstat does: by policy,
// the GOMAXPROCS suffix apart, in nanoseconds, copied to the raw results.
func TestFlushTimes(t *testing.T) {
	out := []byte(`goos: linux
goarch: amd64
pkg: github.com/nbtrace/nbtrace/handler/internal/telemetry
BenchmarkFlushPolicy/batch-2         	  113118	     10176 ns/op	    5267 B/op	      31 allocs/op
BenchmarkFlushPolicy/async-2         	  100965	     12159 ns/op	    5559 B/op	      34 allocs/op
BenchmarkFlushPolicy/sync-2          	    4602	    293020 ns/op	   26099 B/op	     272 allocs/op
BenchmarkFlushPolicy/async-2         	  100965	     11000 ns/op	    5559 B/op	      34 allocs/op
PASS
ok  	github.com/nbtrace/nbtrace/handler/internal/telemetry	3.844s
`)
	var raw bytes.Buffer
	times, err := flushTimes(out, &raw)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]float64{"batch": {10176}, "async": {12159, 11000}, "sync": {293020}}
	if len(times) != len(want) {
		t.Fatalf("times = %v, want %v", times, want)
	}
	for k, w := range want {
		if !slices.Equal(times[k], w) {
			t.Errorf("%s = %v, want %v", k, times[k], w)
		}
	}
	if n := strings.Count(raw.String(), "BenchmarkFlushPolicy/"); n != 4 || !strings.Contains(raw.String(), "pkg: github.com/nbtrace/nbtrace/handler/internal/telemetry") {
		t.Errorf("raw results (%d records):\n%s", n, raw.String())
	}
}
