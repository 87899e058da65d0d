package bench

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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
